"""An external PostgreSQL checked with sslmode verify-full: the stack file's CA certificate
reaches the catalog's pods, and with it (and only with it) a connection made as those pods
make it succeeds against a real PostgreSQL serving TLS on loopback.

Before, the stack file had no key for the CA while ssl_mode defaulted to verify-full, and the
pods got no root certificate: libpq refused the connection at deploy."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fedeploy.offline.engine import plan_stack
from loopback.errors import PeerStartError
from loopback.postgres import postgres_bindir
from loopback.processes import free_port
from loopback.tls import TestCA
from tests.builders import SECURE_PASSWORD, external_database_stack
from tests.peers import running

HOST = "db.catalog.example.org"  # the name the certificate is for; reached on 127.0.0.1
MOUNT = "/etc/fedeploy/database"


class TlsPostgres:
    """A bare PostgreSQL (no pgstac: only the TLS handshake matters) serving TLS on loopback."""

    def __init__(self, ca: TestCA) -> None:
        self.bindir = postgres_bindir()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fedeploy-pg-tls-"))
        issued = ca.issue("db", [HOST])
        shutil.copy(issued.cert_file, self.dir / "server.crt")
        shutil.copy(issued.key_file, self.dir / "server.key")
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            for path in (self.dir, self.dir / "server.crt", self.dir / "server.key"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        (self.dir / "server.key").chmod(0o600)

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PeerStartError(f"{args[0]} failed: {done.stderr[-800:]}")

    def start(self) -> TlsPostgres:
        data = self.dir / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust")
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c ssl=on "
            f"-c ssl_cert_file={self.dir}/server.crt -c ssl_key_file={self.dir}/server.key"
        )
        self._run(
            "pg_ctl", "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def server(ca: TestCA):
    with running(lambda: TlsPostgres(ca).start()) as started:
        yield started


def _catalog_pods(tmp_path: Path, ca_pem: str, port: int) -> list[dict[str, Any]]:
    """The catalog's pod specs as the offline plan renders them for an external database."""
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    external = {
        "host": HOST,
        "port": port,
        "name": "postgres",
        "username": "postgres",
        "password": SECURE_PASSWORD,
        "ca_certificate": ca_pem,
    }
    plan = plan_stack(external_database_stack(stacks, external))
    from fedeploy.plan.checks import render_releases

    rendered, _ = render_releases(plan, Path(__file__).resolve().parents[2], "1.31")
    (release,) = [r for r in rendered if r.name == "catalog"]
    pods = [
        m["spec"]["template"]["spec"]
        for m in release.manifests
        if m["kind"] in ("Deployment", "Job", "StatefulSet")
    ]
    config_maps = {
        m["metadata"]["name"]: m["data"] for m in release.manifests if m["kind"] == "ConfigMap"
    }
    return [{"pod": pod, "config_maps": config_maps} for pod in pods]


def _connect_as(container: dict[str, Any], files: dict[str, str], scratch: Path, port: int):
    """Connect with the container's PG* settings; its mounted files under `scratch`."""
    env = {e["name"]: e.get("value") for e in container["env"]}
    root = env.get("PGSSLROOTCERT")
    settings = {"sslmode": env["PGSSLMODE"], "sslrootcert": str(scratch / "absent.crt")}
    if root is not None:
        local = scratch / Path(root).relative_to(MOUNT)
        local.write_text(files[Path(root).name])
        settings["sslrootcert"] = str(local)
    return psycopg.connect(
        host=env["PGHOST"],
        hostaddr="127.0.0.1",
        port=port,
        dbname="postgres",
        user="postgres",
        connect_timeout=10,
        **settings,
    )


def test_the_catalog_verifies_the_external_database_with_the_stack_files_ca(
    ca: TestCA, server: TlsPostgres, tmp_path: Path
) -> None:
    pem = ca.ca_file.read_text()
    found = 0
    for entry in _catalog_pods(tmp_path, pem, server.port):
        pod = entry["pod"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod.get("initContainers", []) + pod["containers"]:
            if not any(e["name"] == "PGSSLMODE" for e in container.get("env", [])):
                continue
            found += 1
            (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == MOUNT]
            files = entry["config_maps"][volumes[mount["name"]]["configMap"]["name"]]
            assert files["ca.crt"] == pem
            with _connect_as(container, files, tmp_path, server.port) as connection:
                row = connection.execute(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                ).fetchone()
                assert row == (True,)
    assert found >= 2  # the API and the migration job at least


def test_without_the_ca_the_same_connection_is_refused(server: TlsPostgres, tmp_path) -> None:
    """What the pods did before: verify-full with no root certificate never connects."""
    container = {
        "env": [{"name": "PGHOST", "value": HOST}, {"name": "PGSSLMODE", "value": "verify-full"}]
    }
    with pytest.raises(psycopg.OperationalError, match="root certificate file"):
        _connect_as(container, {}, tmp_path, server.port)
