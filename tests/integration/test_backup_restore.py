"""The catalog's backups restore, to a point in time, with exactly the items of that time.

Real peers only, driven as the catalog chart drives them: PostgreSQL with pgstac spooling its WAL
with the chart's archive_command, the chart's backup sidecar script (charts/catalog/files/
backup.sh) uploading it and taking a base backup with barman-cloud into SeaweedFS (which checks
signatures), items written and a collection deleted through stac-fastapi-pgstac, and the restore
by barman-cloud into a new server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from fedeploy.restore_drill.barman import BackupStore
from loopback import PeerStartError, PostgresServer, SeaweedS3, StacApiServer, stac_documents
from loopback.barman import (
    BarmanTools,
    archiving_server,
    aws_env,
    restore_drill,
    sidecar_round,
)
from tests.conftest import start_peer

pytestmark = pytest.mark.integration

BUCKET = "site-bucket"
PREFIX = "backups/catalog-db"
POINT = "before-the-bad-change"


@dataclass
class BackedUpSite:
    """A live catalog backed up as the chart does it, and a catalog in the point's state."""

    s3: SeaweedS3
    tools: BarmanTools
    store: BackupStore
    env: dict[str, str]
    live: PostgresServer
    then: set[str]


def _round(tools, store, live, spool, env, base_backup: bool) -> None:
    url, endpoint = store.url, store.endpoint_url or ""
    sidecar_round(tools.bindir, url, store.server_name, endpoint, live, spool, env, base_backup)


def _drill(
    site: BackedUpSite, live_dsn: str, point: str | None = POINT
) -> subprocess.CompletedProcess[str]:
    """`fedeploy restore-drill` to the restore point, as the postgres user (pg_ctl refuses root)."""
    store = site.store
    return restore_drill(
        site.tools,
        site.env,
        ["--backup-url", store.url, "--server-name", store.server_name]
        + ["--endpoint-url", store.endpoint_url or "", "--database", "catalog"]
        + (["--target-name", point] if point else [])
        + ["--live-dsn", live_dsn, "--sample", "1000"],
    )


def _collection(name: str) -> dict:
    return stac_documents.collection(
        name, f"drill collection {name}", license="CC-BY-4.0", start="2026-01-01T00:00:00Z"
    )


def _item(collection: str, n: int) -> dict:
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": f"{collection}-{n:04d}",
        "collection": collection,
        "geometry": {"type": "Point", "coordinates": [n % 180, n % 60]},
        "bbox": [n % 180, n % 60, n % 180, n % 60],
        "properties": {"datetime": f"2026-01-01T{n % 24:02d}:00:00Z"},
        "assets": {"data": {"href": f"s3://{BUCKET}/{collection}/{n:04d}.parquet"}},
        "links": [],
    }


def _post_items(api: httpx.Client, collection: str, numbers: range) -> set[str]:
    items = [_item(collection, n) for n in numbers]
    response = api.post(
        f"/collections/{collection}/items",
        json={"type": "FeatureCollection", "features": items},
    )
    assert response.status_code in (200, 201), response.text
    return {item["id"] for item in items}


def _wait_archived(server: PostgresServer, timeout: float = 30.0) -> None:
    """Switch to a new WAL segment and wait until the finished one is in the store."""
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]  # type: ignore[index]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver"
            ).fetchone()
            if row and row[0] and row[0] >= segment:
                return
            time.sleep(0.1)
    raise AssertionError(
        f"WAL {segment} not archived after {timeout} s (failed: {row}); see {server.log_file}"
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackedUpSite]:
    """Items written through stac-fastapi-pgstac; a base backup; more items; the restore point;
    more items and a deleted collection; every WAL segment uploaded by the sidecar script."""
    work = tmp_path_factory.mktemp("backup")
    stoppers = []
    try:
        s3 = start_peer(lambda: SeaweedS3(work / "seaweedfs").start())
        stoppers.append(s3.stop)
        s3.create_bucket(BUCKET)
        tools = start_peer(lambda: BarmanTools().start())
        stoppers.append(tools.remove)
        endpoint = s3.endpoint
        env = aws_env(endpoint.access_key_id, endpoint.secret_access_key, endpoint.region)
        store = BackupStore(BUCKET, PREFIX, "catalog-db", endpoint.endpoint_url, str(tools.bindir))
        live, spool = archiving_server(work / "live")
        stoppers.append(live.remove)
        live.create_database("catalog")
        api = StacApiServer(live.dsn("catalog"), work / "api").start()
        stoppers.append(api.stop)

        with httpx.Client(base_url=api.url, timeout=60) as client:
            for name in ("sentinel-2", "edge-obs"):
                assert client.post("/collections", json=_collection(name)).status_code in (200, 201)
            then = _post_items(client, "sentinel-2", range(0, 150))
            then |= _post_items(client, "edge-obs", range(0, 80))
            _round(tools, store, live, spool, env, base_backup=True)
            # Written after the base backup: only WAL replay brings these back.
            then |= _post_items(client, "sentinel-2", range(150, 200))
            live.execute("catalog", f"SELECT pg_create_restore_point('{POINT}')")
            _post_items(client, "sentinel-2", range(200, 260))
            assert client.delete("/collections/edge-obs").status_code in (200, 204)
        _wait_archived(live)
        _round(tools, store, live, spool, env, base_backup=False)
        assert not [p for p in spool.iterdir() if not p.name.startswith(".")], "spool not emptied"

        # A catalog as it stood at the point, written by the same API into a database of its own.
        live.create_database("reference")
        api.stop()
        reference = StacApiServer(live.dsn("reference"), work / "reference-api").start()
        stoppers.append(reference.stop)
        with httpx.Client(base_url=reference.url, timeout=60) as client:
            for name in ("sentinel-2", "edge-obs"):
                client.post("/collections", json=_collection(name))
            _post_items(client, "sentinel-2", range(0, 200))
            _post_items(client, "edge-obs", range(0, 80))
        reference.stop()
        yield BackedUpSite(s3, tools, store, env, live, then)
    finally:
        for stop in reversed(stoppers):
            stop()


def test_backups_are_written_under_the_backup_prefix_only(site: BackedUpSite) -> None:
    client = site.s3.endpoint.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys and all(key.startswith(site.store.key_prefix()) for key in keys), keys[:5]
    assert any("/base/" in key for key in keys) and any("/wals/" in key for key in keys)


def test_the_drill_restores_to_the_point_exactly_the_items_of_that_point(
    site: BackedUpSite,
) -> None:
    # --sample 1000 compares every item by id and asset hrefs: the restored catalog holds the
    # 280 items of the point (50 of them only in the WAL after the base backup), no later one,
    # and the collection deleted after the point.
    with psycopg.connect(site.live.dsn("reference")) as conn:
        ids = {row[0] for row in conn.execute("SELECT id FROM pgstac.items")}
    assert ids == site.then and len(ids) == 280
    same = _drill(site, site.live.dsn("reference"))
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.startswith("identical: 2 collections, 280 items restored at " + POINT)


def test_the_drill_reports_what_differs_from_a_catalog_that_moved_on(site: BackedUpSite) -> None:
    moved_on = _drill(site, site.live.dsn("catalog"))
    assert moved_on.returncode == 1, moved_on.stdout + moved_on.stderr
    assert "collection 'edge-obs' is in the restored catalog but not live" in moved_on.stdout
    assert "collection 'sentinel-2': 200 items restored, 260 live" in moved_on.stdout


def test_the_drill_to_the_end_of_the_wal_matches_the_live_catalog(site: BackedUpSite) -> None:
    latest = _drill(site, site.live.dsn("catalog"), point=None)
    assert latest.returncode == 0, latest.stdout + latest.stderr
    assert latest.stdout.startswith("identical: 1 collections, 260 items restored from")


def test_the_scheduled_drill_on_a_quiet_catalog_restores_to_the_end_of_the_wal(
    site: BackedUpSite,
) -> None:
    """Nothing written since the last segment was uploaded: the store holds no WAL record at or
    after the live read's position, so recovery cannot reach it; the drill restores to the end
    of the WAL instead, which is that moment."""
    store = site.store
    quiet = restore_drill(
        site.tools,
        site.env,
        ["--backup-url", store.url, "--server-name", store.server_name]
        + ["--endpoint-url", store.endpoint_url or "", "--database", "catalog"]
        + ["--live-dsn", site.live.dsn("catalog"), "--settle-seconds", "1"],
    )
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert "no WAL past that position in the store: restoring to its end" in quiet.stdout
    assert "identical: 1 collections, 260 items restored" in quiet.stdout


def test_the_drill_cannot_run_without_a_backup(site: BackedUpSite) -> None:
    missing = BackedUpSite(
        site.s3,
        site.tools,
        BackupStore(BUCKET, "backups/none", "catalog-db", site.store.endpoint_url, ""),
        site.env,
        site.live,
        set(),
    )
    result = _drill(missing, site.live.dsn("catalog"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "barman-cloud-restore failed" in result.stderr


def test_a_new_database_never_writes_into_another_databases_archive(
    site: BackedUpSite, tmp_path: Path
) -> None:
    """After losing the cluster, a fresh database on a new volume names its WAL as the lost one
    did: the sidecar refuses to upload into the lost database's archive instead of overwriting it."""
    client = site.s3.endpoint.client()
    before = {
        o["Key"]: o["ETag"]
        for o in client.list_objects_v2(Bucket=BUCKET, Prefix=site.store.key_prefix())["Contents"]
    }
    fresh, spool = archiving_server(tmp_path / "fresh")
    try:
        fresh.execute("postgres", "SELECT pg_switch_wal()")
        with pytest.raises(PeerStartError, match="holds WAL of another database"):
            _round(site.tools, site.store, fresh, spool, site.env, base_backup=True)
    finally:
        fresh.remove()
    after = {
        o["Key"]: o["ETag"]
        for o in client.list_objects_v2(Bucket=BUCKET, Prefix=site.store.key_prefix())["Contents"]
    }
    assert after == before


def test_nothing_a_backup_carries_runs_in_the_drill() -> None:
    """A base backup planted by whoever can write the prefix: its postgresql.conf runs commands
    at the end of recovery, includes a folder of more, its postgresql.auto.conf and its role
    settings (ALTER ROLE postgres SET) preload a library, its pg_hba.conf refuses every
    connection and a standby.signal would never promote.
    The scratch server reads none of it: it promotes, the drill connects (over the Unix socket
    in the workdir's 0700 folder: the server listens on no TCP port), no command ran."""
    if os.geteuid() != 0:
        pytest.skip("runs PostgreSQL as the postgres user (root needed)")
    # Outside pytest's 0700 folder: the postgres user works in it.
    root = Path(tempfile.mkdtemp(prefix="drill-hostile-"))
    root.chmod(0o755)
    shutil.chown(root, "postgres")
    try:
        _hostile_backup_restores_inertly(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _hostile_backup_restores_inertly(root: Path) -> None:
    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]

    def as_postgres(command: str) -> None:
        subprocess.run(["su", "postgres", "-c", command], check=True, cwd="/")

    as_postgres(f"{bindir}/initdb -D {root}/primary -U postgres -A trust >/dev/null")
    as_postgres(
        f"{bindir}/pg_ctl -D {root}/primary -o \"-p 55431 -k {root} -c listen_addresses=''\" "
        f"-l {root}/p.log -w start >/dev/null"
    )
    try:
        # Kept in the backup's catalog: a library loaded into each of postgres' sessions.
        as_postgres(
            f"{bindir}/psql -h {root} -p 55431 -U postgres -qc "
            "\"ALTER ROLE postgres SET session_preload_libraries = 'no_such_lib'\""
        )
        as_postgres(f"{bindir}/pg_basebackup -h {root} -p 55431 -U postgres -D {root}/planted")
    finally:
        as_postgres(f"{bindir}/pg_ctl -D {root}/primary -m fast -w stop >/dev/null")
    planted, marker = root / "planted", root / "ran"
    (planted / "more").mkdir()
    (planted / "more" / "x.conf").write_text(f"archive_cleanup_command = 'id >> {marker}'\n")
    with (planted / "postgresql.conf").open("a") as conf:
        conf.write(f"recovery_end_command = 'id >> {marker}'\ninclude_dir = 'more'\n")
    (planted / "postgresql.auto.conf").write_text(
        f"recovery_end_command = 'id >> {marker}'\nsession_preload_libraries = 'no_such_lib'\n"
    )
    (planted / "pg_hba.conf").write_text("host all all all reject\nlocal all all reject\n")
    (planted / "standby.signal").touch()
    subprocess.run(["chown", "-R", "postgres:postgres", str(planted)], check=True)
    tools = BarmanTools().start()
    try:
        drill = textwrap.dedent(f"""
            from pathlib import Path
            import psycopg
            from fedeploy.restore_drill.barman import BackupStore
            from fedeploy.restore_drill.scratch import SCRATCH_OPTIONS, restored_server
            class Planted(BackupStore):  # the store holds the planted backup: restore copies it
                def restore(self, data_dir, backup_id="auto"):
                    return ["cp", "-a", "{planted}", data_dir]
                def restore_command(self):
                    return "false"  # no WAL beyond the backup's: recovery ends
            store = Planted("site-bucket", "backups/catalog-db", "catalog-db")
            with restored_server(store, Path("{root}/work"), pg_bindir="{bindir}", timeout=90) as s:
                with psycopg.connect(s.dsn("postgres"), options=SCRATCH_OPTIONS) as c:
                    print("connected", c.execute("SELECT 1").fetchone()[0])
                    # Over the socket, and no TCP listener at all.
                    print("tcp", c.execute("SHOW listen_addresses").fetchone()[0] or "none")
                    print("client", c.execute("SELECT inet_server_addr()").fetchone()[0])
                print("socket folder", oct(s.socket_dir.stat().st_mode & 0o777), s.socket_dir)
        """)
        result = subprocess.run(
            [str(tools.python), "-c", drill],
            user="postgres",
            cwd="/",
            capture_output=True,
            text=True,
            env={**os.environ, "HOME": "/tmp"},
            timeout=300,
            check=False,
        )
    finally:
        tools.remove()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "connected 1" in result.stdout
    assert "tcp none" in result.stdout and "client None" in result.stdout, result.stdout
    assert f"socket folder 0o700 {root}/work/socket" in result.stdout, result.stdout
    assert not marker.exists(), marker.read_text()


def _stac_item(item_id: str, lon: float = 0.0, when: str = "2026-01-01T00:00:00Z", cloud=1):
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": "c1",
        "geometry": {"type": "Point", "coordinates": [lon, 0]},
        "bbox": [lon, 0, lon, 0],
        "properties": {"datetime": when, "eo:cloud_cover": cloud},
        "assets": {"d": {"href": f"s3://b/{item_id}"}},
        "links": [],
    }


_C1 = {
    "id": "c1",
    "type": "Collection",
    "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None]]}},
}


def test_the_comparison_sees_changed_content_and_items_outside_the_sample(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """B is A with a sampled item's geometry, time and properties changed (its asset href
    kept) and an unsampled item replaced by another unsampled id (the same count): both are
    seen, and the sample is not the same rows from one run to the next."""
    import hashlib
    import json

    from fedeploy.restore_drill.catalog_state import differences, new_salt, read_state

    work = tmp_path_factory.mktemp("blind")
    work.chmod(0o755)
    server = start_peer(lambda: PostgresServer(work / "pg").start())
    try:
        ids = [f"it-{n:04d}" for n in range(200)]
        for name in ("a", "b"):
            server.create_database(name)
            with psycopg.connect(server.dsn(name), autocommit=True) as conn:
                conn.execute("SELECT pgstac.create_collection(%s::jsonb)", (json.dumps(_C1),))
                for item_id in ids:
                    conn.execute(
                        "SELECT pgstac.create_item(%s::jsonb)", (json.dumps(_stac_item(item_id)),)
                    )
        salt = new_salt()
        a = read_state(server.dsn("a"), 20, salt)
        assert differences(read_state(server.dsn("a"), 20, salt), a) == []
        sampled = sorted(key[1] for key in a.sample)
        outside = [i for i in ids if i not in sampled]

        def rank(item_id: str) -> str:
            return hashlib.md5((salt + item_id).encode()).hexdigest()

        forged = next(
            f"forged-{n}" for n in range(10_000) if rank(f"forged-{n}") > max(map(rank, sampled))
        )
        changed = _stac_item(sampled[0], lon=120.0, when="1999-01-01T00:00:00Z", cloud=99)
        with psycopg.connect(server.dsn("b"), autocommit=True) as conn:
            conn.execute("SET search_path = pgstac, public")
            conn.execute("SELECT pgstac.update_item(%s::jsonb)", (json.dumps(changed),))
            conn.execute("SELECT pgstac.delete_item(%s, 'c1')", (outside[0],))
            conn.execute("SELECT pgstac.create_item(%s::jsonb)", (json.dumps(_stac_item(forged)),))
        found = differences(read_state(server.dsn("b"), 20, salt), a)
        assert "collection 'c1': items differ (ids or content; same count)" in found
        assert f"item {sampled[0]!r} in 'c1': content differs" in found
        # Another run draws another sample.
        assert read_state(server.dsn("a"), 20, new_salt()).sample.keys() != a.sample.keys()
    finally:
        server.remove()


def test_the_scheduled_drill_finds_a_catalog_written_during_it_identical(
    site: BackedUpSite, tmp_path: Path
) -> None:
    """As the CronJob runs it (--settle-seconds), while a writer adds an item a second and the
    sidecar uploads the WAL every 2 s: the restore stops at the live read's WAL position and
    matches that read (before: the end of the WAL held later writes, 'differs')."""
    import json
    import threading

    live, spool = archiving_server(tmp_path / "moving")
    store = BackupStore(
        BUCKET, "backups/moving", "catalog-db", site.store.endpoint_url, str(site.tools.bindir)
    )
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        live.create_database("catalog")
        dsn = live.dsn("catalog")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pgstac.create_collection(%s::jsonb)", (json.dumps(_C1),))
            for n in range(100):
                conn.execute(
                    "SELECT pgstac.create_item(%s::jsonb)", (json.dumps(_stac_item(f"it-{n}")),)
                )
        _round(site.tools, store, live, spool, site.env, base_backup=True)

        def writer() -> None:
            n = 100
            with psycopg.connect(dsn, autocommit=True) as conn:
                while not stop.is_set():
                    conn.execute(
                        "SELECT pgstac.create_item(%s::jsonb)",
                        (json.dumps(_stac_item(f"it-{n}")),),
                    )
                    n += 1
                    stop.wait(1)

        def sidecar() -> None:
            with psycopg.connect(live.dsn("postgres"), autocommit=True) as conn:
                while not stop.is_set():
                    conn.execute("SELECT pg_switch_wal()")
                    stop.wait(0.5)
                    _round(site.tools, store, live, spool, site.env, base_backup=False)
                    stop.wait(1.5)

        threads = [threading.Thread(target=f, daemon=True) for f in (writer, sidecar)]
        for thread in threads:
            thread.start()
        result = restore_drill(
            site.tools,
            site.env,
            ["--backup-url", store.url, "--server-name", "catalog-db"]
            + ["--endpoint-url", store.endpoint_url or "", "--database", "catalog"]
            + ["--live-dsn", dsn, "--sample", "1000", "--settle-seconds", "8"],
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "identical: 1 collections" in result.stdout
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        live.remove()
