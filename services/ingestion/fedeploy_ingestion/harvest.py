"""The hub's harvest: each member site's catalog, incrementally, into the hub's catalog.

Incremental where the site can filter on `updated` (a pgstac queryable; see
docs/ingestion.md): items updated since the last harvest, less an overlap, are read in
`updated` order and upserted, so harvesting again duplicates nothing. A site that cannot be
reached is recorded as such in its status collection and the others are harvested anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from fedeploy_ingestion import federation
from fedeploy_ingestion.asset_alternates import with_https_alternates
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.errors import IngestError
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.settings import HarvestSettings, HarvestSource
from fedeploy_ingestion.stac_documents import rfc3339

log = logging.getLogger(__name__)


class SiteUnreachable(IngestError):
    """A member site's catalog did not answer."""


@dataclass
class HarvestReport:
    """Per site: status, mode and number of items upserted; the sites that were missing."""

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
            previous = self._previous_status(source)
            try:
                count, mode, cursor = self._site(source, previous.get("cursor"))
            except IngestError as error:
                status = "unreachable" if isinstance(error, SiteUnreachable) else "failed"
                self.metrics.sites_unreachable.labels(source.name).set(1)
                log.error(
                    "site not harvested",
                    extra={"site": source.name, "status": status, "error": str(error)},
                )
                record = {
                    **previous,
                    "status": status,
                    "url": source.url,
                    "last_attempt": rfc3339(started),
                    "error": str(error),
                }
                report.sites[source.name] = {"status": status, "error": str(error)}
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
                }
                report.sites[source.name] = {"status": "ok", "mode": mode, "items": count}
                log.info(
                    "site harvested", extra={"site": source.name, "mode": mode, "items": count}
                )
            self.hub.put_collection(federation.status_collection(source.name, source.url, record))
        return report

    def _previous_status(self, source: HarvestSource) -> dict[str, Any]:
        document = self.hub.get_collection(federation.status_collection_id(source.name))
        return dict((document or {}).get("fedeploy:harvest") or {})

    def _site(self, source: HarvestSource, cursor: str | None) -> tuple[int, str, str | None]:
        site = CatalogClient(source.url, http=self.http)
        try:
            queryables = site.queryables()
        except IngestError as error:
            raise SiteUnreachable(f"site {source.name} ({source.url}): {error}") from error
        body: dict[str, Any] = {"limit": self.settings.page_size}
        incremental = "updated" in queryables
        if incremental:
            body["sortby"] = [{"field": "properties.updated", "direction": "asc"}]
            if cursor:
                since = _parse_time(cursor) - timedelta(seconds=self.settings.overlap_seconds)
                body["filter-lang"] = "cql2-json"
                body["filter"] = {
                    "op": ">=",
                    "args": [{"property": "updated"}, {"timestamp": rfc3339(since)}],
                }
        count, newest = 0, _parse_time(cursor) if cursor else None
        for page in self._pages(source, body):
            by_collection: dict[str, list[dict[str, Any]]] = {}
            for item in page:
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
                self.hub.upsert_items(collection_id, items)
                count += len(items)
        mode = ("incremental" if cursor else "initial") if incremental else "full"
        return count, mode, rfc3339(newest) if newest else cursor

    def _pages(self, source: HarvestSource, body: dict[str, Any]):
        """POST /search pages, following `next` links (POST bodies or GET hrefs)."""
        url, method, payload = f"{source.url.rstrip('/')}/search", "POST", dict(body)
        while True:
            try:
                if method == "POST":
                    answer = self.http.post(url, json=payload)
                else:
                    answer = self.http.get(url)
            except httpx.HTTPError as error:
                raise SiteUnreachable(f"site {source.name}: search failed: {error}") from error
            if answer.status_code >= 500:
                raise SiteUnreachable(f"site {source.name}: search answered {answer.status_code}")
            if answer.status_code != 200:
                raise IngestError(
                    f"site {source.name}: search answered {answer.status_code}: {answer.text[:300]}"
                )
            document = answer.json()
            features = document.get("features", [])
            if features:
                yield features
            following = next(
                (link for link in document.get("links", []) if link.get("rel") == "next"), None
            )
            if not features or following is None:
                return
            url = following["href"]
            method = following.get("method", "GET").upper()
            if method == "POST":
                extra = following.get("body") or {}
                payload = {**payload, **extra} if following.get("merge") else dict(extra)

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
            self.hub.ensure_collection(federation.hub_collection(source.url, document))
        self._hub_collections.add(collection_id)
