"""Probes the site's SLURM bridge on an interval and serves what it found as Prometheus metrics.

`python -m fedeploy_inference.bridge_probe` is the inference chart's bridge-probe Deployment:
every `--interval` seconds it asks the bridge (slurmrestd behind its TLS proxy) whether it works,
with the site's user and token read from their mounted files at each probe (a rotated Secret
reaches the next probe), and serves on `--port` /metrics:

- fedeploy_bridge_up: 1 when the last probe succeeded, else 0;
- fedeploy_bridge_probe_duration_seconds: how long the last probe took;
- fedeploy_bridge_last_success_timestamp_seconds: Unix time of the last successful probe;
- fedeploy_bridge_probes_total{outcome}: probes by outcome (ok, unreachable, controller_down,
  auth, error).

Submissions through the bridge (bridge_submit) add fedeploy_bridge_submissions_total{outcome}
and fedeploy_bridge_last_submission_timestamp_seconds{outcome} (success or failure).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from fedeploy_inference.settings import InferenceSettings

LOG = logging.getLogger("fedeploy_inference.bridge_probe")
OUTCOMES = ("ok", "unreachable", "controller_down", "auth", "error")
SUBMISSION_OUTCOMES = ("success", "failure")


class BridgeMetrics:
    """The bridge's health as one process sees it, in a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.up = Gauge(
            "fedeploy_bridge_up",
            "1 when the last probe of the SLURM bridge succeeded (slurmrestd answered and "
            "reached its controller with the site's token), else 0.",
            registry=self.registry,
        )
        self.duration = Gauge(
            "fedeploy_bridge_probe_duration_seconds",
            "How long the last probe of the SLURM bridge took, in seconds.",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "fedeploy_bridge_last_success_timestamp_seconds",
            "Unix time of the last successful probe of the SLURM bridge (0: none yet).",
            registry=self.registry,
        )
        self.probes = Counter(
            "fedeploy_bridge_probes",
            "Probes of the SLURM bridge, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.submissions = Counter(
            "fedeploy_bridge_submissions",
            "Jobs submitted to SLURM through the bridge, by outcome (success, failure).",
            ["outcome"],
            registry=self.registry,
        )
        self.last_submission = Gauge(
            "fedeploy_bridge_last_submission_timestamp_seconds",
            "Unix time of the last submission through the bridge, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.probes.labels(outcome=outcome)
        for outcome in SUBMISSION_OUTCOMES:
            self.submissions.labels(outcome=outcome)

    def submitted(self, ok: bool, now: float | None = None) -> None:
        """Count one submission and stamp its time, by outcome."""
        outcome = "success" if ok else "failure"
        self.submissions.labels(outcome=outcome).inc()
        self.last_submission.labels(outcome=outcome).set(time.time() if now is None else now)


def outcome_of(error: BaseException) -> str:
    """The probe outcome an error of the bridge client stands for (one of OUTCOMES)."""
    from fedeploy.bridge.errors import BridgeAuthError, BridgeUnreachable, ControllerUnreachable

    if isinstance(error, BridgeAuthError):
        return "auth"
    if isinstance(error, ControllerUnreachable):
        return "controller_down"
    if isinstance(error, BridgeUnreachable):
        return "unreachable"
    return "error"


# The most of one slurmrestd answer the probe reads (MiB). Its answers are small (ping, the
# token check; the largest, the OpenAPI document the client chooses its API version from); it
# reads them streaming and stops past this, so a huge answer is an `error`, not an OOM kill of
# its 128Mi container.
PROBE_MAX_ANSWER_MIB = 4


def probe_once(
    settings: InferenceSettings,
    metrics: BridgeMetrics,
    *,
    timeout: float = 10.0,
    transport: Any = None,
    clock: Callable[[], float] = time.time,
) -> str:
    """Probe the bridge once (its token check and slurmrestd's ping) and record the outcome;
    the outcome (one of OUTCOMES). Never raises: a failure of any kind is recorded as down and
    logged with the client's message (which never holds the token)."""
    from fedeploy_inference.bridge_submit import bridge_client

    started = time.perf_counter()
    try:
        with bridge_client(
            settings,
            transport,
            timeout=timeout,
            connect_timeout=min(timeout, 5.0),
            retries=0,
            max_answer_mib=PROBE_MAX_ANSWER_MIB,
        ) as bridge:
            bridge.ping()
        outcome = "ok"
    except Exception as error:  # noqa: BLE001 - every failure is the bridge being down to us
        outcome = outcome_of(error)
        LOG.warning("bridge probe failed (%s): %s", outcome, error)
    metrics.duration.set(time.perf_counter() - started)
    metrics.probes.labels(outcome=outcome).inc()
    metrics.up.set(1 if outcome == "ok" else 0)
    if outcome == "ok":
        metrics.last_success.set(clock())
    return outcome


def run(
    settings: InferenceSettings,
    metrics: BridgeMetrics,
    interval: float,
    timeout: float,
    stop: threading.Event,
) -> None:
    """Probe every `interval` seconds until `stop` is set (the first probe at once)."""
    while not stop.is_set():
        probe_once(settings, metrics, timeout=timeout)
        stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    """Serve the probe's metrics on --address:--port and probe until killed."""
    from prometheus_client import start_http_server

    parser = argparse.ArgumentParser(
        prog="python -m fedeploy_inference.bridge_probe",
        description="Probe the SLURM bridge (INFER_BRIDGE_*) and serve the outcome as metrics.",
    )
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between probes")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a probe may take")
    parser.add_argument("--address", default="0.0.0.0", help="address /metrics listens on")
    parser.add_argument("--port", type=int, default=8080, help="port /metrics listens on")
    args = parser.parse_args(argv)
    if not (args.interval > 0 and args.timeout > 0):
        parser.error("--interval and --timeout must be above 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = InferenceSettings()
    if not settings.bridge_url:
        print("bridge probe: INFER_BRIDGE_URL is not set", file=sys.stderr)
        return 2
    metrics = BridgeMetrics()
    start_http_server(args.port, addr=args.address, registry=metrics.registry)
    run(settings, metrics, args.interval, args.timeout, threading.Event())
    return 0


if __name__ == "__main__":
    sys.exit(main())
