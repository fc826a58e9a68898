"""Observation messages: what is accepted, what is rejected and why, how duplicates merge."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from fedeploy_ingestion.observation import (
    InvalidObservation,
    Observation,
    merge,
    message_json_schema,
    parse_observation,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
TOPIC = "fedeploy/site-a/stations/bz-01/observations"


def message(**changes: object) -> dict:
    document = {
        "schema": "fedeploy.observation/1",
        "station": "bz-01",
        "time": "2024-06-01T11:59:30Z",
        "position": {"longitude": 11.35, "latitude": 46.5, "elevation": 262},
        "variables": {
            "air_temperature": {"value": 291.15, "unit": "K"},
            "precipitation": {"value": 0.2, "unit": "mm"},
        },
    }
    document.update(changes)
    return document


def encode(document: object) -> bytes:
    return json.dumps(document).encode()


def test_a_valid_message_becomes_an_observation_in_canonical_units() -> None:
    observation = parse_observation(encode(message()), TOPIC, NOW)
    assert observation.station == "bz-01"
    assert observation.time == datetime(2024, 6, 1, 11, 59, 30, tzinfo=UTC)
    assert observation.values["air_temperature"] == pytest.approx(18.0)
    assert observation.values["precipitation"] == 0.2
    assert (observation.longitude, observation.latitude, observation.elevation) == (
        11.35,
        46.5,
        262,
    )


def test_position_is_optional() -> None:
    document = message()
    del document["position"]
    observation = parse_observation(encode(document), TOPIC, NOW)
    assert not observation.position_known


def test_an_offset_of_zero_is_utc() -> None:
    observation = parse_observation(encode(message(time="2024-06-01T11:59:30+00:00")), TOPIC, NOW)
    assert observation.time.tzinfo is UTC


@pytest.mark.parametrize(
    ("payload", "code", "words"),
    [
        (b"not json at all", "not-json", ["not JSON"]),
        (b"\xff\xfe", "encoding", ["not UTF-8"]),
        (encode([1, 2]), "schema", ["list", "not an object"]),
        (
            encode(message(schema="fedeploy.observation/2")),
            "schema-version",
            ["fedeploy.observation/2", "fedeploy.observation/1"],
        ),
        (encode({k: v for k, v in message().items() if k != "station"}), "schema", ["station"]),
        (encode(message(station="bad/station")), "schema", ["station"]),
        (encode(message(time="2024-06-01T11:59:30")), "schema", ["time", "RFC 3339"]),
        (encode(message(time="2024-06-01T13:59:30+02:00")), "schema", ["time", "UTC"]),
        (encode(message(time="yesterday")), "schema", ["time"]),
        (encode(message(variables={})), "schema", ["variables"]),
        (
            encode(message(variables={"snow_depth": {"value": 1, "unit": "m"}})),
            "unknown-variable",
            ["snow_depth", "air_temperature"],
        ),
        (
            encode(message(variables={"air_temperature": {"value": 64, "unit": "degF"}})),
            "unit",
            ["degF", "degC", "K"],
        ),
        (
            encode(message(variables={"relative_humidity": {"value": 130, "unit": "%"}})),
            "range",
            ["relative_humidity", "130", "100"],
        ),
        (
            encode(message(variables={"wind_speed": {"value": -1, "unit": "m s-1"}})),
            "range",
            ["wind_speed"],
        ),
        (
            b'{"schema":"fedeploy.observation/1","station":"bz-01","time":"2024-06-01T11:59:30Z",'
            b'"variables":{"air_pressure":{"value":NaN,"unit":"hPa"}}}',
            "non-finite",
            ["NaN"],
        ),
        (encode(message(position={"longitude": 200, "latitude": 0})), "schema", ["longitude"]),
        (encode(message(extra_field=1)), "schema", ["extra_field"]),
        (encode(message(time="2024-06-01T14:00:00Z")), "future", ["ahead"]),
    ],
)
def test_invalid_messages_are_rejected_with_a_reason(
    payload: bytes, code: str, words: list[str]
) -> None:
    with pytest.raises(InvalidObservation) as raised:
        parse_observation(payload, TOPIC, NOW)
    assert raised.value.code == code
    for word in words:
        assert word in raised.value.reason


def test_the_topic_must_name_the_same_station() -> None:
    with pytest.raises(InvalidObservation) as raised:
        parse_observation(encode(message()), "fedeploy/site-a/stations/bz-02/observations", NOW)
    assert raised.value.code == "topic-mismatch"
    assert "bz-02" in raised.value.reason and "bz-01" in raised.value.reason


def test_other_topic_layouts_are_not_checked() -> None:
    assert parse_observation(encode(message()), "custom/feed", NOW).station == "bz-01"


def _observation(seconds: int, temperature: float, station: str = "s1") -> Observation:
    return Observation(station, NOW + timedelta(seconds=seconds), {"air_temperature": temperature})


def test_merge_keeps_one_observation_per_station_and_time() -> None:
    first = [_observation(0, 10.0), _observation(10, 11.0)]
    again = [_observation(10, 11.0), _observation(20, 12.0)]
    merged = merge(first, again)
    assert [o.time for o in merged] == [NOW + timedelta(seconds=s) for s in (0, 10, 20)]


def test_merge_does_not_depend_on_arrival_order() -> None:
    observations = [_observation(s % 7, float(s)) for s in range(30)]
    expected = merge(observations)
    generator = random.Random(7)
    for _ in range(20):
        shuffled = observations[:]
        generator.shuffle(shuffled)
        split = generator.randrange(len(shuffled))
        assert merge(shuffled[:split], shuffled[split:]) == expected
        assert merge(merge(shuffled[:split]), shuffled[split:]) == expected


def test_the_json_schema_names_the_message_fields() -> None:
    schema = message_json_schema()
    assert set(schema["required"]) == {"schema", "station", "time", "variables"}
    assert schema["properties"]["schema"]["const"] == "fedeploy.observation/1"
