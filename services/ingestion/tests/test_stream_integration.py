"""The MQTT consumer against real peers: Debian's mosquitto, SeaweedFS, stac-fastapi-pgstac."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pyarrow.parquet as pq
import pytest
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.object_store import ObjectStore, s3_client
from fedeploy_ingestion.probes import ProbeServer
from fedeploy_ingestion.settings import IngestSettings
from fedeploy_ingestion.stream import Consumer
from fedeploy_ingestion.window_writer import WindowWriter
from fedeploy_ingestion.windowing import window_of

from loopback import MosquittoBroker, SeaweedS3
from loopback.processes import Daemon, free_port, wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2024, 6, 1, 0, 0, tzinfo=UTC)


def topic(station: str) -> str:
    return f"fedeploy/site-a/stations/{station}/observations"


def publish(broker: MosquittoBroker, messages: list[tuple[str, bytes]]) -> None:
    """Publish at QoS 1 and wait until the broker has acknowledged every message."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"publisher-{time.time_ns()}")
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        sent = [client.publish(t, p, qos=1) for t, p in messages]
        for info in sent:
            info.wait_for_publish(timeout=60)
        assert all(info.is_published() for info in sent)
    finally:
        client.disconnect()
        client.loop_stop()


def stored_rows(store: ObjectStore) -> list[tuple[str, datetime]]:
    rows = []
    paginator = store.client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=store.bucket, Prefix="observations/"):
        for entry in page.get("Contents", []):
            table = pq.read_table(io.BytesIO(store.get(entry["Key"])))
            rows += list(
                zip(
                    table.column("station").to_pylist(),
                    table.column("time").to_pylist(),
                    strict=True,
                )
            )
    return rows


def catalog_items(url: str) -> list[dict[str, Any]]:
    answer = httpx.post(
        f"{url}/search", json={"collections": ["edge-observations"], "limit": 1000}, timeout=30
    )
    answer.raise_for_status()
    return answer.json()["features"]


def counter_value(metrics_text: str, name: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def stream_env(
    site_env: dict[str, str],
    catalog_url: str,
    broker: MosquittoBroker,
    client_id: str,
    port: int,
    **more: str,
) -> dict[str, str]:
    """The environment of a `fedeploy-ingest stream` process on the loopback peers (10-minute
    windows written 1 s after their last message; probes on 127.0.0.1:`port`), plus `more`."""
    return {
        **os.environ,
        **site_env,
        "INGEST_CATALOG_URL": catalog_url,
        "INGEST_MQTT_HOST": broker.host,
        "INGEST_MQTT_PORT": str(broker.port),
        "INGEST_MQTT_TLS": "false",  # the loopback broker is plain MQTT
        "INGEST_MQTT_CLIENT_ID": client_id,
        "INGEST_WINDOW_SECONDS": "600",
        "INGEST_WINDOW_GRACE_SECONDS": "0",
        "INGEST_FLUSH_IDLE_SECONDS": "1",
        "INGEST_HTTP_HOST": "127.0.0.1",
        "INGEST_HTTP_PORT": str(port),
        "INGEST_LOG_LEVEL": "WARNING",
        **more,
    }


def in_process_consumer(
    broker: MosquittoBroker, s3: SeaweedS3, bucket: str, catalog_url: str, name: str
) -> tuple[Consumer, ObjectStore, Metrics]:
    """A consumer of site-a's topics (not started), its store and its metrics."""
    settings = IngestSettings(
        catalog_url=catalog_url,
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        mqtt_tls=False,  # the loopback broker is plain MQTT
        mqtt_client_id=f"{name}-{bucket}",
        flush_idle_seconds=0.5,
        s3_endpoint_url=s3.endpoint.endpoint_url,
    )
    metrics = Metrics()
    store = ObjectStore(s3_client(settings.s3_endpoint_url, settings.s3_region, "auto"), bucket)
    writer = WindowWriter(store, CatalogClient(catalog_url), "site-a", metrics)
    return Consumer(settings, store, writer, metrics), store, metrics


@pytest.mark.slow
def test_10000_observations_with_the_consumer_killed_twice_land_exactly_once(
    broker: MosquittoBroker,
    s3: SeaweedS3,
    bucket: str,
    catalogs,
    site_env: dict[str, str],
    make_observation,
    tmp_path: Path,
) -> None:
    site = catalogs.start("site-a")
    stations = [f"st-{n:02d}" for n in range(20)]
    messages, published = [], []
    for step in range(500):
        for n, station in enumerate(stations):
            moment = T0 + timedelta(seconds=12 * step + n)
            position = (11.0 + n / 10, 46.0) if n % 2 else None
            body = make_observation(station, moment, temperature=step / 10, position=position)
            messages.append((topic(station), json.dumps(body).encode()))
            published.append((station, moment))
    assert len(messages) == 10_000

    port = free_port()
    env = stream_env(site_env, site.url, broker, f"kill-{bucket}", port)
    consumer = Daemon(
        "consumer", [sys.executable, "-m", "fedeploy_ingestion", "stream"], tmp_path, env=env
    )

    def metrics() -> str:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text

    def start() -> None:
        consumer.start()
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200,
            30,
            "the consumer's /readyz",
            consumer.log_file,
        )

    # Three batches: the second and third are published while the consumer lies dead, so each
    # restarted consumer has thousands of messages ahead of it and 1500 acknowledgements always
    # come, however fast or slow this machine is (a consumer that drained everything before the
    # kill would otherwise never reach the next threshold).
    batches = [messages[:4000], messages[4000:7000], messages[7000:]]
    stored_at_kill = []
    try:
        start()
        publisher = threading.Thread(target=publish, args=(broker, batches[0]))
        publisher.start()
        for batch in batches[1:]:
            wait_until(
                lambda: counter_value(metrics(), "ingest_messages_acknowledged_total") >= 1500,
                60,
                "1500 acknowledgements",
                consumer.log_file,
            )
            consumer.kill()  # SIGKILL: no flush, no acknowledgement, whatever it was doing
            stored_at_kill.append(
                sum(i["properties"]["fedeploy:observation_count"] for i in catalog_items(site.url))
            )
            publisher.join(timeout=120)
            assert not publisher.is_alive()
            publish(broker, batch)  # queued by the broker for the dead consumer's session
            start()
    except BaseException:
        consumer.kill()  # never leave a consumer behind to eat the next test's messages
        raise

    windows = {window_of(s, t, 600) for s, t in published}
    wait_until(
        lambda: (
            sum(i["properties"]["fedeploy:observation_count"] for i in catalog_items(site.url))
            == 10_000
        ),
        90,
        "all observations in the catalog",
        consumer.log_file,
    )
    consumer.stop()  # SIGTERM: writes what it holds, then exits

    store = ObjectStore(s3.endpoint.client(), bucket)
    rows = stored_rows(store)
    duplicates = [key for key, count in Counter(rows).items() if count > 1]
    assert duplicates == []
    assert sorted(rows) == sorted(published)
    items = catalog_items(site.url)
    assert sorted(i["id"] for i in items) == sorted(w.item_id for w in windows)
    positioned = [i for i in items if i["properties"]["fedeploy:position_known"]]
    assert len(positioned) == len(windows) // 2
    assert all(0 < stored < 10_000 for stored in stored_at_kill), stored_at_kill
    assert "Traceback" not in consumer.log_file.read_text()


def test_malformed_messages_end_in_the_dead_letter_prefix_and_the_consumer_goes_on(
    broker: MosquittoBroker,
    s3: SeaweedS3,
    bucket: str,
    catalogs,
    site_env: dict[str, str],
    make_observation,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = catalogs.start("site-a")
    for name, value in site_env.items():
        monkeypatch.setenv(name, value)
    consumer, store, metrics = in_process_consumer(broker, s3, bucket, site.url, "dead")
    probes = ProbeServer(
        "127.0.0.1", 0, metrics, healthy=lambda: True, ready=lambda: consumer.ready
    ).start()
    probe = f"http://127.0.0.1:{probes.port}"
    assert httpx.get(f"{probe}/readyz").status_code == 503
    worker = threading.Thread(target=consumer.run)
    worker.start()
    try:
        wait_until(lambda: consumer.ready, 10, "subscription", None)
        assert httpx.get(f"{probe}/readyz").status_code == 200
        good = make_observation("bz-01", T0)
        bad = {
            "not-json": (topic("bz-01"), b"{broken"),
            "schema-version": (topic("bz-01"), json.dumps({**good, "schema": "other/9"}).encode()),
            "unit": (
                topic("bz-01"),
                json.dumps(
                    {**good, "variables": {"air_temperature": {"value": 20, "unit": "degF"}}}
                ).encode(),
            ),
            "topic-mismatch": (topic("bz-02"), json.dumps(good).encode()),
        }
        later = make_observation("bz-01", T0 + timedelta(seconds=30))
        publish(
            broker,
            [
                (topic("bz-01"), json.dumps(good).encode()),
                *bad.values(),
                (topic("bz-01"), json.dumps(later).encode()),
            ],
        )
        wait_until(lambda: len(catalog_items(site.url)) == 1, 20, "the good window", None)
        letters = store.client.list_objects_v2(Bucket=bucket, Prefix="dead-letter/observations/")
        documents = [json.loads(store.get(o["Key"])) for o in letters.get("Contents", [])]
        assert sorted(d["code"] for d in documents) == sorted(bad)
        for document in documents:
            assert document["reason"] and document["topic"].startswith("fedeploy/site-a/")
        assert next(d for d in documents if d["code"] == "not-json")["payload"] == "{broken"
        [item] = catalog_items(site.url)
        assert item["properties"]["fedeploy:observation_count"] == 2
        text = httpx.get(f"{probe}/metrics").text
        for code in bad:
            assert f'ingest_dead_letters_total{{reason="{code}"}} 1.0' in text
        assert counter_value(text, "ingest_messages_received_total") == 6
    finally:
        consumer.stop()
        worker.join(timeout=30)
        probes.close()
    assert not worker.is_alive()
    assert metrics.pending_messages._value.get() == 0


def test_poison_messages_between_good_ones_are_dead_lettered_and_the_consumer_goes_on(
    broker: MosquittoBroker,
    s3: SeaweedS3,
    bucket: str,
    catalogs,
    site_env: dict[str, str],
    make_observation,
    monkeypatch: pytest.MonkeyPatch,
    poison_messages: list[tuple[str, bytes, str]],
) -> None:
    """Every good message stored once, every poison one dead-lettered with its reason, and the
    consumer never stops (the deep nesting once killed it at the first message)."""
    site = catalogs.start("site-a")
    for name, value in site_env.items():
        monkeypatch.setenv(name, value)
    consumer, store, metrics = in_process_consumer(broker, s3, bucket, site.url, "poison")
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            consumer.run()
        except BaseException as error:  # noqa: BLE001 - recorded: the test fails on it
            crashed.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    corpus = poison_messages
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    messages, good = [], []
    for n, (_, payload, _) in enumerate(corpus):
        moment = start + timedelta(seconds=30 * n)
        body = make_observation("bz-01", moment, temperature=float(n))
        messages.append((topic("bz-01"), json.dumps(body).encode()))
        good.append(("bz-01", moment))
        messages.append((topic("bz-01"), payload))
    last = start + timedelta(seconds=30 * len(corpus))
    messages.append((topic("bz-01"), json.dumps(make_observation("bz-01", last)).encode()))
    good.append(("bz-01", last))
    try:
        wait_until(lambda: consumer.ready, 10, "subscription", None)
        publish(broker, messages)

        def stored() -> int:
            return sum(
                i["properties"]["fedeploy:observation_count"] for i in catalog_items(site.url)
            )

        wait_until(lambda: stored() == len(good), 60, "every good observation", None)
        wait_until(
            lambda: (
                metrics.dead_letters._metrics
                and sum(c._value.get() for c in metrics.dead_letters._metrics.values())
                == len(corpus)
            ),
            30,
            "every dead letter",
            None,
        )
        assert worker.is_alive() and not crashed
    finally:
        consumer.stop()
        worker.join(timeout=30)
    assert not crashed and not worker.is_alive()

    letters = store.client.list_objects_v2(Bucket=bucket, Prefix="dead-letter/observations/")
    documents = [json.loads(store.get(o["Key"])) for o in letters.get("Contents", [])]
    assert Counter(d["code"] for d in documents) == Counter(code for _, _, code in corpus)
    assert all(d["reason"] for d in documents)
    rows = []
    for entry in store.client.list_objects_v2(Bucket=bucket, Prefix="observations/")["Contents"]:
        table = pq.read_table(io.BytesIO(store.get(entry["Key"])))
        rows += [
            (s, t.astimezone(UTC))
            for s, t in zip(
                table.column("station").to_pylist(), table.column("time").to_pylist(), strict=True
            )
        ]
    assert sorted(rows) == sorted(good)  # each good one once, nothing else
    assert metrics.messages_acknowledged._value.get() == len(messages)


@pytest.mark.slow
def test_replicas_2_to_3_to_2_while_publishing_and_killing_lose_and_duplicate_nothing(
    broker: MosquittoBroker,
    s3: SeaweedS3,
    bucket: str,
    catalogs,
    site_env: dict[str, str],
    make_observation,
    tmp_path: Path,
) -> None:
    """The change follows docs/ingestion.md: step 1 restarts every replica with the new count
    and INGEST_PREVIOUS_SHARD_COUNT (adding replicas first); once each has written what it
    held, step 2 drops the previous count (removing replicas last). Replicas are SIGKILLed at
    random while messages flow; two owners of a station merge through conditional writes."""
    import random

    seed = time.time_ns()
    chance = random.Random(seed)
    site = catalogs.start("site-a")
    stations = [f"rs-{n:02d}" for n in range(12)]
    ports = [free_port() for _ in range(3)]
    replicas: dict[int, Daemon] = {}
    published: list[tuple[str, datetime]] = []
    step = [0]

    def batch(count: int) -> list[tuple[str, bytes]]:
        messages = []
        for _ in range(count):
            for n, station in enumerate(stations):
                moment = T0 + timedelta(seconds=12 * step[0] + n)
                messages.append((topic(station), json.dumps(make_observation(station, moment))))
                published.append((station, moment))
            step[0] += 1
        return [(t, p.encode()) for t, p in messages]

    def metric(index: int, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{ports[index]}/metrics", timeout=2).text
        return counter_value(text, name)

    def start(index: int, count: int, previous: int | None) -> None:
        env = {
            **os.environ,
            **site_env,
            "INGEST_CATALOG_URL": site.url,
            "INGEST_MQTT_HOST": broker.host,
            "INGEST_MQTT_PORT": str(broker.port),
            "INGEST_MQTT_TLS": "false",  # the loopback broker is plain MQTT
            "INGEST_MQTT_CLIENT_ID": f"replica-{bucket}-{index}",
            "INGEST_SHARD_INDEX": str(index),
            "INGEST_SHARD_COUNT": str(count),
            "INGEST_WINDOW_SECONDS": "600",
            "INGEST_WINDOW_GRACE_SECONDS": "0",
            "INGEST_FLUSH_IDLE_SECONDS": "1",
            "INGEST_HTTP_HOST": "127.0.0.1",
            "INGEST_HTTP_PORT": str(ports[index]),
            "INGEST_LOG_LEVEL": "WARNING",
        }
        if previous is not None:
            env["INGEST_PREVIOUS_SHARD_COUNT"] = str(previous)
        daemon = replicas.get(index) or Daemon(
            f"replica-{index}",
            [sys.executable, "-m", "fedeploy_ingestion", "stream"],
            tmp_path / f"replica-{index}",
        )
        daemon.env = env
        daemon.start()
        replicas[index] = daemon
        wait_until(
            lambda: (
                httpx.get(f"http://127.0.0.1:{ports[index]}/readyz", timeout=1).status_code == 200
            ),
            30,
            f"replica {index} ready",
            daemon.log_file,
        )

    def step_of_change(targets: dict[int, tuple[int, int | None]], messages: int) -> None:
        """Restart each replica in `targets` with its (count, previous) while observations are
        published all along (a round of every station every 200 ms, `messages` rounds at least);
        one replica is SIGKILLed (at random) instead of stopped."""
        done = threading.Event()

        def keep_publishing() -> None:
            rounds = 0
            while not done.is_set() or rounds < messages:
                publish(broker, batch(1))
                rounds += 1
                time.sleep(0.2)

        publisher = threading.Thread(target=keep_publishing)
        publisher.start()
        killed = chance.choice(sorted(targets))
        for index, (count, previous) in targets.items():
            if index in replicas:
                if index == killed:
                    replicas[index].kill()
                else:
                    replicas[index].stop()  # SIGTERM: writes what it holds, then exits
            start(index, count, previous)
            time.sleep(chance.uniform(0, 0.5))
        done.set()
        publisher.join(timeout=120)
        assert not publisher.is_alive()

    def drained() -> None:
        """Every running replica has written and acknowledged what it received."""
        for index, daemon in replicas.items():

            def empty(index: int = index) -> bool:
                return metric(index, "ingest_pending_messages") == 0

            wait_until(empty, 60, f"replica {index} drained", daemon.log_file)

    try:
        for index in (0, 1):
            start(index, 2, None)
        publish(broker, batch(8))
        # 2 -> 3, step 1: the new replica first, then each old one with both counts.
        step_of_change({2: (3, 2), 0: (3, 2), 1: (3, 2)}, 12)
        drained()
        # 2 -> 3, step 2: the new count alone.
        step_of_change({0: (3, None), 1: (3, None), 2: (3, None)}, 12)
        # 3 -> 2, step 1: every replica with both counts.
        step_of_change({2: (2, 3), 1: (2, 3), 0: (2, 3)}, 12)
        drained()
        # 3 -> 2, step 2: the old replica leaves last.
        replicas.pop(2).stop()
        step_of_change({0: (2, None), 1: (2, None)}, 12)
        # Until everything is in, or nothing more comes for 10 s (then the rows below say what
        # was lost).
        stored, since = -1, time.monotonic()
        while time.monotonic() - since < 10:
            count = sum(
                i["properties"]["fedeploy:observation_count"] for i in catalog_items(site.url)
            )
            if count == len(published):
                break
            if count != stored:
                stored, since = count, time.monotonic()
            time.sleep(0.5)
    finally:
        for daemon in replicas.values():
            daemon.kill()

    store = ObjectStore(s3.endpoint.client(), bucket)
    rows = stored_rows(store)
    duplicates = [key for key, count in Counter(rows).items() if count > 1]
    assert duplicates == [], f"seed {seed}"
    lost = sorted(set(published) - set(rows))
    assert lost == [], f"{len(lost)} of {len(published)} observations lost (seed {seed})"
    assert sorted(rows) == sorted(published), f"seed {seed}"
    items = catalog_items(site.url)
    windows = {window_of(s, t, 600) for s, t in published}
    assert sorted(i["id"] for i in items) == sorted(w.item_id for w in windows)
    for log_file in (tmp_path / f"replica-{n}" / f"replica-{n}.log" for n in range(3)):
        assert "Traceback" not in log_file.read_text()
