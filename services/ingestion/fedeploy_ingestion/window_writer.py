"""Writing one window: merge with what is stored, write the object, upsert the item."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

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

    def write(self, window: WindowId, observations: list[Observation]) -> int:
        """Store the window's observations with any stored before; the number of rows stored."""
        if not self._collection_ready:
            self.catalog.ensure_collection(observations_collection())
            self._collection_ready = True
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
        # Upserted even when the bytes are unchanged: the previous run may have died between
        # the object and the item.
        self.catalog.upsert_items(OBSERVATIONS_COLLECTION, [item])
        self.metrics.items_written.labels("observations").inc()
        return len(merged)
