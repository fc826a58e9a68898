"""What bounds a Sentinel copy however its upstream behaves (review copy28): the collection
document read like a search page and outside the catalog lock, the asset size limit refused
before any part buffer, deadlines for the answer headers (each hop and all of them) and for
the whole copy that dripped bytes cannot stretch, and a resume that joins only parts of the
same content. Against loopback servers and moto."""

from __future__ import annotations

import gzip
import http.server
import logging
import os
import threading
import time
import zlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fedeploy_ingestion import sentinel, upstream
from fedeploy_ingestion.download_safety import AddressGuard, guarded_client
from fedeploy_ingestion.errors import SourceError, StorageError
from fedeploy_ingestion.object_store import (
    MAX_OBJECT,
    AssetTooLarge,
    ObjectStore,
    _part_size,
    parts_in_flight,
)
from fedeploy_ingestion.sentinel import GiB, _InFlight
from fedeploy_ingestion.settings import IngestSettings, Source
from fedeploy_ingestion.stac_client import MAX_PAGE_BYTES
from fedeploy_ingestion.upstream import TOKEN_MAX_BYTES, Credentials, HttpAsset

from services.ingestion.tests.test_direct_body import (
    BODY,
    ScriptedHost,
    asset_of,
    drip,
    headers,
    served,
)
from services.ingestion.tests.test_object_store import (
    DATA,
    PART,
    MemorySource,
    pending_parts,
    store,
)
from services.ingestion.tests.test_sentinel_run import RecordingStore, make_run

__all__ = ["served", "store"]  # fixtures


def floored(host: ScriptedHost, floor: float = 1024, **options: Any) -> HttpAsset:
    """B04.jp2 of `host` under a floor of `floor` B/s over 0.5 s windows (read timeout 5 s)."""
    plain = asset_of(host, timeout=5.0)
    return HttpAsset(plain.href, plain._http, plain._credentials, floor, 0.5, **options)


# --- the collection document (finding 1) ---------------------------------------------------


def collection_run(port: int, timeout: float = 10.0) -> tuple[sentinel.SentinelRun, list, Source]:
    """A run whose upstream is loopback `port`, its catalog recording ensure_collection."""
    run = make_run(["B04_10m"], None)
    run.settings = run.settings.model_copy(update={"http_timeout_seconds": timeout})
    run.http = guarded_client(AddressGuard.build(private_hosts=["127.0.0.1"]), timeout=timeout)
    created: list[dict[str, Any]] = []
    run.catalog = type("C", (), {"ensure_collection": lambda self, d: created.append(d)})()  # type: ignore[assignment]
    url = f"http://127.0.0.1:{port}/stac"
    return run, created, run.settings.sources[0].model_copy(update={"url": url})


def test_a_collection_document_that_decodes_past_the_page_limit_is_not_read(
    served: list[ScriptedHost], caplog: pytest.LogCaptureFixture
) -> None:
    # Valid JSON of 40 MiB in 40 KB of gzip: read whole (and used) before.
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    raw = z.compress(b'{"id": "c", "type": "Collection", "description": "')
    raw += b"".join(z.compress(b" " * 2**20) for _ in range(MAX_PAGE_BYTES // 2**20 + 8))
    raw += z.compress(b'"}') + z.flush()
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(raw)}\r\nContent-Encoding: gzip\r\n\r\n"
    host = ScriptedHost([head.encode() + raw])
    served.append(host)
    run, created, source = collection_run(host.port)
    caplog.set_level(logging.WARNING)
    run._ensure_collection(source, "c")
    [made] = created
    assert made["description"].startswith("Copies of c from")  # the minimal one
    assert any("once decoded" in str(getattr(r, "error", "")) for r in caplog.records)


def test_a_dripped_collection_document_holds_no_lock_and_ends_at_its_deadline(
    served: list[ScriptedHost],
) -> None:
    # A byte every 0.3 s for 6 s, read timeout 0.5 s: read for as long as it dripped, with the
    # catalog lock (every registration) held all along, before.
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"
    pieces: list[bytes | float] = [head] + [p for _ in range(20) for p in (0.3, b"1\r\n \r\n")]
    host = ScriptedHost(pieces + [b"1\r\n}\r\n0\r\n\r\n"], close=True)
    served.append(host)
    run, created, source = collection_run(host.port, timeout=0.5)
    began = time.monotonic()
    thread = threading.Thread(target=run._ensure_collection, args=(source, "c"))
    thread.start()
    time.sleep(0.5)
    held = run._catalog_lock.locked()
    thread.join()
    took = time.monotonic() - began
    assert not held
    assert took < 3  # 2 x INGEST_HTTP_TIMEOUT_SECONDS, not the 6 s drip
    assert created[0]["description"].startswith("Copies of c from")


def test_a_token_answer_past_its_limit_is_not_read() -> None:
    # 8 MiB of token in 8 KB of gzip: decoded whole and taken, before.
    bomb = gzip.compress(b'{"access_token": "' + b"a" * 8 * 2**20 + b'"}')
    answer = httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"})
    http = httpx.Client(transport=httpx.MockTransport(lambda request: answer))
    spec = Source.model_validate(
        {
            "name": "cdse",
            "url": "https://stac.example.org/v1",
            "collections": ["c"],
            "assets": ["B04"],
            "tokenUrl": "https://identity.example.org/token",
        }
    )
    with pytest.raises(SourceError, match=f"more than {TOKEN_MAX_BYTES} bytes once decoded"):
        Credentials(spec, "bob", "pw", http).headers()


# --- the asset size limit (finding 2) -----------------------------------------------------


class Announcing:
    """A source that announces `total` bytes (Content-Length) and sends 100."""

    def __init__(self, total: int) -> None:
        self.total, self.opened = total, 0

    def open(self, offset: int) -> tuple[Iterator[bytes], int, int]:
        self.opened += 1
        return iter([b"x" * 100]), 0, self.total


def uploads(store: ObjectStore) -> list[Any]:
    return store.client.list_multipart_uploads(Bucket="site").get("Uploads", [])


@pytest.mark.parametrize("declared", [True, False], ids=["file:size", "content-length"])
def test_a_copy_above_the_limit_is_refused_before_any_buffer(
    store: ObjectStore, declared: bool
) -> None:
    # 4 TB declared and announced: 400 MB parts, the first allocated and zeroed before a byte
    # came (+381 MiB for 100 bytes), before.
    total = 4 * 10**12
    source = Announcing(total)
    with pytest.raises(AssetTooLarge, match=f"{total} bytes .* above .* {GiB} bytes"):
        store.copy_from(
            "k",
            source,
            part_size=16 * 2**20,
            expected=None,
            expected_size=total if declared else None,
            content_type=None,
            metadata={},
            max_size=GiB,
        )
    assert store.part_buffers.made == 0 and uploads(store) == []
    assert source.opened == (0 if declared else 1)  # a declared size: not even a request


def test_the_store_refuses_what_s3_cannot_hold_and_caps_the_part(store: ObjectStore) -> None:
    with pytest.raises(AssetTooLarge):
        store.copy_from(
            "k",
            Announcing(MAX_OBJECT + 1),
            part_size=16 * 2**20,
            expected=None,
            expected_size=None,
            content_type=None,
            metadata={},
        )
    assert store.part_buffers.made == 0
    assert _part_size(MAX_OBJECT, 16 * 2**20) <= 5 * GiB  # S3's largest part


def test_a_size_only_the_answer_gives_grows_the_part_past_10000_parts(store: ObjectStore) -> None:
    # No file:size: parts of PART bytes, and part 10,001 refused by S3 at the end, before.
    total = 10_000 * PART + 1

    class Short:
        def open(self, offset: int) -> tuple[Iterator[bytes], int, int]:
            return iter([os.urandom(2 * PART + 2)]), 0, total

    with pytest.raises(StorageError, match="ended after"):
        store.copy_from(
            "k",
            Short(),
            part_size=PART,
            expected=None,
            expected_size=None,
            content_type=None,
            metadata={},
        )
    assert pending_parts(store) == [PART + 1, PART + 1]


def test_under_the_default_limit_parts_keep_their_size_and_the_budget_holds() -> None:
    # INGEST_MAX_ASSET_GIB's default needs no part above INGEST_PART_SIZE_MIB's (16, or 5 at
    # least: 5.12 MiB), so memory stays 64 MiB of parts in flight + one a reading copy.
    limit = int(IngestSettings().max_asset_gib * GiB)
    assert _part_size(limit, 16 * 2**20) == 16 * 2**20
    assert _part_size(limit, 5 * 2**20) <= 6 * 2**20
    assert parts_in_flight(16 * 2**20) * 16 * 2**20 <= 64 * 2**20


def test_an_item_declaring_an_asset_above_the_limit_fails_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sentinel, "HttpAsset", lambda *args, **kwargs: None)
    run = make_run(["B04_10m"], None)
    run.settings = run.settings.model_copy(update={"max_asset_gib": 1.0})
    run.store = store = RecordingStore()  # type: ignore[assignment]
    asset = {"href": "https://stac.example.org/B04.jp2", "file:size": 2 * GiB}
    with pytest.raises(AssetTooLarge) as refused:
        run._asset("c", "i", "B04_10m", asset, None, "fp")  # type: ignore[arg-type]
    assert store.copies == []
    text = str(refused.value)
    assert "B04_10m" in text and "c/i" in text and str(2 * GiB) in text
    assert "INGEST_MAX_ASSET_GIB (1 GiB)" in text


def test_the_limit_is_passed_to_the_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sentinel, "HttpAsset", lambda *args, **kwargs: None)
    run = make_run(["B04_10m"], None)
    run.store = store = RecordingStore()  # type: ignore[assignment]
    run._asset("c", "i", "B04_10m", {"href": "https://stac.example.org/B04.jp2"}, None, "fp")  # type: ignore[arg-type]
    assert store.copies[0]["max_size"] == 50 * GiB


# --- deadlines for the headers and the copy (findings 3 and 4) ------------------------------


def test_dripped_headers_fail_at_the_headers_deadline_and_close_the_connection(
    served: list[ScriptedHost],
) -> None:
    # One header line dripped a byte every 0.1 s for 6 s: open() waited for all of it, before.
    pieces = [b"HTTP/1.1 200 OK\r\nX-Pad: ", *drip(60, 0.1), b"\r\n" + headers(len(BODY))[17:]]
    host = ScriptedHost(pieces + [BODY])
    served.append(host)
    asset = opened_past_the_headers_deadline(host, "headers: not done within 1 s", 2)
    assert asset._http._transport._pool.connections == []  # type: ignore[attr-defined]


def test_redirect_hops_share_one_deadline(served: list[ScriptedHost]) -> None:
    # Each hop's headers take 0.6 s (under the 1 s of one hop): five hops took 3.6 s, before.
    hop: list[bytes | float] = [b"HTTP/1.1 302 Found\r\nLocation: /B04.jp2\r\nX-Pad: "]
    hop += [*drip(6, 0.1), b"\r\nContent-Length: 0\r\n\r\n"]
    host = ScriptedHost(hop, close=True)
    served.append(host)
    opened_past_the_headers_deadline(host, "the answers' headers: not done within 2 s", 2.8)


def opened_past_the_headers_deadline(host: ScriptedHost, match: str, within: float) -> HttpAsset:
    """An asset of `host` (headers_timeout 1 s, no floor) whose open() fails with `match`
    within `within` seconds."""
    asset = floored(host, floor=0, headers_timeout=1.0)
    began = time.monotonic()
    with pytest.raises(SourceError, match=match):
        asset.open(0)
    assert time.monotonic() - began < within
    return asset


def test_the_floor_counts_the_wait_for_the_headers(served: list[ScriptedHost]) -> None:
    # The review's drip: no headers deadline, but the floor's clock runs from the request.
    pieces = [b"HTTP/1.1 200 OK\r\nX-Pad: ", *drip(30, 0.1), b"\r\n" + headers(len(BODY))[17:]]
    host = ScriptedHost(pieces + [BODY])
    served.append(host)
    with pytest.raises(SourceError, match="too slow, 0 bytes"):
        floored(host).open(0)


def copy_deadline_of_two_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy's deadline: 0.1 x its bytes' time at the floor (1 KiB/s for 20,480 B: 2 s)."""
    monkeypatch.setattr(upstream, "COPY_TIME_FACTOR", 0.1)
    monkeypatch.setattr(upstream, "COPY_TIME_SLACK", 0.0)


def test_a_body_dripped_above_the_floor_ends_at_the_copys_deadline(
    served: list[ScriptedHost], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1,100 B every 0.5 s, above a 1 KiB/s floor: read until Content-Length however long, before.
    copy_deadline_of_two_seconds(monkeypatch)
    pieces = [headers(20 * 1024)] + [p for _ in range(18) for p in (0.5, b"y" * 1100)]
    host = ScriptedHost(pieces)
    served.append(host)
    chunks, _, _ = floored(host).open(0)
    began, got = time.monotonic(), 0
    with pytest.raises(SourceError, match="not done within 2 s"):
        while count := chunks.readinto(memoryview(bytearray(65536))):  # type: ignore[attr-defined]
            got += count
    assert time.monotonic() - began < 3 and got < 20 * 1024


def test_a_stalled_body_read_is_cut_at_the_copys_deadline_not_the_read_timeout(
    served: list[ScriptedHost], monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_deadline_of_two_seconds(monkeypatch)
    host = ScriptedHost([headers(20 * 1024), 0.1, b"y" * 100])  # then nothing (read timeout 5 s)
    served.append(host)
    plain = asset_of(host, timeout=5.0)
    asset = HttpAsset(plain.href, plain._http, plain._credentials, 1024.0, 60.0)
    chunks, _, _ = asset.open(0)
    began = time.monotonic()
    with pytest.raises(SourceError, match="not done within 2 s"):
        while chunks.readinto(memoryview(bytearray(65536))):  # type: ignore[attr-defined]
            pass
    assert time.monotonic() - began < 3


# --- a resume joins only parts of the same content (finding 5) -------------------------------


def test_a_resume_after_the_fingerprint_changed_starts_over(store: ObjectStore) -> None:
    # The review's case: A cut after 2 parts, then B (same size, fingerprint f2) joined
    # A[:10 MiB] + B[10 MiB:] and completed it under f1's metadata, before.
    old, new = DATA, os.urandom(len(DATA))
    with pytest.raises(SourceError):
        copy_to_k(store, MemorySource(old, fail_after=2 * PART), "f1")
    result = copy_to_k(store, MemorySource(new), "f2")
    got = store.client.get_object(Bucket="site", Key="k")
    assert result.resumed_from == 0 and got["Body"].read() == new
    assert got["Metadata"] == {"fedeploy-fingerprint": "f2"}
    assert store.get(".fedeploy-uploads/k") is None  # the upload's record goes with it


def test_the_same_content_still_resumes(store: ObjectStore) -> None:
    with pytest.raises(SourceError):
        copy_to_k(store, MemorySource(DATA, fail_after=2 * PART), "f1")
    assert store.get(".fedeploy-uploads/k") is not None
    result = copy_to_k(store, MemorySource(DATA), "f1")
    assert result.resumed_from == 2 * PART and store.get("k") == DATA


def copy_to_k(store: ObjectStore, source: Any, fingerprint: str, expected: Any = None) -> Any:
    return store.copy_from(
        "k",
        source,
        part_size=PART,
        expected=expected,
        expected_size=len(DATA),
        content_type=None,
        metadata={"fedeploy-fingerprint": fingerprint},
    )


class Versions(http.server.BaseHTTPRequestHandler):
    """Serves the server's `content` with Range, If-Range and ETag `"v<version>"` (or no
    validator, or ignoring If-Range); the first answer of a `cut` server stops after 2 parts."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        server: Any = self.server
        data, etag = server.content, f'"v{server.version}"'
        server.seen.append((self.headers.get("Range"), self.headers.get("If-Range")))
        start = 0
        ranged = self.headers.get("Range")
        honoured = server.if_range and self.headers.get("If-Range") not in (None, etag)
        if ranged and not honoured:
            start = int(ranged.split("=")[1].split("-")[0])
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if server.validators:
            self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if server.cut:
            server.cut = False
            body = body[: 2 * PART + 1000]
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def versions() -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Versions)
    server.content, server.version, server.seen, server.cut = DATA, 1, [], True
    server.validators, server.if_range = True, True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def http_asset(server: Any) -> HttpAsset:
    """B04.jp2 of the Versions `server`, through the guarded client."""
    return asset_of(SimpleNamespace(port=server.server_address[1]), timeout=10)  # type: ignore[arg-type]


@pytest.mark.parametrize("if_range", [True, False], ids=["if-range", "if-range-ignored"])
def test_an_upstream_file_changed_under_the_same_fingerprint_is_copied_whole(
    store: ObjectStore, versions: Any, if_range: bool
) -> None:
    versions.if_range = if_range
    with pytest.raises(SourceError):
        copy_to_k(store, http_asset(versions), "f1")
    versions.content, versions.version = os.urandom(len(DATA)), 2  # same href, size, fingerprint
    result = copy_to_k(store, http_asset(versions), "f1")
    assert store.get("k") == versions.content and result.resumed_from == 0
    assert (f"bytes={2 * PART}-", '"v1"') in versions.seen  # the resume asked If-Range


def test_an_unchanged_upstream_file_resumes_with_if_range(
    store: ObjectStore, versions: Any
) -> None:
    with pytest.raises(SourceError):
        copy_to_k(store, http_asset(versions), "f1")
    result = copy_to_k(store, http_asset(versions), "f1")
    assert result.resumed_from == 2 * PART and store.get("k") == DATA
    assert versions.seen[-1] == (f"bytes={2 * PART}-", '"v1"')


def test_without_a_validator_or_a_checksum_the_copy_starts_over(
    store: ObjectStore, versions: Any
) -> None:
    versions.validators = False
    with pytest.raises(SourceError):
        copy_to_k(store, http_asset(versions), "f1")
    versions.content = os.urandom(len(DATA))
    result = copy_to_k(store, http_asset(versions), "f1")
    assert result.resumed_from == 0 and store.get("k") == versions.content


# --- S1: the running items' table -----------------------------------------------------------


def test_the_running_table_is_read_and_written_under_its_lock() -> None:
    # The done callback's look and removal were two steps, unlocked: a next copy of the same
    # name stored between them was removed, and a third ran beside it.
    flight = _InFlight(2)
    unlocked: list[str] = []

    class Checked(dict):  # type: ignore[type-arg]
        def get(self, *args: Any) -> Any:
            if not flight._running_lock.locked():
                unlocked.append("get")
            return super().get(*args)

        def __setitem__(self, key: str, value: Any) -> None:
            if not flight._running_lock.locked():
                unlocked.append("set")
            super().__setitem__(key, value)

        def __delitem__(self, key: str) -> None:
            if not flight._running_lock.locked():
                unlocked.append("del")
            super().__delitem__(key)

    flight._running = Checked()
    for _ in range(3):
        flight.submit("x", lambda read: None)
    flight.close()
    assert unlocked == [] and flight._running == {}
