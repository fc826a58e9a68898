"""Hand an InferenceJob to the SLURM bridge client (fedeploy.bridge), the one adapter to it."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from fedeploy_inference.bridge_probe import BridgeMetrics
from fedeploy_inference.settings import InferenceSettings
from fedeploy_inference.slurm_jobs import InferenceJob

LOG = logging.getLogger("fedeploy_inference.bridge_submit")
PUSH_JOB = "fedeploy-bridge-submit"


def to_bridge_spec(job: InferenceJob) -> Any:
    """The bridge's JobSpec for the job. The bridge runs one node per job: a multi-node job is
    refused here rather than silently shrunk.

    Raises ValueError naming the job and each field the JobSpec refuses, never a value: the
    environment holds storage credentials (`submit --pass-storage-credentials`), and pydantic's
    own message repeats its input."""
    from pydantic import ValidationError

    from fedeploy.bridge.jobs import JobSpec

    if job.nodes != 1:
        raise ValueError(
            f"job {job.name}: nodes={job.nodes} given; the bridge's JobSpec runs one node "
            "(use several GPUs on one node)"
        )
    try:
        return JobSpec(
            name=job.name,
            script=job.script,
            partition=job.partition or None,
            time_limit_minutes=job.time_limit_minutes,
            cpus=job.cpus,
            memory_mb=job.memory_mb,
            gpus=job.gpus,
            environment=dict(job.environment),
            working_directory=job.working_directory,
            idempotency_key=job.idempotency_key,
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'job'}: "
            f"{str(e['msg']).removeprefix('Value error, ')}"
            for e in error.errors(include_input=False, include_url=False)
        )
        raise ValueError(f"job {job.name}: {problems}") from None


def bridge_token(settings: InferenceSettings) -> str:
    """The bridge token: read from INFER_BRIDGE_TOKEN_FILE now (the kubelet swaps a mounted
    Secret's files in place when the Secret changes), else INFER_BRIDGE_TOKEN."""
    if settings.bridge_token_file:
        return _read("INFER_BRIDGE_TOKEN_FILE", settings.bridge_token_file, "the token")
    return settings.bridge_token.get_secret_value()


def bridge_user(settings: InferenceSettings) -> str:
    """The user the token belongs to: read from INFER_BRIDGE_USER_FILE now (a rotated Secret
    may name another account with its new token), else INFER_BRIDGE_USER."""
    if settings.bridge_user_file:
        return _read("INFER_BRIDGE_USER_FILE", settings.bridge_user_file, "the user")
    return settings.bridge_user


def _read(variable: str, path: str, what: str) -> str:
    """A mounted Secret file's text; ValueError naming the variable and file, never content."""
    try:
        return Path(path).read_text().strip()
    except OSError as error:
        raise ValueError(f"{variable} {path}: cannot read {what} ({error.strerror})") from None


def bridge_client(settings: InferenceSettings, transport: Any = None, **options: Any) -> Any:
    """A bridge client from INFER_BRIDGE_URL, the user and the token (both read now) and
    _CA_FILE; `options` go to BridgeClient (timeout, retries...)."""
    from fedeploy.bridge.client import BridgeClient

    token = bridge_token(settings)
    user = bridge_user(settings)
    missing = [
        name
        for name, value in (
            ("INFER_BRIDGE_URL", settings.bridge_url),
            ("INFER_BRIDGE_USER_FILE or INFER_BRIDGE_USER", user),
            ("INFER_BRIDGE_TOKEN_FILE or INFER_BRIDGE_TOKEN", token),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"submitting to SLURM needs {', '.join(missing)}")
    return BridgeClient(
        settings.bridge_url,
        user,
        token,
        ca_file=settings.bridge_ca_file or None,
        transport=transport,
        **options,
    )


def submit_recorded(bridge: Any, job: InferenceJob, metrics: BridgeMetrics | None = None) -> int:
    """Submit `job` through `bridge` and record the outcome in `metrics` (default: this
    process's), pushing it to INFER_PUSHGATEWAY_URL where set (a one-shot submitter, such as
    the retrain CronJob); the job id. The error of a failed submission is raised as it was."""
    metrics = metrics or process_metrics()
    try:
        job_id = int(bridge.submit(to_bridge_spec(job)))
    except Exception:
        metrics.submitted(False)
        _push(metrics)
        raise
    metrics.submitted(True)
    _push(metrics)
    return job_id


_PROCESS_METRICS: list[BridgeMetrics] = []


def process_metrics() -> BridgeMetrics:
    """This process's bridge metrics (made on first use)."""
    if not _PROCESS_METRICS:
        _PROCESS_METRICS.append(BridgeMetrics())
    return _PROCESS_METRICS[0]


def _push(metrics: BridgeMetrics) -> None:
    """Push the submission series to INFER_PUSHGATEWAY_URL (group job=fedeploy-bridge-submit,
    site=INFER_SITE); a failed push is logged and never fails the submission."""
    url = os.environ.get("INFER_PUSHGATEWAY_URL", "")
    if not url:
        return
    from prometheus_client import pushadd_to_gateway

    group = {"site": os.environ.get("INFER_SITE", "")}
    try:
        pushadd_to_gateway(
            url, job=PUSH_JOB, registry=metrics.registry, grouping_key=group, timeout=10
        )
    except Exception as error:  # noqa: BLE001 - monitoring never fails the submission
        LOG.warning("could not push the submission's outcome to %s: %s", url, error)


class Submitter:
    """Submits jobs for a long-running process: a fresh client, and so the current token, for
    every submission."""

    def __init__(
        self,
        settings: InferenceSettings,
        transport: Any = None,
        metrics: BridgeMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._transport = transport
        self.metrics = metrics or process_metrics()

    def submit(self, job: InferenceJob) -> str:
        """Submit one job; its SLURM job id. Counted in `metrics` by outcome (a client that
        cannot be made, for want of a token, say, counts as a failure)."""
        try:
            bridge = bridge_client(self._settings, self._transport)
        except Exception:
            self.metrics.submitted(False)
            raise
        with bridge:
            return str(submit_recorded(bridge, job, self.metrics))
