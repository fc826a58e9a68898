"""The request schema's field count (MOST_FIELDS, read from its header before any array is built)
is remembered by the schema message's bytes: a batch client sends the same schema at every
call, and walking it field by field in Python cost about 50 us of each batch-64 call."""

import pyarrow as pa
import pytest
from fedeploy_inference import ipc_headers
from fedeploy_inference.arrow_api import ArrowRejected, parse_request
from fedeploy_inference.ipc_headers import MOST_FIELDS, MalformedHeader, declared

from .test_arrow_bounds import _requests, _stream


def test_a_schema_sent_again_is_not_walked_again_and_a_wide_one_is_refused_each_time(
    monkeypatch,
):
    walks = []
    walk = ipc_headers._schema_fields

    def counted(metadata, most):
        walks.append(len(metadata))
        return walk(metadata, most)

    monkeypatch.setattr(ipc_headers, "_schema_fields", counted)
    remembered = getattr(ipc_headers, "_remembered_fields", None)
    if remembered is not None:
        remembered.cache_clear()
    body = _stream(_requests(3, 24))
    first = declared(body, 64)
    assert declared(body, 64) == first and first.rows == 72
    assert len(walks) == 1
    # Another schema is walked on its own, and one past the limit is refused at every call.
    wide = pa.schema([(f"c{n}", pa.null()) for n in range(MOST_FIELDS + 1)])
    refused = _stream(pa.table([pa.nulls(4)] * len(wide), schema=wide))
    for _ in range(2):
        with pytest.raises(MalformedHeader, match=f"more than {MOST_FIELDS} fields"):
            declared(refused, 64)
        with pytest.raises(ArrowRejected, match=f"more than {MOST_FIELDS} fields"):
            parse_request(refused, 1024)
    assert len(walks) == 2
    assert len(parse_request(body, 1024).arrays) == 3
