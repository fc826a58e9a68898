"""Hub-side https alternates: a harvested item's `s3://` assets gain an https href at the home
site's asset endpoint, so a user of the hub can fetch them with a token (pure).

The `s3://` href stays the asset's href (the site's own services read it); the https one goes
under `alternate.https` (STAC alternate-assets extension) and points at
`<site catalog URL>/assets/<collection>/<item id>/<asset key>`, each part percent-encoded. The
endpoint there checks the caller's token and answers 307 to a short-lived presigned URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

ALTERNATE_ASSETS = "https://stac-extensions.github.io/alternate-assets/v1.2.0/schema.json"


def asset_endpoint_url(site_url: str, collection: str, item_id: str, asset: str) -> str:
    """Where the home site serves one asset: `<site_url>/assets/<collection>/<item>/<asset>`."""
    parts = (quote(part, safe="") for part in (collection, item_id, asset))
    return f"{site_url.rstrip('/')}/assets/" + "/".join(parts)


def with_https_alternates(
    hub_item: dict[str, Any], site_url: str, collection: str, site_item_id: str
) -> dict[str, Any]:
    """`hub_item` with an `alternate.https` on every `s3://` asset; changed in place, returned.

    Only for a site published over https (an http or in-cluster URL is not reachable from
    outside the site, so it gets no alternate). Other alternates an asset has are kept.
    """
    if not site_url.lower().startswith("https://"):
        return hub_item
    added = False
    for key, asset in (hub_item.get("assets") or {}).items():
        if not isinstance(asset, dict) or not str(asset.get("href", "")).startswith("s3://"):
            continue
        alternates = asset.get("alternate")
        alternates = dict(alternates) if isinstance(alternates, dict) else {}
        alternates["https"] = {
            "href": asset_endpoint_url(site_url, collection, site_item_id, key),
            "title": "Through the home site's asset endpoint (needs a token; redirects to a "
            "short-lived URL)",
        }
        asset["alternate"] = alternates
        added = True
    if added:
        extensions = list(hub_item.get("stac_extensions") or [])
        if ALTERNATE_ASSETS not in extensions:
            extensions.append(ALTERNATE_ASSETS)
        hub_item["stac_extensions"] = extensions
    return hub_item
