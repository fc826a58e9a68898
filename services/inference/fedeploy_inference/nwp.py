"""Numerical weather prediction at the stations: a GRIB2 forecast product (as ECMWF's open data
writes it, and as the ingestion service copies it into the site's bucket) read with ecCodes
into per-station 2 m temperatures.

Per station the value is the one at the **nearest grid point** (not bilinear): the orography
used for the height correction is then that same point's, so the correction is exact for the
value taken, and a coastal or mountain station is not given a mix of sea and land points.
Only regular latitude/longitude grids are read; longitudes may run 0..360 or -180..180 (both
the grid's and the station's are taken modulo 360). A station farther than half a grid step
outside the grid is **not covered**, with its reason.

The 2 m temperature is corrected for the height difference between the station and the grid
point's orography with the standard lapse rate of 6.5 K/km (ICAO standard atmosphere):
`T_station = T_grid - 0.0065 K/m * (station elevation - grid orography)`. The orography comes
from the product's own `z` (surface geopotential, m2 s-2, divided by g = 9.80665) or `orog`
(m) message, or where it has neither (ECMWF may send the orography with step 0 only) from
the last product read that had one (`collect`); where there is none, or the station's
elevation is unknown, the corrected value is the raw one and `correction` says why it was not
applied. Kelvin become degC. Valid time = reference time + step.

Bounded: only the messages of `2t`, and of `z` and `orog` on the surface level, are decoded
(the others' identity is read, their values never: `z` on pressure levels is not the
orography); a product larger than MAX_PRODUCT_BYTES, with a message that is not GRIB2, or
with more than one `2t` message (an ensemble's members, several steps) fails alone with its
id (ProductError)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from fedeploy_inference.hourly import StationSeries

LAPSE_RATE_K_PER_M = 0.0065
GRAVITY = 9.80665
KELVIN = 273.15
MAX_PRODUCT_BYTES = 256 * 1024 * 1024
# A run is usable for a forecast origin this long after its reference time. ECMWF's real-time
# dissemination schedule (confluence.ecmwf.int/display/DAC/Dissemination+schedule) sends the
# 00 UTC IFS run's steps 0-90 from 5:45 to 6:12 after its reference time, 93-144 by 6:27 and
# 150-360 by 7:34 (the other runs alike), and the open data "are released 1 hour after the
# real-time dissemination schedule" (ECMWF's open-data page): steps 0-144, the ones a
# station forecast reads, are out 7:27 after the reference time. 8 h leaves half an hour of
# margin; a site reading later streams (ensemble, long steps) or a mirror sets more.
DEFAULT_AVAILABLE_AFTER_HOURS = 8.0
# Steps further apart than this are not interpolated between (a missing step is a gap).
MAX_STEP_GAP_HOURS = 6.0
_WANTED = {"2t", "z", "orog"}
# Read as the orography only where their level is the surface.
_SURFACE_ONLY = {"z", "orog"}
_HOUR_US = 3_600_000_000


class ProductError(ValueError):
    """A product cannot be read; the message names the product."""


@dataclass(frozen=True)
class Place:
    """A station's position: degrees north and east, elevation in m (None: unknown)."""

    name: str
    latitude: float
    longitude: float
    elevation: float | None


def places(series: Mapping[str, StationSeries]) -> list[Place]:
    """The stations whose position is known, by name."""
    return [
        Place(name, st.latitude, st.longitude, st.elevation)
        for name, st in sorted(series.items())
        if st.latitude is not None and st.longitude is not None
    ]


@dataclass(frozen=True)
class StationValue:
    """One station's 2 m temperature in one product (degC), or why it has none."""

    covered: bool
    raw_c: float = float("nan")
    corrected_c: float = float("nan")
    grid_latitude: float | None = None
    grid_longitude: float | None = None
    grid_elevation: float | None = None
    correction: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ProductAtStations:
    """A product read at the stations: its id, model run and step, and a value per station."""

    product: str
    reference: datetime
    step_hours: float
    values: dict[str, StationValue]
    centre: str = ""
    orography: Orography | None = field(default=None, repr=False, compare=False)

    @property
    def valid(self) -> datetime:
        """Reference time + step."""
        return self.reference + timedelta(hours=self.step_hours)


@dataclass(frozen=True)
class _Grid:
    """A regular lat/lon grid as GRIB2 describes it (degrees)."""

    ni: int
    nj: int
    lat0: float
    lon0: float
    di: float
    dj: float
    i_negative: bool
    j_positive: bool

    def nearest(self, latitude: float, longitude: float) -> tuple[int, float, float] | str:
        """(index into the values, grid latitude, grid longitude) of the nearest point, or the
        reason the place is outside the grid."""
        dj = self.dj if self.j_positive else -self.dj
        row = (latitude - self.lat0) / dj
        # Half a step beyond the first or last point is as near as that point (inclusive on
        # both sides); clamped, as round() of n - 0.5 may give n (banker's rounding).
        j = min(max(round(row), 0), self.nj - 1)
        if not -0.5 <= row <= self.nj - 0.5:
            last = self.lat0 + dj * (self.nj - 1)
            return (
                f"latitude {latitude:g} outside the grid's {min(self.lat0, last):g} to "
                f"{max(self.lat0, last):g}"
            )
        di = -self.di if self.i_negative else self.di
        offset = ((longitude - self.lon0) * np.sign(di)) % 360.0
        span = self.di * self.ni
        if span >= 360.0 - 1e-6:  # global in longitude: wraps
            i = round(offset / self.di) % self.ni
        else:
            # Half a step before the first point is as near as the first point.
            if offset >= 360.0 - self.di / 2:
                offset -= 360.0
            if offset > self.di * (self.ni - 0.5):
                last = _east(self.lon0 + di * (self.ni - 1))
                return (
                    f"longitude {longitude:g} outside the grid's {_east(self.lon0):g} to {last:g}"
                )
            i = min(max(round(offset / self.di), 0), self.ni - 1)
        return j * self.ni + i, self.lat0 + dj * j, _east(self.lon0 + di * i)


# A product's own orography: its grid and heights (m), as read from `z` or `orog`.
Orography = tuple[_Grid, np.ndarray]


def _east(longitude: float) -> float:
    """A longitude in -180..180."""
    return (longitude + 180.0) % 360.0 - 180.0


def _messages(data: bytes, product: str) -> Iterable[bytes]:
    """The GRIB2 messages of a product's bytes, end to end (ProductError otherwise)."""
    at = 0
    while at < len(data):
        if data[at : at + 4] != b"GRIB" or len(data) - at < 16:
            raise ProductError(f"{product}: no GRIB message at byte {at}")
        if data[at + 7] != 2:
            raise ProductError(
                f"{product}: the message at byte {at} is GRIB edition {data[at + 7]}; 2 is read"
            )
        length = int.from_bytes(data[at + 8 : at + 16], "big")
        if length < 20 or at + length > len(data) or data[at + length - 4 : at + length] != b"7777":
            raise ProductError(f"{product}: the message at byte {at} is cut short or corrupt")
        yield data[at : at + length]
        at += length


@dataclass
class _Fields:
    """What a product's wanted messages hold."""

    grids: dict[str, tuple[_Grid, np.ndarray]] = field(default_factory=dict)
    reference: datetime | None = None
    step_hours: float | None = None
    centre: str = ""
    first_2t: str = ""


def _identity(eccodes: Any, handle: object) -> str:
    """A message's step and ensemble member, as errors name it."""
    step = eccodes.codes_get_string(handle, "stepRange")
    number = (
        eccodes.codes_get(handle, "number") if eccodes.codes_is_defined(handle, "number") else None
    )
    return f"step {step}" + (f", member {number}" if number is not None else "")


def _decode(data: bytes, product: str) -> _Fields:
    import eccodes

    found = _Fields()
    for message in _messages(data, product):
        handle = eccodes.codes_new_from_message(message)
        try:
            name = eccodes.codes_get_string(handle, "shortName")
            if name not in _WANTED:
                continue
            level = eccodes.codes_get_string(handle, "typeOfLevel")
            if name in _SURFACE_ONLY and level != "surface":
                continue  # z on pressure levels is not the orography
            if name in found.grids:
                if name != "2t":
                    continue
                raise ProductError(
                    f"{product}: more than one 2t message ({_identity(eccodes, handle)} after "
                    f"{found.first_2t}); one field per product is read: a deterministic "
                    "forecast's step (type fc, or cf, or the ensemble mean em), not an "
                    "ensemble's members or several steps"
                )
            if eccodes.codes_get_string(handle, "gridType") != "regular_ll":
                raise ProductError(
                    f"{product}: {name} is on a {eccodes.codes_get_string(handle, 'gridType')} "
                    "grid; only regular_ll is read"
                )
            if eccodes.codes_get_long(handle, "jPointsAreConsecutive"):
                raise ProductError(f"{product}: {name}'s points run along meridians; not read")
            grid = _Grid(
                ni=eccodes.codes_get_long(handle, "Ni"),
                nj=eccodes.codes_get_long(handle, "Nj"),
                lat0=eccodes.codes_get_double(handle, "latitudeOfFirstGridPointInDegrees"),
                lon0=eccodes.codes_get_double(handle, "longitudeOfFirstGridPointInDegrees"),
                di=eccodes.codes_get_double(handle, "iDirectionIncrementInDegrees"),
                dj=eccodes.codes_get_double(handle, "jDirectionIncrementInDegrees"),
                i_negative=bool(eccodes.codes_get_long(handle, "iScansNegatively")),
                j_positive=bool(eccodes.codes_get_long(handle, "jScansPositively")),
            )
            values = np.asarray(eccodes.codes_get_values(handle), dtype=float)
            if values.size != grid.ni * grid.nj:
                raise ProductError(
                    f"{product}: {name} has {values.size} values for {grid.ni}x{grid.nj} points"
                )
            if eccodes.codes_get_long(handle, "bitmapPresent"):
                values[values == eccodes.codes_get_double(handle, "missingValue")] = np.nan
            if name == "2t":  # ecCodes' 2t is in K by its definition
                found.first_2t = _identity(eccodes, handle)
                date = eccodes.codes_get_long(handle, "dataDate")
                time = eccodes.codes_get_long(handle, "dataTime")
                found.reference = datetime.strptime(f"{date:08d}{time:04d}", "%Y%m%d%H%M").replace(
                    tzinfo=UTC
                )
                valid_date = eccodes.codes_get_long(handle, "validityDate")
                valid_time = eccodes.codes_get_long(handle, "validityTime")
                valid = datetime.strptime(
                    f"{valid_date:08d}{valid_time:04d}", "%Y%m%d%H%M"
                ).replace(tzinfo=UTC)
                found.step_hours = (valid - found.reference).total_seconds() / 3600.0
                found.centre = eccodes.codes_get_string(handle, "centre")
            elif name == "z":
                values = values / GRAVITY
            found.grids[name] = (grid, values)
        except eccodes.CodesInternalError as error:
            raise ProductError(f"{product}: ecCodes cannot read a message: {error}") from None
        finally:
            eccodes.codes_release(handle)
    return found


def read_product(
    data: bytes, product: str, places: Sequence[Place], orography: Orography | None = None
) -> ProductAtStations:
    """The product's 2 m temperature at each place (degC, raw and lapse-rate corrected).

    `product` names it in errors (its item id or key). `orography`: the one to use where the
    product has no `z` or `orog` of its own (the terrain does not change with the step; ECMWF
    may send it with step 0 only). Raises ProductError for a product that is not GRIB2, is too
    large, or has no `2t` on a regular lat/lon grid."""
    if len(data) > MAX_PRODUCT_BYTES:
        raise ProductError(f"{product}: {len(data)} bytes; at most {MAX_PRODUCT_BYTES} are read")
    try:
        fields = _decode(data, product)
    except ProductError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever ecCodes says, the product fails alone
        raise ProductError(f"{product}: {type(error).__name__}: {error}") from None
    if "2t" not in fields.grids or fields.reference is None or fields.step_hours is None:
        raise ProductError(f"{product}: no 2t (2 m temperature) message")
    grid, temperature = fields.grids["2t"]
    own = fields.grids.get("z") or fields.grids.get("orog")
    orography = own or orography
    values: dict[str, StationValue] = {}
    for place in places:
        at = grid.nearest(place.latitude, place.longitude)
        if isinstance(at, str):
            values[place.name] = StationValue(False, reason=f"not covered: {at}")
            continue
        index, lat, lon = at
        raw = float(temperature[index]) - KELVIN
        if np.isnan(raw):
            values[place.name] = StationValue(
                False, reason="not covered: missing value at the grid point"
            )
            continue
        corrected, height, note = raw, None, ""
        if orography is None:
            note = "not applied: the product has no z or orog field"
        elif place.elevation is None:
            note = "not applied: the station's elevation is unknown"
        else:
            o_at = orography[0].nearest(place.latitude, place.longitude)
            height = None if isinstance(o_at, str) else float(orography[1][o_at[0]])
            if height is None or np.isnan(height):
                note = "not applied: no orography at the grid point"
                height = None
            else:
                corrected = raw - LAPSE_RATE_K_PER_M * (place.elevation - height)
                note = f"{-LAPSE_RATE_K_PER_M * (place.elevation - height):+.2f} K"
        values[place.name] = StationValue(True, raw, corrected, lat, lon, height, note)
    return ProductAtStations(
        product, fields.reference, fields.step_hours, values, fields.centre, own
    )


@dataclass(frozen=True)
class StationForecasts:
    """One station's forecasts from every product read, sorted by (reference, valid) time (us):
    raw and corrected 2 m temperature (degC) and which product each came from."""

    reference_us: np.ndarray
    valid_us: np.ndarray
    raw_c: np.ndarray
    corrected_c: np.ndarray

    def at(
        self,
        origins_us: np.ndarray,
        horizon: int,
        available_after_hours: float = DEFAULT_AVAILABLE_AFTER_HOURS,
        corrected: bool = True,
    ) -> np.ndarray:
        """(B, horizon) degC for lead hour k+1 (k = 0..horizon-1: the hour from origin + k h,
        whose mean temperature is the target) at the middle of that hour, origin + (k + 0.5) h:
        from the newest run available at the origin (reference + `available_after_hours` <=
        origin), linearly interpolated between its steps at most MAX_STEP_GAP_HOURS apart; NaN
        where that run does not reach the hour."""
        out = np.full((origins_us.shape[0], horizon), np.nan)
        runs = np.unique(self.reference_us)
        if not runs.size:
            return out
        usable = runs + int(available_after_hours * _HOUR_US)
        pick = np.searchsorted(usable, origins_us, side="right") - 1
        values = self.corrected_c if corrected else self.raw_c
        wanted = origins_us[:, None] + (np.arange(horizon)[None, :] * 2 + 1) * (_HOUR_US // 2)
        for r in np.unique(pick[pick >= 0]):
            rows = pick == r
            own = self.reference_us == runs[r]
            times, vals = self.valid_us[own], values[own]
            t = wanted[rows]
            k = np.searchsorted(times, t, side="left")
            exact = (k < times.size) & (times[np.minimum(k, times.size - 1)] == t)
            lo, hi = np.clip(k - 1, 0, times.size - 1), np.clip(k, 0, times.size - 1)
            inside = (
                (k > 0)
                & (k < times.size)
                & ((times[hi] - times[lo]) <= MAX_STEP_GAP_HOURS * _HOUR_US)
            )
            span = np.maximum(times[hi] - times[lo], 1)
            w = (t - times[lo]) / span
            between = vals[lo] * (1 - w) + vals[hi] * w
            got = np.where(
                exact, vals[np.minimum(k, times.size - 1)], np.where(inside, between, np.nan)
            )
            out[rows] = got
        return out


@dataclass(frozen=True)
class Forecasts:
    """Every product read for a set of stations: per station its forecasts, per station not
    covered why, the products that failed (id: reason) and what was read (for the card)."""

    stations: dict[str, StationForecasts]
    not_covered: dict[str, str]
    failed: dict[str, str]
    products: int
    models: list[str]
    runs: tuple[str, str] | None
    synthetic: bool = False
    correction: dict[str, str] = field(default_factory=dict)
    available_after_hours: float = DEFAULT_AVAILABLE_AFTER_HOURS
    sources_not_read: dict[str, str] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        """Whether any station has a forecast."""
        return bool(self.stations)

    def describe(self) -> dict[str, object]:
        """What the forecasts rest on, JSON-ready (the card's source line)."""
        return {
            "products": self.products,
            "models": self.models,
            "runs": list(self.runs) if self.runs else None,
            "synthetic": self.synthetic,
            "stations": sorted(self.stations),
            "not_covered": dict(sorted(self.not_covered.items())),
            "failed_products": dict(sorted(self.failed.items())),
            "lapse_rate_correction": dict(sorted(self.correction.items())),
            "available_after_hours": self.available_after_hours,
            "method": "nearest grid point; 2 m temperature lapse-rate corrected at 6.5 K/km",
        } | ({"sources_not_read": dict(sorted(self.sources_not_read.items()))}
             if self.sources_not_read else {})  # fmt: skip


def collect(
    products: Iterable[tuple[str, bytes | Exception]],
    places: Sequence[Place],
    model_of: Mapping[str, str] | None = None,
    synthetic: bool = False,
    available_after_hours: float = DEFAULT_AVAILABLE_AFTER_HOURS,
) -> Forecasts:
    """Read every product (id, its bytes, or the error fetching it) at the places. A product
    that fails is recorded in `failed` with its reason and the others are read; a station
    covered by no product is in `not_covered` with the last reason it was given. A product
    without `z` or `orog` is corrected with the orography of the last one read that had it
    (products come sorted by key: a run's step 0 before its other steps)."""
    rows: dict[str, list[tuple[int, int, float, float]]] = {p.name: [] for p in places}
    reasons: dict[str, str] = {}
    correction: dict[str, str] = {}
    failed: dict[str, str] = {}
    models: set[str] = set()
    refs: list[datetime] = []
    count = 0
    orography: Orography | None = None  # the last product's that had one
    for product, data in products:
        if isinstance(data, Exception):
            failed[product] = f"{product}: {data}"
            continue
        try:
            read = read_product(data, product, places, orography)
        except ProductError as error:
            failed[product] = str(error)
            continue
        orography = read.orography or orography
        count += 1
        models.add((model_of or {}).get(product, read.centre or "unknown"))
        refs.append(read.reference)
        ref_us = int(read.reference.timestamp() * 1_000_000)
        valid_us = int(read.valid.timestamp() * 1_000_000)
        for name, value in read.values.items():
            if value.covered:
                rows[name].append((ref_us, valid_us, value.raw_c, value.corrected_c))
                correction.setdefault(name, value.correction)
            else:
                reasons[name] = value.reason
    stations = {}
    for name, got in rows.items():
        if not got:
            reasons.setdefault(name, "not covered: no product read")
            continue
        reasons.pop(name, None)
        table = np.array(sorted(got), dtype=float)
        stations[name] = StationForecasts(
            table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2], table[:, 3]
        )
    span = (min(refs).isoformat(), max(refs).isoformat()) if refs else None
    return Forecasts(
        stations, reasons, failed, count, sorted(models), span, synthetic, correction,
        available_after_hours,
    )  # fmt: skip
