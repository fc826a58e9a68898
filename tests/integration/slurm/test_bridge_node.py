"""The rendered node configuration drives the real daemons, and the setup script is idempotent."""

from __future__ import annotations

import os
import pwd
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from fedeploy.bridge.client import BridgeClient
from fedeploy.bridge.firewall import firewall_rules
from fedeploy.bridge.jobs import JobSpec
from fedeploy.bridge.node_config import bridge_node
from fedeploy.bridge.slurm_api import adapter_for, offered_versions
from fedeploy.bridge.tokens import mint_token

pytestmark = pytest.mark.integration


def _pid(path: Path) -> int:
    return int(path.read_text().split()[0])


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_slurmrestd_runs_as_the_dedicated_user_with_the_rendered_settings(slurm):
    pid = _pid(slurm.root / "run" / "slurmrestd.pid")
    env = _environ(pid)

    assert pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name == slurm.config.daemon_user
    assert env["SLURM_JWT"] == "daemon"
    assert env["SLURMRESTD_AUTH_TYPES"] == "rest_auth/jwt"
    assert env["SLURMRESTD_LISTEN"] == f"127.0.0.1:{slurm.ports['internal']}"
    # 22.05: one openapi plugin per version; 24.11: openapi/slurmctld and the one data_parser.
    if slurm.release == "22.05":
        assert env["SLURMRESTD_OPENAPI_PLUGINS"] == "openapi/v0.0.38"
        assert "SLURMRESTD_DATA_PARSER_PLUGINS" not in env
    else:
        assert env["SLURMRESTD_OPENAPI_PLUGINS"] == "openapi/slurmctld"
        assert env["SLURMRESTD_DATA_PARSER_PLUGINS"] == f"data_parser/{slurm.api_version}"


def test_slurmrestd_offers_exactly_the_declared_version(slurm):
    """The node is rendered for the release the site declares: its /openapi/v3 offers the
    site's api_version and no other slurmctld API, and the client negotiates that one."""
    context = ssl.create_default_context(cafile=slurm.ca_file)
    headers = {"X-SLURM-USER-NAME": slurm.user, "X-SLURM-USER-TOKEN": slurm.token()}
    with httpx.Client(base_url=slurm.endpoint, verify=context, headers=headers) as http:
        document = http.get("/openapi/v3").json()
    offered = offered_versions(document)
    if slurm.release == "22.05":
        assert offered == ["v0.0.38"]
    else:
        assert offered == [slurm.api_version]
    with BridgeClient(slurm.endpoint, slurm.user, slurm.token(), ca_file=slurm.ca_file) as bridge:
        assert bridge.api_version == slurm.api_version


def test_the_tls_proxy_serves_only_the_client_api(slurm):
    context = ssl.create_default_context(cafile=slurm.ca_file)
    headers = {"X-SLURM-USER-NAME": slurm.user, "X-SLURM-USER-TOKEN": slurm.token()}
    with httpx.Client(base_url=slurm.endpoint, verify=context, headers=headers) as http:
        base = f"/slurm/{slurm.api_version}"
        assert http.get(f"{base}/ping").status_code == 200
        assert http.get(f"{base}/nodes").status_code == 404
        assert http.patch(f"{base}/job/1").status_code == 403
        # The description clients choose their version from: read-only.
        assert http.get("/openapi/v3").status_code == 200
        assert http.post("/openapi/v3").status_code == 403
        assert http.get("/openapi/v3/other").status_code == 404


def test_the_rest_port_speaks_only_tls(slurm):
    response = httpx.get(f"http://127.0.0.1:{slurm.ports['rest']}/slurm/{slurm.api_version}/ping")
    assert response.status_code == 400  # nginx: "The plain HTTP request was sent to HTTPS port"


def test_the_jwt_key_is_private_to_the_slurm_user(slurm):
    info = os.stat(slurm.key_path)
    assert pwd.getpwuid(info.st_uid).pw_name == "slurm"
    assert info.st_mode & 0o777 == 0o600


def test_running_the_setup_again_changes_nothing(slurm):
    output = slurm.run_setup(slurm.node)
    assert "updated" not in output
    assert "nothing changed" in output


def test_a_changed_template_input_is_applied_and_only_that(slurm):
    wider = bridge_node(
        slurm.config,
        bridge_name="itest",
        firewall=firewall_rules(slurm.config.rest_port, ["127.0.0.0/8", "10.20.0.0/16"]),
        tls_name="localhost",
        layout=slurm.layout,
        slurm=slurm.slurm,
    )
    try:
        output = slurm.run_setup(wider)
        assert output.splitlines()[0] == f"updated {slurm.layout.firewall}"
        assert "10.20.0.0/16" in Path(slurm.layout.firewall).read_text()
        assert wider.content_hash != slurm.node.content_hash
    finally:
        restored = slurm.run_setup(slurm.node)
    assert f"updated {slurm.layout.firewall}" in restored
    assert "nothing changed" in slurm.run_setup(slurm.node)


def test_the_verify_script_names_a_key_the_controller_does_not_hold(slurm):
    forged = mint_token("another-key" * 6, slurm.user, now=time.time(), lifetime_hours=2)
    result = subprocess.run(
        ["bash", slurm.layout.verify], input=forged, capture_output=True, text=True
    )

    assert result.returncode == 1
    assert "the controller refused a token signed with the bridge's key" in result.stderr
    assert f"jwt_key={slurm.key_path}" in result.stderr


def test_the_setup_refuses_a_secret_it_does_not_know(slurm):
    setup = slurm.root / "setup.sh"
    bad = slurm.secrets_stdin() + "ssh.key\tAAAA\n"
    result = subprocess.run(
        ["bash", str(setup)], input=bad, capture_output=True, text=True, env=slurm.env()
    )
    assert result.returncode == 1
    assert "unexpected secret 'ssh.key'" in result.stderr


def test_the_setup_says_which_secret_is_missing(slurm):
    setup = slurm.root / "setup.sh"
    partial = "".join(
        line + "\n" for line in slurm.secrets_stdin().splitlines() if not line.startswith("tls.key")
    )
    result = subprocess.run(
        ["bash", str(setup)], input=partial, capture_output=True, text=True, env=slurm.env()
    )
    assert result.returncode == 1
    assert "secret 'tls.key' is missing" in result.stderr


def test_the_controller_runs_the_rendered_slurm_conf(slurm):
    shown = subprocess.run(
        slurm.command(["scontrol", "show", "config"]),
        capture_output=True,
        text=True,
        check=True,
        env=slurm.env(),
    ).stdout
    settings = {
        k.strip(): v.strip() for k, _, v in (line.partition("=") for line in shown.splitlines())
    }

    assert str(slurm.slurm_conf) in {f.path for f in slurm.node.files}
    assert settings["AuthAltTypes"] == "auth/jwt"
    assert settings["AuthAltParameters"] == f"jwt_key={slurm.key_path}"
    assert settings["MessageTimeout"] == f"{slurm.message_timeout} sec"


def _schema_type(document: dict, node: dict) -> tuple[str, dict]:  # type: ignore[type-arg]
    """(JSON type, resolved schema) of an OpenAPI schema node, following $ref."""
    while "$ref" in node:
        node = document["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node.get("type", "object"), node


def test_the_submission_has_the_shapes_the_controller_serves(slurm, job_dir):
    """Every field the adapter sends is one the served document describes, with its type."""
    context = ssl.create_default_context(cafile=slurm.ca_file)
    headers = {"X-SLURM-USER-NAME": slurm.user, "X-SLURM-USER-TOKEN": slurm.token()}
    with httpx.Client(base_url=slurm.endpoint, verify=context, headers=headers) as http:
        document = http.get("/openapi/v3").json()
    api = adapter_for(slurm.api_version)
    post = document["paths"][api.submit_path]["post"]
    _, request = _schema_type(
        document, post["requestBody"]["content"]["application/json"]["schema"]
    )
    full = JobSpec(
        name="shapes",
        script="#!/bin/bash\ntrue\n",
        time_limit_minutes=5,
        working_directory=str(job_dir),
        cpus=2,
        memory_mb=100,
        gpus=1,
        stdout=f"{job_dir}/%j.out",
        stderr=f"{job_dir}/%j.err",
        account="acct",
        qos="normal",
        partition="debug",
    )
    body = api.submission(full, partition="debug")
    python_type = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer"}
    checked = []
    for key in body:
        assert key in request["properties"], f"{key} is not in the served submission"
    _, job = _schema_type(document, request["properties"]["job"])
    for key, value in body["job"].items():
        assert key in job["properties"], f"job.{key} is not in {slurm.api_version}'s job"
        served, _ = _schema_type(document, job["properties"][key])
        assert python_type[type(value)] == served, f"job.{key}: sent {value!r}, served {served}"
        checked.append(key)
    assert {"environment", "time_limit", "dependency", "comment"} <= set(checked)
