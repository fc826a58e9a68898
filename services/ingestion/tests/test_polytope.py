"""Polytope (DestinE's digital-twin data) end to end: a stand-in of Polytope's REST API on
loopback (202 and polling, 303 to the result, its auth header and error bodies; GRIB2 written
with ecCodes), SeaweedFS and the site's pgstac, through polytope-client's URL and key header
and the guarded HTTP client."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from fedeploy_ingestion import cli, polytope_plan
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.polytope_source import PolytopeRun
from fedeploy_ingestion.settings import IngestSettings
from pydantic import ValidationError

from loopback import SeaweedS3
from loopback.polytope import PolytopeServer, encode
from services.ingestion.tests.agency_site import run_kind, site_settings

pytestmark = pytest.mark.integration

KEY = "destine-key-0123456789"
CLIMATE = {
    "class": "d1",
    "dataset": "climate-dt",
    "activity": "ScenarioMIP",
    "experiment": "SSP3-7.0",
    "model": "IFS-NEMO",
    "generation": "1",
    "realization": "1",
    "expver": "0001",
    "stream": "clte",
    "type": "fc",
    "levtype": "sfc",
    "param": "2t/msl",
    "date": "20260601",
    "time": "0000/1200",
}
EXTREMES = {
    "class": "d1",
    "dataset": "extremes-dt",
    "expver": "0001",
    "stream": "oper",
    "type": "fc",
    "levtype": "sfc",
    "param": ["10u", "10v"],
    "date": "2026-12-04",
    "time": "0000",
    "step": "0/6",
    "area": "48/10/45/13",
}


@pytest.fixture
def polytope(tmp_path: Path):
    server = PolytopeServer(tmp_path / "polytope", KEY, polls=2).start()
    yield server
    server.stop()


def settings(s3: SeaweedS3, bucket: str, server: PolytopeServer, **changes: Any) -> IngestSettings:
    source: dict[str, Any] = {
        "name": "destine-dt",
        "url": server.address,
        "privateHosts": ["127.0.0.1", "localhost"],  # the loopback stand-in
        "requests": [CLIMATE, EXTREMES],
        "pollSeconds": 0.02,
        "bbox": [10, 45, 13, 48],
    }
    source.update(changes)
    return site_settings(s3, bucket, polytope_sources=[source], polytope_key=KEY)


def run(config: IngestSettings, s3: SeaweedS3, catalog_url: str, monkeypatch):
    return run_kind(PolytopeRun, config, s3, catalog_url, monkeypatch)


def test_products_copied_once_registered_and_a_second_run_submits_nothing(
    polytope, catalogs, s3: SeaweedS3, bucket: str, monkeypatch
) -> None:
    site = catalogs.start("site-a")
    config = settings(s3, bucket, polytope)

    first, store = run(config, s3, site.url, monkeypatch)
    assert first.failed == {}
    assert (first.found, first.copied, first.registered) == (2, 2, 2)
    climate = polytope_plan.Product("destination-earth", CLIMATE)
    extremes = polytope_plan.Product("destination-earth", EXTREMES)
    keys = sorted(o["Key"] for o in store.client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted([climate.key, extremes.key])
    assert climate.key == (
        "sentinel/destination-earth-climate-dt/climate-dt-scenariomip-ssp3-7.0-ifs-nemo-"
        f"20260601-{climate.digest[:16]}/data.grib2"
    )
    # the copy is Polytope's result byte for byte (2 times x 2 params, GRIB2 by ecCodes)
    assert store.get(climate.key) == encode(polytope_plan.mars_request(CLIMATE))
    assert store.get(climate.key)[:4] == b"GRIB"
    # the requests as polytope-client sends them: lists as MARS's a/b
    assert polytope.submitted[1]["param"] == "10u/10v"
    # the key went with every request to Polytope's API, as a bearer token
    api = [s for s in polytope.seen if "/requests" in s[2]]
    assert api and all(auth == f"Bearer {KEY}" for _, _, _, auth in api)
    polls = [s for s in api if s[0] == "GET"]
    assert len(polls) == 2 * 3  # two 202s, then the 303, per request

    item = CatalogClient(site.url).get_item(climate.collection_id, climate.item_id)
    assert item is not None
    properties = item["properties"]
    assert properties["polytope:dataset"] == "climate-dt"
    assert properties["polytope:experiment"] == "SSP3-7.0"
    assert properties["polytope:param"] == "2t/msl"
    assert properties["polytope:request_digest"] == climate.digest
    assert properties["datetime"].startswith("2026-06-01T00:00:00")
    assert properties["fedeploy:area_of_interest"] == [10, 45, 13, 48]
    assert item["assets"]["data"]["file:size"] == len(store.get(climate.key))
    links = {link["rel"]: link["href"] for link in item["links"]}
    assert links["via"] == f"{polytope.address}/api/v1/requests/destination-earth"

    seen_before = len(polytope.seen)
    # the same requests in another key and value order are the same products
    reordered = dict(reversed(list(CLIMATE.items())), param="msl/2t")
    again = settings(s3, bucket, polytope, requests=[reordered, EXTREMES])
    second, _ = run(again, s3, site.url, monkeypatch)
    assert (second.skipped, second.copied, second.registered, second.failed) == (2, 0, 0, {})
    assert polytope.seen[seen_before:] == []  # nothing submitted, nothing read


def test_a_refused_request_fails_alone_with_polytopes_message(
    polytope, catalogs, s3: SeaweedS3, bucket: str, monkeypatch
) -> None:
    site = catalogs.start("site-a")
    polytope.refuse("2d", 400, "Request failed: param 2d is not in dataset extremes-dt")
    polytope.fail_processing("tp", "no data found for date 20260601")
    bad = dict(EXTREMES, param="2d")
    failing = dict(CLIMATE, param="tp")
    config = settings(s3, bucket, polytope, requests=[bad, CLIMATE, failing])

    report, store = run(config, s3, site.url, monkeypatch)
    assert report.registered == 1
    refused = polytope_plan.Product("destination-earth", bad)
    failed = polytope_plan.Product("destination-earth", failing)
    assert set(report.failed) == {
        f"{refused.collection_id}/{refused.item_id}",
        f"{failed.collection_id}/{failed.item_id}",
    }
    assert report.failed[f"{refused.collection_id}/{refused.item_id}"] == (
        "Polytope refused the request (400): Request failed: param 2d is not in dataset extremes-dt"
    )
    assert (
        "no data found for date 20260601"
        in report.failed[f"{failed.collection_id}/{failed.item_id}"]
    )
    keys = [o["Key"] for o in store.client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [polytope_plan.Product("destination-earth", CLIMATE).key]
    # a collection the key may not read: 403, Polytope's words, every product of the source
    other = settings(s3, bucket, polytope, collection="private-dt", requests=[EXTREMES])
    denied, _ = run(other, s3, site.url, monkeypatch)
    assert list(denied.failed.values()) == [
        "Polytope refused the request (403): Not authorized to access collection private-dt; "
        "check the key (ingest_polytope_key)"
    ]


def test_the_key_never_leaves_the_polytope_host(
    polytope, catalogs, s3: SeaweedS3, bucket: str, monkeypatch
) -> None:
    site = catalogs.start("site-a")
    port = polytope.url.rsplit(":", 1)[1]
    # the result on a staging host (this server under another name), allowed as downloadHost
    polytope.result_base = f"http://localhost:{port}"
    config = settings(s3, bucket, polytope, requests=[CLIMATE], downloadHosts=["localhost"])
    report, _ = run(config, s3, site.url, monkeypatch)
    assert report.failed == {} and report.copied == 1
    downloads = [s for s in polytope.seen if "/downloads/" in s[2]]
    assert downloads and all(host.startswith("localhost:") for _, host, _, _ in downloads)
    assert [auth for _, _, _, auth in downloads] == [None] * len(downloads)
    api = [s for s in polytope.seen if "/requests" in s[2]]
    assert all(host.startswith("127.0.0.1:") and auth for _, host, _, auth in api)

    # a 303 to a host that is not the source's fails the product, before any request to it
    polytope.seen.clear()
    other = settings(s3, bucket, polytope, requests=[EXTREMES])
    refused, _ = run(other, s3, site.url, monkeypatch)
    (message,) = refused.failed.values()
    assert "host 'localhost' is not one of source destine-dt's download hosts" in message
    assert [s for s in polytope.seen if "/downloads/" in s[2]] == []


def test_a_cut_result_is_read_again_in_the_same_run(
    polytope, catalogs, s3: SeaweedS3, bucket: str, monkeypatch
) -> None:
    site = catalogs.start("site-a")
    # the first request's result: cut after 1000 bytes once
    polytope.cut_next("api/v1/downloads/req-0001", 1000)
    report, store = run(settings(s3, bucket, polytope, requests=[CLIMATE]), s3, site.url, monkeypatch)  # fmt: skip
    assert report.failed == {} and report.copied == 1
    reads = [r for r in polytope.requests if r.path == "/api/v1/downloads/req-0001"]
    assert len(reads) == 2  # read again (the part below 5 MiB was never uploaded: from 0)
    climate = polytope_plan.Product("destination-earth", CLIMATE)
    assert store.get(climate.key) == encode(polytope_plan.mars_request(CLIMATE))


def test_settings_refuse_relative_dates_and_bad_keys() -> None:
    for request, words in (
        (dict(CLIMATE, date="-1"), "not an absolute date"),
        ({k: v for k, v in CLIMATE.items() if k != "param"}, "names no 'param'"),
        (dict(CLIMATE, Param="2t"), "is not a MARS key"),
        (dict(CLIMATE, param="2t;rm"), "holds characters a MARS value does not"),
    ):
        with pytest.raises(ValidationError, match=words):
            IngestSettings(polytope_sources=[{"name": "destine-dt", "requests": [request]}])


def test_identity_is_order_independent() -> None:
    a = polytope_plan.digest("destination-earth", CLIMATE)
    b = polytope_plan.digest(
        "destination-earth", dict(reversed(list(CLIMATE.items())), param=["msl", "2t"])
    )
    assert a == b
    assert a != polytope_plan.digest("destination-earth", dict(CLIMATE, time="0000"))
    assert a != polytope_plan.digest("ecmwf-mars", CLIMATE)
    # a range keeps its order: 'to' and 'by' are words of one value
    ranged = dict(CLIMATE, date="20260601/to/20260603")
    assert polytope_plan.canonical("c", ranged)["request"]["date"] == ["20260601", "to", "20260603"]


def test_the_cli_needs_the_key_and_reads_it_from_a_file(
    polytope, catalogs, s3: SeaweedS3, bucket: str, monkeypatch, capsys, tmp_path: Path
) -> None:
    site = catalogs.start("site-a")
    source = {
        "name": "destine-dt",
        "url": polytope.address,
        "privateHosts": ["127.0.0.1"],
        "requests": [EXTREMES],
        "pollSeconds": 0.02,
    }
    for name, value in {
        "INGEST_SITE": "site-a",
        "INGEST_BUCKET": bucket,
        "INGEST_S3_ENDPOINT_URL": s3.endpoint.endpoint_url,
        "INGEST_S3_REGION": s3.endpoint.region,
        "INGEST_CATALOG_URL": site.url,
        "INGEST_POLYTOPE_SOURCES": json.dumps([source]),
        "AWS_ACCESS_KEY_ID": s3.endpoint.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3.endpoint.secret_access_key,
    }.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["sentinel"]) == 2
    assert "INGEST_POLYTOPE_KEY" in capsys.readouterr().err
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "ingest_polytope_key").write_text(KEY)
    monkeypatch.setenv("INGEST_SETTINGS_DIR", str(secrets))
    assert cli.main(["sentinel"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["polytope"]["registered"] == 1


def _result(data: bytes, seen: list[str | None], max_bytes: int = 1 << 20, grib: bool = True):
    """A PolytopeResult over `data` served with Range support by an in-memory transport."""
    import httpx
    from fedeploy_ingestion import download_safety
    from fedeploy_ingestion.polytope_source import PolytopeKey, PolytopeResult
    from fedeploy_ingestion.settings import PolytopeSource

    def answer(request: httpx.Request) -> httpx.Response:
        asked = request.headers.get("range")
        seen.append(asked)
        if asked:
            start = int(asked.removeprefix("bytes=").split("-")[0])
            headers = {"content-range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            return httpx.Response(206, content=data[start:], headers=headers)
        return httpx.Response(200, content=data)

    source = PolytopeSource(
        name="destine-dt", url="http://127.0.0.1:9", privateHosts=["127.0.0.1"], requests=[CLIMATE]
    )
    guard = download_safety.AddressGuard.build(private_hosts=["127.0.0.1"])
    http = httpx.Client(transport=httpx.MockTransport(answer))
    key = PolytopeKey(source, f"Bearer {KEY}", http, guard)
    return PolytopeResult("http://127.0.0.1:9/api/v1/downloads/x", http, key, max_bytes, grib)


def test_a_result_is_never_resumed() -> None:
    data = encode(CLIMATE)
    seen: list[str | None] = []
    result = _result(data, seen)
    # every read of a result starts at byte 0 whatever the store's unfinished upload holds
    # (it may come from another submission) and whatever a cut read left: the copy then
    # starts its upload over, and every byte stored passed GribFraming
    for _ in range(2):
        chunks, start, total = result.open(100)
        assert (start, total, b"".join(chunks)) == (0, len(data), data)
    assert seen == [None, None]


def test_a_result_that_is_not_whole_grib_messages_or_too_large_is_refused() -> None:
    from fedeploy_ingestion.errors import SourceError

    data = encode(CLIMATE)
    for broken, words in (
        (data[:-1], "inside the GRIB message that starts at byte"),
        (data[:-4] + b"7778", "does not end '7777'"),
        (b"<html>" + data, "no GRIB message (edition 1 or 2) starts at byte 0"),
    ):
        chunks, _, _ = _result(broken, []).open(0)
        with pytest.raises(SourceError, match=re.escape(words)):
            b"".join(chunks)
    with pytest.raises(SourceError, match="above the source's maxProductMiB"):
        _result(data, [], max_bytes=len(data) - 1).open(0)


def test_the_key_header_needs_no_home_and_no_passwd_entry(monkeypatch) -> None:
    import pwd

    from fedeploy_ingestion.polytope_source import key_header

    # the image's user 10001 has no passwd entry, and HOME may be unset
    for name in ("HOME", "LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)

    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    root, header = key_header("https://polytope.example.org", KEY, None)
    assert (root, header) == ("https://polytope.example.org:443/api/v1/requests", f"Bearer {KEY}")
    root, header = key_header("http://127.0.0.1:8080", KEY, "someone@example.org")
    assert (root, header) == (
        "http://127.0.0.1:8080/api/v1/requests",
        f"EmailKey someone@example.org:{KEY}",
    )
    assert "HOME" not in os.environ and "USER" not in os.environ  # put back as they were
