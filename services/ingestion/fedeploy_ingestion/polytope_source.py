"""DestinE's digital-twin data through ECMWF's Polytope into the site's bucket and catalog.

For each source (INGEST_POLYTOPE_SOURCES) and each of its MARS requests: the product's identity
is the request's canonical digest (polytope_plan), so a product whose site item carries it is
skipped before anything is sent to Polytope. Otherwise the request is submitted as
polytope-client submits it (its `Config.get_url`, its `Auth` header from the key, the body
`{"verb": "retrieve", "request": <YAML>}`), polled while Polytope answers 202 (the wait
growing 1.2 times, bounded by `maxWaitMinutes`), and its result, where the 303 points, copied
by the resumable multipart copy. The requests go through the guarded HTTP client: the 202's
Location and every redirect are checked against the source's hosts (its url's and
`downloadHosts`), and the key (`Authorization`) is sent to the Polytope host only: a result on
a staging host is read without it.

A result is read at most `maxAttempts` times in a run, each time from its first byte: a
resumed read could not be checked as GRIB from where it starts, and an upload left by an
earlier run came from another submission whose result may order the messages otherwise.
A request Polytope refuses (400, 403) or fails while processing fails alone, with Polytope's
message; one it answers 204 (data not there yet) is `unpublished`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import yaml

from fedeploy_ingestion import download_safety, polytope_plan
from fedeploy_ingestion.download_safety import IDENTITY, UnsafeBody, UnsafeDownload
from fedeploy_ingestion.errors import ConfigError, SourceError, StorageError
from fedeploy_ingestion.object_store import MiB, RangeSource
from fedeploy_ingestion.product_copy import AgencyRun, ProductReport
from fedeploy_ingestion.settings import AgencySource, PolytopeSource
from fedeploy_ingestion.sharding import owns
from fedeploy_ingestion.upstream import Credentials, HttpAsset

log = logging.getLogger(__name__)

# Polytope's JSON answers (status, errors) are small; more is not one.
MAX_MESSAGE_BYTES = 64 * 1024
# polytope-client's longest wait between polls.
MAX_POLL_SECONDS = 120.0
# The longest one answer to a POST or a poll may take to arrive whole (a poll's is also
# bounded by what is left of maxWaitMinutes).
MAX_ANSWER_SECONDS = 60.0


class NotReady(SourceError):
    """Polytope has no data for the request yet (204)."""


class Refused(SourceError):
    """Polytope refused or failed the request: retrying in this run would not help."""


def key_header(url: str, key: str, email: str | None) -> tuple[str, str]:
    """(polytope-client's requests URL root for `url`, its Authorization header for the key):
    `Bearer <key>`, or `EmailKey <email>:<key>` for an ECMWF key. Nothing is read from the
    home directory (a scratch one stands in) and no passwd entry is needed; polytope-client's
    logger settings are undone."""
    from polytope.api.Auth import Auth
    from polytope.api.Config import Config

    urllib3 = logging.getLogger("urllib3")
    saved = (urllib3.level, urllib3.propagate, list(urllib3.handlers))
    # polytope-client's defaults read the home directory and the user name (getpass): the
    # pod's user (10001) has no passwd entry, so both are given for the while.
    environment = {name: os.environ.get(name) for name in ("HOME", "USER")}
    try:
        with tempfile.TemporaryDirectory(prefix="polytope-") as home:
            os.environ["HOME"] = home
            if not any(os.environ.get(n) for n in ("LOGNAME", "USER", "LNAME", "USERNAME")):
                os.environ["USER"] = "fedeploy-ingest"
            config = Config(
                config_path=home,
                address=url,
                user_key=key,
                user_email=email,
                insecure=url.startswith("http://"),
                quiet=True,
                verbose=False,
                logger=logging.getLogger("fedeploy_ingestion.polytope_client"),
            )
            root = config.get_url("requests")
            headers = [
                h for h in Auth(config).get_auth_headers() if h.startswith(("Bearer ", "EmailKey "))
            ]
    finally:
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        urllib3.setLevel(saved[0])
        urllib3.propagate = saved[1]
        urllib3.handlers[:] = saved[2]
    return root, ", ".join(headers)


class PolytopeKey(Credentials):
    """The key of one source: its Authorization header for the Polytope host (scheme, host and
    port of `url`) only, never for a download host."""

    def __init__(
        self,
        source: PolytopeSource,
        header: str,
        http: httpx.Client,
        guard: download_safety.AddressGuard,
    ) -> None:
        super().__init__(source, None, None, http, guard)  # type: ignore[arg-type]
        self._header = header
        self._origin = _origin(httpx.URL(source.url))

    def __repr__(self) -> str:  # never show the key
        return f"PolytopeKey(source={self.source.name!r})"

    def scrub(self, text: str) -> str:
        """`text` with the key's header, and the key in it, written as '***'."""
        words = {self._header, *self._header.split(), self._header.rpartition(":")[2]}
        for secret in sorted(words, key=len, reverse=True):
            if len(secret) >= 8:
                text = text.replace(secret, "***")
        return text

    def headers_for(self, url: httpx.URL) -> dict[str, str]:
        """The Authorization header when `url` is on the Polytope host; {} anywhere else."""
        return {"Authorization": self._header} if _origin(url) == self._origin else {}


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


def _message(body: bytes) -> str:
    """Polytope's words in an answer's body (`message`, else the body), short and printable."""
    try:
        document = json.loads(body)
        text = document.get("message") or document.get("error") or json.dumps(document)
    except (ValueError, AttributeError):
        text = body.decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else " " for c in str(text)).strip()
    return (text[:500] + "...") if len(text) > 500 else (text or "(empty message)")


def _status(body: bytes) -> str:
    try:
        return str(json.loads(body).get("status", "processing"))
    except (ValueError, AttributeError):
        return "processing"


def _until(chunks: Iterator[bytes], deadline: float, what: str) -> Iterator[bytes]:
    """`chunks` as they come, SourceError once `deadline` (time.monotonic()) has passed: a
    total bound on an answer that drips (httpx's timeout bounds each read only)."""
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise SourceError(f"{what}: the answer did not arrive whole in time")
        yield chunk


class PolytopeResult(RangeSource):
    """A request's result, read through HttpAsset (the key only to the Polytope host);
    bounded by `max_bytes` from its Content-Length; a GRIB result checked by GribFraming. It is
    never resumed: every read starts at byte 0 (the copy then starts its upload over), so
    every stored byte passed the framing check."""

    def __init__(
        self, url: str, http: httpx.Client, key: PolytopeKey, max_bytes: int, grib: bool
    ) -> None:
        self._asset = HttpAsset(url, http, key)
        self._max = max_bytes
        self._grib = grib

    def open(self, offset: int) -> tuple[Iterator[bytes], int, int]:
        """(chunks from byte 0 whatever `offset` asks; 0, the offset served; the result's
        size)."""
        chunks, start, total = self._asset.open(0)
        if total > self._max:
            if self._asset._response is not None:
                self._asset._response.close()
            raise Refused(
                f"the result has {total} bytes, above the source's maxProductMiB {self._max // MiB}"
            )
        if self._grib:
            chunks = polytope_plan.GribFraming().feed(chunks)
        return chunks, start, total


class PolytopeRun(AgencyRun):
    """One pass over INGEST_POLYTOPE_SOURCES: every request of each source."""

    kind = "polytope"

    def sources(self) -> list[AgencySource]:
        """INGEST_POLYTOPE_SOURCES."""
        return list(self.settings.polytope_sources)

    def run(self, now: datetime | None = None) -> ProductReport:
        """Copy every source's products; failures are reported, not raised."""
        now = now or datetime.now(UTC)
        s = self.settings
        if s.polytope_sources and s.polytope_key is None:
            raise ConfigError(
                "INGEST_POLYTOPE_SOURCES is set but no key: mount the Polytope key as the file "
                "ingest_polytope_key in INGEST_SETTINGS_DIR"
            )
        for source in s.polytope_sources:
            products = [polytope_plan.Product(source.collection, r) for r in source.requests]
            try:
                root, header = key_header(
                    source.url,
                    s.polytope_key.get_secret_value(),  # type: ignore[union-attr]
                    s.polytope_email.get_secret_value() if s.polytope_email else None,
                )
                key = PolytopeKey(source, header, self.http, self.guard)
                endpoint = key.policy.check(
                    f"{root}/{source.collection}", what="Polytope requests endpoint"
                )
            except Exception as error:  # noqa: BLE001 - the source fails, the others run
                for product in products:
                    self.report.found += 1
                    self.sink.failed(source.name, self._name(product), error)
                continue
            for product in products:
                name = self._name(product)
                self.report.found += 1
                if not owns(name, s.shard_index, s.shard_count):
                    self.report.other_shards += 1
                    continue
                try:
                    self._product(source, key, endpoint, product, now)
                except NotReady as missing:
                    self.report.unpublished.append(name)
                    log.info("not ready", extra={"item": name, "reason": str(missing)})
                except Exception as error:  # noqa: BLE001 - one product fails alone
                    self.sink.failed(source.name, name, error)
        return self.report

    @staticmethod
    def _name(product: polytope_plan.Product) -> str:
        return f"{product.collection_id}/{product.item_id}"

    def _product(
        self,
        source: PolytopeSource,
        key: PolytopeKey,
        endpoint: httpx.URL,
        product: polytope_plan.Product,
        now: datetime,
    ) -> None:
        if self.sink.done(product.collection_id, product.item_id, product.digest):
            return
        results: list[PolytopeResult] = []

        def result() -> PolytopeResult:
            if not results:  # submitted once, and only when the copy needs the bytes
                location = self._submit(source, key, endpoint, product)
                results.append(
                    PolytopeResult(
                        str(location),
                        self.http,
                        key,
                        source.max_product_mib * MiB,
                        grib=product.media_type == polytope_plan.GRIB2,
                    )
                )
            return results[0]

        for attempt in range(1, source.max_attempts + 1):
            try:
                copy = self.sink.copy(
                    product.key,
                    result,
                    size=None,
                    expected=None,  # Polytope publishes no digest: GribFraming checks
                    content_type=product.media_type,
                    fingerprint=product.digest,
                )
                break
            except (Refused, UnsafeDownload, UnsafeBody):
                raise
            except (SourceError, StorageError) as error:
                if not results or attempt == source.max_attempts:
                    raise
                log.warning(
                    "result read failed; reading it again",
                    extra={"item": product.item_id, "attempt": attempt, "error": str(error)},
                )
        item = polytope_plan.site_item(
            product,
            copy,
            url=source.url,
            bucket=self.sink.store.bucket,
            site=self.settings.require("site"),
            area=source.bbox,
            now=now,
        )
        self.sink.register(polytope_plan.site_collection(product, source.url), item)

    def _call(
        self, method: str, url: httpx.URL, key: PolytopeKey, seconds: float, **body: Any
    ) -> tuple[httpx.Response, bytes]:
        """Send one request to Polytope, streamed: (the answer, its body decoded step by step,
        at most MAX_MESSAGE_BYTES: UnsafeBody above), all of it within `seconds` (SourceError
        past it). The key never shows in an error."""
        what = f"{method} {download_safety.shown(url)}"
        deadline = time.monotonic() + seconds
        try:
            request = self.http.build_request(
                method, url, headers={**key.headers_for(url), **IDENTITY}, **body
            )
            response = self.http.send(request, stream=True)
            try:
                raw = _until(response.iter_raw(), deadline, what)
                codings = download_safety.content_encodings(response)
                data = b"".join(download_safety.decoded_body(raw, codings, MAX_MESSAGE_BYTES, what))
            finally:
                response.close()
        except httpx.HTTPError as error:
            raise SourceError(f"{what} failed: {key.scrub(str(error))}") from None
        return response, data

    def _submit(
        self,
        source: PolytopeSource,
        key: PolytopeKey,
        endpoint: httpx.URL,
        product: polytope_plan.Product,
    ) -> httpx.URL:
        """POST the request; poll it; the URL of its result (where the 303 points)."""
        body = {
            "verb": "retrieve",
            "request": yaml.safe_dump(polytope_plan.mars_request(product.request)),
        }
        what = f"POST {download_safety.shown(endpoint)}"
        response, text = self._call("POST", endpoint, key, MAX_ANSWER_SECONDS, json=body)
        location = response.headers.get("location")
        if response.status_code in (202, 303) and location:
            target = key.policy.redirect(endpoint, location)
            return target if response.status_code == 303 else self._poll(source, key, target)
        if response.status_code == 204:
            raise NotReady(f"{what}: Polytope has no data for the request yet (204)")
        if response.status_code == 200:
            raise Refused(
                f"{what} answered the data inline (200): a result that cannot be read again "
                "is not copied (Polytope's data requests answer 202 and a result URL)"
            )
        raise Refused(
            f"Polytope refused the request ({response.status_code}): {_message(text)}"
            + (
                "; check the key (ingest_polytope_key)"
                if response.status_code in (401, 403)
                else ""
            )
        )

    def _poll(self, source: PolytopeSource, key: PolytopeKey, url: httpx.URL) -> httpx.URL:
        """Poll a queued request until its result is ready: the result's URL."""
        deadline = time.monotonic() + source.max_wait_minutes * 60
        wait = source.poll_seconds
        while True:
            left = max(deadline - time.monotonic(), 1.0)
            response, text = self._call("GET", url, key, min(left, MAX_ANSWER_SECONDS))
            location = response.headers.get("location")
            if response.status_code == 303 and location:
                return key.policy.redirect(url, location)
            if response.status_code == 200:
                return url
            if response.status_code != 202:
                raise Refused(
                    f"Polytope failed the request ({response.status_code}): {_message(text)}"
                )
            status = _status(text)
            if status == "failed":
                raise Refused(f"Polytope failed the request: status {status}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise SourceError(
                    f"the request is still {status} after {source.max_wait_minutes} minutes "
                    "(maxWaitMinutes); the next run submits it again"
                )
            time.sleep(min(wait, left))
            wait = min(wait * 1.2, MAX_POLL_SECONDS)
