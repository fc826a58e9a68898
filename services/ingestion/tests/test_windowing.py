"""Windows: alignment to the UTC day, and the names derived from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from fedeploy_ingestion.windowing import check_window_seconds, stamp, window_of


def test_a_window_contains_its_start_and_not_its_end() -> None:
    start = datetime(2024, 6, 1, 12, 10, tzinfo=UTC)
    assert window_of("s1", start, 600).start == start
    assert window_of("s1", start + timedelta(seconds=599.999), 600).start == start
    assert window_of("s1", start + timedelta(seconds=600), 600).start == start + timedelta(
        minutes=10
    )


def test_windows_align_to_the_utc_day_whatever_the_input_zone() -> None:
    local = datetime(2024, 6, 1, 2, 5, tzinfo=timezone(timedelta(hours=2)))  # 00:05 UTC
    window = window_of("s1", local, 3600)
    assert window.start == datetime(2024, 6, 1, 0, 0, tzinfo=UTC)
    assert window.end == datetime(2024, 6, 1, 1, 0, tzinfo=UTC)


def test_item_id_and_object_key_follow_the_contract() -> None:
    window = window_of("bz-01", datetime(2024, 6, 1, 23, 55, tzinfo=UTC), 600)
    assert window.item_id == "bz-01_20240601T235000Z_20240602T000000Z"
    assert window.object_key == (
        "observations/bz-01/2024/06/01/bz-01_20240601T235000Z_20240602T000000Z.parquet"
    )


def test_the_same_window_from_any_of_its_instants_has_the_same_names() -> None:
    base = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    names = {window_of("s", base + timedelta(seconds=s), 300).object_key for s in range(0, 300, 7)}
    assert len(names) == 1


@pytest.mark.parametrize("seconds", [0, 7, 700, 86_401, 172_800])
def test_window_lengths_that_do_not_tile_a_day_are_refused(seconds: int) -> None:
    with pytest.raises(ValueError, match="does not divide a day"):
        check_window_seconds(seconds)


def test_stamp_is_compact_utc() -> None:
    assert stamp(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "20240102T030405Z"
