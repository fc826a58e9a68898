"""The run's time shared by the Sentinel sources (review copyfix28 F1): INGEST_RUN_DEADLINE_SECONDS
less its margin, split in turn among the sources left; a source's copies in flight end at its
share, naming it, it stops taking items, and the next source gets the time that is left. With
loopback servers that drip above the rate floor (whose copy deadline is hours)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fedeploy_ingestion import sentinel
from fedeploy_ingestion.download_safety import Deadline
from fedeploy_ingestion.errors import SourceError
from fedeploy_ingestion.product_copy import run_share
from fedeploy_ingestion.settings import HarvestSettings, IngestSettings
from fedeploy_ingestion.upstream import HttpAsset

from services.ingestion.tests.test_direct_body import ScriptedHost, asset_of, headers, served
from services.ingestion.tests.test_sentinel_run import RecordingStore, make_run

__all__ = ["served"]  # fixture

SHARE = "source up: its share of the run's time"


def budgeted(host: ScriptedHost, seconds: float, **options: Any) -> HttpAsset:
    """B04.jp2 of `host` under a 1 KiB/s floor (its copy deadline 10 min and more), read
    timeout 5 s, and a budget of `seconds` from now."""
    plain = asset_of(host, timeout=5.0)
    budget = Deadline(seconds, SHARE)
    return HttpAsset(
        plain.href, plain._http, plain._credentials, 1024, 0.5, budget=budget, **options
    )


def test_a_body_dripped_above_the_floor_ends_at_its_sources_share(
    served: list[ScriptedHost],
) -> None:
    # 1,100 B every 0.5 s, above the floor: read until the copy's deadline (10 min here,
    # 9 h 16 min for 1 GiB at the default floor, beyond the Job's 6 h), before.
    host = ScriptedHost([headers(40 * 1024)] + [p for _ in range(36) for p in (0.5, b"y" * 1100)])
    served.append(host)
    chunks, _, _ = budgeted(host, 2.0).open(0)
    began = time.monotonic()
    with pytest.raises(SourceError, match=f"{SHARE}: not done within 2 s"):
        while chunks.readinto(memoryview(bytearray(65536))):  # type: ignore[attr-defined]
            pass
    assert time.monotonic() - began < 3


def test_headers_that_never_come_end_at_its_sources_share_without_a_headers_timeout(
    served: list[ScriptedHost],
) -> None:
    host = ScriptedHost([30.0])  # no headers; the read timeout (5 s) never passes between bytes
    served.append(host)
    began = time.monotonic()
    with pytest.raises(SourceError, match=SHARE):
        budgeted(host, 1.0).open(0)
    assert time.monotonic() - began < 2


def test_a_share_already_spent_sends_nothing(served: list[ScriptedHost]) -> None:
    host = ScriptedHost([headers(10)])
    served.append(host)
    asset = budgeted(host, 1e-6, headers_timeout=5.0)
    time.sleep(0.01)
    with pytest.raises(SourceError, match=SHARE):
        asset.open(0)
    assert host.accepted == 0


def items(prefix: str, count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        yield {"id": f"{prefix}{n}", "collection": "c", "assets": {"B04_10m": {"href": "x"}}}


def two_source_run(deadline: float | None) -> sentinel.SentinelRun:
    """A run over sources `slow` then `fast` (the same STAC API), with `deadline`."""
    run = make_run(["B04_10m"], None)
    first = run.settings.sources[0]
    sources = [first.model_copy(update={"name": n}) for n in ("slow", "fast")]
    run.settings = run.settings.model_copy(
        update={"sources": sources, "run_deadline_seconds": deadline}
    )
    return run


def test_a_source_at_its_share_stops_and_the_next_source_gets_the_time_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 5 s less a tenth, shared by two sources: `slow` gets 2.25 s. Its copies drip forever
    # (each bound only by its share, as HttpAsset's reads are), and its search has more items than
    # its share can take (1,000).
    run = two_source_run(5.0)
    monkeypatch.setattr(
        sentinel,
        "search",
        lambda source, *a, **k: items(source.name, 1000 if source.name == "slow" else 3),
    )
    shares: dict[str, float] = {}
    handled: list[str] = []
    began = time.monotonic()

    def item(source: Any, found: dict[str, Any], *args: Any) -> None:
        budget = run._budget or Deadline(0.01, "(no share: a 10 ms stand-in)")
        shares.setdefault(source.name, budget.at - began)  # its end, from the test's start
        while source.name == "slow":  # a dripping upstream: ends only at the share
            budget.left()
            time.sleep(0.005)
        handled.append(found["id"])

    run._item = item  # type: ignore[assignment]
    report = run.run()
    assert time.monotonic() - began < 4  # slow's share, then fast's three items
    # slow's share ends 2.25 s after the run began; fast's with the 4.5 s, the rest its own.
    assert 2.15 < shares["slow"] <= 2.3 and 4.4 < shares["fast"] <= 4.55
    assert handled == ["fast0", "fast1", "fast2"]
    assert (
        "slow:budget" in report.failed and "left for the next run" in report.failed["slow:budget"]
    )
    failures = [text for name, text in report.failed.items() if name.startswith("c/slow")]
    assert failures and all("source slow: its share of the run's time" in t for t in failures)
    assert len(failures) <= sentinel.ITEMS_IN_FLIGHT + 1  # no new items once it has passed


def test_the_agencies_sources_count_in_the_split() -> None:
    run = two_source_run(1000.0)
    run.settings = run.settings.model_copy(
        update={"ecmwf_sources": [object()], "polytope_sources": [object(), object()]}
    )
    share = run_share(run.settings, time.monotonic(), "sentinel", 0, "slow")
    assert share is not None and 899 / 5 < share.left() <= 900 / 5  # 2 Sentinel + 3 others
    assert "1/5 of what was left of INGEST_RUN_DEADLINE_SECONDS=1000 s less 100 s" in share.what


def test_without_a_run_deadline_nothing_is_shared() -> None:
    assert run_share(two_source_run(None).settings, 0.0, "sentinel", 0, "slow") is None


def test_each_copy_gets_its_sources_share(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []
    monkeypatch.setattr(sentinel, "HttpAsset", lambda *args, **options: made.append(options))
    store = RecordingStore()
    monkeypatch.setattr(store, "copy_from", lambda key, source, **checks: source)
    run = two_source_run(600.0)
    run.store = store  # type: ignore[assignment]
    run._budget = Deadline(60, "share")
    with pytest.raises(AttributeError):  # the recorded options are no copy's result
        run._asset("c", "i", "B04_10m", {"href": "https://stac.example.org/B04.jp2"}, None, "fp")  # type: ignore[arg-type]
    assert made[0]["budget"] is run._budget


def test_the_run_deadline_is_bounded_and_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    assert IngestSettings().run_deadline_seconds is None
    monkeypatch.setenv("INGEST_RUN_DEADLINE_SECONDS", "21600")
    assert IngestSettings().run_deadline_seconds == 21600
    for bad in ("0", "inf", "1e10"):
        monkeypatch.setenv("INGEST_RUN_DEADLINE_SECONDS", bad)
        with pytest.raises(ValueError, match="run_deadline_seconds"):
            IngestSettings()


@pytest.mark.parametrize("value", ["1e10", "inf", "3601"])
def test_the_http_timeout_is_at_most_an_hour(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    # 1e10 and inf were taken, and every request failed with OverflowError, before.
    monkeypatch.setenv("INGEST_HTTP_TIMEOUT_SECONDS", value)
    with pytest.raises(ValueError, match="http_timeout_seconds"):
        IngestSettings()
    monkeypatch.setenv("INGEST_HTTP_TIMEOUT_SECONDS", "3600")
    assert IngestSettings().http_timeout_seconds == 3600


@pytest.mark.parametrize("value", ["1e10", "inf", "3601"])
def test_the_harvesters_http_timeout_is_at_most_an_hour(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # An unbounded timeout was taken (1e10, inf): every request of the harvest then failed.
    monkeypatch.setenv("HARVEST_HTTP_TIMEOUT_SECONDS", value)
    with pytest.raises(ValueError, match="http_timeout_seconds"):
        HarvestSettings()
    monkeypatch.setenv("HARVEST_HTTP_TIMEOUT_SECONDS", "3600")
    assert HarvestSettings().http_timeout_seconds == 3600
