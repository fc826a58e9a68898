"""The hub's harvest: each member site's catalog, incrementally, into the hub's catalog.

Incremental where the site can filter on `updated` (a pgstac queryable; see
docs/ingestion.md): items updated since the last harvest, less an overlap, are read in
`updated` order and upserted, so harvesting again duplicates nothing.

Each site is harvested inside a boundary that catches any exception: a site that cannot be
reached is `unreachable`, any other error (an HTML page answered with 200, a broken item, a
paginator whose `next` links repeat) makes it `failed`; either way the reason is recorded in
its status collection and the other sites are harvested anyway (the CLI then exits 3).

An item the hub's catalog refuses (stac-fastapi-pgstac's 200 bulk answer listing it in
`errors`, ItemsRefused: a null geometry, an extension's schema) fails alone: a member's catalog is
another site's data, and one invalid item must not keep the member out of the federation. The
others are harvested, the site stays `ok`, and the refused ones are counted (`refused` in the
report, `items_refused_last_run` in the status collection) and named with the catalog's reason
(the first MAX_REFUSED_NAMED in the report and the status, each in the log). The cursor moves
past them as past any item read: a member that corrects one changes its `updated`, and the
next harvest reads it again. The status keeps the last refusal (`last_refused`: its run's
time and count, and `items_refused`) through later clean runs, until a run refuses anew or an
operator removes both keys; each successful run reports it (`last_refused`) for the push.

Pages are read with pystac-client (`ItemSearch.pages_as_dicts`), which does what the
incremental harvest needs: a POST search with a CQL2-JSON `filter` on `updated` and a
`sortby`, `next` links followed with their bodies. It does not notice `next` links that repeat,
so each page's `next` link is remembered and a repeat ends the site's harvest with an error.
Every request times out and is retried a bounded number of times (stac_client).

A member's answers are untrusted (a member site can be compromised). Its landing page and its
`next` links name the URLs the harvester asks next, with their method, body and headers: every
request to a member, and every redirect it answers, must stay on the member's own origin
(scheme, host and port of its configured URL) and be a GET or a POST (`MemberOrigin`), or the
site fails; otherwise a member could make the harvester POST or DELETE on the hub's in-cluster
catalog, which has no authentication. A page larger than MAX_PAGE_BYTES (decoded) fails the site
before it fills the harvester's memory, and a reason recorded in the public status collection is
cut to MAX_REASON_CHARS.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import httpx

from fedeploy_ingestion import federation, stac_client
from fedeploy_ingestion.asset_alternates import with_https_alternates
from fedeploy_ingestion.catalog import CatalogClient, ItemsRefused
from fedeploy_ingestion.errors import IngestError
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.settings import HarvestSettings, HarvestSource
from fedeploy_ingestion.stac_documents import rfc3339
from fedeploy_ingestion.stac_ids import MAX_ID_LENGTH

log = logging.getLogger(__name__)


class SiteUnreachable(IngestError):
    """A member site's catalog did not answer."""


class HostileAnswer(IngestError):
    """A member site asked for a request off its own origin, or answered an oversized page."""


# A search page, decoded, at most (a page of 1000 items with detailed footprints fits easily).
MAX_PAGE_BYTES = 32 * 1024 * 1024
# A site's failure reason, at most, as recorded in the hub's (public) status collection.
MAX_REASON_CHARS = 1000
# Refused items named (with the catalog's reason) in a site's report and status, at most; all
# are counted, and each is logged. Only these are kept in memory, not every refused item: a
# member serving 100,000 items the hub refuses (long ids, a reason echoing each) took the
# harvester past its memory limit when each was kept (review rere33 F1).
MAX_REFUSED_NAMED = 20
# A refused item's name (`<collection>/<item id>`, each id at most stac_ids.MAX_ID_LENGTH) and
# the catalog's reason for it (catalog.py cuts it at 500), at most, as kept and recorded.
MAX_REFUSED_NAME_CHARS = 2 * MAX_ID_LENGTH + 1
MAX_REFUSED_REASON_CHARS = 500
# Hub collections known to exist, remembered in a run at most (past it, a collection is asked
# of the hub again when a page names it): a member naming a new collection for each item must
# not grow the harvester's memory with its item count.
MAX_KNOWN_COLLECTIONS = 1000
_METHODS = frozenset({"GET", "POST"})


def _origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute URL as requests prepares and connects to it."""
    import requests
    from urllib3.util import parse_url

    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    parts = parse_url(str(prepared.url))
    scheme = (parts.scheme or "").lower()
    host = (parts.host or "").lower().rstrip(".")
    return scheme, host, parts.port or {"http": 80, "https": 443}.get(scheme, 0)


class MemberOrigin:
    """Keeps pystac-client's requests to one member on that member's origin.

    `check` is the StacApiIO request modifier (every request, `next` links included); `hook` a
    requests response hook (every answer, redirects included, before a redirect is followed or
    the body read). Both raise HostileAnswer, which pystac-client wraps in an APIError; the
    first refusal is kept in `refusal` so the site's reason names it."""

    def __init__(self, site: str, url: str, max_bytes: int = MAX_PAGE_BYTES) -> None:
        self.site, self.url, self.max_bytes = site, url, max_bytes
        self.allowed = _origin(url)
        self.refusal: str | None = None

    def _refuse(self, reason: str) -> HostileAnswer:
        error = HostileAnswer(f"site {self.site}: {reason}")
        self.refusal = self.refusal or str(error)
        return error

    def _check_url(self, url: str, what: str) -> None:
        try:
            found = _origin(url)
        except Exception as error:  # noqa: BLE001 - any unparsable URL is refused
            raise self._refuse(f"{what} {url[:200]!r} is not a URL: {error}") from None
        if found != self.allowed:
            raise self._refuse(
                f"{what} {url[:200]!r} leaves the site's origin "
                f"{self.allowed[0]}://{self.allowed[1]}:{self.allowed[2]}; refused"
            )

    def check(self, request: Any) -> Any:
        """The request unchanged when its method and URL are allowed; HostileAnswer otherwise."""
        method = str(request.method or "GET").upper()
        if method not in _METHODS:
            raise self._refuse(f"a {method[:20]!r} request to {str(request.url)[:200]!r} refused")
        self._check_url(str(request.url), "request to")
        return request

    def hook(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        """Refuses a redirect off the origin and reads the body at most `max_bytes`."""
        location = response.headers.get("location")
        if response.is_redirect and location:
            self._check_url(urljoin(response.url, location), "redirect to")
            return response
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response.close()
            raise self._refuse(f"an answer of {declared} bytes is over {self.max_bytes}")
        if kwargs.get("stream"):
            return response
        body = bytearray()
        for chunk in response.raw.stream(1024 * 1024, decode_content=True):
            body += chunk
            if len(body) > self.max_bytes:
                response.close()
                raise self._refuse(f"an answer is over {self.max_bytes} bytes")
        # requests reads the body only when it has not been read: hand it over read.
        response._content = bytes(body)
        response._content_consumed = True
        return response


@dataclass
class Refusals:
    """The items of one site's harvest the hub's catalog refused: all counted, the first
    MAX_REFUSED_NAMED kept by name (`<collection>/<item id>` -> the catalog's reason, each cut
    to its bound). What it keeps does not grow with the number refused."""

    count: int = 0
    named: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, reason: str) -> None:
        """Count one refused item; name it while fewer than MAX_REFUSED_NAMED are."""
        self.count += 1
        if len(self.named) < MAX_REFUSED_NAMED:
            self.named[name[:MAX_REFUSED_NAME_CHARS]] = reason[:MAX_REFUSED_REASON_CHARS]


@dataclass
class HarvestReport:
    """Per site: status, mode and number of items upserted (and, where the hub's catalog
    refused some, `refused`: how many, and `refused_items`: the first MAX_REFUSED_NAMED, item
    id -> the catalog's reason; where this run or an earlier one did, `last_refused`: that
    run's `time` and `count`); the sites that were missing."""

    sites: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        """Sites not harvested in this run."""
        return sorted(n for n, s in self.sites.items() if s["status"] != "ok")


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


class Harvester:
    """Harvests every configured site into the hub."""

    def __init__(
        self, settings: HarvestSettings, metrics: Metrics, http: httpx.Client | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.http = http or httpx.Client(timeout=settings.http_timeout_seconds)
        self.hub = CatalogClient(settings.target_url, http=self.http)
        self._hub_collections: set[str] = set()

    def run(self, now: datetime | None = None) -> HarvestReport:
        """Harvest each site; a failing site is reported and the next one harvested."""
        report = HarvestReport()
        for source in self.settings.sources:
            started = now or datetime.now(UTC)
            previous: dict[str, Any] = {}
            try:
                previous = self._previous_status(source)
                count, mode, cursor, refused = self._site(source, previous.get("cursor"))
            except Exception as error:  # noqa: BLE001 - one site fails alone, whatever it sends
                status = "unreachable" if isinstance(error, SiteUnreachable) else "failed"
                reason = (
                    str(error)
                    if isinstance(error, IngestError)
                    else f"site {source.name} ({source.url}): {type(error).__name__}: {error}"
                )
                if len(reason) > MAX_REASON_CHARS:  # a member's error page could be megabytes
                    reason = reason[:MAX_REASON_CHARS] + "... (cut)"
                self.metrics.sites_unreachable.labels(source.name).set(1)
                log.error(
                    "site not harvested",
                    extra={"site": source.name, "status": status, "error": reason},
                )
                record = {
                    **previous,
                    "status": status,
                    "url": source.url,
                    "last_attempt": rfc3339(started),
                    "error": reason,
                }
                report.sites[source.name] = {"status": status, "error": reason}
            else:
                self.metrics.sites_unreachable.labels(source.name).set(0)
                self.metrics.items_written.labels("harvest").inc(count)
                record = {
                    "status": "ok",
                    "url": source.url,
                    "last_attempt": rfc3339(started),
                    "last_success": rfc3339(started),
                    "cursor": cursor,
                    "mode": mode,
                    "items_last_run": count,
                    "items_refused_last_run": refused.count,
                }
                report.sites[source.name] = {"status": "ok", "mode": mode, "items": count}
                if refused.count:
                    named = dict(refused.named)
                    record["items_refused"] = named
                    record["last_refused"] = {"time": rfc3339(started), "count": refused.count}
                    report.sites[source.name].update(refused=refused.count, refused_items=named)
                elif isinstance(previous.get("last_refused"), dict):
                    # The cursor moved past them: a clean run has not harvested them, so the
                    # last refusal's names are kept (CatalogHarvestItemsRefused reads its time)
                    # until a run refuses anew or an operator removes them.
                    record["last_refused"] = previous["last_refused"]
                    if isinstance(previous.get("items_refused"), dict):
                        record["items_refused"] = previous["items_refused"]
                if "last_refused" in record:
                    report.sites[source.name]["last_refused"] = record["last_refused"]
                log.info(
                    "site harvested",
                    extra={
                        "site": source.name,
                        "mode": mode,
                        "items": count,
                        "refused": refused.count,
                    },
                )
            try:
                self.hub.put_collection(
                    federation.status_collection(source.name, source.url, record)
                )
            except Exception as error:  # noqa: BLE001 - the report still names the site
                log.error(
                    "site status not recorded in the hub",
                    extra={"site": source.name, "error": f"{type(error).__name__}: {error}"},
                )
                if report.sites[source.name]["status"] == "ok":
                    report.sites[source.name] = {
                        "status": "failed",
                        "error": f"status not recorded in the hub: {error}",
                    }
        return report

    def _previous_status(self, source: HarvestSource) -> dict[str, Any]:
        document = self.hub.get_collection(federation.status_collection_id(source.name))
        return dict((document or {}).get("fedeploy:harvest") or {})

    def _site(
        self, source: HarvestSource, cursor: str | None
    ) -> tuple[int, str, str | None, Refusals]:
        """Harvest one site: (items upserted, mode, new cursor, the items the hub's catalog
        refused: counted, the first named). A refused item fails alone (it is logged here); any
        other error fails the site. What it keeps between pages does not grow with the number
        of items (a page's, at most MAX_PAGE_BYTES, is let go before the next is read)."""
        site = CatalogClient(source.url, http=self.http, max_bytes=MAX_PAGE_BYTES)
        try:
            queryables = site.queryables()
        except IngestError as error:
            raise SiteUnreachable(f"site {source.name} ({source.url}): {error}") from error
        search: dict[str, Any] = {"limit": self.settings.page_size}
        incremental = "updated" in queryables
        if incremental:
            search["sortby"] = [{"field": "properties.updated", "direction": "asc"}]
            if cursor:
                since = _parse_time(cursor) - timedelta(seconds=self.settings.overlap_seconds)
                search["filter_lang"] = "cql2-json"
                search["filter"] = {
                    "op": ">=",
                    "args": [{"property": "updated"}, {"timestamp": rfc3339(since)}],
                }
        count, newest = 0, _parse_time(cursor) if cursor else None
        refused = Refusals()
        for page in self._pages(source, search):
            by_collection: dict[str, list[dict[str, Any]]] = {}
            for item in page:
                if str(item.get("collection", "")).startswith(federation.SITE_COLLECTION_PREFIX):
                    raise HostileAnswer(  # the hub's own status collections hold no items
                        f"site {source.name}: item {str(item.get('id'))[:100]!r} is in "
                        f"collection {str(item['collection'])[:100]!r}; the prefix "
                        f"{federation.SITE_COLLECTION_PREFIX!r} is the hub's"
                    )
                # s3:// assets gain an https alternate at the home site's asset endpoint.
                hub_item = with_https_alternates(
                    federation.hub_item(source.name, source.url, item),
                    source.url,
                    item["collection"],
                    item["id"],
                )
                by_collection.setdefault(item["collection"], []).append(hub_item)
                updated = (item.get("properties") or {}).get("updated")
                if updated:
                    moment = _parse_time(updated)
                    newest = moment if newest is None or moment > newest else newest
            for collection_id, items in by_collection.items():
                self._ensure_hub_collection(site, source, collection_id)
                try:
                    self.hub.upsert_items(collection_id, items)
                except ItemsRefused as refusal:  # the others of the request are stored
                    for item_id, message in refusal.refused.items():
                        # The report and the (public) status name the catalog's message only,
                        # not the hub catalog's in-cluster URL that the log names.
                        # By collection too: one id may be refused in two collections.
                        refused.add(f"{collection_id}/{item_id}", message)
                        log.error(
                            "item not harvested: refused by the hub's catalog",
                            extra={
                                "site": source.name,
                                "collection": collection_id,
                                "item": item_id,
                                "reason": refusal.reason(item_id),
                            },
                        )
                    count += len(items) - len(refusal.refused)
                else:
                    count += len(items)
        mode = ("incremental" if cursor else "initial") if incremental else "full"
        return count, mode, rfc3339(newest) if newest else cursor, refused

    def _pages(self, source: HarvestSource, search: dict[str, Any]) -> Iterator[list[Any]]:
        """The features of each search page (POST /search, then its `next` links).

        A `next` link or a page of items seen before, or more than `HARVEST_SEARCH_MAX_PAGES`
        pages, ends the harvest of the site with BrokenPaging (stac_client.Paging).
        """
        from pystac_client.exceptions import APIError
        from pystac_client.warnings import DoesNotConformTo

        origin = MemberOrigin(source.name, source.url)
        stac_io = stac_client.api_io(  # MemberOrigin.hook reads and bounds every answer
            None, self.settings.http_timeout_seconds, request_modifier=origin.check, bounded=False
        )
        stac_io.session.hooks["response"].append(origin.hook)
        paging = stac_client.Paging(f"site {source.name}", self.settings.search_max_pages)
        try:
            client = stac_client.open_client(source.url, stac_io)
            with warnings.catch_warnings():
                # pgstac sorts without declaring the conformance class; the sortby is sent anyway
                warnings.simplefilter("ignore", DoesNotConformTo)
                pages = client.search(method="POST", **search).pages_as_dicts()
            for page in pages:
                yield paging.page(page)
        except APIError as error:  # transport errors and error answers, after the retries
            if origin.refusal is not None:
                raise HostileAnswer(origin.refusal) from error
            status = getattr(error, "status_code", None)
            if status is None or status >= 500:
                raise SiteUnreachable(f"site {source.name}: search failed: {error}") from error
            raise IngestError(f"site {source.name}: search answered {status}: {error}") from error

    def _ensure_hub_collection(
        self, site: CatalogClient, source: HarvestSource, collection_id: str
    ) -> None:
        if collection_id in self._hub_collections:
            return
        if self.hub.get_collection(collection_id) is None:
            document = site.get_collection(collection_id)
            if document is None:
                raise IngestError(
                    f"site {source.name} has items in collection "
                    f"{collection_id!r} but no such collection"
                )
            if document.get("id") != collection_id:  # the member must not name hub collections
                raise HostileAnswer(
                    f"site {source.name}: asked for collection {collection_id!r}, answered "
                    f"collection {str(document.get('id'))[:100]!r}"
                )
            self.hub.ensure_collection(federation.hub_collection(source.url, document))
        if len(self._hub_collections) < MAX_KNOWN_COLLECTIONS:
            self._hub_collections.add(collection_id)
