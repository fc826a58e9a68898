"""The bridge client: submit, watch and cancel SLURM jobs through slurmrestd, with clear errors.

Every submission carries an idempotency key in the job's comment. `submit` first looks
for a job with that key and returns it; after an answer is lost (dropped connection,
timeout) it looks again before it retries, and if a retry still made a second job it
cancels the newer one. A cancel is retried until SLURM has it. slurmrestd answers a
refused token with a bare HTTP 500; the client tells that apart from an unreachable
controller with one probe (see `diagnose`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from fedeploy.bridge.environment import (
    ENV_API_VERSION,
    ENV_CA,
    ENV_PARTITIONS,
    ENV_TOKEN,
    ENV_URL,
    ENV_USER,
)
from fedeploy.bridge.errors import (
    BridgeAuthError,
    BridgeError,
    BridgeProtocolError,
    BridgeUnreachable,
    ControllerUnreachable,
    JobFailed,
    JobNotFound,
    JobWaitTimeout,
    JobWillNotRun,
    ProxyError,
    ScriptTooLarge,
    SubmissionRejected,
    UnknownPartition,
)
from fedeploy.bridge.jobs import JobOutput, JobSpec, JobState, JobStatus
from fedeploy.bridge.slurm_api import (
    INVALID_GRES,
    INVALID_JOB_ID,
    INVALID_PARTITION,
    REST_FAIL_PARSING,
    SUPPORTED_VERSIONS,
    UNSPECIFIED,
    SlurmError,
    SlurmRestV0038,
    adapter_for,
    choose_version,
    offered_versions,
    version_served,
)
from fedeploy.bridge.slurm_codes import permanent_reason

log = logging.getLogger(__name__)

# Where slurmrestd describes itself: the paths of every API version it serves.
OPENAPI_PATH = "/openapi/v3"
# A negotiated version is reused by later clients of the same endpoint for this long (services
# make a client per submission); a centre that upgrades is seen again after it.
NEGOTIATION_TTL_S = 300.0
_negotiated: dict[str, tuple[str, float]] = {}
# The bridge's TLS proxy refuses larger request bodies (client_max_body_size in
# templates/bridge/tls-proxy.conf.j2; a unit test keeps the two equal).
PROXY_BODY_LIMIT_MIB = 4
# Answers of a proxy whose upstream (slurmrestd) is down or slow: worth another try. 24.11's
# slurmrestd answers 502 itself, with SLURM's errors, when the controller is down: not these.
_GATEWAY_ERRORS = (502, 503, 504)
# The largest answer read and the deepest JSON parsed: a centre's answer beyond them is refused
# (BridgeProtocolError) instead of exhausting the client's memory or stack.
MAX_ANSWER_MIB = 64
MAX_JSON_DEPTH = 64


class _AnswerLost(Exception):
    """A request that may have reached SLURM, but whose answer did not come back."""


@dataclass(frozen=True)
class _Answer:
    status: int
    body: Any  # the JSON answer; None when the answer is not JSON (a proxy's page)
    page: str | None = None  # the title of an HTML page, such as nginx's "413 Request Entity..."
    sent: int = 0  # bytes of the request's body


@dataclass(frozen=True)
class _TokenClaims:
    user: str | None
    expires: int | None


# Seconds a cancel waits for the job to end: SLURM's default KillWait (30 s, between SIGTERM
# and SIGKILL) and the node's epilog and its report to slurmctld on a busy machine.
CANCEL_SETTLE_S = 45.0
# What a waiter that gave up adds to its timeout for the cancelled job's final state.
WAIT_CANCEL_SETTLE_S = 10.0


class BridgeClient:
    """A client of one bridge (slurmrestd behind its TLS proxy) acting as one service user."""

    def __init__(
        self,
        endpoint: str,
        user: str,
        token: str,
        *,
        api_version: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        ca_file: str | None = None,
        partitions: list[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        max_answer_mib: float | None = None,
    ):
        _check_endpoint(endpoint)
        if not user or not token:
            raise BridgeAuthError(
                f"the bridge at {endpoint} needs a user and a token ({ENV_USER}, {ENV_TOKEN})"
            )
        _check_header_values(user, token)
        if not (math.isfinite(timeout) and timeout > 0) or not (
            math.isfinite(connect_timeout) and connect_timeout > 0
        ):
            raise BridgeError(f"the timeout must be a number of seconds above 0, got {timeout}")
        if retries < 0:
            raise BridgeError(f"retries must be 0 or more, got {retries}")
        if max_answer_mib is not None and not (
            math.isfinite(max_answer_mib) and max_answer_mib > 0
        ):
            raise BridgeError(f"max_answer_mib must be a number above 0, got {max_answer_mib}")
        # The most of one answer read (MiB; None: MAX_ANSWER_MIB): a client in a small
        # container (the bridge probe) reads less, streaming, so a huge answer cannot exhaust it.
        self.max_answer_mib = max_answer_mib
        self.endpoint = endpoint.rstrip("/")
        self.user = user
        self.retries = retries
        self.backoff = backoff
        self.partitions = list(partitions) if partitions else None
        # Pinned: that version only; None: the newest both sides speak, asked on first use.
        self._adapter: SlurmRestV0038 | None = adapter_for(api_version) if api_version else None
        self._sleep = sleep
        self._claims = _token_claims(token)
        self._scrub = _TokenScrubber(token)
        if self._claims.user is not None and self._claims.user != user:
            raise BridgeAuthError(
                f"the token is for user {self._claims.user!r} but the client acts as {user!r}: "
                "use the user and token from the same bridge Secret"
            )
        verify: ssl.SSLContext | bool = _ca_context(ca_file) if ca_file else True
        self._http = httpx.Client(
            base_url=self.endpoint,
            headers={"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token},
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            verify=verify,
            follow_redirects=False,
            transport=transport,
        )
        # httpx's timeout bounds each read: a centre trickling a byte at a time would hold a
        # request forever. Every read and write gets at most what is left of `timeout`.
        self.timeout = timeout
        self._deadline = _Deadline()
        _bound_by(self._http, self._deadline)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> BridgeClient:
        """A client configured by FEDEPLOY_BRIDGE_URL, _USER, _TOKEN, _CA, _PARTITIONS and
        _API_VERSION (unset: negotiated)."""
        env = os.environ if environ is None else environ
        missing = [name for name in (ENV_URL, ENV_USER, ENV_TOKEN) if not env.get(name)]
        if missing:
            raise BridgeError(f"the bridge client needs {', '.join(missing)} in the environment")
        partitions = [p for p in env.get(ENV_PARTITIONS, "").split(",") if p] or None
        options.setdefault("api_version", env.get(ENV_API_VERSION) or None)
        return cls(
            env[ENV_URL],
            env[ENV_USER],
            env[ENV_TOKEN],
            ca_file=env.get(ENV_CA) or None,
            partitions=partitions,
            **options,
        )

    @property
    def api_version(self) -> str:
        """The slurmrestd API version this client speaks (negotiated on first use unless pinned)."""
        return self._api.version

    @property
    def _api(self) -> SlurmRestV0038:
        if self._adapter is None:
            self._adapter = adapter_for(self._negotiate())
        return self._adapter

    def _negotiate(self) -> str:
        """The newest API version both the endpoint's GET /openapi/v3 offers and this client
        speaks. A bridge node rendered before fedeploy negotiated passes only its one version
        (its proxy answers 404 here): then each version is tried by its ping, newest first.
        Raises BridgeProtocolError naming what is offered and what is spoken when none is common."""
        cached = _negotiated.get(self.endpoint)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        answer = self._send("GET", OPENAPI_PATH)
        if answer.status == 401:
            raise self._auth_error("slurmrestd refused the request for its API document (HTTP 401)")
        if answer.status == 200:
            offered = offered_versions(answer.body)
        elif answer.status == 404 and answer.body is None:
            # A proxy rendered before fedeploy negotiated: it passes one version only.
            served = next((v for v in reversed(SUPPORTED_VERSIONS) if self._serves(v)), None)
            offered = [served] if served else []
        elif answer.body is None:
            raise self._proxy_error(answer, "asking which slurmrestd API versions it serves")
        else:
            raise BridgeProtocolError(
                f"GET {self.endpoint}{OPENAPI_PATH} answered HTTP {answer.status}: cannot tell "
                f"which slurmrestd API versions it serves; pin one with api_version "
                f"({ENV_API_VERSION}) ({_describe(SlurmRestV0038().errors(answer.body))})"
            )
        version = choose_version(offered, self.endpoint)
        log.debug("%s: speaking slurmrestd %s (offered: %s)", self.endpoint, version, offered[-12:])
        _negotiated[self.endpoint] = (version, time.monotonic() + NEGOTIATION_TTL_S)
        return version

    def _serves(self, version: str) -> bool:
        return version_served(self._send("GET", adapter_for(version).ping_path).status)

    def __repr__(self) -> str:  # the token stays out of reprs and logs
        return f"BridgeClient({self.endpoint!r}, user={self.user!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BridgeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs -------------------------------------------------------------------------------
    def submit(self, spec: JobSpec, *, resume: bool = False) -> int:
        """Submit a job and return its id, or the id of the live job that already has the
        spec's idempotency key (see the module's docstring).

        `resume=True` first looks for the key among every job the controller still holds,
        finished ones included: for a caller that restarts after its job may have ended. It
        lists all jobs, so its cost grows with the queue; the normal path never lists.
        Raises JobWillNotRun (after cancelling the job) when SLURM holds it for a reason no
        waiting changes, such as a time limit above the partition's. Slurm 22.05 names such a
        reason at submission; 24.11 (v0.0.40 and later) only at its scheduler's next pass,
        so there `wait` raises it, at its first poll after that pass (the submission does not
        wait for the pass: about half a second each on an idle cluster)."""
        partition = spec.partition or (self.partitions[0] if self.partitions else None)
        if self.partitions is not None and partition not in self.partitions:
            raise UnknownPartition(
                f"partition {partition!r} is not one this bridge may use (allowed: {', '.join(self.partitions)})"
            )
        if resume:
            existing = self.find(spec.idempotency_key)
            if existing is not None:
                log.info(
                    "job %s already has idempotency key %s", existing.job_id, spec.idempotency_key
                )
                return existing.job_id
        body = self._api.submission(spec, partition=partition)
        lost: _AnswerLost | None = None
        for attempt in range(self.retries + 1):
            try:
                answer = self._send("POST", self._api.submit_path, json=body, may_repeat=False)
            except _AnswerLost as err:
                # SLURM may have the job: look for it before submitting again.
                lost = err
                self._pause(attempt)
                existing = self.find(spec.idempotency_key)
                if existing is not None:
                    log.info(
                        "submission of %s was lost in transit; SLURM has it as job %s",
                        spec.name,
                        existing.job_id,
                    )
                    return self._fail_if_stuck(existing).job_id
                continue
            result = self._interpret(answer, doing=f"submitting job {spec.name!r}", spec=spec)
            job_id = self._api.submitted_job_id(result)
            for warning in [*self._api.errors(result), *self._api.warnings(result)]:
                log.warning("job %s: SLURM says: %s", job_id, warning)
            status = self.status(job_id)
            self._check_owner(status)
            if lost or _held_by_twin(status):
                # A retry after a lost answer, or the controller holds this job back behind an
                # older live one with the same key (a parallel or restarted submitter).
                status = self._one_job(spec.idempotency_key, status)
            return self._fail_if_stuck(status).job_id
        raise BridgeUnreachable(
            f"submitting job {spec.name!r} to {self.endpoint}: no answer after {_attempts(self.retries + 1)} "
            f"({lost}); no job with idempotency key {spec.idempotency_key} exists"
        )

    def find(self, idempotency_key: str) -> JobStatus | None:
        """The job this user submitted with the key, if SLURM still knows it: the oldest that
        has not ended, else the oldest. Lists every job on the controller (v0.0.38 has no
        filter), reading only this user's jobs with the key."""
        jobs = self._find_all(idempotency_key)
        return _keeper(jobs) if jobs else None

    def status(self, job_id: int) -> JobStatus:
        """The job's state, exit code and SLURM's reason."""
        answer = self._send("GET", self._api.job_path(job_id))
        jobs = self._api.jobs(self._interpret(answer, doing=f"reading job {job_id}", job_id=job_id))
        if not jobs:
            raise self._not_found(job_id)
        return jobs[0]

    def wait(
        self,
        job_id: int,
        timeout: float,
        *,
        poll: float = 2.0,
        cancel_on_timeout: bool = True,
        check: bool = True,
    ) -> JobStatus:
        """Wait until the job ends; raise JobFailed if it did not complete (with `check`).

        A job pending for a reason no waiting changes (PartitionTimeLimit, AccountNotAllowed,
        a per-job QOS limit...) is cancelled at once and JobWillNotRun raised; a transient
        reason (Priority, Resources, a held or down partition) keeps the wait going. A state
        this client does not know is waited on like a running one. On timeout the job is cancelled
        unless `cancel_on_timeout` is False (a waiter that gives up must not leave a job holding
        its nodes), and its state after at most WAIT_CANCEL_SETTLE_S (10 s) more is the
        JobWaitTimeout's: CANCELLED, or COMPLETING while SLURM still kills it.
        """
        deadline = time.monotonic() + timeout
        while True:
            status = self._fail_if_stuck(self.status(job_id))
            if status.finished:
                if check and not status.succeeded:
                    raise JobFailed(status)
                return status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if cancel_on_timeout:
                    status = self.cancel(job_id, settle=WAIT_CANCEL_SETTLE_S)
                raise JobWaitTimeout(status, timeout, cancelled=cancel_on_timeout)
            self._sleep(min(poll, remaining))

    def cancel(self, job_id: int, *, settle: float = CANCEL_SETTLE_S) -> JobStatus:
        """Cancel the job, retrying until SLURM has the request; its status once it has ended
        (or after `settle` seconds, still COMPLETING). Cancelling a job that already ended
        changes nothing. The default outlasts SLURM's default KillWait (30 s), the time a job
        that ignores SIGTERM keeps its nodes before SIGKILL."""
        for attempt in range(self.retries + 1):
            answer = self._send("DELETE", self._api.job_path(job_id))
            try:
                self._interpret(answer, doing=f"cancelling job {job_id}", job_id=job_id)
                break
            except (ControllerUnreachable, BridgeUnreachable):
                # A job left running holds its nodes: keep trying while the budget lasts.
                if attempt == self.retries:
                    raise
                self._pause(attempt)
        deadline = time.monotonic() + settle
        status = self.status(job_id)
        pause = 0.2
        while not status.finished and time.monotonic() < deadline:
            self._sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
            pause = min(pause * 2, 2.0)  # a job SLURM is still killing: ask less often
            status = self.status(job_id)
        return status

    def output(self, job_id: int) -> JobOutput:
        """Where the job's stdout and stderr went, on the cluster's file system."""
        status = self.status(job_id)
        return JobOutput(
            job_id=job_id, stdout=status.stdout, stderr=status.stderr, host=status.nodes
        )

    def ping(self) -> dict[str, Any]:
        """slurmrestd's ping, after checking that the token is accepted (see `diagnose`)."""
        self.diagnose()
        answer = self._send("GET", self._api.ping_path)
        return dict(self._interpret(answer, doing="pinging the controller"))

    def diagnose(self) -> None:
        """Raise the error that explains a failure, or return when the bridge works.

        slurmrestd 22.05 answers both a refused token and an unreachable controller with
        HTTP 500 and error -1 on most endpoints. Asking for a job that cannot exist separates
        them: 2017 (no such job) means all is well; a refused token is 5005 (22.05: the
        controller closed the connection) or 1007 with HTTP 511 (24.11); 1800 means the
        controller could not be reached. 22.05 is asked to cancel job 0, v0.0.40 and later
        to read job 0x3FFFFFE (see the adapters).
        """
        api = self._api
        answer = self._send(api.probe_method, api.job_path(api.probe_job_id))
        errors = api.errors(answer.body)
        numbers = {e.number for e in errors}
        if answer.status == 401:
            raise self._auth_error("slurmrestd refused the request (HTTP 401)")
        if INVALID_JOB_ID in numbers:
            return
        if numbers & api.token_refused:
            raise self._auth_error(f"slurmctld refused the token ({_describe(errors)})")
        if numbers & api.controller_unreachable:
            raise self._controller_error(errors)
        ping = self._send("GET", api.ping_path)
        if api.controller_down(ping.body):
            raise self._controller_error(
                [*errors, SlurmError(None, "its ping says the controller does not respond")]
            )
        raise BridgeProtocolError(
            f"{self.endpoint}: unexpected answer to the bridge's probe (HTTP {answer.status}): "
            f"{_describe(self._api.errors(answer.body)) or str(answer.body)[:300]}"
        )

    # -- plumbing -----------------------------------------------------------------------------
    def _find_all(self, idempotency_key: str) -> list[JobStatus]:
        answer = self._send("GET", self._api.jobs_path)
        body = self._interpret(answer, doing="listing jobs")
        return sorted(
            self._api.jobs_with_key(body, idempotency_key, self.user), key=lambda j: j.job_id
        )

    def _check_owner(self, status: JobStatus) -> None:
        """Refuse a job SLURM took for another user: slurmctld 22.05 accepts a well-signed
        token for a user it cannot resolve and queues the job as 'nobody', where it never runs."""
        if status.user is not None and status.user != self.user:
            self.cancel(status.job_id, settle=0)
            raise BridgeAuthError(
                f"SLURM queued job {status.job_id} as {status.user!r}, not {self.user!r}: the cluster "
                f"does not know the user {self.user!r} (the centre must create the account); the "
                "job was cancelled"
            )

    def _fail_if_stuck(self, status: JobStatus) -> JobStatus:
        """The status, unless the job is pending for a reason no waiting changes: then the
        job is cancelled and JobWillNotRun raised with what the reason means."""
        if status.state is not JobState.PENDING or permanent_reason(status.reason_code) is None:
            return status
        # At submission slurmctld says only PartitionConfig; its scheduler names the limit
        # (PartitionTimeLimit, PartitionNodeLimit) at its next pass: give it a moment.
        for _ in range(_REFINE_POLLS if status.reason_code == "PartitionConfig" else 0):
            self._sleep(_REFINE_PAUSE)
            refined = self.status(status.job_id)
            if refined.reason_code != "PartitionConfig":
                status = refined
                break
        why = permanent_reason(status.reason_code)
        if status.state is not JobState.PENDING or why is None:
            return status
        self.cancel(status.job_id, settle=0)
        raise JobWillNotRun(status, why)

    def _one_job(self, idempotency_key: str, mine: JobStatus) -> JobStatus:
        """Keep one job for the key (the oldest that has not ended, else the oldest) and cancel
        the younger ones still pending: the singleton dependency kept them from starting."""
        jobs = self._find_all(idempotency_key)
        if not any(j.job_id == mine.job_id for j in jobs):
            jobs = sorted([*jobs, mine], key=lambda j: j.job_id)
        keep = _keeper(jobs)
        for job in jobs:
            if job.job_id > keep.job_id and job.state in _CANCELLABLE_TWIN:
                log.warning(
                    "cancelling job %s: a duplicate of job %s (key %s)",
                    job.job_id,
                    keep.job_id,
                    idempotency_key,
                )
                self.cancel(job.job_id, settle=0)
        return keep

    def _without_token(self, response: httpx.Response, content: bytes) -> httpx.Response:
        """The answer with its content, any echo of the token blanked: error texts end in
        exceptions."""
        return httpx.Response(
            response.status_code,
            # The content is decoded already: neither its old length nor its encoding applies.
            headers=[
                (k, v)
                for k, v in response.headers.multi_items()
                if k.lower() not in ("content-length", "content-encoding")
            ],
            content=self._scrub(content),
            request=response.request,
        )

    def _send(
        self, method: str, path: str, *, json: Any = None, may_repeat: bool = True
    ) -> _Answer:
        """One request, retried on transport errors and proxy errors when it may be repeated."""
        self._check_token()
        for attempt in range(self.retries + 1):
            try:
                response = self._exchange(method, path, json)
            except httpx.TransportError as err:
                reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
                if "CERTIFICATE_VERIFY_FAILED" in reason:
                    raise BridgeUnreachable(
                        f"{self.endpoint}: the bridge's TLS certificate is not trusted ({reason}); "
                        f"pass its CA (ca.crt of the bridge's Secret) as {ENV_CA} or ca_file"
                    ) from err
                if not may_repeat and not isinstance(err, httpx.ConnectError):
                    raise _AnswerLost(reason) from err
                if attempt == self.retries:
                    raise BridgeUnreachable(
                        f"{method} {self.endpoint}{path}: the bridge does not answer after "
                        f"{_attempts(attempt + 1)} ({reason}); is the bridge node up and is this "
                        "address admitted by its firewall?"
                    ) from err
                self._pause(attempt)
                continue
            body = _json_body(response, f"{method} {self.endpoint}{path}")
            if response.status_code in _GATEWAY_ERRORS and not _slurm_errors(body):
                if not may_repeat:
                    # The proxy may have passed the request on before slurmrestd failed.
                    raise _AnswerLost(
                        f"HTTP {response.status_code} from the proxy at {self.endpoint}"
                    )
                if attempt == self.retries:
                    raise BridgeUnreachable(
                        f"{method} {self.endpoint}{path}: the TLS proxy answers HTTP "
                        f"{response.status_code} after {_attempts(attempt + 1)}: slurmrestd behind it "
                        "is down or too slow (fedeploy-slurmrestd.service on the bridge node)"
                    )
                self._pause(attempt)
                continue
            return _Answer(
                response.status_code,
                body,
                _page_title(response),
                len(response.request.content) if json is not None else 0,
            )
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _exchange(self, method: str, path: str, json: Any) -> httpx.Response:
        """One request and its whole answer, at most max_answer_mib (default MAX_ANSWER_MIB)
        of it, with any echo of the token blanked."""
        cap = self.max_answer_mib or MAX_ANSWER_MIB
        limit = int(cap * 2**20)
        with (
            self._deadline.within(self.timeout),
            self._http.stream(method, path, json=json) as response,
        ):
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise BridgeProtocolError(
                        f"{method} {self.endpoint}{path}: the answer (HTTP {response.status_code}) "
                        f"is larger than {cap:g} MiB: not an answer of slurmrestd the "
                        "client reads"
                    )
                chunks.append(chunk)
        return self._without_token(response, b"".join(chunks))

    def _interpret(
        self,
        answer: _Answer,
        *,
        doing: str,
        job_id: int | None = None,
        spec: JobSpec | None = None,
    ) -> Any:
        """The body of a successful answer, or the error that explains a failed one."""
        errors = self._api.errors(answer.body)
        numbers = {e.number for e in errors}
        if 200 <= answer.status < 300 and isinstance(answer.body, dict):
            return answer.body
        if answer.status == 401:
            raise self._auth_error(f"{doing}: slurmrestd refused the request (HTTP 401)")
        if answer.body is None and answer.status >= 400:
            raise self._proxy_error(answer, doing)
        if INVALID_JOB_ID in numbers and job_id is not None:
            raise self._not_found(job_id)
        if INVALID_PARTITION in numbers:
            partition = spec.partition if spec else None
            raise UnknownPartition(
                f"{doing}: SLURM does not know partition {partition!r} ({_describe(errors)})"
            )
        if numbers & self._api.controller_unreachable:
            raise self._controller_error(errors)
        if not errors or numbers & {UNSPECIFIED, None, *self._api.token_refused}:
            self.diagnose()  # raises the authentication or controller error if that is it
        elif answer.status >= 500 and self._api.outage_by_ping:
            # 24.11 answers a cancel while slurmctld is down with HTTP 500 and errno 1 (EPERM):
            # its ping tells an outage from a refusal.
            ping = self._send("GET", self._api.ping_path)
            if self._api.controller_down(ping.body):
                raise self._controller_error(
                    [*errors, SlurmError(None, "its ping says the controller does not respond")]
                )
        if 200 <= answer.status < 300:
            raise BridgeProtocolError(
                f"{doing}: an answer that is not a JSON object: {answer.body!r:.300}"
            )
        hint = ""
        if spec is not None and spec.gpus and numbers & {REST_FAIL_PARSING, INVALID_GRES}:
            hint = f"; the job asks for {spec.gpus} GPU(s): does this cluster configure GPUs (gres/gpu)?"
        raise SubmissionRejected(
            f"{doing}: SLURM refused it (HTTP {answer.status}): {_describe(errors)}{hint}"
        )

    def _proxy_error(self, answer: _Answer, doing: str) -> BridgeError:
        """An error page (not JSON) comes from the TLS proxy in front of slurmrestd, not SLURM."""
        page = f" ({answer.page})" if answer.page else ""
        if answer.status == 413:
            return ScriptTooLarge(
                f"{doing}: script too large: the bridge accepts at most {PROXY_BODY_LIMIT_MIB} MiB "
                f"(this request: {answer.sent / 2**20:.1f} MiB of script, environment and options; "
                f"the bridge's TLS proxy answered HTTP 413{page}); keep large inputs in files on "
                "the cluster and read them from the script"
            )
        if answer.status in (403, 404):
            # A version negotiated earlier may be gone (the centre upgraded): the next client
            # of this endpoint asks again.
            _negotiated.pop(self.endpoint, None)
            return BridgeProtocolError(
                f"{doing}: {self.endpoint} answers HTTP {answer.status}{page} for the "
                f"{self._adapter.version if self._adapter else 'slurmrestd'} API: is this a "
                "fedeploy bridge, and does it serve that version?"
            )
        return ProxyError(
            f"{doing}: the TLS proxy in front of slurmrestd at {self.endpoint} answered HTTP "
            f"{answer.status}{page}: an error of the proxy, not of SLURM (its log on the bridge "
            "node says more: fedeploy-bridge-tls.service)"
        )

    def _not_found(self, job_id: int) -> JobNotFound:
        return JobNotFound(
            job_id,
            f"SLURM does not know job {job_id} (at {self.endpoint}): it never existed, or it ended "
            "more than MinJobAge seconds ago (300 by default) and the controller forgot it; a job's "
            "output stays in its stdout file",
        )

    def _auth_error(self, what: str) -> BridgeAuthError:
        return BridgeAuthError(
            f"{what} at {self.endpoint} for user {self.user!r}: the token is signed with a key the "
            "controller does not hold, was issued for a user the cluster does not know, or is not "
            "a SLURM token; take the token from the bridge's Kubernetes Secret (the deployment "
            "renews it)"
        )

    def _controller_error(self, errors: list[SlurmError]) -> ControllerUnreachable:
        return ControllerUnreachable(
            f"slurmrestd at {self.endpoint} cannot reach the SLURM controller ({_describe(errors)}): "
            "slurmctld is down or unreachable from the bridge node; slurmrestd already retried "
            "for the controller's MessageTimeout"
        )

    def _check_token(self) -> None:
        expires = self._claims.expires
        if expires is not None and expires <= time.time():
            when = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
            raise BridgeAuthError(
                f"the token for {self.user!r} expired at {when}: take the current one from the "
                "bridge's Kubernetes Secret (each deployment renews it at half its lifetime)"
            )

    def _pause(self, attempt: int) -> None:
        self._sleep(min(self.backoff * 2**attempt, 10.0))


class _Deadline(threading.local):
    """The moment by which the request in progress (in this thread) must be answered whole."""

    at: float | None = None

    def within(self, seconds: float) -> _Deadline:
        self.at = time.monotonic() + seconds
        self.seconds = seconds
        return self

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        self.at = None

    def left(self, timeout: float | None, late: type[Exception]) -> float | None:
        """The timeout for one network operation: at most what is left; `late` once none is."""
        if self.at is None:
            return timeout
        left = self.at - time.monotonic()
        if left <= 0:
            raise late(self.missed)
        return left if timeout is None else min(timeout, left)

    @property
    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    @property
    def missed(self) -> str:
        return f"no whole answer within {self.seconds:g} s"


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: _Deadline):
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self._stream.read(max_bytes, self._deadline.left(timeout, httpcore.ReadTimeout))
        except httpcore.ReadTimeout:
            if self._deadline.passed:  # out of time as a whole, not for this read: say so
                raise httpcore.ReadTimeout(self._deadline.missed) from None
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self._stream.write(buffer, self._deadline.left(timeout, httpcore.WriteTimeout))
        except httpcore.WriteTimeout:
            if self._deadline.passed:
                raise httpcore.WriteTimeout(self._deadline.missed) from None
            raise

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, left), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend, deadline: _Deadline):
        self._backend = backend
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, left, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_unix_socket(path, left, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _bound_by(http: httpx.Client, deadline: _Deadline) -> None:
    """Put the deadline between httpx's connection pool and its sockets. httpx offers no
    public hook for its pool's network backend: a transport of another shape (a test's
    MockTransport) is left as it is; tests/unit/test_bridge_client.py checks the hook with a
    server that trickles its answer."""
    pool = getattr(getattr(http, "_transport", None), "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend):
        pool._network_backend = _DeadlineBackend(backend, deadline)  # type: ignore[union-attr]


# A run of this many of the token's characters in an answer is taken for an echo of it.
SHORTEST_LEAK = 15
# One character of a JSON string as sent: an escape or a byte.
_JSON_UNIT = re.compile(rb'\\u[0-9a-fA-F]{4}|\\[/\\"]|.', re.S)


class _TokenScrubber:
    """Blanks echoes of the token in an answer's bytes: the token itself, JSON-escaped in part
    or whole (\\uXXXX, \\/), and any SHORTEST_LEAK or more of its characters in a row (a
    truncated echo)."""

    def __init__(self, token: str):
        self.token = token
        self.least = min(SHORTEST_LEAK, len(token))
        # Any `least` characters of the token contain one of these aligned pieces whole.
        size = (self.least + 1) // 2
        self.pieces = [token[i : i + size] for i in range(0, len(token) - size + 1, size)]
        self.escapes = [b"\\u", b"\\/"] + [b"\\" + c.encode() for c in '\\"' if c in token]
        alphabet = re.escape("".join(sorted(set(token)))).encode()
        self.runs = re.compile(rb'(?:\\u[0-9a-fA-F]{4}|\\[/\\"]|[' + alphabet + rb"])+")

    def __call__(self, content: bytes) -> bytes:
        content = content.replace(self.token.encode(), b"[token]")
        if not any(e in content for e in self.escapes) and not any(
            p.encode() in content for p in self.pieces
        ):
            return content
        return self.runs.sub(self._blank, content)

    def _blank(self, run: re.Match[bytes]) -> bytes:
        units = _JSON_UNIT.findall(run.group())
        text = "".join(_json_char(u) for u in units)  # one character a unit
        if len(text) < self.least or not any(p in text for p in self.pieces):
            return run.group()
        kept: list[bytes] = []
        i = 0
        while i < len(units):
            end = i
            while end < len(units) and text[i : end + 1] in self.token:
                end += 1
            if end - i >= self.least:
                kept.append(b"[token]")
                i = end
            else:
                kept.append(units[i])
                i += 1
        return b"".join(kept)


def _json_char(unit: bytes) -> str:
    if unit.startswith(b"\\u"):
        return chr(int(unit[2:], 16))
    if unit.startswith(b"\\") and len(unit) == 2:
        return unit[1:].decode()
    return unit.decode("latin-1")


def _check_endpoint(endpoint: str) -> None:
    """Refuse an endpoint that is not an http(s) base URL; never echo credentials in it."""
    if not endpoint.startswith(("https://", "http://")):
        raise BridgeError(f"bridge endpoint {endpoint!r} must start with https:// (or http://)")
    parts = urlsplit(endpoint)
    if "@" in parts.netloc:
        raise BridgeError(
            "the bridge endpoint must not carry a user or password (user:password@host): "
            "the token authenticates; give https://<host>:<port>"
        )
    if parts.query or parts.fragment or not parts.hostname:
        raise BridgeError(
            f"bridge endpoint {endpoint!r} must be a base URL, https://<host>[:<port>], "
            "without a query or fragment"
        )


def _check_header_values(user: str, token: str) -> None:
    """The user and token travel in HTTP headers: printable ASCII without spaces only."""
    if not re.fullmatch(r"[\x21-\x7e]{1,256}", user):
        raise BridgeAuthError(
            f"the bridge user {user!r} is not a user name: no spaces, line breaks or characters "
            "outside ASCII"
        )
    if not re.fullmatch(r"[\x21-\x7e]+", token):
        raise BridgeAuthError(
            f"the token ({ENV_TOKEN} or --token-file) holds a space, a line break or a "
            "character outside ASCII: it is not a SLURM token"
        )


def _ca_context(ca_file: str) -> ssl.SSLContext:
    """A TLS context trusting the CA file; a clear error if it cannot be read or is not PEM."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except ssl.SSLError:  # before OSError, its base class
        raise BridgeError(
            f"the CA file {ca_file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ) from None
    except OSError as err:
        raise BridgeError(f"cannot read the CA file {ca_file}: {err.strerror}") from None


def _token_claims(token: str) -> _TokenClaims:
    """The user and expiry a JWT claims, read without verifying (the controller verifies)."""
    parts = token.split(".")
    if len(parts) != 3:
        return _TokenClaims(None, None)
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return _TokenClaims(None, None)
    if not isinstance(claims, dict):
        return _TokenClaims(None, None)
    user = claims.get("sun")
    expires = claims.get("exp")
    return _TokenClaims(
        user if isinstance(user, str) else None, expires if isinstance(expires, int) else None
    )


# How long the client lets slurmctld name a PartitionConfig job's limit: 6 × 0.5 s.
_REFINE_POLLS = 6
_REFINE_PAUSE = 0.5
# Younger duplicates of a key wait behind the singleton dependency; these are safe to cancel.
_CANCELLABLE_TWIN = {JobState.PENDING, JobState.REQUEUED, JobState.REQUEUE_HOLD}


def _held_by_twin(status: JobStatus) -> bool:
    """SLURM holds the job back behind an older live job of the same name and user: with the
    key's digest in the name and no dependency of its own, an older job with the same key."""
    return status.state is JobState.PENDING and status.reason_code == "Dependency"


def _keeper(jobs: list[JobStatus]) -> JobStatus:
    """Of the jobs with one key (sorted by id), the one the key stands for: the oldest that
    has not ended, else the oldest."""
    live = [j for j in jobs if not j.finished]
    return (live or jobs)[0]


def _page_title(response: httpx.Response) -> str | None:
    """The <title> of an HTML error page (nginx's own pages), or None."""
    if "html" not in response.headers.get("content-type", ""):
        return None
    match = re.search(r"<title>([^<]{1,200})</title>", response.text, re.I)
    return match.group(1).strip() if match else None


def _json_body(response: httpx.Response, what: str) -> Any:
    """The answer's JSON, or None when it is not JSON (a proxy's page). JSON nested deeper
    than MAX_JSON_DEPTH is refused before it is parsed: no answer of slurmrestd is."""
    content = response.content
    if _json_depth_exceeds(content, MAX_JSON_DEPTH):
        raise BridgeProtocolError(
            f"{what}: the answer (HTTP {response.status_code}) nests JSON deeper than "
            f"{MAX_JSON_DEPTH} levels: not an answer of slurmrestd the client reads"
        )
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return None


def _json_depth_exceeds(content: bytes, limit: int) -> bool:
    """Whether JSON text opens more than `limit` arrays or objects at once (brackets inside
    strings do not count)."""
    if content.count(b"[") + content.count(b"{") <= limit:
        return False
    # Strings (escapes included) removed, the brackets left are structure.
    bare = _JSON_STRING.sub(b"", content)
    depth = 0
    for match in _JSON_BRACKET.finditer(bare):
        depth += 1 if match.group() in b"[{" else -1
        if depth > limit:
            return True
    return False


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")


def _slurm_errors(body: Any) -> bool:
    """Whether an answer carries SLURM's `errors` (slurmrestd's own answer, not a proxy's)."""
    return bool(SlurmRestV0038().errors(body))


def _describe(errors: list[SlurmError]) -> str:
    return "; ".join(str(e) for e in errors)


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"
