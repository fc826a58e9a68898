"""EUMETSAT Data Store products into the site's bucket and catalog, through eumdac.

For each source (INGEST_EUMETSAT_SOURCES) and collection: eumdac's `AccessToken` exchanges the
consumer key and secret (INGEST_EUMETSAT_CONSUMER_KEY/_SECRET, from a Secret) for a bearer token
at the source's token endpoint (client credentials, HTTP Basic), and `Collection.search` pages
through the products whose sensing time meets the window and whose footprint meets the box. The
endpoints are eumdac's own (`URLs`, its endpoints file) with `[DEFAULT] api` set to the
source's `url`, so token, search and download hang from one root.

Every request eumdac sends goes through `GuardedAdapter` (eumdac builds a requests session per
request; its `_get_adapter` is replaced while a source runs): each URL, redirects included, must
pass the source's DownloadPolicy (allowed hosts, https or the source's scheme, no loopback,
private, link-local or cluster address), proxies from the environment are not used, each
request times out after INGEST_HTTP_TIMEOUT_SECONDS, and each answer's body is read decoded step
by step, refused past MAX_API_BODY (download_safety.decoded_body: a gzip bomb). The consumer key
and secret are sent only with the token request, to the token endpoint; the bearer token only to
the source's hosts, on the source URL's port (or https's).

The token is eumdac's `AccessToken` subclassed (`bounded_token_class`): the endpoint's answer is
checked (`expires_in` from MIN_TOKEN_SECONDS to MAX_TOKEN_SECONDS, a printable `access_token`),
a token is renewed once when it nears expiry or a download answers 401, and a source sends at
most MAX_TOKEN_REQUESTS token requests a run. The search pages are read by `search_products`
(eumdac's page loader, not its iterator): each record becomes a product on its own (a malformed
one fails alone), a page that brings no new product ends the search, and past
INGEST_SEARCH_MAX_PAGES pages or MAX_SEARCH_RESULTS results the collection fails; at most
`maxItems` (1000 unless set) products a collection per run.

A product's zip is downloaded by the guarded httpx client (HttpAsset: redirects followed here,
the token re-applied only between the source's hosts) and streamed into a resumable S3
multipart upload, verified against the MD5 the Data Store publishes, its size bounded by
`maxProductMiB`. Each product fails alone; a search that fails fails its collection
(`<source>:<collection>:search`) after the products already read were handled.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
from requests.adapters import HTTPAdapter

from fedeploy_ingestion import eumetsat_plan
from fedeploy_ingestion.download_safety import (
    Deadline,
    DownloadPolicy,
    content_encodings_of,
    decoded_body,
)
from fedeploy_ingestion.errors import ConfigError, SourceError
from fedeploy_ingestion.object_store import MiB, RangeSource
from fedeploy_ingestion.product_copy import AgencyRun, ProductReport
from fedeploy_ingestion.settings import AgencySource, EumetsatSource
from fedeploy_ingestion.sharding import owns
from fedeploy_ingestion.upstream import HttpAsset

log = logging.getLogger(__name__)

# Decoded bytes of one API answer (token, OpenSearch description, search page), at most: a
# page of 100 products has about 200 KiB; a gzip body that expands past this is refused.
MAX_API_BODY = 32 * MiB
# Seconds one API answer's body may take to arrive whole (the timeout is per read: a body
# sent a byte at a time would otherwise hold the run for as long as the server likes).
MAX_API_SECONDS = 300.0
# Token requests one source may send in a run (the first, renewals, one retry after a 401).
MAX_TOKEN_REQUESTS = 20
# A token's announced lifetime (expires_in, seconds) must lie within these: a shorter one
# would be renewed in a loop (eumdac renews 2 s before expiry), a longer one is no lifetime.
MIN_TOKEN_SECONDS = 30
MAX_TOKEN_SECONDS = 366 * 86400
# The Data Store pages no further than this many results of one query.
MAX_SEARCH_RESULTS = 10000
_TOKEN = re.compile(r"^[\x21-\x7e]{1,4096}$")


class GuardedAdapter(HTTPAdapter):
    """A requests adapter that sends only what the source's DownloadPolicy allows: every URL,
    each redirect's too, is checked before it is sent; no proxy; a timeout on every request."""

    def __init__(self, policy: DownloadPolicy, timeout: float, max_retries: Any) -> None:
        super().__init__(max_retries=max_retries)
        self.policy = policy
        self.timeout = timeout

    def send(
        self,
        request: Any,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> Any:
        """Check the URL (UnsafeDownload names the refusal), send it directly, and read the
        body (unless streamed) decoded step by step, at most MAX_API_BODY bytes (UnsafeBody)."""
        url = str(request.url)
        self.policy.check(url, what="EUMETSAT API request to")
        response = super().send(
            request,
            stream=True,
            timeout=timeout or self.timeout,
            verify=verify,
            cert=cert,
            proxies={},
        )
        if stream:
            return response
        try:
            raw = _raw_until(response.raw, time.monotonic() + MAX_API_SECONDS, url)
            codings = content_encodings_of(response.headers.get("content-encoding", ""))
            what = f"EUMETSAT API {request.method} {url.split('?', 1)[0]}"
            # requests' Response keeps a read body in `_content`: set, it decodes nothing more.
            response._content = b"".join(decoded_body(raw, codings, MAX_API_BODY, what))
            response._content_consumed = True
            response.headers.pop("content-encoding", None)
        finally:
            response.close()
        return response


@contextlib.contextmanager
def guarded_eumdac(policy: DownloadPolicy, timeout: float) -> Iterator[None]:
    """While inside: every request eumdac makes passes `GuardedAdapter` (with eumdac's own
    retries of 5xx answers)."""
    import eumdac.request

    original = eumdac.request._get_adapter

    def adapter(max_retries: int, backoff_factor: float) -> HTTPAdapter:
        return GuardedAdapter(policy, timeout, original(max_retries, backoff_factor).max_retries)

    eumdac.request._get_adapter = adapter
    try:
        yield
    finally:
        eumdac.request._get_adapter = original


def bounded_token_class() -> type:
    """eumdac's `AccessToken` with the token endpoint's answer checked: `expires_in` a number
    of seconds within [MIN_TOKEN_SECONDS, MAX_TOKEN_SECONDS], `access_token` a short printable
    string (SourceError saying the answer is malformed otherwise), at most MAX_TOKEN_REQUESTS
    token requests in the token's life, and a token renewed once before it expires instead of
    eumdac's renewal loop (which never ends on a lifetime under its 2 s margin)."""
    import eumdac
    import eumdac.common
    import eumdac.request
    from requests.auth import HTTPBasicAuth

    class BoundedToken(eumdac.AccessToken):  # type: ignore[misc]
        requests_sent = 0

        @property
        def access_token(self) -> str:
            """The current token; a new one when it expires within eumdac's margin."""
            if time.time() >= self._expiration - self.request_margin:
                self._update_token_data()
            return str(self._access_token)

        def renew(self) -> None:
            """A new token now (the Data Store refused the current one: 401)."""
            self._update_token_data()

        def _update_token_data(self) -> None:
            url = self.urls.get("token", "token")
            if self.requests_sent >= MAX_TOKEN_REQUESTS:
                raise SourceError(
                    f"EUMETSAT token endpoint {url}: {MAX_TOKEN_REQUESTS} token requests in "
                    "this run already; no more are sent"
                )
            self.requests_sent += 1
            now = time.time()
            response = eumdac.request.post(
                url,
                auth=HTTPBasicAuth(*self.credentials),
                data={"grant_type": "client_credentials", "validity_period": self.validity_period},
                headers=eumdac.common.headers,
            )
            response.raise_for_status()
            token, lifetime = _token_answer(url, response)
            self._expiration = int(now + lifetime)
            self._access_token = token

    return BoundedToken


def _token_answer(url: str, response: Any) -> tuple[str, float]:
    """(access_token, expires_in) of a token answer; SourceError naming what is malformed."""
    malformed = f"EUMETSAT token endpoint {url}'s answer is malformed"
    try:
        answer = response.json()
    except ValueError:
        raise SourceError(f"{malformed}: not JSON") from None
    if not isinstance(answer, dict):
        raise SourceError(f"{malformed}: not a JSON object")
    token, lifetime = answer.get("access_token"), answer.get("expires_in")
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise SourceError(f"{malformed}: no access_token (1 to 4096 printable characters)")
    if (
        isinstance(lifetime, bool)
        or not isinstance(lifetime, int | float)
        or not MIN_TOKEN_SECONDS <= lifetime <= MAX_TOKEN_SECONDS  # NaN and inf fail too
    ):
        raise SourceError(
            f"{malformed}: expires_in must be a number of seconds from {MIN_TOKEN_SECONDS} to "
            f"{MAX_TOKEN_SECONDS}"
        )
    return token, float(lifetime)


def _raw_until(raw: Any, deadline: float, url: str) -> Iterator[bytes]:
    """A urllib3 answer's bytes as they arrive (`read1`: what is there, not a full buffer),
    SourceError once `deadline` (time.monotonic()) has passed."""
    while chunk := raw.read1(64 * 1024, decode_content=False):
        if time.monotonic() > deadline:
            raise SourceError(
                f"EUMETSAT API {url.split('?', 1)[0]}: the answer did not arrive whole within "
                f"{MAX_API_SECONDS:g} s"
            )
        yield chunk


class BearerCredentials:
    """The token for HttpAsset: sent only to the source's own hosts (the policy's), on the
    source URL's port or the scheme's default one."""

    def __init__(self, policy: DownloadPolicy, token: Any, source_url: str = "") -> None:
        self.policy = policy
        self._token = token
        ports = {443}
        if source_url:
            parsed = httpx.URL(source_url)
            ports.add(parsed.port or (443 if parsed.scheme == "https" else 80))
        self._ports = frozenset(ports)

    def __repr__(self) -> str:  # never show the token
        return f"BearerCredentials(source={self.policy.source!r})"

    def headers_for(self, url: httpx.URL) -> dict[str, str]:
        """`Authorization: Bearer` for the source's hosts, nothing for any other."""
        port = url.port or (443 if url.scheme == "https" else 80)
        if not self.policy.trusted(url) or port not in self._ports:
            return {}
        return {"Authorization": f"Bearer {_token_value(self._token)}"}


def _token_value(token: Any) -> str:
    """The current bearer token (eumdac renews it); SourceError naming the endpoint if the
    token request is refused (never the credentials)."""
    import requests

    try:
        return str(token.access_token)
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else "no answer"
        raise SourceError(
            f"EUMETSAT token endpoint {token.urls.get('token', 'token')} answered {status}; "
            "check INGEST_EUMETSAT_CONSUMER_KEY / INGEST_EUMETSAT_CONSUMER_SECRET"
        ) from None
    except requests.RequestException as error:
        raise SourceError(f"EUMETSAT token request failed: {type(error).__name__}") from None


class BoundedAsset(RangeSource):
    """A download whose announced size must be at most `limit` bytes."""

    def __init__(self, asset: HttpAsset, limit: int, token: Any = None) -> None:
        self._asset = asset
        self._limit = limit
        self._token = token
        self._renewed = False

    def open(self, offset: int) -> tuple[Iterable[bytes], int, int]:
        """The asset's chunks; SourceError before reading when it is larger than the bound.
        A 401 (the Data Store ended the token early) renews the token and tries once more."""
        try:
            chunks, start, total = self._asset.open(offset)
        except SourceError as error:
            if not (str(error).endswith(" answered 401") and self._token and not self._renewed):
                raise
            self._renewed = True
            self._token.renew()
            chunks, start, total = self._asset.open(offset)
        if total > self._limit:
            close = getattr(chunks, "close", None)
            if close:
                close()
            raise SourceError(
                f"{self._asset.href} has {total} bytes, above the source's maxProductMiB "
                f"({self._limit // MiB})"
            )
        return chunks, start, total


class EumetsatRun(AgencyRun):
    """One pass over INGEST_EUMETSAT_SOURCES: every collection of each source."""

    kind = "eumetsat"
    # The source being copied's share of the run's time (None: none), and the products the
    # report had found when it started.
    _budget: Deadline | None = None
    _since = 0

    def sources(self) -> list[AgencySource]:
        """INGEST_EUMETSAT_SOURCES."""
        # eumdac logs each request's arguments at DEBUG: the credentials would be in them.
        logging.getLogger("eumdac").setLevel(logging.WARNING)
        return list(self.settings.eumetsat_sources)

    def run(self, now: datetime | None = None) -> ProductReport:
        """Copy every product found; failures are reported, not raised."""
        s = self.settings
        if s.eumetsat_consumer_key is None or s.eumetsat_consumer_secret is None:
            raise ConfigError(
                "INGEST_EUMETSAT_SOURCES is set but INGEST_EUMETSAT_CONSUMER_KEY / "
                "INGEST_EUMETSAT_CONSUMER_SECRET are not: the Data Store needs an API key"
            )
        _check_site_collections(s.eumetsat_sources)
        now = now or datetime.now(UTC)
        for index, source in enumerate(s.eumetsat_sources):
            policy = DownloadPolicy.for_source(source, self.guard)
            # The source's share of the run's time: its downloads end at it, and no product of
            # it starts after it.
            self._budget = self.share(index, source.name)
            self._since = self.report.found
            with guarded_eumdac(policy, s.http_timeout_seconds):
                try:
                    datastore, token = self._connect(source, policy)
                except Exception as error:  # noqa: BLE001 - one source fails alone
                    self.sink.failed(source.name, f"{source.name}:token", error)
                    continue
                for collection_id in source.collections:
                    if f"{source.name}:budget" in self.report.failed or self.spent(
                        source.name, self._budget, self.report.found - self._since
                    ):
                        break  # its share passed: no more of its collections is searched
                    try:
                        self._collection(source, datastore, token, policy, collection_id, now)
                    except Exception as error:  # noqa: BLE001 - one collection fails alone
                        self.sink.failed(
                            source.name, f"{source.name}:{collection_id}:search", error
                        )
        return self.report

    def _connect(self, source: EumetsatSource, policy: DownloadPolicy) -> tuple[Any, Any]:
        import eumdac
        from eumdac.token import URLs

        urls = URLs()
        urls.set("DEFAULT", "api", source.url.rstrip("/"))
        for section in ("token", "datastore"):  # refused at once rather than per request
            for option in ("token", "search", "download"):
                if urls.has_option(section, option):
                    policy.check(urls.get(section, option), what=f"EUMETSAT {option} endpoint")
        s = self.settings
        assert s.eumetsat_consumer_key is not None and s.eumetsat_consumer_secret is not None
        token = bounded_token_class()(
            (
                s.eumetsat_consumer_key.get_secret_value(),
                s.eumetsat_consumer_secret.get_secret_value(),
            ),
            urls=urls,
        )
        _token_value(token)  # the token flow fails the source before any search
        return eumdac.DataStore(token), token

    def _collection(
        self,
        source: EumetsatSource,
        datastore: Any,
        token: Any,
        policy: DownloadPolicy,
        collection_id: str,
        now: datetime,
    ) -> None:
        import eumdac

        start, end = source.sensing_window(now)
        query: dict[str, Any] = {"dtstart": start, "dtend": end}
        if source.bbox:
            query["bbox"] = ",".join(f"{v:g}" for v in source.bbox)
        credentials = BearerCredentials(policy, token, source.url)
        taken = 0
        try:
            found = search_products(datastore, collection_id, query, self.settings.search_max_pages)
            for product_id, product in found:
                if self.spent(source.name, self._budget, self.report.found - self._since):
                    break
                name = f"{collection_id}/{product_id}"
                self.report.found += 1
                taken += 1
                if isinstance(product, Exception):
                    self.sink.failed(source.name, name, product)
                elif not owns(name, self.settings.shard_index, self.settings.shard_count):
                    self.report.other_shards += 1
                else:
                    try:
                        self._product(source, token, credentials, collection_id, product, now)
                    except Exception as error:  # noqa: BLE001 - one product fails alone
                        self.sink.failed(source.name, name, error)
                if taken >= source.max_items:
                    break
        except eumdac.errors.EumdacError as error:
            raise SourceError(
                f"search of {collection_id} at {source.url} failed: {error.args[0] if error.args else error}"
            ) from None

    def _product(
        self,
        source: EumetsatSource,
        token: Any,
        credentials: BearerCredentials,
        collection_id: str,
        product: Any,
        now: datetime,
    ) -> None:
        product_id = str(product)
        key = eumetsat_plan.object_key(collection_id, product_id)
        properties: dict[str, Any] = product._browse_properties or {}
        fingerprint = eumetsat_plan.fingerprint(collection_id, product_id, properties)
        if self.sink.done(eumetsat_plan.site_collection_id(collection_id), product_id, fingerprint):
            return
        expected = eumetsat_plan.declared_md5(properties.get("md5"))
        if expected is None:
            log.warning(
                "the Data Store published no usable MD5; the copy is checked by its size only",
                extra={"item": f"{collection_id}/{product_id}"},
            )
        ids = {"collection_id": collection_id, "product_id": product_id}
        href = token.urls.get("datastore", "download product", vars=ids)
        copy = self.sink.copy(
            key,
            lambda: BoundedAsset(
                HttpAsset(
                    href,
                    self.http,
                    credentials,  # type: ignore[arg-type]
                    self.settings.copy_min_rate_kib_s * 1024,
                    headers_timeout=2 * self.settings.http_timeout_seconds,
                    budget=self._budget,
                ),
                source.max_product_mib * MiB,
                token,
            ),
            size=None,  # the Data Store gives kB; the download's Content-Length is checked
            expected=expected,
            content_type="application/zip",
            fingerprint=fingerprint,
        )
        item = eumetsat_plan.site_item(
            collection_id,
            product_id,
            properties,
            product._geometry,
            (product.sensing_start, product.sensing_end),
            copy,
            browse_url=token.urls.get("datastore", "browse product", vars=ids),
            bucket=self.sink.store.bucket,
            site=self.settings.require("site"),
            item_fingerprint=fingerprint,
            now=now,
        )
        self.sink.register(eumetsat_plan.site_collection(collection_id, source.url), item)


def _check_site_collections(sources: list[EumetsatSource]) -> None:
    """ConfigError when two configured collections would share a site collection id."""
    seen: dict[str, str] = {}
    for source in sources:
        for collection_id in dict.fromkeys(source.collections):
            site_id = eumetsat_plan.site_collection_id(collection_id)
            other = seen.setdefault(site_id, collection_id)
            if other != collection_id:
                raise ConfigError(
                    f"EUMETSAT collections {other} and {collection_id} would both be the "
                    f"site's collection {site_id}; configure one of them"
                )


def search_products(
    datastore: Any, collection_id: str, query: dict[str, Any], max_pages: int
) -> Iterator[tuple[str, Any]]:
    """(product id, eumdac Product or the Exception that made its record unusable) of every
    product the search finds, page by page: each record is made a Product on its own (a
    malformed one fails alone); the search ends at a page that brings no new product, and fails
    (SourceError) past `max_pages` pages or MAX_SEARCH_RESULTS results.

    The pages are loaded with eumdac's `SearchResults` (`_get_request_params`, `_load_page`:
    the query, token and endpoint as eumdac builds them); its own iterator is not used, as it
    restarts a search by recursion and skips repeated records without end.
    tests/test_eumetsat_hostile.py pins these two methods."""
    token = datastore.token
    results = _renewing(token, lambda: datastore.get_collection(collection_id).search(**query))
    params = results._get_request_params()
    per_page = int(params["c"])
    seen: set[str] = set()
    for page in itertools.count():
        if page >= max_pages:
            raise SourceError(
                f"search of {collection_id}: more than {max_pages} pages (INGEST_SEARCH_MAX_PAGES)"
            )
        params["si"] = page * per_page
        if params["si"] >= MAX_SEARCH_RESULTS:
            raise SourceError(
                f"search of {collection_id}: more than {MAX_SEARCH_RESULTS} products in the "
                "window, the most the Data Store pages through; narrow the source's datetime "
                "or set maxItems"
            )
        answer = _renewing(token, lambda: results._load_page(params))
        features = answer.get("features") if isinstance(answer, dict) else None
        if not isinstance(features, list):
            raise SourceError(f"search of {collection_id}: a page without a features list")
        fresh = 0
        for number, feature in enumerate(features):
            product_id = feature.get("id") if isinstance(feature, dict) else None
            if not isinstance(product_id, str):
                label = f"page {page + 1} record {number + 1}"
                yield label, SourceError(f"search record {label} has no string id")
                continue
            if product_id in seen:
                continue
            seen.add(product_id)
            fresh += 1
            try:
                product = datastore.get_product_from_search_feature(collection_id, feature)
            except Exception as error:  # noqa: BLE001 - one malformed record fails alone
                yield (
                    product_id,
                    SourceError(f"malformed search record: {type(error).__name__}: {error}"),
                )
            else:
                yield product_id, product
        total = answer.get("totalResults")
        last = (
            isinstance(total, int)
            and not isinstance(total, bool)
            and params["si"] + per_page >= total
        )
        if fresh == 0 or len(features) < per_page or last:
            return


def _renewing(token: Any, request: Callable[[], Any]) -> Any:
    """`request()`; after a 401 (the Data Store ended the token early) the token is renewed
    and `request()` tried once more."""
    import eumdac

    try:
        return request()
    except eumdac.errors.EumdacError as error:
        if (error.extra_info or {}).get("status") != 401 or not hasattr(token, "renew"):
            raise
    token.renew()
    return request()
