"""Reviewer-built BUFR inputs that must fail alone, within the pod's memory: delayed
replication past the budget, uncompressed subsets, 'BUFR' repeated with no message, and
precipitation periods in minutes or seconds."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fedeploy_ingestion import bufr, bufr_worker
from fedeploy_ingestion.bufr import DecodeBudget, decode_bufr, load_eccodes
from fedeploy_ingestion.bufr_worker import decode_bufr_bounded
from fedeploy_ingestion.dead_letter import MAX_REASON_CHARS, dead_letter_document
from fedeploy_ingestion.observation import InvalidObservation, Limits

from services.ingestion.tests.bufr_encode import Station, encode
from services.ingestion.tests.field_corpus import T0
from services.ingestion.tests.test_bufr import NOW, station_and_time, uncompressed_synop


def replicated(factor: int, subsets: int) -> bytes:
    """A compressed message whose one element (012101) sits in an extended delayed
    replication of `factor`: section 3 shows 12 descriptors whatever the factor
    (/tmp/rv/rep.py's shape)."""
    eccodes = load_eccodes()
    handle = eccodes.codes_bufr_new_from_samples("BUFR4")
    try:
        eccodes.codes_set(handle, "masterTablesVersionNumber", 32)
        eccodes.codes_set(handle, "dataCategory", 0)
        eccodes.codes_set(handle, "numberOfSubsets", subsets)
        eccodes.codes_set(handle, "compressedData", 1)
        eccodes.codes_set_array(handle, "inputExtendedDelayedDescriptorReplicationFactor", [factor])
        eccodes.codes_set_array(
            handle,
            "unexpandedDescriptors",
            [1001, 1002, 4001, 4002, 4003, 4004, 4005, 5002, 6002, 101000, 31002, 12101],
        )
        eccodes.codes_set(handle, "pack", 1)
        return bytes(eccodes.codes_get_message(handle))
    finally:
        eccodes.codes_release(handle)


def test_a_delayed_replication_past_the_memory_budget_is_refused_too_large() -> None:
    bomb = replicated(65_535, 1)  # 131 KB; unpacked, about 400 MiB
    with pytest.raises(InvalidObservation) as refused:
        decode_bufr_bounded(bomb, NOW, Limits())
    assert refused.value.code == "too-large"
    assert "needs more than 192 MiB" in refused.value.reason
    # the consumer's process is unharmed: the next file decodes (in a new worker)
    good = encode([Station(T0, wigos="SAFE1", values={"windSpeed": 2.0})])
    observations, _ = decode_bufr_bounded(good, NOW, Limits())
    assert [o.values for o in observations] == [{"wind_speed": 2.0}]


def test_the_heartbeat_beats_while_a_message_is_decoded(monkeypatch: Any) -> None:
    monkeypatch.setattr(bufr_worker, "BEAT_SECONDS", 0.001)
    beats: list[int] = []
    data = uncompressed_synop(30, lambda put, keys, i: station_and_time(put, i, hour=6))
    decode_bufr_bounded(data, NOW, Limits(), beat=lambda: beats.append(1))  # 20 ms or so
    assert len(beats) > 1  # one message: decode_bufr alone beats once, before it


def test_uncompressed_subsets_are_budgeted_by_their_unpacked_size_before_unpacking() -> None:
    data = uncompressed_synop(40, lambda put, keys, i: station_and_time(put, i, hour=6))
    # 40 subsets x 247 descriptors x 5 KiB = 48 MiB once unpacked
    with pytest.raises(InvalidObservation) as refused:
        decode_bufr(data, NOW, Limits(), budget=DecodeBudget(max_uncompressed_bytes=32 * 2**20))
    assert refused.value.code == "too-large"
    assert "40 uncompressed subsets of 247 descriptors" in refused.value.reason


def test_uncompressed_subsets_are_read_in_one_pass(monkeypatch: Any) -> None:
    read: list[str] = []
    real = bufr._read

    def spy(handle: Any, key: str) -> list[Any]:
        read.append(key)
        return real(handle, key)

    def fill(put: Callable[[str, float], None], keys: list[str], i: int) -> None:
        station_and_time(put, i, hour=i)
        put(f"#{2 * i - 1}#nonCoordinatePressure", 100000.0 - 100 * i)

    monkeypatch.setattr(bufr, "_read", spy)
    observations, _ = decode_bufr(uncompressed_synop(3, fill), NOW, Limits())
    assert [(o.station, o.values) for o in observations] == [
        (f"0-20000-0-0610{i}", {"air_pressure": 1000.0 - i}) for i in (1, 2, 3)
    ]
    assert not [k for k in read if k.startswith("/subsetNumber=")]  # each walks the message


def test_bufr_repeated_with_no_message_gives_a_bounded_reason_and_dead_letter() -> None:
    data = b"BUFR" * 100_000  # /tmp/rv/manyb.py's shape, 400 KB
    with pytest.raises(InvalidObservation) as refused:
        decode_bufr(data, NOW, Limits())
    assert refused.value.code == "bufr"
    assert len(refused.value.reason) < 5_000
    assert "and 99980 more 'BUFR' that start no whole message" in refused.value.reason
    record = json.loads(dead_letter_document("t", b"x", "bufr", "y" * 10**7, NOW))
    assert len(record["reason"]) < MAX_REASON_CHARS + 100
    assert record["reason"].endswith("(9991808 more characters left out)")


def periods(first: tuple[int, int, float], second: tuple[int, int, float]) -> bytes:
    """One uncompressed subset: station 06101 at 2026-11-30 06:00, then two (period
    descriptor, period, 013011 amount) pairs."""
    eccodes = load_eccodes()
    handle = eccodes.codes_bufr_new_from_samples("BUFR4")
    try:
        eccodes.codes_set(handle, "masterTablesVersionNumber", 32)
        eccodes.codes_set(handle, "compressedData", 0)
        eccodes.codes_set_array(
            handle,
            "unexpandedDescriptors",
            [1001, 1002, 301011, 301012, first[0], 13011, second[0], 13011],
        )
        put: Callable[[str, Any], None] = lambda k, v: eccodes.codes_set(handle, k, v)  # noqa: E731
        station_and_time(put, 1, hour=6)
        for n, (_, period, amount) in enumerate((first, second), start=1):
            put(f"#{n}#timePeriod", period)
            put(f"#{n}#totalPrecipitationOrTotalWaterEquivalent", amount)
        eccodes.codes_set(handle, "pack", 1)
        return bytes(eccodes.codes_get_message(handle))
    finally:
        eccodes.codes_release(handle)


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        # one minute (004025 = -1) is not one hour: the hour in minutes after it is taken
        ((4025, -1, 0.3), (4025, -60, 1.5), 1.5),
        # an hour in seconds (004026 = -3600)
        ((4026, -1, 0.2), (4026, -3600, 0.7), 0.7),
        ((4024, -1, 0.4), (4025, -60, 1.5), 0.4),
    ],
)
def test_the_precipitation_period_is_read_with_its_unit(
    first: tuple[int, int, float], second: tuple[int, int, float], expected: float
) -> None:
    observations, refused = decode_bufr(periods(first, second), NOW, Limits())
    assert refused == []
    assert [o.values for o in observations] == [{"precipitation": expected}]


def test_the_decoder_ends_quietly_when_the_consumer_dies_without_reading_its_answer() -> None:
    # CI, stop 29: a consumer SIGKILLed while its decoder's answer was unread left the decoder
    # a reset pipe, and it ended with a traceback in the pod's log (exit code 1).
    worker = bufr_worker._Worker()
    conn = worker.ready(256 * 2**20)
    process = worker.process
    conn.send((b"not bufr", NOW, Limits(), None, DecodeBudget()))
    assert conn.poll(30), "the decoder answers"
    conn.send((b"not bufr either", NOW, Limits(), None, DecodeBudget()))
    conn.close()  # with the answer unread: the decoder's pipe is reset, as when a pod is killed
    process.join(30)
    assert process.exitcode == 0, "the decoder ended with an error (a traceback in the log)"
    process.close()
