"""The field's shapes of BUFR data (tests/field_corpus): every value stored and every refusal
against the corpus' expected table; corrections; GTS envelopes; bounded decoding."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fedeploy_ingestion.bufr import DecodeBudget, decode_bufr, find_messages
from fedeploy_ingestion.observation import InvalidObservation, Limits, Observation, merge
from fedeploy_ingestion.window_table import from_parquet, to_parquet

from services.ingestion.tests.bufr_encode import SYNOP, encode_message, gts_bulletin
from services.ingestion.tests.field_corpus import EXPECTED, REFUSED, T0, build

NOW = T0 + timedelta(days=1)
CORPUS = build()


def published(pubtime: str) -> datetime:
    return datetime.fromisoformat(pubtime.replace("Z", "+00:00")).astimezone(UTC)


def decode(name: str) -> tuple[list[Observation], list[str]]:
    """A corpus file's observations and the sorted codes of what it refused."""
    entry = CORPUS[name]
    try:
        observations, refused = decode_bufr(entry.data, NOW, Limits(), published(entry.pubtime))
    except InvalidObservation as whole:
        return [], [whole.code]
    return observations, sorted(r.code for r in refused)


def values(observations: list[Observation]) -> set[tuple[str, datetime, str, float]]:
    return {(o.station, o.time, k, v) for o in observations for k, v in o.values.items()}


def test_every_value_of_the_corpus_matches_the_expected_table() -> None:
    decoded = {name: decode(name) for name in CORPUS}
    assert values(merge(*(obs for obs, _ in decoded.values()))) == EXPECTED
    assert {name: codes for name, (_, codes) in decoded.items() if codes} == REFUSED


@pytest.mark.parametrize("name", ["gts-single.bin", "gts-multi.bin", "padded.bufr"])
def test_messages_inside_gts_envelopes_and_padding_are_found(name: str) -> None:
    observations, _ = decode(name)
    assert observations, f"{name}: nothing decoded"


def test_the_multi_bulletin_file_yields_each_bulletin_with_its_heading() -> None:
    located, broken = find_messages(CORPUS["gts-multi.bin"].data)
    assert broken == []
    assert [m.heading for m in located] == [
        "ISMD01 EDZW 010600",
        "ISMD02 LFPW 010600",
        "ISSD01 EGRR 010600",
        "ISSD01 EGRR 010600",  # ship and buoy messages in one bulletin
    ]


def test_a_cca_bulletin_carries_its_correction_rank() -> None:
    (located,), _ = find_messages(CORPUS["correction.bin"].data)
    assert located.heading == "ISMD01 LFPW 010600 CCA" and located.correction == 1


def test_bytes_around_messages_holding_none_are_still_refused() -> None:
    for data in (b"ISMD01 LFPW 010600\r\r\nNIL\r\r\n", b"\0" * 64):
        with pytest.raises(InvalidObservation) as refused:
            find_messages(data)
        assert refused.value.code == "bufr" and "no BUFR message" in refused.value.reason


def test_a_truncated_message_beside_a_whole_one_is_refused_alone() -> None:
    whole = CORPUS["first.bufr"].data
    observations, refused = decode_bufr(whole + b"\r\r\n" + whole[:-20], NOW, Limits())
    assert len(observations) == 1
    assert [r.code for r in refused] == ["bufr"] and "not whole" in refused[0].reason


@pytest.mark.parametrize("order", ["first-then-correction", "correction-then-first"])
def test_a_later_publication_replaces_the_earlier_whatever_the_arrival_order(order: str) -> None:
    first, _ = decode("first.bufr")
    corrected, _ = decode("correction.bin")
    batches = [first, corrected] if order == "first-then-correction" else [corrected, first]
    (stored,) = merge(*batches)
    assert stored.values == {"air_temperature": -0.2}
    # Kept across restarts: the window object carries what decides, and merging the stored
    # window with the first publication delivered again keeps the correction.
    (again,) = merge(from_parquet(to_parquet([stored])), first)
    assert again.values == {"air_temperature": -0.2}
    assert (again.published, again.correction) == (stored.published, 1)


def test_at_the_same_pubtime_the_higher_correction_rank_wins() -> None:
    when = published("2024-06-01T06:05:00Z")
    first = decode_bufr(CORPUS["first.bufr"].data, NOW, Limits(), when)[0]
    corrected = decode_bufr(CORPUS["correction.bin"].data, NOW, Limits(), when)[0]
    assert merge(corrected, first)[0].values == {"air_temperature": -0.2}


def test_a_subset_bomb_is_refused_from_section_3_before_it_is_unpacked() -> None:
    # One compressed message declaring 65,535 subsets of one station's few values is a few
    # hundred bytes; decoded it would be 65,535 observations.
    bomb = encode_message([{"blockNumber": 1, "stationNumber": 1}] * 65_535, (1001, 1002))
    assert len(bomb) < 1000
    unpacked: list[int] = []
    with pytest.raises(InvalidObservation) as refused:
        decode_bufr(bomb * 10, NOW, Limits(), beat=lambda: unpacked.append(1))
    assert refused.value.code == "too-large"
    assert "65535 subsets" in refused.value.reason and "at most 10000" in refused.value.reason
    assert len(unpacked) == 1  # refused at the first message's section 3, none unpacked


def test_the_subset_budget_counts_over_every_message_of_a_file() -> None:
    message = encode_message(
        [{"blockNumber": 1, "stationNumber": n, "year": 2024} for n in range(1, 101)],
        SYNOP,
    )
    with pytest.raises(InvalidObservation) as refused:
        decode_bufr(message * 3, NOW, Limits(), budget=DecodeBudget(max_subsets=250))
    assert refused.value.code == "too-large" and "message 3" in refused.value.reason


def test_decoding_beats_the_heartbeat_between_messages() -> None:
    beats: list[float] = []
    data = gts_bulletin(CORPUS["first.bufr"].data, "ISMD01 LFPW 010600") * 3
    decode_bufr(data, NOW, Limits(), beat=lambda: beats.append(time.monotonic()))
    assert len(beats) == 3


def test_precipitation_is_taken_from_the_occurrence_over_one_hour() -> None:
    station = {"blockNumber": 7, "stationNumber": 1, "year": 2024, "month": 6, "day": 1,
               "hour": 6, "minute": 0, "#1#totalPrecipitationOrTotalWaterEquivalent": 9.0,
               "#2#totalPrecipitationOrTotalWaterEquivalent": 0.6}  # fmt: skip
    periods = {
        "#1#totalPrecipitationOrTotalWaterEquivalent": -24,
        "#2#totalPrecipitationOrTotalWaterEquivalent": -1,
    }
    data = encode_message([station, {**station, "stationNumber": 2}], SYNOP, periods=periods)
    observations, _ = decode_bufr(data, NOW, Limits())
    assert [o.values for o in observations] == [{"precipitation": 0.6}] * 2
