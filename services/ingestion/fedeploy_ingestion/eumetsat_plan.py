"""What a EUMETSAT Data Store product copy is, decided without touching the network (pure).

The site's collection is `eumetsat-<collection id, lower case, ':' as '-'>`
(`eumetsat-eo-eum-dat-msg-hrseviri`: STAC APIs refuse ':' in ids; EUMETSAT's own id is kept
as `eumetsat:collection`), the item id is EUMETSAT's product id
(`MSG4-SEVI-MSG15-0100-NA-<time>-NA`, checked as any upstream id is: stac_ids), and the key
`sentinel/<site collection>/<product id>/data.zip` (the copied products' prefix and layout). The Data Store publishes each product's MD5 (`extraInformation.md5`), which
the copy is verified against; the fingerprint is the product's ids, MD5 and `updated`.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from fedeploy_ingestion.multihash import Digest, sha256_multihash
from fedeploy_ingestion.sentinel_plan import CopiedAsset
from fedeploy_ingestion.sentinel_plan import object_key as sentinel_object_key
from fedeploy_ingestion.stac_documents import (
    FILE_EXTENSION,
    STAC_VERSION,
    WORLD,
    collection,
    rfc3339,
)
from fedeploy_ingestion.stac_ids import check_id

_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def site_collection_id(collection_id: str) -> str:
    """The site's collection id of a Data Store collection: `eumetsat-eo-eum-dat-msg-hrseviri`."""
    return "eumetsat-" + collection_id.lower().replace(":", "-")


def object_key(collection_id: str, product_id: str) -> str:
    """Where a product's zip is stored in the site's bucket (InvalidId for an unusable id)."""
    check_id("upstream collection id", collection_id)
    check_id("upstream product id", product_id)
    return sentinel_object_key(
        site_collection_id(collection_id), product_id, "data", "data.zip", "application/zip"
    )


def declared_md5(value: object) -> Digest | None:
    """The product's published MD5 as a Digest; None when it publishes none or no MD5 (then
    the copy is checked by its size only, and a warning says so)."""
    if isinstance(value, str) and _MD5.match(value):
        return Digest("md5", bytes.fromhex(value))
    return None


def fingerprint(collection_id: str, product_id: str, properties: dict[str, Any]) -> str:
    """What identifies the upstream content: ids, MD5 and publication time."""
    basis = {
        "collection": collection_id,
        "id": product_id,
        "md5": (properties.get("extraInformation") or {}).get("md5"),
        "updated": properties.get("updated"),
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


def _geometry(value: object) -> dict[str, Any]:
    """The footprint when it is a GeoJSON polygon (the search's), else the world."""
    if (
        isinstance(value, dict)
        and value.get("type") in ("Polygon", "MultiPolygon")
        and isinstance(value.get("coordinates"), list)
    ):
        return {"type": value["type"], "coordinates": value["coordinates"]}
    return WORLD


def _bbox(geometry: dict[str, Any]) -> list[float]:
    points: list[list[float]] = []

    def walk(node: Any) -> None:
        if (
            isinstance(node, list)
            and len(node) >= 2
            and all(isinstance(v, (int, float)) for v in node[:2])
        ):
            points.append([float(node[0]), float(node[1])])
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(geometry["coordinates"])
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return [min(xs), min(ys), max(xs), max(ys)]


def _utc(moment: datetime) -> datetime:
    """eumdac's sensing times are naive UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def site_collection(collection_id: str, url: str) -> dict[str, Any]:
    """The site collection of a Data Store collection."""
    return collection(
        site_collection_id(collection_id),
        f"Copies of EUMETSAT Data Store collection {collection_id} from {url}",
        providers=[
            {
                "name": "EUMETSAT",
                "roles": ["producer", "licensor"],
                "url": "https://data.eumetsat.int",
            }
        ],
    )


def site_item(
    collection_id: str,
    product_id: str,
    properties: dict[str, Any],
    geometry: object,
    sensing: tuple[datetime, datetime],
    copy: CopiedAsset,
    *,
    browse_url: str,
    bucket: str,
    site: str,
    item_fingerprint: str,
    now: datetime,
) -> dict[str, Any]:
    """The site's item: EUMETSAT's ids and metadata, the copy, a `via` link to the product."""
    information = properties.get("productInformation") or {}
    acquisition = (properties.get("acquisitionInformation") or [{}])[0] or {}
    footprint = _geometry(geometry)
    start, end = (_utc(t) for t in sensing)
    md5 = (properties.get("extraInformation") or {}).get("md5")
    fields: dict[str, Any] = {
        "datetime": rfc3339(start),
        "start_datetime": rfc3339(start),
        "end_datetime": rfc3339(end),
        "platform": (acquisition.get("platform") or {}).get("platformShortName"),
        "instruments": [(acquisition.get("instrument") or {}).get("instrumentShortName")],
        "eumetsat:collection": collection_id,
        "eumetsat:product_type": information.get("productType"),
        "eumetsat:timeliness": information.get("timeliness"),
        "eumetsat:md5": md5,
        "fedeploy:upstream_updated": properties.get("updated"),
        "updated": rfc3339(now),
        "fedeploy:site": site,
        "fedeploy:fingerprint": item_fingerprint,
    }
    fields = {k: v for k, v in fields.items() if v not in (None, [None])}
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [FILE_EXTENSION],
        "id": product_id,
        "collection": site_collection_id(collection_id),
        "geometry": footprint,
        "bbox": _bbox(footprint),
        "properties": fields,
        "assets": {
            "data": {
                "href": f"s3://{bucket}/{copy.key}",
                "type": "application/zip",
                "roles": ["data"],
                "title": properties.get("title") or product_id,
                "file:size": copy.size,
                "file:checksum": sha256_multihash(copy.sha256),
            }
        },
        "links": [
            {
                "rel": "via",
                "href": browse_url,
                "type": "application/json",
                "title": "The product in EUMETSAT's Data Store",
            }
        ],
    }
