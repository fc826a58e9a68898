"""Sentinel copies decided offline: keys, hrefs, fingerprints, the site's item."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from fedeploy_ingestion.download_safety import UnsafeDownload
from fedeploy_ingestion.sentinel_plan import (
    CopiedAsset,
    chosen_assets,
    download_href,
    fingerprint,
    object_key,
    site_collection,
    site_item,
    upstream_link,
)
from fedeploy_ingestion.stac_ids import InvalidId


def upstream_item() -> dict:
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "S2B_MSIL2A_X",
        "collection": "sentinel-2-l2a",
        "stac_extensions": ["https://eo"],
        "geometry": {"type": "Point", "coordinates": [1, 2]},
        "bbox": [1, 2, 1, 2],
        "properties": {
            "datetime": "2024-06-01T10:30:00Z",
            "eo:cloud_cover": 3.0,
            "updated": "2024-06-02T00:00:00Z",
        },
        "assets": {
            "B04": {
                "href": "s3://eodata/Sentinel-2/B04.jp2",
                "type": "image/jp2",
                "roles": ["data"],
                "file:size": 10,
                "file:checksum": "1220" + "00" * 32,
                "alternate": {"https": {"href": "https://download.example/B04.jp2"}},
                "storage:refs": ["cdse"],
            },
            "B03": {"href": "https://download.example/B03", "type": "image/jp2"},
        },
        "links": [{"rel": "self", "href": "https://upstream/items/S2B_MSIL2A_X"}],
    }


@pytest.mark.parametrize(
    ("href", "media_type", "expected"),
    [
        ("https://h/a/B04.jp2", "image/jp2", "sentinel-2-l2a/S2/B04.jp2"),
        ("https://h/odata/Products(1)/$value", "application/zip", "sentinel-2-l2a/S2/B04.zip"),
        ("https://h/x/B04", "image/jp2", "sentinel-2-l2a/S2/B04.jp2"),
        (
            "https://h/x/B04",
            "image/tiff; application=geotiff; profile=cloud-optimized",
            "sentinel-2-l2a/S2/B04.tif",
        ),
        ("https://h/x/B04", None, "sentinel-2-l2a/S2/B04"),
        ("https://h/x/B04.TIF?token=1", None, "sentinel-2-l2a/S2/B04.tif"),
    ],
)
def test_object_keys_follow_the_contract(href: str, media_type: str | None, expected: str) -> None:
    assert object_key("sentinel-2-l2a", "S2", "B04", href, media_type) == f"sentinel/{expected}"


@pytest.mark.parametrize("bad", ["", "a/b", ".."])
def test_ids_that_would_escape_their_prefix_are_refused(bad: str) -> None:
    with pytest.raises(InvalidId, match="object key"):
        object_key("c", bad, "B04", "https://h/x", None)


def test_an_s3_href_is_downloaded_through_its_https_alternate() -> None:
    assets = upstream_item()["assets"]
    assert download_href(assets["B04"]) == "https://download.example/B04.jp2"
    assert download_href(assets["B03"]) == "https://download.example/B03"
    with pytest.raises(UnsafeDownload, match="no HTTP"):
        download_href({"href": "s3://bucket/key"})


def test_chosen_assets_reports_the_missing_ones() -> None:
    chosen, missing = chosen_assets(upstream_item(), ["B04", "SCL"])
    assert list(chosen) == ["B04"] and missing == ["SCL"]


def test_the_fingerprint_changes_with_the_upstream_content_only() -> None:
    item = upstream_item()
    assets, _ = chosen_assets(item, ["B04"])
    base = fingerprint(item, assets)
    assert fingerprint(upstream_item(), chosen_assets(upstream_item(), ["B04"])[0]) == base
    item["properties"]["eo:cloud_cover"] = 50.0  # metadata outside the copy: same content
    assert fingerprint(item, assets) == base
    item["properties"]["updated"] = "2024-07-01T00:00:00Z"
    assert fingerprint(item, assets) != base
    changed = upstream_item()
    changed["assets"]["B04"]["file:checksum"] = "1220" + "11" * 32
    assert fingerprint(changed, chosen_assets(changed, ["B04"])[0]) != base


def test_the_site_item_points_at_the_site_copy_and_back_at_the_upstream() -> None:
    digest = hashlib.sha256(b"x").digest()
    copies = {"B04": CopiedAsset("sentinel/sentinel-2-l2a/S2B_MSIL2A_X/B04.jp2", 10, digest)}
    now = datetime(2024, 6, 3, tzinfo=UTC)
    item = site_item(
        upstream_item(),
        "https://upstream/items/S2B_MSIL2A_X",
        copies,
        bucket="site-a-data",
        site="site-a",
        item_fingerprint="f",
        now=now,
    )
    assert (item["id"], item["collection"]) == ("S2B_MSIL2A_X", "sentinel-2-l2a")
    assert list(item["assets"]) == ["B04"]
    asset = item["assets"]["B04"]
    assert asset["href"] == "s3://site-a-data/sentinel/sentinel-2-l2a/S2B_MSIL2A_X/B04.jp2"
    assert asset["file:checksum"] == "1220" + digest.hex()
    assert "alternate" not in asset and "storage:refs" not in asset
    assert asset["roles"] == ["data"]
    assert item["links"][0]["rel"] == "via"
    assert item["links"][0]["href"] == "https://upstream/items/S2B_MSIL2A_X"
    assert item["properties"]["fedeploy:site"] == "site-a"
    assert item["properties"]["fedeploy:upstream_updated"] == "2024-06-02T00:00:00Z"
    assert item["properties"]["updated"] == "2024-06-03T00:00:00.000000Z"
    assert "https://stac-extensions.github.io/file/v2.1.0/schema.json" in item["stac_extensions"]


def test_the_site_collection_drops_upstream_links_and_keeps_a_via() -> None:
    upstream = {
        "id": "c",
        "links": [
            {"rel": "self", "href": "https://up/collections/c"},
            {"rel": "items", "href": "https://up/collections/c/items"},
        ],
        "item_assets": {},
        "description": "d",
    }
    copy = site_collection(upstream, "c")
    assert copy is not None
    assert copy["links"] == [
        {"rel": "via", "href": "https://up/collections/c", "type": "application/json"}
    ]
    assert "item_assets" not in copy


@pytest.mark.parametrize(
    "answer", [{"id": "other", "description": "d"}, [{"id": "c"}], {"description": "no id"}]
)
def test_an_upstream_answering_another_collection_names_nothing_in_the_site(answer: Any) -> None:
    """A hostile upstream once chose the id of the collection created in the site's catalog."""
    assert site_collection(answer, "c") is None


def test_a_unicode_id_whose_key_s3_would_refuse_fails_before_any_io() -> None:
    """512 four-byte characters pass the id rules but make a key S3 refuses (1024 bytes)."""
    with pytest.raises(InvalidId, match="S3 allows at most 1024"):
        object_key("c", "\U0001d516" * 300, "B04", "https://h/x.jp2", None)
    assert object_key("c", "\u00e9" * 300, "B04", "https://h/x.jp2", None).endswith("/B04.jp2")


@pytest.mark.parametrize(
    "links",
    [
        [{"rel": "self", "href": "javascript:alert(document.cookie)"}],
        [{"rel": "self", "href": "data:text/html,<script>alert(1)</script>"}],
        ["self"],
        "self",
    ],
)
def test_the_via_link_is_the_upstream_self_href_only_when_it_is_http(links: Any) -> None:
    fallback = "https://stac.example/collections/c/items/i"
    assert upstream_link({"links": links}, fallback) == fallback
    good = {"links": [{"rel": "self", "href": "https://up.example/items/i"}]}
    assert upstream_link(good, fallback) == "https://up.example/items/i"
