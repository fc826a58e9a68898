"""BUFR surface observations to the observation model, on files the tests encode with ecCodes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fedeploy_ingestion.bufr import decode_bufr, split_messages
from fedeploy_ingestion.observation import InvalidObservation, Limits

from services.ingestion.tests.bufr_encode import Station, encode

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
FULL = {
    "airTemperature": 280.15,
    "nonCoordinatePressure": 101320.0,
    "relativeHumidity": 81,
    "windSpeed": 3.5,
    "totalPrecipitationOrTotalWaterEquivalent": 1.2,
}


def test_a_full_subset_maps_every_variable_with_its_unit_converted() -> None:
    data = encode([Station(T0, wigos="A1", latitude=46.5, longitude=11.25, values=FULL)])
    observations, refused = decode_bufr(data, NOW, Limits())
    assert refused == []
    (o,) = observations
    assert o.station == "0-20000-0-A1"
    assert o.time == T0
    assert (o.latitude, o.longitude, o.elevation) == (46.5, 11.25, 100.0)
    assert o.values == {
        "air_temperature": 7.0,  # K -> degC
        "air_pressure": 1013.2,  # Pa -> hPa
        "relative_humidity": 81.0,
        "wind_speed": 3.5,
        "precipitation": 1.2,  # kg m-2 = mm
    }


def test_several_stations_and_times_with_missing_values_in_one_compressed_message() -> None:
    stations = [
        Station(T0, wigos="A1", values={"airTemperature": 273.15}),
        Station(T0 + timedelta(hours=1), block=6, number=1, values={"windSpeed": 2.0}),
        Station(
            T0 + timedelta(minutes=30),
            wigos="C3",
            latitude=None,
            values={"airTemperature": None, "nonCoordinatePressure": 95000.0},
        ),
    ]
    observations, refused = decode_bufr(encode(stations), NOW + timedelta(hours=1), Limits())
    assert refused == []
    assert [(o.station, o.time, o.values) for o in observations] == [
        ("0-20000-0-A1", T0, {"air_temperature": 0.0}),
        ("0-20000-0-06001", T0 + timedelta(hours=1), {"wind_speed": 2.0}),
        ("0-20000-0-C3", T0 + timedelta(minutes=30), {"air_pressure": 950.0}),
    ]
    assert observations[2].position_known is False  # latitude missing: no position


def test_a_block_and_station_number_gives_the_wigos_id_of_that_station() -> None:
    data = encode([Station(T0, block=6, number=260, values={"windSpeed": 1.0})])
    assert decode_bufr(data, NOW, Limits())[0][0].station == "0-20000-0-06260"


def test_subsets_without_time_or_station_are_refused_alone() -> None:
    data = encode(
        [
            Station(None, wigos="A1", values={"windSpeed": 1.0}),
            Station(T0, values={"windSpeed": 1.0}),
            Station(T0, wigos="B2", values={}),
            Station(T0, wigos="D4", values={"windSpeed": 1.0}),
        ]
    )
    observations, refused = decode_bufr(data, NOW, Limits())
    assert [o.station for o in observations] == ["0-20000-0-D4"]
    assert [(r.subset, r.code) for r in refused] == [
        (1, "no-time"),
        (2, "no-station"),
        (3, "nil"),
    ]


def test_implausible_values_and_times_refuse_their_subset() -> None:
    data = encode(
        [
            Station(T0, wigos="A1", values={"airTemperature": 400.0}),
            Station(T0 + timedelta(days=2), wigos="B2", values={"windSpeed": 1.0}),
        ]
    )
    observations, refused = decode_bufr(data, NOW, Limits())
    assert observations == []
    assert [r.code for r in refused] == ["range", "future"]


def test_a_station_height_the_model_would_refuse_is_dropped_not_stored() -> None:
    # 007030 encodes up to 12707 m; the observation model's elevation stops at 9000 m.
    data = encode([Station(T0, wigos="H1", height=12000.0, values={"windSpeed": 1.0})])
    (o,), refused = decode_bufr(data, NOW, Limits())
    assert refused == []
    assert (o.latitude, o.elevation) == (50.0, None)


def test_a_file_of_several_uncompressed_messages_is_read_whole() -> None:
    first = encode([Station(T0, wigos="A1", values={"windSpeed": 1.0})], compressed=False)
    second = encode([Station(T0, wigos="B2", values={"windSpeed": 2.0})], compressed=False)
    observations, _ = decode_bufr(first + second, NOW, Limits())
    assert [o.station for o in observations] == ["0-20000-0-A1", "0-20000-0-B2"]
    assert len(split_messages(first + second)) == 2


@pytest.mark.parametrize(
    "data",
    [b"", b"not bufr at all", b"BUFR\x00", b"BUFR\x00\x00\x20\x04" + b"\0" * 24 + b"7777"],
    ids=["empty", "text", "truncated", "garbage-sections"],
)
def test_bytes_that_are_not_bufr_are_refused_with_code_bufr(data: bytes) -> None:
    with pytest.raises(InvalidObservation) as refused:
        decode_bufr(data, NOW, Limits())
    assert refused.value.code == "bufr"


def test_a_truncated_real_message_is_refused() -> None:
    data = encode([Station(T0, wigos="A1", values={"windSpeed": 1.0})])
    with pytest.raises(InvalidObservation) as refused:
        decode_bufr(data[:-10], NOW, Limits())
    assert refused.value.code == "bufr"


def test_a_process_loading_ecCodes_then_psycopg_exits_cleanly() -> None:
    # eckitlib's RTLD_GLOBAL libldap 2.4 made psycopg's libldap crash at exit (SIGSEGV, 139).
    import subprocess
    import sys

    pytest.importorskip("psycopg")
    code = "from fedeploy_ingestion.bufr import load_eccodes; load_eccodes(); import psycopg"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def uncompressed_synop(
    subsets: int, fill: Callable[[Callable[[str, float], None], list[str], int], None]
) -> bytes:
    """An uncompressed 301150 + 307096 message of `subsets` subsets; `fill(put, keys, i)` sets
    subset i's values (`put(key, value)`; `keys`: the data keys in order).
    Uncompressed, '#n#' counts across subsets."""
    from fedeploy_ingestion.bufr import _key_order, load_eccodes

    eccodes = load_eccodes()
    handle = eccodes.codes_bufr_new_from_samples("BUFR4")
    try:
        eccodes.codes_set(handle, "masterTablesVersionNumber", 32)
        eccodes.codes_set(handle, "numberOfSubsets", subsets)
        eccodes.codes_set(handle, "compressedData", 0)
        eccodes.codes_set_array(handle, "unexpandedDescriptors", [301150, 307096])
        keys = _key_order(handle)
        for i in range(1, subsets + 1):
            fill(lambda key, value: eccodes.codes_set(handle, key, value), keys, i)
        eccodes.codes_set(handle, "pack", 1)
        return bytes(eccodes.codes_get_message(handle))
    finally:
        eccodes.codes_release(handle)


def station_and_time(put: Callable[[str, float], None], i: int, hour: int) -> None:
    """Subset i's block/station number (6, 100 + i) and time (2026-11-30 `hour`:00)."""
    for key, value in [("blockNumber", 6), ("stationNumber", 100 + i), ("year", 2026)]:
        put(f"#{i}#{key}", value)
    for key, value in [("month", 11), ("day", 30), ("hour", hour), ("minute", 0)]:
        put(f"#{i}#{key}", value)


def test_an_uncompressed_message_of_several_subsets_is_read_subset_by_subset() -> None:
    def fill(put: Callable[[str, float], None], keys: list[str], i: int) -> None:
        station_and_time(put, i, hour=i)
        # Station pressure occurs twice per subset: its first occurrence in subset i is #2i-1#.
        put(f"#{2 * i - 1}#nonCoordinatePressure", 100000.0 - 100 * i)

    observations, refused = decode_bufr(uncompressed_synop(3, fill), NOW, Limits())
    assert refused == []
    assert [(o.station, o.time.hour, o.values) for o in observations] == [
        ("0-20000-0-06101", 1, {"air_pressure": 999.0}),
        ("0-20000-0-06102", 2, {"air_pressure": 998.0}),
        ("0-20000-0-06103", 3, {"air_pressure": 997.0}),
    ]


def test_uncompressed_subsets_each_take_their_own_one_hour_precipitation() -> None:
    def fill(put: Callable[[str, float], None], keys: list[str], i: int) -> None:
        station_and_time(put, i, hour=6)
        amounts = [k for k in keys if k.endswith("#totalPrecipitationOrTotalWaterEquivalent")]
        first = (i - 1) * (len(amounts) // 2)
        # Each subset: 9 mm over 24 hours first, then 0.1 * i mm over the last hour.
        for key, hours, amount in ((amounts[first], -24, 9.0), (amounts[first + 1], -1, i / 10)):
            index = keys.index(key)
            put([k for k in keys[:index] if k.endswith("#timePeriod")][-1], hours)
            put(key, amount)

    observations, refused = decode_bufr(uncompressed_synop(2, fill), NOW, Limits())
    assert refused == []
    assert [(o.station, o.values) for o in observations] == [
        ("0-20000-0-06101", {"precipitation": 0.1}),
        ("0-20000-0-06102", {"precipitation": 0.2}),
    ]
