"""The long-running MQTT consumer of edge observations.

At least once from the broker for QoS 1 and 2 publishers (a persistent MQTT 5 session,
manual acknowledgements), exactly once in storage and catalog (keys and ids derive from the
window; writes merge). A message is acknowledged only after its window's object and item are
both written, so a consumer killed at any moment loses nothing: the broker delivers again
what was not acknowledged, and writing a window again stores the same rows. A QoS 0 message
(microcontroller clients publish only at QoS 0) has no packet id and is never acknowledged;
it is lost only if the consumer dies before its window is written: what is held survives a
reconnection.

Memory is bounded before a message is read: the broker is told the largest packet the
consumer takes (MQTT 5 Maximum Packet Size, `maximum_packet_size`), and the inbox
between the network thread and the worker holds at most `INBOX_BYTES` of payloads (the
network thread waits, and so does the broker's TCP stream, while it is full).

The network thread of paho only queues what arrives; one worker thread validates, groups,
writes and acknowledges, so no lock guards the windows.

Every message ends in exactly one place: stored in its window, or written to the dead-letter
prefix with a reason code, then acknowledged. Whatever one message raises while it is decoded
or validated (`parse_observation` turns any failure into `InvalidObservation`; a boundary in
`_handle` catches what is left) is that message's dead letter, never the consumer's end. A
write that fails is retried with capped exponential backoff while the liveness heartbeat
keeps beating.
"""

from __future__ import annotations

import itertools
import logging
import queue
import ssl
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from tenacity import Retrying, retry_if_exception_type, wait_exponential

from fedeploy_ingestion.dead_letter import dead_letter_document, dead_letter_key
from fedeploy_ingestion.decoding import DecodeLimits
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.object_store import ObjectStore
from fedeploy_ingestion.observation import InvalidObservation, Limits, parse_observation
from fedeploy_ingestion.settings import IngestSettings
from fedeploy_ingestion.sharding import owns_any
from fedeploy_ingestion.window_buffer import WindowBuffer
from fedeploy_ingestion.window_writer import WindowWriter
from fedeploy_ingestion.wis2_intake import Wis2Intake

log = logging.getLogger(__name__)
QOS = 1
# Topic name, properties and fixed header of a PUBLISH beside its payload (MQTT 5 section 3.3;
# a topic name is at most 65,535 bytes).
PACKET_OVERHEAD = 65_535 + 4096
# Payloads up to this size still reach the consumer, so one above INGEST_MAX_PAYLOAD_BYTES is
# dead-lettered (`too-large`) with its reason; the broker discards larger packets unsent.
DEAD_LETTERED_PAYLOAD_BYTES = 16 * 1024 * 1024
# Payload bytes waiting between the network thread and the worker, at most.
INBOX_BYTES = 64 * 1024 * 1024
# Windows written per bulk upsert to the catalog.
MAX_BATCH = 200
# First wait before retrying a failed write; doubles up to INGEST_RETRY_MAX_SECONDS.
RETRY_FIRST_SECONDS = 0.5
# A wait is cut in slices this long, each one beating the liveness heartbeat.
HEARTBEAT_SLICE_SECONDS = 5.0


def limits_of(settings: IngestSettings) -> Limits:
    """What the consumer accepts, from its settings."""
    return Limits(
        decode=DecodeLimits(settings.max_payload_bytes, settings.max_nesting_depth),
        earliest=settings.earliest_observation_time,
        max_future=timedelta(seconds=settings.max_future_seconds),
    )


def maximum_packet_size(settings: IngestSettings) -> int:
    """The largest MQTT packet the consumer takes (bytes): a payload up to 16 MiB (or the
    payload limit, if larger) with its topic and properties."""
    return max(settings.max_payload_bytes, DEAD_LETTERED_PAYLOAD_BYTES) + PACKET_OVERHEAD


def backoff(failures: int, cap: float) -> float:
    """Seconds to wait after `failures` consecutive failures: 0.5, 1, 2, ... at most `cap`."""
    return float(min(cap, RETRY_FIRST_SECONDS * 2 ** min(failures - 1, 30)))


@dataclass(frozen=True)
class Delivery:
    """A message as the network thread hands it over; `generation` counts connections."""

    topic: str
    payload: bytes
    mid: int
    generation: int
    arrival: float
    qos: int = QOS
    serial: int = 0

    @property
    def tag(self) -> Tag:
        """What acknowledges it once stored: (connection, packet id, QoS, serial)."""
        return (self.generation, self.mid, self.qos, self.serial)


# (generation, packet id, QoS, serial number of the delivery): QoS 0 messages all have packet
# id 0, so the serial number tells them apart.
Tag = tuple[int, int, int, int]


class Inbox:
    """A FIFO of deliveries bounded by payload bytes: `put` waits while it is full (one
    message larger than the bound still passes alone)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: deque[Delivery | Reconnected] = deque()
        self._ready = threading.Condition()

    def put(
        self, item: Delivery | Reconnected, stopping: Callable[[], bool] = lambda: False
    ) -> None:
        """Append `item`, first waiting while the bytes held would pass the bound (until
        `stopping()`)."""
        size = len(item.payload) if isinstance(item, Delivery) else 0
        with self._ready:
            while self._items and self.bytes + size > self.max_bytes and not stopping():
                self._ready.wait(0.5)
            self._items.append(item)
            self.bytes += size
            self._ready.notify_all()

    def get(self, timeout: float) -> Delivery | Reconnected:
        """The oldest item; queue.Empty after `timeout` seconds without one."""
        with self._ready:
            if not self._items:
                self._ready.wait(timeout)
            if not self._items:
                raise queue.Empty
            item = self._items.popleft()
            if isinstance(item, Delivery):
                self.bytes -= len(item.payload)
            self._ready.notify_all()
            return item


@dataclass(frozen=True)
class Reconnected:
    """Marker: the connection was replaced, so what is held will be delivered again."""

    generation: int


class Consumer:
    """Consumes observation messages into windows; `run()` until `stop()`."""

    def __init__(
        self, settings: IngestSettings, store: ObjectStore, writer: WindowWriter, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.store = store
        self.writer = writer
        self.metrics = metrics
        self.buffer: WindowBuffer[Tag] = WindowBuffer(
            settings.window_seconds,
            settings.window_grace_seconds,
            settings.flush_idle_seconds,
            settings.max_pending_messages,
            settings.station_expiry_seconds,
        )
        self.limits = limits_of(settings)
        self._counts = settings.shard_counts()
        self.inbox = Inbox(INBOX_BYTES)
        self._serial = itertools.count(1)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards generation/connected against the network thread
        self._generation = 0
        self._connected = False
        self.subscribed = threading.Event()
        self.heartbeat = time.monotonic()
        self._retry_at = 0.0
        self._write_failures = 0
        # WIS2: one notification may hold many observations (and windows); it is acknowledged
        # when the last of them is written. `_holds` counts what is still held per tag,
        # `_flight` the dedupe keys of held notifications, `_seen` those of finished ones.
        self.wis2 = Wis2Intake(settings) if settings.stream_format == "wis2" else None
        self._holds: dict[Tag, int] = {}
        self._flight: dict[Tag, tuple[str, ...]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.client = self._client()

    # --- MQTT wiring (network thread) ------------------------------------------------------

    def _client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=s.client_id(),
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if s.mqtt_plaintext_login():
            log.warning(
                "INGEST_MQTT_TLS=false with INGEST_MQTT_USERNAME/INGEST_MQTT_PASSWORD set: the "
                "broker login to %s:%s crosses the network in clear",
                s.mqtt_host,
                s.mqtt_port,
            )
        if s.mqtt_username:
            password = s.mqtt_password.get_secret_value() if s.mqtt_password else None
            client.username_pw_set(s.mqtt_username, password)
        if s.mqtt_tls:
            client.tls_set(ca_certs=s.mqtt_ca_file or None, cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the connection", extra={"reason": str(reason)})
            return
        with self._lock:
            self._generation += 1
            self._connected = True
            generation = self._generation
        self.inbox.put(Reconnected(generation))
        self.metrics.broker_connected.set(1)
        log.info(
            "connected to broker",
            extra={
                "session_present": flags.session_present,
                "client_id": self.settings.client_id(),
            },
        )
        client.subscribe([(t, QOS) for t in self.settings.topics()])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error("subscription refused", extra={"reasons": failed})
            return
        self.subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        with self._lock:
            self._connected = False
        self.subscribed.clear()
        self.metrics.broker_connected.set(0)
        if not self._stop.is_set():
            log.warning("disconnected from broker; reconnecting", extra={"reason": str(reason)})

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            generation = self._generation
        self.inbox.put(
            Delivery(
                message.topic,
                bytes(message.payload),
                message.mid,
                generation,
                time.monotonic(),
                message.qos,
                next(self._serial),
            ),
            self._stop.is_set,
        )

    def _ack(self, tags: list[Tag]) -> None:
        release = []
        for tag in tags:
            held = self._holds.get(tag)
            if held is None:
                release.append(tag)
            elif held <= 1:
                del self._holds[tag]
                release.append(tag)
            else:
                self._holds[tag] = held - 1
        for tag in release:
            self._finish(tag)
        self._ack_now(release)

    def _finish(self, tag: Tag) -> None:
        """A notification is stored or dead-lettered: remember its keys as seen."""
        for key in self._flight.pop(tag, ()):
            self._seen[key] = None
            self._seen.move_to_end(key)
        while len(self._seen) > self.settings.wis2_dedupe_capacity:
            self._seen.popitem(last=False)

    def _ack_now(self, tags: list[Tag]) -> None:
        # A tag from an older connection is not acknowledged: its packet id may now name a
        # different message. The broker delivers the old one again; the write merges it.
        # QoS 0 has no packet id and nothing to acknowledge (a PUBACK for packet id 0 is a
        # protocol error: the broker closes the connection).
        with self._lock:
            current = [
                (mid, qos)
                for generation, mid, qos, _ in tags
                if generation == self._generation and self._connected and qos > 0
            ]
            for mid, qos in current:
                self.client.ack(mid, qos)
        self.metrics.messages_acknowledged.inc(len(current))

    # --- the worker ----------------------------------------------------------------------

    def connect(self) -> None:
        """Connect with a persistent session sized for the unacknowledged messages we hold."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.settings.mqtt_session_expiry_seconds
        properties.ReceiveMaximum = self.settings.max_pending_messages
        # The broker discards what is larger instead of sending it (MQTT 5 section 3.1.2.11.4).
        properties.MaximumPacketSize = maximum_packet_size(self.settings)
        self.client.connect_async(
            self.settings.require("mqtt_host"),
            self.settings.mqtt_port,
            keepalive=30,
            clean_start=False,
            properties=properties,
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Ask `run()` to write what it holds and return."""
        self._stop.set()

    @property
    def ready(self) -> bool:
        """Connected and subscribed."""
        return self.subscribed.is_set()

    def run(self) -> None:
        """Consume until `stop()`; then write every open window, acknowledge, disconnect."""
        self.connect()
        try:
            while not self._stop.is_set():
                self.heartbeat = time.monotonic()
                self._drain(timeout=0.2)
                self._write_due(time.monotonic())
            self._drain(timeout=0)
            self._write_due(float("inf"), everything=True)
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            if isinstance(event, Reconnected):
                # What is held stays held and is written: QoS 0 messages are never sent again,
                # and a QoS 1 message the broker sends again merges with its first copy.
                if self.buffer.pending:
                    log.info(
                        "connection replaced: held messages kept; the broker sends the "
                        "unacknowledged QoS 1 ones again",
                        extra={"messages": self.buffer.pending},
                    )
            else:
                self._handle(event)
            if self.buffer.pending >= self.buffer.high_water:
                return  # write before taking more

    def _handle(self, delivery: Delivery) -> None:
        """One message's boundary: it is held for its window or dead-lettered, nothing else."""
        self.metrics.messages_received.inc()
        tag = delivery.tag
        if self.wis2 is not None:
            self._handle_wis2(delivery, tag, self.wis2)
            return
        try:
            observation = parse_observation(
                delivery.payload, delivery.topic, datetime.now(UTC), self.limits
            )
            if not owns_any(observation.station, self.settings.shard_index, self._counts):
                self.metrics.messages_skipped.inc()
                self._ack([tag])
                return
            self.buffer.add(observation, tag, delivery.arrival)
        except InvalidObservation as invalid:
            self._dead_letter(delivery, invalid)
        except Exception as error:  # noqa: BLE001 - one message never stops the consumer
            log.exception("unforeseen failure on one message; dead-lettered")
            self._dead_letter(
                delivery,
                InvalidObservation("invalid", f"{type(error).__name__}: {error}"),
            )

    def _handle_wis2(self, delivery: Delivery, tag: Tag, intake: Wis2Intake) -> None:
        """One WIS2 notification: dedupe, download (transient failures retried while it stays
        unacknowledged), check, decode; its observations held for their windows."""
        try:
            notification = intake.validate(delivery.payload, self.limits)
            keys = notification.dedupe_keys()
            # Held under this connection; a copy held from an earlier one cannot be
            # acknowledged, so the copy the broker sends again is processed and held too.
            held = {k for t, ks in self._flight.items() if t[0] == delivery.generation for k in ks}
            if any(k in self._seen or k in held for k in keys):
                # Processed already (or held, and then delivered again if it is not written).
                self.metrics.messages_skipped.inc()
                self._ack_now([tag])
                return
            data = intake.fetch(notification, self._pause, self._stop.is_set)
            if data is None:
                return  # stopping while the data host fails: not acknowledged
            observations, refused = intake.decode(
                notification, data, datetime.now(UTC), self.limits, self._beat
            )
        except InvalidObservation as invalid:
            self._dead_letter(delivery, invalid)
            return
        except Exception as error:  # noqa: BLE001 - one message never stops the consumer
            log.exception("unforeseen failure on one notification; dead-lettered")
            self._dead_letter(
                delivery, InvalidObservation("invalid", f"{type(error).__name__}: {error}")
            )
            return
        if refused:
            reason = "; ".join(f"{r.where()}: {r.reason}" for r in refused)
            subsets = InvalidObservation(refused[0].code, reason)
            if not observations:
                self._dead_letter(delivery, subsets)
                return
            # The good subsets are stored; the refused ones are recorded beside, and the
            # message is acknowledged once its windows are written.
            if not self._dead_letter(delivery, subsets, ack=False, part="subsets"):
                return
        owned = [
            o for o in observations if owns_any(o.station, self.settings.shard_index, self._counts)
        ]
        self._flight[tag] = keys
        if not owned:
            self.metrics.messages_skipped.inc()
            self._ack([tag])
            return
        self._holds[tag] = len(owned)
        for observation in owned:
            self.buffer.add(observation, tag, delivery.arrival)

    def _beat(self) -> None:
        """Beat the liveness heartbeat: decoding a large file is work, not hanging."""
        self.heartbeat = time.monotonic()

    def _pause(self, seconds: float) -> None:
        """Wait (or until `stop()`), beating the liveness heartbeat: waiting is not hanging."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            left = deadline - self.heartbeat
            if left <= 0:
                return
            self._stop.wait(min(left, HEARTBEAT_SLICE_SECONDS))

    def _dead_letter(
        self, delivery: Delivery, invalid: InvalidObservation, ack: bool = True, part: str = ""
    ) -> bool:
        """Write the dead letter (retried until stored), then acknowledge unless `ack` is
        false; whether it was written. `part` tells apart a second record of one message."""
        key = dead_letter_key(
            self.settings.dead_letter_prefix,
            delivery.topic + (f"#{part}" if part else ""),
            delivery.payload,
        )
        document = dead_letter_document(
            delivery.topic, delivery.payload, invalid.code, invalid.reason, datetime.now(UTC)
        )

        def failed(state: Any) -> None:
            self.metrics.write_errors.labels("dead-letter").inc()
            log.error(
                "dead letter write failed; retrying",
                extra={
                    "key": key,
                    "attempt": state.attempt_number,
                    "error": str(state.outcome.exception()),
                },
            )

        # Never acknowledge a message that is stored nowhere: wait for the store, with capped
        # exponential backoff; the heartbeat beats meanwhile, so the pod is not restarted.
        retrying = Retrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(
                multiplier=RETRY_FIRST_SECONDS,
                min=RETRY_FIRST_SECONDS,
                max=self.settings.retry_max_seconds,
            ),
            stop=lambda state: self._stop.is_set(),
            sleep=self._pause,
            before_sleep=failed,
            reraise=True,
        )
        try:
            retrying(self.store.put, key, document, "application/json")
        except Exception:  # noqa: BLE001 - stopping while the store is down: not acknowledged
            log.warning("stopping before the dead letter was written", extra={"key": key})
            return False
        self.metrics.dead_letters.labels(invalid.code).inc()
        log.warning(
            "message rejected",
            extra={
                "topic": delivery.topic,
                "code": invalid.code,
                "reason": invalid.reason,
                "key": key,
            },
        )
        if ack:
            self._ack([delivery.tag])
        return True

    def _write_due(self, now: float, everything: bool = False) -> None:
        """Write the windows due now; the gauges follow on every path (a failed write and
        the retry backoff included), so the lag gauge tells the oldest held message's age."""
        try:
            self._write_windows(now, everything)
        finally:
            self._update_gauges()

    def _write_windows(self, now: float, everything: bool) -> None:
        if now < self._retry_at and not everything:
            return
        due = self.buffer.windows() if everything else self.buffer.due(now)
        for start in range(0, len(due), MAX_BATCH):
            entries = [self.buffer.take(w) for w in due[start : start + MAX_BATCH]]
            try:
                self.writer.write_batch([(e.window, e.observations) for e in entries])
            except Exception as error:  # noqa: BLE001 - held and retried, never the consumer's end
                for entry in entries:
                    self.buffer.restore(entry)
                self.metrics.write_errors.labels("window").inc()
                self._write_failures += 1
                wait = backoff(self._write_failures, self.settings.retry_max_seconds)
                log.error(
                    "window write failed; held and retried",
                    extra={
                        "windows": len(entries),
                        "error": f"{type(error).__name__}: {error}",
                        "retry_in_seconds": wait,
                    },
                )
                self._retry_at = time.monotonic() + wait
                return
            self._write_failures = 0
            self._ack([tag for entry in entries for tag in entry.tags])

    def _update_gauges(self) -> None:
        self.metrics.pending_messages.set(self.buffer.pending)
        self.metrics.open_windows.set(len(self.buffer))
        oldest = self.buffer.oldest_arrival()
        self.metrics.lag_seconds.set(0 if oldest is None else time.monotonic() - oldest)
