"""Open windows held in memory until they are written, and when each is due (pure).

A window is written when (a) its station's observations have moved past its end by the
grace period, (b) no message came for it for `idle` seconds, or (c) the consumer holds too
many unacknowledged messages, in which case every open window is written. Writing a window
that was written before merges with what is stored, so (c) may write a window in parts.

Memory is bounded: held messages by `max_pending`, and the per-station watermarks by
`station_expiry`: a station not heard from for that long is forgotten (oldest first, in
constant time per message), however many stations come and go.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from fedeploy_ingestion.observation import Observation
from fedeploy_ingestion.windowing import WindowId, window_of

Tag = TypeVar("Tag")


@dataclass
class OpenWindow(Generic[Tag]):
    """Observations of one window and the delivery tags to acknowledge once it is written."""

    window: WindowId
    observations: list[Observation] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    first_arrival: float = 0.0
    last_arrival: float = 0.0


class WindowBuffer(Generic[Tag]):
    """Groups observations into windows and says which are due to be written."""

    def __init__(
        self,
        window_seconds: int,
        grace_seconds: int,
        idle_seconds: float,
        max_pending: int,
        station_expiry: float = 3600.0,
    ) -> None:
        self.window_seconds = window_seconds
        self.grace = timedelta(seconds=grace_seconds)
        self.idle_seconds = idle_seconds
        self.high_water = max(1, int(max_pending * 0.9))
        self._open: dict[WindowId, OpenWindow[Tag]] = {}
        self._watermark: dict[str, datetime] = {}
        # station -> last arrival (monotonic), least recently heard first
        self._heard: OrderedDict[str, float] = OrderedDict()
        self.station_expiry = station_expiry
        self.pending = 0

    def add(self, observation: Observation, tag: Tag, arrival: float) -> WindowId:
        """Hold an observation until its window is written; `arrival` is a monotonic time."""
        window = window_of(observation.station, observation.time, self.window_seconds)
        entry = self._open.get(window)
        if entry is None:
            entry = self._open[window] = OpenWindow(window, first_arrival=arrival)
        entry.observations.append(observation)
        entry.tags.append(tag)
        entry.last_arrival = arrival
        self.pending += 1
        mark = self._watermark.get(observation.station)
        if mark is None or observation.time > mark:
            self._watermark[observation.station] = observation.time
        self._heard[observation.station] = arrival
        self._heard.move_to_end(observation.station)
        return window

    def expire_stations(self, now: float) -> int:
        """Forget the watermarks of stations not heard from for `station_expiry`; how many.

        A forgotten station's open windows are still written (when idle); a station heard
        from again starts a new watermark.
        """
        expired = 0
        while self._heard:
            station, heard = next(iter(self._heard.items()))
            if now - heard < self.station_expiry:
                break
            del self._heard[station]
            self._watermark.pop(station, None)
            expired += 1
        return expired

    @property
    def stations(self) -> int:
        """Stations whose watermark is kept."""
        return len(self._watermark)

    def due(self, now: float) -> list[WindowId]:
        """Windows to write now, oldest first (expiring silent stations on the way)."""
        self.expire_stations(now)
        if self.pending >= self.high_water:
            return sorted(self._open)
        ready = []
        for window, entry in self._open.items():
            mark = self._watermark.get(window.station)
            passed = mark is not None and mark >= window.end + self.grace
            if passed or now - entry.last_arrival >= self.idle_seconds:
                ready.append(window)
        return sorted(ready)

    def windows(self) -> list[WindowId]:
        """Every open window, oldest first."""
        return sorted(self._open)

    def take(self, window: WindowId) -> OpenWindow[Tag]:
        """Remove a window to write it; `restore` puts it back if the write fails."""
        entry = self._open.pop(window)
        self.pending -= len(entry.tags)
        return entry

    def restore(self, entry: OpenWindow[Tag]) -> None:
        """Put back a window whose write failed (merged with anything that came since)."""
        current = self._open.get(entry.window)
        if current is not None:
            entry.observations += current.observations
            entry.tags += current.tags
            entry.last_arrival = max(entry.last_arrival, current.last_arrival)
            self.pending -= len(current.tags)
        self._open[entry.window] = entry
        self.pending += len(entry.tags)

    def clear(self) -> int:
        """Forget everything held (after a lost connection the broker delivers it again)."""
        dropped = self.pending
        self._open.clear()
        self.pending = 0
        return dropped

    def oldest_arrival(self) -> float | None:
        """Arrival time of the oldest held message, for the lag gauge."""
        return min((e.first_arrival for e in self._open.values()), default=None)

    def __len__(self) -> int:
        return len(self._open)
