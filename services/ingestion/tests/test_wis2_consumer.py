"""The consumer's WIS2 bookkeeping without peers: a notification is acknowledged only when
every window holding one of its observations is written; duplicates are skipped; transient
download failures keep the message unacknowledged."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fedeploy_ingestion.decoding import DecodeLimits
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.observation import Observation
from fedeploy_ingestion.settings import IngestSettings
from fedeploy_ingestion.stream import Consumer, Delivery, Reconnected
from fedeploy_ingestion.wis2 import parse_notification

from services.ingestion.tests.wis2_build import notification, payload

T0 = datetime(2024, 6, 1, tzinfo=UTC)
LIMITS = DecodeLimits()
TOPIC = "origin/a/wis2/xx-test/data/core/weather/surface-based-observations/synop"


class Store:
    bucket = "b"

    def __init__(self) -> None:
        self.puts: list[str] = []

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.puts.append(key)


class Intake:
    """Stands in for the network side: `fetch` answers from `answers` (None = still failing)."""

    def __init__(self, observations: list[Observation]) -> None:
        self.observations = observations
        self.fetches = 0
        self.answers: list[bytes | None] = []

    def validate(self, data: bytes, limits: Any) -> Any:
        return parse_notification(data, limits.decode)

    def fetch(self, notification: Any, pause: Any, stopping: Any) -> bytes | None:
        self.fetches += 1
        return self.answers.pop(0) if self.answers else b"data"

    def decode(
        self, notification: Any, data: bytes, now: datetime, limits: Any, beat: Any = None
    ) -> tuple[list[Observation], list]:
        return list(self.observations), []


def wis2_consumer(observations: list[Observation]) -> tuple[Consumer, Intake, list[Any]]:
    settings = IngestSettings(
        site="site-a", bucket="b", stream_format="wis2", mqtt_topics=[f"{TOPIC}/#"]
    )
    made = Consumer(settings, Store(), None, Metrics())  # type: ignore[arg-type]
    intake = Intake(observations)
    made.wis2 = intake  # type: ignore[assignment]
    acked: list[Any] = []
    made._ack_now = acked.extend  # type: ignore[method-assign,assignment]
    return made, intake, acked


def obs(station: str, minutes: int) -> Observation:
    return Observation(station, T0 + timedelta(minutes=minutes), {"wind_speed": 1.0})


def deliver(consumer: Consumer, body: bytes, mid: int, generation: int = 1) -> None:
    consumer._handle(Delivery(TOPIC, body, mid, generation, time.monotonic()))


def write(consumer: Consumer, index: int) -> None:
    """Write the `index`-th open window (as `_write_due` does after a successful write)."""
    window = consumer.buffer.windows()[index]
    consumer._ack(consumer.buffer.take(window).tags)


def test_a_notification_spanning_windows_is_acknowledged_after_its_last_window() -> None:
    # Two stations, two 10-minute windows each: four windows from one notification.
    consumer, _, acked = wis2_consumer(
        [obs("A", 0), obs("A", 15), obs("B", 1), obs("B", 16), obs("B", 2)]
    )
    deliver(consumer, payload(notification(b"data", "https://h/x")), mid=7)
    assert len(consumer.buffer) == 4 and acked == []
    for index in range(3):
        write(consumer, 0)
        assert acked == [], f"acknowledged after {index + 1} of 4 windows"
    write(consumer, 0)
    assert acked == [(1, 7, 1, 0)]


def test_duplicates_by_id_or_by_data_id_and_pubtime_are_skipped_without_a_download() -> None:
    consumer, intake, acked = wis2_consumer([obs("A", 0)])
    first = notification(b"data", "https://h/x", data_id="d/1", pubtime="2024-06-01T00:05:00Z")
    deliver(consumer, payload(first), mid=1)
    deliver(consumer, payload(first), mid=2)  # same id, while the first is held
    assert acked == [(1, 2, 1, 0)] and intake.fetches == 1
    write(consumer, 0)
    assert acked == [(1, 2, 1, 0), (1, 1, 1, 0)]
    deliver(consumer, payload(first), mid=3)  # same id, after it was stored
    same_data = notification(b"data", "https://h/y", data_id="d/1", pubtime="2024-06-01T00:05:00Z")
    deliver(consumer, payload(same_data), mid=4)  # new id, same data_id + pubtime
    assert acked[-2:] == [(1, 3, 1, 0), (1, 4, 1, 0)] and intake.fetches == 1
    republished = notification(
        b"data", "https://h/x", data_id="d/1", pubtime="2024-06-01T01:00:00Z"
    )
    deliver(consumer, payload(republished), mid=5)  # a new publication: taken
    assert intake.fetches == 2
    assert consumer.metrics.messages_skipped._value.get() == 3


def test_after_a_reconnection_a_held_notification_delivered_again_is_taken_again() -> None:
    consumer, intake, acked = wis2_consumer([obs("A", 0)])
    body = payload(notification(b"data", "https://h/x"))
    deliver(consumer, body, mid=1, generation=1)
    consumer.inbox.put(Reconnected(2))
    consumer._drain(timeout=0)  # held messages kept; the broker sends the QoS 1 one again
    assert consumer.buffer.pending == 1
    deliver(consumer, body, mid=1, generation=2)
    assert intake.fetches == 2 and acked == []  # not skipped as a duplicate
    write(consumer, 0)  # one window: both copies, one row; only the current tag is acked
    assert (2, 1, 1, 0) in acked


def test_a_download_still_failing_when_stopping_leaves_the_message_unacknowledged() -> None:
    consumer, intake, acked = wis2_consumer([obs("A", 0)])
    intake.answers = [None]
    deliver(consumer, payload(notification(b"data", "https://h/x")), mid=1)
    assert acked == [] and len(consumer.buffer) == 0 and consumer.store.puts == []  # type: ignore[attr-defined]


def test_transient_download_failures_are_retried_with_backoff_then_the_digest_checked() -> None:
    import httpx
    from fedeploy_ingestion.download_safety import AddressGuard, DownloadPolicy
    from fedeploy_ingestion.observation import InvalidObservation
    from fedeploy_ingestion.wis2_intake import Wis2Intake

    answers = [httpx.Response(503), httpx.Response(503), httpx.Response(200, content=b"data")]
    intake = Wis2Intake(IngestSettings(stream_format="wis2", wis2_download_hosts=["h.example"]))
    intake.policy = DownloadPolicy(
        "wis2",
        ("h.example",),
        frozenset({"https"}),
        AddressGuard.build(resolver=lambda host, port: ["93.184.216.34"]),
    )
    intake.http = httpx.Client(transport=httpx.MockTransport(lambda request: answers.pop(0)))
    waits: list[float] = []
    note = parse_notification(payload(notification(b"data", "https://h.example/x")), LIMITS)
    assert intake.fetch(note, waits.append, lambda: False) == b"data"
    assert waits == [0.5, 1.0]  # exponential backoff from 0.5 s
    answers[:] = [httpx.Response(200, content=b"tampered")]
    try:
        intake.fetch(note, waits.append, lambda: False)
    except InvalidObservation as refused:
        assert refused.code == "digest-mismatch"
    else:
        raise AssertionError("a digest mismatch was accepted")
    answers[:] = [httpx.Response(503)] * 5
    assert intake.fetch(note, waits.append, lambda: len(waits) > 3) is None


def test_refused_subsets_are_recorded_and_the_good_ones_stored_before_the_ack() -> None:
    from fedeploy_ingestion.bufr import SubsetRefusal

    consumer, intake, acked = wis2_consumer([obs("A", 0)])
    refusal = SubsetRefusal(1, 2, "no-time", "station 0-20000-0-B: the subset has no time")
    intake.decode = lambda notification, data, now, limits, beat: ([obs("A", 0)], [refusal])  # type: ignore[method-assign]
    deliver(consumer, payload(notification(b"data", "https://h/x")), mid=1)
    (key,) = consumer.store.puts  # type: ignore[attr-defined]
    assert key.startswith(consumer.settings.dead_letter_prefix)
    assert acked == [] and consumer.buffer.pending == 1  # held until its window is written
    write(consumer, 0)
    assert acked == [(1, 1, 1, 0)]


def test_a_wis2_stream_without_topics_or_download_hosts_is_refused_at_start(
    monkeypatch, capsys
) -> None:
    from fedeploy_ingestion import cli

    for name, value in {
        "INGEST_SITE": "site-a",
        "INGEST_BUCKET": "b",
        "INGEST_CATALOG_URL": "http://127.0.0.1:9",
        "INGEST_MQTT_HOST": "127.0.0.1",
        "INGEST_STREAM_FORMAT": "wis2",
        "INGEST_MQTT_TOPICS": f"{TOPIC}/#",
    }.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["stream"]) == cli.EXIT_CONFIG
    assert "wis2_download_hosts" in capsys.readouterr().err.lower()


def test_a_configured_official_schema_is_checked_too_and_a_bad_one_refused_at_start(
    tmp_path,
) -> None:
    import json

    import pytest
    from fedeploy_ingestion.errors import ConfigError
    from fedeploy_ingestion.observation import InvalidObservation
    from fedeploy_ingestion.wis2_intake import Wis2Intake

    # A stand-in written here (the official schema is not part of the project): it asks for
    # a member our model does not need, so only the schema check can refuse the message.
    schema = tmp_path / "wnm.json"
    schema.write_text(json.dumps({"type": "object", "required": ["version"]}))
    intake = Wis2Intake(IngestSettings(stream_format="wis2", wis2_schema_file=str(schema)))
    document = notification(b"data", "https://h/x")
    with pytest.raises(InvalidObservation) as refused:
        intake.validate(payload(document), _limits())
    assert refused.value.code == "notification" and "official schema" in refused.value.reason
    intake.validate(payload({**document, "version": "v04"}), _limits())
    schema.write_text("{not json")
    with pytest.raises(ConfigError, match="wnm.json"):
        Wis2Intake(IngestSettings(stream_format="wis2", wis2_schema_file=str(schema)))


def _limits() -> Any:
    from fedeploy_ingestion.observation import Limits

    return Limits()
