"""The Sentinel run loop without peers: what a source, an item or a search failure leads to."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import httpx
import pytest
from fedeploy_ingestion import sentinel, stac_client
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.errors import SourceError
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.sentinel import SentinelRun
from fedeploy_ingestion.settings import IngestSettings, Source
from fedeploy_ingestion.upstream import search

CDSE_ITEM = json.loads(
    (Path(__file__).parent / "field_cases" / "sentinel-cdse-shaped-item.json").read_text()
)


def make_run(assets: list[str], found: Any) -> SentinelRun:
    settings = IngestSettings(
        site="site-a",
        bucket="b",
        sources=[
            {
                "name": "cdse",
                "url": "https://stac.example.org/v1",
                "collections": ["sentinel-2-l2a"],
                "assets": assets,
            }
        ],
    )
    run = SentinelRun(settings, None, None, Metrics())  # type: ignore[arg-type]
    run._item = lambda *args: None  # type: ignore[method-assign]
    return run


def test_requested_assets_that_match_nothing_fail_the_source_naming_the_real_keys(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`assets: [B04, B08, SCL]` against Copernicus items (B04_10m, ...) once exited 0 silently."""
    monkeypatch.setattr(sentinel, "search", lambda *a, **k: iter([CDSE_ITEM, CDSE_ITEM]))
    report = make_run(["B04", "B08", "SCL"], None).run()
    reason = report.failed["cdse:assets"]
    assert "none of the 2 items" in reason and "B04, B08, SCL" in reason
    assert "B04_10m, B08_10m, Product, SCL_20m" in reason
    assert report.failed  # so the CLI exits 1


def test_the_real_copernicus_names_match(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sentinel, "search", lambda *a, **k: iter([CDSE_ITEM]))
    assert make_run(["B04_10m", "B08_10m", "SCL_20m"], None).run().failed == {}


def test_a_missing_asset_is_a_warning_naming_the_items_asset_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = make_run(["B04_10m", "B02_10m"], None)
    del run._item  # the real one: stops at the catalog, after the warning
    caplog.set_level(logging.WARNING)
    with pytest.raises(AttributeError):  # no catalog in this test
        run._item(run.settings.sources[0], CDSE_ITEM, None, None)  # type: ignore[arg-type]
    [record] = [r for r in caplog.records if r.message == "requested assets missing from the item"]
    assert record.missing == ["B02_10m"]  # type: ignore[attr-defined]
    assert record.item_assets == ["B04_10m", "B08_10m", "Product", "SCL_20m"]  # type: ignore[attr-defined]


def test_a_search_failing_midway_fails_its_source_after_the_items_already_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def pages(*args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        yield CDSE_ITEM
        raise KeyError("page 2 had no 'features'")  # not an IngestError

    monkeypatch.setattr(sentinel, "search", pages)
    handled: list[str] = []
    run = make_run(["B04_10m"], None)
    run._item = lambda source, item, *rest: handled.append(item["id"])  # type: ignore[method-assign]
    report = run.run()
    assert handled == [CDSE_ITEM["id"]]
    assert "KeyError" in report.failed["cdse:search"]


def test_any_exception_on_one_item_fails_that_item_only(monkeypatch: pytest.MonkeyPatch) -> None:
    others = [{**CDSE_ITEM, "id": f"item-{n}"} for n in range(3)]
    monkeypatch.setattr(sentinel, "search", lambda *a, **k: iter(others))
    run = make_run(["B04_10m"], None)

    def item(source: Source, item: dict[str, Any], *rest: Any) -> None:
        if item["id"] == "item-1":
            raise RecursionError("deep")

    run._item = item  # type: ignore[method-assign,assignment]
    report = run.run()
    assert report.failed == {"sentinel-2-l2a/item-1": "RecursionError: deep"}
    assert report.found == 3


def test_pystac_client_requests_time_out_and_retry_a_bounded_number_of_times() -> None:
    """A stalled upstream once held the CronJob for hours (Client.open(..., timeout=None))."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()  # and never answer
            except OSError:
                return
            accepted.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    source = Source.model_validate(
        {
            "name": "stalled",
            "url": f"http://127.0.0.1:{listener.getsockname()[1]}/v1",
            "privateHosts": ["127.0.0.1"],
            "collections": ["c"],
            "assets": ["a"],
        }
    )
    started = time.monotonic()
    try:
        with pytest.raises(SourceError, match="timed out"):
            list(search(source, None, {}, timeout=0.5))
    finally:
        listener.close()
        for connection in accepted:
            connection.close()
    elapsed = time.monotonic() - started
    assert len(accepted) == 1 + stac_client.DEFAULT_RETRIES  # bounded retries
    assert elapsed < 15


def test_the_retry_policy_is_bounded_and_covers_searches_by_post() -> None:
    policy = stac_client.retry_policy(2)
    assert policy.total == 2 and policy.allowed_methods is None
    assert 503 in policy.status_forcelist
    io = stac_client.api_io({"X": "1"}, 7.0)
    assert io.timeout == 7.0


def test_opening_a_client_keeps_the_request_modifier_that_checks_every_url() -> None:
    """`Client.open(url, stac_io=io)` alone resets the modifier: a URL check would be skipped."""
    from pystac_client.exceptions import APIError

    def refuse(request: Any) -> Any:
        raise SourceError(f"refused {request.url}")

    io = stac_client.api_io(None, 1.0, request_modifier=refuse)
    with pytest.raises(APIError, match="refused http://127.0.0.1:9/v1"):
        stac_client.open_client("http://127.0.0.1:9/v1", io)
    assert io.timeout == 1.0


def test_the_report_is_printed_even_when_the_run_stops_early(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fedeploy_ingestion import cli

    for name, value in {
        "INGEST_SITE": "site-a",
        "INGEST_BUCKET": "b",
        "INGEST_CATALOG_URL": "http://catalog.invalid",
        "INGEST_S3_REGION": "eu-west-1",
        "INGEST_SOURCES": json.dumps(
            [{"name": "cdse", "collections": ["sentinel-2-l2a"], "assets": ["B04_10m"]}]
        ),
    }.items():
        monkeypatch.setenv(name, value)

    def stop(self: SentinelRun, now: Any = None) -> None:
        self.report.found = 1
        raise MemoryError("out of memory")

    monkeypatch.setattr(SentinelRun, "run", stop)
    assert cli.main(["sentinel"]) == cli.EXIT_ITEMS_FAILED
    printed = json.loads(capsys.readouterr().out)
    assert printed["found"] == 1
    assert printed["failed"] == {"(run)": "MemoryError: out of memory"}


class RecordingStore:
    """Stands for the site's bucket: nothing stored yet; records what a copy was asked to check."""

    bucket = "b"

    def __init__(self) -> None:
        self.copies: list[dict[str, Any]] = []

    def head(self, key: str) -> None:
        return None

    def copy_from(self, key: str, source: Any, **checks: Any) -> Any:
        self.copies.append({"key": key, **checks})
        return type(
            "Result", (), {"size": 1, "sha256": b"\0" * 32, "bytes_sent": 1, "resumed_from": 0}
        )


@pytest.mark.parametrize(
    "checksum",
    [
        "zz" * 500_000,  # not hexadecimal: the whole value was put in the log line
        "ff" * 40_000 + "00",  # a 40 000-byte varint: parsed in quadratic time, then logged
        ["1220"],
    ],
    ids=["megabyte", "huge-varint", "list"],
)
def test_a_poison_checksum_or_size_is_left_out_with_a_short_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, checksum: Any
) -> None:
    monkeypatch.setattr(sentinel, "HttpAsset", lambda *args, **kwargs: None)
    run = make_run(["B04_10m"], None)
    run.store = store = RecordingStore()  # type: ignore[assignment]
    asset = {"href": "https://stac.example.org/B04.jp2", "file:checksum": checksum}
    asset["file:size"] = "12"  # a string: it once reached the copy as the expected size
    caplog.set_level(logging.WARNING)
    run._asset("c", "i", "B04_10m", asset, None, "fp")  # type: ignore[arg-type]
    [copy] = store.copies
    assert copy["expected"] is None and copy["expected_size"] is None
    problems = [str(getattr(r, "error", "")) for r in caplog.records]
    assert any("file:size '12'" in p for p in problems)
    assert any("file:checksum" in p for p in problems)
    assert max(len(p) for p in problems) < 500


def test_the_upstream_cannot_name_the_collection_created_in_the_site(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created: list[dict[str, Any]] = []
    run = make_run(["B04_10m"], None)
    run.catalog = type("Catalog", (), {"ensure_collection": lambda self, c: created.append(c)})()  # type: ignore[assignment]
    answer = {"id": "fedeploy-site-hub", "type": "Collection", "description": "planted"}
    run.http = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=answer))
    )
    run._ensure_collection(run.settings.sources[0], "sentinel-2-l2a")
    assert [c["id"] for c in created] == ["sentinel-2-l2a"]


def test_items_are_copied_two_at_once_and_a_repeated_item_waits_for_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One item's reads overlap another's uploads; never more than ITEMS_IN_FLIGHT at once,
    and an item served twice by the search never runs twice at the same time."""
    names = ["a", "b", "a", "c", "d", "e"]
    monkeypatch.setattr(
        sentinel, "search", lambda *a, **k: iter([{**CDSE_ITEM, "id": n} for n in names])
    )
    both = threading.Barrier(2, timeout=10)
    lock = threading.Lock()
    running: list[str] = []
    peak = [0]
    events: list[tuple[str, str]] = []

    def item(source: Source, item: dict[str, Any], *rest: Any) -> None:
        with lock:
            assert item["id"] not in running, "one item twice at once"
            running.append(item["id"])
            peak[0] = max(peak[0], len(running))
            events.append(("start", item["id"]))
        if item["id"] in ("a", "b") and ("end", item["id"]) not in events:
            both.wait()  # a and b overlap, or this times out (items one after another)
        time.sleep(0.05)
        with lock:
            running.remove(item["id"])
            events.append(("end", item["id"]))

    run = make_run(["B04_10m"], None)
    run._item = item  # type: ignore[method-assign,assignment]
    report = run.run()
    assert report.failed == {} and report.found == len(names)
    assert peak[0] == sentinel.ITEMS_IN_FLIGHT == 2
    starts_of_a = [i for i, e in enumerate(events) if e == ("start", "a")]
    assert events.index(("end", "a")) < starts_of_a[1]


def test_an_item_read_to_its_end_gives_its_slot_to_the_next_item_before_it_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The next item's setup overlaps an item's last parts and registration: once `a` and `b`
    are read (`read()`), `c` starts while both are still running; never more than
    ITEMS_IN_FLIGHT read at once."""
    names = ["a", "b", "c", "d"]
    monkeypatch.setattr(
        sentinel, "search", lambda *a, **k: iter([{**CDSE_ITEM, "id": n} for n in names])
    )
    c_started = threading.Event()
    lock = threading.Lock()
    reading: list[str] = []
    peak = [0]
    overlapped: list[str] = []

    def item(
        source: Source,
        item: dict[str, Any],
        credentials: Any,
        now: Any,
        read: Any = lambda: None,
        *rest: Any,
    ) -> None:
        with lock:
            reading.append(item["id"])
            peak[0] = max(peak[0], len(reading))
        time.sleep(0.02)
        with lock:
            reading.remove(item["id"])
        read()
        # a's and b's last parts and registration: c overlaps them (before: c waited for one)
        if item["id"] in ("a", "b") and c_started.wait(3):
            overlapped.append(item["id"])
        if item["id"] == "c":
            c_started.set()

    run = make_run(["B04_10m"], None)
    run._item = item  # type: ignore[method-assign,assignment]
    report = run.run()
    assert report.failed == {} and report.found == len(names)
    assert sorted(overlapped) == ["a", "b"]
    assert peak[0] <= sentinel.ITEMS_IN_FLIGHT


def test_an_object_a_run_completed_before_dying_is_verified_and_reused_not_copied() -> None:
    """An asset object already carrying the item's fingerprint (its run died before registering
    the item) is read back and reused: counted as reused, nothing downloaded or uploaded."""
    run = make_run(["B04"], None)
    store = mock.MagicMock()
    store.head.return_value = SimpleNamespace(metadata={"fedeploy-fingerprint": "fp"})
    store.verify.return_value = (5, {"sha256": b"digest"})
    run.store = store
    http = run.http = mock.MagicMock()
    asset = {"href": "https://data.example.org/B04.tif", "type": "image/tiff"}
    copied = run._asset("sentinel-2-l2a", "item-1", "B04", asset, None, "fp")  # type: ignore[arg-type]
    assert (copied.size, copied.sha256) == (5, b"digest")
    assert store.verify.call_args.args[0] == copied.key
    assert not store.copy_from.called and not http.method_calls
    assert (run.report.assets_reused, run.report.assets_copied, run.report.bytes_copied) == (
        1,
        0,
        0,
    )


class RecordingCatalog(CatalogClient):
    """A site catalog with no item yet that records each bulk upsert, behind the real
    CatalogClient, its bulk endpoint answering as stac-fastapi-pgstac 7.2 does
    (stac_fastapi/pgstac/transactions.py): an item id in `refuse` fails validation (200,
    `{"received", "success", "skipped", "errors": [{"id", "msg"}]}`, the others stored); an
    item id in `fail` is a database refusal (500 for the whole request, nothing stored).
    `delay`: seconds each bulk upsert takes before anything is stored."""

    def __init__(
        self,
        refuse: str | None = None,
        fail: str | None = None,
        delay: float = 0.0,
    ) -> None:
        self.upserts: list[tuple[str, list[str]]] = []
        self.times: list[float] = []  # time.monotonic() as each upsert returned
        self.stored: dict[str, dict[str, Any]] = {}
        self.refuse, self.fail, self.delay = refuse, fail, delay
        transport = httpx.MockTransport(self._answer)
        super().__init__("http://catalog.test", http=httpx.Client(transport=transport))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")  # collections/C/items/ID, .../bulk_items
        if request.method == "GET" and len(parts) == 4 and parts[2] == "items":
            item = self.stored.get(parts[3])
            return httpx.Response(200, json=item) if item else httpx.Response(404, json={})
        if request.method == "POST" and parts[-1] == "bulk_items":
            items = json.loads(request.content)["items"]
            time.sleep(self.delay)
            self.upserts.append((parts[1], list(items)))
            self.times.append(time.monotonic())
            if self.fail in items:
                return httpx.Response(500, json={"code": "DatabaseError", "description": "no"})
            errors = [
                {"id": i, "msg": f"Item {i} geometry is not valid"}
                for i in items
                if i == self.refuse
            ]
            stored = {i: item for i, item in items.items() if i != self.refuse}
            self.stored.update(stored)
            answer = {"received": len(items), "success": len(stored), "skipped": 0}
            return httpx.Response(200, json={**answer, "errors": errors})
        return httpx.Response(405, json={})


def copying_run(
    monkeypatch: pytest.MonkeyPatch,
    names: list[str],
    catalog: RecordingCatalog,
    pages: Callable[[list[dict[str, Any]]], Iterator[dict[str, Any]]] | None = None,
) -> tuple[SentinelRun, list[str]]:
    """A run over items `names` whose assets 'copy' at once, registering in `catalog`;
    `pages(items)`: what the search yields of them (all at once by default)."""

    def item(name: str) -> dict[str, Any]:
        href = f"https://stac.example.org/v1/data/{name}/B04_10m.jp2"
        return {**CDSE_ITEM, "id": name, "assets": {"B04_10m": {"href": href, "file:size": 5}}}

    items = [item(n) for n in names]
    monkeypatch.setattr(sentinel, "search", lambda *a, **k: (pages or iter)(items))
    # No name is resolved: the hrefs are checked by a policy that admits them.
    credentials = SimpleNamespace(headers=dict, policy=SimpleNamespace(check=lambda *a: None))
    monkeypatch.setattr(sentinel, "Credentials", lambda *a: credentials)
    run = make_run(["B04_10m"], None)
    del run._item  # the real one
    run.catalog = catalog  # type: ignore[assignment]
    run.store = SimpleNamespace(bucket="b")  # type: ignore[assignment]
    run._ensure_collection = lambda source, collection_id: None  # type: ignore[method-assign]
    copied: list[str] = []

    def asset(collection_id: str, item_id: str, name: str, *rest: Any) -> Any:
        copied.append(item_id)
        return sentinel.sentinel_plan.CopiedAsset(f"{item_id}/{name}", 5, b"digest")

    run._asset = asset  # type: ignore[method-assign,assignment]
    return run, copied


def test_the_items_copied_are_registered_together_in_one_bulk_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pgstac's cost is per request (about 19 ms of PostgreSQL for one item, 20 ms for three):
    each item had its own bulk upsert."""
    catalog = RecordingCatalog()
    run, copied = copying_run(monkeypatch, ["a", "b", "c"], catalog)
    report = run.run()
    assert report.failed == {} and report.registered == 3 and sorted(copied) == ["a", "b", "c"]
    [(collection, ids)] = catalog.upserts
    assert collection == "sentinel-2-l2a" and sorted(ids) == ["a", "b", "c"]


def test_a_batch_registers_once_the_oldest_waited_long_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = RecordingCatalog()
    monkeypatch.setattr(sentinel, "REGISTER_WAIT_SECONDS", 0.0)
    run, _ = copying_run(monkeypatch, ["a", "b", "c"], catalog)
    assert run.run().registered == 3
    assert sorted(i for _, ids in catalog.upserts for i in ids) == ["a", "b", "c"]
    assert all(len(ids) == 1 for _, ids in catalog.upserts)  # each due at once


def test_an_item_the_catalog_refuses_fails_alone_the_others_of_its_batch_are_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database refusal (pgstac: 500, nothing of the request stored): each item is sent
    alone, and the one refused fails alone."""
    catalog = RecordingCatalog(fail="b")
    run, _ = copying_run(monkeypatch, ["a", "b", "c"], catalog)
    report = run.run()
    assert report.registered == 2
    assert (
        list(report.failed) == ["sentinel-2-l2a/b"] and "500" in report.failed["sentinel-2-l2a/b"]
    )
    alone = sorted(ids[0] for _, ids in catalog.upserts[1:])
    assert len(catalog.upserts[0][1]) == 3 and alone == ["a", "b", "c"]
    assert sorted(catalog.stored) == ["a", "c"]


def test_an_item_the_catalog_refuses_in_a_successful_answer_fails_named_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """stac-fastapi-pgstac answers 200 to a bulk upsert whose items it refused on validation
    (a null geometry, a collection other than the path's) and lists them in its body: such an
    item was counted registered, never stored, and never named."""
    catalog = RecordingCatalog(refuse="b")
    run, _ = copying_run(monkeypatch, ["a", "b", "c"], catalog)
    report = run.run()
    assert report.registered == 2 and sorted(catalog.stored) == ["a", "c"]
    assert list(report.failed) == ["sentinel-2-l2a/b"]
    reason = report.failed["sentinel-2-l2a/b"]
    assert "refused item b" in reason and "geometry is not valid" in reason
    assert [sorted(ids) for _, ids in catalog.upserts] == [["a", "b", "c"]]  # no request more


def test_an_item_served_twice_is_copied_once_while_it_waits_to_be_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = RecordingCatalog()
    run, copied = copying_run(monkeypatch, ["a", "a", "b"], catalog)
    report = run.run()
    assert copied.count("a") == 1 and report.skipped == 1 and report.registered == 2


class Stop(BaseException):
    """As the CLI's Stopped: SIGTERM while the run waits for its items."""


def test_items_copied_before_a_stop_are_registered_and_those_after_it_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM cuts the wait for the items in flight: the items copied by then are registered
    before the stop goes on, and an item that ends after it registers alone as it ends."""
    catalog = RecordingCatalog()
    run, copied = copying_run(monkeypatch, ["a", "b", "c"], catalog)
    slow = threading.Event()
    copy = run._asset

    def asset(collection_id: str, item_id: str, *rest: Any) -> Any:
        if item_id == "c":
            slow.wait(5)  # still copying when the stop comes
        return copy(collection_id, item_id, *rest)

    run._asset = asset  # type: ignore[method-assign]
    close = sentinel._InFlight.close

    def stopped(self: Any) -> None:
        while sorted(copied) != ["a", "b"]:
            time.sleep(0.01)
        time.sleep(0.05)  # a and b are waiting to be registered
        raise Stop

    monkeypatch.setattr(sentinel._InFlight, "close", stopped)
    with pytest.raises(Stop):
        run.run()
    assert [sorted(ids) for _, ids in catalog.upserts] == [["a", "b"]]
    slow.set()
    monkeypatch.setattr(sentinel._InFlight, "close", close)
    deadline = time.monotonic() + 5
    while len(catalog.upserts) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [ids for _, ids in catalog.upserts[1:]] == [["c"]]
    assert run.report.registered == 3


def test_the_cronjobs_command_freezes_what_start_up_made_before_the_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full collection walked the process's start-up objects (about 150,000: 0.09-0.11
    processor seconds) in the middle of a copy."""
    import gc

    from fedeploy_ingestion import cli

    frozen: list[int] = []

    class Run:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.report = sentinel.SentinelReport()

        def run(self) -> None:
            frozen.append(gc.get_freeze_count())

    monkeypatch.setattr(sentinel, "SentinelRun", Run)
    for name, value in {
        "INGEST_SITE": "site-a",
        "INGEST_BUCKET": "b",
        "INGEST_CATALOG_URL": "http://127.0.0.1:9",
        "INGEST_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "INGEST_SOURCES": json.dumps(
            [
                {
                    "name": "cdse",
                    "url": "https://stac.example.org/v1",
                    "collections": ["c"],
                    "assets": ["B04"],
                }
            ]
        ),
    }.items():
        monkeypatch.setenv(name, value)
    gc.unfreeze()
    try:
        assert cli.main(["sentinel"]) == cli.EXIT_OK
    finally:
        gc.unfreeze()
    assert frozen and frozen[0] > 10_000
    capsys.readouterr()


def slow_copies(run: SentinelRun, seconds: dict[str, float]) -> list[tuple[float, str]]:
    """Make `run`'s copy of each item named in `seconds` take that long; returns the
    (time.monotonic(), item id) of each copy's end."""
    copy = run._asset
    ended: list[tuple[float, str]] = []

    def asset(collection_id: str, item_id: str, *rest: Any) -> Any:
        time.sleep(seconds.get(item_id, 0.0))
        result = copy(collection_id, item_id, *rest)
        ended.append((time.monotonic(), item_id))
        return result

    run._asset = asset  # type: ignore[method-assign]
    return ended


def registered_at(catalog: RecordingCatalog, item_id: str) -> float:
    return min(
        t for t, (_, ids) in zip(catalog.times, catalog.upserts, strict=True) if item_id in ids
    )


def test_a_stop_while_the_search_is_read_registers_the_items_copied_before_the_copies_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM lands where the main thread spends its time (reading the search, waiting for a
    slot): the items copied by then were registered only once the copies in flight ended,
    which a pod's grace period may not outlast."""
    catalog = RecordingCatalog()
    stopped: list[float] = []

    def pages(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        yield from items[:3]  # a, b, and c, whose copy takes a second
        while sorted(i for _, i in ended) != ["a", "b"]:
            time.sleep(0.01)
        stopped.append(time.monotonic())
        raise Stop

    run, _ = copying_run(monkeypatch, ["a", "b", "c", "d"], catalog, pages)
    ended = slow_copies(run, {"c": 1.0})
    with pytest.raises(Stop):
        run.run()
    c_ended = max(t for t, i in ended if i == "c")
    assert sorted(catalog.upserts[0][1]) == ["a", "b"]
    assert registered_at(catalog, "a") < c_ended and registered_at(catalog, "b") < c_ended
    assert [ids for _, ids in catalog.upserts[1:]] == [["c"]] and run.report.registered == 3


def test_an_item_waits_at_most_the_register_wait_behind_a_long_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wait was checked only as an item was copied: a waited for b's whole copy."""
    monkeypatch.setattr(sentinel, "REGISTER_WAIT_SECONDS", 0.2)
    catalog = RecordingCatalog()
    run, _ = copying_run(monkeypatch, ["a", "b"], catalog)
    ended = slow_copies(run, {"b": 1.5})
    assert run.run().registered == 2
    a_copied = min(t for t, i in ended if i == "a")
    b_copied = min(t for t, i in ended if i == "b")
    assert registered_at(catalog, "a") < b_copied
    assert registered_at(catalog, "a") - a_copied < 0.2 + 0.5  # the bound, and a margin


def test_an_item_waits_at_most_the_register_wait_while_the_search_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow search page (the main thread reading it) held the item copied before it."""
    monkeypatch.setattr(sentinel, "REGISTER_WAIT_SECONDS", 0.2)
    catalog = RecordingCatalog()
    read_on: list[float] = []

    def pages(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        yield items[0]
        time.sleep(1.5)  # the next page
        read_on.append(time.monotonic())
        yield items[1]

    run, _ = copying_run(monkeypatch, ["a", "b"], catalog, pages)
    assert run.run().registered == 2
    assert registered_at(catalog, "a") < read_on[0]


def test_an_item_served_again_while_its_batch_is_written_is_not_copied_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batch left the waiting items before its upsert returned: an item served again in
    that window found it neither waiting nor in the catalog and was copied (reused) again."""
    monkeypatch.setattr(sentinel, "REGISTER_BATCH", 2)
    catalog = RecordingCatalog(delay=1.0)

    def pages(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        yield from items[:2]  # a, b: b's thread then writes [a, b] for a second
        time.sleep(0.5)
        yield items[2]  # a again (a search whose pages shifted)

    run, copied = copying_run(monkeypatch, ["a", "b", "a"], catalog, pages)
    report = run.run()
    assert copied.count("a") == 1 and report.skipped == 1 and report.registered == 2
    assert [sorted(ids) for _, ids in catalog.upserts] == [["a", "b"]]
