"""SLURM jobs for training and batch prediction, built as plain data (no I/O here).

One GPU or none: `srun` runs one process. Several GPUs or nodes: `srun` starts one `torchrun`
per node, which starts one process per GPU; ranks meet at the first node of the allocation
(c10d rendezvous), and training wraps the model in DistributedDataParallel. The environment a
job gets is explicit: the non-secret INFER_ settings plus what the caller adds (storage
credentials); the bridge token never goes into a job.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fedeploy_inference.settings import InferenceSettings

RENDEZVOUS_PORT = 29500
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# Settings a job needs to reach storage, the catalog and the model; the bridge's are left out.
JOB_SETTINGS = (
    "s3_endpoint_url",
    "s3_region",
    "bucket",
    "model_name",
    "model_version",
    "device",
    "catalog_url",
    "sentinel_collection",
    "forecast_collection",
)


@dataclass(frozen=True)
class JobResources:
    """What a job asks SLURM for."""

    partition: str = ""
    time_limit_minutes: int = 60
    nodes: int = 1
    cpus: int = 4
    memory_mb: int = 8192
    gpus: int = 0
    processes_per_node: int = 0

    def __post_init__(self) -> None:
        checks = {
            "time_limit_minutes": self.time_limit_minutes >= 1,
            "nodes": self.nodes >= 1,
            "cpus": self.cpus >= 1,
            "memory_mb": self.memory_mb >= 128,
            "gpus": self.gpus >= 0,
            "processes_per_node": self.processes_per_node >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"JobResources.{name}: {getattr(self, name)} given; see the field's minimum"
                )

    @property
    def ranks_per_node(self) -> int:
        """Processes per node: one per GPU, or as asked (CPU data parallelism), else one."""
        return self.processes_per_node or self.gpus or 1


@dataclass(frozen=True)
class InferenceJob:
    """A job ready for the bridge client (`to_bridge_spec` maps it onto its JobSpec)."""

    name: str
    script: str
    partition: str
    time_limit_minutes: int
    nodes: int
    cpus: int
    memory_mb: int
    gpus: int
    environment: Mapping[str, str] = field(default_factory=dict)
    working_directory: str = "/tmp"
    idempotency_key: str = ""


def job_environment(
    settings: InferenceSettings, extra: Mapping[str, str] | None = None, path: str = DEFAULT_PATH
) -> dict[str, str]:
    """INFER_ variables for the job's settings, PATH, then the caller's additions."""
    env = {"PATH": path}
    for name in JOB_SETTINGS:
        value = getattr(settings, name)
        if value not in ("", None):
            env[f"INFER_{name.upper()}"] = str(value)
    env.update(extra or {})
    return env


def launch_command(resources: JobResources, python: str, arguments: Sequence[str]) -> str:
    """The script line that runs `python -m fedeploy_inference <arguments>` on the allocation."""
    args = " ".join(shlex.quote(a) for a in arguments)
    if resources.nodes == 1 and resources.ranks_per_node == 1:
        return f"srun --ntasks=1 {shlex.quote(python)} -m fedeploy_inference {args}"
    return (
        'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
        f"srun --ntasks-per-node=1 {shlex.quote(python)} -m torch.distributed.run "
        f'--nnodes="$SLURM_NNODES" --nproc-per-node={resources.ranks_per_node} '
        f'--rdzv-backend=c10d --rdzv-endpoint="$head:{RENDEZVOUS_PORT}" '
        f'--rdzv-id="$SLURM_JOB_ID" -m fedeploy_inference {args}'
    )


def _script(command: str) -> str:
    return f"#!/bin/bash\nset -euo pipefail\n{command}\n"


def _key(kind: str, script: str, env: Mapping[str, str], salt: str, secret: set[str]) -> str:
    # Secret values never enter the key: it is visible to whoever can list jobs.
    visible = sorted((k, v) for k, v in env.items() if k not in secret)
    digest = hashlib.sha256(repr((kind, script, visible, salt)).encode()).hexdigest()[:24]
    return f"fedeploy-infer-{kind}-{digest}"


def _job(
    kind: str,
    settings: InferenceSettings,
    resources: JobResources,
    arguments: Sequence[str],
    python: str,
    working_directory: str,
    extra_environment: Mapping[str, str] | None,
    secret_names: set[str],
    salt: str,
) -> InferenceJob:
    env = job_environment(settings, extra_environment)
    script = _script(launch_command(resources, python, arguments))
    return InferenceJob(
        name=f"{settings.model_name}-{kind}",
        script=script,
        partition=resources.partition or settings.bridge_partition,
        time_limit_minutes=resources.time_limit_minutes,
        nodes=resources.nodes,
        cpus=resources.cpus,
        memory_mb=resources.memory_mb,
        gpus=resources.gpus,
        environment=env,
        working_directory=working_directory,
        idempotency_key=_key(kind, script, env, salt, secret_names),
    )


def training_job(
    settings: InferenceSettings,
    resources: JobResources,
    train_arguments: Sequence[str] = (),
    python: str = "python3",
    working_directory: str = "/tmp",
    extra_environment: Mapping[str, str] | None = None,
    secret_names: Sequence[str] = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
    salt: str = "",
) -> InferenceJob:
    """A job that trains and publishes a new version (`fedeploy-infer train ...`)."""
    return _job(
        "train",
        settings,
        resources,
        ["train", *train_arguments],
        python,
        working_directory,
        extra_environment,
        set(secret_names),
        salt,
    )


def batch_job(
    settings: InferenceSettings,
    resources: JobResources,
    bbox: tuple[float, float, float, float],
    start: str,
    end: str,
    python: str = "python3",
    working_directory: str = "/tmp",
    extra_environment: Mapping[str, str] | None = None,
    secret_names: Sequence[str] = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
) -> InferenceJob:
    """A job that runs one batch prediction (`fedeploy-infer batch ...`); one process: the
    run is I/O bound and its identity makes a retry rewrite the same result."""
    if resources.nodes != 1 or resources.ranks_per_node != 1:
        raise ValueError(
            f"batch_job: nodes={resources.nodes}, ranks per node={resources.ranks_per_node} "
            "given; a batch run is one process (nodes=1, at most one GPU)"
        )
    arguments = [
        "batch",
        "--bbox",
        ",".join(f"{x:g}" for x in bbox),
        "--start",
        start,
        "--end",
        end,
    ]
    return _job(
        "batch",
        settings,
        resources,
        arguments,
        python,
        working_directory,
        extra_environment,
        set(secret_names),
        "",
    )
