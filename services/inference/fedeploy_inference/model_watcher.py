"""Keeps the served model current: loads the configured version at start, then polls for a
newer one (when following `latest`) and swaps it in once it is fully loaded."""

from __future__ import annotations

import logging
import threading
from typing import Any

import torch

from fedeploy_inference.registry import LoadedModel, load_model, resolve_version
from fedeploy_inference.service_metrics import ServiceMetrics

log = logging.getLogger(__name__)


class ModelWatcher:
    """Holds the current model; `check` loads a new version if there is one."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        name: str,
        requested: str,
        device: torch.device,
        metrics: ServiceMetrics,
        poll_seconds: float,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._name = name
        self._requested = requested
        self._device = device
        self._metrics = metrics
        self._poll = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: LoadedModel | None = None
        self.last_error: str | None = "no model loaded yet"

    def check(self) -> bool:
        """Load the version the settings point at if it differs from the current one."""
        version = resolve_version(self._client, self._bucket, self._name, self._requested)
        if self.current is not None and self.current.version == version:
            return False
        loaded = load_model(self._client, self._bucket, self._name, version, self._device)
        self.current = loaded  # one reference swap: requests see the old or the new model
        self.last_error = None
        self._metrics.model_loads.labels(outcome="success").inc()
        self._metrics.serving(self._name, version, str(self._device))
        log.info("serving %s/%s on %s", self._name, version, self._device)
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            pinned_and_loaded = self._requested != "latest" and self.current is not None
            if not pinned_and_loaded:
                try:
                    self.check()
                except Exception as error:  # keep serving the old model; report why
                    self.last_error = f"{type(error).__name__}: {error}"
                    self._metrics.model_loads.labels(outcome="failure").inc()
                    log.warning("model check failed: %s", self.last_error)
            self._stop.wait(self._poll)

    def start(self) -> None:
        """Begin loading and polling in a background thread."""
        self._thread = threading.Thread(target=self._loop, name="model-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
