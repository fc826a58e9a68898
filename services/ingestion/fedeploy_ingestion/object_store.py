"""The site's bucket, through boto3: small objects, and resumable multipart copies.

Every request with a body carries one checksum the store verifies, so it rejects a body
damaged on the way: small objects a Content-MD5, the parts of a copy a CRC32
(`x-amz-checksum-crc32`, computed by ISA-L (`isal`) at about 17 GiB/s a core here, a
twentieth of MD5's cost and an eighth of zlib's; SeaweedFS, which the tests use because it
checks, refuses a part whose bytes do not match it, as AWS S3 does). A copy streams part by
part: parts upload several at once while the next is read, the digest of the whole object is
computed on its own thread as the parts pass, memory stays within COPY_MEMORY_BUDGET (plus the
one part each copy is reading), and the upload is completed only when the digest matches what
the source declared. A part is read straight into a buffer of the part's size that the next
part uses again (PartBuffers) and sent from it as it is: no join, and no fresh 16 MiB the
kernel must map and zero for every part.

The SigV4 signature covers the body's SHA-256 only over plain HTTP, where it is what keeps the
body from being altered on the way; over HTTPS TLS does, and the part's CRC32 is its one
checksum (`payload_signing_enabled` off: no second hash of every part).

Conditional writes (`put_if`): `If-Match: <ETag>` replaces only the version that was read,
`If-None-Match: *` creates only an object that does not exist; a store that has another
version answers 412 (or 409 for a concurrent conditional write) and `WriteConflict` is raised,
so two writers of one key merge instead of overwriting each other (window_writer). AWS S3,
SeaweedFS (checked: 4.48, atomic under 8 concurrent writers) and moto honour both headers.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import functools
import hashlib
import io
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from isal import isal_zlib

from fedeploy_ingestion.errors import ChecksumMismatch, IngestError, StorageError, failure_text
from fedeploy_ingestion.multihash import Digest, new_hasher

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MAX_PARTS = 10_000  # S3's limit per upload
MAX_OBJECT = 5 * 1024**4  # S3's largest object (5 TiB): its parts are at most 525 MiB
# Under this prefix, at the object's key, a copy's unfinished upload's record: what it started
# from (its metadata, the source's validator), so that a resume joins only parts of the same
# content (see copy_from). Its own prefix: no object's key can be a record's, and the bucket's
# lifecycle expires records left by uploads it aborted (fedeploy/storage_rules.py).
UPLOAD_RECORDS = ".fedeploy-uploads/"


def record_key(key: str) -> str:
    """The key of the record of an unfinished upload to `key` (`.fedeploy-uploads/<key>`)."""
    return UPLOAD_RECORDS + key


UPLOAD_THREADS = 4  # a copy's parts uploaded at once while the next is read and hashed
# Bytes of parts uploading at once, across every copy of one ObjectStore (with 16 MiB parts:
# 4); each copy holds one more part besides, the one being read (with the service's two items
# in flight and 16 MiB parts: at most 96 MiB of parts in all).
COPY_MEMORY_BUDGET = 64 * MiB
# Part buffers kept for the next parts and copies: those of the parts in flight and the one each
# of two reading copies fills (sentinel.ITEMS_IN_FLIGHT, 16 MiB parts): all that a run's copies
# hold at once, so once they have started no buffer is made anew (a new 16 MiB buffer costs its
# process 7-10 ms of page faults and zeroing; with only the budget's 64 MiB kept, two of every
# six were made again, about 20 ms per three items).
PART_BUFFERS_KEPT = COPY_MEMORY_BUDGET + 2 * 16 * MiB


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD tells about an object."""

    size: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class CopyResult:
    """A completed, verified copy."""

    key: str
    size: int
    sha256: bytes
    resumed_from: int  # 0 for a copy from the start
    bytes_sent: int


class AssetTooLarge(IngestError):
    """A copy's source declares or announces more bytes than a copy may take."""


class WriteConflict(StorageError):
    """A conditional write found another version than the one it was based on."""


# What S3-compatible stores answer when a condition fails (or a conditional write races one).
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})


class RangeSource(abc.ABC):
    """What a copy reads from: a stream of bytes from an offset (an HTTP Range GET)."""

    @abc.abstractmethod
    def open(self, offset: int) -> tuple[Iterable[bytes], int, int]:
        """(chunks, offset actually served, total size); offset 0 when ranges are unsupported.
        Chunks that also have `readinto(view) -> count` (0 at the end; download_safety's
        DirectBody) are read straight into the copy's part buffers instead; chunks with
        `close()` are closed when the copy ends, whether they were read or not."""

    # What identifies the content the last `open` served (an HTTP strong ETag or
    # Last-Modified), recorded with a new upload; None: the source names none.
    validator: str | None = None

    def resume_if(self, validator: str | None) -> bool:
        """Before a resumed `open`: serve the rest only of the content `validator` (what the
        upload recorded) names, from byte 0 otherwise; False when the source cannot tell that
        it serves the same content (the copy then starts over unless a declared digest will
        verify the whole). This default resumes as asked (a source that checks what it serves,
        or knows no better)."""
        return True


def _md5(data: bytes | bytearray | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _crc32(data: bytes | bytearray | memoryview) -> str:
    """A part's `x-amz-checksum-crc32`: base64 of the big-endian CRC32 (zlib's polynomial and
    value; ISA-L lets go of the GIL, so parts are summed on their upload threads at once)."""
    return base64.b64encode(isal_zlib.crc32(data).to_bytes(4, "big")).decode()


# The checksum every part of a new copy carries. A store either records it on the upload
# (AWS S3: CreateMultipartUpload names it, ListParts lists each part's, and the completion
# must repeat them) or only checks each part against it (SeaweedFS: it lists neither, and an
# upload created with it could not be completed once resumed); ObjectStore asks which, once.
# An upload begun with neither (before parts carried a CRC32) resumes with Content-MD5.
PART_CHECKSUM = "CRC32"


def s3_client(endpoint_url: str, region: str, addressing_style: str) -> Any:
    """A boto3 S3 client; credentials from boto3's default chain (the pod's role, or the shared
    credentials file the chart names in AWS_SHARED_CREDENTIALS_FILE, or AWS_* variables)."""
    import boto3
    from botocore.config import Config

    style = addressing_style
    if style == "auto" and endpoint_url:
        style = "path"  # S3-compatible stores on a plain host name rarely do virtual hosts
    s3: dict[str, Any] = {"addressing_style": style}
    if not endpoint_url or endpoint_url.startswith("https://"):
        # Over TLS the body needs no signed SHA-256 besides the checksum each body carries
        # (over plain HTTP botocore always signs it, which this leaves alone).
        s3["payload_signing_enabled"] = False
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=region or None,
        config=Config(
            s3=s3,
            retries={"max_attempts": 5, "mode": "standard"},
            # We send each body's one checksum ourselves (Content-MD5, or a part's CRC32),
            # so botocore adds none of its own on top.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


class ObjectStore:
    """One bucket."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        # Shared by the copies that run at once (sentinel.ITEMS_IN_FLIGHT).
        self.copy_budget = MemoryBudget(COPY_MEMORY_BUDGET)
        self.part_buffers = PartBuffers(PART_BUFFERS_KEPT)
        self._records_checksum: bool | None = None  # see records_part_checksums
        self._probe_lock = threading.Lock()

    def records_part_checksums(self, key: str) -> bool:
        """Whether the store records an upload's checksum algorithm (and lists its parts'),
        asked once with an upload of `key`.probe begun and aborted (the copies' own prefix, so
        the same grant covers it)."""
        with self._probe_lock:
            if self._records_checksum is None:
                probe = f"{key}.checksum-probe"
                upload_id = self.client.create_multipart_upload(
                    Bucket=self.bucket, Key=probe, ChecksumAlgorithm=PART_CHECKSUM
                )["UploadId"]
                try:
                    answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=probe)
                finally:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=probe, UploadId=upload_id
                    )
                self._records_checksum = any(
                    u.get("ChecksumAlgorithm") == PART_CHECKSUM
                    for u in answer.get("Uploads", [])
                    if u["UploadId"] == upload_id
                )
            return self._records_checksum

    @contextlib.contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """boto3's errors become StorageError naming the request and the object."""
        try:
            yield
        except IngestError:
            raise
        except Exception as error:
            raise StorageError(f"S3 {action} s3://{self.bucket}/{key} failed: {error}") from error

    # --- small objects ------------------------------------------------------------------------

    def put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None
    ) -> None:
        """Write an object in one request."""
        with self._errors("PUT", key):
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ContentMD5=_md5(data),
                Metadata=metadata or {},
            )

    def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        """An object's bytes and ETag (the version a conditional write is based on), or None."""
        with self._errors("GET", key):
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=key)
            except self.client.exceptions.NoSuchKey:
                return None
            return bytes(answer["Body"].read()), str(answer["ETag"])

    def put_if(self, key: str, data: bytes, content_type: str, etag: str | None) -> str:
        """Write only over version `etag` (or only when there is no object, for None).

        Returns the new ETag; raises WriteConflict when the stored version is another one.
        """
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            with self._errors("conditional PUT", key):
                answer = self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    ContentType=content_type,
                    ContentMD5=_md5(data),
                    **condition,
                )
        except StorageError as error:
            cause = error.__cause__
            response = getattr(cause, "response", None) or {}
            code = str(response.get("Error", {}).get("Code", ""))
            status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            if (
                code in _CONFLICT_CODES
                or status in ("412", "409")
                or (
                    etag is not None and code == "NoSuchKey"  # deleted since it was read
                )
            ):
                raise WriteConflict(
                    f"s3://{self.bucket}/{key} changed since it was read ({code or status})"
                ) from cause
            raise
        return str(answer["ETag"])

    def etag(self, key: str) -> str | None:
        """The ETag of the stored version, or None when there is no object."""
        with self._errors("HEAD", key):
            try:
                return str(self.client.head_object(Bucket=self.bucket, Key=key)["ETag"])
            except self.client.exceptions.ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                    return None
                raise

    def get(self, key: str) -> bytes | None:
        """An object's bytes, or None when there is none."""
        with self._errors("GET", key):
            try:
                return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
            except self.client.exceptions.NoSuchKey:
                return None

    def head(self, key: str) -> ObjectInfo | None:
        """Size and metadata, or None when there is no object."""
        with self._errors("HEAD", key):
            try:
                answer = self.client.head_object(Bucket=self.bucket, Key=key)
            except self.client.exceptions.ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                    return None
                raise
        return ObjectInfo(int(answer["ContentLength"]), dict(answer.get("Metadata", {})))

    def delete(self, key: str) -> None:
        """Remove an object (no error when absent)."""
        with self._errors("DELETE", key):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def digest(self, key: str, algorithms: list[str]) -> tuple[int, dict[str, bytes]]:
        """Stream an object back and hash it: its size and a digest per algorithm."""
        hashers = {a: new_hasher(a) for a in algorithms}
        size = 0
        with self._errors("GET", key):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            for chunk in body.iter_chunks(MiB):
                size += len(chunk)
                for hasher in hashers.values():
                    hasher.update(chunk)
        return size, {a: h.digest() for a, h in hashers.items()}

    # --- resumable copies ------------------------------------------------------------------

    def _pending_upload(self, key: str) -> tuple[str, str | None, list[dict[str, Any]]] | None:
        """The newest unfinished multipart upload of `key`, the checksum algorithm the store
        says it was created with (None when it says none: SeaweedFS never does) and its parts;
        abort older ones."""
        answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        uploads = sorted(
            (u for u in answer.get("Uploads", []) if u["Key"] == key), key=lambda u: u["Initiated"]
        )
        for stale in uploads[:-1]:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=stale["UploadId"]
            )
        if not uploads:
            return None
        upload_id = uploads[-1]["UploadId"]
        algorithm = uploads[-1].get("ChecksumAlgorithm")
        parts: list[dict[str, Any]] = []
        marker = 0
        while True:
            page = self.client.list_parts(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
            )
            parts += page.get("Parts", [])
            if not page.get("IsTruncated"):
                break
            marker = page["NextPartNumberMarker"]
        return upload_id, algorithm, sorted(parts, key=lambda p: p["PartNumber"])

    def copy_from(
        self,
        key: str,
        source: RangeSource,
        *,
        part_size: int,
        expected: Digest | None,
        expected_size: int | None,
        content_type: str | None,
        metadata: dict[str, str],
        read: Callable[[], None] | None = None,
        max_size: int | None = None,
    ) -> CopyResult:
        """Copy a source into `key`, resuming an interrupted upload of the same key; `read()`
        is called once the source is read to its end and every part is handed to the uploads.
        A source that declares (`expected_size`) or announces more than `max_size` bytes (at
        most S3's 5 TiB) is refused with AssetTooLarge before any part buffer is made.

        The parts already uploaded are kept when they form a contiguous prefix of equal-size
        parts of the same content: the upload's record (`.fedeploy-uploads/<key>`) names the
        same `metadata` (the upstream fingerprint) and the source agrees to serve the rest only
        of the content it recorded (RangeSource.resume_if: HTTP If-Range), or `expected` will
        verify the whole; else the upload is aborted and the copy starts over. The source is
        then read from the first missing byte. A copy from the start is verified by the digest
        of the bytes streamed; a resumed one, which did not see the first bytes, by reading
        the completed object back.
        """
        limit = MAX_OBJECT if max_size is None else min(max_size, MAX_OBJECT)
        with self._errors("multipart copy to", key):
            if expected_size is not None:
                # Refused before a byte is asked for or a buffer made: the part size grows
                # with the size, and with it the memory of every part.
                self._refuse_above(key, expected_size, limit, "declares")
                part_size = _part_size(expected_size, part_size)
            upload_id, checksum, done, resumed_size = self._resume_point(key, part_size)
            if upload_id is not None and not self._same_content(
                key, upload_id, source, metadata, expected
            ):
                self._abort(key, upload_id)
                upload_id, checksum, done = None, PART_CHECKSUM, []
            part_size = resumed_size if done else part_size
            offset = len(done) * part_size
            chunks, served_from, total = source.open(offset)
            try:
                if served_from != offset:  # the source cannot resume there: start over
                    if upload_id is not None:
                        self._abort(key, upload_id)
                    upload_id, checksum, done, offset = None, PART_CHECKSUM, [], served_from
                self._refuse_above(key, total, limit, "announces")
                if expected_size is not None and total != expected_size:
                    raise ChecksumMismatch(
                        f"source of s3://{self.bucket}/{key} has {total} bytes, "
                        f"its item declares file:size {expected_size}"
                    )
                begin: str | Callable[[], str]
                if upload_id is None:
                    if not offset:  # a size only the answer gave: at most MAX_PARTS parts
                        part_size = _part_size(total, part_size)
                    # Begun on an upload thread while the first part is read (_PartUploader):
                    # the creation and the record are off the copy's path, and no part is
                    # sent before both are done.
                    begin = functools.partial(
                        self._begin, key, metadata, content_type, getattr(source, "validator", None)
                    )
                else:
                    begin = upload_id

                from_start = offset == 0
                sha256 = hashlib.sha256()
                declared = None
                if expected is not None and from_start:
                    # One pass when the source declares SHA-256 too (the usual case).
                    declared = sha256 if expected.algorithm == "sha256" else expected.new_hasher()
                parts = _PartUploader(
                    self.client,
                    self.bucket,
                    key,
                    begin,
                    done,
                    checksum=checksum,
                    listed=self.records_part_checksums(key),
                    budget=self.copy_budget,
                    buffers=self.part_buffers,
                    hashers=[sha256] + ([declared] if declared not in (None, sha256) else [])
                    if from_start
                    else [],
                )
                # The read stops at its next chunk once the copy has failed (a part's upload,
                # or the upload's beginning).
                split = _Parts(chunks, part_size, self.part_buffers, check=parts.check)
                both_failed = False
                try:
                    for part in split:
                        parts.submit(part)
                    sent = split.size
                    if offset + sent != total:
                        raise StorageError(
                            f"source of s3://{self.bucket}/{key} ended after "
                            f"{offset + sent} of {total} bytes; the upload stays open "
                            "and the next run resumes it"
                        )
                    if split.rest or not parts.count:
                        parts.submit(split.rest)
                    if read is not None:
                        read()
                except Exception as error:
                    # The source may fail while the upload is being begun, and the beginning
                    # fail too (wrong store credentials): the store's error is the item's, and
                    # the source's is named beside it, not lost.
                    not_begun = parts.begin_failure()  # waits for the beginning
                    if not_begun is not None and not_begun is not error:
                        both_failed = True
                        log.warning(
                            "upload could not begin; its source failed too",
                            extra={
                                "key": key,
                                "error": failure_text(not_begun),
                                "source_error": failure_text(error),
                            },
                        )
                        raise StorageError(
                            f"S3 multipart copy to s3://{self.bucket}/{key} failed: the upload "
                            f"could not begin: {failure_text(not_begun)}; its source failed "
                            f"too: {failure_text(error)}"
                        ) from not_begun
                    raise
                finally:
                    # Whatever happened, let the parts in flight land: a resumed copy reuses them
                    # (their error, the same beginning's, is not raised over the one naming both).
                    if both_failed:
                        parts.wait()
                    else:
                        done = parts.finish()
                upload_id = parts.upload_id()  # begun (or its error raised)
            finally:
                # Closed on every path, read or not (a size refused, an upload not begun):
                # an answer left open keeps its pooled connection until the pool runs dry.
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            if (
                declared is not None
                and expected is not None
                and declared.digest() != expected.digest
            ):
                self._abort(key, upload_id)
                raise ChecksumMismatch(
                    f"s3://{self.bucket}/{key}: {expected.algorithm} of the copied bytes is "
                    f"{declared.hexdigest()}, the source declares {expected.digest.hex()}"
                )
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
            self.client.delete_object(Bucket=self.bucket, Key=record_key(key))
            if from_start:
                return CopyResult(key, total, sha256.digest(), 0, sent)
            size, digests = self.verify(key, expected, total)
            return CopyResult(key, size, digests["sha256"], offset, sent)

    def _begin(
        self,
        key: str,
        metadata: dict[str, str],
        content_type: str | None,
        validator: str | None,
    ) -> str:
        """Create a new upload of `key` and write its record (what it starts from: `metadata`,
        the source's `validator`); its id."""
        extra: dict[str, str] = {"ContentType": content_type} if content_type else {}
        if self.records_part_checksums(key):
            extra["ChecksumAlgorithm"] = PART_CHECKSUM
        upload_id = str(
            self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, Metadata=metadata, **extra
            )["UploadId"]
        )
        record = {"upload": upload_id, "metadata": metadata, "validator": validator}
        self.put(record_key(key), json.dumps(record).encode(), "application/json")
        return upload_id

    def _refuse_above(self, key: str, size: int, limit: int, how: str) -> None:
        """AssetTooLarge when the source `how` ("declares", "announces") `size` > `limit`."""
        if size > limit:
            raise AssetTooLarge(
                f"s3://{self.bucket}/{key}: the source {how} {size} bytes "
                f"({size / 1024**3:.1f} GiB), above the largest copy taken, {limit} bytes "
                f"({limit / 1024**3:g} GiB); not copied"
            )

    def _same_content(
        self,
        key: str,
        upload_id: str,
        source: RangeSource,
        metadata: dict[str, str],
        expected: Digest | None,
    ) -> bool:
        """Whether the unfinished upload `upload_id` may be resumed from `source`: its record
        names it and `metadata`, and the source serves only the content it recorded (or the
        declared digest `expected` will verify the whole object once completed)."""
        try:
            record = json.loads(self.get(record_key(key)) or b"null")
        except ValueError:
            record = None
        if not (
            isinstance(record, dict)
            and record.get("upload") == upload_id
            and record.get("metadata") == metadata
        ):
            return False  # begun for another content (or before uploads had a record)
        validator = record.get("validator")
        resume_if = getattr(source, "resume_if", None)  # a source not a RangeSource: as before
        return (
            resume_if is None
            or resume_if(validator if isinstance(validator, str) else None)
            or expected is not None
        )

    def _abort(self, key: str, upload_id: str) -> None:
        """Abort an unfinished upload and remove its record."""
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        self.client.delete_object(Bucket=self.bucket, Key=record_key(key))

    def _resume_point(
        self, key: str, part_size: int
    ) -> tuple[str | None, str, list[dict[str, Any]], int]:
        """An unfinished upload's id, the checksum its next parts carry, its reusable parts and
        their size; (None, PART_CHECKSUM, [], size) if none.

        Reusable: the longest run of parts 1, 2, 3... of one size. Later parts, left by
        uploads that ran in parallel when the copy died, are overwritten or left out. Parts
        go on carrying PART_CHECKSUM on an upload the store says it was created with, or on a
        store that records none (records_part_checksums); an upload begun without it on a
        store that records it goes on with Content-MD5, which such an upload accepts.
        """
        pending = self._pending_upload(key)
        if pending is None:
            return None, PART_CHECKSUM, [], part_size
        upload_id, algorithm, parts = pending
        prefix: list[dict[str, Any]] = []
        field = f"Checksum{PART_CHECKSUM}"
        for part in parts:
            if part["PartNumber"] != len(prefix) + 1 or part["Size"] != parts[0]["Size"]:
                break
            kept = {"PartNumber": part["PartNumber"], "ETag": part["ETag"]}
            if part.get(field):  # completing an upload with checksums names every part's
                kept[field] = part[field]
            prefix.append(kept)
        # AWS S3 lists each part's checksum, which its completion must repeat; moto lists
        # none and does not ask for them.
        recorded = self.records_part_checksums(key)
        checksum = PART_CHECKSUM if algorithm == PART_CHECKSUM or not recorded else "MD5"
        return upload_id, checksum, prefix, (parts[0]["Size"] if prefix else part_size)

    def verify(
        self, key: str, expected: Digest | None, expected_size: int | None
    ) -> tuple[int, dict[str, bytes]]:
        """Read an object back and check size and declared digest; delete it when wrong."""
        algorithms = ["sha256"] + ([expected.algorithm] if expected else [])
        size, digests = self.digest(key, sorted(set(algorithms)))
        problem = None
        if expected_size is not None and size != expected_size:
            problem = f"has {size} bytes, expected {expected_size}"
        elif expected is not None and digests[expected.algorithm] != expected.digest:
            problem = (
                f"{expected.algorithm} is {digests[expected.algorithm].hex()}, the "
                f"source declares {expected.digest.hex()}"
            )
        if problem:
            self.delete(key)
            raise ChecksumMismatch(
                f"s3://{self.bucket}/{key} {problem}; deleted, the next run copies it again"
            )
        return size, digests


def _part_size(size: int, part_size: int) -> int:
    """The part size of a `size`-byte copy: `part_size`, grown so the copy takes at most
    MAX_PARTS parts (S3's limit); never above MAX_OBJECT / MAX_PARTS (525 MiB), since a copy
    above MAX_OBJECT is refused first."""
    return max(part_size, -(-min(size, MAX_OBJECT) // MAX_PARTS))


def parts_in_flight(part_size: int) -> int:
    """How many parts of `part_size` bytes upload at once within COPY_MEMORY_BUDGET (at least
    one, at most UPLOAD_THREADS in one copy)."""
    return max(1, min(UPLOAD_THREADS, COPY_MEMORY_BUDGET // part_size))


class MemoryBudget:
    """Bytes that parts in flight may hold together; `take` waits until there is room.

    A part larger than the whole budget is let through alone, so nothing waits forever."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0  # the most held at once (the tests read it)
        self._room = threading.Condition()

    def take(self, size: int) -> None:
        """Hold `size` bytes, waiting while they do not fit."""
        with self._room:
            self._room.wait_for(lambda: self.used == 0 or self.used + size <= self.limit)
            self.used += size
            self.peak = max(self.peak, self.used)

    def give(self, size: int) -> None:
        """Give back bytes that `take` held."""
        with self._room:
            self.used -= size
            self._room.notify_all()


class PartBuffers:
    """Part buffers used again from one part to the next: a copy reads each part into a free
    one of its size, and the uploader gives it back once the part is hashed and uploaded. Free
    buffers are kept while they hold at most `keep` bytes together (so with parts larger than
    that, none is kept), and no more are made than are in use at once."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.made = 0  # buffers allocated so far (the tests read it)
        self._free: list[bytearray] = []
        self._lock = threading.Lock()

    def get(self, size: int) -> bytearray:
        """A buffer of `size` bytes (its old contents are overwritten by the caller)."""
        with self._lock:
            for index, buffer in enumerate(self._free):
                if len(buffer) == size:
                    return self._free.pop(index)
            self.made += 1
        return bytearray(size)

    def give(self, buffer: bytearray) -> None:
        """Take back a buffer nobody reads or writes any more."""
        with self._lock:
            if sum(map(len, self._free)) + len(buffer) <= self.keep:
                self._free.append(buffer)


class _Parts:
    """The source's bytes in whole parts of `part_size` bytes, each a buffer from `buffers`
    that the consumer owns once it is yielded (and gives back when it is sent): read straight
    into the buffer where the chunks have `readinto`, else each chunk copied into it.

    The bytes after the last whole part are left in `rest`, and `size` counts every byte read,
    so a source that ends short is refused before its last part is sent. The chunks are
    closed (where they can be) when the parts end, whether read to the end or not."""

    def __init__(
        self,
        chunks: Iterable[bytes],
        part_size: int,
        buffers: PartBuffers,
        check: Callable[[], None] | None = None,
    ) -> None:
        self._chunks = chunks
        self._check = check or (lambda: None)  # raises to stop the read before its next chunk
        self._part_size = part_size
        self._buffers = buffers
        self._target = memoryview(b"")  # the rest of the part being filled (`readinto`)
        self.rest = b""
        self.size = 0

    def __iter__(self) -> Iterator[bytearray]:
        first = self._buffers.get(self._part_size)
        buffer: bytearray | None = first
        held = 0
        self._target = memoryview(first)
        try:
            for piece in self._pieces():
                while True:
                    assert buffer is not None
                    if isinstance(piece, int):  # read into the buffer already, at `held`
                        held, piece = held + piece, memoryview(b"")
                    else:
                        take = min(len(piece), self._part_size - held)
                        buffer[held : held + take] = piece[:take]
                        held, piece = held + take, piece[take:]
                    if held == self._part_size:
                        full, buffer = buffer, None  # the consumer's now
                        yield full
                        # Only once the part is accepted (its budget held): one buffer a copy
                        # outside the budget, whether being filled or waiting to be sent.
                        buffer, held = self._buffers.get(self._part_size), 0
                        self._target = memoryview(buffer)
                    else:
                        self._target = memoryview(buffer)[held:]
                    if not len(piece):
                        break
            assert buffer is not None
            self.rest = bytes(memoryview(buffer)[:held])
        finally:
            self._target = memoryview(b"")
            if buffer is not None:
                self._buffers.give(buffer)
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()

    def _pieces(self) -> Iterator[memoryview | int]:
        """The source's chunks, or (chunks with `readinto`) how many bytes each read put into
        `_target`, the rest of the part being filled; `size` counts them."""
        fill = getattr(self._chunks, "readinto", None)
        if fill is None:
            for chunk in self._chunks:
                self.size += len(chunk)
                yield memoryview(chunk)
                self._check()
            return
        self._check()
        while count := fill(self._target):
            self.size += count
            yield count
            self._check()


class _PartBody(io.RawIOBase):
    """A part's buffer as the file botocore sends (and hashes to sign) block by block, as it
    does a bytes body through a BytesIO, without first copying the buffer."""

    def __init__(self, data: bytes | bytearray) -> None:
        super().__init__()
        self._view = memoryview(data).toreadonly()
        self._position = 0

    def __len__(self) -> int:
        return len(self._view)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else self._position + size
        block = bytes(self._view[self._position : end])
        self._position += len(block)
        return block

    def readinto(self, target: Any) -> int:
        block = self.read(len(target))
        target[: len(block)] = block
        return len(block)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, base[whence] + offset)
        return self._position

    def tell(self) -> int:
        return self._position


class _PartUploader:
    """Uploads parts on UPLOAD_THREADS threads while the next one is read from the source, and
    feeds each part, in order, to `hashers` on a thread of their own (hashlib lets go of the
    GIL, so reading, hashing and sending overlap).

    A part holds its bytes of `budget` from its submit until it is both hashed and uploaded,
    then its buffer goes back to `buffers`; submit waits while they do not fit, so besides the
    budget a copy holds at most the part being read. Each part carries one checksum, computed on
    its upload thread: its CRC32, or its Content-MD5 for an upload begun without one. A failed
    upload stops the copy before the read's next chunk instead of after the whole source is read.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        upload_id: str | Callable[[], str],
        done: list[dict[str, Any]],
        *,
        checksum: str,
        listed: bool,
        budget: MemoryBudget,
        buffers: PartBuffers,
        hashers: list[Any],
    ) -> None:
        self._client = client
        self._target = {"Bucket": bucket, "Key": key}
        self._done = list(done)
        self._checksum = checksum
        self._listed = listed  # the completion names each part's checksum
        self.count = len(done)
        self._hashers = hashers
        self._budget = budget
        self._buffers = buffers
        self._pool = ThreadPoolExecutor(
            max_workers=UPLOAD_THREADS, thread_name_prefix="part-upload"
        )
        self._digest = ThreadPoolExecutor(max_workers=1, thread_name_prefix="part-digest")
        # A new upload is begun on an upload thread, first in its queue, while the first part
        # is read; each part's upload waits for its id (a failure to begin fails every part).
        # A failure to begin fails the copy at once (`check`, `submit`), and the parts after
        # the first wait for the beginning before they take budget: while it is pending, one
        # part is read ahead, not the budget shared with the other copies.
        self._futures: list[Future[dict[str, Any]]] = []
        self._hashed: list[Future[None]] = []
        self._failed: BaseException | None = None
        self._upload_id: Future[str]
        if callable(upload_id):
            self._upload_id = self._pool.submit(upload_id)
            self._upload_id.add_done_callback(self._note)
        else:
            self._upload_id = Future()
            self._upload_id.set_result(upload_id)

    def _note(self, future: Future[Any]) -> None:
        """Note the first failure of an upload (or of the upload's beginning)."""
        if future.exception() is not None and self._failed is None:
            self._failed = future.exception()

    def check(self) -> None:
        """Raise the error that failed the copy, if one has."""
        if self._failed is not None:
            raise self._failed

    def submit(self, data: bytes | bytearray) -> None:
        """Queue the next part (a bytearray from `buffers` is given back once it is sent);
        waits while the budget has no room for it, and (after the first part) for the upload to
        be begun: its error if it was not (the part's buffer then given back to `buffers`)."""
        try:
            self.check()
            if self.count > len(self._done):
                self.upload_id()
        except BaseException:
            if isinstance(data, bytearray):
                self._buffers.give(data)
            raise
        size = max(len(data), 1)
        self._budget.take(size)
        self.count += 1
        pending = [2 if self._hashers else 1]
        lock = threading.Lock()

        def release(future: Future[Any]) -> None:
            self._note(future)
            with lock:
                pending[0] -= 1
                if pending[0] == 0:
                    self._budget.give(size)
                    if isinstance(data, bytearray):
                        self._buffers.give(data)

        try:
            upload = self._pool.submit(self._upload, self.count, data)
            if self._hashers:
                hashed = self._digest.submit(self._hash, data)
                self._hashed.append(hashed)
                hashed.add_done_callback(release)
        except BaseException:
            self._budget.give(size)
            raise
        self._futures.append(upload)
        upload.add_done_callback(release)

    def _hash(self, data: bytes | bytearray) -> None:
        for hasher in self._hashers:
            hasher.update(data)

    def upload_id(self) -> str:
        """The upload's id, once it is begun; the error that kept it from beginning."""
        return self._upload_id.result()

    def begin_failure(self) -> BaseException | None:
        """The error that kept the upload from beginning, once it has ended; None if it began."""
        return self._upload_id.exception()

    def wait(self) -> None:
        """Wait for the beginning and every part to end, whatever their outcome."""
        self._pool.shutdown(wait=True)
        self._digest.shutdown(wait=True)

    def _upload(self, number: int, data: bytes | bytearray) -> dict[str, Any]:
        if self._checksum == PART_CHECKSUM:
            crc = _crc32(data)
            target = {**self._target, "UploadId": self.upload_id()}
            answer = self._client.upload_part(
                PartNumber=number, Body=_PartBody(data), ChecksumCRC32=crc, **target
            )
            part = {"PartNumber": number, "ETag": answer["ETag"]}
            return {**part, "ChecksumCRC32": crc} if self._listed else part
        target = {**self._target, "UploadId": self.upload_id()}
        answer = self._client.upload_part(
            PartNumber=number, Body=_PartBody(data), ContentMD5=_md5(data), **target
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def finish(self) -> list[dict[str, Any]]:
        """Wait for every part (and the upload's beginning); all parts in order, or the first
        upload error. The hashers have seen every part when it returns."""
        self._pool.shutdown(wait=True)
        self._digest.shutdown(wait=True)
        for hashed in self._hashed:
            hashed.result()
        return self._done + [future.result() for future in self._futures]
