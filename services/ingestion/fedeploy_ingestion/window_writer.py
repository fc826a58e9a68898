"""Writing one window: merge with what is stored, write the object, upsert the item.

Safe with several writers of one window (two replicas owning a station during a replica-count
change): the object is read with its ETag, merged, and written only over that version
(`If-Match`, or `If-None-Match: *` for a new window); a conflict re-reads and merges again. The
item is upserted from what was written, then the object's ETag is checked again: if another
writer has written since, the item is rebuilt from the stored object and upserted again, so the
last item upserted always describes the stored object.

A window whose item the catalog refuses (stac-fastapi-pgstac's 200 bulk answer listing it in
`errors`: ItemsRefused) fails alone: its object is stored, so the window is not held or
retried (the same item would be refused again, for ever, and the held bytes would end by
stalling the stream); it is logged at error level with the catalog's reason and counted in
`write_errors{target="item-refused"}`, and the other windows of the batch are written as usual.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from fedeploy_ingestion.catalog import CatalogClient, ItemsRefused
from fedeploy_ingestion.errors import StorageError
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.object_store import ObjectStore, WriteConflict
from fedeploy_ingestion.observation import Observation, merge
from fedeploy_ingestion.observation_item import observations_collection, window_item
from fedeploy_ingestion.window_table import MEDIA_TYPE, from_parquet, to_parquet
from fedeploy_ingestion.windowing import OBSERVATIONS_COLLECTION, WindowId

log = logging.getLogger(__name__)

# Conflicts in a row on one window before giving up (the window is then held and retried).
MAX_CONFLICTS = 20
CONFLICT_PAUSE_SECONDS = 0.005


class WindowWriter:
    """Stores windows exactly once: the key and item id are the window's, writes are merges."""

    def __init__(
        self,
        store: ObjectStore,
        catalog: CatalogClient,
        site: str,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.site = site
        self.metrics = metrics
        self.clock = clock
        self._collection_ready = False
        # S3 requests wait on the network: a few threads overlap them (boto3 clients are
        # thread-safe).
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="window-writer")

    def write(self, window: WindowId, observations: list[Observation]) -> int:
        """Store one window's observations with any stored before; the rows stored."""
        return self.write_batch([(window, observations)])[0]

    def write_batch(self, windows: list[tuple[WindowId, list[Observation]]]) -> list[int]:
        """Store several windows: objects in parallel, then their items in one bulk upsert.

        Returns the number of rows stored per window. Raises when any write fails; the
        windows that were written are then simply written again (with the same content)
        by the retry.
        """
        if not windows:
            return []
        if not self._collection_ready:
            self.catalog.ensure_collection(observations_collection())
            self._collection_ready = True
        stored = self._map(lambda w: self._store(*w), windows)
        # Upserted even when the bytes are unchanged: the previous run may have died between
        # the object and the item.
        refused = self._upsert(
            [(window, item) for (window, _), (_, item, _) in zip(windows, stored, strict=True)]
        )
        pending = [
            (window, etag)
            for (window, _), (_, item, etag) in zip(windows, stored, strict=True)
            if item["id"] not in refused
        ]
        for _ in range(MAX_CONFLICTS):
            # Another writer may have written since, and its item may have landed before ours.
            current = self._map(lambda p: (p[0], self.store.etag(p[0].object_key), p[1]), pending)
            changed = [window for window, now, written in current if now != written]
            if not changed:
                break
            self.metrics.write_errors.labels("window-conflict").inc(len(changed))
            fresh = self._map(self._describe_stored, changed)
            again = self._upsert([(w, item) for w, (item, _) in zip(changed, fresh, strict=True)])
            refused |= again
            pending = [
                (window, etag)
                for window, (item, etag) in zip(changed, fresh, strict=True)
                if item["id"] not in again
            ]
        else:
            raise StorageError(f"windows kept changing while their items were written: {pending}")
        self.metrics.items_written.labels("observations").inc(len(stored) - len(refused))
        return [count for count, _, _ in stored]

    def _upsert(self, items: list[tuple[WindowId, dict[str, Any]]]) -> set[str]:
        """Upsert the windows' items in one request; the ids of those the catalog refused.

        A refused window fails alone: its object is stored, so it is logged and counted, not
        held (the catalog would refuse the same item again on every retry). Any other catalog
        error raises, and the whole batch is held and retried."""
        try:
            self.catalog.upsert_items(OBSERVATIONS_COLLECTION, [item for _, item in items])
        except ItemsRefused as refusal:
            for window, item in items:
                if item["id"] in refusal.refused:
                    self.metrics.write_errors.labels("item-refused").inc()
                    log.error(
                        "window stored, its item refused by the catalog; not retried",
                        extra={
                            "window": f"s3://{self.store.bucket}/{window.object_key}",
                            "item": item["id"],
                            "reason": refusal.reason(item["id"]),
                        },
                    )
            return set(refusal.refused)
        return set()

    def _map(self, function: Callable[[Any], Any], values: list[Any]) -> list[Any]:
        if len(values) == 1:
            return [function(values[0])]
        return list(self._pool.map(function, values))

    def _store(
        self, window: WindowId, observations: list[Observation]
    ) -> tuple[int, dict[str, Any], str | None]:
        """Merge into the stored object with a conditional write: (rows, item, ETag written)."""
        for attempt in range(MAX_CONFLICTS):
            current = self.store.get_with_etag(window.object_key)
            stored, etag = current if current else (None, None)
            merged = merge(from_parquet(stored) if stored else [], observations)
            data = to_parquet(merged)
            if data != stored:
                try:
                    etag = self.store.put_if(window.object_key, data, MEDIA_TYPE, etag)
                except WriteConflict:
                    self.metrics.write_errors.labels("window-conflict").inc()
                    # Someone else wrote it: after a random pause (so that two writers do not
                    # collide again in step), read their version and merge again.
                    time.sleep(random.uniform(0, CONFLICT_PAUSE_SECONDS * 2 ** min(attempt, 6)))
                    continue
                self.metrics.bytes_written.labels("observations").inc(len(data))
            return len(merged), self._item(window, merged, data), etag
        raise StorageError(
            f"s3://{self.store.bucket}/{window.object_key}: {MAX_CONFLICTS} conflicting writes "
            "in a row; held and retried"
        )

    def _describe_stored(self, window: WindowId) -> tuple[dict[str, Any], str | None]:
        """The item of what is stored now, and the ETag it describes."""
        current = self.store.get_with_etag(window.object_key)
        if current is None:
            raise StorageError(f"s3://{self.store.bucket}/{window.object_key} disappeared")
        data, etag = current
        return self._item(window, from_parquet(data), data), etag

    def _item(self, window: WindowId, merged: list[Observation], data: bytes) -> dict[str, Any]:
        return window_item(
            window,
            merged,
            bucket=self.store.bucket,
            site=self.site,
            size=len(data),
            sha256=hashlib.sha256(data).digest(),
            now=self.clock(),
        )
