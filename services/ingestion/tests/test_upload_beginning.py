"""A new upload begun while its first part is read (object_store._PartUploader): what the copy
reads and holds while the beginning is pending, and what it reports when the beginning fails.
Every test counts or orders (Events), and each wait on an Event is a bound, never an
assertion on time."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fedeploy_ingestion import object_store
from fedeploy_ingestion.errors import SourceError, StorageError
from fedeploy_ingestion.multihash import Digest
from fedeploy_ingestion.object_store import MemoryBudget, MiB, ObjectStore, RangeSource, s3_client
from moto import mock_aws

PART = 5 * MiB
HELD = "sentinel/c/held/B04.jp2"  # the copy whose upload's beginning the tests hold or fail


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectStore]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = s3_client("", "us-east-1", "auto")
        client.create_bucket(Bucket="site")
        yield ObjectStore(client, "site")


class Source(RangeSource):
    """Serves `data` in 1 MiB chunks, counting the bytes read; `before(n)` runs before the
    n-th chunk (from 0) is read, and may wait or raise."""

    def __init__(self, data: bytes, before: Any = None) -> None:
        self.data = data
        self.before = before or (lambda n: None)
        self.bytes_read = 0

    def open(self, offset: int) -> tuple[Iterator[bytes], int, int]:
        def chunks() -> Iterator[bytes]:
            for n, position in enumerate(range(offset, len(self.data), MiB)):
                self.before(n)
                chunk = self.data[position : position + MiB]
                self.bytes_read += len(chunk)
                yield chunk

        return chunks(), offset, len(self.data)


class ReadingInto(Source):
    """The same bytes through `readinto` (as download_safety's HTTP downloads give them): each
    call fills at most a MiB of the buffer the copy hands it."""

    def open(self, offset: int) -> tuple[Any, int, int]:
        source = self

        class Chunks:
            position, n = offset, 0

            def __iter__(self) -> Iterator[bytes]:  # not used where readinto is there
                raise AssertionError("the copy reads through readinto")

            def readinto(self, target: Any) -> int:
                if self.position >= len(source.data):
                    return 0
                source.before(self.n)
                count = min(len(target), MiB, len(source.data) - self.position)
                target[:count] = source.data[self.position : self.position + count]
                self.position += count
                self.n += 1
                source.bytes_read += count
                return count

        return Chunks(), offset, len(self.data)


class Creating:
    """A boto3 client whose CreateMultipartUpload of HELD first runs `hold()` (it may wait, note
    what it saw, or raise); everything else goes to the real client."""

    def __init__(self, client: Any, hold: Any) -> None:
        self._client = client
        self._hold = hold

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def create_multipart_upload(self, **kwargs: Any) -> Any:
        if kwargs["Key"] == HELD:
            self._hold()
        return self._client.create_multipart_upload(**kwargs)


def copy(store: ObjectStore, key: str, source: Source) -> Any:
    return store.copy_from(
        key,
        source,
        part_size=PART,
        expected=Digest("sha256", hashlib.sha256(source.data).digest()),
        expected_size=len(source.data),
        content_type=None,
        metadata={},
    )


def _reader_waits_for_the_beginning(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """An Event set when the held copy's reading thread (named "held-copy") waits for its
    upload's beginning (the gate before a later part takes budget)."""
    gated = threading.Event()
    upload_id = object_store._PartUploader.upload_id

    def noting(self: Any) -> str:
        if threading.current_thread().name == "held-copy":
            gated.set()
        return upload_id(self)

    monkeypatch.setattr(object_store._PartUploader, "upload_id", noting)
    return gated


def _either(*events: threading.Event, bound: float = 5.0) -> None:
    """Wait until any of `events` is set (at most `bound` seconds)."""
    either = threading.Event()

    def wait(event: threading.Event) -> None:
        if event.wait(bound):
            either.set()

    for event in events:
        threading.Thread(target=wait, args=(event,), daemon=True).start()
    either.wait(bound)


def test_a_pending_beginning_holds_one_part_of_the_shared_budget(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one copy's upload is being begun, it reads one part ahead and holds the budget of
    one part, so another copy beside it goes on to its end (before, the first read ahead until
    the shared budget was full, and the other waited for that beginning)."""
    store.copy_budget = MemoryBudget(2 * PART)
    other_done = threading.Event()
    saw_other_done: list[bool] = []
    held_read: list[int] = []
    third_part_asked = threading.Event()

    def hold() -> None:
        saw_other_done.append(other_done.wait(10))
        held_read.append(held_source.bytes_read)

    def before(n: int) -> None:
        if n == 2 * PART // MiB:  # the third part's first chunk: the second part was taken
            third_part_asked.set()

    held_source = Source(os.urandom(8 * PART), before)
    store.client = Creating(store.client, hold)
    gated = _reader_waits_for_the_beginning(monkeypatch)
    held = threading.Thread(target=copy, args=(store, HELD, held_source), name="held-copy")
    held.start()
    # The held copy either reads past its second part (before: then its two parts fill the
    # budget) or waits for its beginning with one part read ahead (now).
    _either(third_part_asked, gated)
    other = os.urandom(3 * PART)
    try:
        copy(store, "sentinel/c/other/B04.jp2", Source(other))
        other_done.set()
    finally:
        other_done.set()
        held.join()
    assert saw_other_done == [True]
    assert held_read == [2 * PART]  # its first part, and one read ahead
    assert store.get(HELD) == held_source.data
    assert store.get("sentinel/c/other/B04.jp2") == other


def test_an_upload_that_cannot_begin_stops_the_read_one_part_ahead(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A beginning that fails late (after the first part is read) fails the copy with at most
    the first part and one more read, however large the budget (before, the read went on
    until the budget was full)."""
    store.copy_budget = MemoryBudget(8 * PART)
    third_part_asked = threading.Event()

    gated = _reader_waits_for_the_beginning(monkeypatch)

    def hold() -> None:
        # before: the third part asked at once; now the reader waits for the beginning
        _either(third_part_asked, gated)
        raise ConnectionError("the store went away")

    def before(n: int) -> None:
        if n == 2 * PART // MiB:
            third_part_asked.set()

    source = Source(os.urandom(20 * PART), before)
    store.client = Creating(store.client, hold)
    thread = threading.current_thread()
    name, thread.name = thread.name, "held-copy"
    try:
        with pytest.raises(StorageError, match="the store went away"):
            copy(store, HELD, source)
    finally:
        thread.name = name
    assert source.bytes_read <= 2 * PART
    assert store.head(HELD) is None
    assert store.client.list_multipart_uploads(Bucket="site").get("Uploads", []) == []
    assert store.copy_budget.used == 0


@pytest.mark.parametrize("kind", [Source, ReadingInto], ids=["chunks", "readinto"])
def test_a_beginning_that_fails_during_the_first_part_stops_the_read_at_its_next_chunk(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch, kind: type[Source]
) -> None:
    """The copy notes a failed beginning as it happens: the read stops before its next chunk,
    not at the end of the part it is reading."""
    noted = threading.Event()  # the copy has noted the failure (its _note has run)
    note = getattr(object_store._PartUploader, "_note", None)

    def noting(self: Any, future: Any) -> None:
        if note is not None:
            note(self, future)
        noted.set()

    monkeypatch.setattr(object_store._PartUploader, "_note", noting, raising=False)
    first_read = threading.Event()

    def hold() -> None:
        first_read.wait(5)
        raise ConnectionError("the store went away")

    def before(n: int) -> None:
        if n == 1:  # the beginning fails, and is noted (bound: 5 s), before this chunk's read
            first_read.set()
            noted.wait(5)

    source = kind(os.urandom(4 * PART), before)
    store.client = Creating(store.client, hold)
    with pytest.raises(StorageError, match="the store went away"):
        copy(store, HELD, source)
    assert source.bytes_read == 2 * MiB  # the chunk read while it failed, no more
    assert store.copy_budget.used == 0


def test_a_beginning_that_fails_beside_a_failing_source_is_named_and_logged(
    store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The source fails during the first part while the upload is being begun, and the
    beginning fails too: the item's error is the store's, and names the source's (before,
    only the source's was raised and the store's was lost)."""
    source_failed = threading.Event()

    def hold() -> None:
        source_failed.wait(5)
        raise ConnectionError("the store went away")

    def before(n: int) -> None:
        if n == 1:
            source_failed.set()
            raise SourceError("connection dropped midway")

    store.client = Creating(store.client, hold)
    with (
        caplog.at_level(logging.WARNING, logger="fedeploy_ingestion.object_store"),
        pytest.raises(StorageError) as raised,
    ):
        copy(store, HELD, Source(os.urandom(3 * PART), before))
    message = str(raised.value)
    assert "could not begin" in message and "the store went away" in message
    assert "connection dropped midway" in message
    assert isinstance(raised.value.__cause__, ConnectionError)
    logged = [r for r in caplog.records if r.getMessage().startswith("upload could not begin")]
    assert len(logged) == 1 and "the store went away" in logged[0].error  # type: ignore[attr-defined]
    assert store.head(HELD) is None
    assert store.copy_budget.used == 0


def test_a_source_failing_while_the_upload_begins_keeps_its_error_when_it_begins(
    store: ObjectStore,
) -> None:
    """Only the source failed: its own error, and the upload is left begun for the next run."""
    source_failed = threading.Event()

    def before(n: int) -> None:
        if n == 1:
            source_failed.set()
            raise SourceError("connection dropped midway")

    store.client = Creating(store.client, lambda: source_failed.wait(5))
    with pytest.raises(SourceError, match="connection dropped midway"):
        copy(store, HELD, Source(os.urandom(3 * PART), before))
    assert len(store.client.list_multipart_uploads(Bucket="site").get("Uploads", [])) == 1


def test_a_part_refused_for_a_failed_beginning_gives_its_buffer_back() -> None:
    # Review rcopy32b F3: a part whose submit is refused (the upload could not begin) was
    # dropped, not given back, so every copy denied its upload made a part buffer anew.
    def denied() -> str:
        raise ConnectionError("denied")

    buffers = object_store.PartBuffers(4 * PART)
    uploader = object_store._PartUploader(
        None,
        "site",
        HELD,
        denied,
        [],
        checksum="CRC32",
        listed=False,
        budget=MemoryBudget(4 * PART),
        buffers=buffers,
        hashers=[],
    )
    try:
        with pytest.raises(ConnectionError, match="denied"):
            uploader.upload_id()
        noted = threading.Event()  # the failure noted by the beginning's callback (a bound)
        for _ in range(500):
            if uploader._failed is not None:
                noted.set()
                break
            noted.wait(0.01)
        assert noted.is_set()
        for _ in range(10):
            part = buffers.get(PART)
            with pytest.raises(ConnectionError, match="denied"):
                uploader.submit(part)
        assert buffers.made == 1  # one buffer, given back and taken again each time
    finally:
        uploader._pool.shutdown(wait=True)
        uploader._digest.shutdown(wait=True)
