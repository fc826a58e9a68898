"""The OpenStack vm bridge's boot: Barbican references, the credential's rules and expiry."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
import yaml

from fedeploy.bridge.firewall import firewall_rules
from fedeploy.bridge.node_config import TEMPLATE_DIR, bridge_node
from fedeploy.bridge.openstack_boot import (
    access_rules,
    credential_expiry,
    openstack_cloud_init,
    secret_uuid,
)
from fedeploy.config.bridge import BridgeConfig

UUID = "0b5c8a5e-6f0e-4c55-9f0e-2b1c3d4e5f60"
REF = f"https://barbican.example.eu:9311/v1/secrets/{UUID}"


def test_a_secret_reference_gives_its_uuid_and_nothing_else_passes():
    assert secret_uuid(REF) == UUID
    for bad in ("https://barbican.example.eu/v1/containers/" + UUID, "not a url", REF + "/x"):
        with pytest.raises(ValueError, match="not a Barbican secret reference"):
            secret_uuid(bad)


def test_access_rules_admit_only_get_of_each_payload():
    other = REF.replace("0b5c", "1c6d")
    rules = access_rules({"tls.key": other, "jwt.key": REF})
    assert rules == [
        {"service": "key-manager", "method": "GET", "path": f"/v1/secrets/{UUID}/payload"},
        {
            "service": "key-manager",
            "method": "GET",
            "path": f"/v1/secrets/{UUID.replace('0b5c', '1c6d')}/payload",
        },
    ]


def test_the_expiry_is_the_boot_window_after_now_to_the_minute():
    now = datetime(2026, 11, 30, 7, 20, 5, tzinfo=UTC)
    assert credential_expiry(now, 30) == "2026-11-30T07:51:00Z"
    on_the_minute = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    assert credential_expiry(on_the_minute, 10) == "2026-11-30T07:10:00Z"
    cet = now.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Warsaw"))
    assert credential_expiry(cet, 30) == "2026-11-30T07:51:00Z"
    # Never valid beyond the window (plus the rounding to the minute).
    for minutes in (10, 30, 120):
        expires = datetime.strptime(credential_expiry(now, minutes), "%Y-%m-%dT%H:%M:%SZ")
        left = expires.replace(tzinfo=UTC) - now
        assert timedelta(minutes=minutes) <= left <= timedelta(minutes=minutes, seconds=60)
    with pytest.raises(ValueError, match="time zone"):
        credential_expiry(now.replace(tzinfo=None) + timedelta(0), 30)
    with pytest.raises(ValueError, match="expected 1 to 1440"):
        credential_expiry(now, 0)


def test_the_boot_window_is_minutes_and_the_old_lifetime_key_says_what_replaced_it():
    config = dict(
        mode="vm",
        flavor_id="eo2a.large",
        image_id="6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        auth_url="https://keystone.example.eu/v3",
        partitions=["batch"],
    )
    assert BridgeConfig.model_validate(config).boot_window_minutes == 30
    for bad in (9, 121):
        with pytest.raises(ValueError, match="boot_window_minutes"):
            BridgeConfig.model_validate({**config, "boot_window_minutes": bad})
    with pytest.raises(ValueError, match="set boot_window_minutes"):
        BridgeConfig.model_validate({**config, "credential_lifetime_hours": 2})


def _node():
    config = BridgeConfig(
        mode="vm",
        flavor_id="eo2a.large",
        image_id="6f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b",
        auth_url="https://keystone.example.eu/v3",
        partitions=["batch"],
        tls={"enabled": False},
    )
    return bridge_node(
        config,
        bridge_name="site",
        firewall=firewall_rules(6820, ["10.0.0.0/16"]),
        tls_name="slurm.fedeploy.svc",
    )


def test_the_cloud_config_needs_every_secret_and_a_whole_credential():
    node = _node()
    credential = {"id": "c1", "secret": "s1", "auth_url": "https://keystone.example.eu/v3"}
    with pytest.raises(ValueError, match="without a Barbican secret: jwt.key"):
        openstack_cloud_init(node, {}, credential)
    with pytest.raises(ValueError, match="lacks secret"):
        openstack_cloud_init(node, {"jwt.key": REF}, {"id": "c1", "auth_url": "x"})
    cloud = yaml.safe_load(openstack_cloud_init(node, {"jwt.key": REF}, credential))
    files = {f["path"]: f for f in cloud["write_files"]}
    assert files["/root/fedeploy-bridge/credential.json"]["permissions"] == "0600"
    fetch = base64.b64decode(files["/root/fedeploy-bridge/fetch-secrets-openstack.py"]["content"])
    assert b"application_credential" in fetch and b"forget(path)" in fetch
    assert f"jwt.key={REF}" in cloud["runcmd"][-1][-1]
    # The metadata guard is on before the fetch (the last command) reads anything.
    guard = cloud["runcmd"].index(["systemctl", "enable", "--now", "fedeploy-imds-guard.service"])
    assert guard < len(cloud["runcmd"]) - 1


class _Cloud(BaseHTTPRequestHandler):
    """Keystone and Barbican as far as the fetch script uses them."""

    payloads = {UUID: b"jwt-key-value\n"}
    calls: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_DELETE(self) -> None:
        self.calls.append(f"DELETE {self.path}")
        own = self.headers["X-Auth-Token"] == self.headers["X-Subject-Token"] == "tok-1"
        self.send_response(204 if self.path == "/v3/auth/tokens" and own else 403)
        self.end_headers()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append(f"POST {self.path}")
        credential = body["auth"]["identity"]["application_credential"]
        ok = self.path == "/v3/auth/tokens" and credential == {"id": "c1", "secret": "s1"}
        self.send_response(201 if ok else 401)
        if ok:
            self.send_header("X-Subject-Token", "tok-1")
        self.end_headers()

    def do_GET(self) -> None:
        self.calls.append(f"GET {self.path}")
        uuid = self.path.split("/")[3]
        if self.headers["X-Auth-Token"] != "tok-1" or not self.path.endswith("/payload"):
            self.send_response(403)
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.payloads[uuid])


@pytest.fixture
def cloud():
    server = HTTPServer(("127.0.0.1", 0), _Cloud)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.mark.parametrize(("secret", "status"), [("s1", 0), ("wrong", 1)])
def test_the_fetch_script_reads_the_payloads_then_removes_every_copy_of_the_credential(
    cloud, tmp_path, secret, status
):
    credential = tmp_path / "credential.json"
    credential.write_text(json.dumps({"id": "c1", "secret": secret, "auth_url": f"{cloud}/v3"}))
    # cloud-init's copies of the user data, which hold the credential too.
    cloud_dir = tmp_path / "cloud"
    copies = [
        cloud_dir / "instance" / "user-data.txt",
        cloud_dir / "instance" / "user-data.txt.i",
        cloud_dir / "instances" / "i-1" / "user-data.txt",
    ]
    kept = cloud_dir / "instance" / "vendor-data.txt"
    for copy in [*copies, kept]:
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text("#cloud-config\n")
    _Cloud.calls = []
    done = subprocess.run(
        [
            sys.executable,
            str(TEMPLATE_DIR / "fetch-secrets-openstack.py"),
            str(credential),
            f"jwt.key={cloud}/v1/secrets/{UUID}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={"FEDEPLOY_CLOUD_INIT_DIR": str(cloud_dir), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == status, done.stderr
    assert not credential.exists()
    assert not [c for c in copies if c.exists()] and kept.exists()
    if status == 0:
        name, value = done.stdout.strip().split("\t")
        assert (name, base64.b64decode(value)) == ("jwt.key", b"jwt-key-value\n")
        # Token, payload, then (after the fetch) the token revoked: nothing else asked.
        assert _Cloud.calls == [
            "POST /v3/auth/tokens",
            f"GET /v1/secrets/{UUID}/payload",
            "DELETE /v3/auth/tokens",
        ]
    else:
        assert done.stdout == "" and "401" in done.stderr
        assert _Cloud.calls == ["POST /v3/auth/tokens"]
