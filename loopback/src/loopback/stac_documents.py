"""The STAC documents the test peers and tests post to a catalog: one way to write a collection."""

from __future__ import annotations

from typing import Any

WORLD = [-180, -90, 180, 90]


def collection(
    collection_id: str,
    description: str,
    *,
    license: str,
    start: str,
    stac_version: str = "1.0.0",
    **extra: Any,
) -> dict[str, Any]:
    """A STAC collection covering the whole world from `start` (RFC 3339) on, with no links;
    `extra` adds fields (a title, say)."""
    return {
        "type": "Collection",
        "stac_version": stac_version,
        "id": collection_id,
        **extra,
        "description": description,
        "license": license,
        "links": [],
        "extent": {
            "spatial": {"bbox": [WORLD]},
            "temporal": {"interval": [[start, None]]},
        },
    }
