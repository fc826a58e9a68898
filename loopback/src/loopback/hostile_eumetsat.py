"""A hostile EUMETSAT Data Store API on 127.0.0.1: token endpoint, OpenSearch description and
search pages that misbehave one way each (`mode`), for the ingestion service's bounds.

Modes: `gzip_bomb` (a search page whose gzip body decodes to `bomb_bytes` of whitespace;
`token_bomb` and `osdd_bomb` the token answer and the OpenSearch description),
`short_token` (expires_in 1), `huge_expiry` (expires_in 10**400), `no_expiry`, `no_token`,
`not_json_token`, `repeat_pages` (every page the same three products, totalResults 10**9),
`repeat_full_pages` (every page the same `c` products), `fresh_pages` (every page `c` new
products, totalResults 10**9), `one_bad_feature` (the middle one of three products lacks
parentIdentifier), `drip` (a search page sent a byte every `drip_seconds`), `ok` (one product).

So that a test stays bounded even when the client loops, the server answers 404 to every
request past `cap` (and counts every request in `counts`)."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SEARCH = "/data/search-products/1.0.0/os"
OSDD = "/data/search-products/1.0.0/osdd"
COLLECTION = "EO:EUM:DAT:MSG:HRSEVIRI"
_PARAMETERS = ("format", "pi", "si", "c", "dtstart", "dtend", "bbox", "geo", "sort", "set")


def feature(product_id: str, collection: str = COLLECTION) -> dict[str, Any]:
    """A search record as the Data Store's JSON search answers it."""
    return {
        "type": "Feature",
        "id": product_id,
        "geometry": None,
        "properties": {
            "identifier": product_id,
            "parentIdentifier": collection,
            "title": product_id,
            "date": "2026-12-05T00:00:00.000Z/2026-12-05T00:12:00.000Z",
            "updated": "2026-12-05T00:17:00.000Z",
            "productInformation": {"size": 1},
            "extraInformation": {},
            "links": {"data": [], "alternates": [], "sip-entries": []},
        },
    }


def gzip_bomb(decoded: int) -> bytes:
    """A gzip JSON page that decodes to about `decoded` bytes (whitespace in a string)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as out:
        out.write(b'{"totalResults": 0, "features": [], "pad": "')
        step = 1 << 20
        for _ in range(max(decoded // step, 1)):
            out.write(b" " * step)
        out.write(b'"}')
    return buffer.getvalue()


class HostileDataStore:
    """The hostile API; `url` is its root (eumdac's `[DEFAULT] api`)."""

    def __init__(
        self, mode: str, cap: int = 300, bomb_bytes: int = 8 << 20, drip_seconds: float = 0.1
    ) -> None:
        self.mode = mode
        self.drip_seconds = drip_seconds
        self.cap = cap
        self.counts = {"token": 0, "search": 0, "osdd": 0, "other": 0}
        self._fresh = itertools.count()
        self._bomb = gzip_bomb(bomb_bytes) if mode.endswith("_bomb") else b""
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner._handle(self, "token", {})

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                kind = {SEARCH: "search", OSDD: "osdd"}.get(parts.path, "other")
                owner._handle(self, kind, query)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The API root."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HostileDataStore:
        """Serve in a thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def total(self) -> int:
        """Requests answered so far."""
        return sum(self.counts.values())

    def _handle(self, handler: BaseHTTPRequestHandler, kind: str, query: dict[str, str]) -> None:
        with self._lock:
            self.counts[kind] += 1
            over = self.total() > self.cap
        if over:
            return _send(handler, 404, b'{"over": "the stand-in\'s request cap"}')
        if self.mode == f"{kind}_bomb":
            return _send(handler, 200, self._bomb, extra=(("Content-Encoding", "gzip"),))
        if kind == "token":
            return self._token(handler)
        if kind == "osdd":
            return _send(handler, 200, _description().encode(), "application/xml")
        if kind == "search":
            return self._search(handler, query)
        return _send(handler, 404, b"{}")

    def _token(self, handler: BaseHTTPRequestHandler) -> None:
        lifetimes = {"short_token": 1, "huge_expiry": 10**400}
        answer: dict[str, Any] = {
            "access_token": f"token-{self.counts['token']}",
            "expires_in": lifetimes.get(self.mode, 3600),
        }
        if self.mode == "no_expiry":
            del answer["expires_in"]
        if self.mode == "no_token":
            del answer["access_token"]
        body = b"<html>" if self.mode == "not_json_token" else json.dumps(answer).encode()
        _send(handler, 200, body)

    def _search(self, handler: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        if self.mode == "gzip_bomb":
            return _send(handler, 200, self._bomb, extra=(("Content-Encoding", "gzip"),))
        if self.mode == "drip":
            body = json.dumps({"totalResults": 1, "features": [feature("P-0")]}).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            for byte in body:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(self.drip_seconds)
            return None
        count = int(query.get("c", 100))
        if self.mode == "repeat_pages":
            features = [feature(f"P-{i}") for i in range(3)]
        elif self.mode == "repeat_full_pages":
            features = [feature(f"P-{i}") for i in range(count)]
        elif self.mode == "fresh_pages":
            features = [feature(f"P-{next(self._fresh)}") for _ in range(count)]
        elif self.mode == "one_bad_feature":
            features = [feature("P-0"), feature("P-1"), feature("P-2")]
            del features[1]["properties"]["parentIdentifier"]
        else:
            features = [feature("P-0")]
        endless = self.mode in ("repeat_pages", "repeat_full_pages", "fresh_pages")
        total = 10**9 if endless else len(features)
        _send(handler, 200, json.dumps({"totalResults": total, "features": features}).encode())


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    kind: str = "application/json",
    extra: tuple[tuple[str, str], ...] = (),
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    for name, value in extra:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _description() -> str:
    parameters = "".join(f'<parameters:Parameter name="{n}" value="{{{n}}}"/>' for n in _PARAMETERS)
    return (
        '<?xml version="1.0"?><OpenSearchDescription '
        'xmlns="http://a9.com/-/spec/opensearch/1.1/" '
        'xmlns:parameters="http://a9.com/-/spec/opensearch/extensions/parameters/1.0/">'
        f'<Url type="application/json" template="{SEARCH}?format=json">{parameters}</Url>'
        "</OpenSearchDescription>"
    )
