"""What a Sentinel copy is, decided without touching the network (pure).

Keys: `sentinel/<collection>/<item id>/<asset name><ext>`. The site's item keeps the upstream
collection and item ids, its assets point at the site's copies, and a `via` link points at the
upstream item. A fingerprint of what was copied lets a re-run skip items already done.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import posixpath
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from fedeploy_ingestion import multihash
from fedeploy_ingestion.download_safety import UnsafeDownload, shown
from fedeploy_ingestion.multihash import sha256_multihash
from fedeploy_ingestion.stac_documents import FILE_EXTENSION, rfc3339
from fedeploy_ingestion.stac_ids import InvalidId, check_id

# Media types that Python's mimetypes does not know, or guesses badly for EO data.
_EXTENSIONS = {
    "image/jp2": ".jp2",
    "image/tiff; application=geotiff": ".tif",
    "image/tiff; application=geotiff; profile=cloud-optimized": ".tif",
    "application/zip": ".zip",
    "application/xml": ".xml",
    "application/x-netcdf": ".nc",
    "application/vnd+zarr": ".zarr",
}
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,6}$")
# The longest object key S3 accepts, in bytes of UTF-8.
MAX_KEY_BYTES = 1024
# Asset fields that describe the upstream's storage, not ours.
_UPSTREAM_ONLY = ("alternate", "auth:refs", "storage:refs", "storage:schemes", "file:local_path")


@dataclass(frozen=True)
class CopiedAsset:
    """One asset in the site's bucket: where, how big, and its verified SHA-256."""

    key: str
    size: int
    sha256: bytes


def extension_for(href: str, media_type: str | None) -> str:
    """The file extension of an asset: from its href's path, else from its media type."""
    suffix = posixpath.splitext(unquote(urlsplit(href).path))[1]
    if _SUFFIX.match(suffix):
        return suffix.lower()
    if media_type:
        normalised = media_type.replace(" ", "").replace(";", "; ").lower()
        if normalised in _EXTENSIONS:
            return _EXTENSIONS[normalised]
        guessed = mimetypes.guess_extension(media_type.split(";")[0].strip())
        if guessed:
            return guessed
    return ""


def object_key(
    collection: str, item_id: str, asset_name: str, href: str, media_type: str | None
) -> str:
    """Where an asset is copied to in the site's bucket (InvalidId for an unusable id)."""
    for label, value in (
        ("collection", collection),
        ("item id", item_id),
        ("asset name", asset_name),
    ):
        try:
            check_id(f"upstream {label}", value)
        except InvalidId as error:
            raise InvalidId(f"{error}; it cannot be part of an object key") from None
    key = f"sentinel/{collection}/{item_id}/{asset_name}{extension_for(href, media_type)}"
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidId(
            f"object key for {collection}/{item_id[:60]}.../{asset_name[:60]} would be "
            f"{len(key.encode())} bytes of UTF-8; S3 allows at most {MAX_KEY_BYTES}"
        )
    return key


def download_href(asset: dict[str, Any]) -> str:
    """An HTTP(S) href for an asset: its own, or an `alternate` one when its own is not HTTP(S)
    (s3://); UnsafeDownload when there is none (file://, gopher://, ...). Whether the host and
    its addresses are allowed is the source's DownloadPolicy's to say (download_safety)."""
    href = str(asset.get("href", ""))
    if href.lower().startswith(("http://", "https://")):
        return href
    alternates = asset.get("alternate")
    for alternate in alternates.values() if isinstance(alternates, dict) else ():
        candidate = str(alternate.get("href", "")) if isinstance(alternate, dict) else ""
        if candidate.lower().startswith(("http://", "https://")):
            return candidate
    raise UnsafeDownload(
        f"asset href {shown(href)!r} refused: not HTTP(S), and the asset has no HTTP(S) alternate"
    )


# The longest `file:checksum` a supported multihash has: a 3-byte code, a length byte and a
# 64-byte digest, in hex. Anything longer is refused unparsed: varint parsing of a megabyte of
# 0xff bytes takes hours (each step shifts an ever larger integer).
MAX_CHECKSUM_CHARS = 2 * (3 + 1 + 64)


def expected_integrity(
    asset: dict[str, Any],
) -> tuple[multihash.Digest | None, int | None, list[str]]:
    """(digest, size, problems) an upstream asset declares (`file:checksum`, `file:size`).

    An unusable value is left out (None) and named in `problems` (short texts, never the whole
    value, which may be megabytes); the copy is then checked by what remains."""
    problems: list[str] = []
    digest = size = None
    checksum = asset.get("file:checksum")
    if checksum is not None:
        text = checksum if isinstance(checksum, str) else ""
        if not text or len(text) > MAX_CHECKSUM_CHARS:
            problems.append(
                f"file:checksum is not a multihash string of at most {MAX_CHECKSUM_CHARS} "
                f"hex digits (found a {type(checksum).__name__} of {len(str(checksum))} characters)"
            )
        else:
            try:
                digest = multihash.parse(text)
            except ValueError as error:
                problems.append(str(error))
    declared = asset.get("file:size")
    if declared is not None:
        if isinstance(declared, int) and not isinstance(declared, bool) and declared >= 0:
            size = declared
        else:
            problems.append(
                f"file:size {str(declared)[:40]!r} is not a non-negative integer (bytes)"
            )
    return digest, size, problems


def chosen_assets(item: dict[str, Any], names: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The requested assets the item has, and the names it lacks."""
    assets = item.get("assets") or {}
    return ({n: assets[n] for n in names if n in assets}, [n for n in names if n not in assets])


def fingerprint(item: dict[str, Any], assets: dict[str, Any]) -> str:
    """What identifies the upstream content copied: changes when the upstream item changes."""
    basis = {
        "collection": item.get("collection"),
        "id": item.get("id"),
        "updated": (item.get("properties") or {}).get("updated"),
        "assets": {
            n: {k: a.get(k) for k in ("href", "file:size", "file:checksum")}
            for n, a in sorted(assets.items())
        },
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


def upstream_link(item: dict[str, Any], fallback: str) -> str:
    """The upstream item's `self` href when it is an http(s) URL, else `fallback`.

    The href becomes the site item's `via` link (and the hub's): a `javascript:` or `data:` one
    from a hostile upstream would be a link any STAC browser shows."""
    links = item.get("links")
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("rel") == "self":
            href = link.get("href")
            if isinstance(href, str) and href.lower().startswith(("https://", "http://")):
                return href
    return fallback


def site_item(
    upstream: dict[str, Any],
    upstream_url: str,
    copies: dict[str, CopiedAsset],
    *,
    bucket: str,
    site: str,
    item_fingerprint: str,
    now: datetime,
) -> dict[str, Any]:
    """The site's item: upstream ids and metadata, assets rewritten to the site's copies."""
    assets = {}
    for name, copy in sorted(copies.items()):
        original = dict(upstream["assets"][name])
        for field in _UPSTREAM_ONLY:
            original.pop(field, None)
        original.update(
            {
                "href": f"s3://{bucket}/{copy.key}",
                "file:size": copy.size,
                "file:checksum": sha256_multihash(copy.sha256),
            }
        )
        assets[name] = original
    properties = dict(upstream.get("properties") or {})
    if "updated" in properties:
        properties["fedeploy:upstream_updated"] = properties["updated"]
    properties.update(
        {
            "updated": rfc3339(now),
            "fedeploy:site": site,
            "fedeploy:fingerprint": item_fingerprint,
        }
    )
    extensions = sorted({*upstream.get("stac_extensions", []), FILE_EXTENSION})
    return {
        "type": "Feature",
        "stac_version": upstream.get("stac_version", "1.1.0"),
        "stac_extensions": extensions,
        "id": upstream["id"],
        "collection": upstream["collection"],
        "geometry": upstream["geometry"],
        "bbox": upstream.get("bbox"),
        "properties": properties,
        "assets": assets,
        "links": [
            {
                "rel": "via",
                "href": upstream_url,
                "type": "application/geo+json",
                "title": "The upstream item this copy was made from",
            }
        ],
    }


def site_collection(upstream: Any, collection_id: str) -> dict[str, Any] | None:
    """The site's copy of the upstream collection `collection_id`: its metadata, without upstream
    links; None when the upstream answered something else (not an object, or another id: the
    upstream must not name the collections created in the site's catalog)."""
    if not isinstance(upstream, dict) or upstream.get("id") != collection_id:
        return None
    copy = {k: v for k, v in upstream.items() if k not in ("links", "assets", "item_assets")}
    self_href = next(
        (link["href"] for link in upstream.get("links", []) if link.get("rel") == "self"), None
    )
    copy["links"] = (
        [{"rel": "via", "href": self_href, "type": "application/json"}] if self_href else []
    )
    return copy
