"""WIS2 notification messages the tests build (fields as the WIS2 specification names them)."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime
from typing import Any


def notification(
    data: bytes,
    href: str,
    *,
    data_id: str = "wis2/xx-test/data/core/weather/surface-based-observations/synop/a",
    pubtime: str = "2026-11-30T06:05:00Z",
    when: datetime | None = None,
    message_id: str | None = None,
    digest: str | None = None,
) -> dict[str, Any]:
    """A notification for `data` served at `href` (sha512 of `data` unless `digest` given)."""
    value = digest or base64.b64encode(hashlib.sha512(data).digest()).decode()
    return {
        "id": message_id or str(uuid.uuid4()),
        "conformsTo": ["http://wis.wmo.int/spec/wnm/1/conf/core"],
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [5.0, 50.0]},
        "properties": {
            "data_id": data_id,
            "pubtime": pubtime,
            "datetime": (when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else "2026-11-30T06:00:00Z"),
            "integrity": {"method": "sha512", "value": value},
        },
        "links": [
            {"href": href, "rel": "canonical", "type": "application/bufr", "length": len(data)}
        ],
    }


def payload(document: dict[str, Any]) -> bytes:
    """The MQTT payload of a notification."""
    return json.dumps(document).encode()
