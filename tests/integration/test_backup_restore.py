"""The catalog's backups restore, to a point in time, with exactly the items of that time.

Real peers only, driven as the catalog chart drives them: PostgreSQL with pgstac spooling its WAL
with the chart's archive_command, the chart's backup sidecar script (charts/catalog/files/
backup.sh) uploading it and taking a base backup with barman-cloud into SeaweedFS (which checks
signatures), items written and a collection deleted through stac-fastapi-pgstac, and the restore
by barman-cloud into a new server.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psycopg
import pytest

from fedeploy.loopback import PostgresServer, SeaweedS3, StacApiServer
from fedeploy.loopback.barman import BarmanTools, archiving_server, aws_env, sidecar_round
from fedeploy.restore_drill.barman import BackupStore, recovery_settings
from fedeploy.restore_drill.catalog_state import differences, read_state
from tests.conftest import start_peer

pytestmark = pytest.mark.integration

BUCKET = "site-bucket"
PREFIX = "backups/catalog-db"


def _round(tools, store, live, spool, env, base_backup: bool) -> None:
    url, endpoint = store.url, store.endpoint_url or ""
    sidecar_round(tools.bindir, url, store.server_name, endpoint, live, spool, env, base_backup)


def _collection(name: str) -> dict:
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": name,
        "description": f"drill collection {name}",
        "license": "CC-BY-4.0",
        "links": [],
        "extent": {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [["2026-01-01T00:00:00Z", None]]},
        },
    }


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


def _search_ids(url: str) -> set[str]:
    found: set[str] = set()
    next_url: str | None = f"{url}/search?limit=500"
    with httpx.Client(timeout=30) as client:
        while next_url:
            page = client.get(next_url).json()
            found |= {feature["id"] for feature in page["features"]}
            next_url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    return found


@pytest.fixture
def peers(tmp_path: Path):
    stoppers = []
    try:
        s3 = start_peer(lambda: SeaweedS3(tmp_path / "seaweedfs").start())
        stoppers.append(s3.stop)
        s3.create_bucket(BUCKET)
        tools = start_peer(lambda: BarmanTools().start())
        stoppers.append(tools.remove)
        yield tmp_path, s3, tools, stoppers
    finally:
        for stop in reversed(stoppers):
            stop()


def test_restore_to_a_named_point_has_exactly_the_items_of_that_point(peers) -> None:
    work, s3, tools, stoppers = peers
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
        then = _post_items(client, "sentinel-2", range(0, 150)) | _post_items(
            client, "edge-obs", range(0, 80)
        )

        _round(tools, store, live, spool, env, base_backup=True)
        # Written after the base backup: only WAL replay brings these back.
        then |= _post_items(client, "sentinel-2", range(150, 200))
        with psycopg.connect(live.dsn("catalog"), autocommit=True) as conn:
            conn.execute("SELECT pg_create_restore_point('before-the-bad-change')")
        _post_items(client, "sentinel-2", range(200, 260))
        assert client.delete("/collections/edge-obs").status_code in (200, 204)
    _wait_archived(live)
    _round(tools, store, live, spool, env, base_backup=False)
    assert not [p for p in spool.iterdir() if not p.name.startswith(".")], "spool not emptied"

    keys = [o["Key"] for o in endpoint.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys and all(key.startswith(store.key_prefix()) for key in keys), keys[:5]

    # A catalog as it stood at the point, built independently, for the comparison below.
    live.create_database("reference")
    reference_api = StacApiServer(
        live.dsn("reference"), work / "reference-api", name="reference"
    ).start()
    stoppers.append(reference_api.stop)
    with httpx.Client(base_url=reference_api.url, timeout=60) as client:
        for name in ("sentinel-2", "edge-obs"):
            client.post("/collections", json=_collection(name))
        _post_items(client, "sentinel-2", range(0, 200))
        _post_items(client, "edge-obs", range(0, 80))

    restored = PostgresServer(
        work / "restored",
        settings=recovery_settings(store, target_name="before-the-bad-change"),
        env=env,
    )
    stoppers.append(restored.remove)
    tools.run(store.restore(str(restored.data_dir)), env)
    (restored.data_dir / "recovery.signal").touch()
    restored.start_existing()
    with psycopg.connect(restored.dsn("catalog"), autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, restored.log_file.read_text()[-2000:]
            time.sleep(0.1)

    restored_api = StacApiServer(
        restored.dsn("catalog"), work / "restored-api", name="restored"
    ).start()
    stoppers.append(restored_api.stop)
    assert _search_ids(restored_api.url) == then

    state = read_state(restored.dsn("catalog"))
    assert differences(state, read_state(live.dsn("reference"))) == []
    now_live = differences(state, read_state(live.dsn("catalog")))
    assert "collection 'edge-obs' is in the restored catalog but not live" in now_live
    assert "collection 'sentinel-2': 200 items restored, 260 live" in now_live
