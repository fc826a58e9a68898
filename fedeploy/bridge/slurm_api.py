"""The one place that knows slurmrestd's OpenAPI: paths, the submission body, the job record.

Slurm 22.05 serves v0.0.36 to v0.0.38; v0.0.38 is the one verified against a real
slurmrestd (tests/integration/slurm). Later versions change shapes (from v0.0.40 the
environment is a list of "K=V" strings): support for one is a new adapter here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fedeploy.bridge.errors import BridgeProtocolError
from fedeploy.bridge.jobs import (
    IDEMPOTENCY_PREFIX,
    JobSpec,
    JobStatus,
    display_name,
    expand_output_path,
    parse_state,
)
from fedeploy.bridge.slurm_codes import error_sentence

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

# SLURM's error numbers (slurm_errno.h) that the client tells apart.
INVALID_PARTITION = 2000
INVALID_JOB_ID = 2017
CONTROLLER_UNREACHABLE = (1800, 1801, 1007)  # connect failure; send/receive failure
REST_FAIL_PARSING = 9001  # slurmrestd could not turn the description into a job
ZERO_BYTES = 5005  # the controller closed the connection: how it refuses a token
UNSPECIFIED = -1


@dataclass(frozen=True)
class SlurmError:
    """One entry of a response's `errors`."""

    number: int | None
    message: str

    def __str__(self) -> str:
        if self.number is None:
            return self.message
        meaning = error_sentence(self.number)
        if meaning is None:
            return f"{self.message} (SLURM error {self.number})"
        return f"{meaning}, SLURM error {self.number}: {self.message}"


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
        # sbatch exports -c to the job as SLURM_CPUS_PER_TASK (scripts and, depending on the
        # version, srun read it); slurmrestd does not, so the bridge does.
        environment["SLURM_CPUS_PER_TASK"] = str(spec.cpus)
        job: dict[str, Any] = {
            # The key's digest in the name and the singleton dependency: the controller holds
            # back any younger live job of the same key, which is how the client spots one.
            "name": spec.slurm_name,
            "dependency": "singleton",
            "comment": spec.comment,
            "time_limit": spec.time_limit_minutes,
            "tasks": 1,
            "cpus_per_task": spec.cpus,
            "current_working_directory": spec.working_directory,
            "environment": environment,
            "standard_output": _own_name(spec.stdout_path, spec.name),
            # A job never requeues on its own: a second run would surprise whoever waits.
            "requeue": False,
        }
        if partition is not None:
            job["partition"] = partition
        if spec.stderr:
            job["standard_error"] = _own_name(spec.stderr, spec.name)
        if spec.memory_mb is not None:
            job["memory_per_node"] = spec.memory_mb
        if spec.gpus:
            job["gpus"] = str(spec.gpus)
        if spec.account:
            job["account"] = spec.account
        if spec.qos:
            job["qos"] = spec.qos
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
        """The job records of GET job/{id}: this client's own jobs, read as `job` reads them."""
        return [self.job(record) for record in self._records(body)]

    def jobs_with_key(self, body: Any, idempotency_key: str, user: str) -> list[JobStatus]:
        """The user's jobs carrying the key, from a listing of every job on the controller.

        Other users' jobs are never parsed beyond their comment and owner: whatever state,
        field or shape they have, they cannot break the client."""
        comment = f"{IDEMPOTENCY_PREFIX}{idempotency_key}"
        found = []
        for record in self._records(body):
            if not isinstance(record, dict) or record.get("comment") != comment:
                continue
            if record.get("user_name") not in (None, user):
                continue
            try:
                found.append(self.job(record))
            except BridgeProtocolError:
                continue  # a record without a job id is nobody's job to return
        return found

    def _records(self, body: Any) -> list[Any]:
        records = body.get("jobs") if isinstance(body, dict) else None
        if not isinstance(records, list):
            raise BridgeProtocolError(
                f"slurmrestd {self.version}: an answer without 'jobs': {body!r:.300}"
            )
        return records

    def job(self, record: Any) -> JobStatus:
        """A job record of GET job/{id} or GET jobs, read leniently: a state this client does
        not know is UNKNOWN (with SLURM's words), an odd field is left out. Only a record
        without a job id is an error."""
        try:
            job_id = int(record["job_id"])
        except (KeyError, TypeError, ValueError):
            raise BridgeProtocolError(
                f"slurmrestd {self.version}: a job record without a job id: {record!r:.200}"
            ) from None
        state, raw_state = parse_state(record.get("job_state"))
        exit_code, signal = _exit_status(record.get("exit_code"))
        name = _text(record.get("name")) or ""
        # A uid SLURM cannot name (a token for an unknown user runs as uid 99) stays visible.
        uid = record.get("user_id")
        user = _text(record.get("user_name")) or (f"uid {uid}" if isinstance(uid, int) else None)
        node = _text(record.get("batch_host"))
        comment = _text(record.get("comment")) or ""
        key = comment[len(IDEMPOTENCY_PREFIX) :] if comment.startswith(IDEMPOTENCY_PREFIX) else None
        stdout = expand_output_path(
            _text(record.get("standard_output")), job_id=job_id, name=name, user=user, node=node
        )
        stderr = expand_output_path(
            _text(record.get("standard_error")), job_id=job_id, name=name, user=user, node=node
        )
        return JobStatus(
            job_id=job_id,
            name=display_name(name, key),
            state=state,
            exit_code=exit_code if state.finished else None,
            signal=signal if state.finished else None,
            reason=_reason(record),
            partition=_text(record.get("partition")),
            user=user,
            nodes=_text(record.get("nodes")),
            stdout=stdout,
            stderr=stderr or stdout,
            idempotency_key=key,
            raw_state=raw_state,
            reason_code=_reason_code(record),
        )


def _own_name(pattern: str, name: str) -> str:
    """sbatch's %x (the job's name) as the submitter named the job: SLURM's name also carries
    the key's digest. %% stays for SLURM to read as a literal %."""
    return re.sub(r"%%|%x", lambda m: m.group(0) if m.group(0) == "%%" else name, pattern)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _exit_status(raw: Any) -> tuple[int | None, int | None]:
    # SLURM reports the wait(2) status: the exit code in the high byte, a signal in the low.
    if not isinstance(raw, int):
        return None, None
    signal = raw & 0x7F
    return (raw >> 8) & 0xFF, signal or None


def _reason_code(record: dict[str, Any]) -> str | None:
    code = _text(record.get("state_reason"))
    return code if code and code != "None" else None


def _reason(record: dict[str, Any]) -> str | None:
    reason = _text(record.get("state_reason")) or ""
    description = _text(record.get("state_description")) or ""
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
