"""Sentinel searches against a loopback STAC server that pages badly: every page is page 1
again with the same `next` link (a known public-server bug), a paginator that never ends, and
a last page that says `numberMatched: 250` after serving 10 items."""

from __future__ import annotations

import gzip
import json
import logging
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fedeploy_ingestion import stac_client
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.sentinel import SentinelRun
from fedeploy_ingestion.settings import IngestSettings
from fedeploy_ingestion.stac_client import BrokenPaging, Paging

CORE = "https://api.stacspec.org/v1.0.0/core"
ITEM_SEARCH = "https://api.stacspec.org/v1.0.0/item-search"


def feature(number: int) -> dict[str, Any]:
    return {
        "type": "Feature", "stac_version": "1.1.0", "id": f"S2A_{number:04d}",
        "collection": "sentinel-2-l2a", "geometry": None, "bbox": None,
        "properties": {"datetime": "2024-06-01T10:00:00Z"}, "links": [],
        "assets": {"B04_10m": {"href": f"https://eodata.example/{number}.jp2"}},
    }  # fmt: skip


class PagingServer:
    """`mode` `loop`: page 1 again at every `next`; `shuffle`: page 1's items in another
    order with a new `next` at every page; `endless`: new items and a new `next` at every page;
    `short`: one page of 10 items, `numberMatched` 250, no `next`; `gzip`: a gzip page of
    2 MiB once decoded (/tmp/rv/stacsrv.py's shape, smaller)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.searches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = urlsplit(self.path)
                if parts.path == "/search":
                    page = int(parse_qs(parts.query).get("page", ["1"])[0])
                    document = server.page(page)
                elif parts.path == "/conformance":
                    document = {"conformsTo": [CORE, ITEM_SEARCH]}
                else:
                    document = server.landing()
                body = json.dumps(document).encode()
                self.send_response(200)
                if server.mode == "gzip" and parts.path == "/search":
                    body = gzip.compress(body)
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def landing(self) -> dict[str, Any]:
        search = {"rel": "search", "href": f"{self.url}/search", "type": "application/geo+json"}
        return {"type": "Catalog", "stac_version": "1.1.0", "id": "paging", "description": "x",
                "conformsTo": [CORE, ITEM_SEARCH],
                "links": [{"rel": "root", "href": f"{self.url}/"},
                          {**search, "method": "GET"}, {**search, "method": "POST"}]}  # fmt: skip

    def page(self, number: int) -> dict[str, Any]:
        self.searches += 1
        if self.mode == "short":
            features = [feature(n) for n in range(10)]
            return {"type": "FeatureCollection", "features": features, "numberMatched": 250,
                    "numberReturned": 10, "links": []}  # fmt: skip
        if self.mode == "gzip":
            padding = {"padding": " " * (2 * 1024 * 1024)}
            return {"type": "FeatureCollection", "features": [feature(1)], "links": [], **padding}
        shown = 1 if self.mode in ("loop", "shuffle") else number
        following = number + 1 if self.mode == "shuffle" else shown + 1
        link = {"rel": "next", "href": f"{self.url}/search?page={following}", "method": "GET"}
        features = [feature(10 * shown + n) for n in range(10)]
        if self.mode == "shuffle":
            random.Random(number).shuffle(features)
        return {"type": "FeatureCollection", "features": features, "links": [link]}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[PagingServer]:
    served = PagingServer(request.param)
    yield served
    served.close()


def run(server: PagingServer, **settings: Any) -> SentinelRun:
    source = {"name": "public", "url": server.url, "collections": ["sentinel-2-l2a"],
              "assets": ["B04_10m"], "privateHosts": ["127.0.0.1"]}  # fmt: skip
    made = SentinelRun(
        IngestSettings(site="site-a", bucket="b", sources=[source], **settings),
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        Metrics(),
    )
    made._item = lambda *args: None  # type: ignore[method-assign]
    made.run()
    return made


@pytest.mark.parametrize("server", ["loop"], indirect=True)
def test_a_server_serving_page_1_again_fails_its_source_within_a_few_pages(
    server: PagingServer,
) -> None:
    report = run(server).report
    assert report.found == 10  # page 1's items were handled
    assert "paginator loops" in report.failed["public:search"]
    assert server.searches <= 3


@pytest.mark.parametrize("server", ["shuffle"], indirect=True)
def test_page_1_served_again_in_another_order_is_a_loop_too(server: PagingServer) -> None:
    report = run(server).report
    assert report.found == 10
    assert "paginator loops" in report.failed["public:search"]
    assert server.searches <= 3


@pytest.mark.parametrize("server", ["gzip"], indirect=True)
def test_a_search_page_is_bounded_after_decoding_and_the_error_named(
    server: PagingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stac_client, "MAX_PAGE_BYTES", 1024 * 1024)
    report = run(server).report
    assert report.found == 0
    assert "more than 1048576 bytes once decoded" in report.failed["public:search"]


@pytest.mark.parametrize("server", ["endless"], indirect=True)
def test_a_paginator_that_never_ends_meets_the_page_budget(server: PagingServer) -> None:
    report = run(server, search_max_pages=25).report
    assert report.found == 250
    assert "more than 25 search pages" in report.failed["public:search"]


@pytest.mark.parametrize("server", ["short"], indirect=True)
def test_items_matched_but_never_served_are_named_in_the_report_and_the_log(
    server: PagingServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fedeploy_ingestion.sentinel"):
        report = run(server).report
    assert report.found == 10 and report.failed == {}
    assert "matched 250 items (numberMatched) but served 10" in report.incomplete["public"]
    assert "240 were not read" in report.incomplete["public"]
    assert any(r.message == "search ended short of what it matched" for r in caplog.records)


def test_paging_counts_context_matched_too_and_is_quiet_when_everything_came() -> None:
    paging = Paging("source s", 10)
    paging.page({"features": [feature(1)], "context": {"matched": 3, "returned": 1}})
    assert "matched 3" in (paging.shortfall() or "")
    complete = Paging("source s", 10)
    complete.page({"features": [feature(1)], "numberMatched": 1, "links": []})
    assert complete.shortfall() is None
    with pytest.raises(BrokenPaging):
        Paging("source s", 0).page({"features": []})
