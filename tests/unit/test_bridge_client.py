"""The client's decisions, on answers recorded from a real slurmrestd 22.05 (tests/integration/slurm
runs the same paths against the real daemons)."""

from __future__ import annotations

import base64
import json
import socketserver
import threading
import time
from typing import Any

import httpx
import pytest

from fedeploy.bridge.client import BridgeClient
from fedeploy.bridge.errors import (
    BridgeAuthError,
    BridgeError,
    BridgeProtocolError,
    BridgeUnreachable,
    ControllerUnreachable,
    JobWaitTimeout,
    JobWillNotRun,
    ProxyError,
    ScriptTooLarge,
    SubmissionRejected,
    UnknownPartition,
)
from fedeploy.bridge.jobs import JobSpec, JobState

URL = "https://bridge.example.eu:6820"
BASE = "/slurm/v0.0.38"
UNSPECIFIED = {
    "errors": [
        {
            "description": "Unable to find JobId=1",
            "error_number": -1,
            "error": "Unspecified error",
            "source": "slurm_load_job",
        }
    ],
    "jobs": [],
}
REFUSED = {
    "errors": [
        {
            "description": "unable to kill JobId=0 with signal 9: Zero Bytes were transmitted or received",
            "error_number": 5005,
            "error": "Zero Bytes were transmitted or received",
        }
    ]
}
NO_CONTROLLER = {
    "errors": [
        {"error_number": 1800, "error": "Unable to contact slurm controller (connect failure)"}
    ]
}
NO_SUCH_JOB = {"errors": [{"error_number": 2017, "error": "Invalid job id specified"}]}


def token(user: str = "fedeploy", exp: float | None = None) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return (
        f"{part({'alg': 'HS256'})}.{part({'sun': user, 'exp': int(exp or time.time() + 3600)})}.sig"
    )


def record(job_id: int, key: str, state: str = "PENDING", reason: str = "None") -> dict[str, Any]:
    return {
        "job_id": job_id,
        "job_state": state,
        "state_reason": reason,
        "name": "j",
        "user_name": "fedeploy",
        "comment": f"fedeploy-key:{key}",
        "exit_code": 0,
    }


class Server:
    """Answers by (method, path); a callable answer sees the request. Records every request."""

    def __init__(self, routes: dict[tuple[str, str], Any]):
        self.routes = routes
        self.seen: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = (request.method, request.url.path)
        self.seen.append(key)
        answer = self.routes[key]
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        status, body = answer
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)


def client(server: Server, **options: Any) -> BridgeClient:
    """A client pinned to v0.0.38, whose answers these are (negotiation: test_bridge_versions)."""
    return BridgeClient(
        URL,
        "fedeploy",
        token(),
        transport=httpx.MockTransport(server),
        **{"sleep": lambda s: None, "retries": 2, "api_version": "v0.0.38", **options},
    )


def spec(**fields: Any) -> JobSpec:
    return JobSpec(
        **{
            "name": "j",
            "script": "#!/bin/bash\ntrue\n",
            "time_limit_minutes": 5,
            "working_directory": "/scratch",
            **fields,
        }
    )


def test_a_bare_500_and_a_refusing_controller_mean_the_token_was_refused():
    server = Server(
        {("GET", f"{BASE}/job/1"): (500, UNSPECIFIED), ("DELETE", f"{BASE}/job/0"): (500, REFUSED)}
    )
    with pytest.raises(BridgeAuthError, match="slurmctld refused the token .* for user 'fedeploy'"):
        client(server).status(1)


def test_a_bare_500_and_an_unreachable_controller_mean_the_controller_is_down():
    server = Server(
        {
            ("GET", f"{BASE}/job/1"): (500, UNSPECIFIED),
            ("DELETE", f"{BASE}/job/0"): (500, NO_CONTROLLER),
        }
    )
    with pytest.raises(ControllerUnreachable, match="cannot reach the SLURM controller"):
        client(server).status(1)


def test_a_named_controller_error_needs_no_probe():
    server = Server(
        {
            ("GET", f"{BASE}/jobs"): (200, {"jobs": []}),
            ("POST", f"{BASE}/job/submit"): (500, NO_CONTROLLER),
        }
    )
    with pytest.raises(ControllerUnreachable):
        client(server).submit(spec())
    assert ("DELETE", f"{BASE}/job/0") not in server.seen


def test_a_proxy_error_is_retried_then_named():
    answers = iter([(502, None), (200, {"jobs": [record(1, "k", "RUNNING")]})])
    server = Server({("GET", f"{BASE}/job/1"): lambda r: next(answers)})
    assert client(server).status(1).state.value == "RUNNING"

    server = Server({("GET", f"{BASE}/job/1"): (503, None)})
    with pytest.raises(BridgeUnreachable, match="TLS proxy answers HTTP 503 after 3 attempts"):
        client(server).status(1)
    assert len(server.seen) == 3


def test_a_lost_submission_that_did_reach_slurm_is_not_submitted_again():
    jobs: list[dict[str, Any]] = []

    def submit(request: httpx.Request) -> Exception:
        jobs.append(record(41, "k-lost"))  # SLURM took it; the answer never came back
        return httpx.RemoteProtocolError("Server disconnected without sending a response.")

    server = Server(
        {
            ("GET", f"{BASE}/jobs"): lambda r: (200, {"jobs": list(jobs)}),
            ("POST", f"{BASE}/job/submit"): submit,
        }
    )
    assert client(server).submit(spec(idempotency_key="k-lost")) == 41
    assert server.seen.count(("POST", f"{BASE}/job/submit")) == 1


def test_a_retry_that_still_made_a_second_job_cancels_the_newer():
    # slurmrestd held the first request past the client's timeout, then submitted it anyway.
    jobs: list[dict[str, Any]] = []
    posts = iter([httpx.ReadTimeout("timed out"), (200, {"job_id": 43, "errors": []})])

    def submit(request: httpx.Request) -> Any:
        answer = next(posts)
        if isinstance(answer, Exception):
            return answer
        jobs.extend([record(42, "k-dup"), record(43, "k-dup")])
        return answer

    server = Server(
        {
            ("GET", f"{BASE}/jobs"): lambda r: (200, {"jobs": list(jobs)}),
            ("POST", f"{BASE}/job/submit"): submit,
            ("GET", f"{BASE}/job/43"): (200, {"jobs": [record(43, "k-dup")]}),
            ("DELETE", f"{BASE}/job/43"): (200, {"errors": []}),
        }
    )
    assert client(server).submit(spec(idempotency_key="k-dup")) == 42
    assert ("DELETE", f"{BASE}/job/43") in server.seen


def test_a_cancel_is_retried_while_the_controller_is_away():
    answers = iter([(500, NO_CONTROLLER), (200, {"errors": []})])
    server = Server(
        {
            ("DELETE", f"{BASE}/job/7"): lambda r: next(answers),
            ("GET", f"{BASE}/job/7"): (200, {"jobs": [record(7, "k", "CANCELLED")]}),
        }
    )
    assert client(server).cancel(7).state.value == "CANCELLED"
    assert server.seen.count(("DELETE", f"{BASE}/job/7")) == 2


def test_a_cancel_waits_out_slurms_kill_wait_for_the_final_state(monkeypatch):
    # Seen on a busy CI machine against Slurm 24.11: the job stayed "CANCELLED COMPLETING"
    # past the old 10 s settle, so `fedeploy bridge cancel` printed COMPLETING. A job that
    # ignores SIGTERM is COMPLETING for KillWait (30 s by default) before SIGKILL.
    clock = [1000.0]
    monkeypatch.setattr("fedeploy.bridge.client.time.monotonic", lambda: clock[0])
    cancelled_at: list[float] = []

    def delete(request: Any) -> tuple[int, dict[str, Any]]:
        cancelled_at.append(clock[0])
        return 200, {"errors": []}

    def get(request: Any) -> tuple[int, dict[str, Any]]:
        ending = not cancelled_at or clock[0] - cancelled_at[0] < 31
        state: Any = ["CANCELLED", "COMPLETING"] if ending else ["CANCELLED"]
        return 200, {"jobs": [record(7, "k", state)]}

    server = Server({("DELETE", f"{BASE}/job/7"): delete, ("GET", f"{BASE}/job/7"): get})
    bridge = client(server, sleep=lambda s: clock.__setitem__(0, clock[0] + s))

    status = bridge.cancel(7)

    assert status.state is JobState.CANCELLED, status.describe()
    assert 31 <= clock[0] - cancelled_at[0] < 33
    assert server.seen.count(("GET", f"{BASE}/job/7")) < 25, "a settling job is asked less often"
    # A caller that cannot wait gets the state as it is, flag first.
    assert bridge.cancel(7, settle=0).state in {JobState.CANCELLED, JobState.COMPLETING}


def test_a_waiter_that_gives_up_waits_at_most_ten_seconds_more_for_the_cancel(monkeypatch):
    # Review rcache29 F3: the waiter's cancel took the cancel's own 45 s settle, so a 60 s wait
    # for a job SLURM was still killing raised after 105 s.
    clock = [1000.0]
    monkeypatch.setattr("fedeploy.bridge.client.time.monotonic", lambda: clock[0])
    server = Server(
        {
            ("DELETE", f"{BASE}/job/7"): (200, {"errors": []}),
            ("GET", f"{BASE}/job/7"): (200, {"jobs": [record(7, "k", "RUNNING")]}),
        }
    )
    bridge = client(server, sleep=lambda s: clock.__setitem__(0, clock[0] + s))

    with pytest.raises(JobWaitTimeout) as timed_out:
        bridge.wait(7, timeout=60, poll=5)

    assert timed_out.value.cancelled
    assert 60 <= clock[0] - 1000.0 <= 71


def test_an_expired_token_is_refused_without_a_request():
    server = Server({})
    bridge = BridgeClient(
        URL, "fedeploy", token(exp=time.time() - 60), transport=httpx.MockTransport(server)
    )
    with pytest.raises(BridgeAuthError, match="expired at"):
        bridge.status(1)
    assert server.seen == []


def test_a_token_for_another_user_is_refused_at_once():
    with pytest.raises(
        BridgeAuthError, match="token is for user 'alice' but the client acts as 'fedeploy'"
    ):
        BridgeClient(URL, "fedeploy", token(user="alice"))


def test_401_and_a_foreign_404_are_named():
    with pytest.raises(BridgeAuthError, match="HTTP 401"):
        client(Server({("GET", f"{BASE}/job/1"): (401, None)})).status(1)
    with pytest.raises(BridgeProtocolError, match="is this a fedeploy bridge"):
        client(Server({("GET", f"{BASE}/job/1"): (404, None)})).status(1)


def test_a_partition_outside_the_bridges_list_is_refused_before_submitting():
    server = Server({})
    with pytest.raises(
        UnknownPartition, match="'cpu' is not one this bridge may use \\(allowed: gpu\\)"
    ):
        client(server, partitions=["gpu"]).submit(spec(partition="cpu"))
    assert server.seen == []


def test_the_environment_configures_the_client_and_the_token_stays_hidden():
    env = {
        "FEDEPLOY_BRIDGE_URL": URL,
        "FEDEPLOY_BRIDGE_USER": "fedeploy",
        "FEDEPLOY_BRIDGE_TOKEN": token(),
        "FEDEPLOY_BRIDGE_PARTITIONS": "gpu,small",
    }
    bridge = BridgeClient.from_env(env)
    assert bridge.partitions == ["gpu", "small"]
    assert env["FEDEPLOY_BRIDGE_TOKEN"] not in repr(bridge)
    with pytest.raises(BridgeError, match="FEDEPLOY_BRIDGE_USER, FEDEPLOY_BRIDGE_TOKEN"):
        BridgeClient.from_env({"FEDEPLOY_BRIDGE_URL": URL})


def test_a_job_slurm_forgot_is_named_with_min_job_age():
    from fedeploy.bridge.errors import JobNotFound

    with pytest.raises(JobNotFound, match="MinJobAge") as gone:
        client(Server({("GET", f"{BASE}/job/9"): (500, NO_SUCH_JOB)})).status(9)
    assert gone.value.job_id == 9


def test_a_plain_submission_never_lists_the_controllers_jobs():
    server = Server(
        {
            ("POST", f"{BASE}/job/submit"): (200, {"job_id": 50, "errors": []}),
            ("GET", f"{BASE}/job/50"): (200, {"jobs": [record(50, "k-plain", "RUNNING")]}),
        }
    )
    assert client(server).submit(spec(idempotency_key="k-plain")) == 50
    assert server.seen == [("POST", f"{BASE}/job/submit"), ("GET", f"{BASE}/job/50")]


def test_a_job_held_behind_an_older_twin_is_cancelled_and_the_twin_returned():
    # The controller holds job 61 back (singleton dependency): job 60 has the same key.
    server = Server(
        {
            ("POST", f"{BASE}/job/submit"): (200, {"job_id": 61, "errors": []}),
            ("GET", f"{BASE}/job/61"): (200, {"jobs": [record(61, "k-twin", reason="Dependency")]}),
            ("GET", f"{BASE}/jobs"): (
                200,
                {
                    "jobs": [
                        record(60, "k-twin", "RUNNING"),
                        record(61, "k-twin", reason="Dependency"),
                    ]
                },
            ),
            ("DELETE", f"{BASE}/job/61"): (200, {"errors": []}),
        }
    )
    assert client(server).submit(spec(idempotency_key="k-twin")) == 60
    assert ("DELETE", f"{BASE}/job/61") in server.seen
    assert ("DELETE", f"{BASE}/job/60") not in server.seen


def test_resume_finds_a_finished_job_with_the_key_before_submitting():
    server = Server({("GET", f"{BASE}/jobs"): (200, {"jobs": [record(70, "k-done", "COMPLETED")]})})
    assert client(server).submit(spec(idempotency_key="k-done"), resume=True) == 70
    assert ("POST", f"{BASE}/job/submit") not in server.seen


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("PartitionTimeLimit", "time limit is above the partition's MaxTime"),
        ("PartitionNodeLimit", "node count"),
        ("AccountNotAllowed", "does not admit the job's account"),
        ("QOSMaxWallDurationPerJobLimit", "per-job limit of its QOS"),
        ("AssocMaxCpuPerJobLimit", "per-job limit of its association"),
    ],
)
def test_a_job_that_can_never_start_is_cancelled_at_once_with_the_reason(reason, words):
    server = Server(
        {
            ("POST", f"{BASE}/job/submit"): (
                200,
                {
                    "job_id": 80,
                    "errors": [
                        {
                            "error_code": 2015,
                            "error": "Requested partition configuration not available now",
                        }
                    ],
                },
            ),
            ("GET", f"{BASE}/job/80"): (200, {"jobs": [record(80, "k", reason=reason)]}),
            ("DELETE", f"{BASE}/job/80"): (200, {"errors": []}),
        }
    )
    with pytest.raises(JobWillNotRun, match=words) as stuck:
        client(server).submit(spec())
    assert reason in str(stuck.value) and "cancelled it" in str(stuck.value)
    assert ("DELETE", f"{BASE}/job/80") in server.seen


@pytest.mark.parametrize(
    "reason",
    [
        "Priority",
        "Resources",
        "PartitionDown",
        "JobHeldAdmin",
        "QOSMaxJobsPerUserLimit",
        "AssocGrpCpuLimit",
    ],
)
def test_a_transient_reason_keeps_the_wait_going(reason):
    polls = iter([record(81, "k", reason=reason)] * 3 + [record(81, "k", "COMPLETED")])
    server = Server({("GET", f"{BASE}/job/81"): lambda r: (200, {"jobs": [next(polls)]})})
    assert client(server).wait(81, timeout=60, poll=0).state is JobState.COMPLETED
    assert not any(method == "DELETE" for method, _ in server.seen)


def test_a_wait_stops_when_a_job_turns_out_never_to_start():
    polls = iter([record(82, "k"), record(82, "k", reason="QOSMaxCpuPerJobLimit")])
    server = Server(
        {
            ("GET", f"{BASE}/job/82"): lambda r: (
                200,
                {"jobs": [next(polls, record(82, "k", "CANCELLED"))]},
            ),
            ("DELETE", f"{BASE}/job/82"): (200, {"errors": []}),
        }
    )
    with pytest.raises(JobWillNotRun, match="QOSMaxCpuPerJobLimit"):
        client(server).wait(82, timeout=60, poll=0)


def test_an_unknown_state_of_our_own_job_is_waited_on_not_raised():
    polls = iter([record(83, "k", "WARPING"), record(83, "k", "COMPLETED")])
    server = Server({("GET", f"{BASE}/job/83"): lambda r: (200, {"jobs": [next(polls)]})})
    bridge = client(server)
    assert bridge.status(83).describe().startswith("job 83 (j) is unknown (WARPING)")
    assert bridge.wait(83, timeout=60, poll=0).state is JobState.COMPLETED


NGINX_413 = (
    "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    "<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def test_a_413_from_the_proxy_says_the_script_is_too_large_and_the_limit():
    page = httpx.Response(413, text=NGINX_413, headers={"content-type": "text/html"})
    server = Server({("POST", f"{BASE}/job/submit"): page})
    big = spec(script="#!/bin/bash\n" + "# padding\n" * 520_000)
    with pytest.raises(
        ScriptTooLarge, match="script too large: the bridge accepts at most 4 MiB"
    ) as err:
        client(server).submit(big)
    assert "HTTP 413 (413 Request Entity Too Large)" in str(err.value)
    assert "5.5 MiB" in str(err.value)  # the script as JSON (each newline is two bytes)
    assert server.seen.count(("POST", f"{BASE}/job/submit")) == 1  # a 413 is not a lost answer


def test_another_proxy_error_is_named_as_the_proxys():
    page = httpx.Response(
        400,
        text="<html><head><title>400 Request Header Or Cookie Too Large</title></head></html>",
        headers={"content-type": "text/html"},
    )
    with pytest.raises(
        ProxyError,
        match="answered HTTP 400 \\(400 Request Header Or Cookie Too Large\\): an error of the proxy, not of SLURM",
    ):
        client(Server({("GET", f"{BASE}/job/1"): page})).status(1)


def test_a_parsing_failure_for_gpus_is_explained():
    server = Server(
        {
            ("POST", f"{BASE}/job/submit"): (
                500,
                {
                    "errors": [{"error_code": 9001, "error": "Failure during parsing"}],
                    "job_id": None,
                },
            ),
        }
    )
    with pytest.raises(SubmissionRejected) as refused:
        client(server).submit(spec(gpus=1))
    text = str(refused.value)
    assert "ESLURM_REST_FAIL_PARSING" in text and "SLURM error 9001" in text
    assert "asks for 1 GPU(s)" in text


def test_the_clients_body_limit_is_the_proxys():
    import re
    from pathlib import Path

    from fedeploy.bridge.client import PROXY_BODY_LIMIT_MIB

    template = Path(__file__).parents[2] / "templates" / "bridge" / "tls-proxy.conf.j2"
    [limit] = re.findall(r"client_max_body_size\s+(\d+)m;", template.read_text())
    assert int(limit) == PROXY_BODY_LIMIT_MIB


SECRET = "Zq/4Xk9vR2wLp7Yt/Hs3Nm8Jc1Ud6Ef0Ga5Bi"  # an opaque token with slashes


def _refusing(secret: str, body: bytes) -> BridgeClient:
    """A client whose submission slurmrestd refuses with HTTP 500 and this body."""
    server = Server({("POST", f"{BASE}/job/submit"): httpx.Response(500, content=body)})
    return BridgeClient(
        URL,
        "fedeploy",
        secret,
        transport=httpx.MockTransport(server),
        sleep=lambda s: None,
        api_version="v0.0.38",
        retries=0,
    )


@pytest.mark.parametrize(
    "echo",
    [
        pytest.param(lambda t: t.replace("/", "\\/"), id="slashes-escaped"),
        pytest.param(lambda t: "".join(f"\\u{ord(c):04x}" for c in t), id="all-escaped"),
        pytest.param(
            lambda t: "".join(f"\\u{ord(c):04X}" if i % 3 else c for i, c in enumerate(t)),
            id="some-escaped",
        ),
        pytest.param(lambda t: t[7:30], id="truncated"),
        pytest.param(lambda t: t[3:40].replace("/", "\\/"), id="truncated-escaped"),
    ],
)
def test_an_echo_of_the_token_in_any_json_form_is_blanked(echo):
    secret = SECRET
    body = f'{{"errors": [{{"error_number": 9999, "error": "bad token {echo(secret)}"}}]}}'
    bridge = _refusing(SECRET, body.encode())
    with pytest.raises(SubmissionRejected) as refused:
        bridge.submit(spec())
    message = str(refused.value)
    assert "[token]" in message
    assert not any(secret[i : i + 15] in message for i in range(len(secret) - 14)), message


def test_words_that_share_a_few_characters_with_the_token_stay():
    body = b'{"errors": [{"error_number": 9999, "error": "Zq\\/4Xk9 and Ga5Bi at \\u00e9"}]}'
    bridge = _refusing(SECRET, body)
    with pytest.raises(SubmissionRejected, match="Zq/4Xk9 and Ga5Bi at \u00e9"):
        bridge.submit(spec())


class TricklingServer(socketserver.ThreadingTCPServer):
    """A hostile HTTP server of this test's own on loopback (not slurmrestd): it sends `at_once`,
    then `trickled` one byte at a time, `pause` seconds apart, so that no single read times out."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, at_once: bytes, trickled: bytes, pause: float):
        super().__init__(("127.0.0.1", 0), _Trickle)
        self.at_once, self.trickled, self.pause = at_once, trickled, pause
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Trickle(socketserver.BaseRequestHandler):
    server: TricklingServer

    def handle(self) -> None:
        self.request.recv(65536)
        try:
            self.request.sendall(self.server.at_once)
            for byte in self.server.trickled:
                self.request.sendall(bytes([byte]))
                time.sleep(self.server.pause)
        except OSError:
            return  # the client gave up


@pytest.mark.parametrize("where", ["headers", "body"])
def test_timeout_bounds_the_whole_answer_not_each_read(where):
    body = json.dumps({"jobs": [], "errors": []}).encode() + b" " * 200
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    if where == "headers":
        server = TricklingServer(b"", head.encode() + body, pause=0.05)
    else:
        server = TricklingServer(head.encode(), body, pause=0.05)
    try:
        bridge = BridgeClient(
            server.url, "fedeploy", token(), timeout=1.0, retries=0, api_version="v0.0.38"
        )
        started = time.monotonic()
        with pytest.raises(BridgeUnreachable, match="no whole answer within 1 s"):
            bridge.status(5)
        assert time.monotonic() - started < 3
    finally:
        server.shutdown()
        server.server_close()
