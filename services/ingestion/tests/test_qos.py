"""Acknowledgements by QoS (MQTT 5 section 4.3): only what has a packet id is acknowledged, and
what is held survives a reconnection (a QoS 0 message is never sent again)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.settings import IngestSettings
from fedeploy_ingestion.stream import PACKET_OVERHEAD, Consumer, Delivery, Inbox, Reconnected

from services.ingestion.tests.conftest import observation

TOPIC = "fedeploy/site-a/stations/mcu-1/observations"


class Client:
    def __init__(self) -> None:
        self.acks: list[tuple[int, int]] = []

    def ack(self, mid: int, qos: int) -> None:
        self.acks.append((mid, qos))


def consumer() -> tuple[Consumer, Client]:
    made = Consumer(IngestSettings(site="site-a", bucket="b"), None, None, Metrics())  # type: ignore[arg-type]
    client = Client()
    made.client = client  # type: ignore[assignment]
    made._generation, made._connected = 1, True
    return made, client


def delivery(minute: int, mid: int, qos: int, serial: int) -> Delivery:
    when = datetime(2024, 6, 1, 0, minute, tzinfo=UTC)
    payload = json.dumps(observation("mcu-1", when)).encode()
    return Delivery(TOPIC, payload, mid, 1, time.monotonic(), qos, serial)


def test_qos_0_messages_are_never_acknowledged_and_qos_1_and_2_are() -> None:
    made, client = consumer()
    made._ack_now(
        [delivery(0, 0, 0, 1).tag, delivery(1, 0, 0, 2).tag, delivery(2, 9, 1, 3).tag]
        + [delivery(3, 10, 2, 4).tag]
    )
    assert client.acks == [(9, 1), (10, 2)]


def test_held_messages_survive_a_reconnection() -> None:
    made, client = consumer()
    for n in range(3):
        made._handle(delivery(n, 0, 0, n + 1))  # QoS 0: never delivered again
    made.inbox.put(Reconnected(2))
    made._drain(timeout=0)
    assert made.buffer.pending == 3


def test_the_inbox_waits_while_its_payload_bytes_are_full() -> None:
    inbox = Inbox(max_bytes=100)
    big = Delivery(TOPIC, b"x" * 80, 1, 1, 0.0)
    inbox.put(big)
    done = threading.Event()
    threading.Thread(target=lambda: (inbox.put(big), done.set()), daemon=True).start()
    assert not done.wait(0.3)  # 160 bytes would exceed 100: the network thread waits
    assert inbox.get(1) is big
    assert done.wait(2) and inbox.bytes == 80


def test_connect_tells_the_broker_the_largest_packet_the_consumer_takes() -> None:
    made, _ = consumer()
    sent: dict[str, Any] = {}

    class Connecting:
        def connect_async(self, *args: Any, **kwargs: Any) -> None:
            sent.update(kwargs)

        def loop_start(self) -> None:
            pass

    made.client = Connecting()  # type: ignore[assignment]
    made.settings = IngestSettings(site="site-a", bucket="b", mqtt_host="h", max_payload_bytes=4096)
    made.connect()
    # 16 MiB payloads still come (dead-lettered `too-large` with their reason); not more.
    assert sent["properties"].MaximumPacketSize == 16 * 1024 * 1024 + PACKET_OVERHEAD
