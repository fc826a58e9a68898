"""Arrow request limits read from the message headers that the first bounds missed (review
arrow28): delta dictionaries (pyarrow rebuilds the dictionary at each delta and every batch
keeps its version, so memory grows with the square of the body: 2.7 MB took 2.2 GB), schemas
of thousands of fields (each an array to build and check: 2 MB of null columns held a health
check 3.3 s), and the message limit on the inline path where INFER_MAX_BATCH is small."""

import asyncio
import io

import pyarrow as pa
import pytest
from fedeploy_inference.arrow_api import ARROW_STREAM, ArrowRejected, check_stream, parse_request
from fedeploy_inference.ipc_headers import MOST_FIELDS, MalformedHeader, declared
from fedeploy_inference.server import INLINE_MESSAGES, create_app
from fedeploy_inference.settings import InferenceSettings

from .test_arrow_bounds import _call, _requests, _scope, _stream

SETTINGS = InferenceSettings(bucket="unused", device="cpu")
END = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _deltas(batches: int, size: int) -> bytes:
    """`batches` one-row record batches of a dictionary station, each after a delta adding a
    `size`-character id (pyarrow's emit_dictionary_deltas)."""
    kind = pa.dictionary(pa.int32(), pa.string())
    schema = pa.schema([("station", kind)])
    sink = io.BytesIO()
    options = pa.ipc.IpcWriteOptions(emit_dictionary_deltas=True)
    with pa.ipc.new_stream(sink, schema, options=options) as writer:
        for count in (1, 2):
            ids = pa.DictionaryArray.from_arrays(
                pa.array([0], pa.int32()), pa.array(["x" * size] * count)
            )
            writer.write_batch(pa.record_batch([ids], schema=schema))
    messages = [
        m.serialize().to_pybytes() for m in pa.ipc.MessageReader.open_stream(sink.getvalue())
    ]
    first, dictionary, batch, delta, again = messages
    return first + dictionary + batch + (delta + again) * (batches - 1) + END


def test_a_delta_dictionary_is_refused_from_its_header_before_any_dictionary_is_built():
    body = _deltas(200, 2500)  # 0.5 MB that pyarrow would build into about 50 MB
    with pytest.raises(MalformedHeader, match="delta dictionary batch"):
        declared(body, 10_000)
    before = pa.total_allocated_bytes()
    with pytest.raises(ArrowRejected, match="emit_dictionary_deltas=False"):
        parse_request(body, 1024)
    assert pa.total_allocated_bytes() - before < 2**20
    answer = asyncio.run(_call(create_app(SETTINGS, client=object()), _scope(ARROW_STREAM), [body]))
    assert answer["status"] == 422 and b"delta dictionary" in answer["body"]
    # A dictionary sent once, as pyarrow writes it by default, is still read.
    plain = pa.table({"station": pa.array(["a", "b", "a"]).dictionary_encode()})
    assert declared(_stream(plain), 10).rows == 3


def test_a_schema_of_more_fields_than_a_request_has_is_refused_from_its_header():
    wide = pa.schema([(f"c{n}", pa.null()) for n in range(MOST_FIELDS + 1)])
    body = _stream(pa.table([pa.nulls(4)] * len(wide), schema=wide))
    with pytest.raises(ArrowRejected, match=f"more than {MOST_FIELDS} fields"):
        parse_request(body, 1024)
    # Children count: one list column nesting a struct of MOST_FIELDS fields.
    inner = pa.struct([(f"f{n}", pa.null()) for n in range(MOST_FIELDS)])
    nested = pa.table({"x": pa.array([[{}]], pa.list_(inner))})
    with pytest.raises(ArrowRejected, match="fields \\(children included\\)"):
        parse_request(_stream(nested), 1024)
    # A real request's schema (its columns and a list's item) is well inside the limit.
    assert len(parse_request(_stream(_requests(2, 24)), 1024).arrays) == 2


def test_the_inline_walk_enforces_the_message_limit_where_it_is_below_the_walk():
    """INFER_MAX_BATCH 2: at most 8 messages, fewer than the inline walk's 64: a stream of 20
    is refused there too, not passed on unchecked."""
    assert INLINE_MESSAGES > 4 * 2
    many = _stream(pa.table({"x": pa.nulls(19)}), chunk=1)  # schema + 19 batches
    with pytest.raises(ArrowRejected, match="more than 8 IPC messages"):
        check_stream(many, 2, stop_after=INLINE_MESSAGES)
    few = _stream(pa.table({"x": pa.nulls(3)}), chunk=1)
    assert check_stream(few, 2, stop_after=INLINE_MESSAGES).rows == 3
    # Past the walk with a large INFER_MAX_BATCH: nothing checked yet (the thread checks all).
    longer = _stream(pa.table({"x": pa.nulls(INLINE_MESSAGES + 5)}), chunk=1)
    assert check_stream(longer, 1024, stop_after=INLINE_MESSAGES) is None
