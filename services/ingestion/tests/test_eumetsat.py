"""EUMETSAT Data Store copies end to end: a stand-in of the Data Store API on loopback (token,
OpenSearch description, search pages, downloads with a bearer token), SeaweedFS and the
site's pgstac, through eumdac and the guarded clients."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fedeploy_ingestion import eumetsat_plan
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.eumetsat import EumetsatRun
from fedeploy_ingestion.settings import IngestSettings
from fedeploy_ingestion.stac_ids import InvalidId

from loopback import SeaweedS3
from loopback.eumetsat_data_store import DataStoreServer
from services.ingestion.tests.agency_site import run_kind, site_settings

SEVIRI = "EO:EUM:DAT:MSG:HRSEVIRI"
SITE_COLLECTION = "eumetsat-eo-eum-dat-msg-hrseviri"
KEY, SECRET = "consumer-key-7", "consumer-secret-never-logged"
DAY = datetime(2026, 12, 5, tzinfo=UTC)
WINDOW = "2026-12-05T00:00:00Z/2026-12-06T00:00:00Z"


def product_id(moment: datetime) -> str:
    return f"MSG4-SEVI-MSG15-0100-NA-{moment:%Y%m%d%H%M%S}.000000000Z-NA"


@pytest.fixture
def store_api(tmp_path: Path):
    """Three products on 5 December over Europe, one on 4 December, one over Australia."""
    server = DataStoreServer(tmp_path / "datastore", KEY, SECRET).start()
    for hour in (0, 6, 12):
        server.add(SEVIRI, product_id(DAY + timedelta(hours=hour)), DAY + timedelta(hours=hour))
    server.add(SEVIRI, product_id(DAY - timedelta(hours=6)), DAY - timedelta(hours=6))
    server.add(
        SEVIRI,
        product_id(DAY + timedelta(hours=18)),
        DAY + timedelta(hours=18),
        bbox=(110.0, -40.0, 150.0, -10.0),
    )
    yield server
    server.stop()


def settings(s3: SeaweedS3, bucket: str, server: DataStoreServer, **changes: Any) -> IngestSettings:
    source: dict[str, Any] = {
        "name": "eumetsat-seviri",
        "url": server.endpoints(),
        "privateHosts": ["127.0.0.1"],
        "collections": [SEVIRI],
        "datetime": WINDOW,
        "bbox": [0, 40, 20, 55],
    }
    source.update(changes)
    return site_settings(
        s3,
        bucket,
        eumetsat_sources=[source],
        eumetsat_consumer_key=KEY,
        eumetsat_consumer_secret=SECRET,
    )


def run(config: IngestSettings, s3: SeaweedS3, catalog_url: str, monkeypatch):
    return run_kind(EumetsatRun, config, s3, catalog_url, monkeypatch)


def test_unit_md5_and_keys() -> None:
    assert eumetsat_plan.declared_md5("0" * 32) is not None
    assert eumetsat_plan.declared_md5("not-an-md5") is None
    assert (
        eumetsat_plan.object_key(SEVIRI, "P-1.2Z") == f"sentinel/{SITE_COLLECTION}/P-1.2Z/data.zip"
    )
    with pytest.raises(InvalidId, match="product id"):
        eumetsat_plan.object_key(SEVIRI, "../../admin")


@pytest.mark.integration
def test_products_copied_once_with_the_token_flow_and_a_second_run_copies_nothing(
    store_api: DataStoreServer, catalogs, s3: SeaweedS3, bucket: str, monkeypatch, caplog
) -> None:
    site = catalogs.start("site-a")
    config = settings(s3, bucket, store_api)
    caplog.set_level("DEBUG")

    first, store = run(config, s3, site.url, monkeypatch)
    assert first.failed == {}
    assert (first.found, first.registered, first.copied) == (3, 3, 3)
    keys = sorted(o["Key"] for o in store.client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [
        f"sentinel/{SITE_COLLECTION}/{product_id(DAY + timedelta(hours=h))}/data.zip"
        for h in (0, 6, 12)
    ]
    noon = product_id(DAY + timedelta(hours=12))
    stored = store.get(keys[2])
    assert (
        stored == (store_api.root / store_api.download_path(SEVIRI, noon).lstrip("/")).read_bytes()
    )

    # The consumer key and secret went to the token endpoint only; the bearer token elsewhere.
    basic = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    assert {path for path, auth in store_api.seen if auth == basic} == {"/token"}
    assert all(
        auth and auth.startswith("Bearer ") for path, auth in store_api.seen if path != "/token"
    )
    assert SECRET not in caplog.text

    item = CatalogClient(site.url).get_item(SITE_COLLECTION, noon)
    assert item is not None
    properties = item["properties"]
    assert properties["start_datetime"].startswith("2026-12-05T12:00:00")
    assert (properties["platform"], properties["instruments"]) == ("MSG4", ["SEVIRI"])
    assert properties["eumetsat:md5"] == hashlib.md5(stored).hexdigest()
    assert item["geometry"]["type"] == "Polygon"
    assert properties["eumetsat:collection"] == SEVIRI
    links = {link["rel"]: link["href"] for link in item["links"]}
    assert links["via"].startswith(f"{store_api.url}/data/browse/")

    downloads = len([p for p, _ in store_api.seen if p.startswith("/data/download/")])
    second, _ = run(config, s3, site.url, monkeypatch)
    assert (second.skipped, second.copied, second.registered, second.failed) == (3, 0, 0, {})
    assert len([p for p, _ in store_api.seen if p.startswith("/data/download/")]) == downloads


@pytest.mark.integration
def test_a_bad_product_fails_alone(store_api, catalogs, s3: SeaweedS3, bucket: str, monkeypatch):
    site = catalogs.start("site-a")
    # 00 UTC: the published MD5 is not the zip's; 06 UTC: the download fails
    wrong = product_id(DAY + timedelta(hours=0))
    store_api.add(SEVIRI, wrong, DAY, md5="0" * 32)
    broken = product_id(DAY + timedelta(hours=6))
    store_api.fail(store_api.download_path(SEVIRI, broken), 404)
    report, store = run(settings(s3, bucket, store_api), s3, site.url, monkeypatch)
    assert set(report.failed) == {f"{SEVIRI}/{wrong}", f"{SEVIRI}/{broken}"}
    assert "md5 of the copied bytes" in report.failed[f"{SEVIRI}/{wrong}"]
    assert "answered 404" in report.failed[f"{SEVIRI}/{broken}"]
    assert report.registered == 1
    (key,) = [o["Key"] for o in store.client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert key.endswith(product_id(DAY + timedelta(hours=12)) + "/data.zip")


@pytest.mark.integration
def test_wrong_credentials_fail_the_source_naming_the_settings(
    store_api, catalogs, s3: SeaweedS3, bucket: str, monkeypatch
) -> None:
    site = catalogs.start("site-a")
    config = settings(s3, bucket, store_api).model_copy(
        update={
            "eumetsat_consumer_secret": IngestSettings(
                eumetsat_consumer_secret="wrong"
            ).eumetsat_consumer_secret
        }
    )
    report, _ = run(config, s3, site.url, monkeypatch)
    ((name, text),) = report.failed.items()
    assert name == "eumetsat-seviri:token"
    assert "answered 401" in text and "INGEST_EUMETSAT_CONSUMER_SECRET" in text
    assert "wrong" not in text


@pytest.mark.integration
def test_a_redirect_off_the_allowed_hosts_gets_neither_token_nor_request(
    store_api, catalogs, s3: SeaweedS3, bucket: str, monkeypatch
) -> None:
    site = catalogs.start("site-a")
    noon = product_id(DAY + timedelta(hours=12))
    port = store_api.url.rsplit(":", 1)[1]
    # the download redirects to "localhost", another host (same server: it would be seen)
    store_api.redirect(store_api.download_path(SEVIRI, noon), f"http://localhost:{port}/elsewhere")
    report, _ = run(settings(s3, bucket, store_api), s3, site.url, monkeypatch)
    assert "refused" in report.failed[f"{SEVIRI}/{noon}"]
    assert "localhost" in report.failed[f"{SEVIRI}/{noon}"]
    assert "/elsewhere" not in [path for path, _ in store_api.seen]
    assert report.registered == 2

    # the API root itself on a host the policy refuses: the source fails before any request
    seen = len(store_api.seen)
    metadata = settings(s3, bucket, store_api, url="http://169.254.169.254", privateHosts=[])
    report, _ = run(metadata, s3, site.url, monkeypatch)
    (text,) = report.failed.values()
    assert "169.254.169.254" in text and "refused" in text
    assert len(store_api.seen) == seen


@pytest.mark.integration
def test_a_search_that_fails_fails_its_collection_and_a_large_product_fails_alone(
    store_api, catalogs, s3: SeaweedS3, bucket: str, monkeypatch
) -> None:
    site = catalogs.start("site-a")
    store_api.add(
        SEVIRI, product_id(DAY + timedelta(hours=3)), DAY + timedelta(hours=3), size=2 * 1024 * 1024
    )
    report, _ = run(settings(s3, bucket, store_api, maxProductMiB=1), s3, site.url, monkeypatch)
    big = f"{SEVIRI}/{product_id(DAY + timedelta(hours=3))}"
    assert "above the source's maxProductMiB (1)" in report.failed[big]
    assert report.registered == 3

    store_api.fail("/data/search-products/1.0.0/os", 400)
    report, _ = run(settings(s3, bucket, store_api), s3, site.url, monkeypatch)
    assert list(report.failed) == [f"eumetsat-seviri:{SEVIRI}:search"]
    assert "search of" in report.failed[f"eumetsat-seviri:{SEVIRI}:search"]


@pytest.mark.integration
def test_the_cronjobs_command_needs_the_api_key(site_a, store_api, monkeypatch, capsys) -> None:
    source = {
        "name": "eumetsat-seviri",
        "url": store_api.url,
        "privateHosts": ["127.0.0.1"],
        "collections": [SEVIRI],
        "datetime": WINDOW,
    }
    monkeypatch.setenv("INGEST_CATALOG_URL", site_a.url)
    monkeypatch.setenv("INGEST_EUMETSAT_SOURCES", json.dumps([source]))
    from fedeploy_ingestion import cli

    assert cli.main(["sentinel"]) == 2
    assert "INGEST_EUMETSAT_CONSUMER_KEY" in capsys.readouterr().err
    monkeypatch.setenv("INGEST_EUMETSAT_CONSUMER_KEY", KEY)
    monkeypatch.setenv("INGEST_EUMETSAT_CONSUMER_SECRET", SECRET)
    assert cli.main(["sentinel"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["eumetsat"]["registered"], report["eumetsat"]["failed"]) == (4, {})


@pytest.mark.integration
def test_eumdacs_own_requests_follow_no_redirect_off_the_allowed_hosts(
    store_api, catalogs, s3: SeaweedS3, bucket: str, monkeypatch
) -> None:
    site = catalogs.start("site-a")
    port = store_api.url.rsplit(":", 1)[1]
    # The search (sent by eumdac, with the bearer token) redirects to another host.
    store_api.redirect("/data/search-products/1.0.0/os", f"http://localhost:{port}/elsewhere")
    report, _ = run(settings(s3, bucket, store_api), s3, site.url, monkeypatch)
    ((name, text),) = report.failed.items()
    assert name == f"eumetsat-seviri:{SEVIRI}:search"
    assert "localhost" in text and "refused" in text
    assert "/elsewhere" not in [path for path, _ in store_api.seen]


def test_the_api_key_is_read_from_the_charts_secret_files(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "ingest_eumetsat_consumer_key").write_text(KEY)
    (tmp_path / "ingest_eumetsat_consumer_secret").write_text(SECRET)
    monkeypatch.setenv("INGEST_SETTINGS_DIR", str(tmp_path))
    settings = IngestSettings()
    assert settings.eumetsat_consumer_key is not None
    assert settings.eumetsat_consumer_secret is not None
    assert settings.eumetsat_consumer_key.get_secret_value() == KEY
    assert settings.eumetsat_consumer_secret.get_secret_value() == SECRET
    assert SECRET not in repr(settings)
