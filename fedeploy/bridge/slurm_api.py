"""The one place that knows slurmrestd's OpenAPI: paths, the submission body, the job record.

Slurm 22.05 serves v0.0.36 to v0.0.38; v0.0.38 is the one verified against a real
slurmrestd (tests/integration/slurm). Later versions change shapes (from v0.0.40 the
environment is a list of "K=V" strings): support for one is a new adapter here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fedeploy.bridge.errors import BridgeProtocolError
from fedeploy.bridge.jobs import (
    IDEMPOTENCY_PREFIX,
    JobSpec,
    JobState,
    JobStatus,
    expand_output_path,
)

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

# SLURM's error numbers (slurm_errno.h) that the client tells apart.
INVALID_PARTITION = 2000
INVALID_JOB_ID = 2017
CONTROLLER_UNREACHABLE = (1800, 1801, 1007)  # connect failure; send/receive failure
ZERO_BYTES = 5005  # the controller closed the connection: how it refuses a token
UNSPECIFIED = -1


@dataclass(frozen=True)
class SlurmError:
    """One entry of a response's `errors`."""

    number: int | None
    message: str

    def __str__(self) -> str:
        return (
            f"{self.message} (SLURM error {self.number})"
            if self.number is not None
            else self.message
        )


class SlurmRestV0038:
    """slurmrestd's openapi/v0.0.38 (Slurm 22.05)."""

    version = "v0.0.38"

    def __init__(self) -> None:
        self.base = f"/slurm/{self.version}"

    # -- paths ---------------------------------------------------------------------------------
    @property
    def ping_path(self) -> str:
        return f"{self.base}/ping"

    @property
    def submit_path(self) -> str:
        return f"{self.base}/job/submit"

    @property
    def jobs_path(self) -> str:
        return f"{self.base}/jobs"

    def job_path(self, job_id: int) -> str:
        return f"{self.base}/job/{int(job_id)}"

    # -- requests ------------------------------------------------------------------------------
    def submission(self, spec: JobSpec, *, partition: str | None) -> dict[str, Any]:
        """The body of POST job/submit: sbatch's options for the spec (no partition: SLURM's default)."""
        environment = {"PATH": DEFAULT_PATH, **spec.environment}
        job: dict[str, Any] = {
            "name": spec.name,
            "comment": spec.comment,
            "time_limit": spec.time_limit_minutes,
            "tasks": 1,
            "cpus_per_task": spec.cpus,
            "current_working_directory": spec.working_directory,
            "environment": environment,
            "standard_output": spec.stdout_path,
            # A job never requeues on its own: a second run would surprise whoever waits.
            "requeue": False,
        }
        if partition is not None:
            job["partition"] = partition
        if spec.stderr:
            job["standard_error"] = spec.stderr
        if spec.memory_mb is not None:
            job["memory_per_node"] = spec.memory_mb
        if spec.gpus:
            job["gpus"] = str(spec.gpus)
        return {"script": spec.script, "job": job}

    # -- responses ------------------------------------------------------------------------------
    def errors(self, body: Any) -> list[SlurmError]:
        """The `errors` of a response; its entries name the number `error_number`,
        `error_code` or `errno` depending on the endpoint."""
        if not isinstance(body, dict):
            return []
        found = []
        for entry in body.get("errors") or []:
            if not isinstance(entry, dict):
                continue
            number = next(
                (
                    entry[k]
                    for k in ("error_number", "error_code", "errno")
                    if isinstance(entry.get(k), int)
                ),
                None,
            )
            text = entry.get("description") or entry.get("error") or "no description"
            found.append(SlurmError(number, str(text)))
        return found

    def submitted_job_id(self, body: Any) -> int:
        job_id = body.get("job_id") if isinstance(body, dict) else None
        if not isinstance(job_id, int):
            raise BridgeProtocolError(
                f"slurmrestd {self.version}: a submission answer without job_id: {body!r:.300}"
            )
        return job_id

    def jobs(self, body: Any) -> list[JobStatus]:
        records = body.get("jobs") if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise BridgeProtocolError(
                f"slurmrestd {self.version}: an answer without 'jobs': {body!r:.300}"
            )
        return [self.job(record) for record in records]

    def job(self, record: dict[str, Any]) -> JobStatus:
        """A job record of GET job/{id} or GET jobs."""
        try:
            job_id = int(record["job_id"])
            raw_state = str(record["job_state"])
        except (KeyError, TypeError, ValueError):
            raise BridgeProtocolError(
                f"slurmrestd {self.version}: a job record without id or state"
            ) from None
        try:
            state = JobState(raw_state.split()[0])
        except ValueError:
            raise BridgeProtocolError(
                f"slurmrestd {self.version}: unknown job state {raw_state!r}"
            ) from None
        exit_code, signal = _exit_status(record.get("exit_code"))
        name = str(record.get("name") or "")
        # A uid SLURM cannot name (a token for an unknown user runs as uid 99) stays visible.
        uid = record.get("user_id")
        user = record.get("user_name") or (f"uid {uid}" if isinstance(uid, int) else None)
        node = record.get("batch_host") or None
        comment = str(record.get("comment") or "")
        stdout = expand_output_path(
            record.get("standard_output"), job_id=job_id, name=name, user=user, node=node
        )
        stderr = expand_output_path(
            record.get("standard_error"), job_id=job_id, name=name, user=user, node=node
        )
        return JobStatus(
            job_id=job_id,
            name=name,
            state=state,
            exit_code=exit_code if state.finished else None,
            signal=signal if state.finished else None,
            reason=_reason(record),
            partition=record.get("partition") or None,
            user=user,
            nodes=record.get("nodes") or None,
            stdout=stdout,
            stderr=stderr or stdout,
            idempotency_key=comment[len(IDEMPOTENCY_PREFIX) :]
            if comment.startswith(IDEMPOTENCY_PREFIX)
            else None,
        )


def _exit_status(raw: Any) -> tuple[int | None, int | None]:
    # SLURM reports the wait(2) status: the exit code in the high byte, a signal in the low.
    if not isinstance(raw, int):
        return None, None
    signal = raw & 0x7F
    return (raw >> 8) & 0xFF, signal or None


def _reason(record: dict[str, Any]) -> str | None:
    reason = str(record.get("state_reason") or "")
    description = str(record.get("state_description") or "")
    if reason in ("", "None"):
        reason = ""
    text = ": ".join(p for p in (reason, description) if p)
    return text or None


ADAPTERS = {SlurmRestV0038.version: SlurmRestV0038}


def adapter_for(version: str) -> SlurmRestV0038:
    """The adapter for an API version, or an error naming the versions the client speaks."""
    try:
        return ADAPTERS[version]()
    except KeyError:
        raise BridgeProtocolError(
            f"the bridge client does not speak slurmrestd {version!r} (it speaks: {', '.join(ADAPTERS)})"
        ) from None
