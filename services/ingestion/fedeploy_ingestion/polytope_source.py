"""DestinE's digital-twin data through ECMWF's Polytope into the site's bucket and catalog.

For each source (INGEST_POLYTOPE_SOURCES) and each of its MARS requests: the product's identity
is the request's canonical digest (polytope_plan), so a product whose site item carries it is
skipped before anything is sent to Polytope. Otherwise the request is submitted as
polytope-client submits it (its `Config.get_url`, its `Auth` header from the key, the body
`{"verb": "retrieve", "request": <YAML>}`). Every request of every source is submitted first,
and the results ready at once (303) copied by the resumable multipart copy; the queued ones
(202) are then polled together, each at its own pace (the wait growing 1.2 times) until its
`maxWaitMinutes`, all within the run's budget (INGEST_POLYTOPE_RUN_MINUTES), and each result
copied as soon as its poll finds it ready. Each answer to a POST or a poll, headers and body,
is read streamed, at most MAX_MESSAGE_BYTES once decoded, within a total deadline
(MAX_ANSWER_SECONDS, and the run's budget); a result read stops at the run's budget and its
source's share of the run's time. The requests go through the guarded HTTP client: the 202's
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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import yaml

from fedeploy_ingestion import download_safety, polytope_plan
from fedeploy_ingestion.download_safety import IDENTITY, UnsafeBody, UnsafeDownload
from fedeploy_ingestion.errors import ConfigError, SourceError, StorageError
from fedeploy_ingestion.object_store import MiB, RangeSource
from fedeploy_ingestion.product_copy import AgencyRun, ProductReport, run_end
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


def _until(chunks: Iterable[bytes], deadline: float, what: str) -> Iterator[bytes]:
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
        self,
        url: str,
        http: httpx.Client,
        key: PolytopeKey,
        max_bytes: int,
        grib: bool,
        deadline: float = float("inf"),
        min_rate: float = 0.0,
        headers_timeout: float | None = None,
        budget: download_safety.Deadline | None = None,
    ) -> None:
        """`min_rate`, `headers_timeout` and `budget` (the source's share of the run's time)
        bound the read as they bound a Sentinel copy's (HttpAsset)."""
        self._asset = HttpAsset(
            url, http, key, min_rate, headers_timeout=headers_timeout, budget=budget
        )
        self._max = max_bytes
        self._grib = grib
        self._deadline = deadline  # the run's budget (time.monotonic()): a dripping read stops

    def open(self, offset: int) -> tuple[Iterable[bytes], int, int]:
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
        return (
            _until(chunks, self._deadline, "the result (the Polytope run's budget)"),
            start,
            total,
        )


@dataclass
class _Request:
    """One product on its way: submitted, queued at `poll` or ready at `location`."""

    source: PolytopeSource
    index: int  # of the source in INGEST_POLYTOPE_SOURCES
    key: PolytopeKey
    product: polytope_plan.Product
    name: str
    location: httpx.URL | None = None  # the result, once ready
    poll: httpx.URL | None = None  # while queued
    deadline: float = 0.0  # of its wait (maxWaitMinutes), time.monotonic()
    next_poll: float = 0.0
    wait: float = 0.0
    status: str = "queued"
    failed: bool = False  # reported (failed or unpublished): not copied
    copied: bool = False  # its copy was tried


class PolytopeRun(AgencyRun):
    """One pass over INGEST_POLYTOPE_SOURCES: every request of every source is submitted, the
    results ready at once are copied, then the queued ones are polled together and each result
    copied when it is ready, all within INGEST_POLYTOPE_RUN_MINUTES."""

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
        if self._started is None:
            self._started = time.monotonic()
        # Submissions and polls end at the run's budget, or the run's time, whichever is first.
        end = run_end(s, self._started)
        self._deadline = time.monotonic() + s.polytope_run_minutes * 60
        self._run_time = ""
        if end is not None and end < self._deadline:
            self._deadline = end
            self._run_time = (
                f", cut to what INGEST_RUN_DEADLINE_SECONDS={s.run_deadline_seconds:g} s "
                "leaves after its margin"
            )
        requests: list[_Request] = []
        for index, source in enumerate(s.polytope_sources):
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
                request = _Request(source, index, key, product, self._name(product))
                self.report.found += 1
                if not owns(request.name, s.shard_index, s.shard_count):
                    self.report.other_shards += 1
                    continue
                if time.monotonic() >= self._deadline:  # submissions that stalled took it
                    self.sink.failed(
                        source.name,
                        request.name,
                        SourceError(
                            f"not submitted: {self._budget_text()} has passed; the next run "
                            "submits it"
                        ),
                    )
                    continue
                if self._attempt(request, partial(self._submit, request, endpoint)):
                    requests.append(request)
        self._requests = requests
        # Each source's share: its message, and the copy seconds it has left (charged only for
        # the time its own copies take, whatever order the sources' results become ready in).
        self._shares: dict[int, download_safety.Deadline | None] = {}
        self._left: dict[int, float] = {}
        self._taken: dict[int, int] = {}
        self._spent: set[int] = set()
        # The results ready at once are copied first, then each as soon as its poll finds it
        # ready: a request queued for long never keeps a ready result from its copy.
        self._copies([r for r in requests if r.poll is None], now)
        self._wait([r for r in requests if r.poll is not None], now)
        return self.report

    def _budget_text(self) -> str:
        """The run's budget, for messages: what ends the submissions and polls."""
        return (
            f"the run's budget (INGEST_POLYTOPE_RUN_MINUTES "
            f"{self.settings.polytope_run_minutes:g}{self._run_time})"
        )

    def _copies(self, requests: list[_Request], now: datetime) -> None:
        """Copy these ready results. A source's share is set at its first copy: an equal part
        of what is left of the run's time among the Polytope sources that still have results
        to copy (Polytope runs last), and each of its copies takes from it only the time it
        takes; once it is used, no more of the source's results is read (`<source>:budget`)
        and each one ready is reported (ready but not copied)."""
        for request in requests:
            if request.failed:
                continue
            index, source = request.index, request.source.name
            if index not in self._shares:
                waiting = {r.index for r in self._requests if not (r.failed or r.copied)}
                share = self.share(index, source, sharing=len(waiting))
                self._shares[index] = share
                if share is not None:
                    self._left[index] = share.at - time.monotonic()
                self._taken[index] = 0
            share = self._shares[index]
            budget = (
                None if share is None else download_safety.Deadline(self._left[index], share.what)
            )
            if index in self._spent or self.spent(source, budget, self._taken[index]):
                self._spent.add(index)
                request.failed = True
                self.sink.failed(
                    source,
                    request.name,
                    SourceError(
                        f"ready but not copied: source {source}'s share of the run's time "
                        "passed; the next run submits it again"
                    ),
                )
                continue
            self._taken[index] += 1
            began = time.monotonic()
            self._attempt(request, partial(self._copy, request, now, budget))
            request.copied = True
            if index in self._left:
                self._left[index] -= time.monotonic() - began

    def _attempt(self, request: _Request, step: Callable[[], bool]) -> bool:
        """`step()`, its failure reported against the request: whether it goes on."""
        try:
            return step()
        except NotReady as missing:
            self.report.unpublished.append(request.name)
            log.info("not ready", extra={"item": request.name, "reason": str(missing)})
        except Exception as error:  # noqa: BLE001 - one product fails alone
            self.sink.failed(request.source.name, request.name, error)
        request.failed = True
        return False

    @staticmethod
    def _name(product: polytope_plan.Product) -> str:
        return f"{product.collection_id}/{product.item_id}"

    def _submit(self, request: _Request, endpoint: httpx.URL) -> bool:
        """Whether the product is to be copied: not when its item is done; submitted unless
        a run that died before registering left it stored (the copy reuses it)."""
        product = request.product
        if self.sink.done(product.collection_id, product.item_id, product.digest):
            return False
        stored = self.sink.store.head(product.key)
        if stored is not None and stored.metadata.get("fedeploy-fingerprint") == product.digest:
            return True
        target, queued = self._post(request.source, request.key, endpoint, product)
        if queued:
            request.poll = target
            request.deadline = time.monotonic() + request.source.max_wait_minutes * 60
            request.wait = request.source.poll_seconds
            request.next_poll = time.monotonic() + request.wait
        else:
            request.location = target
        return True

    def _wait(self, queued: list[_Request], now: datetime) -> None:
        """Poll the queued requests together, each at its own pace, until each is ready,
        failed, past its maxWaitMinutes or past the run's budget; a result found ready is
        copied then (_copies)."""
        while queued:
            request = min(queued, key=lambda r: r.next_poll)
            left = self._deadline - time.monotonic()
            if left <= 0:
                for late in queued:
                    late.failed = True
                    self.sink.failed(
                        late.source.name,
                        late.name,
                        SourceError(
                            f"the request is still {late.status} at the end of "
                            f"{self._budget_text()}; the next run submits it again"
                        ),
                    )
                return
            time.sleep(max(0.0, min(request.next_poll - time.monotonic(), left)))
            if time.monotonic() >= self._deadline:
                continue
            if not self._attempt(request, partial(self._poll, request)):
                queued.remove(request)
            elif request.location is not None:
                queued.remove(request)
                self._copies([request], now)

    def _copy(
        self, request: _Request, now: datetime, budget: download_safety.Deadline | None = None
    ) -> bool:
        source, key, product = request.source, request.key, request.product
        results: list[PolytopeResult] = []

        def result() -> PolytopeResult:
            if request.location is None:
                raise SourceError("the request has no result to read")
            if not results:
                results.append(
                    PolytopeResult(
                        str(request.location),
                        self.http,
                        key,
                        source.max_product_mib * MiB,
                        grib=product.media_type == polytope_plan.GRIB2,
                        deadline=self._deadline,
                        min_rate=self.settings.copy_min_rate_kib_s * 1024,
                        headers_timeout=2 * self.settings.http_timeout_seconds,
                        budget=budget,
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
                if budget is not None and budget.at <= time.monotonic():
                    raise  # its source's share passed: another read would fail at once
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
        return True

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
            with download_safety.Deadline(seconds, f"{what}: the answer").applied():
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

    def _post(
        self,
        source: PolytopeSource,
        key: PolytopeKey,
        endpoint: httpx.URL,
        product: polytope_plan.Product,
    ) -> tuple[httpx.URL, bool]:
        """POST the request: (where its result is, False) on a 303, (where to poll it, True)
        on a 202."""
        body = {
            "verb": "retrieve",
            "request": yaml.safe_dump(polytope_plan.mars_request(product.request)),
        }
        what = f"POST {download_safety.shown(endpoint)}"
        # Within the run's budget too: a POST whose answer drips ends there.
        seconds = min(MAX_ANSWER_SECONDS, max(self._deadline - time.monotonic(), 0.0))
        response, text = self._call("POST", endpoint, key, seconds, json=body)
        location = response.headers.get("location")
        if response.status_code in (202, 303) and location:
            target = key.policy.redirect(endpoint, location)
            return target, response.status_code == 202
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

    def _poll(self, request: _Request) -> bool:
        """Poll a queued request once: its `location` set when its result is ready; the next
        poll planned (1.2 times later, at most MAX_POLL_SECONDS) when it is not; SourceError
        past its maxWaitMinutes."""
        url, key, source = request.poll, request.key, request.source
        assert url is not None
        left = min(request.deadline, self._deadline) - time.monotonic()
        response, text = self._call("GET", url, key, min(max(left, 1.0), MAX_ANSWER_SECONDS))
        location = response.headers.get("location")
        if response.status_code == 303 and location:
            request.location = key.policy.redirect(url, location)
            return True
        if response.status_code == 200:
            request.location = url
            return True
        if response.status_code != 202:
            raise Refused(f"Polytope failed the request ({response.status_code}): {_message(text)}")
        request.status = _status(text)
        if request.status == "failed":
            raise Refused(f"Polytope failed the request: status {request.status}")
        if time.monotonic() >= request.deadline:
            raise SourceError(
                f"the request is still {request.status} after {source.max_wait_minutes} minutes "
                "(maxWaitMinutes); the next run submits it again"
            )
        request.next_poll = min(time.monotonic() + request.wait, request.deadline)
        request.wait = min(request.wait * 1.2, MAX_POLL_SECONDS)
        return True
