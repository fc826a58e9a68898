"""EODAG sources end to end: EODAG searching a STAC API on loopback (stac-fastapi-pgstac with
Sentinel-2-like items, its assets on an HTTP server) added as a provider, the products copied
by the Sentinel path into SeaweedFS and registered in the site's pgstac."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.eodag_source import EodagRun
from fedeploy_ingestion.settings import EodagSource, IngestSettings

from loopback import PostgresServer, SeaweedS3, StacApiServer
from loopback.asset_server import AssetServer
from loopback.sentinel_upstream import COLLECTION, load, make_items
from services.ingestion.tests.agency_site import run_kind, site_settings

pytest.importorskip("eodag")
pytestmark = pytest.mark.integration

SIZES = {"B04": 300 * 1024, "B03": 100 * 1024}


@pytest.fixture(scope="module")
def upstream(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[StacApiServer, AssetServer, list[dict[str, Any]]]]:
    """Three items, one a day from 2024-06-01; the second's B04 is only on s3://."""
    root = tmp_path_factory.mktemp("eodag-upstream")
    assets = AssetServer(root / "files").start()
    items = make_items(assets, 3, SIZES)
    items[1]["assets"]["B04"]["href"] = "s3://sentinel-cogs/B04.jp2"
    api = StacApiServer(postgres.create_database("eodag_upstream"), root / "api", name="up").start()
    load(api.url, items)
    yield api, assets, items
    api.stop()
    assets.stop()


def settings(s3: SeaweedS3, bucket: str, api_url: str, **changes: Any) -> IngestSettings:
    source: dict[str, Any] = {
        "name": "loopback-stac",
        "provider": "loopback_stac",
        "url": api_url,
        "privateHosts": ["127.0.0.1"],
        "collections": [COLLECTION],
        "assets": ["B04", "B03"],
        "bbox": [10, 45, 13, 48],
        "datetime": "2024-06-01T00:00:00Z/2024-06-04T00:00:00Z",
    }
    source.update(changes)
    return site_settings(s3, bucket, eodag_sources=[source])


def test_products_found_by_eodag_are_copied_once_and_a_bad_one_fails_alone(
    upstream, catalogs, s3: SeaweedS3, bucket: str, monkeypatch
) -> None:
    api, assets, items = upstream
    site = catalogs.start("site-a")
    config = settings(s3, bucket, api.url)

    first, store = run_kind(EodagRun, config, s3, site.url, monkeypatch)
    assert first.found == 3
    assert list(first.failed) == [f"{COLLECTION}/{items[1]['id']}"]
    assert "not HTTP(S)" in first.failed[f"{COLLECTION}/{items[1]['id']}"]
    assert (first.registered, first.assets_copied) == (2, 4)
    keys = sorted(o["Key"] for o in store.client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(
        f"sentinel/{COLLECTION}/{items[i]['id']}/{name}.jp2" for i in (0, 2) for name in SIZES
    )
    stored = CatalogClient(site.url).get_item(COLLECTION, items[0]["id"])
    assert stored is not None
    asset = stored["assets"]["B04"]
    assert asset["file:checksum"] == items[0]["assets"]["B04"]["file:checksum"]
    assert stored["properties"]["eodag:provider"] == "loopback_stac"

    requests = len(assets.requests)
    second, _ = run_kind(EodagRun, config, s3, site.url, monkeypatch)
    assert (second.skipped, second.assets_copied, second.registered) == (2, 0, 0)
    assert len(assets.requests) == requests


def test_an_asset_on_another_host_is_refused(upstream, catalogs, s3, bucket, monkeypatch):
    api, _, _ = upstream
    site = catalogs.start("site-a")
    # The search host is "localhost" now: the assets' 127.0.0.1 is another host.
    port = api.url.rsplit(":", 1)[1]
    config = settings(
        s3, bucket, f"http://localhost:{port}", privateHosts=["localhost"], assets=["B03"]
    )
    report, _ = run_kind(EodagRun, config, s3, site.url, monkeypatch)
    assert report.registered == 0
    assert report.failed and all("refused" in text for text in report.failed.values())


def test_copernicus_through_eodag_gets_its_token_endpoint_and_download_hosts() -> None:
    source = EodagSource(
        name="cdse", provider="cop_dataspace", collections=["S2_MSI_L2A"], assets=["B04"]
    )
    assert source.token_url and "identity.dataspace.copernicus.eu" in source.token_url
    assert "download.dataspace.copernicus.eu" in source.download_hosts


def test_the_cronjobs_command_runs_eodag_sources(upstream, site_a, monkeypatch, capsys):
    api, _, _ = upstream
    source = {
        "name": "loopback-stac",
        "provider": "loopback_stac",
        "url": api.url,
        "privateHosts": ["127.0.0.1"],
        "collections": [COLLECTION],
        "assets": ["B03"],
        "datetime": "2024-06-01T00:00:00Z/2024-06-04T00:00:00Z",
    }
    monkeypatch.setenv("INGEST_CATALOG_URL", site_a.url)
    monkeypatch.setenv("INGEST_EODAG_SOURCES", json.dumps([source]))
    from fedeploy_ingestion import cli

    assert cli.main(["sentinel"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["eodag"]["registered"], report["eodag"]["failed"]) == (3, {})


def test_a_search_that_fails_fails_its_source(catalogs, s3: SeaweedS3, bucket: str, monkeypatch):
    site = catalogs.start("site-a")
    report, _ = run_kind(
        EodagRun, settings(s3, bucket, "http://127.0.0.1:9"), s3, site.url, monkeypatch
    )
    assert report.found == 0
    assert list(report.failed) == ["loopback-stac:search"]
