"""BUFR surface observations (land and sea surface reports) to `Observation`s (pure).

WIS2 notifications link to BUFR files: edition 4 from today's encoders, edition 3 from older
ones, often as the GTS bulletin the data was first sent in (an abbreviated heading such as
`ISMD01 LFPW 061200 CCA`, CR CR LF, the BUFR message, CR CR LF; sometimes SOH/sequence
number/ETX framing, or a WMO FTP file container holding several bulletins). ecCodes (the PyPI
`eccodes` package with its `eccodeslib` binary wheel; no system library) decodes them. A file
may hold several BUFR messages, each several subsets, compressed or not.

Only surface data feed the surface variables: section 1's data category (WMO Manual on Codes,
BUFR Table A) must be 0 (surface data, land: SYNOP, template 307080/307096) or 1 (surface
data, sea: SHIP 308009, BUOY 315009); a message of any other category (a wind profiler or a
TEMP is category 2, vertical soundings) is refused whole with code `data-category`.

Mapping (docs/observation-schema.md, "WIS2 and BUFR"): per subset, the first occurrence of
the first element listed that has a value:

| variable | BUFR elements (descriptor), in order | unit in BUFR | unit stored |
|---|---|---|---|
| `station` | WIGOS identifier (301150: 001125-001128) `<series>-<issuer>-<issue>-<local>`; block and station number (001001, 001002) `0-20000-0-<BBSSS>`; buoy or platform identifier (001087, 001005) `0-22000-0-<id>`; ship call sign (001011) `0-20004-0-<call sign>` | | |
| `time` | year .. minute, second (004001-004006) | | UTC |
| position | latitude (005001/005002), longitude (006001/006002), station height (007030, 007001) | deg, m | deg, m |
| `air_temperature` | airTemperature (012101; 012001 in edition 3), airTemperatureAt2M (012104; 012004 in edition 3) | K | degC |
| `air_pressure` | nonCoordinatePressure (010004, pressure at the station; never 010051, reduced to mean sea level) | Pa | hPa |
| `relative_humidity` | relativeHumidity (013003) | % | % |
| `wind_speed` | windSpeed (011002), windSpeedAt10M (011012) | m s-1 | m s-1 |
| `precipitation` | totalPrecipitationPast1Hour (013019); totalPrecipitationOrTotalWaterEquivalent (013011) whose time period (004024 h, 004025 min or 004026 s) is one hour | kg m-2 | mm |

Corrections: a message's rank is the greater of its update sequence number (section 1) and its
bulletin's correction indicator (`CCA` 1, `CCB` 2, ...); observations carry it as
`correction` (see `observation.merge`).

A subset with no station, a NIL report (no value of any variable), no time, a station id the
model refuses, a time outside the plausible window or a value out of range is refused alone
(`SubsetRefusal`); the others of the file are kept. Bytes that hold no BUFR message raise
InvalidObservation `bufr`; a file whose subsets or values exceed `DecodeBudget`, `too-large`.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator
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
_ETX = b"\x03"  # ends a bulletin in SOH/ETX framing
EDITIONS = (2, 3, 4)
MAX_MESSAGES = 1000
# Notes kept for 'BUFR' that starts no whole message; the others are counted.
MAX_NOTES = 20
# What ecCodes holds per value of an uncompressed message once unpacked (measured: 1,000
# subsets of 247 expanded descriptors take 1.29 GiB, about 5.5 KiB a value).
UNCOMPRESSED_VALUE_BYTES = 5 * 1024
# Station heights the model accepts (m; observation.Position): 007030 encodes up to 12707 m.
MIN_ELEVATION, MAX_ELEVATION = -500.0, 9000.0
# WMO-No. 386 abbreviated heading T1T2A1A2ii CCCC YYGGgg [BBB] (BBB: RRx delayed, CCx
# corrected, AAx amended, Pxx segmented).
HEADING = re.compile(
    rb"([A-Z]{4}\d{2}) ([A-Z]{4}) (\d{6})(?: (RR[A-Z]|CC[A-Z]|AA[A-Z]|P[A-Z]{2}))?"
)
# BUFR Table A: the data categories whose reports feed the surface variables.
SURFACE_CATEGORIES = {0: "surface data, land", 1: "surface data, sea"}
CATEGORY_NAMES = {
    **SURFACE_CATEGORIES,
    2: "vertical soundings (other than satellite)",
    3: "vertical soundings (satellite)",
    4: "single level upper-air data (other than satellite)",
    5: "single level upper-air data (satellite)",
    6: "radar data",
    7: "synoptic features",
    8: "physical/chemical constituents",
    12: "surface data (satellite)",
    13: "forecasts",
    14: "warnings",
    31: "oceanographic data",
}

# (model variable, ecCodes keys in order of preference, unit of the value in BUFR)
VALUE_KEYS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("air_temperature", ("airTemperature", "airTemperatureAt2M"), "K"),
    ("air_pressure", ("nonCoordinatePressure",), "Pa"),
    ("relative_humidity", ("relativeHumidity",), "%"),
    ("wind_speed", ("windSpeed", "windSpeedAt10M"), "m s-1"),
    ("precipitation", ("totalPrecipitationPast1Hour",), "kg m-2"),
)
# 013011 counts only over a one-hour period (the 004024/004025/004026 just before it).
PERIOD_PRECIPITATION = "totalPrecipitationOrTotalWaterEquivalent"
_WIGOS = (
    "wigosIdentifierSeries",
    "wigosIssuerOfIdentifier",
    "wigosIssueNumber",
    "wigosLocalIdentifierCharacter",
)
_STRINGS = frozenset({"wigosLocalIdentifierCharacter", "shipOrMobileLandStationIdentifier"})
_PLATFORMS = ("marineObservingPlatformIdentifier", "buoyOrPlatformIdentifier")
_TIME = ("year", "month", "day", "hour", "minute", "second")
_HEIGHTS = ("heightOfStationGroundAboveMeanSeaLevel", "heightOfStation")
_KEYS = (
    *_WIGOS,
    "blockNumber",
    "stationNumber",
    *_PLATFORMS,
    "shipOrMobileLandStationIdentifier",
    *_TIME,
    "latitude",
    "longitude",
    *_HEIGHTS,
    *(k for _, keys, _ in VALUE_KEYS for k in keys),
)


@dataclass(frozen=True)
class DecodeBudget:
    """What one file may ask of the decoder, checked from section 3 before any data section
    is unpacked: subsets, values (subsets x expanded descriptors) and, for uncompressed
    messages, the memory their unpacked values take (`UNCOMPRESSED_VALUE_BYTES` each), over
    all its messages. `max_decode_bytes` and `max_decode_seconds` bound the decoding itself
    (`bufr_worker.decode_bufr_bounded`): what section 3 does not show, delayed replication
    factors, is bounded there."""

    max_subsets: int = 10_000
    max_values: int = 4_000_000
    max_uncompressed_bytes: int = 160 * 2**20
    max_decode_bytes: int = 192 * 2**20
    max_decode_seconds: float = 300.0


@dataclass(frozen=True)
class SubsetRefusal:
    """One subset that was not mapped (`subset` 0: the whole message; `message` 0: bytes of
    the file that start no whole message): where it is (message and subset, from 1) and why."""

    message: int
    subset: int
    code: str
    reason: str

    def where(self) -> str:
        """`message M subset S`, `message M` for a whole message, `file` (message 0) for
        bytes that start no whole message."""
        if not self.message:
            return "file"
        return f"message {self.message}" + (f" subset {self.subset}" if self.subset else "")


@dataclass(frozen=True)
class Located:
    """One BUFR message found in a file: its bytes, where it starts, and the abbreviated
    heading of the GTS bulletin around it (None when it has none)."""

    data: bytes
    offset: int
    heading: str | None = None

    @property
    def correction(self) -> int:
        """The heading's correction rank: `CCA` 1, `CCB` 2, ...; 0 otherwise."""
        if self.heading and self.heading[-3:-1] == "CC" and len(self.heading.split()) == 4:
            return ord(self.heading[-1]) - ord("A") + 1
        return 0


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


def _whole_message(data: bytes, start: int) -> int | None:
    """The end of a well-formed BUFR message at `start` (length, edition, '7777'), or None."""
    if start + 8 > len(data) or data[start + 7] not in EDITIONS:
        return None
    end = start + int.from_bytes(data[start + 4 : start + 7], "big")
    if end - start < 8 or end > len(data) or data[end - 4 : end] != _END:
        return None
    return end


def find_messages(data: bytes) -> tuple[list[Located], list[str]]:
    """Every whole BUFR message in a file, wherever it sits (GTS headings, SOH/ETX framing, a
    file container, line ends or NUL padding around it), and a note per 'BUFR' found that
    starts no whole message (a truncated or mangled one). InvalidObservation `bufr` when the
    file holds no message at all."""
    found: list[Located] = []
    broken: list[str] = []
    offset = position = skipped = 0
    while (start := data.find(_START, position)) >= 0:
        end = _whole_message(data, start)
        if end is None:
            declared = int.from_bytes(data[start + 4 : start + 7], "big")
            position = start + len(_START)
            skipped += 1
            if len(broken) >= MAX_NOTES:
                continue
            broken.append(
                f"the BUFR message at byte {start} is not whole: it declares {declared} bytes, "
                f"{len(data) - start} follow, and a message must end in '7777'"
            )
            continue
        between = data[offset:start]
        headings = HEADING.findall(between)
        heading: str | None
        if headings:
            heading = " ".join(p.decode() for p in headings[-1] if p)
        elif found and _ETX not in between:
            heading = found[-1].heading  # a second message in the same bulletin
        else:
            heading = None
        found.append(Located(data[start:end], start, heading))
        if len(found) > MAX_MESSAGES:
            raise InvalidObservation("bufr", f"more than {MAX_MESSAGES} BUFR messages in one file")
        offset = position = end
    if skipped > len(broken):
        broken.append(f"and {skipped - len(broken)} more 'BUFR' that start no whole message")
    if not found:
        if not data:
            raise InvalidObservation("bufr", "the file is empty")
        raise InvalidObservation(
            "bufr",
            "; ".join(broken) if broken else f"no BUFR message in the file's {len(data)} bytes",
        )
    return found, broken


def split_messages(data: bytes) -> list[bytes]:
    """The BUFR messages of a file (`find_messages`' bytes)."""
    return [m.data for m in find_messages(data)[0]]


def _missing(value: Any) -> bool:
    eccodes = load_eccodes()

    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, float):
        return value == eccodes.CODES_MISSING_DOUBLE or math.isnan(value)
    return bool(value == eccodes.CODES_MISSING_LONG)


def _read(handle: Any, key: str) -> list[Any]:
    eccodes = load_eccodes()
    # codes_is_defined does not understand '/subsetNumber=N/' keys: ask, and take
    # "not found" for absent.
    try:
        if key.rsplit("/", 1)[-1].rsplit("#", 1)[-1] in _STRINGS:
            return list(eccodes.codes_get_string_array(handle, key))
        return list(eccodes.codes_get_array(handle, key))
    except eccodes.KeyValueNotFoundError:
        return []


def _key_order(handle: Any) -> list[str]:
    """The data keys of a message (`#n#name`), in template order."""
    eccodes = load_eccodes()
    keys: list[str] = []
    iterator = eccodes.codes_bufr_keys_iterator_new(handle)
    try:
        while eccodes.codes_bufr_keys_iterator_next(iterator):
            name = eccodes.codes_bufr_keys_iterator_get_name(iterator)
            if name.startswith("#"):
                keys.append(name)
    finally:
        eccodes.codes_bufr_keys_iterator_delete(iterator)
    return keys


# 004024 (hours), 004025 (minutes) and 004026 (seconds) are all ecCodes' `timePeriod`: the
# period is read with its unit.
_PERIOD_SECONDS = {"h": 3600, "min": 60, "s": 1}


def _period_seconds(handle: Any, key: str) -> list[Any]:
    """The time periods of `key` (a `#n#timePeriod`) in seconds (None where missing)."""
    eccodes = load_eccodes()
    try:
        unit = eccodes.codes_get_string(handle, f"{key}->units").strip()
    except eccodes.KeyValueNotFoundError:
        unit = "h"
    scale = _PERIOD_SECONDS.get(unit)
    return [None if _missing(v) or scale is None else v * scale for v in _read(handle, key)]


def _hourly_precipitation(
    handle: Any, count: int, compressed: bool, keys: list[str] | None = None
) -> list[Any]:
    """Per subset, the first 013011 whose time period (the 004024/004025/004026 just before
    it, read with its unit) is one hour, or None. The keys are walked in order once per
    message; in an uncompressed message each subset starts again with the template's first
    element."""
    found: list[Any] = [None] * count
    if all(_missing(v) for v in _read(handle, PERIOD_PRECIPITATION)):  # every occurrence
        return found  # absent, or missing in every subset: no key walk (most files)
    keys = _key_order(handle) if keys is None else keys
    first = keys[0].rsplit("#", 1)[-1]
    subset, period = -1, None
    for key in keys:
        name = key.rsplit("#", 1)[-1]
        if name == first:
            subset += 1
        if name == "timePeriod":
            period = _period_seconds(handle, key)
        elif name == PERIOD_PRECIPITATION and period:
            amounts = _read(handle, key)
            for row in range(count) if compressed else [subset]:
                seconds = period[row] if len(period) == count else period[0]
                amount = amounts[row] if len(amounts) == count else amounts[0]
                hourly = seconds is not None and abs(seconds) == 3600
                if row < count and found[row] is None and hourly:
                    found[row] = None if _missing(amount) else amount
    return found


def _subset_values(handle: Any, count: int, compressed: bool) -> Iterator[dict[str, Any]]:
    """Per subset, the first occurrence of each key in `_KEYS` (None when absent/missing)."""
    if compressed or count == 1:
        hourly = _hourly_precipitation(handle, count, compressed)
        columns: dict[str, list[Any]] = {}
        for key in _KEYS:
            values = _read(handle, f"#1#{key}")
            columns[key] = values * count if len(values) == 1 else values
        for index in range(count):
            row: dict[str, Any] = {
                key: (None if index >= len(v) or _missing(v[index]) else v[index])
                for key, v in columns.items()
            }
            row[PERIOD_PRECIPITATION] = hourly[index]
            yield row
        return
    # Uncompressed: one pass over the keys finds each subset's first `#n#name` of each key
    # (a '/subsetNumber=N/' read walks the whole message each time: quadratic).
    keys = _key_order(handle)
    hourly = _hourly_precipitation(handle, count, compressed, keys)
    wanted = frozenset(_KEYS)
    firsts: list[dict[str, str]] = [{} for _ in range(count)]
    first = keys[0].rsplit("#", 1)[-1] if keys else ""
    subset = -1
    for key in keys:
        name = key.rsplit("#", 1)[-1]
        if name == first:
            subset += 1
        if name in wanted and 0 <= subset < count:
            firsts[subset].setdefault(name, key)
    for index in range(count):
        row = {}
        for key in _KEYS:
            found = firsts[index].get(key)
            values = _read(handle, found) if found else []
            row[key] = None if not values or _missing(values[0]) else values[0]
        row[PERIOD_PRECIPITATION] = hourly[index]
        yield row


def _station(row: dict[str, Any]) -> str | None:
    series, issuer, issue, local = (row[k] for k in _WIGOS)
    if None not in (series, issuer, issue, local):
        return f"{int(series)}-{int(issuer)}-{int(issue)}-{str(local).strip()}"
    if row["blockNumber"] is not None and row["stationNumber"] is not None:
        return f"0-20000-0-{int(row['blockNumber']):02d}{int(row['stationNumber']):03d}"
    for key in _PLATFORMS:
        if row[key] is not None:
            return f"0-22000-0-{int(row[key])}"
    if row["shipOrMobileLandStationIdentifier"] is not None:
        return f"0-20004-0-{str(row['shipOrMobileLandStationIdentifier']).strip()}"
    return None


def _time(row: dict[str, Any]) -> datetime | None:
    if any(row[k] is None for k in _TIME[:5]):
        return None
    second = row["second"] or 0
    year, month, day, hour, minute = (int(row[k]) for k in _TIME[:5])
    return datetime(year, month, day, hour, minute, int(second), tzinfo=UTC)


def _first(row: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((row[k] for k in keys if row.get(k) is not None), None)


def map_subset(
    row: dict[str, Any],
    now: datetime,
    limits: Limits,
    published: datetime | None = None,
    correction: int = 0,
) -> Observation:
    """One decoded subset (keys of `_KEYS`, None for missing) to an Observation.

    InvalidObservation codes: `no-station`, `station` (not a valid id), `nil` (a NIL report:
    no value of any variable), `no-time`, `time` (not a calendar date), and those of
    `check_time` and `canonical_value`."""
    station = _station(row)
    if station is None:
        raise InvalidObservation(
            "no-station",
            "the subset has no WIGOS identifier, block/station number, buoy or ship identifier",
        )
    if not re.match(STATION_PATTERN, station):
        raise InvalidObservation(
            "station", f"station id {station!r} is not letters, digits, '.' and '-'"
        )
    raw = {name: _first(row, keys) for name, keys, _ in VALUE_KEYS}
    if raw["precipitation"] is None:
        raw["precipitation"] = row.get(PERIOD_PRECIPITATION)
    if all(value is None for value in raw.values()):
        raise InvalidObservation(
            "nil", f"station {station}: a NIL report, every observed element is missing"
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
    for name, _, unit in VALUE_KEYS:
        if raw[name] is not None:
            try:
                # Rounded past BUFR's own resolution: K -> degC must not add float noise.
                values[name] = round(canonical_value(name, float(raw[name]), unit), 6)
            except InvalidObservation as error:
                raise InvalidObservation(error.code, f"station {station}: {error.reason}") from None
    latitude, longitude = row["latitude"], row["longitude"]
    positioned = (
        latitude is not None
        and longitude is not None
        and -90 <= latitude <= 90
        and -180 <= longitude <= 180
    )
    elevation = _first(row, _HEIGHTS)
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
        published=published,
        correction=correction,
    )


def _category(number: int, category: int) -> None:
    if category not in SURFACE_CATEGORIES:
        name = CATEGORY_NAMES.get(category, "not a surface category")
        raise InvalidObservation(
            "data-category",
            f"BUFR message {number} has data category {category} ({name}); only 0 (surface "
            "data, land) and 1 (surface data, sea) feed the surface variables",
        )


def decode_bufr(
    data: bytes,
    now: datetime,
    limits: Limits,
    published: datetime | None = None,
    budget: DecodeBudget = DecodeBudget(),
    beat: Callable[[], None] = lambda: None,
) -> tuple[list[Observation], list[SubsetRefusal]]:
    """The observations of a BUFR file, and the subsets (or messages) refused with reasons.

    `published`: when the file was published (a WIS2 notification's `pubtime`), kept on each
    observation for `observation.merge`; `beat` is called between messages (a liveness
    heartbeat). InvalidObservation `bufr` when the file holds no whole BUFR message,
    `too-large` when its subsets or values exceed `budget`, and, when every message is
    refused, the first refusal's code (`data-category`, `bufr`)."""
    eccodes = load_eccodes()

    located, broken = find_messages(data)
    observations: list[Observation] = []
    refused = [SubsetRefusal(0, 0, "bufr", note) for note in broken]
    subsets = values = unpacked = 0
    for number, message in enumerate(located, start=1):
        beat()
        handle = None
        try:
            handle = eccodes.codes_new_from_message(message.data)
            _category(number, int(eccodes.codes_get(handle, "dataCategory")))
            count = int(eccodes.codes_get(handle, "numberOfSubsets"))
            expanded = int(eccodes.codes_get_size(handle, "expandedDescriptors"))
            compressed = bool(eccodes.codes_get(handle, "compressedData"))
            subsets += count
            values += count * expanded
            if not compressed:
                unpacked += count * expanded * UNCOMPRESSED_VALUE_BYTES
            if count < 1 or subsets > budget.max_subsets or values > budget.max_values:
                raise InvalidObservation(
                    "too-large" if count >= 1 else "bufr",
                    f"BUFR message {number} declares {count} subsets of {expanded} descriptors: "
                    f"the file would hold {subsets} subsets and {values} values; at most "
                    f"{budget.max_subsets} subsets and {budget.max_values} values per file",
                )
            if unpacked > budget.max_uncompressed_bytes:
                raise InvalidObservation(
                    "too-large",
                    f"BUFR message {number} declares {count} uncompressed subsets of {expanded} "
                    f"descriptors: unpacked, the file's uncompressed messages would take "
                    f"{unpacked // 2**20} MiB ({UNCOMPRESSED_VALUE_BYTES} bytes a value); at "
                    f"most {budget.max_uncompressed_bytes // 2**20} MiB per file",
                )
            correction = max(
                message.correction, int(eccodes.codes_get(handle, "updateSequenceNumber"))
            )
            eccodes.codes_set(handle, "unpack", 1)
            rows = list(_subset_values(handle, count, compressed))
        except InvalidObservation as error:
            if error.code == "too-large":
                raise
            refused.append(SubsetRefusal(number, 0, error.code, error.reason))
            continue
        except MemoryError:
            raise InvalidObservation(
                "too-large", f"BUFR message {number} needs more memory than the decoder has"
            ) from None
        except Exception as error:  # noqa: BLE001 - whatever ecCodes raises is this message's
            refused.append(
                SubsetRefusal(
                    number,
                    0,
                    "bufr",
                    f"BUFR message {number} does not decode: {type(error).__name__}: {error}",
                )
            )
            continue
        finally:
            if handle is not None:
                eccodes.codes_release(handle)
        for index, row in enumerate(rows, start=1):
            try:
                observations.append(map_subset(row, now, limits, published, correction))
            except InvalidObservation as error:
                refused.append(SubsetRefusal(number, index, error.code, error.reason))
    if not observations and refused and all(r.subset == 0 for r in refused):
        first = next((r for r in refused if r.message), refused[0])
        raise InvalidObservation(first.code, "; ".join(r.reason for r in refused))
    return observations, refused
