"""An upstream standing in for Copernicus: Sentinel-2-like items in a real STAC API.

Items follow the shape of Copernicus Data Space's `sentinel-2-l2a` items (MGRS tile, cloud
cover, JPEG 2000 band assets with `file:size` and a `file:checksum` multihash); the asset
files are random bytes served by an `AssetServer`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from loopback.asset_server import AssetServer, write_random_file
from loopback.stac_documents import collection

COLLECTION = "sentinel-2-l2a"
EO = "https://stac-extensions.github.io/eo/v2.0.0/schema.json"
FILE = "https://stac-extensions.github.io/file/v2.1.0/schema.json"


def collection_document() -> dict[str, Any]:
    """The upstream collection."""
    return collection(
        COLLECTION,
        "Bottom-of-atmosphere reflectance, Sentinel-2-like test items.",
        license="other",
        start="2015-06-27T00:00:00Z",
        stac_version="1.1.0",
        title="Sentinel-2 Level-2A (loopback stand-in)",
    )


def _sha256_multihash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return "1220" + digest.hexdigest()


def make_items(
    server: AssetServer,
    count: int,
    asset_sizes: dict[str, int],
    start: datetime | None = None,
    cloud_cover: list[float] | None = None,
) -> list[dict[str, Any]]:
    """`count` items, one a day from `start`, each with files of the given sizes."""
    start = start or datetime(2024, 6, 1, 10, 30, tzinfo=UTC)
    items = []
    for index in range(count):
        moment = start + timedelta(days=index)
        item_id = f"S2B_MSIL2A_{moment:%Y%m%dT%H%M%S}_N0510_R022_T32TQM_{index:04d}"
        assets = {}
        for name, size in asset_sizes.items():
            relative = f"{COLLECTION}/{item_id}/{name}.jp2"
            path = server.root / relative
            write_random_file(path, size)
            assets[name] = {
                "href": server.href(relative),
                "type": "image/jp2",
                "title": f"Band {name}",
                "roles": ["data"],
                "file:size": size,
                "file:checksum": _sha256_multihash(path),
            }
        lon, lat = 11.0 + (index % 5) * 0.1, 46.0 + (index % 3) * 0.1
        items.append(
            {
                "type": "Feature",
                "stac_version": "1.1.0",
                "stac_extensions": [EO, FILE],
                "id": item_id,
                "collection": COLLECTION,
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[lon, lat], [lon + 1, lat], [lon + 1, lat + 1], [lon, lat + 1], [lon, lat]]
                    ],
                },
                "bbox": [lon, lat, lon + 1, lat + 1],
                "properties": {
                    "datetime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "platform": "sentinel-2b",
                    "constellation": "sentinel-2",
                    "eo:cloud_cover": (cloud_cover or [5.0])[index % len(cloud_cover or [5.0])],
                    "grid:code": "MGRS-32TQM",
                    "updated": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
                "assets": assets,
                "links": [],
            }
        )
    return items


def load(catalog_url: str, items: list[dict[str, Any]]) -> None:
    """Create the collection (if needed) and insert the items through the transactions API."""
    with httpx.Client(timeout=30) as http:
        answer = http.post(f"{catalog_url}/collections", json=collection_document())
        if answer.status_code not in (200, 201, 409):
            raise RuntimeError(f"creating {COLLECTION} failed: {answer.status_code} {answer.text}")
        answer = http.post(
            f"{catalog_url}/collections/{COLLECTION}/bulk_items",
            json={"items": {i["id"]: i for i in items}, "method": "upsert"},
        )
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"loading items failed: {answer.status_code} {answer.text}")
