"""Searching the hub: every site's items, and which sites the answer is missing.

A plain STAC search of the hub returns the harvested items of every site. Whether a site's
items are current is in its status collection; this client reads both and says which sites
were not reachable at the last harvest, so a caller knows the answer is partial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from fedeploy_ingestion import federation
from fedeploy_ingestion.errors import CatalogError


@dataclass(frozen=True)
class FederatedResult:
    """Items found on the hub, the harvest status of each site, and the sites missing."""

    items: list[dict[str, Any]]
    sites: dict[str, dict[str, Any]]

    @property
    def missing(self) -> list[str]:
        """Sites whose last harvest failed: their items may be absent or out of date."""
        return sorted(name for name, status in self.sites.items() if status.get("status") != "ok")

    @property
    def partial(self) -> bool:
        """Whether some site is missing."""
        return bool(self.missing)


def site_statuses(hub_url: str, http: httpx.Client) -> dict[str, dict[str, Any]]:
    """The `fedeploy:harvest` record of every site the hub harvests."""
    try:
        answer = http.get(f"{hub_url.rstrip('/')}/collections", params={"limit": 1000})
    except httpx.HTTPError as error:
        raise CatalogError(f"GET {hub_url}/collections failed: {error}") from error
    if answer.status_code != 200:
        raise CatalogError(f"GET {hub_url}/collections answered {answer.status_code}")
    return {
        c["fedeploy:site"]: dict(c.get("fedeploy:harvest") or {})
        for c in answer.json().get("collections", [])
        if str(c.get("id", "")).startswith(federation.SITE_COLLECTION_PREFIX)
        and "fedeploy:site" in c
    }


def federated_search(
    hub_url: str,
    search: dict[str, Any],
    max_items: int = 10_000,
    http: httpx.Client | None = None,
    timeout: float = 30.0,
) -> FederatedResult:
    """POST `search` (a STAC /search body) to the hub; items and per-site status.

    Each request times out after `timeout` seconds and is retried a bounded number of times.
    """
    from pystac_client.exceptions import APIError

    from fedeploy_ingestion import stac_client

    client = http or httpx.Client(timeout=timeout)
    sites = site_statuses(hub_url, client)
    try:
        stac_io = stac_client.api_io(None, timeout)
        found = stac_client.open_client(hub_url, stac_io).search(
            max_items=max_items, method="POST", **search
        )
        items = list(found.items_as_dicts())
    except APIError as error:
        raise CatalogError(f"search of the hub {hub_url} failed: {error}") from error
    return FederatedResult(items, sites)
