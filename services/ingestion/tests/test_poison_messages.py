"""Poison messages: each one refused with its reason code, whatever the decoder would do."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fedeploy_ingestion.decoding import DecodeLimits, decode_message, too_deep
from fedeploy_ingestion.observation import (
    InvalidObservation,
    Limits,
    Measurement,
    parse_observation,
)
from fedeploy_ingestion.stac_documents import rfc3339
from fedeploy_ingestion.windowing import stamp, window_of

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
GOOD = {
    "schema": "fedeploy.observation/1",
    "station": "bz-01",
    "time": "2024-06-01T11:59:30Z",
    "variables": {"air_temperature": {"value": 18, "unit": "degC"}},
}


def refusal(payload: bytes, limits: Limits | None = None) -> str:
    with pytest.raises(InvalidObservation) as refused:
        parse_observation(
            payload, "fedeploy/site-a/stations/bz-01/observations", NOW, limits or Limits()
        )
    assert refused.value.reason
    return refused.value.code


def test_every_poison_message_is_refused_with_its_reason_code(
    poison_message: tuple[str, bytes, str],
) -> None:
    name, payload, code = poison_message
    assert refusal(payload) == code, name


def test_the_corpus_covers_what_the_issue_names(
    poison_messages: list[tuple[str, bytes, str]],
) -> None:
    names = {name for name, _, _ in poison_messages}
    assert {
        "deep-nesting.json",
        "invalid-utf8.json",
        "bom.json",
        "nan.json",
        "infinity.json",
    } <= names
    assert {"bool-values.json", "string-number.json", "epoch-seconds.json"} <= names
    assert {"clock-never-set.json", "duplicate-keys.json", "ten-megabytes", "empty.json"} <= names


def test_deep_nesting_is_refused_before_decoding_even_when_size_would_allow_it() -> None:
    # The field case: 200 KB of '[' made json.loads raise RecursionError and kill the consumer.
    payload = (Path(__file__).parent / "poison" / "deep-nesting.json").read_bytes()
    limits = Limits(decode=DecodeLimits(max_bytes=1024 * 1024, max_depth=16))
    assert refusal(payload, limits) == "too-deep"
    deeper_than_python = b"[" * (sys.getrecursionlimit() * 20)
    assert refusal(deeper_than_python, limits) == "too-deep"


def test_brackets_inside_strings_do_not_count_towards_depth() -> None:
    assert not too_deep(json.dumps({"a": "[[[[[[[[[[[[", "b": '\\"[[[[[[['}).encode(), 2)
    assert too_deep(b'{"a": [[["x"]]]}', 3)
    assert not too_deep(b'{"a": [["x"]]}', 3)
    message = json.dumps({**GOOD, "station": "bz-01"}).encode()
    assert decode_message(message, DecodeLimits(max_depth=3))["station"] == "bz-01"


def test_the_good_message_passes_and_integers_are_numbers() -> None:
    observation = parse_observation(json.dumps(GOOD).encode(), None, NOW)
    assert observation.values == {"air_temperature": 18.0}


@pytest.mark.parametrize("value", [True, False, "18.5", None, [18.5], {"v": 1}])
def test_a_value_that_is_not_a_json_number_is_refused(value: object) -> None:
    with pytest.raises(ValueError):
        Measurement.model_validate({"value": value, "unit": "degC"})
    message = {**GOOD, "variables": {"air_temperature": {"value": value, "unit": "degC"}}}
    assert refusal(json.dumps(message).encode()) == "schema"


@pytest.mark.parametrize(
    "moment",
    [
        1717243170,
        1717243170.5,
        "1717243170",
        "2024-06-01",
        "2024-06-01T11:59Z",
        "2024-06-01T11:59:30",
        "24-06-01T11:59:30Z",
        "2024-06-01 11:59:30Z",
        "Sat, 01 Jun 2024 11:59:30 GMT",
    ],
)
def test_a_time_that_is_not_rfc_3339_is_refused(moment: object) -> None:
    assert refusal(json.dumps({**GOOD, "time": moment}).encode()) == "schema"


def test_the_plausible_time_window_is_configurable() -> None:
    def at(moment: datetime) -> bytes:
        return json.dumps({**GOOD, "time": rfc3339(moment)}).encode()

    assert refusal(at(NOW + timedelta(minutes=11))) == "future"
    assert parse_observation(at(NOW + timedelta(minutes=9)), None, NOW).time > NOW
    assert refusal(at(datetime(1949, 12, 31, 23, 59, tzinfo=UTC))) == "too-old"
    old = Limits(earliest=datetime(1, 1, 1, tzinfo=UTC), max_future=timedelta(hours=2))
    assert parse_observation(at(NOW + timedelta(minutes=90)), None, NOW, old)
    ancient = parse_observation(at(datetime(812, 3, 4, 5, 6, tzinfo=UTC)), None, NOW, old)
    assert ancient.time.year == 812


def test_years_have_four_digits_in_ids_keys_and_datetimes_whatever_the_window() -> None:
    moment = datetime(812, 3, 4, 5, 6, 7, tzinfo=UTC)
    window = window_of("bz-01", moment, 600)
    assert stamp(moment) == "08120304T050607Z"
    assert window.item_id == "bz-01_08120304T050000Z_08120304T051000Z"
    assert window.object_key.startswith("observations/bz-01/0812/03/04/")
    assert rfc3339(moment) == "0812-03-04T05:06:07.000000Z"


def test_an_unforeseen_failure_is_the_messages_refusal_not_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fedeploy_ingestion import observation

    def explode(*_: object) -> dict[str, object]:
        raise MemoryError("simulated")

    monkeypatch.setattr(observation, "decode_message", explode)
    assert refusal(json.dumps(GOOD).encode()) == "invalid"
