"""The TMY converter on the quirks of real files: month breaks, hour-ending local times, source
flags, fill values, a constant fill, tenths-of-mm precipitation, 6-hour totals and empty hours;
then the three files pvlib ships, through the ingestion writer and the hourly binning."""

import csv
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fedeploy_inference.contract import WINDOW_SCHEMA
from fedeploy_inference.features import FeatureSpec, build_samples
from fedeploy_inference.hourly import to_hourly
from fedeploy_inference.tmy import (
    NOMINAL_YEAR,
    precipitation_scale,
    pvlib_stations,
    read_tmy3,
    to_windows,
)

HOUR = 3_600_000_000
TENTHS = [3, 5, 8, 10, 13]  # 0.01 in steps written in tenths of mm


def _greensboro_lines() -> list[str]:
    path = Path(str(resources.files("pvlib") / "data" / "723170TYA.CSV"))
    return path.read_text().splitlines()


def _write_tmy3(path: Path) -> None:
    """Two days of January and two of February from a real row, with every quirk planted."""
    lines = _greensboro_lines()
    header = next(csv.reader([lines[1]]))
    template = next(csv.reader([lines[2]]))
    col = {name: i for i, name in enumerate(header)}
    rows = []
    n = 0
    for month, day in ((1, 30), (1, 31), (2, 1), (2, 2)):
        for hour in range(1, 25):
            row = list(template)
            row[col["Date (MM/DD/YYYY)"]] = f"{month:02d}/{day:02d}/1988"
            row[col["Time (HH:MM)"]] = f"{hour:02d}:00"
            for name, value in (
                ("Dry-bulb (C)", 10.0 + hour / 10),
                ("RHum (%)", 50 + hour),
                ("Pressure (mbar)", 1000 + hour % 3 if month == 1 else 1012),
                ("Wspd (m/s)", 3.0),
                ("Lprecip depth (mm)", TENTHS[n % 5] if n % 3 == 0 else 0),
                ("Lprecip quantity (hr)", 1),
            ):
                row[col[name]] = str(value)
            for name in ("Dry-bulb", "RHum", "Pressure", "Wspd"):
                row[col[f"{name} source"]] = "A"
            row[col["Lprecip source"]] = "D"
            rows.append(row)
            n += 1
    rows[5][col["Dry-bulb source"]] = "B"  # 30 Jan 06:00: interpolated, not measured
    rows[6][col["Lprecip depth (mm)"]] = "-9900"  # fill value
    rows[6][col["Lprecip source"]] = "?"
    rows[9][col["Lprecip quantity (hr)"]] = "6"  # a 6-hour total
    rows[9][col["Lprecip depth (mm)"]] = "30"
    for name in ("Dry-bulb", "RHum", "Pressure", "Wspd"):  # 30 Jan 12:00: nothing measured
        rows[11][col[f"{name} source"]] = "E"
    rows[11][col["Lprecip source"]] = "?"
    with path.open("w", newline="") as out:
        out.write(lines[0] + "\n" + lines[1] + "\n")
        csv.writer(out, lineterminator="\n").writerows(rows)


def test_converter_handles_the_quirks_of_a_tmy3_file(tmp_path):
    _write_tmy3(tmp_path / "quirks.csv")
    record = read_tmy3(tmp_path / "quirks.csv", "gso")
    v = record.values
    # Hour ending, local standard time UTC-5: 30 Jan 01:00 local is 06:00 UTC.
    first = datetime(NOMINAL_YEAR, 1, 30, 6, tzinfo=UTC)
    assert record.times_us[0] == int(first.timestamp() * 1e6)
    # "31 Jan 24:00" is 1 Feb 05:00 UTC and still January: the break is the next hour.
    assert record.breaks_us == [int(datetime(NOMINAL_YEAR, 2, 1, 6, tzinfo=UTC).timestamp() * 1e6)]
    assert np.isnan(v["air_temperature"][5]) and not np.isnan(v["air_temperature"][4])
    assert np.isnan(v["precipitation"][6]), "the -9900 fill"
    assert np.isnan(v["precipitation"][9]), "a 6-hour total is not an hourly amount"
    assert all(np.isnan(v[k][11]) for k in v), "no measured value that hour"
    assert np.isnan(v["air_pressure"][48:]).all(), "February's constant 1012 hPa is a fill"
    assert np.isnan(v["air_pressure"][:48]).sum() == 1, "January varies: only the empty hour"
    assert np.nanmax(v["precipitation"]) == pytest.approx(1.3), "tenths of mm read as mm"
    assert v["precipitation"][0] == pytest.approx(0.3)

    windows = list(to_windows(record))
    assert all(t.schema == WINDOW_SCHEMA for _, t in windows)
    series = to_hourly(pa.concat_tables([t for _, t in windows]))["gso"]
    hole = series.hour_index(datetime(NOMINAL_YEAR, 1, 30, 17, tzinfo=UTC))
    assert np.isnan(series.values[hole]).all(), "the empty hour is a gap in the record"
    spec = FeatureSpec(context_hours=6, horizon_hours=2, anchor_hours=2)
    samples = build_samples(spec, {"gso": series}, breaks={"gso": record.breaks_us})
    start = samples.origin_us - spec.context_hours * HOUR
    end = samples.origin_us + spec.horizon_hours * HOUR
    cut = record.breaks_us[0]
    hole_us = int(datetime(NOMINAL_YEAR, 1, 30, 17, tzinfo=UTC).timestamp() * 1e6)
    assert len(samples) > 0
    assert not ((start < cut) & (cut < end)).any(), "no sample crosses the month boundary"
    assert not ((start <= hole_us) & (hole_us < end)).any(), "no sample crosses the gap"


def test_precipitation_scale_needs_most_amounts_on_the_hundredth_inch_steps():
    assert precipitation_scale(np.array(TENTHS * 6, dtype=float)) == 0.1
    assert precipitation_scale(np.arange(1.0, 31.0)) == 1.0, "arbitrary whole mm stay mm"
    assert precipitation_scale(np.array([3.0, 5.0])) == 1.0, "too few to tell"


def test_the_three_shipped_stations_convert_with_what_each_measures():
    records = {r.station: r for r in pvlib_stations()}
    assert set(records) == {
        "tmy3-723170-greensboro",
        "tmy3-703165-sand-point",
        "tmy2-12839-miami",
    }
    for record in records.values():
        assert len(record.breaks_us) == 11, "twelve months from different years"
        assert record.times_us.size == 8760
    counts = {s: int((~np.isnan(r.values["precipitation"])).sum()) for s, r in records.items()}
    assert counts["tmy2-12839-miami"] == 0, "TMY2 carries no rain amounts"
    assert counts["tmy3-703165-sand-point"] > 100
    assert np.isnan(records["tmy3-703165-sand-point"].values["air_pressure"]).all()
    miami = records["tmy2-12839-miami"].values["air_temperature"]
    assert 10 < np.nanmean(miami) < 30, "TMY2 tenths of degC converted"
    assert 500 < np.nansum(records["tmy3-723170-greensboro"].values["precipitation"]) < 1500
