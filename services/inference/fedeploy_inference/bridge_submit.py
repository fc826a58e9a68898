"""Hand an InferenceJob to the SLURM bridge client (fedeploy.bridge), the one adapter to it."""

from __future__ import annotations

from typing import Any

from fedeploy_inference.settings import InferenceSettings
from fedeploy_inference.slurm_jobs import InferenceJob


def to_bridge_spec(job: InferenceJob) -> Any:
    """The bridge's JobSpec for the job. The bridge runs one node per job: a multi-node job is
    refused here rather than silently shrunk."""
    from fedeploy.bridge.jobs import JobSpec

    if job.nodes != 1:
        raise ValueError(
            f"job {job.name}: nodes={job.nodes} given; the bridge's JobSpec runs one node "
            "(use several GPUs on one node)"
        )
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


def bridge_client(settings: InferenceSettings) -> Any:
    """A bridge client from INFER_BRIDGE_URL, _USER, _TOKEN (and _CA_FILE)."""
    from fedeploy.bridge.client import BridgeClient

    missing = [
        name
        for name, value in (
            ("INFER_BRIDGE_URL", settings.bridge_url),
            ("INFER_BRIDGE_USER", settings.bridge_user),
            ("INFER_BRIDGE_TOKEN", settings.bridge_token.get_secret_value()),
        )
        if not value
    ]
    if missing:
        raise ValueError(f"submitting to SLURM needs {', '.join(missing)}")
    return BridgeClient(
        settings.bridge_url,
        settings.bridge_user,
        settings.bridge_token.get_secret_value(),
        ca_file=settings.bridge_ca_file or None,
    )
