"""The field's shapes of WIS2 data files, built with ecCodes in our own values, and the
table every observation stored from them must match (docs/ingestion.md, "What the field
sends"). Each entry is one data file as a WIS2 notification links it; `EXPECTED` lists each
stored value, `REFUSED` each refusal's code, per file.

Shapes: GTS bulletins (abbreviated heading, CR CR LF; SOH/sequence/ETX framing; a WMO FTP
file container of several bulletins), a clean file with trailing line end and NUL padding, a
first publication and its `CCA` correction (update sequence number 1, published later),
edition 3 and edition 4 SYNOPs (012004/012101 temperature, 011012/011002 wind, 010004 station
vs 010051 mean-sea-level pressure, precipitation over 1 h and over 6 h), a wind profiler (data
category 2), NIL subsets, SHIP and BUOY subsets, and ecCodes' own BUFR samples as it ships
them (an empty edition 4 SYNOP; a category 5 satellite template)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from services.ingestion.tests.bufr_encode import (
    BUOY,
    PROFILER,
    SHIP,
    SYNOP,
    SYNOP_ED3,
    eccodes,
    encode_message,
    ftp_container,
    gts_bulletin,
)

T0 = datetime(2024, 6, 1, 6, 0, tzinfo=UTC)
PUBLISHED = "2024-06-01T06:05:00Z"
CORRECTED = "2024-06-01T06:20:00Z"


def _when(hour: int = 6, minute: int = 0) -> dict[str, int]:
    return {"year": 2024, "month": 6, "day": 1, "hour": hour, "minute": minute}


def _synop(block: int, number: int, **values: float | None) -> dict[str, object]:
    """A land station's subset (307096 names the station height 007030)."""
    return {"blockNumber": block, "stationNumber": number, **_when(), "latitude": 48.0,
            "longitude": 2.0, "heightOfStationGroundAboveMeanSeaLevel": 50.0, **values}  # fmt: skip


def _wigos(local: str, **values: float | None) -> dict[str, object]:
    return {"wigosIdentifierSeries": 0, "wigosIssuerOfIdentifier": 20000, "wigosIssueNumber": 0,
            "wigosLocalIdentifierCharacter": local, **_when(), "latitude": 46.0,
            "longitude": 11.0, **values}  # fmt: skip


def _ed3(block: int, number: int, **values: float | None) -> dict[str, object]:
    """A land station's subset as edition 3 encoders wrote it (station height 007001)."""
    subset = {**_synop(block, number), "heightOfStation": 120.0, **values}
    del subset["heightOfStationGroundAboveMeanSeaLevel"]
    return subset


def _sample(name: str) -> bytes:
    handle = eccodes.codes_bufr_new_from_samples(name)
    try:
        return bytes(eccodes.codes_get_message(handle))
    finally:
        eccodes.codes_release(handle)


HOURLY = {"#1#totalPrecipitationOrTotalWaterEquivalent": -1}
SIX_HOURLY = {"#1#totalPrecipitationOrTotalWaterEquivalent": -6}


@dataclass(frozen=True)
class DataFile:
    """One data file and the `pubtime` of the notification that links it."""

    data: bytes
    pubtime: str = PUBLISHED


def build() -> dict[str, DataFile]:
    """The corpus: file name -> data file."""
    ed4 = encode_message(
        [
            _synop(7, 150, airTemperature=288.15, nonCoordinatePressure=100500.0,
                   relativeHumidity=70, windSpeed=4.0,
                   totalPrecipitationOrTotalWaterEquivalent=0.4),
            _synop(7, 151, airTemperature=287.15, windSpeed=2.0,
                   pressureReducedToMeanSeaLevel=101300.0),
        ],
        SYNOP,
        periods=HOURLY,
    )  # fmt: skip
    six_hours = encode_message(
        [_synop(7, 152, windSpeed=3.0, totalPrecipitationOrTotalWaterEquivalent=5.0)],
        SYNOP,
        periods=SIX_HOURLY,
    )
    ed3 = encode_message(
        [
            # Temperature, wind at 10 m, station and mean-sea-level pressure, 1 and 6 h rain.
            {**_ed3(6, 100), "airTemperatureAt2M": 280.2,
             "dewpointTemperatureAt2M": 275.15, "relativeHumidity": 71,
             "nonCoordinatePressure": 99000.0, "pressureReducedToMeanSeaLevel": 101400.0,
             "windSpeedAt10M": 6.5, "totalPrecipitationPast1Hour": 0.2,
             "totalPrecipitationPast6Hours": 3.1},
            # Only a temperature: stored (it was refused `no-values` when 012004 was unread).
            {**_ed3(6, 101), "airTemperatureAt2M": 270.7},
            # Only mean-sea-level pressure and wind: never stored as station pressure.
            {**_ed3(6, 102), "pressureReducedToMeanSeaLevel": 102000.0,
             "windSpeedAt10M": 1.5},
        ],
        SYNOP_ED3,
        edition=3,
    )  # fmt: skip
    first = encode_message([_wigos("CORR1", airTemperature=282.95)], SYNOP)  # 9.8 degC: a typo
    corrected = encode_message([_wigos("CORR1", airTemperature=272.95)], SYNOP, update=1)
    nil = encode_message(
        [_synop(8, 1), _synop(8, 2, windSpeed=1.0), {"blockNumber": 8, "stationNumber": 3}],
        SYNOP,
    )
    ship = encode_message(
        [{"shipOrMobileLandStationIdentifier": "DBBH", **_when(), "latitude": 54.5,
          "longitude": 7.25, "airTemperature": 285.15, "nonCoordinatePressure": 101000.0,
          "windSpeed": 9.0}],
        SHIP,
        category=1,
    )  # fmt: skip
    buoy = encode_message(
        [{"marineObservingPlatformIdentifier": 6202512, **_when(), "latitude": 43.0,
          "longitude": 5.0, "nonCoordinatePressure": 101200.0, "airTemperature": 291.15}],
        BUOY,
        category=1,
    )  # fmt: skip
    profiler = encode_message(
        [{"blockNumber": 10, "stationNumber": 393, **_when(), "latitude": 52.2,
          "longitude": 14.1, "height": 100.0, "windDirection": 270.0, "windSpeed": 17.0}],
        PROFILER,
        category=2,
    )  # fmt: skip
    heading = "ISMD01 LFPW 010600"
    return {
        "gts-single.bin": DataFile(gts_bulletin(ed4, heading)),
        "gts-multi.bin": DataFile(
            ftp_container(
                [
                    gts_bulletin(ed3, "ISMD01 EDZW 010600", sequence=1),
                    gts_bulletin(six_hours, "ISMD02 LFPW 010600", sequence=2),
                    gts_bulletin(ship + buoy, "ISSD01 EGRR 010600", sequence=3),
                ]
            )
        ),
        "padded.bufr": DataFile(nil + b"\r\n" + b"\0" * 37),
        "first.bufr": DataFile(first),
        "correction.bin": DataFile(gts_bulletin(corrected, f"{heading} CCA"), CORRECTED),
        "profiler.bufr": DataFile(profiler),
        "ecCodes-BUFR4-sample.bufr": DataFile(_sample("BUFR4")),
        "ecCodes-BUFR3-satellite-sample.bufr": DataFile(_sample("BUFR3_local_satellite")),
    }


def _at(hour: int = 6) -> datetime:
    return T0.replace(hour=hour)


# (station, time, variable, value) of every value stored from the whole corpus.
EXPECTED: set[tuple[str, datetime, str, float]] = {
    ("0-20000-0-07150", _at(), "air_temperature", 15.0),
    ("0-20000-0-07150", _at(), "air_pressure", 1005.0),
    ("0-20000-0-07150", _at(), "relative_humidity", 70.0),
    ("0-20000-0-07150", _at(), "wind_speed", 4.0),
    ("0-20000-0-07150", _at(), "precipitation", 0.4),
    ("0-20000-0-07151", _at(), "air_temperature", 14.0),
    ("0-20000-0-07151", _at(), "wind_speed", 2.0),
    ("0-20000-0-07152", _at(), "wind_speed", 3.0),  # 6 h precipitation not stored
    ("0-20000-0-06100", _at(), "air_temperature", 7.05),  # tenths of K in 012004
    ("0-20000-0-06100", _at(), "relative_humidity", 71.0),
    ("0-20000-0-06100", _at(), "air_pressure", 990.0),
    ("0-20000-0-06100", _at(), "wind_speed", 6.5),
    ("0-20000-0-06100", _at(), "precipitation", 0.2),
    ("0-20000-0-06101", _at(), "air_temperature", -2.45),
    ("0-20000-0-06102", _at(), "wind_speed", 1.5),
    ("0-20000-0-CORR1", _at(), "air_temperature", -0.2),  # the correction, not 9.8
    ("0-20000-0-08002", _at(), "wind_speed", 1.0),
    ("0-20004-0-DBBH", _at(), "air_temperature", 12.0),
    ("0-20004-0-DBBH", _at(), "air_pressure", 1010.0),
    ("0-20004-0-DBBH", _at(), "wind_speed", 9.0),
    ("0-22000-0-6202512", _at(), "air_pressure", 1012.0),
    ("0-22000-0-6202512", _at(), "air_temperature", 18.0),
}
# file -> the codes of what it refused (whole file, or some of its subsets), sorted.
REFUSED: dict[str, list[str]] = {
    "padded.bufr": ["nil", "nil"],
    "profiler.bufr": ["data-category"],
    "ecCodes-BUFR4-sample.bufr": ["no-station"],
    "ecCodes-BUFR3-satellite-sample.bufr": ["data-category"],
}
