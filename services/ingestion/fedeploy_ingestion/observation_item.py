"""The STAC item and collection of observation windows (pure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fedeploy_ingestion.multihash import sha256_multihash
from fedeploy_ingestion.observation import Observation
from fedeploy_ingestion.stac_documents import (
    FILE_EXTENSION,
    STAC_VERSION,
    WORLD,
    WORLD_BBOX,
    collection,
    rfc3339,
)
from fedeploy_ingestion.window_table import MEDIA_TYPE
from fedeploy_ingestion.windowing import OBSERVATIONS_COLLECTION, WindowId


def observations_collection() -> dict[str, Any]:
    """The `edge-observations` collection."""
    return collection(
        OBSERVATIONS_COLLECTION,
        "Edge sensor observations, one item per station and time window, stored as "
        "(Geo)Parquet (schema fedeploy.observation/1).",
        title="Edge observations",
        keywords=["observations", "in-situ", "edge"],
    )


def _geometry(observations: list[Observation]) -> tuple[dict[str, Any], list[float], bool]:
    points = sorted(
        {
            (o.longitude, o.latitude)
            for o in observations
            if o.longitude is not None and o.latitude is not None
        }
    )
    if not points:
        return WORLD, WORLD_BBOX, False
    longitudes = [p[0] for p in points]
    latitudes = [p[1] for p in points]
    bbox = [min(longitudes), min(latitudes), max(longitudes), max(latitudes)]
    if len(points) == 1:
        return {"type": "Point", "coordinates": list(points[0])}, bbox, True
    return {"type": "MultiPoint", "coordinates": [list(p) for p in points]}, bbox, True


def window_item(
    window: WindowId,
    observations: list[Observation],
    *,
    bucket: str,
    site: str,
    size: int,
    sha256: bytes,
    now: datetime,
) -> dict[str, Any]:
    """The item registering one stored window; its id and asset href derive from the window."""
    geometry, bbox, position_known = _geometry(observations)
    variables = sorted({name for o in observations for name in o.values})
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [FILE_EXTENSION],
        "id": window.item_id,
        "collection": OBSERVATIONS_COLLECTION,
        "geometry": geometry,
        "bbox": bbox,
        "properties": {
            "datetime": None,
            "start_datetime": rfc3339(window.start),
            "end_datetime": rfc3339(window.end),
            "updated": rfc3339(now),
            "fedeploy:site": site,
            "fedeploy:station": window.station,
            "fedeploy:observation_count": len(observations),
            "fedeploy:variables": variables,
            "fedeploy:position_known": position_known,
        },
        "assets": {
            "data": {
                "href": f"s3://{bucket}/{window.object_key}",
                "type": MEDIA_TYPE,
                "title": "Observations (Parquet)",
                "roles": ["data"],
                "file:size": size,
                "file:checksum": sha256_multihash(sha256),
            }
        },
        "links": [],
    }
