"""A synthetic edge-observation data set with a known signal, as the contract's Parquet windows.

The signal, per station (documented in docs/model.md):
- seasonal cycle of temperature (coldest mid-January) lowered 6.5 degC per km of elevation;
- diurnal cycle (warmest at 15:00 local solar time), humidity moving against temperature;
- passing cold fronts that sweep west to east across the stations: pressure falls in the
  half-day before a front arrives, then temperature drops, wind rises and it rains;
- sensor noise on every variable, single missing values, and multi-hour station outages.
Pressure falling ahead of a front is what lets a model beat persistence beyond the diurnal
cycle: the information is in the inputs, not only in the clock.

Sentinel scenes (`scenes`): one a day per station at 10:30 UTC, the morning overpass. Their
cloud cover is the one thing the generator puts in them: 15 % plus up to 80 % as a front's
cloud shield nears (a Gaussian of the time to the front's passage at the station, 12 h wide,
before or after), plus 10 % noise, clipped to 0..100. So a scene tells of a front within about
a day of the overpass, which the pressure fall also tells from half a day before: an ablation
on this set measures what the scene adds beyond that, and nothing else is in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from fedeploy_inference.contract import VARIABLES, WINDOW_SCHEMA, WindowKey
from fedeploy_inference.features import Scenes

_HOUR = 3600.0


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate; the defaults make about 11,500 hourly rows in 480 daily windows."""

    stations: int = 4
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    days: int = 120
    step_minutes: int = 60
    window_hours: int = 24
    seed: int = 7
    front_mean_interval_hours: float = 84.0
    missing_value_fraction: float = 0.02
    outages_per_station: int = 3
    # west, south, east, north: stations spread west to east across it.
    area: tuple[float, float, float, float] = (5.0, 45.0, 15.0, 52.0)
    noise: dict[str, float] = field(
        default_factory=lambda: {
            "air_temperature": 0.3,
            "relative_humidity": 2.0,
            "air_pressure": 0.3,
            "wind_speed": 0.4,
        }
    )

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("SyntheticSpec.start: a timezone-aware UTC time is required")
        if not 1 <= self.step_minutes <= 60 or 60 % self.step_minutes:
            raise ValueError(
                f"SyntheticSpec.step_minutes: {self.step_minutes} given; a divisor of 60 is allowed"
            )
        if self.window_hours < 1 or (self.days * 24) % self.window_hours:
            raise ValueError(
                f"SyntheticSpec.window_hours: {self.window_hours} given; "
                "a positive divisor of the period's hours is allowed"
            )


@dataclass(frozen=True)
class Station:
    """A synthetic station: id and position."""

    id: str
    longitude: float
    latitude: float
    elevation: float


def stations(spec: SyntheticSpec) -> list[Station]:
    """The spec's stations, spread west to east so fronts reach them in turn."""
    rng = np.random.default_rng(spec.seed)
    west, south, east, north = spec.area
    lons = np.linspace(west, east, spec.stations)
    return [
        Station(
            id=f"syn-{i:03d}",
            longitude=round(float(lon), 4),
            latitude=round(float(rng.uniform(south, north)), 4),
            elevation=round(float(rng.uniform(0.0, 800.0)), 1),
        )
        for i, lon in enumerate(lons)
    ]


def _fronts(spec: SyntheticSpec, rng: np.random.Generator, hours: float) -> np.ndarray:
    """Front arrival times at the area's west edge (hours from start) with strength, as rows (t, dT, P, R, W)."""
    times: list[float] = []
    t = float(rng.exponential(spec.front_mean_interval_hours / 2))
    while t < hours + 48:
        times.append(t)
        t += float(rng.exponential(spec.front_mean_interval_hours))
    n = len(times)
    return np.column_stack(
        [
            np.array(times),
            rng.uniform(3.0, 8.0, n),  # temperature drop, degC
            rng.uniform(6.0, 14.0, n),  # pressure dip, hPa
            rng.uniform(0.5, 3.0, n),  # peak rain rate, mm/h
            rng.uniform(3.0, 8.0, n),  # wind increase, m/s
        ]
    )


def _station_signal(
    spec: SyntheticSpec, st: Station, t_hours: np.ndarray, fronts: np.ndarray
) -> dict[str, np.ndarray]:
    """The noise-free signal at one station, per variable, rain as a rate in mm/h."""
    abs_time = spec.start.timestamp() / _HOUR + t_hours
    day_of_year = (abs_time / 24.0) % 365.25
    solar_hour = (abs_time + st.longitude / 15.0) % 24.0
    season = 8.0 - 9.0 * np.cos(2 * np.pi * (day_of_year - 15.0) / 365.25)
    diurnal = 4.5 * np.cos(2 * np.pi * (solar_hour - 15.0) / 24.0)
    temp = season + diurnal - 0.0065 * st.elevation
    pressure = np.full_like(t_hours, 1013.0 - st.elevation / 8.3)
    rain = np.zeros_like(t_hours)
    wind = 2.5 + 0.8 * np.cos(2 * np.pi * (solar_hour - 14.0) / 24.0)
    humid_extra = np.zeros_like(t_hours)
    lag_hours = _lag_hours(spec, st)
    for t0, d_temp, d_pres, rate, d_wind in fronts:
        tau = t_hours - (t0 + lag_hours)
        near = np.abs(tau) < 96
        if not near.any():
            continue
        x = tau[near]
        temp[near] -= d_temp / (1 + np.exp(-x / 2.0)) * np.exp(-np.maximum(x, 0) / 36.0)
        pressure[near] -= d_pres * np.exp(-(((x + 2.0) / 10.0) ** 2))
        rain[near] += rate * np.exp(-((x / 2.5) ** 2))
        wind[near] += d_wind * np.exp(-((x / 6.0) ** 2))
        humid_extra[near] += 25.0 * np.exp(-((x / 6.0) ** 2))
    humidity = 70.0 - 2.5 * diurnal + humid_extra
    return {
        "air_temperature": temp,
        "relative_humidity": humidity,
        "air_pressure": pressure,
        "wind_speed": wind,
        "precipitation": rain,
    }


def _lag_hours(spec: SyntheticSpec, st: Station) -> float:
    """Hours a front takes from the area's west edge to the station (0.8 deg of longitude an
    hour)."""
    return (st.longitude - spec.area[0]) / 0.8


SCENE_HOUR_UTC = 10.5


def scenes(spec: SyntheticSpec) -> dict[str, Scenes]:
    """Per station, the daily scenes over it (module docstring): acquisition times (us) and
    cloud cover (%), from the same fronts as `generate(spec)`."""
    hours = spec.days * 24.0
    fronts = _fronts(spec, np.random.default_rng(spec.seed + 1), hours)[:, 0]
    rng = np.random.default_rng(spec.seed + 2)
    at = np.arange(spec.days) * 24.0 + SCENE_HOUR_UTC
    start_us = int(spec.start.timestamp() * 1_000_000)
    out = {}
    for st in stations(spec):
        passage = fronts + _lag_hours(spec, st)
        nearest = np.abs(at[:, None] - passage[None, :]).min(axis=1)
        cover = 15.0 + 80.0 * np.exp(-((nearest / 12.0) ** 2)) + rng.normal(0, 10.0, at.size)
        out[st.id] = Scenes(
            start_us + np.round(at * _HOUR * 1_000_000).astype(np.int64),
            np.clip(np.round(cover, 1), 0.0, 100.0),
        )
    return out


def generate(spec: SyntheticSpec) -> Iterator[tuple[WindowKey, pa.Table]]:
    """Yield every window of the data set, station by station, oldest first."""
    rng = np.random.default_rng(spec.seed + 1)
    hours = spec.days * 24.0
    step_h = spec.step_minutes / 60.0
    t_hours = np.arange(0.0, hours, step_h)
    fronts = _fronts(spec, rng, hours)
    for st in stations(spec):
        values = _station_signal(spec, st, t_hours, fronts)
        for name, sigma in spec.noise.items():
            values[name] = values[name] + rng.normal(0.0, sigma, t_hours.size)
        # Rain is reported as the amount over the observation interval ending at the stamp.
        values["precipitation"] = np.round(values["precipitation"] * step_h, 1)
        for name in VARIABLES:
            lo, hi = (0.0, 100.0) if name == "relative_humidity" else (0.0, np.inf)
            if name != "air_temperature" and name != "air_pressure":
                values[name] = np.clip(values[name], lo, hi)
            values[name][rng.random(t_hours.size) < spec.missing_value_fraction] = np.nan
        keep = np.ones(t_hours.size, dtype=bool)
        for _ in range(spec.outages_per_station):
            begin = rng.uniform(0, hours)
            keep &= ~((t_hours >= begin) & (t_hours < begin + rng.uniform(3, 18)))
        yield from _windows(spec, st, t_hours, values, keep)


def _windows(
    spec: SyntheticSpec,
    st: Station,
    t_hours: np.ndarray,
    values: dict[str, np.ndarray],
    keep: np.ndarray,
) -> Iterator[tuple[WindowKey, pa.Table]]:
    start_us = int(spec.start.timestamp() * 1_000_000)
    stamps = start_us + np.round(t_hours * _HOUR * 1_000_000).astype(np.int64)
    for w0 in range(0, spec.days * 24, spec.window_hours):
        rows = keep & (t_hours >= w0) & (t_hours < w0 + spec.window_hours)
        if not rows.any():
            continue
        n = int(rows.sum())
        columns = {
            "station": pa.array([st.id] * n, pa.string()),
            "time": pa.array(stamps[rows], pa.timestamp("us", tz="UTC")),
            "longitude": pa.array(np.full(n, st.longitude)),
            "latitude": pa.array(np.full(n, st.latitude)),
            "elevation": pa.array(np.full(n, st.elevation)),
        }
        for name in VARIABLES:
            columns[name] = pa.array(values[name][rows], pa.float64(), from_pandas=True)
        key = WindowKey(
            st.id,
            spec.start + timedelta(hours=w0),
            spec.start + timedelta(hours=w0 + spec.window_hours),
        )
        yield key, pa.Table.from_pydict(columns, schema=WINDOW_SCHEMA)
