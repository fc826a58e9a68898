"""ESA's and other catalogues through EODAG (the `eodag` extra): search with EODAG, copy with
the Sentinel path.

EODAG (4.10) knows many providers (`cop_dataspace`, `dedl`, `dedt_lumi`, `creodias`, ...) and
turns each one's search into EOProducts whatever its API; a STAC API it does not know is added
as a provider (`url`). Each product is turned into the STAC item dict it describes
(`EOProduct.as_dict()`) and handed to the Sentinel run's per-item path (sentinel.SentinelRun):
the same chosen assets, download safety (hosts: the provider's search host and
`downloadHosts`; Copernicus's for `cop_dataspace`), fingerprint, resumable verified copy and
registration. EODAG's own download (to a local file) is not used.

EODAG is offline at start (`EODAG_STRICT_COLLECTIONS=true`: no fetch of providers' collection
lists) and writes its settings into a scratch home. Its searches (the search plugins' requests
sessions, `requests.get` and the `urlopen` of providers whose queries must stay unquoted) are
guarded while a source runs (`guarded_searches`): every request's URL is checked against the
source's policy (hosts, scheme, addresses), no redirect is followed, no proxy from the
environment is used, a timeout is set, and each answer is read decoded step by step, at most
MAX_PAGE_BYTES (docs/ingestion.md).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fedeploy_ingestion.download_safety import (
    DownloadPolicy,
    UnsafeDownload,
    content_encodings_of,
    decoded_body,
)
from fedeploy_ingestion.errors import ConfigError, SourceError
from fedeploy_ingestion.product_copy import run_share
from fedeploy_ingestion.sentinel import SentinelReport, SentinelRun, _item_name
from fedeploy_ingestion.settings import AgencySource, EodagSource, Source
from fedeploy_ingestion.sharding import owns
from fedeploy_ingestion.stac_client import MAX_PAGE_BYTES, bounded_adapter
from fedeploy_ingestion.upstream import Credentials

if TYPE_CHECKING:
    from requests import PreparedRequest, Response

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProviderSource:
    """An EODAG source as the Sentinel path reads a source: its search host as `url`."""

    name: str
    url: str
    assets: list[str]
    download_hosts: list[str]
    private_hosts: list[str]
    token_url: str | None
    client_id: str


def gateway() -> Any:
    """An EODataAccessGateway that fetches nothing at start; ConfigError without the extra."""
    os.environ.setdefault("EODAG_STRICT_COLLECTIONS", "true")
    try:
        from eodag import EODataAccessGateway
    except ImportError:
        raise ConfigError(
            "INGEST_EODAG_SOURCES is set but EODAG is not installed: install "
            "fedeploy-ingestion[eodag] (the default image does not carry it)"
        ) from None
    # EODAG writes its settings under $HOME/.config/eodag; the pod's root file system is
    # read-only: a scratch home while it starts.
    home = os.environ.get("HOME")
    os.environ["HOME"] = tempfile.mkdtemp(prefix="eodag-")
    try:
        return EODataAccessGateway()
    finally:
        if home is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = home


# EODAG's search plugin modules whose `requests`, `HTTPAdapter` and `urlopen` are guarded.
SEARCH_MODULES = (
    "eodag.plugins.search.qssearch",
    "eodag.plugins.search.build_search_result",
    "eodag.plugins.search.cop_marine",
    "eodag.plugins.search.cop_ghsl",
)


def _search_adapter(policy: DownloadPolicy, timeout: float, max_retries: Any = 0) -> Any:
    """A requests adapter that checks each URL against `policy`, refuses a redirect, and reads
    the answer decoded step by step, at most MAX_PAGE_BYTES (stac_client.bounded_adapter);
    a request without a timeout gets `timeout` (seconds)."""
    from requests.adapters import HTTPAdapter

    default_timeout = timeout

    class SearchAdapter(HTTPAdapter):
        def __init__(self) -> None:
            super().__init__()
            self.bounded = bounded_adapter(max_retries, MAX_PAGE_BYTES)

        def send(
            self,
            request: PreparedRequest,
            stream: bool = False,
            timeout: float | tuple[float | None, float | None] | None = None,
            verify: bool | str = True,
            cert: str | tuple[str, str] | None = None,
            proxies: dict[str, str] | None = None,
        ) -> Response:
            policy.check(str(request.url), what="EODAG search request to")
            # No proxy, whatever the environment says: the policy checked this very host.
            response = self.bounded.send(
                request,
                stream=stream,
                timeout=timeout or default_timeout,
                verify=verify,
                cert=cert,
                proxies={},
            )
            if response.is_redirect:
                raise UnsafeDownload(
                    f"EODAG search request to {str(request.url).split('?')[0]!r} answered a "
                    f"redirect ({response.status_code}): searches follow none"
                )
            return response

        def close(self) -> None:
            self.bounded.close()
            super().close()

    return SearchAdapter()


class _Page:
    """A search answer read whole (bounded) for requests' `HTTPAdapter.build_response`."""

    def __init__(self, answer: Any, body: bytes) -> None:
        import io

        self.status, self.reason, self.headers = answer.status, answer.reason, answer.headers
        self._body = io.BytesIO(body)

    def read(self, size: int = -1, **_: Any) -> bytes:
        return self._body.read(size)

    def close(self) -> None:
        pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, *args: Any) -> None:
        raise UnsafeDownload(
            f"EODAG search request to {req.full_url.split('?')[0]!r} answered a redirect "
            f"({code}): searches follow none"
        )


class _GuardedRequests:
    """The `requests` module as EODAG's search plugins see it while guarded: a Session has
    the search adapter on http:// and https://, no redirects and no proxy from the environment;
    `get`, `post` and `request` go through such a session."""

    def __init__(self, policy: DownloadPolicy, timeout: float) -> None:
        import requests

        self._requests, self._policy, self._timeout = requests, policy, timeout

    def __getattr__(self, name: str) -> Any:
        return getattr(self._requests, name)

    def Session(self) -> Any:  # noqa: N802 - requests' name
        session = self._requests.Session()
        session.max_redirects = 0
        session.trust_env = False
        adapter = _search_adapter(self._policy, self._timeout)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        with self.Session() as session:
            return session.request(method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)


@contextlib.contextmanager
def guarded_searches(policy: DownloadPolicy, timeout: float) -> Iterator[None]:
    """While inside: every request EODAG's search plugins (SEARCH_MODULES) make is checked
    against `policy`, follows no redirect, has `timeout`, and is read decoded step by step, at
    most MAX_PAGE_BYTES (UnsafeDownload, UnsafeBody). Put back as it was on leaving."""
    import importlib

    def urlopen(request: Any, timeout: float | None = None, context: Any = None) -> Any:
        url = request.full_url if hasattr(request, "full_url") else str(request)
        policy.check(url, what="EODAG search request to")
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=context),
            _NoRedirect(),
        )
        answer = opener.open(request, timeout=timeout or default_timeout)
        with answer:
            codings = content_encodings_of(answer.headers.get("Content-Encoding", ""))
            raw = iter(lambda: answer.read(64 * 1024), b"")
            body = b"".join(decoded_body(raw, codings, MAX_PAGE_BYTES, url.split("?")[0]))
        del answer.headers["Content-Encoding"]
        return _Page(answer, body)

    default_timeout = timeout
    patched: list[tuple[Any, str, Any]] = []
    replacements = {
        "requests": _GuardedRequests(policy, timeout),
        "HTTPAdapter": lambda max_retries=0, **_: _search_adapter(policy, timeout, max_retries),
        "urlopen": urlopen,
    }
    try:
        for name in SEARCH_MODULES:
            module = importlib.import_module(name)
            for attribute, replacement in replacements.items():
                if hasattr(module, attribute):
                    patched.append((module, attribute, getattr(module, attribute)))
                    setattr(module, attribute, replacement)
        yield
    finally:
        for module, attribute, original in reversed(patched):
            setattr(module, attribute, original)


class EodagRun(SentinelRun):
    """One pass over INGEST_EODAG_SOURCES, item by item through the Sentinel path."""

    def _guarded_sources(self) -> Sequence[Source | AgencySource]:
        """The EODAG sources' `privateHosts`, not the Sentinel sources'."""
        return self.settings.eodag_sources

    def run(self, now: datetime | None = None) -> SentinelReport:
        """Process every EODAG source; failures are reported, not raised."""
        now = now or datetime.now(UTC)
        started = time.monotonic() if self._started is None else self._started
        dag = gateway()
        for index, source in enumerate(self.settings.eodag_sources):
            # Its items' copies end at its share (SentinelRun._asset); no item starts after it.
            self._budget = run_share(self.settings, started, "eodag", index, source.name)
            try:
                self._eodag_source(dag, source, now)
            except Exception as error:  # noqa: BLE001 - one source fails alone
                self._failed(source, f"{source.name}:search", error, "source failed")  # type: ignore[arg-type]
            finally:
                self._budget = None
        return self.report

    def _eodag_source(self, dag: Any, source: EodagSource, now: datetime) -> None:
        if source.url:  # EODAG's StacSearch posts to the API's /search
            search = source.url.rstrip("/")
            search = search if search.endswith("/search") else search + "/search"
            dag.add_provider(source.provider, url=search, priority=0)
        try:
            endpoint = str(dag.providers[source.provider].config.search.api_endpoint)
        except (KeyError, AttributeError):
            raise SourceError(
                f"EODAG has no provider {source.provider!r} with a search endpoint; give its "
                "STAC API as `url`"
            ) from None
        as_sentinel = ProviderSource(
            source.name,
            endpoint,
            list(source.assets),
            list(source.download_hosts),
            list(source.private_hosts),
            source.token_url,
            source.client_id,
        )
        s = self.settings
        credentials = Credentials(
            as_sentinel,  # type: ignore[arg-type]
            s.eodag_username.get_secret_value() if s.eodag_username else None,
            s.eodag_password.get_secret_value() if s.eodag_password else None,
            self.http,
            self.guard,
        )
        policy = DownloadPolicy.for_source(as_sentinel, self.guard)
        policy.check(endpoint, what="search endpoint")
        found = self.report.found
        # The items' copies use httpx. Its items are registered in batches as the Sentinel
        # ones are (_register), and those waiting when its items end, or a stop or a failed
        # search cuts them, then.
        with guarded_searches(policy, s.http_timeout_seconds), self._registering():
            for item in self._items(dag, source, now):
                if self._spent(as_sentinel, self.report.found - found):  # type: ignore[arg-type]
                    break
                self.report.found += 1
                name = _item_name(item)
                try:
                    if not owns(name, s.shard_index, s.shard_count):
                        self.report.other_shards += 1
                        continue
                    self._item(as_sentinel, item, credentials, now)  # type: ignore[arg-type]
                except Exception as error:  # noqa: BLE001 - one item fails alone
                    self._failed(as_sentinel, name, error, "item failed; the next run retries it")  # type: ignore[arg-type]

    def _items(self, dag: Any, source: EodagSource, now: datetime) -> Iterator[dict[str, Any]]:
        """The products of each collection as STAC item dicts, page by page, at most
        `maxItems` in all."""
        start, _, end = (source.search_datetime(now) or "/").partition("/")
        left = source.max_items
        for collection in source.collections:
            first = dag.search(
                collection=collection,
                provider=source.provider,
                geom=list(source.bbox) if source.bbox else None,
                start=None if start in ("", "..") else start,
                end=None if end in ("", "..") else end,
                limit=100,
                count=False,
                raise_errors=True,  # a failed search fails the source, never reads as empty
            )
            for page in itertools.chain([first], first.next_page(update=False)):
                for product in page:
                    item = product.as_dict()
                    item["collection"] = item.get("collection") or collection
                    yield item
                    if left is not None:
                        left -= 1
                        if left <= 0:
                            return
