"""The data contract shared with ingestion: window columns, object keys, variables and units.

Ingestion writes these windows; training and batch runs read them. Names here are fixed by the
project's data contract and must not drift from the ingestion service's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

# Canonical variables in a fixed order: the model's input channels follow it.
VARIABLES: tuple[str, ...] = (
    "air_temperature",
    "relative_humidity",
    "air_pressure",
    "wind_speed",
    "precipitation",
)
UNITS: dict[str, str] = {
    "air_temperature": "degC",
    "relative_humidity": "%",
    "air_pressure": "hPa",
    "wind_speed": "m s-1",
    "precipitation": "mm",
}
# Plausible physical ranges, the same the ingestion service accepts from the edge: values
# outside are refused at the API and dropped when windows are read.
LIMITS: dict[str, tuple[float, float]] = {
    "air_temperature": (-100.0, 70.0),
    "relative_humidity": (0.0, 100.0),
    "air_pressure": (300.0, 1100.0),
    "wind_speed": (0.0, 120.0),
    "precipitation": (0.0, 1000.0),
}

WINDOW_SCHEMA = pa.schema(
    [
        pa.field("station", pa.string(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("longitude", pa.float64()),
        pa.field("latitude", pa.float64()),
        pa.field("elevation", pa.float64()),
        *(pa.field(name, pa.float64()) for name in VARIABLES),
    ]
)

OBSERVATIONS_PREFIX = "observations/"
_STAMP = "%Y%m%dT%H%M%SZ"
_KEY = re.compile(
    r"^observations/(?P<station>[^/]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
    r"(?P=station)_(?P<start>\d{8}T\d{6}Z)_(?P<end>\d{8}T\d{6}Z)\.parquet$"
)


@dataclass(frozen=True)
class WindowKey:
    """What a window object's key says: its station and its time span."""

    station: str
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """The object key the data contract gives this window."""
        s, e = self.start.strftime(_STAMP), self.end.strftime(_STAMP)
        return (
            f"{OBSERVATIONS_PREFIX}{self.station}/{self.start:%Y/%m/%d}/"
            f"{self.station}_{s}_{e}.parquet"
        )


def parse_window_key(key: str) -> WindowKey | None:
    """Read a window key back; None for keys under `observations/` that are not windows."""
    match = _KEY.match(key)
    if match is None:
        return None
    start = datetime.strptime(match["start"], _STAMP).replace(tzinfo=UTC)
    end = datetime.strptime(match["end"], _STAMP).replace(tzinfo=UTC)
    return WindowKey(match["station"], start, end)
