"""Synthetic NWP for stations that have no archived forecast offline: GRIB2 products written with
ecCodes as ECMWF's open data writes them (edition 2, regular lat/lon, `2t` in K at 2 m above
ground and the surface geopotential `z`), whose values are the measured observations plus a
documented, seeded error model. What it tests is the plumbing and the baselines, not ECMWF's
skill: every figure resting on it is labelled synthetic.

Error model, per run, step and station (lead = step in hours):
- the grid point nearest each station holds the station's observed temperature at the valid
  time (the hourly means taken at the middle of their hour, linearly interpolated), moved to the grid point's height with
  the standard lapse rate (so the raw value is off by 6.5 K/km times the height difference and
  the corrected one is not), plus
- a bias of `bias_c + bias_growth_c_per_h * lead` and Gaussian noise of standard deviation
  `noise_c + noise_growth_c_per_h * lead`, from one generator seeded with `seed`.
The grid's orography is each station's elevation `orography_offset_m` up or down (in turn;
up where down would be below sea level); points no station is nearest to hold the stations'
mean. Stations nearest to the same grid point share its value and height (the last one's).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from fedeploy_inference.contract import VARIABLES
from fedeploy_inference.hourly import StationSeries
from fedeploy_inference.nwp import GRAVITY, KELVIN, LAPSE_RATE_K_PER_M, Place, places

_TEMPERATURE = VARIABLES.index("air_temperature")
_HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class ErrorModel:
    """How far the synthetic forecasts are from the observations (degC), and where they run."""

    seed: int = 11
    bias_c: float = 0.1
    bias_growth_c_per_h: float = 0.01
    noise_c: float = 0.4
    noise_growth_c_per_h: float = 0.05
    run_every_hours: int = 12
    # To 30 h: with a run every 12 h published 8 h after it (nwp.DEFAULT_AVAILABLE_AFTER_HOURS)
    # an origin's newest run is up to 20 h old, and its sixth lead hour ends 26 h after the run.
    steps: tuple[int, ...] = tuple(range(0, 31, 3))
    grid_degrees: float = 0.1
    orography_offset_m: float = 300.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (recorded with the figures)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _template(
    short_name: str, lat0: float, lon0: float, ni: int, nj: int, degrees: float
) -> object:
    """An ecCodes handle of the parameter on the grid (the caller releases it)."""
    import eccodes

    handle = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
    eccodes.codes_set(handle, "shortName", short_name)
    eccodes.codes_set_key_vals(
        handle,
        f"Ni={ni},Nj={nj},latitudeOfFirstGridPointInDegrees={lat0},"
        f"longitudeOfFirstGridPointInDegrees={lon0 % 360.0},"
        f"latitudeOfLastGridPointInDegrees={lat0 - degrees * (nj - 1)},"
        f"longitudeOfLastGridPointInDegrees={(lon0 + degrees * (ni - 1)) % 360.0},"
        f"iDirectionIncrementInDegrees={degrees},jDirectionIncrementInDegrees={degrees}",
    )
    eccodes.codes_set(handle, "bitsPerValue", 16)
    return handle


def _message(template: object, reference: datetime, step: int, values: np.ndarray) -> bytes:
    import eccodes

    handle = eccodes.codes_clone(template)
    try:
        eccodes.codes_set(handle, "dataDate", int(f"{reference:%Y%m%d}"))
        eccodes.codes_set(handle, "dataTime", reference.hour * 100)
        eccodes.codes_set(handle, "stepRange", str(step))
        eccodes.codes_set_values(handle, np.asarray(values, dtype=float).ravel())
        return bytes(eccodes.codes_get_message(handle))
    finally:
        eccodes.codes_release(handle)


def grib2_field(
    short_name: str,
    reference: datetime,
    step: int,
    lat0: float,
    lon0: float,
    ni: int,
    nj: int,
    degrees: float,
    values: np.ndarray,
) -> bytes:
    """One GRIB2 message (ecCodes' regular_ll_sfc_grib2 sample, ECMWF's centre, 16-bit simple
    packing): `values` (nj, ni) north to south, west to east from (lat0, lon0; either
    longitude convention), in the parameter's GRIB unit (K, m2 s-2)."""
    import eccodes

    template = _template(short_name, lat0, lon0, ni, nj, degrees)
    try:
        return _message(template, reference, step, values)
    finally:
        eccodes.codes_release(template)


def _truth(st: StationSeries) -> tuple[int, np.ndarray, np.ndarray]:
    """(start in us, hours observed, temperature at them): what the valid times interpolate."""
    t = st.values[:, _TEMPERATURE]
    known = np.flatnonzero(~np.isnan(t))
    return int(st.start.timestamp() * 1_000_000), known.astype(float), t[known]


@dataclass(frozen=True)
class _Layout:
    """The grid around the stations: its first point, size, each station's point and height."""

    lat0: float
    lon0: float
    ni: int
    nj: int
    points: dict[str, tuple[int, int]]
    heights: dict[str, float]
    orography: np.ndarray

    @classmethod
    def around(cls, sites: list[Place], errors: ErrorModel) -> _Layout:
        d = errors.grid_degrees
        lat0 = float(np.ceil(max(p.latitude for p in sites) / d) * d + 2 * d)
        lon0 = float(np.floor(min(p.longitude for p in sites) / d) * d - 2 * d)
        south = np.floor(min(p.latitude for p in sites) / d) * d - 2 * d
        east = np.ceil(max(p.longitude for p in sites) / d) * d + 2 * d
        nj, ni = int(round((lat0 - south) / d)) + 1, int(round((east - lon0) / d)) + 1
        points = {
            p.name: (int(round((lat0 - p.latitude) / d)), int(round((p.longitude - lon0) / d)))
            for p in sites
        }
        orography = np.full((nj, ni), float(np.mean([p.elevation or 0.0 for p in sites])))
        heights = {}
        for k, p in enumerate(sites):
            # Up and down in turn; up where down would be below sea level.
            down = k % 2 == 1 and (p.elevation or 0.0) >= errors.orography_offset_m
            offset = errors.orography_offset_m * (-1.0 if down else 1.0)
            heights[p.name] = (p.elevation or 0.0) + offset
            orography[points[p.name]] = heights[p.name]
        return cls(lat0, lon0, ni, nj, points, heights, orography)


def products(
    series: Mapping[str, StationSeries], errors: ErrorModel | None = None, model: str = "ifs"
) -> Iterator[tuple[str, bytes]]:
    """(item id, GRIB2 bytes: `2t` then `z`) per run and step over the observations' period,
    ids as the ingestion service names ECMWF open-data items
    (`<model>-<resol>-oper-fc-<yyyymmddHH>-<step>h-2t_z`). A (run, step) whose valid time no
    station observed (within its record) is not written."""
    import eccodes

    errors = errors or ErrorModel()
    sites = places(series)
    if not sites:
        return
    grid = _Layout.around(sites, errors)
    d = errors.grid_degrees
    resol = f"{d:g}".replace(".", "p")
    truth = {p.name: _truth(series[p.name]) for p in sites}
    templates = {
        name: _template(name, grid.lat0, grid.lon0, grid.ni, grid.nj, d) for name in ("2t", "z")
    }
    rng = np.random.default_rng(errors.seed)
    first = min(st.start for st in series.values())
    last = max(st.start + timedelta(hours=st.values.shape[0]) for st in series.values())
    run = first.replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        while run < last:
            for step in errors.steps:
                valid_us = int((run + timedelta(hours=step)).timestamp() * 1_000_000)
                field = np.full((grid.nj, grid.ni), np.nan)
                for p in sites:
                    start_us, hours, values = truth[p.name]
                    # Hourly bins hold the hour's mean: it is the value at its middle.
                    at = (valid_us - start_us) / _HOUR_US - 0.5
                    if not hours.size or not hours[0] <= at <= hours[-1]:
                        continue
                    lift = LAPSE_RATE_K_PER_M * ((p.elevation or 0.0) - grid.heights[p.name])
                    sd = errors.noise_c + errors.noise_growth_c_per_h * step
                    error = errors.bias_c + errors.bias_growth_c_per_h * step + rng.normal(0, sd)
                    field[grid.points[p.name]] = float(np.interp(at, hours, values)) + lift + error
                if np.isnan(field).all():
                    continue
                field = np.where(np.isnan(field), np.nanmean(field), field) + KELVIN
                messages = _message(templates["2t"], run, step, field)
                messages += _message(templates["z"], run, step, grid.orography * GRAVITY)
                yield f"{model}-{resol}-oper-fc-{run:%Y%m%d%H}-{step}h-2t_z", messages
            run += timedelta(hours=errors.run_every_hours)
    finally:
        for handle in templates.values():
            eccodes.codes_release(handle)
