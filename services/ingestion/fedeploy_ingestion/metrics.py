"""Prometheus metrics of the service, in a registry of their own (one per running command)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    """Counters and gauges for items, bytes, messages, dead letters and lag."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.items_written = Counter(
            "ingest_items_written", "STAC items written", ["kind"], registry=r
        )
        self.bytes_written = Counter(
            "ingest_bytes_written", "Bytes written to object storage", ["kind"], registry=r
        )
        self.messages_received = Counter(
            "ingest_messages_received", "MQTT messages received", registry=r
        )
        self.messages_acknowledged = Counter(
            "ingest_messages_acknowledged",
            "MQTT messages acknowledged after their write",
            registry=r,
        )
        self.messages_skipped = Counter(
            "ingest_messages_skipped", "Messages for stations of another shard", registry=r
        )
        self.dead_letters = Counter(
            "ingest_dead_letters", "Rejected messages, by reason", ["reason"], registry=r
        )
        self.write_errors = Counter(
            "ingest_write_errors", "Failed writes (retried)", ["target"], registry=r
        )
        self.pending_messages = Gauge(
            "ingest_pending_messages", "Messages received and not yet acknowledged", registry=r
        )
        self.open_windows = Gauge("ingest_open_windows", "Windows held in memory", registry=r)
        self.lag_seconds = Gauge(
            "ingest_lag_seconds",
            "Age of the oldest message received and not yet acknowledged",
            registry=r,
        )
        self.broker_connected = Gauge(
            "ingest_broker_connected", "1 while connected to the broker", registry=r
        )
        self.copy_failures = Counter(
            "ingest_copy_failures",
            "Product copies that failed (Sentinel, ECMWF, EUMETSAT, Polytope items), by source",
            ["source"],
            registry=r,
        )
        self.sites_unreachable = Gauge(
            "ingest_harvest_site_unreachable",
            "1 when the last harvest could not reach the site",
            ["site"],
            registry=r,
        )
