"""An item larger than 1 MiB written one by one (a catalog without `bulk_items`) and read back
(review rw33 F4): stac-fastapi echoes a created item, and the echo of a 1.5 MiB item failed the
write (more than MAX_ITEM_ANSWER_BYTES, 1 MiB) although the catalog had stored it; its GET then
failed every run. The bulk path and the harvest (32 MiB pages) take such items. A loopback
catalog of this file's own, which stores what it is sent and echoes it."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fedeploy_ingestion import catalog as catalog_module
from fedeploy_ingestion import harvest, stac_client
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.errors import CatalogError


class _QuietServer(ThreadingHTTPServer):
    """A client that reads only the start of an echo and closes is what the tests make: its
    reset connection is not printed as an error (socketserver prints every one)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Catalog:
    """A STAC API without bulk transactions: POST stores a new item (409 for one it holds), PUT
    replaces it, each echoing the item as stac-fastapi does; GET answers it."""

    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.refuse: bytes | None = None  # a 400 body for every write
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.requests.append(f"GET {self.path}")
                found = outer.items.get(self.path.rsplit("/", 1)[-1])
                self._answer(200 if found else 404, found or b'{"detail": "not found"}')

            def _write(self, method: str) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append(f"{method} {self.path}")
                if self.path.endswith("/bulk_items"):
                    return self._answer(404, b'{"detail": "Not Found"}')
                if outer.refuse is not None:
                    return self._answer(400, outer.refuse)
                item_id = json.loads(body)["id"]
                if method == "POST" and item_id in outer.items:
                    return self._answer(409, b'{"detail": "exists"}')
                outer.items[item_id] = body
                return self._answer(201 if method == "POST" else 200, body)

            def do_POST(self) -> None:  # noqa: N802
                self._write("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._write("PUT")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def catalog() -> Iterator[Catalog]:
    served = Catalog()
    yield served
    served.server.shutdown()
    served.server.server_close()


def large_item(size: int, item_id: str = "S1A_IW_GRDH_large") -> dict[str, Any]:
    """An item of about `size` bytes as JSON: a detailed footprint."""
    points = size // 20
    ring = [[10 + (i % 1000) / 1e6, 50 + (i // 1000) / 1e6] for i in range(points)]
    ring.append(ring[0])
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": "sentinel-1-grd",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [10, 50, 11, 51],
        "properties": {"datetime": "2024-01-01T00:00:00Z", "fedeploy:fingerprint": "abc"},
        "assets": {"data": {"href": "s3://raw/sentinel/x.tiff"}},
        "links": [],
    }


def test_a_1_5_mib_item_is_written_one_by_one_and_read_back(catalog: Catalog) -> None:
    """Before: `CatalogError ... POST .../items: more than 1048576 bytes once decoded`, the item
    stored all the same; its GET failed the same way."""
    item = large_item(3 * 512 * 1024)
    assert len(json.dumps(item)) > 1.5 * 1024 * 1024
    client = CatalogClient(catalog.url, timeout=10)
    client.upsert_items("sentinel-1-grd", [item])
    assert catalog.requests == [
        "POST /collections/sentinel-1-grd/bulk_items",
        "POST /collections/sentinel-1-grd/items",
    ]
    assert client.get_item("sentinel-1-grd", item["id"]) == item
    # written again: POST answers 409, PUT replaces it and echoes it
    item["properties"]["fedeploy:fingerprint"] = "def"
    client.upsert_items("sentinel-1-grd", [item])
    assert catalog.requests[-1] == f"PUT /collections/sentinel-1-grd/items/{item['id']}"
    assert client.get_item("sentinel-1-grd", item["id"]) == item


def test_a_refused_write_still_names_the_catalogs_reason(catalog: Catalog) -> None:
    catalog.refuse = json.dumps({"detail": "geometry is invalid", "pad": "x" * 2_000_000}).encode()
    client = CatalogClient(catalog.url, timeout=10)
    with pytest.raises(CatalogError, match="answered 400: .*geometry is invalid"):
        client.upsert_items("sentinel-1-grd", [large_item(2_000_000)])
    assert catalog.items == {}


def test_an_item_a_page_can_hold_is_one_a_get_reads_back() -> None:
    """The copy (stac_client) and the harvest read pages of up to 32 MiB: any item they write
    is read back by get_item."""
    bound = catalog_module.MAX_ITEM_ANSWER_BYTES
    assert bound >= stac_client.MAX_PAGE_BYTES
    assert bound >= harvest.MAX_PAGE_BYTES
    assert catalog_module.MAX_WRITE_ECHO_BYTES <= 1024 * 1024
