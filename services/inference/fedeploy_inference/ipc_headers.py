"""What an Arrow IPC stream's message headers declare, read before any body is decoded.

pyarrow decompresses a compressed record batch as it reads it and has no Python attribute for
a message's compression, so the few fields needed are read here from each message's metadata
flatbuffer (format/Message.fbs): Message.header (a RecordBatch or a DictionaryBatch), and the
RecordBatch's `length` (rows) and `compression` (BodyCompression: its `codec`). Walking the
messages costs a few microseconds each; no buffer is copied or decompressed.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import pyarrow as pa

# Message.header's union types (Message.fbs: MessageHeader).
_DICTIONARY_BATCH, _RECORD_BATCH = 2, 3
# BodyCompression.codec (Message.fbs: CompressionType); an absent codec is its default, LZ4_FRAME.
CODECS = ("lz4_frame", "zstd")
# Fields a request schema may declare, children included (its 13 columns and a list's item):
# each costs an array to build and check, whatever the body's size.
MOST_FIELDS = 64


class MalformedHeader(ValueError):
    """A message whose metadata is not a readable flatbuffer of the fields read here."""


@dataclass(frozen=True)
class Declared:
    """What a stream's headers declare: `rows` summed over its record batches, `body_bytes`
    summed over its messages' bodies (as sent), and `compression`, the codec of its first
    compressed record or dictionary batch (None: none is compressed)."""

    rows: int
    body_bytes: int
    compression: str | None


def declared(body: bytes, most: int) -> Declared | None:
    """The declarations of an IPC stream's messages, read without decoding a body; None where
    it has more than `most` messages (the walk stops there). Raises pa.ArrowInvalid (or
    OSError) where the stream's framing is broken, MalformedHeader where a message's metadata
    is, or where a schema declares more than MOST_FIELDS fields or a dictionary batch is a
    delta."""
    rows = size = 0
    compression: str | None = None
    for count, message in enumerate(pa.ipc.MessageReader.open_stream(pa.py_buffer(body))):
        if count == most:
            return None
        if message.body is not None:
            size += message.body.size
        if message.type == "schema":
            metadata = message.metadata
            fields = (
                _remembered_fields(metadata.to_pybytes(), MOST_FIELDS)
                if metadata.size <= REMEMBERED_SCHEMA_BYTES
                else _schema_fields(memoryview(metadata), MOST_FIELDS)
            )
            if fields > MOST_FIELDS:
                raise MalformedHeader(
                    f"a schema of more than {MOST_FIELDS} fields (children included); a "
                    "request table has the columns the docs list"
                )
            continue
        if message.type not in ("record batch", "dictionary"):
            continue
        length, codec = _batch_header(memoryview(message.metadata))
        if message.type == "record batch":
            rows += length
        if compression is None:
            compression = codec
    return Declared(rows, size, compression)


def _batch_header(metadata: memoryview) -> tuple[int, str | None]:
    """A record or dictionary batch message's RecordBatch: its declared length (rows) and its
    compression codec (None: uncompressed)."""
    message = _table(metadata, _u32(metadata, 0))
    kind = _field(metadata, message, 1)
    header = _field(metadata, message, 2)
    if kind is None or header is None:
        raise MalformedHeader("a batch message without a header")
    batch = _table(metadata, _offset(metadata, header))
    kind = _unpack("<B", metadata, kind)
    if kind == _DICTIONARY_BATCH:  # DictionaryBatch.data: its RecordBatch
        data = _field(metadata, batch, 1)
        if data is None:
            raise MalformedHeader("a dictionary batch without data")
        delta = _field(metadata, batch, 2)
        if delta is not None and _unpack("<B", metadata, delta):
            # pyarrow rebuilds the whole dictionary at each delta, every batch keeping its
            # version: memory grows with the square of the body.
            raise MalformedHeader(
                "a delta dictionary batch (isDelta); send each dictionary once (pyarrow: "
                "IpcWriteOptions(emit_dictionary_deltas=False), the default)"
            )
        batch = _table(metadata, _offset(metadata, data))
    elif kind != _RECORD_BATCH:
        raise MalformedHeader(f"a batch message whose header is of type {kind}")
    at = _field(metadata, batch, 0)
    length = 0 if at is None else _unpack("<q", metadata, at)
    if length < 0:
        raise MalformedHeader(f"a batch of {length} rows")
    at = _field(metadata, batch, 3)
    if at is None:
        return length, None
    compression = _table(metadata, _offset(metadata, at))
    at = _field(metadata, compression, 0)
    codec = 0 if at is None else _unpack("<b", metadata, at)
    return length, CODECS[codec] if 0 <= codec < len(CODECS) else f"codec {codec}"


def _table(metadata: memoryview, position: int) -> tuple[int, int, int]:
    """A flatbuffer table at `position`: (position, its vtable's position, its vtable's size)."""
    vtable = position - _unpack("<i", metadata, position)
    return position, vtable, _unpack("<H", metadata, vtable)


def _field(metadata: memoryview, table: tuple[int, int, int], index: int) -> int | None:
    """The position of a table's field number `index`, None where it is absent (its default)."""
    position, vtable, size = table
    if 4 + 2 * index + 2 > size:
        return None
    offset = _unpack("<H", metadata, vtable + 4 + 2 * index)
    return position + offset if offset else None


def _offset(metadata: memoryview, at: int) -> int:
    """The position an offset field at `at` points to (offsets are relative to themselves)."""
    return at + _u32(metadata, at)


def _u32(metadata: memoryview, at: int) -> int:
    return _unpack("<I", metadata, at)


def _unpack(form: str, metadata: memoryview, at: int) -> int:
    """One little-endian integer at `at`, refused where it lies outside the metadata."""
    if not 0 <= at <= len(metadata) - struct.calcsize(form):
        raise MalformedHeader(f"an offset ({at}) past the message's metadata")
    value: int = struct.unpack_from(form, metadata, at)[0]
    return value


def _vector_length(metadata: memoryview, at: int) -> tuple[int, int]:
    start = _offset(metadata, at)
    return start + 4, _u32(metadata, start)


# Schema messages up to this size (a 64-field schema with names of 100 bytes) have their field
# count remembered by their bytes (and a request schema's Schema, arrow_api.read_table).
REMEMBERED_SCHEMA_BYTES = 16 * 2**10


@functools.lru_cache(maxsize=32)
def _remembered_fields(metadata: bytes, most: int) -> int:
    """_schema_fields of a schema message's metadata, remembered by its bytes: a client sends
    the same schema at every call, and the walk is a Python loop over every field (about 57 us
    at the request's 13 columns, 1 us remembered); a malformed one raises each time."""
    return _schema_fields(memoryview(metadata), most)


def _schema_fields(metadata: memoryview, most: int) -> int:
    """How many fields a schema message declares, children included; stops past `most`."""
    message = _table(metadata, _u32(metadata, 0))
    header = _field(metadata, message, 2)
    if header is None:
        raise MalformedHeader("a schema message without a header")
    schema = _table(metadata, _offset(metadata, header))
    at = _field(metadata, schema, 1)
    if at is None:
        return 0
    pending, count = [_vector_length(metadata, at)], 0
    while pending:
        start, length = pending.pop()
        count += length
        if count > most:
            return count
        for k in range(length):
            field = _table(metadata, _offset(metadata, start + 4 * k))
            children = _field(metadata, field, 5)
            if children is not None:
                pending.append(_vector_length(metadata, children))
    return count
