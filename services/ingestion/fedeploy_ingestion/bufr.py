"""BUFR surface observations (land SYNOP, WIGOS-identified) to `Observation`s (pure).

WIS2 notifications link to BUFR edition 4 files, usually of template 307096 (land station
SYNOP) or its relatives, one subset per station and time. ecCodes (the PyPI `eccodes` package
with its `eccodeslib` binary wheel; no system library) decodes them. A file may hold several
BUFR messages, each several subsets, compressed or not.

Mapping (docs/observation-schema.md, "WIS2 and BUFR"): the first occurrence of each element in
a subset (the `#1#` key; the statistics blocks of 307096 repeat some of them):

| BUFR element (descriptor) | unit in BUFR | model variable | unit stored |
|---|---|---|---|
| WIGOS identifier (301150: 001125-001128) | | `station` `<series>-<issuer>-<issue>-<local>` | |
| else block and station number (001001, 001002) | | `station` `0-20000-0-<BBSSS>` | |
| year .. minute, second (004001-004006) | | `time` (UTC) | |
| latitude (005001/005002), longitude (006001/006002) | deg | position | deg |
| heightOfStationGroundAboveMeanSeaLevel (007030) | m | `elevation` | m |
| airTemperature (012101) | K | `air_temperature` | degC |
| nonCoordinatePressure (010004, station level) | Pa | `air_pressure` | hPa |
| relativeHumidity (013003) | % | `relative_humidity` | % |
| windSpeed (011002) | m s-1 | `wind_speed` | m s-1 |
| totalPrecipitationOrTotalWaterEquivalent (013011, first period) | kg m-2 | `precipitation` | mm |

A subset with no station or no time, with a station id the model refuses, a time outside the
plausible window or a value out of range is refused alone (`SubsetRefusal`); the others of the
file are kept. A file that does not decode raises InvalidObservation `bufr`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fedeploy_ingestion.observation import (
    STATION_PATTERN,
    InvalidObservation,
    Limits,
    Observation,
    canonical_value,
    check_time,
)

# Sections 0 to 5 of a BUFR message: "BUFR", a 3-byte total length, the edition; ends "7777".
_START, _END = b"BUFR", b"7777"
MAX_MESSAGES = 1000
MAX_SUBSETS = 100_000
# Station heights the model accepts (m; observation.Position): 007030 encodes up to 12707 m.
MIN_ELEVATION, MAX_ELEVATION = -500.0, 9000.0

# (BUFR key, model variable, unit of the value in BUFR)
VALUE_KEYS: tuple[tuple[str, str, str], ...] = (
    ("airTemperature", "air_temperature", "K"),
    ("nonCoordinatePressure", "air_pressure", "Pa"),
    ("relativeHumidity", "relative_humidity", "%"),
    ("windSpeed", "wind_speed", "m s-1"),
    ("totalPrecipitationOrTotalWaterEquivalent", "precipitation", "kg m-2"),
)
_WIGOS = (
    "wigosIdentifierSeries",
    "wigosIssuerOfIdentifier",
    "wigosIssueNumber",
    "wigosLocalIdentifierCharacter",
)
_TIME = ("year", "month", "day", "hour", "minute", "second")
_POSITION = ("latitude", "longitude", "heightOfStationGroundAboveMeanSeaLevel")
_KEYS = (
    *_WIGOS,
    "blockNumber",
    "stationNumber",
    *_TIME,
    *_POSITION,
    *(k for k, _, _ in VALUE_KEYS),
)


@dataclass(frozen=True)
class SubsetRefusal:
    """One subset that was not mapped: where it is (message and subset, from 1) and why."""

    message: int
    subset: int
    code: str
    reason: str


def load_eccodes() -> Any:
    """The `eccodes` module, loaded after psycopg's libraries when psycopg is installed.

    The `eckitlib` wheel preloads its bundled OpenLDAP 2.4 libraries with RTLD_GLOBAL; a
    psycopg-binary loaded after them binds its own libldap to theirs and the process crashes
    at exit (SIGSEGV in libldap's destructor). Loading psycopg first avoids it. The service's
    image has no psycopg; test and benchmark processes (pgstac on loopback) do."""
    with contextlib.suppress(ImportError):
        import psycopg  # noqa: F401
    import eccodes

    return eccodes


def split_messages(data: bytes) -> list[bytes]:
    """The BUFR messages of a file, by their section-0 lengths; InvalidObservation `bufr` for
    bytes that are not whole BUFR messages (bytes between messages, a truncated one)."""
    messages: list[bytes] = []
    offset = 0
    while offset < len(data):
        start = data.find(_START, offset)
        if start < 0 or data[offset:start].strip(b"\0\r\n "):
            raise InvalidObservation("bufr", f"no BUFR message at byte {offset}")
        if start + 8 > len(data):
            raise InvalidObservation("bufr", f"BUFR message at byte {start} is truncated")
        length = int.from_bytes(data[start + 4 : start + 7], "big")
        end = start + length
        if length < 8 or end > len(data) or data[end - 4 : end] != _END:
            raise InvalidObservation(
                "bufr",
                f"BUFR message at byte {start} declares {length} bytes; the file has "
                f"{len(data) - start} from there and the message must end in '7777'",
            )
        messages.append(data[start:end])
        if len(messages) > MAX_MESSAGES:
            raise InvalidObservation("bufr", f"more than {MAX_MESSAGES} BUFR messages in one file")
        offset = end
    if not messages:
        raise InvalidObservation("bufr", "the file is empty")
    return messages


def _missing(value: Any) -> bool:
    eccodes = load_eccodes()

    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, float):
        return value == eccodes.CODES_MISSING_DOUBLE or math.isnan(value)
    return bool(value == eccodes.CODES_MISSING_LONG)


def _subset_values(handle: Any, count: int, compressed: bool) -> Iterator[dict[str, Any]]:
    """Per subset, the first occurrence of each key in `_KEYS` (None when absent/missing)."""
    eccodes = load_eccodes()

    def read(key: str) -> list[Any]:
        # codes_is_defined does not understand '/subsetNumber=N/' keys: ask, and take
        # "not found" for absent.
        try:
            if key.endswith("wigosLocalIdentifierCharacter"):
                return list(eccodes.codes_get_string_array(handle, key))
            return list(eccodes.codes_get_array(handle, key))
        except eccodes.KeyValueNotFoundError:
            return []

    if compressed or count == 1:
        columns: dict[str, list[Any]] = {}
        for key in _KEYS:
            values = read(f"#1#{key}")
            columns[key] = values * count if len(values) == 1 else values
        for index in range(count):
            yield {
                key: (None if index >= len(v) or _missing(v[index]) else v[index])
                for key, v in columns.items()
            }
        return
    for index in range(1, count + 1):
        row: dict[str, Any] = {}
        for key in _KEYS:
            values = read(f"/subsetNumber={index}/{key}")
            row[key] = None if not values or _missing(values[0]) else values[0]
        yield row


def _station(row: dict[str, Any]) -> str | None:
    series, issuer, issue, local = (row[k] for k in _WIGOS)
    if None not in (series, issuer, issue, local):
        return f"{int(series)}-{int(issuer)}-{int(issue)}-{str(local).strip()}"
    if row["blockNumber"] is not None and row["stationNumber"] is not None:
        return f"0-20000-0-{int(row['blockNumber']):02d}{int(row['stationNumber']):03d}"
    return None


def _time(row: dict[str, Any]) -> datetime | None:
    if any(row[k] is None for k in _TIME[:5]):
        return None
    second = row["second"] or 0
    year, month, day, hour, minute = (int(row[k]) for k in _TIME[:5])
    return datetime(year, month, day, hour, minute, int(second), tzinfo=UTC)


def map_subset(row: dict[str, Any], now: datetime, limits: Limits) -> Observation:
    """One decoded subset (keys of `_KEYS`, None for missing) to an Observation.

    InvalidObservation codes: `no-station`, `no-time`, `station` (not a valid id), `time`
    (not a calendar date), `no-values`, and those of `check_time` and `canonical_value`."""
    import re

    station = _station(row)
    if station is None:
        raise InvalidObservation(
            "no-station", "the subset has neither a WIGOS identifier nor block/station number"
        )
    if not re.match(STATION_PATTERN, station):
        raise InvalidObservation(
            "station", f"station id {station!r} is not letters, digits, '.' and '-'"
        )
    try:
        time = _time(row)
    except (ValueError, OverflowError) as error:
        raise InvalidObservation(
            "time", f"station {station}: not a date and time: {error}"
        ) from None
    if time is None:
        raise InvalidObservation("no-time", f"station {station}: the subset has no complete time")
    check_time(time, now, limits)
    values = {}
    for key, name, unit in VALUE_KEYS:
        if row[key] is not None:
            try:
                # Rounded past BUFR's own resolution: K -> degC must not add float noise.
                values[name] = round(canonical_value(name, float(row[key]), unit), 6)
            except InvalidObservation as error:
                raise InvalidObservation(error.code, f"station {station}: {error.reason}") from None
    if not values:
        raise InvalidObservation("no-values", f"station {station}: the subset has no value")
    latitude, longitude = row["latitude"], row["longitude"]
    positioned = (
        latitude is not None
        and longitude is not None
        and -90 <= latitude <= 90
        and -180 <= longitude <= 180
    )
    elevation = row["heightOfStationGroundAboveMeanSeaLevel"]
    return Observation(
        station=station,
        time=time,
        values=dict(sorted(values.items())),
        longitude=round(float(longitude), 6) if positioned else None,
        latitude=round(float(latitude), 6) if positioned else None,
        elevation=(
            float(elevation)
            if positioned and elevation is not None and MIN_ELEVATION <= elevation <= MAX_ELEVATION
            else None
        ),
    )


def decode_bufr(
    data: bytes, now: datetime, limits: Limits
) -> tuple[list[Observation], list[SubsetRefusal]]:
    """The observations of a BUFR file, and the subsets refused (with their reasons).

    InvalidObservation `bufr` when the file (or one of its messages) does not decode."""
    eccodes = load_eccodes()

    observations: list[Observation] = []
    refused: list[SubsetRefusal] = []
    for number, message in enumerate(split_messages(data), start=1):
        handle = None
        try:
            handle = eccodes.codes_new_from_message(message)
            count = int(eccodes.codes_get(handle, "numberOfSubsets"))
            if not 0 < count <= MAX_SUBSETS:
                raise InvalidObservation(
                    "bufr", f"BUFR message {number} has {count} subsets; 1 to {MAX_SUBSETS} allowed"
                )
            compressed = bool(eccodes.codes_get(handle, "compressedData"))
            eccodes.codes_set(handle, "unpack", 1)
            rows = list(_subset_values(handle, count, compressed))
        except InvalidObservation:
            raise
        except Exception as error:  # noqa: BLE001 - whatever ecCodes raises is this file's
            raise InvalidObservation(
                "bufr", f"BUFR message {number} does not decode: {type(error).__name__}: {error}"
            ) from None
        finally:
            if handle is not None:
                eccodes.codes_release(handle)
        for index, row in enumerate(rows, start=1):
            try:
                observations.append(map_subset(row, now, limits))
            except InvalidObservation as error:
                refused.append(SubsetRefusal(number, index, error.code, error.reason))
    return observations, refused
