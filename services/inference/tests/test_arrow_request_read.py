"""A request stream of REQUEST_SCHEMA(_NWP) is read message by message with its schema remembered
by the schema message's bytes (no stream reader and no schema parsed per call, issue 35): the
same table as pyarrow's stream reader reads, and every other stream is left to that reader."""

from __future__ import annotations

import struct

import pyarrow as pa
import pytest
from fedeploy_inference import arrow_api, ipc_headers
from fedeploy_inference.arrow_api import (
    REQUEST_SCHEMA,
    REQUEST_SCHEMA_NWP,
    ArrowRejected,
    parse_request,
    read_table,
)

from .test_arrow_bounds import _requests, _stream


def _streams() -> dict[str, bytes]:
    table = _requests(3, 24)
    nwp = table.append_column(
        "forecast",
        pa.array([[1.0, 2.0] if k % 24 == 0 else None for k in range(72)], pa.list_(pa.float64())),
    )
    return {
        "one batch": _stream(table),
        "several batches": _stream(table, chunk=10),
        "no batch": _stream(table.slice(0, 0)),
        "forecast column": _stream(nwp),
        "schema metadata": _stream(table.replace_schema_metadata({"client": "x"})),
    }


def _stream_reader(body: bytes) -> pa.Table:
    with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
        return reader.read_all()


def _validated(table: pa.Table) -> pa.Table:
    table.validate(full=True)
    return table


def _outcome(read) -> pa.Table | str:
    """What `read()` returns, or the words it raises with."""
    try:
        return read()
    except (pa.ArrowException, OSError, ArrowRejected) as error:
        return str(error)


def _same(read: pa.Table, want: pa.Table) -> None:
    assert read.schema.equals(want.schema, check_metadata=True)
    assert [c.num_chunks for c in read.columns] == [c.num_chunks for c in want.columns]
    assert read.equals(want)
    for got, sent in zip(read.to_batches(), want.to_batches(), strict=True):
        assert got.equals(sent)


def test_request_streams_read_as_the_stream_reader_reads_them_without_it(monkeypatch):
    """Each request stream gives the stream reader's table (schema and its metadata, chunks,
    values); then, with the stream reader gone, they are still read, and each schema message is
    parsed once (a second schema is parsed on its own, not taken for the first)."""
    streams = _streams()
    want = {name: _stream_reader(body) for name, body in streams.items()}
    arrow_api._request_schema.cache_clear()
    for name, body in streams.items():
        _same(read_table(body), want[name])

    def gone(*args, **kwargs):
        raise AssertionError("the stream reader was opened")

    parsed = []
    parse = pa.ipc.read_schema

    def counted(message):
        parsed.append(message)
        return parse(message)

    monkeypatch.setattr(pa.ipc, "open_stream", gone)
    monkeypatch.setattr(pa.ipc, "read_schema", counted)
    for _ in range(2):
        for name, body in streams.items():
            _same(read_table(body), want[name])
    assert parsed == []  # the five streams' three schema messages were remembered
    assert read_table(streams["forecast column"]).schema.equals(REQUEST_SCHEMA_NWP)
    assert read_table(streams["one batch"]).schema.equals(REQUEST_SCHEMA)
    assert arrow_api._request_schema.cache_info().currsize == 3


def test_other_streams_are_read_by_the_stream_reader_and_the_schemas_kept_are_bounded(
    monkeypatch,
):
    """Dictionary batches, another schema, a schema message past 16 KiB and a big-endian schema
    go to the stream reader, with the same outcome (it swaps a big-endian stream's buffers,
    which reading its batches with the native schema would not); at most 8 schemas are
    remembered."""
    table = _requests(2, 24)
    dictionary = table.set_column(0, "station", table.column("station").dictionary_encode())
    other = table.drop_columns(["scene_cloud_cover", "scene_acquired"])
    bulky = table.replace_schema_metadata({"pad": "x" * 20_000})
    streams = {
        "dictionary": _stream(dictionary),
        "another schema": _stream(other),
        "bulky schema": _stream(bulky),
        "big-endian": _big_endian(_stream(table)),
    }
    opened = []
    reader = pa.ipc.open_stream

    def counted(source):
        opened.append(source)
        return reader(source)

    arrow_api._request_schema.cache_clear()
    for name, body in streams.items():
        want = _outcome(lambda body=body: _validated(_stream_reader(body)))
        monkeypatch.setattr(pa.ipc, "open_stream", counted)
        got = _outcome(lambda body=body: read_table(body))
        monkeypatch.setattr(pa.ipc, "open_stream", reader)
        assert len(opened) == 1, name
        opened.clear()
        if isinstance(want, str):
            assert isinstance(got, str) and want in got, name
        else:
            assert isinstance(got, pa.Table), name
            _same(got, want)
    # The big-endian stream's swapped string offsets are refused; read without the swap, it
    # would have been taken as sent.
    assert "binary offsets" in _outcome(lambda: read_table(streams["big-endian"]))
    for k in range(12):  # request schemas that differ only in their metadata
        read_table(_stream(table.replace_schema_metadata({"k": str(k)})))
    assert arrow_api._request_schema.cache_info().currsize == 8


def test_a_broken_request_stream_is_refused_with_the_stream_readers_words():
    """A request stream broken after its schema (a truncated batch, a message of another kind
    than a batch, a batch of other columns) is refused as the stream reader words it."""
    body = _stream(_requests(2, 24))
    other = _stream(pa.table({"x": [1.0]}))
    schema_end = 8 + struct.unpack_from("<i", body, 4)[0]
    broken = {
        "truncated": body[:-40],
        "a second schema": body[:schema_end] + body,
        "another table's batch": body[:schema_end]
        + other[8 + struct.unpack_from("<i", other, 4)[0] :],
    }
    for name, crafted in broken.items():
        with pytest.raises((pa.ArrowException, OSError)) as raised:
            _stream_reader(crafted)
        with pytest.raises(ArrowRejected) as refused:
            read_table(crafted)
        assert str(raised.value) in str(refused.value), name
        with pytest.raises(ArrowRejected):
            parse_request(crafted, 1024)


def _big_endian(body: bytes) -> bytes:
    """The stream with its schema message declaring Schema.endianness = Big, its batches'
    buffers as sent: 8 bytes added to the schema message's metadata hold the value, which the
    absent (Little) endianness slot of the Schema table's vtable is pointed at."""
    size = struct.unpack_from("<i", body, 4)[0]
    metadata = bytearray(body[8 : 8 + size]) + struct.pack("<h6x", 1)
    view = memoryview(metadata)
    message = ipc_headers._table(view, ipc_headers._u32(view, 0))
    header = ipc_headers._field(view, message, 2)
    assert header is not None
    schema = ipc_headers._table(view, ipc_headers._offset(view, header))
    assert schema[2] >= 6 and ipc_headers._field(view, schema, 0) is None
    struct.pack_into("<H", metadata, schema[1] + 4, size - schema[0])
    return body[:4] + struct.pack("<i", size + 8) + bytes(metadata) + body[8 + size :]
