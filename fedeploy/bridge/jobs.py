"""A batch job as the federation describes it, and its state as SLURM reports it."""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

IDEMPOTENCY_PREFIX = "fedeploy-key:"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# SLURM reads these itself; letting a caller set them would change what runs, or as whom.
_RESERVED_ENV = re.compile(r"^(SLURM_|SBATCH_|SRUN_)")


class JobSpec(BaseModel):
    """One batch job: the script, where it runs, what it needs, and its idempotency key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,100}$", description="The job's name in SLURM.")
    script: str = Field(min_length=3, description="The batch script, starting with '#!'.")
    partition: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Partition; None: the bridge's default.",
    )
    time_limit_minutes: int = Field(ge=1, le=60 * 24 * 30, description="Wall-clock limit, minutes.")
    cpus: int = Field(1, ge=1, le=4096, description="CPUs for the job's one task.")
    memory_mb: int | None = Field(
        None, ge=1, description="Memory per node, MiB; None: the default."
    )
    gpus: int = Field(0, ge=0, le=64, description="GPUs for the job.")
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Environment of the script (PATH defaults to the system's).",
    )
    working_directory: str = Field(
        pattern=r"^/", description="Absolute directory the script starts in, on the cluster."
    )
    stdout: str | None = Field(
        None,
        pattern=r"^/",
        description="Absolute stdout path ('%j' is the job id); None: beside the job.",
    )
    stderr: str | None = Field(
        None, pattern=r"^/", description="Absolute stderr path; None: with stdout."
    )
    idempotency_key: str = Field(
        default_factory=lambda: uuid.uuid4().hex,
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description=(
            "Names this submission: a submit that finds a job with the key returns it instead of "
            "submitting again. Pass a stable key to survive a restart of the caller."
        ),
    )

    @field_validator("script")
    @classmethod
    def _shebang(cls, value: str) -> str:
        if not value.startswith("#!"):
            raise ValueError("script must start with an interpreter line such as '#!/bin/bash'")
        return value

    @field_validator("environment")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_NAME.match(key):
                raise ValueError(f"environment: {key!r} is not a variable name")
            if _RESERVED_ENV.match(key):
                raise ValueError(
                    f"environment: {key!r} is SLURM's own; set the job's options instead"
                )
        return value

    @model_validator(mode="after")
    def _stdout(self) -> JobSpec:
        if self.stderr is not None and self.stdout is None:
            raise ValueError("stderr is set but stdout is not: set stdout too, or neither")
        return self

    @property
    def comment(self) -> str:
        """What the job carries in SLURM's comment so that a retried submit finds it."""
        return idempotency_comment(self.idempotency_key)

    @property
    def stdout_path(self) -> str:
        return self.stdout or f"{self.working_directory.rstrip('/')}/{self.name}-%j.out"


def idempotency_comment(key: str) -> str:
    """The job comment that marks a submission with its idempotency key."""
    return f"{IDEMPOTENCY_PREFIX}{key}"


class JobState(enum.StrEnum):
    """SLURM's base job states (job_state_string in src/common/slurm_protocol_defs.c)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    COMPLETING = "COMPLETING"
    CONFIGURING = "CONFIGURING"
    REQUEUED = "REQUEUED"
    RESIZING = "RESIZING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = {
    JobState.COMPLETED,
    JobState.CANCELLED,
    JobState.FAILED,
    JobState.TIMEOUT,
    JobState.NODE_FAIL,
    JobState.PREEMPTED,
    JobState.BOOT_FAIL,
    JobState.DEADLINE,
    JobState.OUT_OF_MEMORY,
}


@dataclass(frozen=True)
class JobStatus:
    """A job as SLURM reports it: state, exit code and signal once it ended, SLURM's reason."""

    job_id: int
    name: str
    state: JobState
    exit_code: int | None
    signal: int | None
    reason: str | None
    partition: str | None
    user: str | None
    nodes: str | None
    stdout: str | None
    stderr: str | None
    idempotency_key: str | None

    @property
    def finished(self) -> bool:
        return self.state.finished

    @property
    def succeeded(self) -> bool:
        return self.state is JobState.COMPLETED and not self.exit_code

    def describe(self) -> str:
        """One line for a person: state, exit code or signal, and SLURM's reason."""
        parts = [f"job {self.job_id} ({self.name}) is {self.state.value}"]
        if self.finished and self.exit_code is not None:
            parts.append(f"exit code {self.exit_code}")
        if self.signal:
            parts.append(f"killed by signal {self.signal}")
        if self.reason:
            parts.append(f"SLURM's reason: {self.reason}")
        if self.finished and self.stdout:
            parts.append(f"output in {self.stdout}")
        return ", ".join(parts)


@dataclass(frozen=True)
class JobOutput:
    """Where a job's output went, on the cluster's file system."""

    job_id: int
    stdout: str | None
    stderr: str | None
    host: str | None


def expand_output_path(
    pattern: str | None, *, job_id: int, name: str, user: str | None, node: str | None
) -> str | None:
    """Expand sbatch's filename patterns that SLURM reports unexpanded (%j %x %u %N %%)."""
    if not pattern:
        return None
    values = {
        "j": str(job_id),
        "A": str(job_id),
        "x": name,
        "u": user or "%u",
        "N": node or "%N",
        "%": "%",
    }
    return re.sub(r"%([jAxuN%])", lambda m: values[m.group(1)], pattern)
