"""Windows of observations: which window an observation falls in, and the window's names.

The object key and the STAC item id derive from the window alone (station, start, end), so
writing a window again replaces it instead of adding a second copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

OBSERVATIONS_COLLECTION = "edge-observations"
SECONDS_PER_DAY = 86_400


def check_window_seconds(seconds: int) -> int:
    """Windows must tile a UTC day exactly, so that every day starts a new window."""
    if not 1 <= seconds <= SECONDS_PER_DAY or SECONDS_PER_DAY % seconds:
        raise ValueError(
            f"window length {seconds} s does not divide a day (86400 s); use e.g. "
            "60, 300, 600, 900, 1800, 3600, 10800, 21600, 43200 or 86400"
        )
    return seconds


def stamp(moment: datetime) -> str:
    """`YYYYMMDDTHHMMSSZ`, the form used in keys and ids; the year always has four digits.

    (`strftime("%Y")` gives `999`, not `0999`, for years below 1000 with glibc.)
    """
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}{utc:%m%dT%H%M%S}Z"


@dataclass(frozen=True, order=True)
class WindowId:
    """One station's observations from `start` (inclusive) to `end` (exclusive)."""

    station: str
    start: datetime
    end: datetime

    @property
    def item_id(self) -> str:
        """`<station>_<start>_<end>`: the window's STAC item id."""
        return f"{self.station}_{stamp(self.start)}_{stamp(self.end)}"

    @property
    def object_key(self) -> str:
        """`observations/<station>/<YYYY>/<MM>/<DD>/<item id>.parquet`."""
        start = self.start
        return f"observations/{self.station}/{start.year:04d}/{start:%m/%d}/{self.item_id}.parquet"


def window_of(station: str, moment: datetime, seconds: int) -> WindowId:
    """The window of `seconds` (aligned to the UTC day) that contains `moment`."""
    check_window_seconds(seconds)
    utc = moment.astimezone(UTC)
    day = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = (utc - day) // timedelta(seconds=seconds)
    start = day + offset * timedelta(seconds=seconds)
    return WindowId(station, start, start + timedelta(seconds=seconds))
