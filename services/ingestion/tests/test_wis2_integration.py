"""WIS2 notifications through the real consumer: mosquitto, a loopback HTTP data host serving
BUFR the tests encode with ecCodes, SeaweedFS and stac-fastapi-pgstac."""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.object_store import ObjectStore, s3_client
from fedeploy_ingestion.settings import IngestSettings
from fedeploy_ingestion.stream import Consumer
from fedeploy_ingestion.window_writer import WindowWriter

from loopback import MosquittoBroker, SeaweedS3
from loopback.data_host import DataHost
from loopback.processes import Daemon, free_port, wait_until
from services.ingestion.tests.bufr_encode import Station, encode
from services.ingestion.tests.test_stream_integration import (
    catalog_items,
    publish,
    stored_rows,
    stream_env,
)
from services.ingestion.tests.wis2_build import notification, payload

pytestmark = pytest.mark.integration

T0 = datetime(2024, 6, 1, 0, 0, tzinfo=UTC)
ORIGIN = "origin/a/wis2/xx-test/data/core/weather/surface-based-observations/synop"
CACHE = "cache/a/wis2/xx-test/data/core/weather/surface-based-observations/synop"


# A WIS2 stream process's settings: data from `localhost` (the loopback data host), over http.
WIS2_ENV = {
    "INGEST_STREAM_FORMAT": "wis2",
    "INGEST_WIS2_DOWNLOAD_HOSTS": '["localhost"]',
    "INGEST_WIS2_PRIVATE_HOSTS": '["localhost"]',
    "INGEST_WIS2_ALLOW_HTTP": "true",
}


@pytest.fixture
def hosts() -> Iterator[tuple[DataHost, DataHost]]:
    """The allowed data host (as `localhost`) and another loopback server no link may reach."""
    allowed, other = DataHost(), DataHost()
    yield allowed, other
    allowed.close()
    other.close()


def wis2_consumer(
    broker: MosquittoBroker, s3: SeaweedS3, bucket: str, catalog_url: str
) -> tuple[Consumer, ObjectStore]:
    settings = IngestSettings(
        site="site-a",
        catalog_url=catalog_url,
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        mqtt_tls=False,  # the loopback broker is plain MQTT
        mqtt_client_id=f"wis2-{bucket}",
        mqtt_topics=[f"{ORIGIN}/#", f"{CACHE}/#"],
        stream_format="wis2",
        wis2_download_hosts=["localhost"],
        wis2_private_hosts=["localhost"],
        wis2_allow_http=True,
        dead_letter_prefix="dead-letter/wis2/",
        flush_idle_seconds=0.5,
        s3_endpoint_url=s3.endpoint.endpoint_url,
    )
    metrics = Metrics()
    store = ObjectStore(s3_client(settings.s3_endpoint_url, settings.s3_region, "auto"), bucket)
    writer = WindowWriter(store, CatalogClient(catalog_url), "site-a", metrics)
    return Consumer(settings, store, writer, metrics), store


def test_wis2_notifications_store_each_observation_once_and_dead_letter_the_bad_ones(
    broker: MosquittoBroker,
    s3: SeaweedS3,
    bucket: str,
    catalogs,
    site_env: dict[str, str],
    hosts: tuple[DataHost, DataHost],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allowed, other = hosts
    site = catalogs.start("site-a")
    for name, value in site_env.items():
        monkeypatch.setenv(name, value)
    # Three files: 4 stations x 3 times, with missing values; the third file repeats the
    # observations of the first (a second publication of the same data).
    good: list[tuple[str, bytes]] = []
    expected: set[tuple[str, datetime]] = set()
    for hour in range(3):
        moment = T0 + timedelta(hours=hour)
        stations = [
            Station(
                moment,
                wigos=f"ST{n}",
                latitude=46.0 + n,
                longitude=11.0,
                values={
                    "airTemperature": 280.0 + n if n != 2 else None,
                    "nonCoordinatePressure": 95000.0 if n != 1 else None,
                    "windSpeed": float(n),
                },
            )
            for n in range(4)
        ]
        allowed.files[f"/synop/{hour}.bufr4"] = encode(stations)
        expected |= {(f"0-20000-0-ST{n}", moment) for n in range(4)}
    allowed.fail["/synop/1.bufr4"] = 2  # transient: answered 503 twice, then served
    notes = []
    for hour in range(3):
        path = f"/synop/{hour}.bufr4"
        note = notification(allowed.files[path], allowed.url(path), data_id=f"synop/{hour}")
        notes.append(note)
        good.append((f"{ORIGIN}/{hour}", payload(note)))
    # The same notifications through a second "broker" (the cache topic): skipped by id.
    duplicates = [(f"{CACHE}/{hour}", payload(note)) for hour, note in enumerate(notes)]
    # A second publication of file 0 (new id and pubtime, same data): lands on the same rows.
    again = notification(
        allowed.files["/synop/0.bufr4"],
        allowed.url("/synop/0.bufr4"),
        data_id="synop/0",
        pubtime="2026-11-30T07:00:00Z",
    )
    allowed.files["/bad.bufr4"] = b"BUFR this is not"
    allowed.files["/no-station.bufr4"] = encode([Station(T0, values={"windSpeed": 1.0})])
    bad = {
        "notification": payload({**notes[0], "type": "FeatureCollection"}),
        "digest-mismatch": payload(
            notification(b"other bytes", allowed.url("/synop/2.bufr4"), data_id="x/1")
        ),
        "download": payload(notification(b"", allowed.url("/missing.bufr4"), data_id="x/2")),
        "bufr": payload(
            notification(allowed.files["/bad.bufr4"], allowed.url("/bad.bufr4"), data_id="x/3")
        ),
        "no-station": payload(
            notification(
                allowed.files["/no-station.bufr4"],
                allowed.url("/no-station.bufr4"),
                data_id="x/4",
            )
        ),
        "forbidden-link": payload(
            notification(b"x", other.url("/synop/0.bufr4", host="127.0.0.1"), data_id="x/5")
        ),
    }
    consumer, store = wis2_consumer(broker, s3, bucket, site.url)
    worker = threading.Thread(target=consumer.run)
    worker.start()
    try:
        wait_until(lambda: consumer.ready, 10, "subscription", None)
        publish(
            broker,
            [
                *good,
                *duplicates,
                (f"{CACHE}/again", payload(again)),
                *((f"{ORIGIN}/bad", p) for p in bad.values()),
            ],
        )

        def letters() -> list[dict]:
            listed = store.client.list_objects_v2(Bucket=bucket, Prefix="dead-letter/wis2/")
            return [json.loads(store.get(o["Key"])) for o in listed.get("Contents", [])]

        wait_until(lambda: len(letters()) == len(bad), 30, "the dead letters", None)
        wait_until(lambda: len(stored_rows(store)) >= len(expected), 30, "the rows", None)
        wait_until(lambda: consumer.buffer.pending == 0, 30, "everything written", None)
    finally:
        consumer.stop()
        worker.join(timeout=30)
    assert not worker.is_alive()
    rows = stored_rows(store)
    assert sorted(rows) == sorted(expected)  # each observation exactly once
    assert sorted(d["code"] for d in letters()) == sorted(bad)
    for document in letters():
        assert document["reason"] and document["topic"] == f"{ORIGIN}/bad"
    # Duplicates by id were never downloaded; the retried file was fetched 3 times.
    assert allowed.requests["/synop/0.bufr4"] == 2  # the first notification and `again`
    assert allowed.requests["/synop/1.bufr4"] == 3
    assert allowed.requests["/synop/2.bufr4"] == 2  # its notification and the digest mismatch
    # The forbidden link was refused before any request reached the other server.
    assert sum(other.requests.values()) == 0
    items = catalog_items(site.url)
    assert sum(i["properties"]["fedeploy:observation_count"] for i in items) == len(expected)
    assert consumer.metrics.messages_skipped._value.get() == len(duplicates)


@pytest.mark.slow
def test_wis2_consumer_sigkilled_at_random_moments_stores_every_observation_once(
    broker: MosquittoBroker,
    s3: SeaweedS3,
    bucket: str,
    catalogs,
    site_env: dict[str, str],
    hosts: tuple[DataHost, DataHost],
    tmp_path: Path,
) -> None:
    allowed, _ = hosts
    site = catalogs.start("site-a")
    chance = random.Random(19)
    origin, cache, published = [], [], []
    for step in range(60):  # 60 files of 10 stations each, one minute apart
        moment = T0 + timedelta(minutes=step)
        stations = [
            Station(moment, wigos=f"K{n}", values={"airTemperature": 270.0 + step / 10})
            for n in range(10)
        ]
        path = f"/kill/{step}.bufr4"
        allowed.files[path] = encode(stations)
        note = payload(notification(allowed.files[path], allowed.url(path), data_id=path))
        origin.append((f"{ORIGIN}/{step}", note))
        cache.append((f"{CACHE}/{step}", note))  # the same notification via a second broker
        published += [(f"0-20000-0-K{n}", moment) for n in range(10)]
    port = free_port()
    env = stream_env(
        site_env, site.url, broker, f"wis2-kill-{bucket}", port, **WIS2_ENV,
        INGEST_MQTT_TOPICS=f"{ORIGIN}/#,{CACHE}/#",
    )  # fmt: skip
    consumer = Daemon(
        "consumer", [sys.executable, "-m", "fedeploy_ingestion", "stream"], tmp_path, env=env
    )

    def start() -> None:
        consumer.start()
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200,
            30,
            "the consumer's /readyz",
            consumer.log_file,
        )

    def stored() -> int:
        return sum(i["properties"]["fedeploy:observation_count"] for i in catalog_items(site.url))

    messages = [m for pair in zip(origin, cache, strict=True) for m in pair]
    batches = [messages[:40], messages[40:80], messages[80:]]
    try:
        start()
        for batch in batches:
            publish(broker, batch)
            time.sleep(chance.uniform(0.2, 2.0))
            consumer.kill()  # SIGKILL at a random moment: no flush, no acknowledgement
            start()
    except BaseException:
        consumer.kill()
        raise
    try:
        wait_until(lambda: stored() == len(published), 90, "every observation", consumer.log_file)
    finally:
        consumer.stop()
    rows = stored_rows(ObjectStore(s3.endpoint.client(), bucket))
    assert [key for key, count in Counter(rows).items() if count > 1] == []
    assert sorted(rows) == sorted(published)
    assert "Traceback" not in consumer.log_file.read_text()
