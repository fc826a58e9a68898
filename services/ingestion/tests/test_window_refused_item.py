"""A window whose item the catalog refuses fails alone (moto's S3, the real WindowWriter and
CatalogClient, the catalog's bulk endpoint answering as stac-fastapi-pgstac 7.2 does: 200,
`{"received", "success", "skipped", "errors": [{"id", "msg"}]}`, the others stored).

Held and retried, such a window would be refused again for ever, and the stream's bound on held
bytes would end by stalling every station; its object is stored, so it is logged and counted,
its messages acknowledged, and the other windows of the batch are written as usual."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.object_store import ObjectStore
from fedeploy_ingestion.observation import Observation
from fedeploy_ingestion.settings import IngestSettings
from fedeploy_ingestion.stream import Consumer, Delivery
from fedeploy_ingestion.window_writer import WindowWriter
from fedeploy_ingestion.windowing import window_of
from moto import mock_aws

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
STATIONS = ["bz-01", "bz-02", "bz-03"]
REASON = "Item geometry is not valid"


class PgstacCatalog(CatalogClient):
    """Refuses (200 with `errors`) the items of the stations in `refuse`, stores the others;
    `during(n)` runs as the n-th bulk upsert arrives (before it is answered)."""

    def __init__(self, refuse: set[str], during: Callable[[int], None] = lambda n: None) -> None:
        self.refuse, self.during = refuse, during
        self.stored: dict[str, dict[str, Any]] = {}
        self.upserts: list[list[str]] = []
        transport = httpx.MockTransport(self._answer)
        super().__init__("http://catalog.test", http=httpx.Client(transport=transport))

    def _answer(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/bulk_items"):
            items = json.loads(request.content)["items"]
            self.upserts.append(sorted(items))
            self.during(len(self.upserts))
            refused = [
                i
                for i, item in items.items()
                if item["properties"]["fedeploy:station"] in self.refuse
            ]
            self.stored.update({i: item for i, item in items.items() if i not in refused})
            errors = [{"id": i, "msg": f"{REASON} ({i})"} for i in refused]
            answer = {"received": len(items), "success": len(items) - len(refused), "skipped": 0}
            return httpx.Response(200, json={**answer, "errors": errors})
        return httpx.Response(201, json={})  # POST /collections


@pytest.fixture
def store() -> Iterator[ObjectStore]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="site")
        yield ObjectStore(client, "site")


def rows(station: str, start: int = 0, count: int = 2) -> list[Observation]:
    return [
        Observation(station, T0 + timedelta(seconds=n), {"air_temperature": float(n)}, 11.3, 46.5)
        for n in range(start, start + count)
    ]


def test_a_refused_window_is_acknowledged_counted_and_logged_not_held(
    store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = PgstacCatalog(refuse={"bz-02"})
    metrics = Metrics()
    writer = WindowWriter(store, catalog, "site-a", metrics)
    settings = IngestSettings(site="site-a", bucket="site", window_seconds=600)
    consumer = Consumer(settings, store, writer, metrics)
    acked: list[Any] = []
    consumer._ack = acked.extend  # type: ignore[method-assign,assignment]
    moment = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for tag, station in enumerate(STATIONS, start=1):
        payload = {
            "schema": "fedeploy.observation/1",
            "station": station,
            "time": moment,
            "variables": {"air_temperature": {"value": 18.5, "unit": "degC"}},
        }
        topic = f"fedeploy/site-a/stations/{station}/observations"
        consumer._handle(Delivery(topic, json.dumps(payload).encode(), tag, 0, time.monotonic()))
    with caplog.at_level(logging.ERROR, logger="fedeploy_ingestion.window_writer"):
        consumer._write_due(float("inf"), everything=True)

    # Nothing held, nothing to retry: every message acknowledged, the refused one's too.
    assert sorted(tag[1] for tag in acked) == [1, 2, 3]  # (generation, message id, qos, ...)
    assert consumer.buffer.pending == 0 and len(consumer.buffer) == 0
    assert consumer._write_failures == 0 and consumer._retry_at == 0.0
    assert metrics.write_errors.labels("window")._value.get() == 0
    assert metrics.write_errors.labels("item-refused")._value.get() == 1
    assert metrics.items_written.labels("observations")._value.get() == 2
    # The three objects are stored; the catalog holds the two items it accepted.
    keys = [o["Key"] for o in store.client.list_objects_v2(Bucket="site")["Contents"]]
    assert sorted(k.split("/")[1] for k in keys) == STATIONS
    assert sorted(i["properties"]["fedeploy:station"] for i in catalog.stored.values()) == [
        "bz-01",
        "bz-03",
    ]
    assert len(catalog.upserts) == 1  # one request, not retried
    # The error names the window, the item and the catalog's reason.
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    refused_id = next(i for i in catalog.upserts[0] if i not in catalog.stored)
    assert record.item == refused_id  # type: ignore[attr-defined]
    assert record.window.startswith("s3://site/observations/bz-02/")  # type: ignore[attr-defined]
    assert f"{REASON} ({refused_id})" in record.reason  # type: ignore[attr-defined]


def test_the_etag_check_still_rewrites_an_accepted_window_written_meanwhile(
    store: ObjectStore,
) -> None:
    """Another writer writes both windows while their items are upserted: the accepted window's
    item is rebuilt from the stored object and upserted again; the refused one is not sent
    again (it would be refused again) and nothing is held."""
    accepted, refused = window_of("bz-01", T0, 600), window_of("bz-02", T0, 600)
    other: list[WindowWriter] = []

    def meanwhile(upsert: int) -> None:
        if upsert == 1:  # the other replica writes both windows before our items land
            other[0].write_batch([(accepted, rows("bz-01", 10)), (refused, rows("bz-02", 10))])

    catalog = PgstacCatalog(refuse={"bz-02"}, during=meanwhile)
    other.append(WindowWriter(store, PgstacCatalog(refuse={"bz-02"}), "site-a", Metrics()))
    metrics = Metrics()
    writer = WindowWriter(store, catalog, "site-a", metrics)
    assert writer.write_batch([(accepted, rows("bz-01")), (refused, rows("bz-02"))]) == [2, 2]
    assert catalog.upserts == [sorted([accepted.item_id, refused.item_id]), [accepted.item_id]]
    # The accepted window's item describes the stored object: both writers' rows.
    item = catalog.stored[accepted.item_id]
    assert item["properties"]["fedeploy:observation_count"] == 4
    assert metrics.write_errors.labels("window-conflict")._value.get() == 1
    assert metrics.write_errors.labels("item-refused")._value.get() == 1
