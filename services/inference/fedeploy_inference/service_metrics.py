"""Prometheus metrics of the server, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536)


class ServiceMetrics:
    """The server's metrics: request latency, batch size, model version, loads, rejections."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "fedeploy_inference_request_duration_seconds",
            "Time to answer a prediction request, by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "fedeploy_inference_batch_size",
            "Forecasts computed per model call.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "fedeploy_inference_predictions",
            "Station forecasts answered.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "fedeploy_inference_rejected_requests",
            "Prediction requests refused or failed, by reason (invalid, not_ready, too_large, busy, "
            "timeout: a body not received in time, error).",
            ["reason"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "fedeploy_inference_model_info",
            "The model being served (value 1), by name, version and device.",
            ["name", "version", "device"],
            registry=self.registry,
        )
        self.model_loads = Counter(
            "fedeploy_inference_model_loads",
            "Attempts to load a model version, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "fedeploy_inference_ready", "1 once a model is loaded.", registry=self.registry
        )

    def serving(self, name: str, version: str, device: str) -> None:
        """Record that this version now answers (and no other)."""
        self.model_info.clear()
        self.model_info.labels(name=name, version=version, device=device).set(1)
        self.ready.set(1)
