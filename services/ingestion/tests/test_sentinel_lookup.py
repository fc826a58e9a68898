"""Whether a Sentinel run's items are registered is asked of the site's catalog once per
search page (one search by ids), not once per item: each item cost a GET (about 15 ms) on the
copy's path, and an hourly run that re-searches a rolling day finds mostly registered items."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fedeploy_ingestion import catalog as catalog_module
from fedeploy_ingestion import sentinel, sentinel_plan
from fedeploy_ingestion.catalog import (
    MAX_IDS_PER_SEARCH,
    MAX_SEARCH_ANSWER_BYTES,
    CatalogClient,
    SearchRefused,
)
from fedeploy_ingestion.errors import CatalogError
from fedeploy_ingestion.sentinel import SentinelRun
from fedeploy_ingestion.sharding import owns

from services.ingestion.tests.test_sentinel_run import RecordingCatalog, copying_run


class LookupCatalog(RecordingCatalog):
    """RecordingCatalog with item search (POST /search: `collections`, `ids`, `limit`, the
    fields extension), counting every request. `search_status`: what a search answers
    instead (a refusal); `omit`: item ids a search leaves out while saying it matched them
    (a short page); `stranger`: an item id a search answers that it was not asked for."""

    def __init__(
        self,
        search_status: int | None = None,
        omit: tuple[str, ...] = (),
        stranger: str | None = None,
    ) -> None:
        super().__init__()
        self.requests: list[tuple[str, str]] = []
        self.searched: list[list[str]] = []
        self.search_status, self.omit, self.stranger = search_status, omit, stranger

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if request.method == "POST" and request.url.path == "/search":
            query = json.loads(request.content)
            self.searched.append(list(query["ids"]))
            if self.search_status is not None:
                return httpx.Response(self.search_status, json={"code": "NotFound"})
            ids = [i for i in query["ids"] if i in self.stored]
            matched = len(ids)
            ids = [i for i in ids if i not in self.omit]
            if self.stranger is not None:
                ids.append(self.stranger)
            wanted = [f.split(".", 1)[1] for f in query["fields"]["include"] if "." in f]
            features = [
                {
                    "id": i,
                    "collection": query["collections"][0],
                    "properties": {
                        k: v
                        for k, v in (self.stored.get(i, {}).get("properties") or {}).items()
                        if k in wanted
                    },
                }
                for i in ids
            ]
            return httpx.Response(200, json={"features": features, "numberMatched": matched})
        return super()._answer(request)

    def gets(self) -> int:
        return sum(1 for method, _ in self.requests if method == "GET")

    def searches(self) -> int:
        return sum(1 for request in self.requests if request == ("POST", "/search"))


def paged(size: int):
    """A search whose pages hold `size` items each, passed through the run's paging as
    upstream.search passes them (its page checks, then the page's items one by one)."""

    def search(items: list[dict[str, Any]], *args: Any, paging: Any, **kwargs: Any):
        def pages() -> Iterator[dict[str, Any]]:
            for start in range(0, len(items), size):
                yield from paging.page({"features": items[start : start + size]})

        return pages()

    return search


def lookup_run(
    monkeypatch: pytest.MonkeyPatch, names: list[str], catalog: Any, page_size: int = 100
) -> tuple[SentinelRun, list[str]]:
    run, copied = copying_run(monkeypatch, names, catalog)
    items = list(sentinel.search())  # copying_run's search: the items, one page
    search = paged(page_size)
    monkeypatch.setattr(sentinel, "search", lambda *a, **k: search(items, *a, **k))
    return run, copied


def fingerprint_of(item_id: str) -> str:
    """The fingerprint a copying_run item `item_id` has."""
    href = f"https://stac.example.org/v1/data/{item_id}/B04_10m.jp2"
    assets = {"B04_10m": {"href": href, "file:size": 5}}
    item = {**json.loads(json.dumps(sentinel_item())), "id": item_id, "assets": assets}
    return sentinel_plan.fingerprint(item, assets)


def sentinel_item() -> dict[str, Any]:
    from services.ingestion.tests.test_sentinel_run import CDSE_ITEM

    return CDSE_ITEM


def holding(catalog: RecordingCatalog, item_id: str, fingerprint: str) -> None:
    """The site's catalog holds item `item_id` with this fingerprint."""
    catalog.stored[item_id] = {
        "id": item_id,
        "collection": "sentinel-2-l2a",
        "properties": {"fedeploy:fingerprint": fingerprint, "datetime": "2024-06-01T00:00:00Z"},
    }


def test_a_page_of_items_costs_one_catalog_search_and_no_get_per_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = [f"item-{n}" for n in range(6)]
    catalog = LookupCatalog()
    run, copied = lookup_run(monkeypatch, names, catalog)
    report = run.run()
    assert report.failed == {} and report.registered == 6 and sorted(copied) == names
    assert catalog.searches() == 1 and catalog.gets() == 0
    assert sorted(catalog.searched[0]) == names

    # The next hourly run finds them all registered: one search, nothing copied, no GET.
    again = LookupCatalog()
    again.stored = catalog.stored
    run, copied = lookup_run(monkeypatch, names, again)
    report = run.run()
    assert report.skipped == 6 and copied == [] and report.registered == 0
    assert again.searches() == 1 and again.gets() == 0


def test_a_page_is_looked_up_in_bounded_requests_one_per_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = [f"item-{n:03d}" for n in range(MAX_IDS_PER_SEARCH + 30)]
    catalog = LookupCatalog()
    run, _ = lookup_run(monkeypatch, names, catalog, page_size=MAX_IDS_PER_SEARCH + 20)
    assert run.run().registered == len(names)
    assert [len(ids) for ids in catalog.searched] == [MAX_IDS_PER_SEARCH, 20, 10]
    assert catalog.gets() == 0


def test_a_worker_asks_only_for_the_items_of_its_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"item-{n}" for n in range(20)]
    catalog = LookupCatalog()
    run, copied = lookup_run(monkeypatch, names, catalog)
    run.settings = run.settings.model_copy(update={"shard_count": 2, "shard_index": 1})
    report = run.run()
    mine = sorted(n for n in names if owns(f"sentinel-2-l2a/{n}", 1, 2))
    assert 0 < len(mine) < len(names) and sorted(copied) == mine
    assert [sorted(ids) for ids in catalog.searched] == [mine] and catalog.gets() == 0
    assert report.other_shards == len(names) - len(mine)


def test_only_an_item_held_with_the_same_fingerprint_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = LookupCatalog()
    holding(catalog, "same", fingerprint_of("same"))
    holding(catalog, "changed", "the fingerprint of the upstream's earlier content")
    run, copied = lookup_run(monkeypatch, ["same", "changed", "new"], catalog)
    report = run.run()
    assert report.skipped == 1 and sorted(copied) == ["changed", "new"]
    assert report.registered == 2 and report.failed == {}
    assert catalog.searches() == 1 and catalog.gets() == 0
    assert catalog.stored["changed"]["properties"]["fedeploy:fingerprint"] == fingerprint_of(
        "changed"
    )


@pytest.mark.parametrize(("status", "searches"), [(404, 1), (429, 2), (500, 2)])
def test_a_refused_search_falls_back_to_a_get_per_item_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, status: int, searches: int
) -> None:
    """A 4xx other than 429 is a refusal: the next page does not search again; a 429 or a
    5xx may pass, and each page asks."""
    catalog = LookupCatalog(search_status=status)
    holding(catalog, "a", fingerprint_of("a"))
    run, copied = lookup_run(monkeypatch, ["a", "b", "c", "d"], catalog, page_size=2)
    caplog.set_level(logging.WARNING)
    report = run.run()
    assert report.skipped == 1 and sorted(copied) == ["b", "c", "d"] and report.failed == {}
    assert catalog.searches() == searches and catalog.gets() == 4
    warned = [r for r in caplog.records if "looking up a search page" in r.message]
    assert len(warned) == 1 and str(status) in warned[0].message


def test_items_a_short_answer_leaves_out_are_asked_by_get(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A search that matched an item and did not return it says nothing of it: were it taken
    as absent, the item would be copied again."""
    catalog = LookupCatalog(omit=("b",))
    for name in ("a", "b"):
        holding(catalog, name, fingerprint_of(name))
    run, copied = lookup_run(monkeypatch, ["a", "b", "c"], catalog)
    report = run.run()
    assert report.skipped == 2 and copied == ["c"]
    gets = [path for method, path in catalog.requests if method == "GET"]
    assert sorted(gets) == [
        "/collections/sentinel-2-l2a/items/b",
        "/collections/sentinel-2-l2a/items/c",
    ]


def test_an_answer_naming_an_item_not_asked_for_settles_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = LookupCatalog(stranger="someone-else")
    holding(catalog, "a", fingerprint_of("a"))
    run, copied = lookup_run(monkeypatch, ["a", "b"], catalog)
    report = run.run()
    assert report.skipped == 1 and copied == ["b"]
    assert catalog.searches() == 1 and catalog.gets() == 2


def test_an_item_served_again_in_the_same_or_a_later_page_is_copied_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The page's answer (absent) is older than the first copy's registration: the second is
    settled by the run's own waiting items or a GET, never by that answer."""
    monkeypatch.setattr(sentinel, "REGISTER_WAIT_SECONDS", 0.0)  # each registered at once
    catalog = LookupCatalog()
    run, copied = lookup_run(monkeypatch, ["a", "a", "b", "a"], catalog, page_size=3)
    report = run.run()
    assert copied.count("a") == 1 and report.skipped == 2 and report.registered == 2
    assert catalog.searches() == 2  # a page each; the second a alone settled otherwise


def newer(item: dict[str, Any]) -> dict[str, Any]:
    """The item as its upstream serves it once changed (another `updated`: another fingerprint)."""
    changed = json.loads(json.dumps(item))
    changed["properties"]["updated"] = "2099-01-01T00:00:00Z"
    return changed


def served_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[SentinelRun, list[str], LookupCatalog, dict[str, Any], dict[str, Any]]:
    """A run whose search serves, in pages of 2, x with new content G and a, then x with the
    old content F (the one the catalog holds) and b: returns the run, the items copied, the
    catalog, x@F and x@G."""
    catalog = LookupCatalog()
    run, copied = copying_run(monkeypatch, ["x", "a", "b"], catalog)
    old, a, b = list(sentinel.search())
    new = newer(old)
    assert sentinel_plan.fingerprint(new, new["assets"]) != fingerprint_of("x")
    holding(catalog, "x", fingerprint_of("x"))
    search = paged(2)
    items = [new, a, old, b]
    monkeypatch.setattr(sentinel, "search", lambda *args, **kw: search(items, *args, **kw))
    return run, copied, catalog, old, new


def held_fingerprint(catalog: RecordingCatalog, item_id: str) -> str:
    return str(catalog.stored[item_id]["properties"]["fedeploy:fingerprint"])


def test_an_item_served_again_while_its_other_content_copies_is_not_settled_by_the_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """x@G still copies when page 2 (x@F) is looked up: the catalog answers F, then x@G is
    registered before x@F is decided. Taken from that answer, x@F would be skipped while the
    catalog holds G; it is asked once decided (a GET) and copied."""
    monkeypatch.setattr(sentinel, "REGISTER_WAIT_SECONDS", 0.0)  # x@G registered as it ends
    run, copied, catalog, _, _ = served_twice(monkeypatch)
    page_two_looked_up = threading.Event()
    running_at_lookup: list[bool] = []
    look_up, copy = run._look_up, run._asset

    def looking_up(in_flight: Any, features: list[Any]) -> Any:
        answers = look_up(in_flight, features)
        if any(f.get("id") == "b" for f in features):
            running_at_lookup.append(in_flight.running("sentinel-2-l2a/x"))
            page_two_looked_up.set()
        return answers

    def asset(collection_id: str, item_id: str, *rest: Any) -> Any:
        if item_id == "x" and "x" not in copied:  # x@G's copy ends after page 2's lookup
            assert page_two_looked_up.wait(10), "page 2 was not looked up"
        return copy(collection_id, item_id, *rest)

    run._look_up = looking_up  # type: ignore[method-assign]
    run._asset = asset  # type: ignore[method-assign]
    report = run.run()
    assert report.failed == {} and running_at_lookup == [True]
    assert copied.count("x") == 2 and report.skipped == 0
    assert held_fingerprint(catalog, "x") == fingerprint_of("x")  # the last content served


def test_an_item_served_again_while_its_other_content_awaits_registration_is_not_settled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """x@G is copied and waits to be registered when page 2 (x@F) is looked up: the catalog
    answers F; the registering thread then registers G before x@F is decided. Taken from that
    answer, x@F would be skipped while the catalog holds G; it is asked by GET and copied."""
    monkeypatch.setattr(sentinel, "REGISTER_WAIT_SECONDS", 3600.0)  # no flush but ours
    run, copied, catalog, _, _ = served_twice(monkeypatch)
    waiting_at_lookup: list[bool] = []
    decided: list[str] = []
    look_up, holds = run._look_up, run._holds

    def looking_up(in_flight: Any, features: list[Any]) -> Any:
        if any(f.get("id") == "b" for f in features):
            deadline = time.monotonic() + 10  # x@G's copy ends (it does not block)
            while in_flight.running("sentinel-2-l2a/x") and time.monotonic() < deadline:
                time.sleep(0.005)
            waiting_at_lookup.append(
                not in_flight.running("sentinel-2-l2a/x") and run._holding("sentinel-2-l2a", "x")
            )
        return look_up(in_flight, features)

    def holding_now(answers: Any, collection_id: str, item_id: str, fingerprint: str) -> bool:
        decided.append(item_id)
        if item_id == "x" and decided.count("x") == 2:
            run._flush()  # the registering thread's turn comes before x@F's decision
            assert held_fingerprint(catalog, "x") != fingerprint_of("x")  # G registered
        return holds(answers, collection_id, item_id, fingerprint)

    run._look_up = looking_up  # type: ignore[method-assign]
    run._holds = holding_now  # type: ignore[method-assign]
    report = run.run()
    assert report.failed == {} and waiting_at_lookup == [True]
    assert copied.count("x") == 2 and report.skipped == 0
    assert held_fingerprint(catalog, "x") == fingerprint_of("x")


@pytest.mark.parametrize(
    "catalog",
    [LookupCatalog(search_status=400), LookupCatalog(stranger="someone-else")],
    ids=["400", "unreadable"],
)
def test_a_catalog_that_refuses_the_search_is_searched_once_a_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, catalog: LookupCatalog
) -> None:
    """A search refused (a 4xx) or answered with what is not a page of the items asked for
    would be refused again: the later pages' items go straight to their GET."""
    names = [f"item-{n}" for n in range(10)]
    holding(catalog, "item-3", fingerprint_of("item-3"))
    run, copied = lookup_run(monkeypatch, names, catalog, page_size=2)
    caplog.set_level(logging.WARNING)
    report = run.run()
    assert report.failed == {} and report.skipped == 1 and len(copied) == 9
    assert catalog.searches() == 1 and catalog.gets() == 10
    warned = [r for r in caplog.records if "looking up a search page" in r.message]
    assert len(warned) == 1 and "refused" in warned[0].message


def search_client(answer: Any) -> CatalogClient:
    return CatalogClient(
        "http://catalog.test", http=httpx.Client(transport=httpx.MockTransport(answer))
    )


def test_a_search_answer_larger_than_the_bound_is_refused_as_it_streams() -> None:
    """A catalog that ignores `ids` and `limit` answers without end: the read stops at
    MAX_SEARCH_ANSWER_BYTES, named in the refusal with the request."""
    sent = [0]
    chunk = json.dumps({"id": "zz", "collection": "c", "properties": {"p": "x" * 900}}) + ","
    chunk_bytes = chunk.encode() * 64  # about 64 KiB

    def endless() -> Iterator[bytes]:
        yield b'{"features": ['
        for _ in range(200 * 16):  # 200 MiB if it were all read
            sent[0] += len(chunk_bytes)
            yield chunk_bytes

    client = search_client(lambda request: httpx.Response(200, content=endless()))
    with pytest.raises(SearchRefused) as refused:
        client.find("c", ["a"], ["fedeploy:fingerprint"])
    message = str(refused.value)
    assert "POST http://catalog.test/search" in message and str(MAX_SEARCH_ANSWER_BYTES) in message
    assert sent[0] <= MAX_SEARCH_ANSWER_BYTES + 2 * len(chunk_bytes)


def test_items_of_a_search_answer_too_large_are_asked_by_get(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(catalog_module, "MAX_SEARCH_ANSWER_BYTES", 200)
    catalog = LookupCatalog()
    names = [f"item-{n}-{'long' * 20}" for n in range(6)]
    for name in names[:3]:
        holding(catalog, name, fingerprint_of(name))
    run, copied = lookup_run(monkeypatch, names, catalog, page_size=6)
    report = run.run()
    assert report.failed == {} and report.skipped == 3 and sorted(copied) == names[3:]
    assert catalog.searches() == 1 and catalog.gets() == 6


@pytest.mark.parametrize(
    ("features", "words"),
    [
        (
            [
                {"id": "a", "collection": "c", "properties": {"fp": "OLD"}},
                {"id": "a", "collection": "c", "properties": {"fp": "NEW"}},
            ],
            "naming item 'a' twice",
        ),
        ([{"id": "a", "collection": "c"}], "with no properties object"),
        ([{"id": "a", "collection": "c", "properties": None}], "with no properties object"),
        ([{"id": "b", "collection": "c", "properties": {}}], "not asked for"),
    ],
)
def test_a_search_answer_that_is_not_a_page_of_the_items_asked_is_refused(
    features: list[dict[str, Any]], words: str
) -> None:
    client = search_client(lambda request: httpx.Response(200, json={"features": features}))
    with pytest.raises(SearchRefused, match=words):
        client.find("c", ["a"], ["fp"])


@pytest.mark.parametrize(
    ("status", "refused"), [(400, True), (404, True), (429, False), (500, False), (503, False)]
)
def test_only_a_4xx_other_than_429_is_a_refusal(status: int, refused: bool) -> None:
    client = search_client(lambda request: httpx.Response(status, json={"code": "No"}))
    with pytest.raises(CatalogError) as error:
        client.find("c", ["a"], ["fp"])
    assert isinstance(error.value, SearchRefused) == refused and str(status) in str(error.value)


@pytest.mark.parametrize(
    ("page", "complete"),
    [
        ({}, True),
        ({"numberMatched": 1}, True),
        ({"numberMatched": 3}, False),
        ({"numberMatched": 1.0}, False),
        ({"numberMatched": "1"}, False),
        ({"numberMatched": True}, False),
        ({"numberMatched": None, "context": {"matched": 3}}, False),
        ({"context": {"matched": 1}}, True),
        ({"links": [{"rel": "next", "href": "http://catalog.test/search?token=2"}]}, False),
    ],
)
def test_an_answer_is_complete_only_where_its_count_says_so(
    page: dict[str, Any], complete: bool
) -> None:
    """A `numberMatched` that is not an integer says nothing sure: the items the answer left
    out are asked by GET, not taken as absent."""
    features = [{"id": "a", "collection": "c", "properties": {"fp": "F"}}]
    client = search_client(lambda request: httpx.Response(200, json={**page, "features": features}))
    found = client.find("c", ["a", "b", "d"], ["fp"])
    assert found.properties == {"a": {"fp": "F"}} and found.complete == complete


@pytest.mark.integration
def test_against_stac_fastapi_pgstac_one_search_settles_the_page(
    monkeypatch: pytest.MonkeyPatch, catalogs: Any
) -> None:
    """The site's real catalog (its fields extension): registered items skipped, a changed
    fingerprint copied again, a new item copied, one search and no GET."""
    site = catalogs.start("site-lookup")
    requests: list[tuple[str, str]] = []
    http = httpx.Client(
        timeout=30,
        event_hooks={"request": [lambda r: requests.append((r.method, r.url.path))]},
    )
    catalog = CatalogClient(site.url, http=http)
    catalog.ensure_collection(
        {
            "type": "Collection",
            "stac_version": "1.1.0",
            "id": "sentinel-2-l2a",
            "description": "site copies",
            "license": "other",
            "extent": {
                "spatial": {"bbox": [[-180, -90, 180, 90]]},
                "temporal": {"interval": [["2015-01-01T00:00:00Z", None]]},
            },
            "links": [],
        }
    )

    def site_item(item_id: str, fingerprint: str) -> dict[str, Any]:
        return {
            "type": "Feature",
            "stac_version": "1.1.0",
            "id": item_id,
            "collection": "sentinel-2-l2a",
            "geometry": {"type": "Point", "coordinates": [11.0, 46.0]},
            "bbox": [11.0, 46.0, 11.0, 46.0],
            "properties": {"datetime": "2024-06-01T10:30:00Z", "fedeploy:fingerprint": fingerprint},
            "assets": {},
            "links": [],
        }

    catalog.upsert_items(
        "sentinel-2-l2a",
        [site_item("same", fingerprint_of("same")), site_item("changed", "earlier content")],
    )
    requests.clear()
    run, copied = copying_run(monkeypatch, ["same", "changed", "new"], catalog)  # type: ignore[arg-type]
    items = list(sentinel.search())
    search = paged(100)
    monkeypatch.setattr(sentinel, "search", lambda *a, **k: search(items, *a, **k))
    registered: list[str] = []
    monkeypatch.setattr(
        catalog, "upsert_items", lambda c, batch: registered.extend(i["id"] for i in batch)
    )
    report = run.run()
    assert report.failed == {} and report.skipped == 1
    assert sorted(copied) == ["changed", "new"] and sorted(registered) == ["changed", "new"]
    assert requests == [("POST", "/search")]
