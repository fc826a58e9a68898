"""The records of unfinished uploads and the resume they allow (review copyfix28 F2, F4, F5): a
416 at a resume counts as "all uploaded" only for the recorded content, records live under
their own prefix (no asset's key can be one), and the bucket's lifecycle expires them. Against
a loopback upstream and moto."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from fedeploy_ingestion import sentinel_plan
from fedeploy_ingestion.errors import SourceError, StorageError
from fedeploy_ingestion.object_store import UPLOAD_RECORDS, ObjectStore, record_key
from fedeploy_ingestion.product_copy import copy_or_reuse

from fedeploy.config.storage import Lifecycle
from fedeploy.storage_rules import UPLOAD_RECORDS as RULES_PREFIX
from fedeploy.storage_rules import lifecycle_rules
from services.ingestion.tests.test_direct_body import asset_of
from services.ingestion.tests.test_object_store import DATA, PART, MemorySource, store

__all__ = ["store"]  # fixture


# --- a 416 at a resume (F2) ------------------------------------------------------------------


class IgnoresIfRange(http.server.BaseHTTPRequestHandler):
    """Serves `server.content` with ETag "v<version>", ignoring If-Range: a Range at or past
    the end answers 416 with `server.unsatisfied` as its Content-Range."""

    def do_GET(self) -> None:  # noqa: N802
        s: Any = self.server
        s.seen.append(self.headers.get("Range"))
        data = s.content
        asked = self.headers.get("Range")
        start = int(asked.split("=")[1].split("-")[0]) if asked else 0
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", s.unsatisfied or f"bytes */{len(data)}")
            self.send_header("ETag", f'"v{s.version}"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("ETag", f'"v{s.version}"')
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[Any]:
    server: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), IgnoresIfRange)
    server.content, server.version, server.seen, server.unsatisfied = (
        os.urandom(3 * PART),
        1,
        [],
        None,
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def every_part_uploaded(store: ObjectStore, upstream: Any, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Copy `upstream`'s file to "k" and die before the completion (every part uploaded)."""
    options = dict(
        part_size=PART,
        expected=None,
        expected_size=len(upstream.content),
        content_type=None,
        metadata={"fedeploy-fingerprint": "f1"},
    )
    with monkeypatch.context() as patched:
        patched.setattr(
            store.client,
            "complete_multipart_upload",
            lambda **kw: (_ for _ in ()).throw(StorageError("killed before completion")),
        )
        with pytest.raises(StorageError):
            store.copy_from(
                "k", asset_of(SimpleNamespace(port=upstream.server_address[1])), **options
            )
    return options


def test_a_416_of_another_content_restarts_the_copy_from_byte_0(
    store: ObjectStore, upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The old parts were completed and returned as the changed file, before.
    options = every_part_uploaded(store, upstream, monkeypatch)
    upstream.content, upstream.version = os.urandom(len(upstream.content)), 2  # same size
    asset = asset_of(SimpleNamespace(port=upstream.server_address[1]))
    result = store.copy_from("k", asset, **options)
    assert store.get("k") == upstream.content and result.resumed_from == 0
    assert upstream.seen[-2:] == [f"bytes={3 * PART}-", None]  # the 416, then the whole file


def test_a_416_of_the_same_content_completes_the_uploaded_parts(
    store: ObjectStore, upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = every_part_uploaded(store, upstream, monkeypatch)
    asset = asset_of(SimpleNamespace(port=upstream.server_address[1]))
    result = store.copy_from("k", asset, **options)
    assert store.get("k") == upstream.content and result.resumed_from == 3 * PART
    assert result.bytes_sent == 0 and store.get(record_key("k")) is None


@pytest.mark.parametrize("content_range", ["bytes */lots", "bytes 0-1/2", "*/12"])
def test_a_malformed_416_content_range_is_a_source_error(
    store: ObjectStore,
    upstream: Any,
    monkeypatch: pytest.MonkeyPatch,
    content_range: str,
) -> None:
    # int() of it raised a ValueError (or took "*/12" as a size), before.
    options = every_part_uploaded(store, upstream, monkeypatch)
    upstream.unsatisfied = content_range
    asset = asset_of(SimpleNamespace(port=upstream.server_address[1]))
    with pytest.raises(SourceError, match="answered 416 with Content-Range"):
        store.copy_from("k", asset, **options)


# --- records under their own prefix (F4) and expired by the lifecycle (F5) --------------------


def copy(store: ObjectStore, key: str, source: MemorySource) -> Any:
    return copy_or_reuse(
        store,
        key,
        lambda: source,
        part_size=PART,
        size=len(source.data),
        expected=None,
        content_type=None,
        fingerprint="f1",
    )


def test_no_asset_key_is_another_assets_upload_record(store: ObjectStore) -> None:
    # Asset "B04" (…/B04.tif) kept its record at asset "B04.tif.fedeploy-upload"'s key: its
    # completion deleted that verified object, and an interrupted copy overwrote it, before.
    a = sentinel_plan.object_key("S2", "item1", "B04", "https://up/x/B04.tif", None)
    b = sentinel_plan.object_key("S2", "item1", "B04.tif.fedeploy-upload", "https://up/x/b", None)
    other = bytes(reversed(DATA))
    assert copy(store, b, MemorySource(other)).asset.sha256 == hashlib.sha256(other).digest()
    with pytest.raises(SourceError):
        copy(store, a, MemorySource(DATA, fail_after=2 * PART))  # its record is written
    assert store.get(b) == other
    copy(store, a, MemorySource(DATA))  # resumed and completed: its record is removed
    assert store.get(b) == other and store.get(a) == DATA
    assert store.get(record_key(a)) is None
    assert record_key(a) == f".fedeploy-uploads/{a}" and not a.startswith(UPLOAD_RECORDS)


def test_the_bucket_expires_records_a_day_after_their_uploads_are_aborted() -> None:
    rules = {r["id"]: r for r in lifecycle_rules(Lifecycle(), versioned=False)}
    abort = rules["abort-incomplete-uploads"]["abort_incomplete_multipart_upload"]
    expire = rules["expire-upload-records"]
    assert expire["filter"] == {"prefix": UPLOAD_RECORDS} and RULES_PREFIX == UPLOAD_RECORDS
    assert expire["expiration"]["days"] == abort["days_after_initiation"] + 1
