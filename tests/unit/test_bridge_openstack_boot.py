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


def test_the_expiry_is_the_lifetime_after_the_next_full_hour():
    now = datetime(2026, 11, 30, 7, 20, 5, tzinfo=UTC)
    assert credential_expiry(now, 2) == "2026-11-30T10:00:00Z"
    on_the_hour = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    assert credential_expiry(on_the_hour, 1) == "2026-11-30T08:00:00Z"
    cet = now.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Warsaw"))
    assert credential_expiry(cet, 2) == "2026-11-30T10:00:00Z"
    with pytest.raises(ValueError, match="time zone"):
        credential_expiry(now.replace(tzinfo=None) + timedelta(0), 2)


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
    assert b"application_credential" in fetch and b"os.remove(path)" in fetch
    assert f"jwt.key={REF}" in cloud["runcmd"][-1][-1]


class _Cloud(BaseHTTPRequestHandler):
    """Keystone and Barbican as far as the fetch script uses them."""

    payloads = {UUID: b"jwt-key-value\n"}

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        credential = body["auth"]["identity"]["application_credential"]
        ok = self.path == "/v3/auth/tokens" and credential == {"id": "c1", "secret": "s1"}
        self.send_response(201 if ok else 401)
        if ok:
            self.send_header("X-Subject-Token", "tok-1")
        self.end_headers()

    def do_GET(self) -> None:
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
def test_the_fetch_script_reads_the_payloads_and_always_deletes_the_credential(
    cloud, tmp_path, secret, status
):
    credential = tmp_path / "credential.json"
    credential.write_text(json.dumps({"id": "c1", "secret": secret, "auth_url": f"{cloud}/v3"}))
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
    )
    assert done.returncode == status, done.stderr
    assert not credential.exists()
    if status == 0:
        name, value = done.stdout.strip().split("\t")
        assert (name, base64.b64decode(value)) == ("jwt.key", b"jwt-key-value\n")
    else:
        assert done.stdout == "" and "401" in done.stderr
