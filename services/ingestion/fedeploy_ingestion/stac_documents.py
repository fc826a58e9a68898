"""Small pieces shared by every STAC document the service writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

STAC_VERSION = "1.1.0"
FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
# pgstac requires a geometry; an item whose place is unknown covers the whole world.
WORLD = {
    "type": "Polygon",
    "coordinates": [
        [[-180.0, -90.0], [180.0, -90.0], [180.0, 90.0], [-180.0, 90.0], [-180.0, -90.0]]
    ],
}
WORLD_BBOX = [-180.0, -90.0, 180.0, 90.0]


def rfc3339(moment: datetime) -> str:
    """UTC, microseconds, 'Z', a four-digit year: one fixed form, so timestamps sort as text."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S.%f}Z"


def collection(collection_id: str, description: str, **extra: Any) -> dict[str, Any]:
    """A minimal STAC collection covering the world and all time."""
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "id": collection_id,
        "description": description,
        "license": "other",
        "extent": {"spatial": {"bbox": [WORLD_BBOX]}, "temporal": {"interval": [[None, None]]}},
        "links": [],
        **extra,
    }


def global_product_item(
    item_id: str,
    collection_id: str,
    properties: dict[str, Any],
    data: dict[str, Any],
    links: list[dict[str, Any]],
    extensions: list[str],
) -> dict[str, Any]:
    """A STAC item of one copied product covering the world (a global field whose area of
    interest is recorded in its properties, not cut out), its one asset `data`."""
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": sorted(extensions),
        "id": item_id,
        "collection": collection_id,
        "geometry": WORLD,
        "bbox": WORLD_BBOX,
        "properties": properties,
        "assets": {"data": data},
        "links": links,
    }
