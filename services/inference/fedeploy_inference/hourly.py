"""Observations binned to a regular hourly grid per station: the form the model reads.

Bin `h` covers [h, h+1h). State variables are averaged over the bin; precipitation amounts are
summed. A bin without a value of a variable holds NaN for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from fedeploy_inference.contract import LIMITS, VARIABLES

_HOUR_US = 3_600_000_000
_SUMMED = {"precipitation"}
_SUMMED_COLUMNS = np.array([name in _SUMMED for name in VARIABLES])  # summed, not averaged


@dataclass(frozen=True)
class StationSeries:
    """One station's hourly values, shape (hours, len(VARIABLES)), starting at `start`."""

    station: str
    start: datetime
    values: np.ndarray
    longitude: float | None
    latitude: float | None
    elevation: float | None

    def hour_index(self, when: datetime) -> int:
        """Index of the bin that starts at `when` (a whole hour)."""
        return int((when - self.start).total_seconds() // 3600)


def floor_hour_us(micros: np.ndarray) -> np.ndarray:
    """Microsecond stamps floored to the hour."""
    return micros - np.mod(micros, _HOUR_US)


def aggregate_bins(index: np.ndarray, values: np.ndarray, bins: int) -> np.ndarray:
    """Aggregate rows of `values` (n, len(VARIABLES)) into `bins` by their bin `index`; rows
    with an index outside [0, bins) are ignored. Every variable in the same two bincounts (one
    slot per bin and variable; rows outside go to a slot past the end), each bin's values summed
    in the order of the rows; a missing value adds 0.0, which changes no sum."""
    width = len(VARIABLES)
    inside = (index >= 0) & (index < bins)
    slots = (np.where(inside, index, bins)[:, None] * width + np.arange(width)).ravel()
    flat = values.ravel()
    ok = ~np.isnan(flat)
    size = (bins + 1) * width
    counts = np.bincount(slots, weights=ok, minlength=size)[: bins * width].reshape(bins, width)
    sums = np.bincount(slots, weights=np.where(ok, flat, 0.0), minlength=size)
    sums = sums[: bins * width].reshape(bins, width)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(_SUMMED_COLUMNS, sums, sums / counts)
    return np.where(counts > 0, means, np.nan)


def bin_hourly(times_us: np.ndarray, values: np.ndarray, start_us: int, hours: int) -> np.ndarray:
    """Bin observations (times in us, values shape (n, len(VARIABLES))) onto `hours` bins."""
    return aggregate_bins((times_us - start_us) // _HOUR_US, values, hours)


def _within_limits(name: str, column: np.ndarray) -> np.ndarray:
    """The column as floats, values outside the variable's plausible range made missing."""
    values = column.astype(float)
    low, high = LIMITS[name]
    with np.errstate(invalid="ignore"):
        values[(values < low) | (values > high)] = np.nan
    return values


def _last_known(column: pa.ChunkedArray) -> float | None:
    valid = column.drop_null()
    return None if len(valid) == 0 else float(valid[-1].as_py())


def to_hourly(table: pa.Table) -> dict[str, StationSeries]:
    """Per station, its observations on an hourly grid spanning its first to last observation.

    Rows repeated across windows (same station and time) count once.
    """
    series: dict[str, StationSeries] = {}
    if table.num_rows == 0:
        return series
    table = table.sort_by([("station", "ascending"), ("time", "ascending")])
    station_col = table.column("station").to_numpy(zero_copy_only=False)
    for station in np.unique(station_col):
        rows = table.filter(pa.array(station_col == station))
        times = rows.column("time").cast(pa.int64()).to_numpy()
        times, first = np.unique(times, return_index=True)
        rows = rows.take(pa.array(first))
        values = np.column_stack(
            [_within_limits(n, rows.column(n).to_numpy(zero_copy_only=False)) for n in VARIABLES]
        )
        start_us = int(floor_hour_us(times[:1])[0])
        hours = int((times[-1] - start_us) // _HOUR_US) + 1
        series[str(station)] = StationSeries(
            station=str(station),
            start=datetime.fromtimestamp(start_us / 1e6, tz=UTC),
            values=bin_hourly(times, values, start_us, hours),
            longitude=_last_known(rows.column("longitude")),
            latitude=_last_known(rows.column("latitude")),
            elevation=_last_known(rows.column("elevation")),
        )
    return series
