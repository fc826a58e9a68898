"""Resumable, verified multipart copies (against moto's S3 in this process; what the store
itself verifies, against SeaweedFS, since moto checks no part's checksum)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from fedeploy_ingestion.errors import ChecksumMismatch, SourceError, StorageError
from fedeploy_ingestion.multihash import Digest
from fedeploy_ingestion.object_store import (
    MemoryBudget,
    MiB,
    ObjectStore,
    PartBuffers,
    RangeSource,
    _crc32,
    parts_in_flight,
    record_key,
    s3_client,
)
from moto import mock_aws

from loopback import SeaweedS3

PART = 5 * MiB
DATA = os.urandom(12 * MiB + 123)


class MemorySource(RangeSource):
    """Serves DATA from an offset; can fail after some bytes, or ignore ranges."""

    def __init__(
        self, data: bytes = DATA, fail_after: int | None = None, ranges: bool = True
    ) -> None:
        self.data = data
        self.fail_after = fail_after
        self.ranges = ranges
        self.opened: list[int] = []

    def open(self, offset: int) -> tuple[Iterator[bytes], int, int]:
        self.opened.append(offset)
        start = offset if self.ranges else 0

        def chunks() -> Iterator[bytes]:
            sent = 0
            for position in range(start, len(self.data), MiB):
                chunk = self.data[position : position + MiB]
                sent += len(chunk)
                yield chunk
                if self.fail_after is not None and sent >= self.fail_after:
                    raise SourceError("connection dropped midway")

        return chunks(), start, len(self.data)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[ObjectStore]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = s3_client("", "us-east-1", "auto")
        client.create_bucket(Bucket="site")
        yield ObjectStore(client, "site")


def sha256(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).digest())


def copy(
    store: ObjectStore,
    source: RangeSource,
    expected: Digest | None = None,
    size: int | None = len(DATA),
):
    return store.copy_from(
        "sentinel/c/i/B04.jp2",
        source,
        part_size=PART,
        expected=expected,
        expected_size=size,
        content_type="image/jp2",
        metadata={"k": "v"},
    )


def pending_parts(store: ObjectStore) -> list[int]:
    uploads = store.client.list_multipart_uploads(Bucket="site").get("Uploads", [])
    if not uploads:
        return []
    parts = store.client.list_parts(
        Bucket="site", Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"]
    )
    return [p["Size"] for p in parts.get("Parts", [])]


def test_a_copy_from_the_start_is_verified_while_streaming(store: ObjectStore) -> None:
    result = copy(store, MemorySource(), expected=sha256(DATA))
    assert (result.size, result.sha256, result.resumed_from) == (
        len(DATA),
        hashlib.sha256(DATA).digest(),
        0,
    )
    assert store.get(result.key) == DATA
    assert store.head(result.key).metadata == {"k": "v"}


def test_an_interrupted_copy_resumes_from_the_first_missing_part(store: ObjectStore) -> None:
    with pytest.raises(SourceError, match="midway"):
        copy(store, MemorySource(fail_after=7 * MiB), expected=sha256(DATA))
    assert pending_parts(store) == [PART]
    assert store.head("sentinel/c/i/B04.jp2") is None
    again = MemorySource()
    result = copy(store, again, expected=sha256(DATA))
    assert again.opened == [PART]
    assert result.resumed_from == PART
    assert result.bytes_sent == len(DATA) - PART
    assert result.sha256 == hashlib.sha256(DATA).digest()
    assert store.get(result.key) == DATA
    assert pending_parts(store) == []


def test_a_resumed_copy_with_a_wrong_digest_is_deleted(store: ObjectStore) -> None:
    with pytest.raises(SourceError):
        copy(store, MemorySource(fail_after=6 * MiB))
    with pytest.raises(ChecksumMismatch, match="deleted"):
        copy(store, MemorySource(), expected=sha256(b"something else"))
    assert store.head("sentinel/c/i/B04.jp2") is None


def test_a_digest_mismatch_from_the_start_completes_nothing(store: ObjectStore) -> None:
    with pytest.raises(ChecksumMismatch, match="sha256"):
        copy(store, MemorySource(), expected=sha256(b"other"))
    assert store.head("sentinel/c/i/B04.jp2") is None
    assert pending_parts(store) == []


def test_a_source_without_ranges_starts_over(store: ObjectStore) -> None:
    with pytest.raises(SourceError):
        copy(store, MemorySource(fail_after=11 * MiB))
    assert pending_parts(store) == [PART, PART]
    result = copy(store, MemorySource(ranges=False), expected=sha256(DATA))
    assert result.resumed_from == 0 and result.bytes_sent == len(DATA)
    assert store.get(result.key) == DATA


def test_a_source_smaller_than_declared_is_refused(store: ObjectStore) -> None:
    with pytest.raises(ChecksumMismatch, match="file:size"):
        copy(store, MemorySource(), size=len(DATA) + 1)


def test_all_parts_uploaded_but_not_completed_completes_without_reading(store: ObjectStore) -> None:
    exact = DATA[: 2 * PART]
    with pytest.raises(SourceError):
        # Fails after the last byte: both parts are uploaded by then, the upload not completed.
        copy(store, MemorySource(exact, fail_after=2 * PART), size=len(exact))
    assert pending_parts(store) == [PART, PART]

    class Exhausted(MemorySource):
        def open(self, offset: int) -> tuple[Iterator[bytes], int, int]:
            self.opened.append(offset)
            return iter(()), offset, len(self.data)  # what an HTTP 416 becomes

    source = Exhausted(exact)
    result = copy(store, source, expected=sha256(exact), size=len(exact))
    assert source.opened == [2 * PART] and result.bytes_sent == 0
    assert store.get(result.key) == exact


class SlowParts:
    """A boto3 client whose part uploads take a while (and may fail), counting how many run
    at once; everything else goes to the real client."""

    def __init__(self, client: Any, fail_part: int | None = None) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.fail_part = fail_part
        self.running = 0
        self.peak = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def upload_part(self, **kwargs: Any) -> Any:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(0.1)
            if kwargs["PartNumber"] == self.fail_part:
                raise ConnectionError("the store went away")
            return self._client.upload_part(**kwargs)
        finally:
            with self._lock:
                self.running -= 1


def test_parts_upload_at_once_within_the_memory_budget(store: ObjectStore) -> None:
    data = os.urandom(6 * PART)
    slow = SlowParts(store.client)
    store.client = slow
    store.copy_budget = MemoryBudget(3 * PART)
    result = copy(store, MemorySource(data), expected=sha256(data), size=len(data))
    assert result.sha256 == hashlib.sha256(data).digest()
    assert store.get(result.key) == data
    assert slow.peak == 3  # at once, and never more than the budget holds
    assert store.copy_budget.peak == 3 * PART and store.copy_budget.used == 0


def test_the_budget_is_shared_by_copies_that_run_at_once(store: ObjectStore) -> None:
    data = os.urandom(4 * PART)
    slow = SlowParts(store.client)
    store.client = slow
    store.copy_budget = MemoryBudget(2 * PART)
    copies = [
        threading.Thread(
            target=store.copy_from,
            args=(f"sentinel/c/i{n}/B04.jp2", MemorySource(data)),
            kwargs={
                "part_size": PART,
                "expected": sha256(data),
                "expected_size": len(data),
                "content_type": None,
                "metadata": {},
            },
        )
        for n in range(2)
    ]
    for thread in copies:
        thread.start()
    for thread in copies:
        thread.join()
    assert [store.get(f"sentinel/c/i{n}/B04.jp2") == data for n in range(2)] == [True, True]
    assert slow.peak == 2 and store.copy_budget.peak == 2 * PART


def test_parts_are_read_into_buffers_used_again_once_sent(store: ObjectStore) -> None:
    # Slow uploads: a buffer given back before its part was sent would be overwritten by a
    # later part, and the stored object would differ.
    data = os.urandom(8 * PART + 123)
    store.client = SlowParts(store.client)
    store.copy_budget = MemoryBudget(2 * PART)
    store.part_buffers = PartBuffers(2 * PART)
    result = copy(store, MemorySource(data), expected=sha256(data), size=len(data))
    assert store.get(result.key) == data
    # Eight whole parts through three buffers: two in flight and the one being read.
    assert store.part_buffers.made == 3


class Lockstep:
    """Copies that run at once in lockstep: each one's read waits before its third part, and
    every part's upload before it is sent, until all the copies are there (bound: 5 s each).
    With 16 MiB parts and two copies, both then have two parts in flight (the budget full) and
    each holds the buffer of its third: as many buffers as they can hold at once, whatever the
    load (left to timing, a copy that fell behind used the other's freed buffers)."""

    def __init__(self, copies: int) -> None:
        self._copies = copies
        self._arrived = 0
        self._there = threading.Condition()

    def wait(self) -> None:
        with self._there:
            self._there.wait_for(lambda: self._arrived >= self._copies, timeout=5)

    def source(self, data: bytes, part_size: int) -> RangeSource:
        step = self

        class Stepping(MemorySource):
            def open(self, offset: int) -> tuple[Iterator[bytes], int, int]:
                chunks, start, total = super().open(offset)

                def stepped() -> Iterator[bytes]:
                    position = start
                    for chunk in chunks:
                        if position == 2 * part_size:
                            with step._there:
                                step._arrived += 1
                                step._there.notify_all()
                            step.wait()
                        position += len(chunk)
                        yield chunk

                return stepped(), start, total

        return Stepping(data)


class SteppedParts(SlowParts):
    """SlowParts whose uploads wait for the copies' `lockstep` first."""

    lockstep: Lockstep

    def upload_part(self, **kwargs: Any) -> Any:
        self.lockstep.wait()
        return super().upload_part(**kwargs)


def test_two_copies_at_once_make_no_part_buffer_again_once_started(store: ObjectStore) -> None:
    """With the service's 16 MiB parts and two items reading at once, the copies hold up to six
    buffers (four in flight, one each being read): all six are kept, so the next copies make
    none anew (before, 64 MiB were kept and two of the six were made again, 7-10 ms each)."""
    at_once = 2
    data = os.urandom(3 * 16 * MiB)
    client = SteppedParts(store.client)
    store.client = client

    def copies_at_once(round_: int) -> None:
        client.lockstep = Lockstep(at_once)
        copies = [
            threading.Thread(
                target=store.copy_from,
                args=(
                    f"sentinel/c/r{round_}-{n}/B04.jp2",
                    client.lockstep.source(data, 16 * MiB),
                ),
                kwargs={
                    "part_size": 16 * MiB,
                    "expected": sha256(data),
                    "expected_size": len(data),
                    "content_type": None,
                    "metadata": {},
                },
            )
            for n in range(at_once)
        ]
        for thread in copies:
            thread.start()
        for thread in copies:
            thread.join()

    copies_at_once(1)
    made = store.part_buffers.made
    # the reading copies' buffers beside the four parts in flight, never more
    assert made == 4 + at_once and store.copy_budget.peak <= 4 * 16 * MiB
    copies_at_once(2)
    assert store.part_buffers.made == made
    for n in range(at_once):
        assert store.get(f"sentinel/c/r2-{n}/B04.jp2") == data


def test_a_failed_part_stops_reading_the_source(store: ObjectStore) -> None:
    data = os.urandom(20 * PART)
    read: list[int] = []

    class Counting(MemorySource):
        def open(self, offset: int) -> tuple[Iterator[bytes], int, int]:
            chunks, start, total = super().open(offset)

            def counted() -> Iterator[bytes]:
                for chunk in chunks:
                    read.append(len(chunk))
                    yield chunk

            return counted(), start, total

    store.client = SlowParts(store.client, fail_part=1)
    store.copy_budget = MemoryBudget(2 * PART)
    with pytest.raises(StorageError, match="the store went away"):
        copy(store, Counting(data), expected=sha256(data), size=len(data))
    assert sum(read) < len(data) // 2  # not the whole source after the first part failed
    assert store.head("sentinel/c/i/B04.jp2") is None


class Beginning:
    """A boto3 client whose CreateMultipartUpload (of a copy, not the checksum probe) waits,
    up to 5 s, for `read` (the source's first chunk read), noting whether it came, and may
    fail; each UploadPart notes whether the upload's record was written before it."""

    def __init__(self, client: Any, read: threading.Event, fail: bool = False) -> None:
        self._client = client
        self._read = read
        self.fail = fail
        self.read_first: list[bool] = []
        self.record_first: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def create_multipart_upload(self, **kwargs: Any) -> Any:
        if not kwargs["Key"].endswith(".checksum-probe"):
            self.read_first.append(self._read.wait(5))
            if self.fail:
                raise ConnectionError("the store went away")
        return self._client.create_multipart_upload(**kwargs)

    def upload_part(self, **kwargs: Any) -> Any:
        record = self._client.list_objects_v2(Bucket="site", Prefix=record_key(kwargs["Key"]))
        self.record_first.append(record.get("KeyCount", 0) == 1)
        return self._client.upload_part(**kwargs)


class Noting(MemorySource):
    """MemorySource that sets `read` once its first chunk is read, and counts bytes read."""

    def __init__(self, data: bytes, read: threading.Event) -> None:
        super().__init__(data)
        self.read = read
        self.bytes_read = 0

    def open(self, offset: int) -> tuple[Iterator[bytes], int, int]:
        chunks, start, total = super().open(offset)

        def noted() -> Iterator[bytes]:
            for chunk in chunks:
                self.bytes_read += len(chunk)
                self.read.set()
                yield chunk

        return noted(), start, total


def test_a_new_upload_is_begun_while_its_first_part_is_read(store: ObjectStore) -> None:
    """The upload's creation and its record overlap the first part's read (before, the copy
    made both requests one after the other before reading a byte); no part is sent before
    the record is written, and the copy is whole and verified."""
    data = os.urandom(3 * PART)
    read = threading.Event()
    client = Beginning(store.client, read)
    store.client = client
    result = copy(store, Noting(data, read), expected=sha256(data), size=len(data))
    assert client.read_first == [True]
    assert client.record_first == [True, True, True]
    assert store.get(result.key) == data
    assert store.get(record_key(result.key)) is None  # removed once completed


def test_an_upload_that_cannot_begin_fails_the_copy_and_stops_its_read(
    store: ObjectStore,
) -> None:
    data = os.urandom(20 * PART)
    read = threading.Event()
    store.client = Beginning(store.client, read, fail=True)
    store.copy_budget = MemoryBudget(2 * PART)
    source = Noting(data, read)
    with pytest.raises(StorageError, match="the store went away"):
        copy(store, source, expected=sha256(data), size=len(data))
    # the first part and at most one more (test_upload_beginning.py holds the failure until a
    # third part would be read, so that bound fails when the read runs ahead)
    assert source.bytes_read <= 2 * PART
    assert store.head("sentinel/c/i/B04.jp2") is None
    assert store.client.list_multipart_uploads(Bucket="site").get("Uploads", []) == []


def test_a_large_part_still_uploads_alone_and_the_budget_counts_parts() -> None:
    budget = MemoryBudget(10)
    budget.take(25)  # larger than the whole budget: let through alone
    assert budget.used == 25
    budget.give(25)
    assert parts_in_flight(16 * MiB) == 4 and parts_in_flight(5120 * MiB) == 1


def test_a_digest_mismatch_with_another_algorithm_is_refused(store: ObjectStore) -> None:
    declared = Digest("sha512", hashlib.sha512(b"other").digest())
    with pytest.raises(ChecksumMismatch, match="sha512"):
        copy(store, MemorySource(), expected=declared)
    assert store.head("sentinel/c/i/B04.jp2") is None
    right = Digest("sha512", hashlib.sha512(DATA).digest())
    result = copy(store, MemorySource(), expected=right)
    assert result.sha256 == hashlib.sha256(DATA).digest()  # both digests from the one stream


def _part_headers(client: Any) -> list[dict[str, str]]:
    """The integrity headers of every UploadPart the client sends from now on."""
    sent: list[dict[str, str]] = []
    names = ("content-md5", "x-amz-checksum-", "x-amz-content-sha256", "x-amz-sdk-checksum")

    def record(request: Any, **_: Any) -> None:
        sent.append(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else v
                for k, v in request.headers.items()
                if k.lower().startswith(names)
            }
        )

    client.meta.events.register_first("before-send.s3.UploadPart", record)
    return sent


def test_each_part_carries_one_checksum_its_crc32(store: ObjectStore) -> None:
    sent = _part_headers(store.client)
    result = copy(store, MemorySource(), expected=sha256(DATA))
    assert store.get(result.key) == DATA
    parts = [DATA[i : i + PART] for i in range(0, len(DATA), PART)]
    crcs = [base64.b64encode(zlib.crc32(p).to_bytes(4, "big")).decode() for p in parts]
    # Over TLS (moto stands for AWS here) no signed SHA-256 of the body: one checksum a part.
    assert sorted(sent, key=lambda h: h["x-amz-checksum-crc32"]) == sorted(
        ({"x-amz-checksum-crc32": crc, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"} for crc in crcs),
        key=lambda h: h["x-amz-checksum-crc32"],
    )


@pytest.mark.parametrize("size", [0, 1, 7, 63, 64, 65, 4095, 5 * MiB + 3])
def test_a_parts_crc32_is_zlibs_whatever_its_buffer(size: int) -> None:
    # ISA-L's kernels (the copy's CRC32) against zlib's, the value S3 and SeaweedFS check, on
    # lengths around its vector widths and each kind of buffer a part is sent from.
    data = os.urandom(size)
    want = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    for buffer in (data, bytearray(data), memoryview(bytearray(b"x" + data))[1:]):
        assert _crc32(buffer) == want


def test_an_upload_begun_without_a_checksum_resumes_with_content_md5(store: ObjectStore) -> None:
    key = "sentinel/c/i/B04.jp2"
    upload = store.client.create_multipart_upload(Bucket="site", Key=key)["UploadId"]
    first = DATA[:PART]
    store.client.upload_part(Bucket="site", Key=key, UploadId=upload, PartNumber=1, Body=first)
    # the record copy_from writes beside an upload it begins (what the content was)
    record = {"upload": upload, "metadata": {"k": "v"}, "validator": None}
    store.put(record_key(key), json.dumps(record).encode(), "application/json")
    sent = _part_headers(store.client)
    source = MemorySource()
    result = copy(store, source, expected=sha256(DATA))
    assert source.opened == [PART] and result.resumed_from == PART
    assert store.get(key) == DATA
    assert sent and all(set(h) == {"content-md5", "x-amz-content-sha256"} for h in sent)


def _damage_second_part(request: Any, **_: Any) -> None:
    """Flip a byte of part 2 after its checksum was computed: damage on the way."""
    if "partNumber=2" not in request.url:
        return
    body = request.body
    data = bytearray(body.read() if hasattr(body, "read") else body)
    data[100] ^= 0xFF
    request.body = bytes(data)


def test_the_store_refuses_a_part_damaged_on_the_way(
    s3: SeaweedS3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = s3.endpoint
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", endpoint.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", endpoint.secret_access_key)
    client = s3_client(endpoint.endpoint_url, endpoint.region, "auto")
    store = ObjectStore(client, bucket)
    sent = _part_headers(client)
    client.meta.events.register_first("before-send.s3.UploadPart", _damage_second_part)
    with pytest.raises(StorageError, match="BadDigest"):
        copy(store, MemorySource(), expected=sha256(DATA))
    assert store.head("sentinel/c/i/B04.jp2") is None
    assert sent and all("x-amz-checksum-crc32" in h and "content-md5" not in h for h in sent)
    # Undamaged, the same copy resumes the parts the store kept and completes.
    client.meta.events.unregister("before-send.s3.UploadPart", _damage_second_part)
    result = copy(store, MemorySource(), expected=sha256(DATA))
    assert store.get(result.key) == DATA


def test_read_is_called_once_every_part_is_handed_over_before_the_upload_completes(
    store: ObjectStore,
) -> None:
    """`read` (the Sentinel run gives the item's slot to the next item there) comes after the
    source's last byte and before the completion, once; a failed read never calls it."""
    completed: list[bool] = []
    calls: list[int] = []
    complete = store.client.complete_multipart_upload

    def completing(**kwargs: Any) -> Any:
        completed.append(True)
        return complete(**kwargs)

    store.client.complete_multipart_upload = completing
    source = MemorySource()
    store.copy_from(
        "sentinel/c/i/B04.jp2",
        source,
        part_size=PART,
        expected=sha256(DATA),
        expected_size=len(DATA),
        content_type="image/jp2",
        metadata={},
        read=lambda: calls.append(len(completed)),
    )
    assert calls == [0] and completed == [True]
    failing: list[int] = []
    with pytest.raises(SourceError):
        store.copy_from(
            "sentinel/c/i/B05.jp2",
            MemorySource(fail_after=6 * MiB),
            part_size=PART,
            expected=None,
            expected_size=len(DATA),
            content_type="image/jp2",
            metadata={},
            read=lambda: failing.append(1),
        )
    assert failing == []
