"""The built ingestion image run as the chart's sentinel CronJob runs it (the example cluster
site's rendered manifests, the Copernicus login as a mounted Secret): it copies the clear items
of a loopback STAC upstream into SeaweedFS and registers them in the site's catalog."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path

import httpx
import pytest

from loopback import PostgresServer, SeaweedS3, StacApiServer
from loopback.asset_server import AssetServer
from loopback.sentinel_upstream import COLLECTION, load, make_items
from tests.images.chart_run import chart_command, container_of, podman_run_args
from tests.images.conftest import podman

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sentinel_copies_the_clear_items_into_storage_and_catalog(
    images,
    manifests,
    s3: SeaweedS3,
    postgres: PostgresServer,
    tmp_path: Path,
    storage_keys: dict[str, Path],
) -> None:
    assets = AssetServer(tmp_path / "files").start()
    suffix = uuid.uuid4().hex[:8]
    upstream = StacApiServer(
        postgres.create_database(f"upstream_{suffix}"), tmp_path / "upstream", name="upstream"
    ).start()
    site = StacApiServer(postgres.create_database(f"site_{suffix}"), tmp_path / "site").start()
    bucket = f"images-sentinel-{suffix}"
    s3.create_bucket(bucket)
    # Two items a day apart; the second is cloudy (80 %) and must be left out.
    items = make_items(assets, 2, {"B04": 300 * 1024, "SCL": 20 * 1024}, cloud_cover=[5.0, 80.0])
    load(upstream.url, items)
    # The Secret the chart mounts (cdse-login), readable by the pod's user only through its mode.
    secret = Path(tempfile.mkdtemp(prefix="fedeploy-image-secret-"))
    secret.chmod(0o755)
    for name, value in (("ingest_source_username", "someone"), ("ingest_source_password", "pw")):
        (secret / name).write_text(value)
        (secret / name).chmod(0o444)
    chart = container_of(manifests("ingestion", "kubernetes"), "CronJob", "ingestion-sentinel")
    source = {
        "name": "upstream",
        "url": upstream.url,
        "privateHosts": ["127.0.0.1"],
        "collections": [COLLECTION],
        "assets": ["B04", "SCL"],
        "maxCloudCover": 20,
        "bbox": [10, 45, 13, 48],
        "datetime": "2024-06-01T00:00:00Z/2024-06-05T00:00:00Z",
    }
    env = {
        "INGEST_S3_ENDPOINT_URL": s3.endpoint.endpoint_url,
        "INGEST_S3_REGION": s3.endpoint.region,
        "INGEST_BUCKET": bucket,
        "INGEST_CATALOG_URL": site.url,
        "INGEST_SOURCES": json.dumps([source]),
        "INGEST_SHARD_COUNT": "1",
        "INGEST_SHARD_INDEX": "0",
    }
    try:
        podman("run", "--rm", *podman_run_args(chart, env, {"credentials": secret, **storage_keys}),
               *chart_command(chart, images["ingestion"]), timeout=240)  # fmt: skip
        found = httpx.get(f"{site.url}/collections/{COLLECTION}/items", timeout=10)
        found.raise_for_status()
        ids = sorted(feature["id"] for feature in found.json()["features"])
        assert ids == [items[0]["id"]], ids
        listed = s3.endpoint.client().list_objects_v2(Bucket=bucket).get("Contents", [])
        keys = {entry["Key"] for entry in listed}
        for band in ("B04", "SCL"):
            assert any(items[0]["id"] in key and band in key for key in keys), (band, keys)
        assert not any(items[1]["id"] in key for key in keys), keys
    finally:
        shutil.rmtree(secret, ignore_errors=True)
        site.stop()
        upstream.stop()
        assets.stop()
