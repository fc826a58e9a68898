"""ECMWF open-data copies end to end: a stand-in of data.ecmwf.int's tree on loopback (GRIB2
files written with ecCodes and their `.index` files; redirects and errors), SeaweedFS and the
site's pgstac, through ecmwf-opendata's client and the guarded HTTP client."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.ecmwf_open_data import EcmwfRun
from fedeploy_ingestion.object_store import UPLOAD_RECORDS
from fedeploy_ingestion.settings import IngestSettings

from loopback import SeaweedS3
from loopback.ecmwf_open_data import OpenDataServer, data_path, publish
from services.ingestion.tests.agency_site import run_kind, site_settings

pytestmark = pytest.mark.integration

RUN = datetime(2026, 12, 5, 0, tzinfo=UTC)
LATER = datetime(2026, 12, 5, 12, tzinfo=UTC)
WINDOW = "2026-12-05T00:00:00Z/2026-12-05T12:00:00Z"


@pytest.fixture
def tree(tmp_path: Path):
    """Two runs; the 12 UTC one has step 0 only (step 6 not yet published)."""
    root = tmp_path / "open-data"
    for step in (0, 6):
        publish(root, RUN, step, ["2t", "msl", "10u", "t"])
    publish(root, LATER, 0, ["2t", "msl", "10u", "t"])
    server = OpenDataServer(root).start()
    yield root, server
    server.stop()


def settings(s3: SeaweedS3, bucket: str, server: OpenDataServer, **changes: Any) -> IngestSettings:
    source: dict[str, Any] = {
        "name": "ecmwf-ifs",
        "url": server.base,
        "privateHosts": ["127.0.0.1"],  # the loopback stand-in
        "steps": [0, 6],
        "params": ["2t", "msl"],
        "times": [0, 12],
        "datetime": WINDOW,
        "bbox": [10, 45, 13, 48],
    }
    source.update(changes)
    return site_settings(s3, bucket, ecmwf_sources=[source])


def run(config: IngestSettings, s3: SeaweedS3, catalog_url: str, monkeypatch):
    return run_kind(EcmwfRun, config, s3, catalog_url, monkeypatch)


def _messages(root: Path, run: datetime, step: int, params: set[str]) -> bytes:
    path = root / data_path(run, step)
    entries = [json.loads(line) for line in path.with_suffix(".index").read_text().splitlines()]
    data = path.read_bytes()
    return b"".join(
        data[e["_offset"] : e["_offset"] + e["_length"]] for e in entries if e["param"] in params
    )


def test_forecasts_copied_once_registered_and_a_second_run_copies_nothing(
    tree, catalogs, s3: SeaweedS3, bucket: str, monkeypatch
) -> None:
    root, server = tree
    site = catalogs.start("site-a")
    config = settings(s3, bucket, server)

    first, store = run(config, s3, site.url, monkeypatch)
    assert first.failed == {}
    assert (first.found, first.registered, first.copied) == (4, 3, 3)
    assert first.unpublished == ["ecmwf-ifs-oper-fc/ifs-0p25-oper-fc-2026120512-6h-2t_msl"]
    keys = sorted(o["Key"] for o in store.client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [
        "sentinel/ecmwf-ifs-oper-fc/ifs-0p25-oper-fc-2026120500-0h-2t_msl/data.grib2",
        "sentinel/ecmwf-ifs-oper-fc/ifs-0p25-oper-fc-2026120500-6h-2t_msl/data.grib2",
        "sentinel/ecmwf-ifs-oper-fc/ifs-0p25-oper-fc-2026120512-0h-2t_msl/data.grib2",
    ]
    # the copy is the selected messages, byte for byte; only those were downloaded
    assert store.get(keys[1]) == _messages(root, RUN, 6, {"2t", "msl"})
    grib_reads = [r for r in server.requests if r.path.endswith(".grib2")]
    assert all(r.status == 206 and r.range for r in grib_reads)
    assert server.authorization == [None] * len(server.authorization)  # anonymous

    item = CatalogClient(site.url).get_item(
        "ecmwf-ifs-oper-fc", "ifs-0p25-oper-fc-2026120500-6h-2t_msl"
    )
    assert item is not None
    properties = item["properties"]
    assert properties["forecast:reference_datetime"].startswith("2026-12-05T00:00:00")
    assert properties["forecast:horizon"] == "PT6H"
    assert properties["datetime"].startswith("2026-12-05T06:00:00")
    assert properties["ecmwf:params"] == ["2t", "msl"]
    assert properties["fedeploy:area_of_interest"] == [10, 45, 13, 48]
    messages = item["assets"]["data"]["ecmwf:messages"]
    assert [m["param"] for m in messages] == ["2t", "msl"]
    links = {link["rel"]: link["href"] for link in item["links"]}
    assert links["via"] == f"{server.url}/{data_path(RUN, 6)}"

    requests_before = len(server.requests)
    second, _ = run(config, s3, site.url, monkeypatch)
    assert (second.skipped, second.copied, second.registered, second.failed) == (3, 0, 0, {})
    after = server.requests[requests_before:]
    assert [r for r in after if r.path.endswith(".grib2")] == []  # indexes only


def test_a_bad_product_fails_alone(tree, catalogs, s3: SeaweedS3, bucket: str, monkeypatch):
    root, server = tree
    site = catalogs.start("site-a")
    # 00 UTC step 0: an index whose offsets do not match the file's messages
    index = (root / data_path(RUN, 0)).with_suffix(".index")
    entries = [json.loads(line) for line in index.read_text().splitlines()]
    entries[1]["_offset"] += 10  # (and 10 bytes shorter: it overlaps no other entry)
    entries[1]["_length"] -= 10
    index.write_text("".join(json.dumps(e) + "\n" for e in entries))
    # 00 UTC step 6: the server fails
    server.fail(data_path(RUN, 6).removesuffix(".grib2") + ".index", 503)

    report, store = run(settings(s3, bucket, server), s3, site.url, monkeypatch)
    assert set(report.failed) == {
        "ecmwf-ifs-oper-fc/ifs-0p25-oper-fc-2026120500-0h-2t_msl",
        "ecmwf-ifs-oper-fc/ifs-0p25-oper-fc-2026120500-6h-2t_msl",
    }
    bad = report.failed["ecmwf-ifs-oper-fc/ifs-0p25-oper-fc-2026120500-0h-2t_msl"]
    assert "no GRIB edition 2 message starts at byte" in bad
    assert (
        "answered 503" in report.failed["ecmwf-ifs-oper-fc/ifs-0p25-oper-fc-2026120500-6h-2t_msl"]
    )
    assert report.registered == 1  # the 12 UTC run
    listing = store.client.list_objects_v2(Bucket=bucket).get("Contents", [])
    # (the failed copy's upload stays open for the next run, with its record beside it)
    assert [o["Key"] for o in listing if not o["Key"].startswith(UPLOAD_RECORDS)] == [
        "sentinel/ecmwf-ifs-oper-fc/ifs-0p25-oper-fc-2026120512-0h-2t_msl/data.grib2"
    ]
    # a parameter the file does not hold fails its products, naming what the index lacked
    missing, _ = run(settings(s3, bucket, server, params=["nope"]), s3, site.url, monkeypatch)
    assert all("Cannot find index entries" in text for text in missing.failed.values())


def test_redirects_only_to_allowed_hosts(tree, catalogs, s3: SeaweedS3, bucket: str, monkeypatch):
    root, server = tree
    site = catalogs.start("site-a")
    index = data_path(RUN, 0).removesuffix(".grib2") + ".index"
    moved = root / "moved" / index
    moved.parent.mkdir(parents=True)
    moved.write_bytes((root / index).read_bytes())
    # "localhost" is another host than the source's 127.0.0.1: not allowed unless declared
    server.redirect(index, f"http://localhost:{server.url.rsplit(':', 1)[1]}/moved/{index}")
    report, _ = run(settings(s3, bucket, server, steps=[0], times=[0]), s3, site.url, monkeypatch)
    assert report.registered == 0
    (text,) = report.failed.values()
    assert "localhost" in text and "refused" in text

    allowed = settings(
        s3,
        bucket,
        server,
        steps=[0],
        times=[0],
        downloadHosts=["localhost"],
        privateHosts=["127.0.0.1", "localhost"],
    )
    report, _ = run(allowed, s3, site.url, monkeypatch)
    assert (report.failed, report.registered) == ({}, 1)


def test_an_interrupted_copy_resumes_from_its_first_missing_part(
    tmp_path: Path, catalogs, s3: SeaweedS3, bucket: str, monkeypatch
) -> None:
    root = tmp_path / "open-data"
    relative, entries = publish(root, RUN, 0, ["2t", "msl", "10u"], grid=0.25)  # 3 x 3 MB
    server = OpenDataServer(root).start()
    try:
        site = catalogs.start("site-a")
        config = settings(s3, bucket, server, steps=[0], times=[0], params=["2t", "msl", "10u"])
        server.cut_next(relative, 6 * 1024 * 1024)  # after 6 MiB: one 5 MiB part stored
        first, _ = run(config, s3, site.url, monkeypatch)
        assert first.registered == 0 and len(first.failed) == 1
        second, store = run(config, s3, site.url, monkeypatch)
        assert (second.failed, second.registered, second.resumed) == ({}, 1, 1)
        assert second.bytes_copied == (root / relative).stat().st_size - 5 * 1024 * 1024
        (key,) = [o["Key"] for o in store.client.list_objects_v2(Bucket=bucket)["Contents"]]
        assert store.get(key) == (root / relative).read_bytes()
        assert (
            server.requests[-1].range
            == f"bytes={5 * 1024 * 1024}-{entries[-1]['_offset'] + entries[-1]['_length'] - 1}"
        )
    finally:
        server.stop()


def test_a_product_above_its_bound_is_refused_before_download(
    tmp_path: Path, catalogs, s3: SeaweedS3, bucket: str, monkeypatch
) -> None:
    root = tmp_path / "open-data"
    publish(root, RUN, 0, ["2t"], grid=0.25)  # 3 MB
    server = OpenDataServer(root).start()
    try:
        site = catalogs.start("site-a")
        config = settings(s3, bucket, server, steps=[0], times=[0], params=["2t"], maxProductMiB=1)
        report, _ = run(config, s3, site.url, monkeypatch)
        (text,) = report.failed.values()
        assert "above the source's maxProductMiB 1" in text
        assert [r for r in server.requests if r.path.endswith(".grib2")] == []
    finally:
        server.stop()


def test_the_cronjobs_command_runs_ecmwf_sources_without_sentinel_ones(
    tree, site_a, monkeypatch, capsys
) -> None:
    _, server = tree
    source = {
        "name": "ecmwf-ifs",
        "url": server.base,
        "privateHosts": ["127.0.0.1"],
        "steps": [0],
        "params": ["2t"],
        "times": [0],
        "datetime": WINDOW,
    }
    monkeypatch.setenv("INGEST_CATALOG_URL", site_a.url)
    monkeypatch.setenv("INGEST_ECMWF_SOURCES", json.dumps([source]))
    from fedeploy_ingestion import cli

    assert cli.main(["sentinel"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["found"], report["ecmwf"]["registered"], report["ecmwf"]["failed"]) == (0, 1, {})


def test_an_object_stored_by_a_run_that_died_before_registering_is_verified_and_reused(
    tree, catalogs, s3: SeaweedS3, bucket: str, monkeypatch
) -> None:
    _, server = tree
    config = settings(s3, bucket, server, steps=[0], times=[0])
    first, store = run(config, s3, catalogs.start("site-a").url, monkeypatch)
    assert (first.copied, first.registered) == (1, 1)
    # A catalog that never got the item: the object carries the fingerprint, so it is reused.
    again, _ = run(config, s3, catalogs.start("site-a-again").url, monkeypatch)
    assert (again.copied, again.reused, again.registered, again.failed) == (0, 1, 1, {})
    # A stored object that is not what the index says is deleted, and copied the next run.
    (key,) = [o["Key"] for o in store.client.list_objects_v2(Bucket=bucket)["Contents"]]
    head = store.head(key)
    assert head is not None
    store.put(key, b"GRIB" + b"\0" * 10, "application/wmo-GRIB2", head.metadata)
    damaged, _ = run(config, s3, catalogs.start("site-a-third").url, monkeypatch)
    (text,) = damaged.failed.values()
    assert "deleted, the next run copies it again" in text
    assert store.head(key) is None
