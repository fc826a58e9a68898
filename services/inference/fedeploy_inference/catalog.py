"""The site's STAC catalog: Sentinel scenes read for features, forecast runs registered.

Search goes through pystac-client; registration uses the Transactions extension: POST the
item, and where it exists already (409) PUT it, so registering a run twice is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pystac_client

from fedeploy_inference.features import SCENE_MAX_AGE_HOURS, Scenes
from fedeploy_inference.hourly import StationSeries

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


class CatalogError(RuntimeError):
    """The catalog refused or failed a request."""


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def scenes_for_stations(
    catalog_url: str, collection: str, series: Mapping[str, StationSeries]
) -> dict[str, Scenes]:
    """Per station with a known position, the collection's scenes over it (time, cloud cover)
    from SCENE_MAX_AGE_HOURS before its first hour to its last; scenes without
    `eo:cloud_cover` are skipped."""
    client = pystac_client.Client.open(catalog_url)
    found: dict[str, Scenes] = {}
    for name, st in series.items():
        if st.longitude is None or st.latitude is None:
            continue
        begin = st.start - timedelta(hours=SCENE_MAX_AGE_HOURS)
        finish = st.start + timedelta(hours=st.values.shape[0])
        search = client.search(
            collections=[collection],
            intersects={"type": "Point", "coordinates": [st.longitude, st.latitude]},
            datetime=[_iso(begin), _iso(finish)],
            limit=500,
        )
        pairs = []
        for item in search.items():
            cloud = item.properties.get("eo:cloud_cover")
            when = item.datetime or item.common_metadata.start_datetime
            if cloud is None or when is None:
                continue
            pairs.append((int(when.timestamp() * 1_000_000), float(cloud)))
        pairs.sort()
        found[name] = Scenes(
            np.array([p[0] for p in pairs], dtype=np.int64),
            np.array([p[1] for p in pairs], dtype=float),
        )
    return found


def forecast_collection(collection: str) -> dict[str, Any]:
    """The STAC collection that batch prediction runs are registered in."""
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": collection,
        "description": "Station forecasts of fedeploy's meteorological model, one item per "
        "batch prediction run (Parquet: station, issued_at, lead, valid time, forecasts).",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [[None, None]]},
        },
        "links": [],
    }


def forecast_item(
    collection: str,
    item_id: str,
    bbox: tuple[float, float, float, float],
    start: datetime,
    end: datetime,
    href: str,
    model: str,
    version: str,
    created: datetime,
    variables: Mapping[str, Mapping[str, object]] | None = None,
) -> dict[str, Any]:
    """The STAC item describing one batch prediction run's output object. `variables`: per
    station, the targets forecast and, for those never forecast (the station has not reported
    them), why (`batch.forecast_variables`); in `fedeploy:variables`."""
    west, south, east, north = bbox
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": item_id,
        "collection": collection,
        "bbox": [west, south, east, north],
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[west, south], [east, south], [east, north], [west, north], [west, south]]
            ],
        },
        "properties": {
            "datetime": None,
            "start_datetime": _iso(start),
            "end_datetime": _iso(end),
            "created": _iso(created),
            "fedeploy:model": model,
            "fedeploy:model_version": version,
            "fedeploy:variables": {k: dict(v) for k, v in (variables or {}).items()},
        },
        "assets": {
            "data": {"href": href, "type": PARQUET_MEDIA_TYPE, "roles": ["data"]},
        },
        "links": [],
    }


def register_item(catalog_url: str, item: dict[str, Any], timeout: float = 30.0) -> None:
    """Create the item's collection if it is missing, then create or replace the item."""
    base = catalog_url.rstrip("/")
    collection = item["collection"]
    # Each id is one percent-encoded path segment: `../x` or `a/b` never names another path.
    collection_url = f"{base}/collections/{quote(str(collection), safe='')}"
    item_url = f"{collection_url}/items/{quote(str(item['id']), safe='')}"
    with httpx.Client(timeout=timeout) as http:
        response = http.get(collection_url)
        if response.status_code == 404:
            created = http.post(f"{base}/collections", json=forecast_collection(collection))
            if created.status_code not in (200, 201, 409):
                raise CatalogError(
                    f"{base}/collections: creating {collection!r} answered "
                    f"{created.status_code}: {created.text[:300]}"
                )
        elif response.status_code != 200:
            raise CatalogError(f"{collection_url}: answered {response.status_code}")
        created = http.post(f"{collection_url}/items", json=item)
        if created.status_code == 409:  # already registered: replace it with this run's item
            created = http.put(item_url, json=item)
        if created.status_code not in (200, 201):
            raise CatalogError(
                f"{item_url}: registering answered {created.status_code}: {created.text[:300]}"
            )
