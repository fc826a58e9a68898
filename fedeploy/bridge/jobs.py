"""A batch job as the federation describes it, and its state as SLURM reports it."""

from __future__ import annotations

import enum
import hashlib
import posixpath
import re
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fedeploy.bridge.directives import directive_fields

IDEMPOTENCY_PREFIX = "fedeploy-key:"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# SLURM reads these itself; letting a caller set them would change what runs, or as whom.
_RESERVED_ENV = re.compile(r"^(SLURM_|SBATCH_|SRUN_)")


class JobSpec(BaseModel):
    """One batch job: the script, where it runs, what it needs, and its idempotency key.

    The script's `#SBATCH` lines fill the fields they stand for (see
    `fedeploy.bridge.directives.SUPPORTED`); a field given here and set differently by a
    line, or a line the bridge cannot honour, is refused with the line's number."""

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
        None,
        ge=1,
        le=2**32,
        description="Memory per node, MiB (at most 2^32 MiB, 4 PiB); None: the default.",
    )
    gpus: int = Field(0, ge=0, le=64, description="GPUs for the job.")
    account: str | None = Field(
        None, pattern=r"^[A-Za-z0-9._-]{1,64}$", description="SLURM account; None: the user's."
    )
    qos: str | None = Field(
        None, pattern=r"^[A-Za-z0-9._-]{1,64}$", description="Quality of service; None: default."
    )
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

    @model_validator(mode="before")
    @classmethod
    def _directives(cls, data: Any) -> Any:
        """Fill fields from the script's #SBATCH lines; refuse a line that contradicts a field."""
        if not isinstance(data, dict) or not isinstance(data.get("script"), str):
            return data
        merged = dict(data)
        for field, (value, directive) in directive_fields(data["script"]).items():
            given = data.get(field)
            if given is not None and given != value:
                raise ValueError(
                    f"{directive.where()} sets {field}={value!r} but the job spec gives "
                    f"{field}={given!r}: keep one"
                )
            merged[field] = value
        workdir = merged.get("working_directory")
        for field in ("stdout", "stderr"):
            path = merged.get(field)
            if isinstance(path, str) and not path.startswith("/") and isinstance(workdir, str):
                merged[field] = posixpath.join(workdir, path)  # as sbatch: relative to -D
        return merged

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
    def slurm_name(self) -> str:
        """The job's name in SLURM: the name and a digest of the key. The controller keeps
        one live job per name and user (the `singleton` dependency), so one per key."""
        return f"{self.name}.k{key_digest(self.idempotency_key)}"

    @property
    def stdout_path(self) -> str:
        return self.stdout or f"{self.working_directory.rstrip('/')}/{self.name}-%j.out"


def key_digest(key: str) -> str:
    """12 hex digits naming an idempotency key in the job's SLURM name."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def display_name(slurm_name: str, key: str | None) -> str:
    """The job's name as its submitter gave it: SLURM's name without the key's digest."""
    suffix = f".k{key_digest(key)}" if key else None
    return slurm_name.removesuffix(suffix) if suffix and slurm_name.endswith(suffix) else slurm_name


def idempotency_comment(key: str) -> str:
    """The job comment that marks a submission with its idempotency key."""
    return f"{IDEMPOTENCY_PREFIX}{key}"


class JobState(enum.StrEnum):
    """What SLURM says a job is doing: its base states and the state flags that
    `job_state_string` (src/common/slurm_protocol_defs.c) reports in their place, plus
    UNKNOWN for a word this client does not know (a newer SLURM's): never an error."""

    # Base states (JOB_STATE_BASE).
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    # Flags, shown instead of the base state while they are set.
    COMPLETING = "COMPLETING"
    CONFIGURING = "CONFIGURING"
    RESIZING = "RESIZING"
    REQUEUED = "REQUEUED"
    REQUEUE_FED = "REQUEUE_FED"
    REQUEUE_HOLD = "REQUEUE_HOLD"
    SPECIAL_EXIT = "SPECIAL_EXIT"
    STOPPED = "STOPPED"
    REVOKED = "REVOKED"
    RESV_DEL_HOLD = "RESV_DEL_HOLD"
    SIGNALING = "SIGNALING"
    STAGE_OUT = "STAGE_OUT"
    UPDATE_DB = "UPDATE_DB"
    POWER_UP_NODE = "POWER_UP_NODE"
    LAUNCH_FAILED = "LAUNCH_FAILED"
    RECONFIG_FAIL = "RECONFIG_FAIL"
    UNKNOWN = "UNKNOWN"

    @property
    def finished(self) -> bool:
        """The job has ended and will not run again by itself (its exit code is final)."""
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
    # A federated sibling revoked here: the job runs (or ran) on another cluster.
    JobState.REVOKED,
}
# When several words come (a list from a newer slurmrestd, "CANCELLED by 0" from sacct),
# the flag wins over the base state, in job_state_string's order: the flag is what holds
# the job back (a COMPLETING job's exit code is not final yet).
_FLAG_ORDER = (
    JobState.COMPLETING,
    JobState.STAGE_OUT,
    JobState.CONFIGURING,
    JobState.RESIZING,
    JobState.REQUEUED,
    JobState.REQUEUE_FED,
    JobState.REQUEUE_HOLD,
    JobState.SPECIAL_EXIT,
    JobState.STOPPED,
    JobState.REVOKED,
    JobState.RESV_DEL_HOLD,
    JobState.SIGNALING,
    JobState.POWER_UP_NODE,
    JobState.LAUNCH_FAILED,
    JobState.RECONFIG_FAIL,
    JobState.UPDATE_DB,
)
_KNOWN = {s.value: s for s in JobState if s is not JobState.UNKNOWN}


def parse_state(raw: object) -> tuple[JobState, str]:
    """(state, SLURM's words) for a `job_state` as any slurmrestd sends it: a string such as
    "RUNNING" or "CANCELLED by 0", or a list of words (v0.0.39 and later). Words this client
    does not know give UNKNOWN with the raw words kept; nothing here raises."""
    if isinstance(raw, str):
        words = re.split(r"[\s,+|]+", raw.strip())
    elif isinstance(raw, (list, tuple)):
        words = [str(w).strip() for w in raw]
    else:
        words = []
    words = [w for w in words if w]
    text = " ".join(words) if words else ("missing" if raw is None else repr(raw)[:60])
    known = [_KNOWN[w.upper()] for w in words if w.upper() in _KNOWN]
    if not known:
        return JobState.UNKNOWN, text
    for flag in _FLAG_ORDER:
        if flag in known:
            return flag, text
    return known[0], text


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
    raw_state: str = ""
    reason_code: str | None = None  # SLURM's state_reason alone: "Priority", "PartitionTimeLimit"

    @property
    def finished(self) -> bool:
        return self.state.finished

    @property
    def state_text(self) -> str:
        """The state for a person: its name, or "unknown (<SLURM's words>)"."""
        if self.state is JobState.UNKNOWN:
            return f"unknown ({self.raw_state or 'no state'})"
        return self.state.value

    @property
    def succeeded(self) -> bool:
        return self.state is JobState.COMPLETED and not self.exit_code

    def describe(self) -> str:
        """One line for a person: state, exit code or signal, and SLURM's reason."""
        parts = [f"job {self.job_id} ({self.name}) is {self.state_text}"]
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
