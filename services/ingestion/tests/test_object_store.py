"""Resumable, verified multipart copies (against moto's S3 in this process)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest
from fedeploy_ingestion.errors import ChecksumMismatch, SourceError
from fedeploy_ingestion.multihash import Digest
from fedeploy_ingestion.object_store import MiB, ObjectStore, RangeSource, s3_client
from moto import mock_aws

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
