"""A stand-in for EUMETSAT's Data Store API (api.eumetsat.int), on 127.0.0.1.

Shaped like the real one, in our own values, as far as eumdac uses it:
- `POST /token`: client credentials (HTTP Basic: consumer key and secret,
  `grant_type=client_credentials`) for a bearer token (`access_token`, `expires_in`);
- `GET /data/search-products/1.0.0/osdd?pi=<collection>`: the OpenSearch description whose
  JSON `Url` lists the search parameters eumdac accepts;
- `GET /data/search-products/1.0.0/os?format=json&pi=<collection>&si=<start>&c=<count>
  &dtstart=&dtend=&bbox=`: a GeoJSON page (`totalResults`, `features`) of products whose
  sensing time overlaps the interval and whose footprint meets the box, paged by `si`/`c`;
- `GET /data/download/1.0.0/collections/<collection>/products/<product>`: the product's zip,
  with Range support, for a valid bearer token only (401 otherwise).
Every request's path and Authorization header are recorded; a path can be made to redirect or
to fail a number of times, as AssetServer's files can be cut.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from loopback.asset_server import AssetServer

SEARCH = "/data/search-products/1.0.0/os"
OSDD = "/data/search-products/1.0.0/osdd"
DOWNLOAD = "/data/download/1.0.0/collections/"
PARAMETERS = ("dtstart", "dtend", "bbox", "geo", "sort", "publication", "sat", "timeliness", "set")


@dataclass(frozen=True)
class StoredProduct:
    """One product of the stand-in: its ids, sensing times, footprint and zip bytes."""

    collection: str
    id: str
    start: datetime
    end: datetime
    bbox: tuple[float, float, float, float]
    data: bytes
    md5: str | None

    def feature(self) -> dict[str, Any]:
        """The product as the search answers it (a full-properties feature)."""
        west, south, east, north = self.bbox
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        return {
            "type": "Feature",
            "id": self.id,
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {
                "identifier": self.id,
                "parentIdentifier": self.collection,
                "title": self.id,
                "date": f"{_time(self.start)}/{_time(self.end)}",
                "updated": _time(self.end + timedelta(minutes=5)),
                "productInformation": {
                    "productType": self.collection.rsplit(":", 1)[-1],
                    "timeliness": "NT",
                    "size": -(-len(self.data) // 1024),  # kB, as the Data Store gives it
                },
                "acquisitionInformation": [
                    {
                        "platform": {"platformShortName": "MSG4"},
                        "instrument": {"instrumentShortName": "SEVIRI"},
                    }
                ],
                "extraInformation": {} if self.md5 is None else {"md5": self.md5},
                "links": {
                    "data": [],
                    "alternates": [],
                    "sip-entries": [{"title": f"{self.id}.nat", "href": ""}],
                },
            },
        }


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def product_zip(product_id: str, size: int) -> bytes:
    """A zip holding one `<id>.nat` file of `size` bytes that do not compress away."""
    body = bytearray()
    for counter in itertools.count():
        if len(body) >= size:
            break
        body += hashlib.sha256(f"{product_id}-{counter}".encode()).digest()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{product_id}.nat", bytes(body[:size]))
    return buffer.getvalue()


class DataStoreServer(AssetServer):
    """The Data Store API for the products added with `add`, on 127.0.0.1."""

    def __init__(self, root: Path, consumer_key: str, consumer_secret: str) -> None:
        super().__init__(root)
        # The token endpoint takes POST (AssetServer's handler class is this instance's own).
        handler: Any = self._server.RequestHandlerClass
        handler.do_POST = lambda request: self._serve(request)
        self._credentials = (consumer_key, consumer_secret)
        self._tokens: set[str] = set()
        self._products: dict[tuple[str, str], StoredProduct] = {}
        self._redirects: dict[str, str] = {}
        self._failures: dict[str, list[int]] = {}
        # (path, Authorization header) of every request, in order
        self.seen: list[tuple[str, str | None]] = []
        self.token_lifetime = 3600

    def endpoints(self) -> str:
        """What goes into eumdac's endpoints: the API root (its `[DEFAULT] api`)."""
        return self.url

    def add(
        self,
        collection: str,
        product_id: str,
        start: datetime,
        bbox: tuple[float, float, float, float] = (-10.0, 30.0, 30.0, 60.0),
        size: int = 64 * 1024,
        md5: str | None = "",
    ) -> StoredProduct:
        """A product whose zip holds `size` bytes; `md5` '' is the zip's own, None none."""
        data = product_zip(product_id, size)
        digest = hashlib.md5(data).hexdigest() if md5 == "" else md5
        product = StoredProduct(
            collection, product_id, start, start + timedelta(minutes=12), bbox, data, digest
        )
        self._products[(collection, product_id)] = product
        path = self.root / self.download_path(collection, product_id).lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return product

    @staticmethod
    def download_path(collection: str, product_id: str) -> str:
        """The product's download path, decoded (eumdac sends the ids percent-encoded)."""
        return f"{DOWNLOAD}{collection}/products/{product_id}"

    def redirect(self, path: str, location: str) -> None:
        """Answer every GET of `path` with a 302 to `location`."""
        self._redirects[path] = location

    def fail(self, path: str, status: int, times: int = 1) -> None:
        """Answer the next `times` requests of `path` with `status`."""
        with self._lock:
            self._failures.setdefault(path, []).extend([status] * times)

    def _answer(self, handler: BaseHTTPRequestHandler, status: int, body: bytes, kind: str):
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _serve(self, handler: BaseHTTPRequestHandler, body: bool = True) -> None:
        parts = urlsplit(handler.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        authorization = handler.headers.get("Authorization")
        with self._lock:
            self.seen.append((path, authorization))
            failures = self._failures.get(path)
            status = failures.pop(0) if failures else None
        if status is not None:
            self._record(path, None, status)
            self._answer(handler, status, b'{"error": "injected"}', "application/json")
            return
        if path in self._redirects:
            self._record(path, None, 302)
            handler.send_response(302)
            handler.send_header("Location", self._redirects[path])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if path == "/token":
            self._token(handler, authorization)
            return
        if authorization is None or authorization.removeprefix("Bearer ") not in self._tokens:
            self._record(path, None, 401)
            self._answer(handler, 401, b'{"error": "invalid token"}', "application/json")
            return
        if path == OSDD:
            self._record(path, None, 200)
            self._answer(handler, 200, _description().encode(), "application/xml")
        elif path == SEARCH:
            self._record(path, None, 200)
            page = self._search(query)
            self._answer(handler, 200, json.dumps(page).encode(), "application/json")
        else:
            super()._serve(handler, body)

    def _token(self, handler: BaseHTTPRequestHandler, authorization: str | None) -> None:
        length = int(handler.headers.get("Content-Length", 0))
        form = parse_qs(handler.rfile.read(length).decode())
        expected = "Basic " + base64.b64encode(":".join(self._credentials).encode()).decode()
        if authorization != expected or form.get("grant_type") != ["client_credentials"]:
            self._record("/token", None, 401)
            self._answer(handler, 401, b'{"error": "invalid_client"}', "application/json")
            return
        token = f"token-{len(self._tokens) + 1}"
        self._tokens.add(token)
        self._record("/token", None, 200)
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime}
        self._answer(handler, 200, json.dumps(answer).encode(), "application/json")

    def _search(self, query: dict[str, str]) -> dict[str, Any]:
        start = _parse(query.get("dtstart"), datetime.min.replace(tzinfo=UTC))
        end = _parse(query.get("dtend"), datetime.max.replace(tzinfo=UTC))
        box = [float(v) for v in query["bbox"].split(",")] if query.get("bbox") else None
        found = [
            p
            for (collection, _), p in sorted(self._products.items())
            if collection == query.get("pi")
            and p.start <= end
            and p.end >= start
            and (
                box is None
                or not (
                    p.bbox[2] < box[0]
                    or p.bbox[0] > box[2]
                    or p.bbox[3] < box[1]
                    or p.bbox[1] > box[3]
                )
            )
        ]
        first, count = int(query.get("si", 0)), int(query.get("c", 100))
        return {
            "type": "FeatureCollection",
            "totalResults": len(found),
            "itemsPerPage": count,
            "features": [p.feature() for p in found[first : first + count]],
        }


def _parse(value: str | None, default: datetime) -> datetime:
    if not value:
        return default
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _description() -> str:
    parameters = "".join(
        f'<parameters:Parameter name="{name}" value="{{{name}}}" title="{name}"/>'
        for name in ("format", "pi", "si", "c", *PARAMETERS)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OpenSearchDescription xmlns="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:parameters="http://a9.com/-/spec/opensearch/extensions/parameters/1.0/">'
        "<ShortName>Data Store (stand-in)</ShortName>"
        f'<Url type="application/json" template="{SEARCH}?format=json">{parameters}</Url>'
        "</OpenSearchDescription>"
    )
