"""Sentinel copies against real peers: an upstream STAC API standing in for Copernicus (a
second stac-fastapi-pgstac, its assets on a local HTTP server), SeaweedFS, the site's pgstac."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.object_store import MiB, ObjectStore, s3_client
from fedeploy_ingestion.sentinel import SentinelRun
from fedeploy_ingestion.settings import IngestSettings

from loopback import PostgresServer, SeaweedS3, StacApiServer
from loopback.asset_server import AssetServer
from loopback.sentinel_upstream import COLLECTION, StaticSearch, load, make_items

pytestmark = pytest.mark.integration

SIZES = {"B04": 11 * MiB, "B03": 200 * 1024}
PASSWORD = "upstream-pa55word-never-logged"


@pytest.fixture(scope="module")
def upstream(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StacApiServer, AssetServer, list[dict[str, Any]]]]:
    """Four items, one a day from 2024-06-01; every other one is cloudy (80 %)."""
    root = tmp_path_factory.mktemp("upstream")
    assets = AssetServer(root / "files").start()
    dsn = postgres.create_database("upstream_copernicus")
    api = StacApiServer(dsn, root / "api", name="upstream").start()
    items = make_items(assets, 4, SIZES, cloud_cover=[5.0, 80.0])
    load(api.url, items)
    yield api, assets, items
    api.stop()
    assets.stop()


def settings(s3: SeaweedS3, bucket: str, upstream_url: str, **changes: Any) -> IngestSettings:
    endpoint = s3.endpoint
    values: dict[str, Any] = {
        "site": "site-a",
        "bucket": bucket,
        "s3_endpoint_url": endpoint.endpoint_url,
        "s3_region": endpoint.region,
        "part_size_mib": 5,
        "source_username": "someone",
        "source_password": PASSWORD,
        "sources": [
            {
                "name": "upstream",
                # The loopback upstream: its own host may resolve to 127.0.0.1.
                "privateHosts": ["127.0.0.1"],
                "url": upstream_url,
                "collections": [COLLECTION],
                "assets": ["B04", "B03", "SCL"],
                "maxCloudCover": 20,
                "bbox": [10, 45, 13, 48],
                "datetime": "2024-06-01T00:00:00Z/2024-06-05T00:00:00Z",
            }
        ],
    }
    values.update(changes)
    return IngestSettings(**values)


def run(config: IngestSettings, s3: SeaweedS3, catalog_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.endpoint.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.endpoint.secret_access_key)
    store = ObjectStore(s3_client(config.s3_endpoint_url, config.s3_region, "auto"), config.bucket)
    return SentinelRun(config, store, CatalogClient(catalog_url), Metrics()).run(), store


def sha256_multihash(path: Path) -> str:
    return "1220" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_window_ingested_twice_is_a_no_op_the_second_time(
    upstream,
    catalogs,
    s3: SeaweedS3,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, assets, items = upstream
    site = catalogs.start("site-a")
    config = settings(s3, bucket, api.url)
    caplog.set_level(logging.DEBUG)

    first, store = run(config, s3, site.url, monkeypatch)
    clear = [i for i in items if i["properties"]["eo:cloud_cover"] <= 20]
    assert first.failed == {}
    assert (first.found, first.registered, first.assets_copied) == (2, 2, 4)
    assert set(first.missing_assets) == {f"{COLLECTION}/{i['id']}" for i in clear}
    listing = store.client.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listing) == sorted(
        f"sentinel/{COLLECTION}/{i['id']}/{name}.jp2" for i in clear for name in SIZES
    )

    catalog = CatalogClient(site.url)
    for item in clear:
        stored = catalog.get_item(COLLECTION, item["id"])
        assert stored is not None
        assert {link["rel"]: link["href"] for link in stored["links"]}["via"].startswith(api.url)
        for name in SIZES:
            asset = stored["assets"][name]
            assert asset["href"] == f"s3://{bucket}/sentinel/{COLLECTION}/{item['id']}/{name}.jp2"
            assert asset["file:checksum"] == item["assets"][name]["file:checksum"]
            body = store.get(asset["href"].split(f"s3://{bucket}/", 1)[1])
            assert "1220" + hashlib.sha256(body).hexdigest() == asset["file:checksum"]

    requests_before = len(assets.requests)
    modified_before = {o["Key"]: o["LastModified"] for o in listing}
    second, _ = run(config, s3, site.url, monkeypatch)
    assert (second.registered, second.skipped, second.assets_copied) == (0, 2, 0)
    assert len(assets.requests) == requests_before, "the second run downloaded again"
    after = store.client.list_objects_v2(Bucket=bucket)["Contents"]
    assert {o["Key"]: o["LastModified"] for o in after} == modified_before
    assert PASSWORD not in caplog.text


def test_a_copy_interrupted_midway_resumes(
    upstream, catalogs, s3: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, assets, items = upstream
    site = catalogs.start("site-a")
    config = settings(s3, bucket, api.url)
    target = items[0]
    relative = f"{COLLECTION}/{target['id']}/B04.jp2"
    assets.cut_next(relative, 7 * MiB)

    first, store = run(config, s3, site.url, monkeypatch)
    assert list(first.failed) == [f"{COLLECTION}/{target['id']}"]
    assert "midway" in first.failed[f"{COLLECTION}/{target['id']}"]
    assert first.registered == 1
    key = f"sentinel/{COLLECTION}/{target['id']}/B04.jp2"
    uploads = store.client.list_multipart_uploads(Bucket=bucket, Prefix=key)["Uploads"]
    parts = store.client.list_parts(Bucket=bucket, Key=key, UploadId=uploads[0]["UploadId"])
    assert [p["Size"] for p in parts["Parts"]] == [5 * MiB]
    assert CatalogClient(site.url).get_item(COLLECTION, target["id"]) is None

    seen = len(assets.requests)
    second, _ = run(config, s3, site.url, monkeypatch)
    assert second.failed == {} and second.registered == 1 and second.assets_resumed == 1
    ranged = [r for r in assets.requests[seen:] if r.path == "/" + relative]
    assert [(r.range, r.status) for r in ranged] == [(f"bytes={5 * MiB}-", 206)]
    assert second.bytes_copied == SIZES["B04"] - 5 * MiB + SIZES["B03"]
    expected = sha256_multihash(assets.root / relative)
    stored = CatalogClient(site.url).get_item(COLLECTION, target["id"])
    assert stored["assets"]["B04"]["file:checksum"] == expected
    assert "1220" + hashlib.sha256(store.get(key)).hexdigest() == expected
    assert store.client.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", []) == []


def test_an_asset_whose_checksum_differs_is_not_kept(
    upstream, catalogs, s3: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, assets, _ = upstream
    from datetime import UTC, datetime

    [bad] = make_items(
        assets, 1, {"B04": 64 * 1024}, start=datetime(2024, 7, 15, 10, 0, tzinfo=UTC)
    )
    bad["assets"]["B04"]["file:checksum"] = "1220" + "ab" * 32
    load(api.url, [bad])
    site = catalogs.start("site-a")
    config = settings(
        s3,
        bucket,
        api.url,
        sources=[
            {
                "name": "upstream",
                # The loopback upstream: its own host may resolve to 127.0.0.1.
                "privateHosts": ["127.0.0.1"],
                "url": api.url,
                "collections": [COLLECTION],
                "assets": ["B04"],
                "datetime": "2024-07-15T00:00:00Z/2024-07-16T00:00:00Z",
            }
        ],
    )
    report, store = run(config, s3, site.url, monkeypatch)
    assert report.registered == 0
    assert "sha256" in report.failed[f"{COLLECTION}/{bad['id']}"]
    assert store.client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert CatalogClient(site.url).get_item(COLLECTION, bad["id"]) is None


def test_indexed_workers_share_the_items_without_overlap(
    upstream, catalogs, s3: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _, _ = upstream
    site = catalogs.start("site-a")
    wide = [
        {
            "name": "upstream",
            # The loopback upstream: its own host may resolve to 127.0.0.1.
            "privateHosts": ["127.0.0.1"],
            "url": api.url,
            "collections": [COLLECTION],
            "assets": ["B03"],
            "datetime": "2024-06-01T00:00:00Z/2024-06-05T00:00:00Z",
        }
    ]
    reports = [
        run(
            settings(s3, bucket, api.url, sources=wide, shard_count=2, shard_index=i),
            s3,
            site.url,
            monkeypatch,
        )[0]
        for i in (0, 1)
    ]
    assert [r.found for r in reports] == [4, 4], reports
    assert sum(r.registered for r in reports) == 4
    assert all(r.registered + r.other_shards == 4 for r in reports)


FIELD_CASES = Path(__file__).parent / "field_cases"


def test_an_item_that_raises_fails_alone_and_the_report_names_it(
    upstream, catalogs, s3: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Earth Search's L1C items have `s3://` hrefs and no https alternate: the one between two
    good items once aborted the whole run (ValueError) with no report."""
    import json
    from datetime import UTC, datetime

    api, assets, _ = upstream
    good = make_items(assets, 2, {"B04": 64 * 1024}, start=datetime(2024, 8, 10, 10, 0, tzinfo=UTC))
    s3_only = json.loads((FIELD_CASES / "sentinel-earthsearch-l1c-s3-only-item.json").read_text())
    s3_only["collection"] = COLLECTION
    s3_only["properties"]["datetime"] = "2024-08-10T22:00:00Z"  # between the good two
    s3_only["assets"]["B04"] = s3_only["assets"].pop("blue")
    load(api.url, [good[0], s3_only, good[1]])
    site = catalogs.start("site-a")
    config = settings(
        s3,
        bucket,
        api.url,
        sources=[
            {
                "name": "upstream",
                "privateHosts": ["127.0.0.1"],
                "url": api.url,
                "collections": [COLLECTION],
                "assets": ["B04"],
                "datetime": "2024-08-10T00:00:00Z/2024-08-12T00:00:00Z",
            }
        ],
    )
    report, _ = run(config, s3, site.url, monkeypatch)
    bad = f"{COLLECTION}/{s3_only['id']}"
    assert list(report.failed) == [bad]
    assert "s3://sentinel-s2-l1c/" in report.failed[bad] and "alternate" in report.failed[bad]
    assert (report.found, report.registered) == (3, 2)
    for item in good:
        assert CatalogClient(site.url).get_item(COLLECTION, item["id"]) is not None


def test_an_item_the_real_catalog_refuses_in_a_200_answer_fails_named_and_the_others_register(
    catalogs: Any, s3: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A null geometry (valid STAC, refused by pgstac): the run said `registered=3`, `failed={}`
    with two of three stored, and so on every run after."""
    assets = AssetServer(tmp_path / "files").start()
    static = StaticSearch().start()
    try:
        items = make_items(assets, 3, {"B04": 1 * MiB})
        items[1]["geometry"] = None
        items[1].pop("bbox", None)
        refused = items[1]["id"]
        static.add(items)
        site = catalogs.start("site-refuses")
        source = {
            "name": "upstream",
            "privateHosts": ["127.0.0.1"],
            "url": static.url,
            "collections": [COLLECTION],
            "assets": ["B04"],
        }
        config = settings(s3, bucket, static.url, sources=[source])
        catalog = CatalogClient(site.url)
        for number in range(2):
            report, _ = run(config, s3, site.url, monkeypatch)
            stored = sorted(i["id"] for i in items if catalog.get_item(COLLECTION, i["id"]))
            assert stored == sorted(i["id"] for i in items if i["id"] != refused)
            assert list(report.failed) == [f"{COLLECTION}/{refused}"], number
            reason = report.failed[f"{COLLECTION}/{refused}"]
            assert f"refused item {refused}" in reason and "geometry" in reason.lower()
            # The first run registers the two others; the next finds them (and reuses the
            # refused one's objects, to be refused again).
            assert (report.registered, report.skipped) == ((2, 0) if number == 0 else (0, 2))
    finally:
        static.stop()
        assets.stop()
