"""A scripted STAC upstream on a loopback address, for tests of what a hostile source tries.

It serves a minimal STAC API (landing page, conformance, item search, collections), a token
endpoint, files (optionally only to a bearer token) and redirects, and records every request
it receives: path, Host and Authorization headers. A test serves items whose hrefs point at
the metadata service, at other hosts or at other schemes, and then asserts on what reached
which server. Several servers can run side by side on 127.0.0.1, 127.0.0.2, ...
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

CORE = "https://api.stacspec.org/v1.0.0/core"
ITEM_SEARCH = "https://api.stacspec.org/v1.0.0/item-search"


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    method: str
    path: str
    host: str | None
    authorization: str | None


@dataclass
class _Route:
    status: int
    body: bytes = b""
    content_type: str = "application/octet-stream"
    location: str | None = None
    token: str | None = None  # the file answers 401 unless "Authorization: Bearer <token>"


class HostileUpstream:
    """Serves scripted answers on `host` (a loopback address), in a thread of this process."""

    def __init__(self, host: str = "127.0.0.1", tls: Any = None) -> None:
        """`tls`: a `tls.ServerCertificate` to serve https with (plain http without)."""
        self.requests: list[Seen] = []
        self.items: list[dict[str, Any]] = []
        self.token = "loopback-bearer-token"
        self.next_href: str | None = None  # a `next` link on the search page, when set
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer._answer(self)

            def do_POST(self) -> None:  # noqa: N802
                outer._answer(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.host = host
        self.port = int(self._server.server_address[1])
        self.url = f"{scheme}://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name=f"hostile-upstream-{host}"
        )

    def start(self) -> HostileUpstream:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def file(self, path: str, body: bytes, *, needs_token: bool = False) -> str:
        """Serve `body` at `path`; with `needs_token`, only to `Bearer <self.token>`. Its URL."""
        self._routes[path] = _Route(200, body, token=self.token if needs_token else None)
        return self.url + path

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        """Answer `path` with a redirect to `location`. Its URL."""
        self._routes[path] = _Route(status, location=location)
        return self.url + path

    def seen(self, path: str | None = None) -> list[Seen]:
        """The requests received (for `path` only, when given)."""
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def _landing(self) -> dict[str, Any]:
        return {
            "type": "Catalog",
            "stac_version": "1.1.0",
            "id": "hostile",
            "description": "A scripted upstream",
            "conformsTo": [CORE, ITEM_SEARCH],
            "links": [
                {"rel": "self", "href": self.url + "/", "type": "application/json"},
                {"rel": "root", "href": self.url + "/", "type": "application/json"},
                {
                    "rel": "search",
                    "href": self.url + "/search",
                    "type": "application/geo+json",
                    "method": "POST",
                },
                {
                    "rel": "search",
                    "href": self.url + "/search",
                    "type": "application/geo+json",
                    "method": "GET",
                },
            ],
        }

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        with self._lock:
            self.requests.append(
                Seen(
                    handler.command,
                    path,
                    handler.headers.get("Host"),
                    handler.headers.get("Authorization"),
                )
            )
        if path in ("", "/"):
            return self._send(
                handler, 200, json.dumps(self._landing()).encode(), "application/json"
            )
        if path == "/conformance":
            document: dict[str, Any] = {"conformsTo": [CORE, ITEM_SEARCH]}
            return self._send(handler, 200, json.dumps(document).encode(), "application/json")
        if path == "/search":
            links = [{"rel": "next", "href": self.next_href}] if self.next_href else []
            document = {"type": "FeatureCollection", "features": self.items, "links": links}
            body = json.dumps(document).encode()
            return self._send(handler, 200, body, "application/geo+json")
        if path == "/token" and handler.command == "POST":
            document = {"access_token": self.token, "expires_in": 600}
            return self._send(handler, 200, json.dumps(document).encode(), "application/json")
        route = self._routes.get(path)
        if route is None:
            return self._send(handler, 404, b"not found", "text/plain")
        if route.location is not None:
            return self._send(handler, route.status, b"", "text/plain", location=route.location)
        if route.token and handler.headers.get("Authorization") != f"Bearer {route.token}":
            return self._send(handler, 401, b"a bearer token is needed", "text/plain")
        return self._send(handler, route.status, route.body, route.content_type)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str,
        location: str | None = None,
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        if location is not None:
            handler.send_header("Location", location)
        handler.end_headers()
        handler.wfile.write(body)


def item(item_id: str, hrefs: dict[str, str], collection: str = "sentinel-2-l2a") -> dict[str, Any]:
    """A Sentinel-2-like item whose assets point at `hrefs` (asset name -> href)."""
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": item_id,
        "collection": collection,
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[11, 46], [12, 46], [12, 47], [11, 47], [11, 46]]],
        },
        "bbox": [11, 46, 12, 47],
        "properties": {"datetime": "2024-06-01T10:30:00Z", "updated": "2024-06-01T10:30:00Z"},
        "assets": {
            name: {"href": href, "type": "image/jp2", "roles": ["data"]}
            for name, href in hrefs.items()
        },
        "links": [],
    }
