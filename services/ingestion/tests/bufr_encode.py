"""BUFR files the tests encode with ecCodes from its own samples, in the shapes the field sends.

`encode` writes today's WIS2 shape (edition 4, template 301150 + 307096, land SYNOP);
`encode_message` any template, edition (ecCodes' BUFR3 or BUFR4 sample), data category,
update sequence number, compressed or not; `gts_bulletin` and `ftp_container` wrap messages
as the GTS carries them (WMO-No. 386: abbreviated heading, CR CR LF, SOH/ETX framing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fedeploy_ingestion.bufr import PERIOD_PRECIPITATION, load_eccodes

eccodes = load_eccodes()  # after psycopg, which the loopback peers' processes also load

STRING_KEYS = frozenset({"wigosLocalIdentifierCharacter", "shipOrMobileLandStationIdentifier"})
LONG_KEYS = frozenset(
    {
        "wigosIdentifierSeries",
        "wigosIssuerOfIdentifier",
        "wigosIssueNumber",
        "blockNumber",
        "stationNumber",
        "marineObservingPlatformIdentifier",
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "relativeHumidity",
        "timePeriod",
    }
)
# Templates by shape (edition 4 unless named): land SYNOP with WIGOS id; SHIP; BUOY; an
# edition 3 SYNOP as older encoders wrote it (012004 dry-bulb temperature at 2 m, 011012 wind
# at 10 m, 010051 pressure at mean sea level, 013019 and 013021 precipitation over 1 and 6 h);
# a wind profiler (data category 2): wind at 100 m above the station.
SYNOP = (301150, 307096)
SHIP = (308009,)
BUOY = (315009,)
SYNOP_ED3 = (
    1001, 1002, 4001, 4002, 4003, 4004, 4005, 5002, 6002, 7001,
    10004, 10051, 12004, 12006, 13003, 11011, 11012, 13019, 13021,
)  # fmt: skip
PROFILER = (1001, 1002, 4001, 4002, 4003, 4004, 4005, 5002, 6002, 7007, 11001, 11002)


def _value(key: str, value: Any) -> Any:
    if key in STRING_KEYS:
        return value or ""
    if key in LONG_KEYS:
        return eccodes.CODES_MISSING_LONG if value is None else int(value)
    return eccodes.CODES_MISSING_DOUBLE if value is None else float(value)


def _set(handle: Any, key: str, values: list[Any]) -> None:
    name = key.rsplit("#", 1)[-1]
    converted = [_value(name, v) for v in values]
    if name in STRING_KEYS:
        eccodes.codes_set_string_array(handle, key, converted)
    else:
        eccodes.codes_set_array(handle, key, converted)


def _period_key(handle: Any, key: str) -> str:
    """The `#n#timePeriod` key just before `key` in the expanded template."""
    names: list[str] = []
    iterator = eccodes.codes_bufr_keys_iterator_new(handle)
    while eccodes.codes_bufr_keys_iterator_next(iterator):
        names.append(eccodes.codes_bufr_keys_iterator_get_name(iterator))
    eccodes.codes_bufr_keys_iterator_delete(iterator)
    return [n for n in names[: names.index(key)] if n.endswith("#timePeriod")][-1]


def encode_message(
    subsets: Sequence[dict[str, Any]],
    descriptors: Sequence[int] = SYNOP,
    *,
    edition: int = 4,
    category: int = 0,
    update: int = 0,
    compressed: bool = True,
    periods: dict[str, int] | None = None,
) -> bytes:
    """One BUFR message, one subset per dict (ecCodes keys, the first occurrence unless
    ranked as `#n#key`; None missing).

    `periods`: for a key such as `#1#totalPrecipitationOrTotalWaterEquivalent`, the time
    period (hours, 004024) to write just before it, per subset the same. A key absent from
    every subset stays missing. Uncompressed messages hold one subset (ecCodes numbers keys
    across the subsets of an uncompressed message)."""
    if not compressed and len(subsets) > 1:
        raise ValueError("uncompressed messages of several subsets: write one per subset")
    handle = eccodes.codes_bufr_new_from_samples(f"BUFR{edition}")
    try:
        if edition == 4:
            eccodes.codes_set(handle, "masterTablesVersionNumber", 32)
        eccodes.codes_set(handle, "dataCategory", category)
        eccodes.codes_set(handle, "updateSequenceNumber", update)
        eccodes.codes_set(handle, "numberOfSubsets", len(subsets))
        eccodes.codes_set(handle, "compressedData", 1 if compressed else 0)
        eccodes.codes_set_array(handle, "unexpandedDescriptors", list(descriptors))
        keys = sorted({k for s in subsets for k in s})
        for key in keys:
            try:
                ranked = key if key.startswith("#") else f"#1#{key}"
                _set(handle, ranked, [s.get(key) for s in subsets])
            except eccodes.KeyValueNotFoundError:
                raise ValueError(f"{key!r} is not in template {list(descriptors)}") from None
        for key, hours in (periods or {}).items():
            _set(handle, _period_key(handle, key), [hours] * len(subsets))
        eccodes.codes_set(handle, "pack", 1)
        return bytes(eccodes.codes_get_message(handle))
    finally:
        eccodes.codes_release(handle)


def gts_bulletin(message: bytes, heading: str, sequence: int | None = None) -> bytes:
    """A GTS bulletin: the abbreviated heading (e.g. `ISMD01 LFPW 061200 CCA`), CR CR LF, the
    message, CR CR LF; with SOH, the sequence number and ETX when `sequence` is given."""
    body = heading.encode() + b"\r\r\n" + message + b"\r\r\n"
    if sequence is None:
        return body
    return b"\x01\r\r\n" + f"{sequence:03d}".encode() + b"\r\r\n" + body + b"\x03"


def ftp_container(bulletins: Sequence[bytes]) -> bytes:
    """A WMO FTP file of several bulletins: each preceded by its 8-digit length and format
    identifier `00` (WMO-No. 386, Attachment II-15)."""
    return b"".join(f"{len(b):08d}00".encode() + b for b in bulletins)


@dataclass(frozen=True)
class Station:
    """One subset of today's WIS2 SYNOP: a station's report at one time (values in BUFR
    units, keyed by ecCodes names; None is missing). `precipitation_hours` is the period
    written before `totalPrecipitationOrTotalWaterEquivalent`."""

    time: datetime | None
    wigos: str | None = None  # local identifier; series 0, issuer 20000, issue 0
    block: int | None = None
    number: int | None = None
    latitude: float | None = 50.0
    longitude: float | None = 5.0
    height: float | None = 100.0
    values: dict[str, float | None] = field(default_factory=dict)

    def keys(self) -> dict[str, Any]:
        """The subset as ecCodes keys of 301150 + 307096."""
        return {
            "wigosIdentifierSeries": 0 if self.wigos else None,
            "wigosIssuerOfIdentifier": 20000 if self.wigos else None,
            "wigosIssueNumber": 0 if self.wigos else None,
            "wigosLocalIdentifierCharacter": self.wigos,
            "blockNumber": self.block,
            "stationNumber": self.number,
            **{k: getattr(self.time, k) if self.time else None for k in _CLOCK},
            "latitude": self.latitude,
            "longitude": self.longitude,
            "heightOfStationGroundAboveMeanSeaLevel": self.height,
            **self.values,
        }


_CLOCK = ("year", "month", "day", "hour", "minute")


def encode(
    stations: list[Station], compressed: bool = True, precipitation_hours: int = -1, **kwargs: Any
) -> bytes:
    """One BUFR edition 4 SYNOP message (301150 + 307096), one subset per station."""
    periods = (
        {f"#1#{PERIOD_PRECIPITATION}": precipitation_hours}
        if any(PERIOD_PRECIPITATION in s.values for s in stations)
        else None
    )
    return encode_message(
        [s.keys() for s in stations], SYNOP, compressed=compressed, periods=periods, **kwargs
    )
