"""BUFR files the tests encode with ecCodes from its BUFR4 sample (template 301150 + 307096)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from fedeploy_ingestion.bufr import load_eccodes

eccodes = load_eccodes()  # after psycopg, which the loopback peers' processes also load


@dataclass(frozen=True)
class Station:
    """One subset: a station's report at one time (values in BUFR units; None is missing)."""

    time: datetime | None
    wigos: str | None = None  # local identifier; series 0, issuer 20000, issue 0
    block: int | None = None
    number: int | None = None
    latitude: float | None = 50.0
    longitude: float | None = 5.0
    height: float | None = 100.0
    values: dict[str, float | None] = field(default_factory=dict)


def _doubles(values: list[float | None]) -> list[float]:
    return [eccodes.CODES_MISSING_DOUBLE if v is None else float(v) for v in values]


def _longs(values: list[int | None]) -> list[int]:
    return [eccodes.CODES_MISSING_LONG if v is None else int(v) for v in values]


def encode(stations: list[Station], compressed: bool = True) -> bytes:
    """One BUFR edition 4 message with one subset per station (compressed or not)."""
    n = len(stations)
    h = eccodes.codes_bufr_new_from_samples("BUFR4")
    try:
        eccodes.codes_set(h, "masterTablesVersionNumber", 32)
        eccodes.codes_set(h, "numberOfSubsets", n)
        eccodes.codes_set(h, "compressedData", 1 if compressed else 0)
        eccodes.codes_set_array(h, "unexpandedDescriptors", [301150, 307096])

        def put(key: str, values: list, kind: str) -> None:
            if compressed or n == 1:
                name = f"#1#{key}"
                if kind == "s":
                    eccodes.codes_set_string_array(h, name, values)
                elif kind == "l":
                    eccodes.codes_set_array(h, name, _longs(values))
                else:
                    eccodes.codes_set_array(h, name, _doubles(values))
                return
            # Uncompressed: the i-th occurrence counts across subsets; one per subset here
            # (the keys set are the first occurrence in each subset's template only when the
            # template holds them once, which the tests' keys do not all do).
            raise NotImplementedError(
                "encode(compressed=False) with more than one station: setting each subset's "
                "keys needs per-subset occurrence numbers this helper does not compute; the "
                "tests encode uncompressed files with one subset only"
            )

        wigos = [s.wigos for s in stations]
        put("wigosIdentifierSeries", [0 if w else None for w in wigos], "l")
        put("wigosIssuerOfIdentifier", [20000 if w else None for w in wigos], "l")
        put("wigosIssueNumber", [0 if w else None for w in wigos], "l")
        put("wigosLocalIdentifierCharacter", [w or "" for w in wigos], "s")
        put("blockNumber", [s.block for s in stations], "l")
        put("stationNumber", [s.number for s in stations], "l")
        for key in ("year", "month", "day", "hour", "minute"):
            put(key, [getattr(s.time, key) if s.time else None for s in stations], "l")
        put("latitude", [s.latitude for s in stations], "d")
        put("longitude", [s.longitude for s in stations], "d")
        put("heightOfStationGroundAboveMeanSeaLevel", [s.height for s in stations], "d")
        for key in (
            "airTemperature",
            "nonCoordinatePressure",
            "windSpeed",
            "totalPrecipitationOrTotalWaterEquivalent",
        ):
            put(key, [s.values.get(key) for s in stations], "d")
        put("relativeHumidity", [s.values.get("relativeHumidity") for s in stations], "l")
        eccodes.codes_set(h, "pack", 1)
        return bytes(eccodes.codes_get_message(h))
    finally:
        eccodes.codes_release(h)
