"""Writing one window: merge with what is stored, write the object, upsert the item."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.object_store import ObjectStore
from fedeploy_ingestion.observation import Observation, merge
from fedeploy_ingestion.observation_item import observations_collection, window_item
from fedeploy_ingestion.window_table import MEDIA_TYPE, from_parquet, to_parquet
from fedeploy_ingestion.windowing import OBSERVATIONS_COLLECTION, WindowId


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
        if len(windows) == 1:
            stored = [self._store(*windows[0])]
        else:
            stored = list(self._pool.map(lambda w: self._store(*w), windows))
        # Upserted even when the bytes are unchanged: the previous run may have died between
        # the object and the item.
        self.catalog.upsert_items(OBSERVATIONS_COLLECTION, [item for _, item in stored])
        self.metrics.items_written.labels("observations").inc(len(stored))
        return [count for count, _ in stored]

    def _store(
        self, window: WindowId, observations: list[Observation]
    ) -> tuple[int, dict[str, Any]]:
        stored = self.store.get(window.object_key)
        merged = merge(from_parquet(stored) if stored else [], observations)
        data = to_parquet(merged)
        if data != stored:
            self.store.put(window.object_key, data, MEDIA_TYPE)
            self.metrics.bytes_written.labels("observations").inc(len(data))
        item = window_item(
            window,
            merged,
            bucket=self.store.bucket,
            site=self.site,
            size=len(data),
            sha256=hashlib.sha256(data).digest(),
            now=self.clock(),
        )
        return len(merged), item
