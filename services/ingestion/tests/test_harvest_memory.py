"""Review rere33 F1: a member's harvest stays within a bounded memory whatever its item count
(unit, loopback HTTP servers). A member serving many items the hub's catalog refuses (a null
geometry, ids of 480 astral characters, a reason echoing each id) once took the harvester past
its 512Mi limit: every refused item was kept (its name and reason) though only the first
MAX_REFUSED_NAMED and the count are used, and the paging check kept every page's item ids and
`next` link. Now a run of many pages peaks where a run of a few does."""

from __future__ import annotations

import gc
import logging
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fedeploy_ingestion import harvest, stac_client
from fedeploy_ingestion.harvest import MAX_REFUSED_NAMED, Harvester
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.settings import HarvestSettings

from services.ingestion.tests.test_harvest_hostile import as_json, landing, member
from services.ingestion.tests.test_harvest_refusals import Hub, _item

PER_PAGE = 50
# 480 astral characters: about 2 KB each in Python's memory, as in the review's repro
PAD = "\U0001d538" * 480


class RefuseAll(dict[str, str]):
    """The hub refuses every item, its reason echoing the item's id (as pgstac's does)."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return f"Missing or null `geometry` for Item ({key})"


def _refused_item(number: int) -> dict[str, Any]:
    item = _item(f"{PAD}{number:08d}", "2024-06-01T00:00:00Z")
    item["geometry"] = None
    return item


@pytest.fixture
def quiet() -> Iterator[None]:
    """The per-item log lines are not what is measured (each refused item is logged)."""
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def _harvest(pages: int) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Harvest a member of `pages` pages of PER_PAGE refused items under tracemalloc: (the
    traced peak in bytes, the site's report, its status in the hub)."""

    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/queryables"):
            return as_json({"properties": {}})  # a full harvest
        if path.startswith("/search"):
            page = int(path.split("page=")[1]) if "page=" in path else 0
            features = [_refused_item(page * PER_PAGE + n) for n in range(PER_PAGE)]
            links = (
                [{"rel": "next", "href": f"{site.url}/search?page={page + 1}", "method": "GET"}]
                if page + 1 < pages
                else []
            )
            return as_json({"type": "FeatureCollection", "features": features, "links": links})
        if path == "/collections/c":
            return as_json({"id": "c", "type": "Collection", "links": []})
        return as_json(landing(f"{site.url}/search"))

    site, hub = member(route), Hub()
    hub.refuse = RefuseAll()
    settings = HarvestSettings(
        sources=[{"name": "site-evil", "url": site.url}],
        target_url=hub.url,
        http_timeout_seconds=30,
        page_size=PER_PAGE,
    )
    try:
        harvester = Harvester(settings, Metrics())
        gc.collect()
        tracemalloc.start()
        try:
            report = harvester.run(now=datetime(2024, 6, 2, tzinfo=UTC))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return peak, dict(report.sites["site-evil"]), hub.status()
    finally:
        site.stop()
        hub.stop()


@pytest.mark.usefixtures("quiet")
def test_many_refused_items_do_not_grow_the_harvest() -> None:
    _harvest(1)  # what a first harvest sets up once (imports, caches) is not measured
    few, _, _ = _harvest(3)
    peak, site, status = _harvest(25)
    items = 25 * PER_PAGE
    assert (site["status"], site["items"], site["refused"]) == ("ok", 0, items)
    assert len(site["refused_items"]) == MAX_REFUSED_NAMED
    assert status["items_refused_last_run"] == items
    assert status["last_refused"]["count"] == items
    assert len(status["items_refused"]) == MAX_REFUSED_NAMED
    # Each refused item kept (its name and reason), its id kept again by the paging check, and
    # each page's bulk request and answer left in httpx's reference cycles: the peak grew by
    # about 12 KiB an item before (13 MiB for these 1100 more); now it does not grow.
    assert peak - few < 3 * 1024 * 1024, (few, peak)


def test_refusals_keep_the_first_named_and_count_all() -> None:
    refusals = harvest.Refusals()
    for number in range(1000):
        refusals.add(f"c/{PAD}{number}" + "x" * 2000, "r" * 5000)
    assert refusals.count == 1000
    assert len(refusals.named) == MAX_REFUSED_NAMED
    assert all(len(name) <= harvest.MAX_REFUSED_NAME_CHARS for name in refusals.named)
    assert all(
        len(reason) <= harvest.MAX_REFUSED_REASON_CHARS for reason in refusals.named.values()
    )


def test_paging_keeps_a_digest_of_each_page_not_its_ids() -> None:
    paging = stac_client.Paging("site x", 10_000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for page in range(200):
            features = [{"id": f"{PAD}{page:04d}{n:04d}"} for n in range(PER_PAGE)]
            link = {"rel": "next", "href": f"http://m/search?page={page}", "body": {"pad": PAD}}
            paging.page({"features": features, "links": [link]})
            del features, link
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 10,000 ids of about 2 KB were kept before (20 MiB); 200 digests now
    assert kept < 256 * 1024, kept
    # and a repeated page or link is still caught
    with pytest.raises(stac_client.BrokenPaging, match="repeats the items of page 1"):
        paging.page({"features": [{"id": f"{PAD}{0:04d}{n:04d}"} for n in range(PER_PAGE)]})
    with pytest.raises(stac_client.BrokenPaging, match="repeats the next link"):
        link = {"rel": "next", "href": "http://m/search?page=7", "body": {"pad": PAD}}
        paging.page({"features": [{"id": "new"}], "links": [link]})


def test_the_hub_collections_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = HarvestSettings(
        sources=[{"name": "site-evil", "url": "http://127.0.0.1:9"}],
        target_url="http://127.0.0.1:9",
    )
    harvester = Harvester(settings, Metrics())
    asked: list[str] = []

    def held(collection_id: str) -> dict[str, Any]:
        asked.append(collection_id)
        return {"id": collection_id}

    monkeypatch.setattr(harvester.hub, "get_collection", held)
    source = settings.sources[0]
    for number in range(harvest.MAX_KNOWN_COLLECTIONS + 500):
        harvester._ensure_hub_collection(harvester.hub, source, f"{PAD}{number}")
    assert len(harvester._hub_collections) == harvest.MAX_KNOWN_COLLECTIONS
    harvester._ensure_hub_collection(harvester.hub, source, f"{PAD}0")  # remembered: not asked
    assert len(asked) == harvest.MAX_KNOWN_COLLECTIONS + 500
