"""STAC ids as they may appear in a URL path or an object key: checked, then percent-encoded.

Collection and item ids come from other catalogs (an upstream, a member site), so they are
untrusted. An id is refused before any I/O when it holds a '/' or '\\', a control character,
is '.' or '..', is empty or longer than MAX_ID_LENGTH; every other character (spaces, '%',
'?', '#', unicode) is percent-encoded as UTF-8, so one id is always exactly one path segment
and no id can be normalised into another path (`../../admin`).
"""

from __future__ import annotations

import re
from urllib.parse import quote

from fedeploy_ingestion.errors import IngestError

MAX_ID_LENGTH = 512
_FORBIDDEN = re.compile(r"[/\\\x00-\x1f\x7f]")


class InvalidId(IngestError):
    """A collection or item id that cannot be one path segment."""


def check_id(label: str, value: object) -> str:
    """`value` when it is a usable id; InvalidId naming `label`, the value and the rule."""
    if not isinstance(value, str) or not value:
        raise InvalidId(f"{label} {value!r} is not a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidId(f"{label} {value[:40]!r}... is longer than {MAX_ID_LENGTH} characters")
    if value in (".", "..") or _FORBIDDEN.search(value):
        raise InvalidId(
            f"{label} {value!r} is not allowed: an id may not be '.' or '..' or hold '/', "
            "'\\' or control characters"
        )
    return value


def segment(label: str, value: object) -> str:
    """One checked id, percent-encoded as a single URL path segment."""
    return quote(check_id(label, value), safe="")


def collection_path(collection_id: object, *rest: str) -> str:
    """`/collections/<id>` (+ `rest`, fixed path parts such as 'items' or 'bulk_items')."""
    return "/".join(["", "collections", segment("collection id", collection_id), *rest])


def item_path(collection_id: object, item_id: object) -> str:
    """`/collections/<collection id>/items/<item id>`, both encoded."""
    return collection_path(collection_id, "items", segment("item id", item_id))
