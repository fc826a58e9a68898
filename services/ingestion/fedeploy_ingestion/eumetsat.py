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
private, link-local or cluster address), proxies from the environment are not used, and each
request times out after INGEST_HTTP_TIMEOUT_SECONDS. The consumer key and secret are sent only
with the token request, to the token endpoint; the bearer token only to the source's hosts.

A product's zip is downloaded by the guarded httpx client (HttpAsset: redirects followed here,
the token re-applied only between the source's hosts) and streamed into a resumable S3
multipart upload, verified against the MD5 the Data Store publishes, its size bounded by
`maxProductMiB`. Each product fails alone; a search that fails fails its collection
(`<source>:<collection>:search`) after the products already read were handled.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
from requests.adapters import HTTPAdapter

from fedeploy_ingestion import eumetsat_plan
from fedeploy_ingestion.download_safety import DownloadPolicy
from fedeploy_ingestion.errors import ConfigError, SourceError
from fedeploy_ingestion.object_store import MiB, RangeSource
from fedeploy_ingestion.product_copy import AgencyRun, ProductReport
from fedeploy_ingestion.settings import AgencySource, EumetsatSource
from fedeploy_ingestion.sharding import owns
from fedeploy_ingestion.upstream import HttpAsset

log = logging.getLogger(__name__)


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
        """Check the URL (UnsafeDownload names the refusal), then send it directly."""
        self.policy.check(str(request.url), what="EUMETSAT API request to")
        return super().send(
            request,
            stream=stream,
            timeout=timeout or self.timeout,
            verify=verify,
            cert=cert,
            proxies={},
        )


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


class BearerCredentials:
    """The token for HttpAsset: sent only to the source's own hosts (the policy's)."""

    def __init__(self, policy: DownloadPolicy, token: Any) -> None:
        self.policy = policy
        self._token = token

    def __repr__(self) -> str:  # never show the token
        return f"BearerCredentials(source={self.policy.source!r})"

    def headers_for(self, url: httpx.URL) -> dict[str, str]:
        """`Authorization: Bearer` for the source's hosts, nothing for any other."""
        if not self.policy.trusted(url):
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

    def __init__(self, asset: HttpAsset, limit: int) -> None:
        self._asset = asset
        self._limit = limit

    def open(self, offset: int) -> tuple[Iterator[bytes], int, int]:
        """The asset's chunks; SourceError before reading when it is larger than the bound."""
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
        now = now or datetime.now(UTC)
        for source in s.eumetsat_sources:
            policy = DownloadPolicy.for_source(source, self.guard)
            with guarded_eumdac(policy, s.http_timeout_seconds):
                try:
                    datastore, token = self._connect(source, policy)
                except Exception as error:  # noqa: BLE001 - one source fails alone
                    self.sink.failed(source.name, f"{source.name}:token", error)
                    continue
                for collection_id in source.collections:
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
        token = eumdac.AccessToken(
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
        credentials = BearerCredentials(policy, token)
        taken = 0
        try:
            for product in datastore.get_collection(collection_id).search(**query):
                name = f"{collection_id}/{product}"
                self.report.found += 1
                taken += 1
                if not owns(name, self.settings.shard_index, self.settings.shard_count):
                    self.report.other_shards += 1
                else:
                    try:
                        self._product(source, token, credentials, collection_id, product, now)
                    except Exception as error:  # noqa: BLE001 - one product fails alone
                        self.sink.failed(source.name, name, error)
                if source.max_items is not None and taken >= source.max_items:
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
                HttpAsset(href, self.http, credentials),  # type: ignore[arg-type]
                source.max_product_mib * MiB,
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
