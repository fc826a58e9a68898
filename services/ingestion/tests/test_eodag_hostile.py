"""EODAG's searches under the download guard (issue 36 review, finding 7): a hostile STAC
provider that redirects its search to another host, or answers with a gzip bomb, fails its
source without the other host being reached or the bomb decoded. Store and catalog mocked."""

from __future__ import annotations

import json
import threading
import urllib.request
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

import pytest

pytest.importorskip("eodag")

from fedeploy_ingestion import download_safety  # noqa: E402
from fedeploy_ingestion.eodag_source import EodagRun, guarded_searches  # noqa: E402
from fedeploy_ingestion.metrics import Metrics  # noqa: E402
from fedeploy_ingestion.settings import IngestSettings  # noqa: E402

# 40 MiB of spaces in about 40 KiB of gzip: above the 32 MiB a search page may decode to.
BOMB = (lambda c: c.compress(b" " * (40 << 20)) + c.flush())(zlib.compressobj(9, 8, 31))


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, list[str]]]:
    """A host in no allow-list ('localhost', another port): it records what reaches it."""
    hits: list[str] = []

    class Other(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _any(self) -> None:
            hits.append(f"{self.command} {self.path}")
            body = json.dumps({"type": "FeatureCollection", "features": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/geo+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _any

    served = _serve(Other)
    yield next(served).replace("127.0.0.1", "localhost"), hits
    served.close()


def _provider(mode: str, elsewhere: str) -> type[BaseHTTPRequestHandler]:
    class Stac(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _any(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
            if mode == "gzip":
                self.send_response(200)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Type", "application/geo+json")
                self.send_header("Content-Length", str(len(BOMB)))
                self.end_headers()
                self.wfile.write(BOMB)
                return
            self.send_response(307)
            self.send_header("Location", f"{elsewhere}/latest/meta-data/iam")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _any

    return Stac


@pytest.mark.parametrize(
    ("mode", "words"),
    [("redirect", "answered a redirect (307)"), ("gzip", "bytes once decoded")],
)
def test_a_hostile_search_fails_its_source_unfollowed_and_undecoded(
    mode: str, words: str, elsewhere: tuple[str, list[str]]
) -> None:
    other, hits = elsewhere
    served = _serve(_provider(mode, other))
    url = next(served)
    try:
        source = {
            "name": "hostile",
            "provider": "hostile_stac",
            "url": url,
            "collections": ["sentinel-2-l2a"],
            "assets": ["B04"],
            "privateHosts": ["127.0.0.1"],
        }
        settings = IngestSettings(
            site="site-one",
            bucket="b",
            catalog_url="http://catalog.invalid",
            eodag_sources=[source],
            http_timeout_seconds=5,
        )
        catalog = mock.MagicMock()
        catalog.get_item.return_value = None
        report = EodagRun(settings, mock.MagicMock(), catalog, Metrics()).run()
    finally:
        served.close()
    assert hits == []
    assert words in report.failed["hostile:search"]


def test_the_unquoted_urlopen_path_is_guarded_and_put_back(
    elsewhere: tuple[str, list[str]],
) -> None:
    """Providers whose queries stay unquoted (cop_dataspace, creodias) search with urlopen."""
    from eodag.plugins.search import qssearch

    other, hits = elsewhere
    served = _serve(_provider("redirect", other))
    url = next(served)
    guard = download_safety.AddressGuard.build(private_hosts=["127.0.0.1"])
    source = mock.Mock(
        name="hostile", url=url, download_hosts=[], private_hosts=["127.0.0.1"], token_url=None
    )
    policy = download_safety.DownloadPolicy.for_source(source, guard)
    original = qssearch.urlopen
    try:
        with guarded_searches(policy, 5):
            with pytest.raises(download_safety.UnsafeDownload, match="answered a redirect"):
                qssearch.urlopen(urllib.request.Request(f"{url}/search?a=b"), timeout=5)
            with pytest.raises(download_safety.UnsafeDownload, match="not one of source"):
                qssearch.urlopen(urllib.request.Request(f"{other}/x"), timeout=5)
    finally:
        served.close()
    assert hits == [] and qssearch.urlopen is original


def test_a_run_given_its_client_guards_with_the_eodag_sources_private_hosts() -> None:
    """The guard of a run whose HTTP client is given admits the EODAG sources' `privateHosts`,
    as a run that makes its own client does (not the Sentinel sources')."""
    settings = IngestSettings(
        site="site-one",
        bucket="b",
        catalog_url="http://catalog.invalid",
        sources=[
            {
                "name": "sentinel-two",
                "url": "https://stac.example",
                "collections": ["sentinel-2-l2a"],
                "assets": ["B04"],
                "privateHosts": ["sentinel.lan"],
            }
        ],
        eodag_sources=[
            {
                "name": "eodag-one",
                "provider": "hostile_stac",
                "collections": ["sentinel-2-l2a"],
                "assets": ["B04"],
                "privateHosts": ["eodag.lan"],
            }
        ],
    )
    client = download_safety.guarded_client(download_safety.AddressGuard.build())
    given = EodagRun(settings, mock.MagicMock(), mock.MagicMock(), Metrics(), http=client)
    own = EodagRun(settings, mock.MagicMock(), mock.MagicMock(), Metrics())
    assert given.http is client
    assert given.guard.private_hosts == own.guard.private_hosts == frozenset({"eodag.lan"})
