"""The field's shapes through the real consumer on loopback peers (mosquitto, a loopback data
host, SeaweedFS, stac-fastapi-pgstac): the BUFR corpus (tests/field_corpus) checked value by
value against its expected table, a correction replacing a stored first publication, and QoS 0
and QoS 1 publishers side by side."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from fedeploy_ingestion.object_store import ObjectStore
from fedeploy_ingestion.stream import Consumer
from fedeploy_ingestion.window_table import from_parquet

from loopback import MosquittoBroker, SeaweedS3, StacApiServer
from loopback.data_host import DataHost
from loopback.processes import wait_until
from services.ingestion.tests.field_corpus import EXPECTED, REFUSED, T0, build
from services.ingestion.tests.test_stream_integration import (
    in_process_consumer,
    stored_rows,
    topic,
)
from services.ingestion.tests.test_wis2_integration import ORIGIN, wis2_consumer
from services.ingestion.tests.wis2_build import notification, payload

pytestmark = pytest.mark.integration


def stored(store: ObjectStore) -> list:
    """Every observation in the window objects."""
    found = []
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix="observations/")
    for entry in listed.get("Contents", []):
        found += from_parquet(store.get(entry["Key"]))
    return found


def letters(store: ObjectStore) -> list[dict]:
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix="dead-letter/wis2/")
    return [json.loads(store.get(o["Key"])) for o in listed.get("Contents", [])]


@contextmanager
def running(consumer: Consumer) -> Iterator[None]:
    """The consumer run in a thread, subscribed; stopped (and checked stopped) at the end."""
    worker = threading.Thread(target=consumer.run)
    worker.start()
    try:
        wait_until(lambda: consumer.ready, 10, "subscription", None)
        yield
    finally:
        consumer.stop()
        worker.join(timeout=30)
    assert not worker.is_alive()


def send(broker: MosquittoBroker, messages: list[tuple[str, bytes]], qos: int) -> None:
    """Publish at `qos` from one client, as a station's own client would."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"field-{time.time_ns()}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        sent = [client.publish(t, p, qos=qos) for t, p in messages]
        for info in sent:
            info.wait_for_publish(timeout=30)
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_field_corpus_is_stored_as_its_expected_table_and_corrections_replace(
    broker: MosquittoBroker,
    s3: SeaweedS3,
    bucket: str,
    site_a: StacApiServer,
) -> None:
    site = site_a
    host = DataHost()
    corpus = build()
    notes = {}
    for name, entry in corpus.items():
        host.files[f"/{name}"] = entry.data
        note = notification(
            entry.data, host.url(f"/{name}"), data_id=f"field/{name}", pubtime=entry.pubtime
        )
        if name == "correction.bin":  # a WIS2 update: the link's rel says so
            note["links"][0]["rel"] = "update"
            note["properties"]["data_id"] = "field/first.bufr"
        notes[name] = (f"{ORIGIN}/{name}", payload(note))
    consumer, store = wis2_consumer(broker, s3, bucket, site.url)
    try:
        with running(consumer):
            # The first publication (9.8 degC, a typo) is stored before its correction arrives.
            send(broker, [notes["first.bufr"]], qos=1)
            wait_until(lambda: len(stored(store)) == 1, 30, "the first publication", None)
            send(broker, [m for n, m in notes.items() if n != "first.bufr"], qos=1)
            wait_until(lambda: len(letters(store)) == len(REFUSED), 60, "the dead letters", None)
            wait_until(lambda: consumer.buffer.pending == 0, 30, "everything written", None)
    finally:
        host.close()
    observations = stored(store)
    values = {(o.station, o.time, k, v) for o in observations for k, v in o.values.items()}
    assert values == EXPECTED
    assert len(observations) == len({(o.station, o.time) for o in observations})
    assert {d["topic"].rsplit("/", 1)[1]: d["code"] for d in letters(store)} == {
        name: codes[0] for name, codes in REFUSED.items()
    }


def test_qos_0_and_qos_1_publishers_side_by_side_lose_nothing_across_window_writes(
    broker: MosquittoBroker,
    s3: SeaweedS3,
    bucket: str,
    site_a: StacApiServer,
    make_observation,
) -> None:
    site = site_a
    consumer, store, _ = in_process_consumer(broker, s3, bucket, site.url, "qos")
    expected = set()
    with running(consumer):
        # 20 observations per station; windows are written (flush after 0.5 s idle) between
        # the bursts, so acknowledgements go out while QoS 0 messages are held.
        for burst in range(4):
            for qos, stations in ((0, ("mcu-1", "mcu-2")), (1, ("aws-1", "aws-2"))):
                messages = []
                for station in stations:
                    for n in range(5):
                        when = T0 + timedelta(minutes=burst * 5 + n)
                        messages.append(
                            (topic(station), json.dumps(make_observation(station, when)).encode())
                        )
                        expected.add((station, when))
                send(broker, messages, qos)
            time.sleep(0.8)
        wait_until(
            lambda: len(set(stored_rows(store))) >= len(expected), 30, "every observation", None
        )
    assert set(stored_rows(store)) == expected
    assert consumer._generation == 1, "the broker closed the consumer's connection"
