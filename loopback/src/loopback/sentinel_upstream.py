"""An upstream standing in for Copernicus: Sentinel-2-like items in a real STAC API (`load`
into a stac-fastapi-pgstac), or answered from memory (`StaticSearch`, the benchmark's).

Items follow the shape of Copernicus Data Space's `sentinel-2-l2a` items (MGRS tile, cloud
cover, JPEG 2000 band assets with `file:size` and a `file:checksum` multihash); the asset
files are random bytes served by an `AssetServer`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

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


class StaticSearch:
    """The upstream's STAC API answered from memory, as a CDN in front of a STAC API serves a
    cached search: a landing page, the conformance classes, the collection, and item search
    (GET and POST: `collections`, a `datetime` interval, `limit`, and `next` pages by token),
    in a thread of this process. What it costs stands for what a remote upstream costs the
    site: nothing of its processor. The benchmark's upstream, where a stac-fastapi process and
    its PostgreSQL answering each search on the same two cores would be counted as the copy's
    (0.03-0.04 processor seconds a round). `requests` records each request's method and path.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.items: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # http.server writes an answer's headers and body in two sends: without
            # TCP_NODELAY the client's delayed ACK held every answer but a connection's
            # first 40 ms (docs/ingestion.md, stop 32), which no real upstream makes a site wait.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer._answer(self)

            def do_POST(self) -> None:  # noqa: N802
                outer._answer(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="static-search"
        )

    def start(self) -> StaticSearch:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def add(self, items: list[dict[str, Any]]) -> None:
        """Serve `items` too (an item of an id already served replaces it)."""
        with self._lock:
            ids = {i["id"] for i in items}
            self.items = [i for i in self.items if i["id"] not in ids] + list(items)

    def _landing(self) -> dict[str, Any]:
        def link(rel: str, path: str, **extra: str) -> dict[str, str]:
            return {"rel": rel, "href": self.url + path, "type": "application/json", **extra}

        return {
            "type": "Catalog",
            "stac_version": "1.1.0",
            "id": "loopback-upstream",
            "description": "Sentinel-2-like items, answered from memory",
            "conformsTo": CONFORMS_TO,
            "links": [
                link("self", "/"),
                link("root", "/"),
                link("conformance", "/conformance"),
                link("data", "/collections"),
                link("search", "/search", method="POST"),
                link("search", "/search", method="GET"),
            ],
        }

    def _search(self, query: dict[str, Any]) -> dict[str, Any]:
        """One page of the items matching `query` (a POST body, or GET's parameters)."""
        collections = query.get("collections")
        if isinstance(collections, str):
            collections = collections.split(",")
        low, high = _interval(query.get("datetime"))
        with self._lock:
            matched = [
                i
                for i in sorted(self.items, key=lambda i: (i["properties"]["datetime"], i["id"]))
                if (not collections or i["collection"] in collections)
                and low <= _moment(i["properties"]["datetime"]) <= high
            ]
        limit = max(1, min(int(query.get("limit") or 10), 1000))
        start = int(query.get("token") or 0)
        page = matched[start : start + limit]
        links: list[dict[str, Any]] = [
            {"rel": "root", "href": self.url + "/", "type": "application/json"}
        ]
        if start + limit < len(matched):
            body = {k: v for k, v in query.items() if k != "token"}
            links.append(
                {
                    "rel": "next",
                    "href": self.url + "/search",
                    "type": "application/geo+json",
                    "method": "POST",
                    "body": {**body, "token": str(start + limit)},
                }
            )
        return {
            "type": "FeatureCollection",
            "features": page,
            "links": links,
            "numberMatched": len(matched),
            "numberReturned": len(page),
        }

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append((handler.command, parts.path))
        path = parts.path.rstrip("/")
        document: dict[str, Any] = {"code": "NotFound", "description": f"no {parts.path}"}
        status = 404
        try:
            if path == "":
                status, document = 200, self._landing()
            elif path == "/conformance":
                status, document = 200, {"conformsTo": CONFORMS_TO}
            elif path == f"/collections/{COLLECTION}":
                status, document = 200, collection_document()
            elif path == "/search":
                if handler.command == "POST":
                    query = json.loads(body or b"{}")
                else:
                    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                status, document = 200, self._search(query)
        except (ValueError, TypeError, KeyError) as error:
            status, document = 400, {"code": "BadRequest", "description": str(error)}
        payload = json.dumps(document).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


CONFORMS_TO = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/item-search",
]


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _interval(value: str | None) -> tuple[datetime, datetime]:
    """A STAC `datetime` (one instant, or `start/end` with `..` or nothing for an open end)."""
    if not value:
        return datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    if "/" not in value:
        return _moment(value), _moment(value)
    start, end = value.split("/", 1)
    return (
        _moment(start) if start not in ("", "..") else datetime.min.replace(tzinfo=UTC),
        _moment(end) if end not in ("", "..") else datetime.max.replace(tzinfo=UTC),
    )
