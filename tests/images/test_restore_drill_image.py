"""The restore-drill image (services/restore-drill) run as the catalog chart runs it.

The live catalog is PostgreSQL 17 with PostGIS from the same image (the major of the pgstac
image the chart deploys; the host's PostgreSQL 15 could not restore its backups), pgstac
installed by pypgstac, its WAL spooled by the chart's archive_command; the chart's backup
sidecar script runs in the image (barman-cloud from Debian 13) into SeaweedFS; the migration's
drill-role.py creates the read-only role; then the drill CronJob's container, rendered for the
published test site with the loopback store, restores the backup into its emptyDir and compares:
exit 0 and `identical` with the outcome pushed to a stand-in Pushgateway; after writes whose WAL
never reached the store, exit 1 and `differs`, pushed too.
"""

from __future__ import annotations

import copy
import http.server
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from fedeploy.charts import render_chart
from loopback import SeaweedS3
from loopback.barman import chart_archive_command
from tests.charts.conftest import CHARTS_DIR, NAMESPACE, SITES, deep_merge
from tests.images.chart_run import (
    chart_command,
    config_map_files,
    container_of,
    podman_run_args,
    storage_secret,
)
from tests.images.conftest import ROOT, built_image, podman

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "drill-bucket"
PREFIX = "backups/catalog-db"
UID = 10001


def _image() -> str:
    """The image's tag as scripts/build-images.sh writes it, built unless it was built from the
    tree's inputs (`built_image`)."""
    dockerfile = (ROOT / "services/restore-drill/Dockerfile").read_text()
    major = next(line.split("=")[1] for line in dockerfile.splitlines() if "ARG PG_MAJOR=" in line)
    chart = (CHARTS_DIR / "catalog/Chart.yaml").read_text()
    version = next(line.split(":")[1].strip().strip('"') for line in chart.splitlines()
                   if line.startswith("appVersion:"))  # fmt: skip
    tag = f"ghcr.io/fedeploy/restore-drill:{version}-pg{major}"
    return built_image("restore-drill", tag)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Pushgateway(http.server.BaseHTTPRequestHandler):
    pushes: list[tuple[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).pushes.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def pushgateway() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """A stand-in Pushgateway on loopback that records each POST (path, body)."""
    _Pushgateway.pushes = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pushgateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Pushgateway.pushes
    finally:
        server.shutdown()


def _collection(name: str) -> dict:
    return {
        "type": "Collection", "stac_version": "1.0.0", "id": name, "description": name,
        "license": "CC-BY-4.0", "links": [],
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                   "temporal": {"interval": [["2026-01-01T00:00:00Z", None]]}},
    }  # fmt: skip


def _items(collection: str, numbers: range) -> list[dict]:
    return [
        {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": f"{collection}-{n:04d}",
            "collection": collection,
            "geometry": {"type": "Point", "coordinates": [n % 90, 1]},
            "bbox": [n % 90, 1, n % 90, 1],
            "links": [],
            "properties": {"datetime": f"2026-01-01T{n % 24:02d}:00:00Z"},
            "assets": {"data": {"href": f"s3://{BUCKET}/{collection}/{n}.parquet"}},
        }  # fmt: skip
        for n in numbers
    ]


def _wait_ready(dsn: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(dsn, connect_timeout=2):
                return
        except psycopg.OperationalError:
            time.sleep(0.3)
    raise AssertionError(
        f"the live PostgreSQL 17 did not start: {podman('logs', 'drill-live', check=False).stderr[-2000:]}"
    )


def test_the_drill_image_restores_compares_and_pushes_as_the_chart_runs_it(
    s3: SeaweedS3, pushgateway, tmp_path: Path
) -> None:
    image = _image()
    url, pushes = pushgateway
    endpoint = s3.endpoint
    s3.endpoint.client().create_bucket(Bucket=BUCKET)
    # The live database: PostgreSQL 17 of the image, its data and spool in a host folder (as
    # the chart's data volume holds both), archive_command the chart's.
    data = tmp_path / "live"
    (data / "wal-spool").mkdir(parents=True)
    (data / "pw").write_text("owner-secret\n")
    os.chown(data, UID, UID)
    for path in data.iterdir():
        os.chown(path, UID, UID)
    port = _port()
    mount = f"{data}:/var/lib/postgresql/data"
    podman("run", "--rm", "--user", f"{UID}:{UID}", "--network", "host", "-v", mount,
           "--entrypoint", "initdb", image, "-D", "/var/lib/postgresql/data/pg", "-U", "postgres",
           "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
           "--pwfile=/var/lib/postgresql/data/pw")  # fmt: skip
    archive = chart_archive_command(Path("/var/lib/postgresql/data/wal-spool"))
    podman("run", "--detach", "--name", "drill-live", "--user", f"{UID}:{UID}",
           "--network", "host", "-v", mount, "--entrypoint", "postgres", image,
           "-D", "/var/lib/postgresql/data/pg", "-p", str(port), "-c", "listen_addresses=127.0.0.1",
           "-c", "unix_socket_directories=/var/lib/postgresql/data", "-c", "wal_level=replica",
           "-c", "archive_mode=on", "-c", f"archive_command={archive}",
           "-c", "max_connections=50")  # fmt: skip
    try:
        owner = f"postgresql://postgres:owner-secret@127.0.0.1:{port}"
        _wait_ready(f"{owner}/postgres")
        # As pgstac's image (v0.10) writes it: libraries the drill's image does not have, which
        # the base backup carries along (the running server read its file before this line).
        with (data / "pg" / "postgresql.conf").open("a") as conf:
            conf.write(
                "shared_preload_libraries = 'pg_tle,pg_stat_statements,pg_cron,plprofiler'\n"
            )
        with psycopg.connect(f"{owner}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE pgstac")
        migrated = subprocess.run(
            [str(ROOT / ".venv/bin/pypgstac"), "migrate", "--dsn", f"{owner}/pgstac"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert migrated.returncode == 0, migrated.stderr[-2000:]
        with psycopg.connect(f"{owner}/pgstac", autocommit=True) as conn:
            for name in ("sentinel-2", "edge-obs"):
                conn.execute("SELECT pgstac.create_collection(%s)", (Jsonb(_collection(name)),))
            conn.execute(
                "SELECT pgstac.create_items(%s)", (Jsonb(_items("sentinel-2", range(120))),)
            )
            conn.execute("SELECT pgstac.create_items(%s)", (Jsonb(_items("edge-obs", range(40))),))
        # The read-only role, by the migration's own script.
        role = tmp_path / "drill-db"
        role.mkdir()
        (role / "username").write_text("catalog_drill")
        (role / "password").write_text("drill-secret")
        made = subprocess.run(
            [str(ROOT / ".venv/bin/python"), str(CHARTS_DIR / "catalog/files/drill-role.py")],
            env={**os.environ, "DRILL_ROLE_SECRET_DIR": str(role), "PGHOST": "127.0.0.1",
                 "PGPORT": str(port), "PGUSER": "postgres", "PGPASSWORD": "owner-secret",
                 "PGDATABASE": "pgstac"},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        with (
            psycopg.connect(
                f"postgresql://catalog_drill:drill-secret@127.0.0.1:{port}/pgstac"
            ) as conn,
            pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
        ):
            conn.execute("DELETE FROM pgstac.items")

        values = deep_merge(
            copy.deepcopy(SITES["published"]["catalog"]),
            {"backup": {"bucket": BUCKET, "prefix": PREFIX, "endpoint": endpoint.endpoint_url,
                        "region": endpoint.region,
                        # The drill's own read-only keys (here the store's one pair).
                        "drill": {"settleSeconds": 1,
                                  "credentialsSecret": "fedeploy-storage-catalog-drill"}},
             "monitoring": {"pushgateway": {"url": url}}},
        )  # fmt: skip
        manifests = render_chart(CHARTS_DIR / "catalog", values, "catalog", NAMESPACE)
        with storage_secret(endpoint.access_key_id, endpoint.secret_access_key) as keys:
            # One round of the chart's backup sidecar, in the image: WAL and a base backup.
            sidecar = container_of(manifests, "StatefulSet", "catalog-db", "backup")
            script = config_map_files(manifests, "catalog-backup", tmp_path / "script")
            env = {e["name"]: e["value"] for e in sidecar.container["env"] if "value" in e}
            env.update({"PGPORT": str(port), "PGUSER": "postgres", "PGPASSWORD": "owner-secret",
                        "BACKUP_ONCE": "1", "BACKUP_INTERVAL_SECONDS": "0"})  # fmt: skip
            with psycopg.connect(f"{owner}/pgstac", autocommit=True) as conn:
                conn.execute("SELECT pg_switch_wal()")
            time.sleep(2)
            done = podman(
                "run", "--rm", "--network", "host", "--user", f"{UID}:{UID}",
                "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
                "-v", f"{data}:/var/lib/postgresql/data:ro",
                "-v", f"{data / 'wal-spool'}:/var/lib/postgresql/wal-spool",
                "-v", f"{script}:/etc/fedeploy/backup:ro",
                "-v", f"{keys['storage-credentials']}:/etc/fedeploy/storage:ro",
                *[f"--env={k}={v}" for k, v in env.items()],
                "--entrypoint", "/bin/sh", image, "/etc/fedeploy/backup/backup.sh", timeout=300,
            )  # fmt: skip
            assert "failed" not in done.stderr, done.stderr[-3000:]

            drill = container_of(manifests, "CronJob", "catalog-restore-drill")
            run_env = {"DRILL_LIVE_DSN": f"postgresql://127.0.0.1:{port}/pgstac?sslmode=disable"}
            secrets = {**keys, "drill-db": role}

            def run_drill() -> subprocess.CompletedProcess[str]:
                return podman("run", "--rm", *podman_run_args(drill, run_env, secrets),
                              *chart_command(drill, image), check=False, timeout=600)  # fmt: skip

            same = run_drill()
            assert same.returncode == 0, same.stdout[-3000:] + same.stderr[-3000:]
            assert "identical: 2 collections, 160 items restored" in same.stdout
            assert pushes[-1][0] == "/metrics/job/fedeploy-restore-drill/site/eu-public"
            assert "catalog_restore_drill_exit_status 0.0" in pushes[-1][1]
            assert "catalog_restore_drill_restored_items 160.0" in pushes[-1][1]
            assert "catalog_restore_drill_last_success_timestamp_seconds" in pushes[-1][1]

            # Written after the last upload: the store does not hold them, the drill says so.
            with psycopg.connect(f"{owner}/pgstac", autocommit=True) as conn:
                conn.execute(
                    "SELECT pgstac.create_items(%s)", (Jsonb(_items("edge-obs", range(40, 50))),)
                )
            moved_on = run_drill()
            assert moved_on.returncode == 1, moved_on.stdout[-3000:] + moved_on.stderr[-3000:]
            assert "collection 'edge-obs': 40 items restored, 50 live" in moved_on.stdout
            assert "catalog_restore_drill_exit_status 1.0" in pushes[-1][1]
            assert "last_success" not in pushes[-1][1]
    finally:
        podman("rm", "--force", "drill-live", check=False)
