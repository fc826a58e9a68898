"""How the hub's catalog holds the member sites' items and each site's harvest status (pure).

A harvested item keeps its collection, gets the id `<site>.<item id>` (two sites may hold
copies of the same Sentinel product), the properties `fedeploy:site` and
`fedeploy:site_item_id`, and a `canonical` link to the item at its home site. Each site's
harvest status is a collection `fedeploy-site-<site>` with a `fedeploy:harvest` object: it
holds no items, so it never shows in item searches, and any STAC client can read it.
"""

from __future__ import annotations

import copy
from typing import Any

from fedeploy_ingestion.stac_documents import collection
from fedeploy_ingestion.stac_ids import collection_path, item_path

SITE_COLLECTION_PREFIX = "fedeploy-site-"
# Links that say where an item came from; navigation links are the hub API's own.
_PROVENANCE = {"via", "derived_from", "license", "cite-as", "describedby"}


def hub_item_id(site: str, item_id: str) -> str:
    """The id of a site's item on the hub (site names contain no '.')."""
    return f"{site}.{item_id}"


def item_url(site_url: str, item: dict[str, Any]) -> str:
    """Where an item lives at its home site: its self link, else the API's item path."""
    for link in item.get("links", []):
        if link.get("rel") == "self":
            return str(link["href"])
    return site_url.rstrip("/") + item_path(item.get("collection"), item.get("id"))


def hub_item(site: str, site_url: str, item: dict[str, Any]) -> dict[str, Any]:
    """A site's item as the hub stores it."""
    document = copy.deepcopy(item)
    document["id"] = hub_item_id(site, item["id"])
    document["properties"]["fedeploy:site"] = site
    document["properties"]["fedeploy:site_item_id"] = item["id"]
    document["links"] = [link for link in item.get("links", []) if link.get("rel") in _PROVENANCE]
    document["links"].append(
        {
            "rel": "canonical",
            "href": item_url(site_url, item),
            "type": "application/geo+json",
            "title": f"This item at its home site, {site}",
        }
    )
    return document


def hub_collection(site_url: str, site_collection: dict[str, Any]) -> dict[str, Any]:
    """A site's collection as the hub creates it (first site to have it wins)."""
    document = {k: v for k, v in site_collection.items() if k != "links"}
    document["links"] = [
        {
            "rel": "via",
            "type": "application/json",
            "href": site_url.rstrip("/") + collection_path(site_collection.get("id")),
        }
    ]
    return document


def status_collection_id(site: str) -> str:
    """The id of the collection holding a site's harvest status."""
    return f"{SITE_COLLECTION_PREFIX}{site}"


def status_collection(site: str, site_url: str, status: dict[str, Any]) -> dict[str, Any]:
    """The collection recording a site's last harvest (status, cursor, when, error)."""
    return collection(
        status_collection_id(site),
        f"Harvest status of member site {site}; holds no items.",
        title=f"Site {site}",
        links=[
            {
                "rel": "via",
                "href": site_url,
                "type": "application/json",
                "title": f"The STAC API of site {site}",
            }
        ],
        **{"fedeploy:site": site, "fedeploy:harvest": status},
    )
