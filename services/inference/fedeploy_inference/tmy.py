"""Measured station data for evaluation: the typical-meteorological-year (TMY2, TMY3) files that
pvlib ships in `pvlib/data`, turned into observation windows by the ingestion service's writer.

Needs the `realdata` extra (pvlib reads the files; fedeploy-ingestion writes the windows); the
service itself never imports this module. Nothing is downloaded: the files are in the package.

What the files are, and what this converter does about it:
- A TMY is twelve real months taken from different years and laid end to end, so the record
  jumps at every month boundary. Each month start is returned as a break; no sample may cross
  one (`features.build_samples(breaks=...)`). Times are put on one nominal non-leap year.
- Times are local standard time (the header's UTC offset), hour ending 1..24: the value stamped
  `01/05 24:00` belongs to 5 January. Stamps are converted to UTC; precipitation is the amount
  in the hour ending at the stamp, which is how the observation model reads it.
- Every value carries a source flag. Only `A` (as measured) is kept; `B`/`C` (interpolated over
  a gap), `D` (filled from other years), `E` (modelled) and `?` (missing) become missing values,
  so interpolated and filled hours cannot flatter a forecast.
- Fill values: TMY3 writes -9900 for missing amounts, TMY2 9999 (and 99999 ...); both become
  missing. A variable constant over a whole month is a fill too (Sand Point's pressure reads
  1012 hPa all year: the climatological mean used to fill a long gap): dropped for that month.
- Units: TMY3 is in SI already (degC, %, mbar = hPa, m/s, mm). TMY2 stores temperature in
  tenths of degC and wind speed in tenths of m/s, and has no precipitation amounts at all (its
  `Pwat` is precipitable water, not rain): such a station never reports precipitation.
- Precipitation (TMY3 `Lprecip depth`) counts only where its accumulation period
  (`Lprecip quantity`) is one hour; 6-hour totals are not hourly amounts. The 2015 revision of
  the TMY3 files re-derived hourly precipitation and flags all of it `D` with uncertainty 9
  (Greensboro): it is kept (`D` is accepted for precipitation only). Its values step in 2.5 to
  2.6 (3, 5, 8, 10, 13, ...): 0.01 inch written in tenths of mm although the header says mm;
  a record whose positive amounts are (95 %) whole multiples of 0.254 mm x 10 is divided by 10
  (`precipitation_scale`). Hourly amounts over 100 mm (Sand Point has a run of 232-255 "mm"
  hours) are implausible for these climates and dropped.
- An hour in which no variable survives is not written: it is a gap in the record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa

from fedeploy_inference.contract import LIMITS, VARIABLES, WINDOW_SCHEMA, WindowKey

NOMINAL_YEAR = 2026  # not a leap year: a TMY has 8760 hours
MEASURED = "A"
_HOUR_US = 3_600_000_000

# pvlib's column names (read with map_variables=False), per variable: value, source flag, scale.
_TMY3 = {
    "air_temperature": ("Dry-bulb (C)", "Dry-bulb source", 1.0),
    "relative_humidity": ("RHum (%)", "RHum source", 1.0),
    "air_pressure": ("Pressure (mbar)", "Pressure source", 1.0),
    "wind_speed": ("Wspd (m/s)", "Wspd source", 1.0),
    "precipitation": ("Lprecip depth (mm)", "Lprecip source", 1.0),
}
_TMY2 = {
    "air_temperature": ("DryBulb", "DryBulbSource", 0.1),
    "relative_humidity": ("RHum", "RHumSource", 1.0),
    "air_pressure": ("Pressure", "PressureSource", 1.0),
    "wind_speed": ("Wspd", "WspdSource", 0.1),
}
_FILLS = (-9900.0, 9999.0, 99999.0, 999.0)

# The three stations pvlib ships: humid subtropical, subpolar maritime, tropical.
PVLIB_FILES: dict[str, str] = {
    "tmy3-723170-greensboro": "723170TYA.CSV",
    "tmy3-703165-sand-point": "703165TY.csv",
    "tmy2-12839-miami": "12839.tm2",
}


@dataclass(frozen=True)
class StationRecord:
    """One station's converted record: hourly stamps (us, UTC, hour ending), values per
    variable (NaN: missing), and where a new month (a new source year) begins (us, UTC)."""

    station: str
    name: str
    longitude: float
    latitude: float
    elevation: float
    times_us: np.ndarray
    values: dict[str, np.ndarray]
    breaks_us: list[int] = field(default_factory=list)


MAX_HOURLY_PRECIPITATION_MM = 100.0


def precipitation_scale(amounts: np.ndarray) -> float:
    """0.1 where the positive amounts are whole hundredths of an inch written in tenths of mm
    (rounded: 3, 5, 8, 10, 13 ...; at least 95 % of them, where about 40 % of arbitrary whole
    numbers would be), else 1."""
    positive = amounts[np.isfinite(amounts) & (amounts > 0)]
    if positive.size < 20:
        return 1.0
    steps = np.round(positive / 2.54)
    matching = np.mean((steps > 0) & (np.abs(np.round(steps * 2.54) - positive) < 0.51))
    return 0.1 if matching >= 0.95 else 1.0


def clean(
    raw: np.ndarray,
    flags: np.ndarray,
    months: np.ndarray,
    scale: float,
    variable: str,
    accepted: tuple[str, ...] = (MEASURED,),
) -> np.ndarray:
    """Values kept as measured, in canonical units; NaN for fills, flags not `accepted`, values
    outside the contract's limits, and months in which a state variable never changes."""
    values = np.asarray(raw, dtype=float) * scale
    values[np.isin(np.asarray(raw, dtype=float), _FILLS)] = np.nan
    values[~np.isin(np.asarray(flags).astype(str), accepted)] = np.nan
    low, high = LIMITS[variable]
    with np.errstate(invalid="ignore"):
        values[(values < low) | (values > high)] = np.nan
    for month in np.unique(months):
        rows = months == month
        known = values[rows][~np.isnan(values[rows])]
        # Rain is zero for weeks at a time: only a state variable stuck at one value is a fill.
        if variable != "precipitation" and known.size > 24 and np.ptp(known) == 0:
            values[rows] = np.nan
    return values


def _stamps(months: np.ndarray, days: np.ndarray, hours: np.ndarray, tz: float) -> np.ndarray:
    """UTC microseconds of hour-ending local standard times on the nominal year."""
    base = np.array(
        [
            datetime(NOMINAL_YEAR, int(m), int(d), tzinfo=UTC).timestamp()
            for m, d in zip(months, days, strict=True)
        ]
    )
    return ((base + (hours - tz) * 3600.0) * 1e6).astype(np.int64)


def _breaks(months: np.ndarray, stamps: np.ndarray) -> list[int]:
    firsts = np.flatnonzero(np.diff(months) != 0) + 1
    return [int(stamps[i] - stamps[i] % _HOUR_US) for i in firsts]


def read_tmy3(path: str | Path, station: str) -> StationRecord:
    """A TMY3 CSV file (header line with the site, then hourly rows) as a StationRecord."""
    from pvlib.iotools import read_tmy3 as pvlib_read_tmy3

    frame, meta = pvlib_read_tmy3(str(path), map_variables=False)
    dates = frame["Date (MM/DD/YYYY)"].astype(str)
    months = np.array([int(d[:2]) for d in dates])
    days = np.array([int(d[3:5]) for d in dates])
    hours = np.array([int(t.split(":")[0]) for t in frame["Time (HH:MM)"].astype(str)])
    values = {
        v: clean(frame[c].to_numpy(), frame[f].to_numpy(), months, s, v)
        for v, (c, f, s) in _TMY3.items()
        if v != "precipitation"
    }
    column, flag, _ = _TMY3["precipitation"]
    amounts = frame[column].to_numpy(dtype=float)
    hourly = frame["Lprecip quantity (hr)"].to_numpy(dtype=float) == 1
    rain = clean(
        amounts,
        frame[flag].to_numpy(),
        months,
        precipitation_scale(np.where(hourly, amounts, np.nan)),
        "precipitation",
        accepted=(MEASURED, "D"),
    )
    rain[~hourly | (rain > MAX_HOURLY_PRECIPITATION_MM)] = np.nan
    values["precipitation"] = rain
    stamps = _stamps(months, days, hours, float(meta["TZ"]))
    return StationRecord(
        station,
        str(meta["Name"]).strip('"'),
        float(meta["longitude"]),
        float(meta["latitude"]),
        float(meta["altitude"]),
        stamps,
        values,
        _breaks(months, stamps),
    )


def read_tmy2(path: str | Path, station: str) -> StationRecord:
    """A TMY2 fixed-width file as a StationRecord (no precipitation amounts in the format)."""
    from pvlib.iotools import read_tmy2 as pvlib_read_tmy2

    frame, meta = pvlib_read_tmy2(str(path))
    months = frame["month"].to_numpy(dtype=int)
    days = frame["day"].to_numpy(dtype=int)
    hours = frame["hour"].to_numpy(dtype=int)
    values = {
        v: clean(frame[c].to_numpy(), frame[f].to_numpy(), months, s, v)
        for v, (c, f, s) in _TMY2.items()
    }
    values["precipitation"] = np.full(months.size, np.nan)
    stamps = _stamps(months, days, hours, float(meta["TZ"]))
    return StationRecord(
        station,
        f"{meta['City']} {meta['State']}",
        float(meta["longitude"]),
        float(meta["latitude"]),
        float(meta["altitude"]),
        stamps,
        values,
        _breaks(months, stamps),
    )


def pvlib_stations() -> list[StationRecord]:
    """The three TMY stations shipped inside the installed pvlib package."""
    data = resources.files("pvlib") / "data"
    records = []
    for station, file_name in PVLIB_FILES.items():
        path = Path(str(data / file_name))
        reader = read_tmy2 if file_name.lower().endswith(".tm2") else read_tmy3
        records.append(reader(path, station))
    return records


def to_windows(
    record: StationRecord, window_hours: int = 24
) -> Iterator[tuple[WindowKey, pa.Table]]:
    """The record as observation windows, written by the ingestion service's own writer
    (`fedeploy_ingestion.window_table.to_table`) on the data contract's keys. Hours without
    any measured value are left out: they are gaps."""
    from fedeploy_ingestion.observation import Observation
    from fedeploy_ingestion.window_table import to_table

    stack = np.column_stack([record.values[v] for v in VARIABLES])
    present = ~np.isnan(stack).all(axis=1)
    span = window_hours * _HOUR_US
    window_of = record.times_us // span
    for w in np.unique(window_of[present]):
        rows = np.flatnonzero(present & (window_of == w))
        observations = [
            Observation(
                station=record.station,
                time=datetime.fromtimestamp(int(record.times_us[i]) / 1e6, tz=UTC),
                values={
                    v: float(stack[i, j])
                    for j, v in enumerate(VARIABLES)
                    if not np.isnan(stack[i, j])
                },
                longitude=record.longitude,
                latitude=record.latitude,
                elevation=record.elevation,
            )
            for i in rows
        ]
        start = datetime.fromtimestamp(int(w) * span / 1e6, tz=UTC)
        table = to_table(observations).select(WINDOW_SCHEMA.names).cast(WINDOW_SCHEMA)
        yield WindowKey(record.station, start, start + timedelta(hours=window_hours)), table
