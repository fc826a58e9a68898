"""The consumer's error boundaries, without a broker: one message or one write fails alone."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from fedeploy_ingestion import stream
from fedeploy_ingestion.errors import StorageError
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.settings import IngestSettings
from fedeploy_ingestion.stream import Consumer, Delivery, backoff

GOOD = {
    "schema": "fedeploy.observation/1",
    "station": "bz-01",
    "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "variables": {"air_temperature": {"value": 18.5, "unit": "degC"}},
}
TOPIC = "fedeploy/site-a/stations/bz-01/observations"


class FlakyStore:
    """Fails the first `failures` PUTs (with any exception type), then stores."""

    bucket = "b"

    def __init__(self, failures: int, error: type[Exception] = StorageError) -> None:
        self.failures = failures
        self.error = error
        self.puts: list[str] = []

    def put(self, key: str, data: bytes, content_type: str) -> None:
        if self.failures:
            self.failures -= 1
            raise self.error("store down")
        self.puts.append(key)


class FailingWriter:
    def __init__(self) -> None:
        self.calls = 0

    def write_batch(self, windows: list[Any]) -> list[int]:
        self.calls += 1
        raise ZeroDivisionError("not an IngestError")


def consumer(store: Any, writer: Any = None, **settings: Any) -> tuple[Consumer, list[Any]]:
    made = Consumer(IngestSettings(site="site-a", bucket="b", **settings), store, writer, Metrics())
    acked: list[Any] = []
    made._ack = acked.extend  # type: ignore[method-assign,assignment]
    return made, acked


def delivery(payload: bytes, mid: int = 1) -> Delivery:
    return Delivery(TOPIC, payload, mid, 0, time.monotonic())


def test_backoff_doubles_from_half_a_second_and_is_capped() -> None:
    assert [backoff(n, 30) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff(10_000, 30) == 30


def test_a_dead_letter_write_retries_with_capped_exponential_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = FlakyStore(failures=7, error=ConnectionResetError)  # not an IngestError either
    made, acked = consumer(store, retry_max_seconds=4)
    waits: list[float] = []
    monkeypatch.setattr(made, "_pause", waits.append)  # _pause beats the heartbeat (below)
    made._handle(delivery(b"[" * 60_000))
    assert store.puts and acked == [(0, 1, 1, 0)]
    assert [round(w, 3) for w in waits] == [0.5, 1, 2, 4, 4, 4, 4]
    assert made.metrics.write_errors.labels("dead-letter")._value.get() == 7
    assert made.metrics.dead_letters.labels("too-deep")._value.get() == 1


def test_a_long_wait_is_cut_into_slices_that_each_beat_the_heartbeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made, _ = consumer(FlakyStore(0))
    slices: list[float] = []
    clock = [1000.0]
    monkeypatch.setattr(stream.time, "monotonic", lambda: clock[0])

    def fake_wait(seconds: float) -> bool:
        slices.append(seconds)
        clock[0] += seconds
        return False

    monkeypatch.setattr(made._stop, "wait", fake_wait)
    made._pause(12.0)
    assert slices == [5.0, 5.0, 2.0]
    assert made.heartbeat == 1012.0


def test_stopping_while_the_store_is_down_acknowledges_nothing() -> None:
    made, acked = consumer(FlakyStore(failures=10**9))
    made._stop.set()
    made._handle(delivery(b"{broken"))
    assert acked == []


def test_any_exception_while_handling_one_message_dead_letters_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = FlakyStore(0)
    made, acked = consumer(store)

    def explode(*_: Any) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(stream, "parse_observation", explode)
    made._handle(delivery(json.dumps(GOOD).encode(), mid=7))
    assert acked == [(0, 7, 1, 0)] and len(store.puts) == 1
    assert made.metrics.dead_letters.labels("invalid")._value.get() == 1


def test_a_window_write_failing_with_any_exception_is_held_and_retried_later() -> None:
    writer = FailingWriter()
    made, acked = consumer(FlakyStore(0), writer, retry_max_seconds=10)
    made._handle(delivery(json.dumps(GOOD).encode()))
    for attempt in range(1, 6):
        made._retry_at = 0.0
        made._write_due(float("inf"), everything=True)
        assert writer.calls == attempt
        assert made._retry_at - time.monotonic() == pytest.approx(backoff(attempt, 10), abs=0.1)
    assert acked == [] and made.buffer.pending == 1


def test_the_lag_gauge_tells_the_age_of_the_oldest_held_message_while_writes_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store refusing writes for hours: the gauge grows with the held message's age,
    through failed writes and the retry backoff alike (IngestLagBeyondWindow's fault)."""
    clock = [1000.0]
    monkeypatch.setattr(stream.time, "monotonic", lambda: clock[0])
    made, acked = consumer(FlakyStore(0), FailingWriter(), window_seconds=3600)
    made._handle(Delivery(TOPIC, json.dumps(GOOD).encode(), 1, 0, clock[0]))
    for step in range(1, 49):  # four hours in five-minute steps
        clock[0] += 300
        made._write_due(clock[0])
        assert made.metrics.lag_seconds._value.get() == step * 300
        assert made.metrics.pending_messages._value.get() == 1
    assert acked == [] and made.metrics.write_errors.labels("window")._value.get() > 0
