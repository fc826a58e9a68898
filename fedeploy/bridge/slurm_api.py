"""The one place that knows slurmrestd's OpenAPI: paths, the submission body, the job record.

One adapter per family of REST API versions whose shapes the client relies on agree:

| adapter          | versions              | Slurm releases serving them          | tested against |
|------------------|-----------------------|--------------------------------------|----------------|
| SlurmRestV0038   | v0.0.38               | 22.05 to 23.11 (22.05: Debian 12)     | a real 22.05.8 |
| SlurmRestV0040   | v0.0.40, v0.0.41, v0.0.42 | 23.11 to 25.11 (24.11: Debian 13) | a real 24.11.5 |
| SlurmRestV0043   | v0.0.43, v0.0.44, v0.0.45 | 25.05 to 26.05                   | SchedMD's published OpenAPI documents |

What changed after v0.0.38, and each adapter handles explicitly: `environment` is a list of
"K=V" strings (a map before); numbers are `{set, infinite, number}` objects (time_limit,
memory_per_node, array ids); `job_state` is a list of flags; `exit_code` is an object
(`status` flags, `return_code` and `signal.id` numbers, not a wait(2) status); the script goes
in the job description (top-level `script` is deprecated); GPUs are `tres_per_job`
("gres/gpu:N"); answers carry `errors` and `warnings` arrays. v0.0.43 to v0.0.45 keep every
shape the client uses from v0.0.42 (checked against the documents by
tests/unit/test_bridge_slurm_api.py); they are a family of their own so that a later change
lands in one place.

`choose_version` picks the newest version both the centre's `GET /openapi/v3` offers and this
module speaks.
"""

from __future__ import annotations

import dataclasses
import math
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
INVALID_GRES = 2072  # 24.11's answer to GPUs on a cluster without gres/gpu
CONTROLLER_UNREACHABLE = (1800, 1801, 1007)  # connect failure; send/receive failure (22.05)
AUTHENTICATION_ERROR = 1007  # 24.11: how slurmctld refuses a token (with HTTP 511)
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

    # The controller's refusal of a token, and its absence, as this family reports them.
    token_refused: frozenset[int] = frozenset({ZERO_BYTES})
    controller_unreachable: frozenset[int] = frozenset(CONTROLLER_UNREACHABLE)
    # A job id that cannot exist, asked for to tell a refused token from a down controller.
    probe_job_id = 0
    probe_method = "DELETE"
    # Whether a failure this family does not explain (HTTP 5xx) may be an outage its ping shows.
    outage_by_ping = False

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
    def controller_down(self, ping: Any) -> bool:
        """22.05 reports an unreachable controller by its error numbers; its ping is not asked."""
        return False

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

    def warnings(self, body: Any) -> list[str]:
        """The `warnings` of a response (a field slurmrestd ignored, a deprecated one)."""
        if not isinstance(body, dict):
            return []
        found = []
        for entry in body.get("warnings") or []:
            if isinstance(entry, dict) and entry.get("description"):
                source = f" ({entry['source']})" if entry.get("source") else ""
                found.append(f"{entry['description']}{source}")
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

    def output_path(
        self, reported: str | None, *, job_id: int, name: str, user: str | None, node: str | None
    ) -> str | None:
        """A job's stdout or stderr file: 22.05 reports sbatch's pattern (%j, %x, %u, %N, %%)."""
        return expand_output_path(reported, job_id=job_id, name=name, user=user, node=node)

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
        stdout = self.output_path(
            _text(record.get("standard_output")), job_id=job_id, name=name, user=user, node=node
        )
        stderr = self.output_path(
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


class SlurmRestV0040(SlurmRestV0038):
    """slurmrestd's data_parser v0.0.40, v0.0.41 and v0.0.42 (Slurm 23.11 to 25.11; verified
    against a real 24.11.5, tests/integration/slurm)."""

    versions: tuple[str, ...] = ("v0.0.40", "v0.0.41", "v0.0.42")
    # 24.11 answers a refused token with HTTP 511 and 1007 (22.05: 5005 and HTTP 500).
    token_refused = frozenset({AUTHENTICATION_ERROR, ZERO_BYTES})
    controller_unreachable = frozenset({1800, 1801})
    # Job 0 no longer parses (9000), a cancel of a missing job answers 200, and ids from
    # 0x3FFFFFF up are refused by slurmrestd before the controller is asked: the largest job
    # id SLURM can hand out, read, reaches the controller (404 and 2017 when all is well).
    probe_job_id = 0x3FFFFFE
    probe_method = "GET"
    # A cancel while slurmctld is down answers HTTP 500 and errno 1, as a refusal would.
    outage_by_ping = True

    def controller_down(self, ping: Any) -> bool:
        """Whether GET ping's answer says the controller does not respond: 24.11 answers a
        job query with error -1 (not 1800) while slurmctld is down, but its ping says so."""
        pings = ping.get("pings") if isinstance(ping, dict) else None
        if not isinstance(pings, list) or not pings:
            return False
        return not any(
            isinstance(p, dict) and p.get("responding") is not False and p.get("pinged") != "DOWN"
            for p in pings
        )

    def __init__(self, version: str | None = None) -> None:
        self.version = version or self.versions[-1]
        if self.version not in self.versions:
            raise ValueError(f"{type(self).__name__} speaks {', '.join(self.versions)}")
        super().__init__()

    def submission(self, spec: JobSpec, *, partition: str | None) -> dict[str, Any]:
        """The body of POST job/submit: the v0.0.38 options in this family's shapes."""
        job = super().submission(spec, partition=partition)["job"]
        job["script"] = spec.script  # top-level `script` is deprecated from v0.0.41
        job["environment"] = [f"{k}={v}" for k, v in job["environment"].items()]
        job["time_limit"] = _number_object(spec.time_limit_minutes)
        if spec.memory_mb is not None:
            job["memory_per_node"] = _number_object(spec.memory_mb)
        if spec.gpus:
            del job["gpus"]  # no such field any more: sbatch's --gpus is a job TRES
            job["tres_per_job"] = f"gres/gpu:{spec.gpus}"
        return {"job": job}

    def errors(self, body: Any) -> list[SlurmError]:
        """The `errors`, and a cancel's per-job `status[].error` (code and message) beside them."""
        found = super().errors(body)
        statuses = body.get("status") if isinstance(body, dict) else None
        for entry in statuses if isinstance(statuses, list) else []:
            error = entry.get("error") if isinstance(entry, dict) else None
            if isinstance(error, dict) and isinstance(error.get("code"), int) and error["code"]:
                text = error.get("message") or error.get("string") or "no description"
                found.append(SlurmError(error["code"], str(text)))
        return found

    def output_path(
        self, reported: str | None, *, job_id: int, name: str, user: str | None, node: str | None
    ) -> str | None:
        """24.11 reports the path expanded (%% already a literal %, so a % left is no pattern),
        all but %N, the batch host, which slurmd fills in: that one is expanded here. A literal
        "%N" (written %%N) reads the same and is taken for the pattern too."""
        if not reported:
            return None
        return reported.replace("%N", node) if node else reported

    def job(self, record: Any) -> JobStatus:
        """A job record as v0.0.40+ sends it: `job_state` a list of flags, `exit_code` an object."""
        status = super().job(record)
        exit_code, signal = _exit_object(record.get("exit_code"))
        finished = status.state.finished
        return dataclasses.replace(
            status,
            exit_code=exit_code if finished else None,
            signal=signal if finished else None,
        )


class SlurmRestV0043(SlurmRestV0040):
    """slurmrestd's data_parser v0.0.43, v0.0.44 and v0.0.45 (Slurm 25.05 to 26.05). Every
    field the client sends or reads has v0.0.42's shape in SchedMD's published documents
    (tests/unit/test_bridge_slurm_api.py checks them); no controller serving them runs here."""

    versions = ("v0.0.43", "v0.0.44", "v0.0.45")


ADAPTERS: dict[str, type[SlurmRestV0038]] = {
    SlurmRestV0038.version: SlurmRestV0038,
    **{v: SlurmRestV0040 for v in SlurmRestV0040.versions},
    **{v: SlurmRestV0043 for v in SlurmRestV0043.versions},
}


def adapter_for(version: str) -> SlurmRestV0038:
    """The adapter for an API version, or an error naming the versions the client speaks."""
    try:
        adapter = ADAPTERS[version]
    except KeyError:
        raise BridgeProtocolError(
            f"the bridge client does not speak slurmrestd {version!r} "
            f"(it speaks: {', '.join(SUPPORTED_VERSIONS)})"
        ) from None
    return adapter() if adapter is SlurmRestV0038 else adapter(version)  # type: ignore[call-arg]


def offered_versions(document: Any) -> list[str]:
    """The slurmctld API versions an OpenAPI document (GET /openapi/v3) has paths for, oldest
    first: "/slurm/v0.0.42/ping/" offers v0.0.42; slurmdbd's "/slurmdb/..." paths do not count."""
    paths = document.get("paths") if isinstance(document, dict) else None
    if not isinstance(paths, dict):
        raise BridgeProtocolError(
            f"GET /openapi/v3 answered something that is not an OpenAPI document: {document!r:.200}"
        )
    found = {m.group(1) for p in paths if (m := _SLURM_PATH.match(str(p)))}
    return sorted(found, key=_version_key)


def choose_version(offered: list[str], where: str) -> str:
    """The newest version both offered and spoken; an error naming both lists when none is."""
    common = [v for v in offered if v in ADAPTERS]
    if not common:
        raise BridgeProtocolError(
            f"slurmrestd at {where} offers {_quoted_list(offered) or 'no slurmctld API'}; the bridge "
            f"client speaks {', '.join(SUPPORTED_VERSIONS)}: none in common (docs/bridge.md lists "
            "the Slurm releases each version comes with)"
        )
    return max(common, key=_version_key)


def version_served(ping_status: int) -> bool:
    """Whether a GET of a version's ping path shows the version served: anything but a 404
    (a refused token or a down controller still shows the path exists)."""
    return ping_status != 404


# Up to 6 digits a part: a longer "version" is no version (and int() refuses 4300 digits).
_SLURM_PATH = re.compile(r"^/slurm/(v\d{1,6}\.\d{1,6}\.\d{1,6})/")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.lstrip("v").split("."))


def _quoted_list(items: list[str], most: int = 12) -> str:
    """Items for a one-line message: at most `most` of them (the newest), then how many more."""
    if len(items) <= most:
        return ", ".join(items)
    return f"{', '.join(items[-most:])} and {len(items) - most} older"


# Oldest first.
SUPPORTED_VERSIONS = tuple(sorted(ADAPTERS, key=_version_key))


def _number_object(value: int) -> dict[str, Any]:
    """A number as v0.0.40+ takes it: `{set, infinite, number}`."""
    return {"set": True, "infinite": False, "number": int(value)}


def number_value(raw: Any) -> int | float | None:
    """A number as v0.0.40+ sends it (`{set, infinite, number}`) or a plain one: the number,
    math.inf when infinite, None when unset or not a number."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if not isinstance(raw, dict):
        return None
    if raw.get("infinite") is True:
        return math.inf
    number = raw.get("number")
    if raw.get("set") is False or isinstance(number, bool) or not isinstance(number, int):
        return None
    return number


def _exit_object(raw: Any) -> tuple[int | None, int | None]:
    """(exit code, signal) of v0.0.40+'s exit code object: `return_code` and `signal.id` are
    numbers (not a wait(2) status); a signal of 0 or an unset one is no signal."""
    if not isinstance(raw, dict):
        return _exit_status(raw)  # a controller that still sends the wait(2) status
    code = number_value(raw.get("return_code"))
    signal_raw = raw.get("signal")
    signal = number_value(signal_raw.get("id")) if isinstance(signal_raw, dict) else None
    flags = raw.get("status")
    status = flags if isinstance(flags, list) else []
    exit_code = code if isinstance(code, int) else None
    sig = signal if isinstance(signal, int) and signal > 0 else None
    if exit_code is None and "SUCCESS" in status:
        exit_code = 0
    return exit_code, sig
