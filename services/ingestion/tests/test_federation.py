"""How the hub holds harvested items and site status."""

from __future__ import annotations

from fedeploy_ingestion.federation import (
    hub_collection,
    hub_item,
    status_collection,
)


def site_item() -> dict:
    return {
        "type": "Feature",
        "id": "S2B_X",
        "collection": "sentinel-2-l2a",
        "geometry": {"type": "Point", "coordinates": [1, 2]},
        "properties": {"datetime": "2024-06-01T00:00:00Z"},
        "assets": {"B04": {"href": "s3://site-a-data/sentinel/x/B04.jp2"}},
        "links": [
            {"rel": "self", "href": "http://site-a/collections/sentinel-2-l2a/items/S2B_X"},
            {"rel": "parent", "href": "http://site-a/collections/sentinel-2-l2a"},
            {"rel": "via", "href": "https://upstream/items/S2B_X"},
        ],
    }


def test_a_harvested_item_names_and_links_its_home_site() -> None:
    item = hub_item("site-a", "http://site-a", site_item())
    assert item["id"] == "site-a.S2B_X"
    assert item["collection"] == "sentinel-2-l2a"
    assert item["properties"]["fedeploy:site"] == "site-a"
    assert item["properties"]["fedeploy:site_item_id"] == "S2B_X"
    rels = {link["rel"]: link["href"] for link in item["links"]}
    assert rels == {
        "via": "https://upstream/items/S2B_X",
        "canonical": "http://site-a/collections/sentinel-2-l2a/items/S2B_X",
    }
    assert item["assets"] == site_item()["assets"]


def test_two_sites_copies_of_one_product_get_different_ids() -> None:
    assert (
        hub_item("site-a", "http://a", site_item())["id"]
        != hub_item("site-b", "http://b", site_item())["id"]
    )


def test_without_a_self_link_the_canonical_link_is_built_from_the_site_url() -> None:
    item = site_item()
    item["links"] = []
    canonical = hub_item("site-b", "http://site-b/", item)["links"][0]
    assert canonical == {
        "rel": "canonical",
        "type": "application/geo+json",
        "href": "http://site-b/collections/sentinel-2-l2a/items/S2B_X",
        "title": "This item at its home site, site-b",
    }


def test_hub_collection_and_status_collection() -> None:
    collection = hub_collection(
        "http://site-a", {"id": "c", "links": [{"rel": "self"}], "description": "d"}
    )
    assert collection["links"][0]["href"] == "http://site-a/collections/c"
    status = status_collection("site-a", "http://site-a", {"status": "ok"})
    assert status["id"] == "fedeploy-site-site-a"
    assert status["fedeploy:harvest"] == {"status": "ok"}
