"""The REST API versions after v0.0.38: the v0.0.40+ adapters' shapes, how the client chooses a
version, and how 24.11 reports a refused token and a down controller (answers as a real
slurmrestd 24.11.5 sent them; tests/integration/slurm runs the same paths against it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from fedeploy.bridge import client as client_module
from fedeploy.bridge.client import BridgeClient
from fedeploy.bridge.errors import (
    BridgeAuthError,
    BridgeProtocolError,
    ControllerUnreachable,
    JobWillNotRun,
)
from fedeploy.bridge.jobs import JobState
from fedeploy.bridge.slurm_api import (
    SUPPORTED_VERSIONS,
    SlurmRestV0038,
    SlurmRestV0040,
    SlurmRestV0043,
    adapter_for,
    choose_version,
    number_value,
    offered_versions,
)
from tests.unit.test_bridge_client import Server, client
from tests.unit.test_bridge_slurm_api import spec

URL = "https://bridge.example.eu:6820"
NEWER = [adapter_for(v) for v in SUPPORTED_VERSIONS if v != "v0.0.38"]

# The fields the client sends and reads, and their JSON types, as SchedMD's published OpenAPI
# documents give them for v0.0.40 to v0.0.45 (job_desc_msg and job_info; written down here from
# reading the documents, the same for every version of the family). "number" is the
# {set, infinite, number} object.
SENT = {
    "script": "string",
    "name": "string",
    "dependency": "string",
    "comment": "string",
    "time_limit": "number",
    "tasks": "integer",
    "cpus_per_task": "integer",
    "current_working_directory": "string",
    "environment": "array",
    "standard_output": "string",
    "standard_error": "string",
    "requeue": "boolean",
    "partition": "string",
    "memory_per_node": "number",
    "account": "string",
    "qos": "string",
    "tres_per_job": "string",
}

# A record of GET /slurm/v0.0.42/job/N from slurmrestd 24.11.5 (fields the client reads, and
# a few it does not): a job that exited 3.
RECORD_2411: dict[str, Any] = {
    "job_id": 1,
    "job_state": ["FAILED"],
    "exit_code": {
        "status": ["ERROR"],
        "return_code": {"set": True, "infinite": False, "number": 3},
        "signal": {"id": {"set": False, "infinite": False, "number": 0}, "name": ""},
    },
    "name": "t1-5eb550184c93",
    "user_id": 996,
    "user_name": "fedeploy-jobs",
    "batch_host": "vm",
    "comment": "fedeploy-key:5eb550184c934337befdd5b945af624b",
    "standard_output": "/tmp/s24/jobs/t1/t1-1.out",  # 24.11 reports it expanded
    "standard_error": "",
    "state_reason": "NonZeroExitCode",
    "state_description": "",
    "partition": "debug",
    "nodes": "vm",
    "array_job_id": {"set": True, "infinite": False, "number": 0},
    "array_task_id": {"set": False, "infinite": False, "number": 0},
    "time_limit": {"set": True, "infinite": False, "number": 5},
}


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict) and set(value) == {"set", "infinite", "number"}:
        return "number"
    return type(value).__name__


@pytest.mark.parametrize("api", NEWER, ids=lambda a: a.version)
def test_each_newer_version_sends_the_documented_shapes(api):
    full = spec(
        cpus=4,
        memory_mb=8000,
        gpus=2,
        stdout="/scratch/run/%j.out",
        stderr="/scratch/run/%j.err",
        account="proj",
        qos="normal",
        idempotency_key="k1",
        environment={"FOO": "a=b"},
    )
    body = api.submission(full, partition="gpu")
    # The script goes in the job (top-level `script` is deprecated from v0.0.41).
    assert set(body) == {"job"}
    job = body["job"]
    assert {k: _type(v) for k, v in job.items()} == {k: SENT[k] for k in job}
    assert job["environment"] == [
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "FOO=a=b",
        "SLURM_CPUS_PER_TASK=4",
    ]
    assert job["time_limit"] == {"set": True, "infinite": False, "number": 30}
    assert job["memory_per_node"] == {"set": True, "infinite": False, "number": 8000}
    assert job["tres_per_job"] == "gres/gpu:2" and "gpus" not in job
    assert (job["dependency"], job["comment"]) == ("singleton", "fedeploy-key:k1")
    assert api.submit_path == f"/slurm/{api.version}/job/submit"


def test_v0038_keeps_its_own_shapes():
    body = adapter_for("v0.0.38").submission(spec(memory_mb=10, gpus=1), partition=None)
    assert body["script"].startswith("#!") and body["job"]["time_limit"] == 30
    assert isinstance(body["job"]["environment"], dict) and body["job"]["gpus"] == "1"


def test_the_families():
    assert type(adapter_for("v0.0.38")) is SlurmRestV0038
    assert {type(adapter_for(v)) for v in ("v0.0.40", "v0.0.41", "v0.0.42")} == {SlurmRestV0040}
    assert {type(adapter_for(v)) for v in ("v0.0.43", "v0.0.44", "v0.0.45")} == {SlurmRestV0043}
    assert SUPPORTED_VERSIONS[0] == "v0.0.38" and SUPPORTED_VERSIONS[-1] == "v0.0.45"


def test_a_2411_record_reads_as_a_2205_one():
    status = adapter_for("v0.0.42").job(RECORD_2411)
    assert (status.state, status.exit_code, status.signal) == (JobState.FAILED, 3, None)
    assert status.reason == "NonZeroExitCode" and status.idempotency_key is not None
    assert status.stdout == status.stderr == "/tmp/s24/jobs/t1/t1-1.out"
    assert status.user == "fedeploy-jobs" and status.raw_state == "FAILED"


def test_exit_code_objects_and_flags():
    api = adapter_for("v0.0.42")
    killed = api.job(
        {
            **RECORD_2411,
            "job_state": ["CANCELLED"],
            "exit_code": {
                "status": ["SIGNALED"],
                "return_code": {"set": True, "infinite": False, "number": 0},
                "signal": {"id": {"set": True, "infinite": False, "number": 9}, "name": "KILL"},
            },
        }
    )
    assert (killed.exit_code, killed.signal) == (0, 9)
    ok = api.job({**RECORD_2411, "job_state": ["COMPLETED"], "exit_code": {"status": ["SUCCESS"]}})
    assert (ok.exit_code, ok.signal) == (0, None)
    running = api.job({**RECORD_2411, "job_state": ["RUNNING"]})
    assert running.exit_code is None and not running.finished
    flagged = api.job({**RECORD_2411, "job_state": ["PENDING", "REQUEUED"]})
    assert flagged.state is JobState.REQUEUED
    odd = api.job({**RECORD_2411, "job_state": ["NEW_STATE_2031"], "exit_code": "garbage"})
    assert odd.state is JobState.UNKNOWN and "NEW_STATE_2031" in odd.describe()


def test_another_users_array_task_with_a_dependency_is_read_leniently():
    """Array ids are numbers as objects and --dependency a string on 24.11; the client never
    submits either (#SBATCH --array and --dependency are refused) but reads them in listings."""
    task = {
        **RECORD_2411,
        "job_id": 41,
        "job_state": ["PENDING"],
        "state_reason": "Dependency",
        "user_name": "someone-else",
        "comment": "",
        "array_job_id": {"set": True, "infinite": False, "number": 40},
        "array_task_id": {"set": True, "infinite": False, "number": 3},
        "array_task_string": "3-9%2",
        "dependency": "afterok:39(unfulfilled)",
        "standard_output": "/home/other/out-%A_%a.txt",
    }
    api = adapter_for("v0.0.42")
    status = api.job(task)
    assert (status.job_id, status.state, status.reason_code) == (41, JobState.PENDING, "Dependency")
    assert status.user == "someone-else" and status.idempotency_key is None
    # Another user's record never counts for a key, whatever its fields.
    assert api.jobs_with_key({"jobs": [task]}, "k", "fedeploy") == []


def test_numbers_as_objects():
    assert number_value({"set": True, "infinite": False, "number": 7}) == 7
    assert number_value({"set": False, "infinite": False, "number": 7}) is None
    assert number_value({"set": True, "infinite": True, "number": 0}) == float("inf")
    assert number_value(5) == 5 and number_value(True) is None and number_value("5") is None


def test_a_cancels_per_job_errors_are_read():
    body = {"status": [{"error": {"code": 2017, "message": "Invalid job id specified"}}]}
    assert [(e.number, e.message) for e in adapter_for("v0.0.42").errors(body)] == [
        (2017, "Invalid job id specified")
    ]
    assert adapter_for("v0.0.42").warnings(
        {"warnings": [{"description": "Ignoring unknown field", "source": "#/job/gres/"}]}
    ) == ["Ignoring unknown field (#/job/gres/)"]


# -- choosing the version ------------------------------------------------------------------


def _document(*versions: str) -> dict[str, Any]:
    paths: dict[str, Any] = {f"/slurm/{v}/ping/": {} for v in versions}
    paths["/slurmdb/v0.0.99/jobs/"] = {}  # slurmdbd's API does not count
    return {"openapi": "3.0.2", "paths": paths}


def test_the_newest_version_both_speak_is_chosen():
    assert offered_versions(_document("v0.0.42", "v0.0.40", "v0.0.41")) == [
        "v0.0.40",
        "v0.0.41",
        "v0.0.42",
    ]
    assert choose_version(["v0.0.40", "v0.0.41", "v0.0.42"], URL) == "v0.0.42"
    assert choose_version(["v0.0.36", "v0.0.37", "v0.0.38"], URL) == "v0.0.38"
    assert choose_version(["v0.0.44", "v0.0.45", "v0.0.46"], URL) == "v0.0.45"


def test_a_centre_offering_nothing_we_speak_is_one_clear_error():
    with pytest.raises(BridgeProtocolError) as none:
        choose_version(["v0.0.36", "v0.0.37", "v0.0.39"], URL)
    message = str(none.value)
    assert "offers v0.0.36, v0.0.37, v0.0.39" in message
    assert "speaks v0.0.38, v0.0.40, v0.0.41, v0.0.42, v0.0.43, v0.0.44, v0.0.45" in message
    with pytest.raises(BridgeProtocolError, match="not an OpenAPI document"):
        offered_versions(["/slurm/v0.0.42/ping"])


@pytest.fixture(autouse=True)
def _no_remembered_versions():
    client_module._negotiated.clear()
    yield
    client_module._negotiated.clear()


def _client(server: Server, **options: Any) -> BridgeClient:
    """test_bridge_client's client, negotiating unless a version is given."""
    return client(server, **{"retries": 0, "api_version": None, **options})


def _job(job_id: int, state: str, reason: str) -> dict[str, Any]:
    return {
        "jobs": [
            {
                **RECORD_2411,
                "job_id": job_id,
                "job_state": [state],
                "state_reason": reason,
                "comment": "fedeploy-key:k",
                "user_name": "fedeploy",
            }
        ]
    }


def test_the_client_negotiates_once_per_endpoint_and_speaks_the_choice():
    server = Server(
        {
            ("GET", "/openapi/v3"): (200, _document("v0.0.40", "v0.0.41", "v0.0.42")),
            ("GET", "/slurm/v0.0.42/job/7"): (200, _job(7, "RUNNING", "None")),
        }
    )
    with _client(server) as first, _client(server) as second:
        assert first.status(7).state is JobState.RUNNING
        assert second.api_version == "v0.0.42"
    assert server.seen.count(("GET", "/openapi/v3")) == 1  # remembered for NEGOTIATION_TTL_S
    pinned = Server({("GET", "/slurm/v0.0.40/job/7"): (200, _job(7, "RUNNING", "None"))})
    with _client(pinned, api_version="v0.0.40") as bridge:
        assert bridge.status(7).state is JobState.RUNNING
    assert ("GET", "/openapi/v3") not in pinned.seen


def test_a_version_no_longer_served_is_negotiated_again_by_the_next_client():
    page = httpx.Response(404, html="<html><title>404 Not Found</title></html>")
    offered = {"versions": ("v0.0.38",)}
    server = Server(
        {
            ("GET", "/openapi/v3"): lambda request: (200, _document(*offered["versions"])),
            ("GET", "/slurm/v0.0.38/job/7"): page,  # the centre upgraded meanwhile
            ("GET", "/slurm/v0.0.42/job/7"): (200, _job(7, "RUNNING", "None")),
        }
    )
    with _client(server) as before:
        assert before.api_version == "v0.0.38"
        offered["versions"] = ("v0.0.40", "v0.0.41", "v0.0.42")
        with pytest.raises(BridgeProtocolError, match="HTTP 404"):
            before.status(7)
    with _client(server) as after:
        assert after.status(7).state is JobState.RUNNING and after.api_version == "v0.0.42"


def test_a_centre_offering_only_old_versions_is_refused_by_name():
    server = Server({("GET", "/openapi/v3"): (200, _document("v0.0.36", "v0.0.37"))})
    with _client(server) as bridge, pytest.raises(BridgeProtocolError) as refused:
        bridge.status(1)
    assert "offers v0.0.36, v0.0.37; the bridge client speaks v0.0.38" in str(refused.value)


def test_a_proxy_rendered_before_negotiation_is_probed_by_ping():
    # Its nginx answers 404 (an HTML page) for everything but its one version.
    page = httpx.Response(404, html="<html><title>404 Not Found</title></html>")
    routes: dict[tuple[str, str], Any] = {("GET", "/openapi/v3"): page}
    for version in SUPPORTED_VERSIONS:
        routes[("GET", f"/slurm/{version}/ping")] = page
    routes[("GET", "/slurm/v0.0.38/ping")] = (200, {"pings": []})
    routes[("GET", "/slurm/v0.0.38/job/3")] = (
        200,
        {"jobs": [{"job_id": 3, "job_state": "RUNNING"}]},
    )
    with _client(Server(routes)) as bridge:
        assert bridge.status(3).state is JobState.RUNNING
        assert bridge.api_version == "v0.0.38"


def test_2411s_refused_token_is_an_authentication_error():
    refused = {
        "errors": [
            {
                "description": "Unable to query JobId=67108862",
                "error_number": 1007,
                "error": "Protocol authentication error",
                "source": "_handle_job_get",
            }
        ]
    }
    server = Server(
        {
            ("GET", "/slurm/v0.0.42/job/5"): (511, {"errors": refused["errors"]}),
            ("GET", "/slurm/v0.0.42/job/67108862"): (511, refused),
        }
    )
    with _client(server, api_version="v0.0.42") as bridge, pytest.raises(BridgeAuthError) as err:
        bridge.status(5)
    assert "slurmctld refused the token" in str(err.value)


def test_2411s_down_controller_is_named_from_its_ping():
    unspecified = {"errors": [{"error_number": -1, "description": "Unable to query JobId=5"}]}
    ping = {"pings": [{"hostname": "vm", "pinged": "DOWN", "responding": False, "mode": "primary"}]}
    server = Server(
        {
            ("GET", "/slurm/v0.0.42/job/5"): (500, unspecified),
            ("GET", "/slurm/v0.0.42/job/67108862"): (500, unspecified),
            ("GET", "/slurm/v0.0.42/ping"): (200, ping),
        }
    )
    with (
        _client(server, api_version="v0.0.42") as bridge,
        pytest.raises(ControllerUnreachable, match="its ping says the controller does not respond"),
    ):
        bridge.status(5)


def test_a_2411_waiter_cancels_a_job_once_the_scheduler_names_a_permanent_reason():
    # 24.11 leaves the reason at None until its scheduler's next pass (22.05 named it at once).
    answers = iter(
        [
            _job(9, "PENDING", "None"),
            _job(9, "PENDING", "None"),
            _job(9, "PENDING", "PartitionTimeLimit"),
        ]
    )
    cancelled = _job(9, "CANCELLED", "PartitionTimeLimit")
    state = {"cancelled": False}

    def job(request: httpx.Request) -> tuple[int, Any]:
        return 200, cancelled if state["cancelled"] else next(answers)

    def cancel(request: httpx.Request) -> tuple[int, Any]:
        state["cancelled"] = True
        return 200, {"status": []}

    server = Server(
        {
            ("POST", "/slurm/v0.0.42/job/submit"): (200, {"job_id": 9, "errors": []}),
            ("GET", "/slurm/v0.0.42/job/9"): job,
            ("DELETE", "/slurm/v0.0.42/job/9"): cancel,
        }
    )
    with _client(server, api_version="v0.0.42") as bridge:
        job_id = bridge.submit(spec(idempotency_key="k"))
        assert not state["cancelled"]
        with pytest.raises(JobWillNotRun, match="PartitionTimeLimit"):
            bridge.wait(job_id, timeout=60, poll=0.1)
    assert state["cancelled"]


# -- the node rendered for the site's release -------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "plugin", "parser", "probe"),
    [
        (None, "openapi/v0.0.38", None, "-X DELETE"),
        ("v0.0.38", "openapi/v0.0.38", None, "-X DELETE"),
        ("v0.0.40", "openapi/slurmctld", "data_parser/v0.0.40", "-X GET"),
        ("v0.0.42", "openapi/slurmctld", "data_parser/v0.0.42", "-X GET"),
        ("v0.0.45", "openapi/slurmctld", "data_parser/v0.0.45", "-X GET"),
    ],
)
def test_the_node_serves_the_declared_version_only(declared, plugin, parser, probe):
    from tests.unit.test_bridge_templates import files, gateway, render

    rendered = files(render(gateway(api_version=declared)))
    version = declared or "v0.0.38"
    env = dict(
        line.split("=", 1) for line in rendered["slurmrestd.env"].splitlines() if "=" in line
    )
    assert env["SLURMRESTD_OPENAPI_PLUGINS"] == plugin
    assert env.get("SLURMRESTD_DATA_PARSER_PLUGINS") == parser
    proxy = rendered["tls-proxy.conf"]
    escaped = version.replace(".", r"\.")
    assert rf"location ~ ^/slurm/{escaped}/(ping|jobs|job/submit|job/[0-9]+)$" in proxy
    assert "location = /openapi/v3 {" in proxy
    verify = rendered["verify.sh"]
    # The client's own probe: 24.11 refuses job 0 (9000) and answers a refused token with 1007.
    job = "0" if version == "v0.0.38" else "67108862"
    assert probe in verify and f"/slurm/{version}/job/{job}" in verify
    refused = "5005" if version == "v0.0.38" else "1007|5005"
    assert f"({refused})" in verify


@pytest.mark.parametrize("declared", ["v0.0.40", "v0.0.41", "v0.0.42"])
def test_a_site_declaring_a_2411_version_plans(declared):
    from tests.unit.test_slurm_bridge_component import COMMAND, existing, gateway, run

    mocks, outputs = run(gateway(api_version=declared))
    setup = next(c for c in mocks.by_type(COMMAND) if c.name.endswith("-setup"))
    assert f"SLURMRESTD_DATA_PARSER_PLUGINS=data_parser/{declared}" in setup.inputs["create"]
    assert "SLURMRESTD_OPENAPI_PLUGINS=openapi/slurmctld" in setup.inputs["create"]
    assert outputs["endpoint"].startswith("https://")
    _, pinned = run(existing().model_copy(update={"api_version": declared}))
    assert pinned["endpoint"] == "https://slurm-api.centre.example.eu:8443"


def test_the_stack_file_accepts_exactly_the_versions_the_client_speaks():
    from typing import get_args

    from fedeploy.config.bridge import ApiVersion

    assert get_args(ApiVersion) == SUPPORTED_VERSIONS


@pytest.mark.parametrize(
    ("required", "outcome", "code"),
    [("1", "integration peer missing (FEDEPLOY_REQUIRE_INTEGRATION=1)", 1), ("", "1 skipped", 0)],
)
def test_a_missing_2411_controller_fails_in_ci_and_skips_elsewhere(
    tmp_path, required, outcome, code
):
    """The integration suite's 24.11 half without its root filesystem: a failure naming it
    where FEDEPLOY_REQUIRE_INTEGRATION=1 (CI), a skip on a developer's machine."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "FEDEPLOY_REQUIRE_INTEGRATION": required,
        "FEDEPLOY_SLURM_RELEASES": "24.11",
        "FEDEPLOY_SLURM_ROOTFS": str(tmp_path / "absent"),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rsf",
            "tests/integration/slurm/test_bridge_node.py::test_the_jwt_key_is_private_to_the_slurm_user",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=120,
    )
    assert (result.returncode, outcome in result.stdout) == (code, True), result.stdout[-2000:]
    assert f"no Slurm 24.11 root filesystem at {tmp_path / 'absent'}" in result.stdout


def test_fedeploy_verify_asks_an_unpinned_bridge_for_its_description():
    from fedeploy.verify.checks import bridge_probe
    from tests.unit.test_verify import client as answering

    # Unpinned, the bridge has no version to ping: its description answers for every version.
    unpinned = bridge_probe("https://b.example", None)(answering(401))
    assert unpinned.passed and "GET https://b.example/openapi/v3" in unpinned.evidence
    pinned = bridge_probe("https://b.example", "v0.0.42")(answering(200))
    assert pinned.passed and "GET https://b.example/slurm/v0.0.42/ping" in pinned.evidence


def test_a_2411_output_path_is_taken_as_reported_but_for_the_node():
    # 24.11 reports "o-%%j-%j-%N.txt" of job 4 as "o-%j-4-%N.txt": %% is already a literal %.
    record = {**RECORD_2411, "job_id": 4, "standard_output": "/o/o-%j-4-%N.txt"}
    assert adapter_for("v0.0.42").job(record).stdout == "/o/o-%j-4-vm.txt"
    # 22.05 reports the pattern itself.
    assert adapter_for("v0.0.38").job(record).stdout == "/o/o-4-4-vm.txt"


def test_a_hostile_api_document_is_a_protocol_error_not_a_crash():
    nines = {"paths": {f"/slurm/v{'9' * 5000}.0.0/ping/": {}, "/slurm/v0.0.42/ping/": {}}}
    assert offered_versions(nines) == ["v0.0.42"]
    many = {"paths": {f"/slurm/v0.{n}.0/ping/": {} for n in range(200_000)}}
    with pytest.raises(BridgeProtocolError) as none:
        choose_version(offered_versions(many), URL)
    assert len(str(none.value)) < 600 and "and 199988 older" in str(none.value)
    deep = httpx.Response(200, content=b"[" * 200_000, headers={"content-type": "application/json"})
    with (
        _client(Server({("GET", "/openapi/v3"): deep})) as bridge,
        pytest.raises(BridgeProtocolError, match="nests JSON deeper than 64 levels"),
    ):
        bridge.status(1)


def test_an_answer_too_large_to_read_is_a_protocol_error(monkeypatch):
    monkeypatch.setattr(client_module, "MAX_ANSWER_MIB", 1)
    huge = httpx.Response(200, content=b" " * (2**20 + 1))
    with (
        _client(Server({("GET", "/openapi/v3"): huge})) as bridge,
        pytest.raises(BridgeProtocolError, match="larger than 1 MiB"),
    ):
        bridge.status(1)


def test_json_strings_do_not_count_towards_the_depth():
    assert not client_module._json_depth_exceeds(b'{"a": "' + b"[" * 100 + b'\\"["}', 64)
    assert client_module._json_depth_exceeds(b"[" * 65, 64)
    assert not client_module._json_depth_exceeds(b"[]" * 100, 64)
