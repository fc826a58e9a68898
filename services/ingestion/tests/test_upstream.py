"""Upstream downloads: credentials (OpenID Connect token or Basic) and ranged reads."""

from __future__ import annotations

import base64

import httpx
import pytest
from fedeploy_ingestion.download_safety import AddressGuard
from fedeploy_ingestion.errors import SourceError
from fedeploy_ingestion.settings import Source
from fedeploy_ingestion.upstream import Credentials, HttpAsset

DATA = bytes(range(256)) * 40
TOKEN_URL = "https://identity.example/token"
# Every name of these tests resolves to one public address (nothing is connected to: the
# transport is httpx's MockTransport).
GUARD = AddressGuard.build(resolver=lambda host, port: ["93.184.215.14"])


def source(**changes: object) -> Source:
    values: dict[str, object] = {
        "name": "cdse",
        "url": "https://stac.example/v1",
        "collections": ["c"],
        "assets": ["B04"],
        "downloadHosts": ["download.example", "h"],
    }
    values.update(changes)
    return Source.model_validate(values)


class Upstream:
    """A token endpoint and an asset host behind httpx's MockTransport."""

    def __init__(self, token_status: int = 200) -> None:
        self.token_status = token_status
        self.token_requests: list[bytes] = []
        self.asset_headers: list[httpx.Headers] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            self.token_requests.append(request.content)
            if self.token_status != 200:
                return httpx.Response(self.token_status, text="invalid_grant for user bob/pw")
            return httpx.Response(
                200, json={"access_token": f"tok{len(self.token_requests)}", "expires_in": 600}
            )
        self.asset_headers.append(request.headers)
        wanted = request.headers.get("range")
        if wanted:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            if start >= len(DATA):
                return httpx.Response(416, headers={"content-range": f"bytes */{len(DATA)}"})
            return httpx.Response(
                206,
                content=DATA[start:],
                headers={"content-range": f"bytes {start}-{len(DATA) - 1}/{len(DATA)}"},
            )
        return httpx.Response(200, content=DATA)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))


def read(asset: HttpAsset, offset: int) -> tuple[bytes, int, int]:
    chunks, start, total = asset.open(offset)
    return b"".join(chunks), start, total


def test_credentials_are_exchanged_for_a_bearer_token_once() -> None:
    upstream = Upstream()
    http = upstream.client()
    credentials = Credentials(source(tokenUrl=TOKEN_URL), "bob", "pw", http, GUARD)
    asset = HttpAsset("https://download.example/B04.jp2", http, credentials)
    assert read(asset, 0) == (DATA, 0, len(DATA))
    assert read(asset, 100) == (DATA[100:], 100, len(DATA))
    assert len(upstream.token_requests) == 1
    assert b"grant_type=password" in upstream.token_requests[0]
    assert b"client_id=cdse-public" in upstream.token_requests[0]
    assert [h["authorization"] for h in upstream.asset_headers] == ["Bearer tok1"] * 2
    assert "pw" not in repr(credentials)


def test_a_refused_token_names_the_status_and_not_the_answer() -> None:
    http = Upstream(token_status=401).client()
    credentials = Credentials(source(tokenUrl=TOKEN_URL), "bob", "pw", http, GUARD)
    with pytest.raises(SourceError) as raised:
        credentials.headers()
    assert "401" in str(raised.value) and "INGEST_SOURCE_PASSWORD" in str(raised.value)
    assert "bob/pw" not in str(raised.value)


def test_without_a_token_url_credentials_go_as_basic() -> None:
    upstream = Upstream()
    http = upstream.client()
    asset = HttpAsset("https://h/a", http, Credentials(source(), "bob", "pw", http, GUARD))
    read(asset, 0)
    assert (
        upstream.asset_headers[0]["authorization"]
        == "Basic " + base64.b64encode(b"bob:pw").decode()
    )
    assert upstream.token_requests == []


def test_no_credentials_send_no_authorization() -> None:
    upstream = Upstream()
    http = upstream.client()
    read(HttpAsset("https://h/a", http, Credentials(source(), None, None, http, GUARD)), 0)
    assert "authorization" not in upstream.asset_headers[0]


def test_a_read_past_the_end_says_everything_was_read() -> None:
    http = Upstream().client()
    asset = HttpAsset("https://h/a", http, Credentials(source(), None, None, http, GUARD))
    assert read(asset, len(DATA)) == (b"", len(DATA), len(DATA))


def test_an_error_status_is_a_source_error() -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    asset = HttpAsset("https://h/a", http, Credentials(source(), None, None, http, GUARD))
    with pytest.raises(SourceError, match="503"):
        asset.open(0)
