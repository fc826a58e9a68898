"""When held windows are written: watermark past the end, idleness, or too much held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fedeploy_ingestion.observation import Observation
from fedeploy_ingestion.window_buffer import WindowBuffer

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def obs(station: str, seconds: float) -> Observation:
    return Observation(station, T0 + timedelta(seconds=seconds), {"wind_speed": 1.0})


def buffer(max_pending: int = 1000) -> WindowBuffer[int]:
    return WindowBuffer(
        window_seconds=600, grace_seconds=30, idle_seconds=5.0, max_pending=max_pending
    )


def test_a_window_is_due_once_its_station_has_moved_past_the_end_plus_grace() -> None:
    held = buffer()
    first = held.add(obs("a", 10), 1, arrival=0.0)
    held.add(obs("a", 620), 2, arrival=0.1)  # next window, within grace
    assert held.due(now=0.2) == []
    held.add(obs("a", 631), 3, arrival=0.3)
    assert held.due(now=0.4) == [first]


def test_another_station_moving_on_does_not_close_a_window() -> None:
    held = buffer()
    held.add(obs("a", 10), 1, arrival=0.0)
    held.add(obs("b", 5000), 2, arrival=0.0)
    assert held.due(now=1.0) == []


def test_an_idle_window_is_due() -> None:
    held = buffer()
    window = held.add(obs("a", 10), 1, arrival=0.0)
    assert held.due(now=4.9) == []
    assert held.due(now=5.0) == [window]


def test_too_many_pending_messages_make_every_window_due() -> None:
    held = buffer(max_pending=20)
    for i in range(18):
        held.add(obs(f"s{i % 3}", i), i, arrival=0.0)
    assert len(held.due(now=0.0)) == 3


def test_take_and_restore_keep_the_count_and_merge_newcomers() -> None:
    held = buffer()
    window = held.add(obs("a", 10), 1, arrival=0.0)
    entry = held.take(window)
    assert held.pending == 0 and len(held) == 0
    held.add(obs("a", 20), 2, arrival=1.0)
    held.restore(entry)
    assert held.pending == 2
    restored = held.take(window)
    assert sorted(restored.tags) == [1, 2]


def test_clear_forgets_everything() -> None:
    held = buffer()
    held.add(obs("a", 10), 1, arrival=0.0)
    held.add(obs("b", 10), 2, arrival=0.0)
    assert held.clear() == 2
    assert held.pending == 0 and held.windows() == [] and held.oldest_arrival() is None


def test_stations_not_heard_from_are_forgotten_so_memory_stays_bounded() -> None:
    held: WindowBuffer[int] = WindowBuffer(600, 30, 5.0, 100_000, station_expiry=60.0)
    for n in range(10_000):
        entry = held.add(obs(f"s-{n}", 1), n, arrival=n / 100)  # 100 new stations a second
        held.take(entry)
        held.due(now=n / 100)
    assert held.stations <= 60 * 100 + 1
    held.add(obs("s-0", 2), 0, arrival=200.0)  # heard again: remembered again
    held.expire_stations(now=200.0 + 59)
    assert held.stations == 1
    assert held.expire_stations(now=200.0 + 60) == 1
    assert held.stations == 0
