"""Changing the replica count: ownership (pure) and two writers of one window (moto's S3)."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.object_store import ObjectStore, WriteConflict
from fedeploy_ingestion.observation import Observation
from fedeploy_ingestion.settings import IngestSettings
from fedeploy_ingestion.sharding import owns, owns_any, shard_of
from fedeploy_ingestion.window_table import from_parquet
from fedeploy_ingestion.window_writer import WindowWriter
from fedeploy_ingestion.windowing import window_of
from moto import mock_aws

STATIONS = [f"st-{n:03d}" for n in range(300)]
T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("old", "new"), [(2, 3), (3, 2), (1, 4), (5, 2)])
def test_every_station_keeps_a_writer_at_every_step_of_a_change(old: int, new: int) -> None:
    """Step 1 restarts the replicas one by one with (new, previous=old), adding replicas first
    when growing; step 2 (after step 1 is complete) drops the previous count. At every moment
    of both steps each station is kept by a replica that is running."""
    replicas = max(old, new)
    for station in STATIONS:
        # Step 1: any subset of the replicas may already run the union configuration.
        for moved in itertools.product([False, True], repeat=replicas):
            keepers = [
                index
                for index in range(replicas)
                if (moved[index] and owns_any(station, index, (new, old)))
                or (not moved[index] and index < old and owns(station, index, old))
            ]
            assert keepers, (station, moved)
        # Step 2: any subset runs the new count alone; the others still run the union.
        for moved in itertools.product([False, True], repeat=replicas):
            keepers = [
                index
                for index in range(replicas)
                if (moved[index] and index < new and owns(station, index, new))
                or (not moved[index] and owns_any(station, index, (new, old)))
            ]
            assert keepers, (station, moved)
    # Without the union, a rollout from 2 to 3 leaves some stations with nobody.
    orphans = [s for s in STATIONS if shard_of(s, 3) != shard_of(s, 2) and shard_of(s, 3) != 2]
    assert orphans


def test_settings_allow_the_index_below_either_count() -> None:
    growing = IngestSettings(shard_count=3, previous_shard_count=2, shard_index=2)
    assert growing.shard_counts() == (3, 2)
    shrinking = IngestSettings(shard_count=2, previous_shard_count=3, shard_index=2)
    assert shrinking.shard_counts() == (2, 3)
    assert IngestSettings(shard_count=2, previous_shard_count=2).shard_counts() == (2,)
    with pytest.raises(ValueError, match="INGEST_PREVIOUS_SHARD_COUNT 2"):
        IngestSettings(shard_count=2, previous_shard_count=2, shard_index=2)


class RecordingCatalog:
    """Keeps the last item upserted per id, as pgstac does."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def ensure_collection(self, collection: dict[str, Any]) -> None:
        pass

    def upsert_items(self, collection_id: str, items: list[dict[str, Any]]) -> None:
        with self.lock:
            self.items.update({i["id"]: i for i in items})


@pytest.fixture
def store() -> Any:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="site")
        yield ObjectStore(client, "site")


def test_a_conditional_write_over_another_version_is_a_conflict(store: ObjectStore) -> None:
    first = store.put_if("k", b"one", "text/plain", None)
    with pytest.raises(WriteConflict):
        store.put_if("k", b"again", "text/plain", None)  # If-None-Match: *
    second = store.put_if("k", b"two", "text/plain", first)
    with pytest.raises(WriteConflict):
        store.put_if("k", b"three", "text/plain", first)  # If-Match: the old ETag
    assert store.get_with_etag("k") == (b"two", second)


class Interleaving(ObjectStore):
    """Before its first conditional write, lets another writer write the same window: the
    collision of two replicas owning one station, made certain."""

    def __init__(self, store: ObjectStore, meanwhile: Any) -> None:
        super().__init__(store.client, store.bucket)
        self.meanwhile = meanwhile

    def put_if(self, key: str, data: bytes, content_type: str, etag: str | None) -> str:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        return super().put_if(key, data, content_type, etag)


@pytest.mark.parametrize("existing", [False, True])
def test_two_writers_of_one_window_merge_instead_of_overwriting(
    store: ObjectStore, existing: bool
) -> None:
    catalog = RecordingCatalog()
    window = window_of("bz-01", T0, 600)
    rows = [
        Observation("bz-01", T0 + timedelta(seconds=n), {"air_temperature": float(n)})
        for n in range(6)
    ]
    other = WindowWriter(store, catalog, "site-a", Metrics())  # type: ignore[arg-type]
    if existing:  # If-Match over a stored version; else If-None-Match: * for a new window
        other.write(window, rows[:2])
    racing = Interleaving(store, lambda: other.write(window, rows[2:4]))
    writer = WindowWriter(racing, catalog, "site-a", Metrics())  # type: ignore[arg-type]
    assert writer.write(window, rows[4:]) == (6 if existing else 4)
    data, _ = store.get_with_etag(window.object_key) or (b"", "")
    expected = rows if existing else rows[2:]
    assert [o.time for o in from_parquet(data)] == [o.time for o in expected]
    assert writer.metrics.write_errors.labels("window-conflict")._value.get() == 1
    # The item upserted last describes what is stored, whoever wrote last.
    assert catalog.items[window.item_id]["properties"]["fedeploy:observation_count"] == len(
        expected
    )


def test_an_item_upserted_after_a_newer_write_is_replaced_by_the_stored_versions(
    store: ObjectStore,
) -> None:
    """Writer A writes, B writes after it and upserts, then A's (older) item lands: A sees the
    ETag moved and upserts the item of what is stored."""
    catalog = RecordingCatalog()
    window = window_of("bz-01", T0, 600)
    rows = [
        Observation("bz-01", T0 + timedelta(seconds=n), {"air_temperature": float(n)})
        for n in range(4)
    ]
    later = WindowWriter(store, catalog, "site-a", Metrics())  # type: ignore[arg-type]

    class LateCatalog(RecordingCatalog):
        def upsert_items(self, collection_id: str, items: list[dict[str, Any]]) -> None:
            if not self.items:  # B writes and upserts before A's first upsert lands
                self.items["x"] = {}
                later.write(window, rows[2:])
            catalog.upsert_items(collection_id, items)

    writer = WindowWriter(store, LateCatalog(), "site-a", Metrics())  # type: ignore[arg-type]
    writer.write(window, rows[:2])
    assert catalog.items[window.item_id]["properties"]["fedeploy:observation_count"] == 4
