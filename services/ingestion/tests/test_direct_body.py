"""A copy reads an asset's body straight into its part buffers from the guarded connection's
socket (download_safety.DirectBody): the bytes exact, never one past Content-Length, a cut or a
stalled connection a SourceError; answers it must not read that way go through httpx as before.
Against a scripted loopback server that sends the answer in the pieces a test chooses."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from fedeploy_ingestion.download_safety import AddressGuard, DirectBody, guarded_client
from fedeploy_ingestion.errors import SourceError
from fedeploy_ingestion.object_store import PartBuffers, _Parts
from fedeploy_ingestion.settings import Source
from fedeploy_ingestion.upstream import Credentials, HttpAsset

BODY = os.urandom(10_000)


class ScriptedHost:
    """Answers every connection with `pieces` (bytes, or seconds to wait), then closes it when
    `close` is true, else holds it open until the test ends."""

    def __init__(self, pieces: list[bytes | float], close: bool = False) -> None:
        self.pieces, self.close = pieces, close
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(4096)
            try:
                for piece in self.pieces:
                    if isinstance(piece, float):
                        time.sleep(piece)
                    else:
                        connection.sendall(piece)
            except OSError:  # the client closed its end (a read given up)
                connection.close()
                continue
            if self.close:
                connection.close()
            else:
                self._held.append(connection)

    def stop(self) -> None:
        self._listener.close()
        for connection in self._held:
            connection.close()


def headers(length: int, *extra: str) -> bytes:
    lines = ["HTTP/1.1 200 OK", f"Content-Length: {length}", *extra, "", ""]
    return "\r\n".join(lines).encode()


@pytest.fixture
def served() -> Iterator[list[ScriptedHost]]:
    hosts: list[ScriptedHost] = []
    yield hosts
    for host in hosts:
        host.stop()


def open_asset(
    hosts: list[ScriptedHost], pieces: list[bytes | float], close: bool = False, timeout=60.0
):
    host = ScriptedHost(pieces, close)
    hosts.append(host)
    return asset_of(host, timeout).open(0)


def asset_of(host: ScriptedHost, timeout: float = 60.0) -> HttpAsset:
    guard = AddressGuard.build(private_hosts=["127.0.0.1"])
    spec = Source.model_validate(
        {
            "name": "upstream",
            "url": f"http://127.0.0.1:{host.port}/stac",
            "collections": ["c"],
            "assets": ["B04"],
            "privateHosts": ["127.0.0.1"],
        }
    )
    http = guarded_client(guard, timeout=timeout)
    return HttpAsset(
        f"http://127.0.0.1:{host.port}/B04.jp2", http, Credentials(spec, None, None, http, guard)
    )


def tls_asset(port: int, http, guard: AddressGuard) -> HttpAsset:
    """B04.jp2 of an HTTPS upstream named download.test on loopback `port`, read with `http`."""
    spec = Source.model_validate(
        {
            "name": "upstream",
            "url": "https://download.test/stac",
            "collections": ["c"],
            "assets": ["B04"],
            "privateHosts": ["download.test"],
        }
    )
    href = f"https://download.test:{port}/B04.jp2"
    return HttpAsset(href, http, Credentials(spec, None, None, http, guard))


def parts_of(chunks, part_size: int) -> tuple[list[bytes], bytes]:
    """What a copy makes of the chunks: its whole parts and the rest."""
    split = _Parts(chunks, part_size, PartBuffers(4 * part_size))
    parts = [bytes(part) for part in split]
    return parts, split.rest


def test_the_body_is_read_into_the_part_buffers_exactly(served: list[ScriptedHost]) -> None:
    # Headers and the first bytes in one segment (h11 holds those), the rest in pieces, then
    # bytes past Content-Length that must never be read into the copy.
    pieces: list[bytes | float] = [headers(len(BODY)) + BODY[:1000], 0.05, BODY[1000:2500]]
    pieces += [0.05, BODY[2500:9000], 0.05, BODY[9000:], b"not part of the body" * 10]
    chunks, start, total = open_asset(served, pieces)
    assert isinstance(chunks, DirectBody) and (start, total) == (0, len(BODY))
    parts, rest = parts_of(chunks, 4096)
    assert [len(p) for p in parts] == [4096, 4096] and b"".join(parts) + rest == BODY


def test_iterating_the_direct_body_gives_the_same_bytes(served: list[ScriptedHost]) -> None:
    chunks, _, _ = open_asset(served, [headers(len(BODY)), 0.05, BODY, b"extra"])
    assert isinstance(chunks, DirectBody)
    assert b"".join(chunks) == BODY


def test_the_connection_is_not_used_again_after_a_direct_body(
    served: list[ScriptedHost],
) -> None:
    # h11 never saw the body end: the next GET must open a connection of its own.
    host = ScriptedHost([headers(len(BODY)) + BODY[:100], 0.05, BODY[100:]])
    served.append(host)
    asset = asset_of(host)
    for _ in range(2):
        chunks, _, _ = asset.open(0)
        assert isinstance(chunks, DirectBody) and b"".join(chunks) == BODY
    assert host.accepted == 2


def test_a_body_cut_midway_fails_naming_what_came(served: list[ScriptedHost]) -> None:
    chunks, _, _ = open_asset(served, [headers(len(BODY)) + BODY[:500], 0.05, BODY[500:700]], True)
    with pytest.raises(
        SourceError, match="failed midway: the connection closed after 700 of 10000"
    ):
        parts_of(chunks, 4096)


def test_a_stalled_body_times_out_with_the_clients_read_timeout(
    served: list[ScriptedHost],
) -> None:
    chunks, _, _ = open_asset(served, [headers(len(BODY)) + BODY[:500]], timeout=0.5)
    began = time.monotonic()
    with pytest.raises(SourceError, match="failed midway: timed out"):
        parts_of(chunks, 4096)
    assert time.monotonic() - began < 5


def test_a_chunked_answer_is_read_through_httpx(served: list[ScriptedHost]) -> None:
    framed = f"{len(BODY):x}\r\n".encode() + BODY + b"\r\n0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks, _, _ = open_asset(served, [head + framed])
    assert not isinstance(chunks, DirectBody)
    parts, rest = parts_of(chunks, 4096)
    assert b"".join(parts) + rest == BODY


def test_over_tls_the_body_is_read_from_the_verified_socket(tmp_path) -> None:
    import httpx
    from fedeploy_ingestion.download_safety import GuardedTransport

    from loopback.hostile_upstream import HostileUpstream
    from loopback.tls import TestCA

    ca = TestCA(tmp_path)
    server = HostileUpstream(tls=ca.issue("download", ["download.test"])).start()
    data = os.urandom(3 * 1024 * 1024 + 17)
    try:
        server.file("/B04.jp2", data)
        guard = AddressGuard.build(
            private_hosts=["download.test"], resolver=lambda host, port: ["127.0.0.1"]
        )
        with httpx.Client(transport=GuardedTransport(guard, verify=ca.ssl_context())) as http:
            chunks, _, total = tls_asset(server.port, http, guard).open(0)
            assert isinstance(chunks, DirectBody) and total == len(data)
            parts, rest = parts_of(chunks, 1024 * 1024)
            assert len(parts) == 3 and b"".join(parts) + rest == data
    finally:
        server.stop()


def test_tls_inside_a_proxys_tls_tunnel_is_read_through_httpx(tmp_path) -> None:
    # Through an https:// proxy, httpcore's TLSinTLSStream names the *outer* socket (to the
    # proxy): read directly, its bytes would be the inner session's TLS records.
    import select
    import ssl

    import httpx

    from loopback.hostile_upstream import HostileUpstream
    from loopback.tls import TestCA

    ca = TestCA(tmp_path)
    server = HostileUpstream(tls=ca.issue("download", ["download.test"])).start()
    data = os.urandom(2 * 1024 * 1024 + 5)
    server.file("/B04.jp2", data)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    proxy_cert = ca.issue("proxy", ["localhost"])
    context.load_cert_chain(proxy_cert.cert_file, proxy_cert.key_file)
    listener = socket.create_server(("127.0.0.1", 0))

    def tunnel() -> None:  # one CONNECT, relayed both ways until either side closes
        client = context.wrap_socket(listener.accept()[0], server_side=True)
        request = b""
        while b"\r\n\r\n" not in request:
            request += client.recv(4096)
        upstream = socket.create_connection(("127.0.0.1", server.port))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with client, upstream:
            while True:
                ready = ([client] if client.pending() else []) or select.select(
                    [client, upstream], [], [], 5
                )[0]
                if not ready:
                    return
                for side in ready:
                    got = side.recv(65536)
                    if not got:
                        return
                    (upstream if side is client else client).sendall(got)

    threading.Thread(target=tunnel, daemon=True).start()
    guard = AddressGuard.build(
        private_hosts=["download.test"], resolver=lambda host, port: ["127.0.0.1"]
    )
    proxy = httpx.Proxy(
        f"https://localhost:{listener.getsockname()[1]}", ssl_context=ca.ssl_context()
    )
    try:
        with httpx.Client(proxy=proxy, verify=ca.ssl_context(), timeout=5) as http:
            chunks, _, total = tls_asset(server.port, http, guard).open(0)
            assert not isinstance(chunks, DirectBody) and total == len(data)
            parts, rest = parts_of(chunks, 1024 * 1024)
            assert b"".join(parts) + rest == data
    finally:
        listener.close()
        server.stop()


CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\nTransfer-Encoding: chunked\r\n\r\n"


class FailingCreate:
    """A boto3 client whose multipart uploads cannot begin; everything else is the real one."""

    def __init__(self, client) -> None:
        self._client = client

    def __getattr__(self, name: str):
        return getattr(self._client, name)

    def create_multipart_upload(self, **_):
        raise ConnectionError("the store went away")


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "httpx"])
@pytest.mark.parametrize("failure", ["size", "create"])
def test_copies_that_fail_before_reading_leave_no_connection_taken(
    served: list[ScriptedHost], monkeypatch: pytest.MonkeyPatch, direct: bool, failure: str
) -> None:
    # Eleven failures on one client (its pool holds ten): each must close its answer, or the
    # eleventh waits for a free connection and fails with the pool's timeout instead.
    from fedeploy_ingestion.errors import ChecksumMismatch, StorageError
    from fedeploy_ingestion.object_store import ObjectStore, s3_client
    from moto import mock_aws

    framed = f"{len(BODY):x}\r\n".encode() + BODY + b"\r\n0\r\n\r\n"
    host = ScriptedHost([headers(len(BODY)) + BODY if direct else CHUNKED + framed])
    served.append(host)
    asset = asset_of(host, timeout=0.5)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = s3_client("", "us-east-1", "auto")
        client.create_bucket(Bucket="site")
        store = ObjectStore(FailingCreate(client) if failure == "create" else client, "site")
        expected = (
            (ChecksumMismatch, "declares file:size")
            if failure == "size"
            else (StorageError, "the store went away")
        )
        for _ in range(11):
            with pytest.raises(expected[0], match=expected[1]):
                store.copy_from(
                    "sentinel/c/i/B04.jp2",
                    asset,
                    part_size=5 * 1024 * 1024,
                    expected=None,
                    expected_size=len(BODY) + (failure == "size"),
                    content_type=None,
                    metadata={},
                )
    pool = asset._http._transport._pool  # type: ignore[attr-defined]
    assert [c for c in pool.connections if not c.is_idle()] == []
    assert host.accepted == 11


def test_a_pool_with_no_free_connection_says_so(served: list[ScriptedHost]) -> None:
    host = ScriptedHost([headers(len(BODY)) + BODY])
    served.append(host)
    asset = asset_of(host, timeout=0.3)
    held = [asset.open(0)[0] for _ in range(10)]  # the pool's ten connections, never closed
    with pytest.raises(SourceError, match=r"failed: PoolTimeout \(no answer in time\)$"):
        asset.open(0)
    for chunks in held:
        chunks.close()


def drip(count: int, every: float) -> list[bytes | float]:
    """`count` pieces of one byte each, `every` seconds apart."""
    return [piece for _ in range(count) for piece in (every, b"x")]


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "httpx"])
def test_a_body_slower_than_the_floor_fails_naming_the_rate(
    served: list[ScriptedHost], direct: bool
) -> None:
    # One byte every 0.1 s, well within the read timeout, against a floor of 1 KiB/s over
    # windows of 0.5 s: the read fails after about one window, not when the body is whole.
    if direct:
        pieces = [headers(len(BODY)) + BODY[:100], *drip(100, 0.1)]
    else:
        pieces = [CHUNKED + b"64\r\n" + BODY[:100] + b"\r\n"]
        pieces += [p if isinstance(p, float) else b"1\r\nx\r\n" for p in drip(100, 0.1)]
    host = ScriptedHost(pieces)
    served.append(host)
    guarded = asset_of(host, timeout=5.0)
    asset = HttpAsset(guarded.href, guarded._http, guarded._credentials, 1024, rate_window=0.5)
    chunks, _, _ = asset.open(0)
    assert isinstance(chunks, DirectBody) == direct
    began = time.monotonic()
    with pytest.raises(SourceError) as failure:
        parts_of(chunks, 4096)
    assert time.monotonic() - began < 3
    message = str(failure.value)
    assert message.startswith(f"reading {guarded.href} failed midway: too slow, ")
    assert "below the floor of 1 KiB/s (INGEST_COPY_MIN_RATE_KIB_S)" in message
    assert " bytes in " in message and " s in all" in message


def test_a_body_above_the_floor_is_read_whole(served: list[ScriptedHost]) -> None:
    pieces: list[bytes | float] = [headers(len(BODY))]
    pieces += [p for i in range(0, len(BODY), 1000) for p in (0.02, BODY[i : i + 1000])]
    host = ScriptedHost(pieces)
    served.append(host)
    guarded = asset_of(host)
    asset = HttpAsset(guarded.href, guarded._http, guarded._credentials, 1024, rate_window=0.05)
    chunks, _, _ = asset.open(0)
    parts, rest = parts_of(chunks, 4096)
    assert b"".join(parts) + rest == BODY


def test_a_client_not_guarded_is_read_through_httpx(served: list[ScriptedHost]) -> None:
    # Its connections may go anywhere (a proxy, the environment's settings): only the guarded
    # client's own sockets are read directly.
    import httpx

    host = ScriptedHost([headers(len(BODY)) + BODY])
    served.append(host)
    guarded = asset_of(host)
    with httpx.Client(timeout=5) as http:
        asset = HttpAsset(guarded.href, http, guarded._credentials)
        chunks, _, _ = asset.open(0)
        assert not isinstance(chunks, DirectBody)
        parts, rest = parts_of(chunks, 4096)
        assert b"".join(parts) + rest == BODY
