"""A request body in the plain form (REQUEST_SCHEMA's message, one record batch, the end marker) is
read from its bytes with numpy (issue 35): the same arrays as pyarrow's reading, and any body
that reading would refuse or read otherwise is left to it, refused in the same words."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from fedeploy_inference import arrow_api
from fedeploy_inference.arrow_api import REQUEST_SCHEMA, ArrowRejected, parse_request
from fedeploy_inference.ipc_headers import _field, _offset, _table, _u32, _vector_length

from .test_arrow_bounds import _requests, _stream

_ISSUED = np.datetime64("2026-02-20T12:00:00", "us")
_WHEN = datetime(2026, 2, 20, 12, tzinfo=UTC)
_ID_CHARACTERS = list("ABCabcxyz0189._-")
_FIELDS = ("origins_us", "longitude", "scene_cloud", "scene_acquired_us", "owner", "times_us")


def _random_table(rng: np.random.Generator, count: int, uniform_ids: bool) -> pa.Table:
    """`count` requests of 1-30 rows, REQUEST_SCHEMA: ids of one length or of 1-128, some
    requests with a scene and some without place, values missing at random."""
    hours = rng.integers(1, 31, count)
    n = int(hours.sum())
    ids = [
        f"st{k:05d}" if uniform_ids else "".join(rng.choice(_ID_CHARACTERS, rng.integers(1, 129)))
        for k in range(count)
    ]
    issued = _ISSUED + (rng.integers(0, 500, count) * 3600 * 10**6).astype("timedelta64[us]")
    scene = rng.random(count) < 0.5
    placed = rng.random(count) < 0.8
    station, origin, times, lon, lat, cloud, acquired = [], [], [], [], [], [], []
    for k in range(count):
        for h in range(int(hours[k])):
            station.append(ids[k])
            origin.append(issued[k].item())
            times.append((issued[k] - np.timedelta64(h + 1, "h")).item())
            lon.append(float(rng.uniform(-180, 180)) if placed[k] else None)
            lat.append(float(rng.uniform(-90, 90)) if placed[k] else None)
            cloud.append(float(k % 101) if scene[k] else None)
            acquired.append((issued[k] - np.timedelta64(5, "h")).item() if scene[k] else None)
    columns = {
        "station": pa.array(station),
        "issued_at": pa.array(origin),
        "time": pa.array(times),
        "longitude": pa.array(lon, pa.float64()),
        "latitude": pa.array(lat, pa.float64()),
        "scene_cloud_cover": pa.array(cloud, pa.float64()),
        "scene_acquired": pa.array(acquired, pa.timestamp("us")),
    }
    for name, (low, high) in arrow_api.LIMITS.items():
        values = rng.uniform(low, high, n)
        columns[name] = pa.array(values, mask=rng.random(n) < rng.choice([0.0, 0.3, 1.0]))
    return pa.table(columns).cast(REQUEST_SCHEMA)


def _pyarrows(body: bytes, monkeypatch: pytest.MonkeyPatch):
    """parse_request's outcome with the plain reading turned off: pyarrow reads every body."""
    with monkeypatch.context() as patch:
        patch.setattr(arrow_api, "_plain_request", lambda body: None)
        return _outcome(body)


def _outcome(body: bytes):
    try:
        return parse_request(body, 4096)
    except ArrowRejected as error:
        return (error.loc, str(error))


def _assert_same(got, want) -> None:
    if isinstance(want, tuple):
        assert got == want
        return
    for name in _FIELDS:
        a, b = getattr(got.arrays, name), getattr(want.arrays, name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name
    assert got.arrays.values.tobytes() == want.arrays.values.tobytes()
    assert got.arrays.values.shape == want.arrays.values.shape
    assert got.arrays.nwp is None and want.arrays.nwp is None
    assert got.stations.equals(want.stations) and got.stations.type == want.stations.type
    assert np.array_equal(got.first_rows, want.first_rows)


@pytest.mark.parametrize("uniform_ids", [True, False], ids=["ids of one length", "of many"])
@pytest.mark.parametrize("seed", range(6))
def test_plain_bodies_are_read_as_pyarrow_reads_them(seed, uniform_ids, monkeypatch):
    rng = np.random.default_rng(seed)
    body = _stream(_random_table(rng, int(rng.integers(1, 80)), uniform_ids))
    assert arrow_api._plain_request(body) is not None
    _assert_same(_outcome(body), _pyarrows(body, monkeypatch))


def test_a_plain_body_is_read_without_pyarrows_reader(monkeypatch):
    """The plain form needs neither read_table nor pyarrow's readers (fails where
    parse_request still reads every body with them)."""
    body = _stream(_requests(64, 24))
    want = _outcome(body)

    def refused(*args, **kwargs):
        raise AssertionError("pyarrow's reader was used")

    monkeypatch.setattr(arrow_api, "read_table", refused)
    monkeypatch.setattr(pa.ipc, "open_stream", refused)
    monkeypatch.setattr(pa.ipc, "read_record_batch", refused)
    _assert_same(parse_request(body, 4096, checked=True), want)


def _layout(body: bytes) -> tuple[int, int, int, list[tuple[int, int]]]:
    """The record batch's body start and, in the body's bytes, its metadata's nodes and buffers
    vectors' places, and its buffers' (start, length)."""
    first = 8 + struct.unpack_from("<i", body, 4)[0]
    length = struct.unpack_from("<i", body, first + 4)[0]
    metadata = memoryview(body)[first + 8 : first + 8 + length]
    top = _table(metadata, _u32(metadata, 0))
    batch = _table(metadata, _offset(metadata, _field(metadata, top, 2)))
    nodes, _ = _vector_length(metadata, _field(metadata, batch, 1))
    buffers, count = _vector_length(metadata, _field(metadata, batch, 2))
    start = first + 8 + length
    places = [struct.unpack_from("<qq", metadata, buffers + 16 * k) for k in range(count)]
    return start, first + 8 + nodes, first + 8 + buffers, [(start + a, b) for a, b in places]


def _patched(body: bytes, at: int, data: bytes) -> bytes:
    out = bytearray(body)
    out[at : at + len(data)] = data
    return bytes(out)


def _column(table: pa.Table, name: str, values) -> pa.Table:
    k = table.schema.get_field_index(name)
    return table.set_column(k, table.schema.field(k), pa.array(values, table.schema.field(k).type))


def _cases() -> dict[str, bytes]:
    table = _requests(4, 6)
    n = table.num_rows
    body = _stream(table)
    start, nodes, buffers, places = _layout(body)
    offsets_at, data_at = places[1][0], places[2][0]
    cases = {
        "a NaN sent": _stream(_column(table, "air_temperature", [1.0] * 7 + [np.nan] * 17)),
        "an infinity sent": _stream(_column(table, "wind_speed", [1.0] * 3 + [np.inf] * 21)),
        "a latitude out of range": _stream(_column(table, "latitude", [50.0] * 5 + [91.0] * 19)),
        "a null station": _stream(_column(table, "station", ["s0"] * 5 + [None] + ["s1"] * 18)),
        "a null issued_at": _stream(
            _column(table, "issued_at", [_WHEN] * 8 + [None] + [_WHEN] * 15)
        ),
        "a null time": _stream(_column(table, "time", [_WHEN - timedelta(hours=1)] * 23 + [None])),
        "a station not an id": _stream(_column(table, "station", ["s0"] * 6 + ["s é"] * 18)),
        "a space in a later request's id": _stream(
            _column(table, "station", ["s0"] * 6 + ["s 1"] * 6 + ["s2"] * 12)
        ),
        "a control byte in an id": _stream(_column(table, "station", ["s\x01"] * 24)),
        "an id too long": _stream(_column(table, "station", ["s" * 129] * 24)),
        "an empty id": _stream(_column(table, "station", [""] * 24)),
        "a scene half given": _stream(_column(table, "scene_cloud_cover", [None] * 23 + [5.0])),
        "a longitude differing in a request": _stream(
            _column(table, "longitude", [10.0] * 3 + [11.0] * 21)
        ),
        "issued_at not a whole hour": _stream(
            _column(table, "issued_at", [_WHEN + timedelta(seconds=1)] * 24)
        ),
        "several batches": _stream(table, chunk=10),
        "no batch": _stream(table.slice(0, 0)),
        "schema metadata": _stream(table.replace_schema_metadata({"client": "x"})),
        "no end marker": body[:-8],
        "bytes after the end marker": body + b"\0" * 8,
        "a station byte not UTF-8": _patched(body, data_at + 1, b"\xff"),
        "station offsets decreasing": _patched(body, offsets_at + 8, struct.pack("<i", 0)),
        "station offsets past the data": _patched(
            body, offsets_at + 4 * n, struct.pack("<i", places[2][1] + 8)
        ),
        "a first station offset below 0": _patched(body, offsets_at, struct.pack("<i", -1)),
        # scene_cloud_cover (field 5) is all null: its node says 23 nulls, its bitmap 24.
        "a null count its bitmap does not give": _patched(
            body, nodes + 16 * 5 + 8, struct.pack("<q", n - 1)
        ),
        # longitude (field 3, no nulls) said to have one: no bitmap sent.
        "a null count without a bitmap": _patched(body, nodes + 16 * 3 + 8, struct.pack("<q", 1)),
        "a node's length not the batch's": _patched(body, nodes + 16 * 4, struct.pack("<q", n - 1)),
        "a buffer past the body": _patched(body, buffers + 16 * 8 + 8, struct.pack("<q", 10**6)),
        "a buffer off 8 bytes": _patched(
            body, buffers + 16 * 8, struct.pack("<q", places[8][0] - start + 4)
        ),
        "a truncated body": body[: len(body) - 40],
        # scene_cloud_cover (all null) and scene_acquired: values buffers shorter than the rows.
        "an all-null column's values too short": _patched(
            body, buffers + 16 * 12 + 8, struct.pack("<q", 8 * n - 8)
        ),
        "an all-null time column's values too short": _patched(
            body, buffers + 16 * 14 + 8, struct.pack("<q", 8 * n - 8)
        ),
    }
    # An all-null column's bitmap with a bit set: the node's null count is not the bitmap's.
    cloud = places[11][0]
    cases["an all-null column's bitmap with a row valid"] = _patched(body, cloud, b"\x04")
    return cases


@pytest.mark.parametrize("case", list(_cases()))
def test_other_bodies_read_and_refused_as_pyarrow_does(case, monkeypatch):
    """Each body outside the plain form, or that the plain reading finds anything wrong in, is
    read by pyarrow: the same arrays or the same refusal (its location and words)."""
    body = _cases()[case]
    _assert_same(_outcome(body), _pyarrows(body, monkeypatch))


def test_a_body_with_a_refused_value_is_left_to_pyarrow():
    """A value the checks refuse is not read here (None): pyarrow's reading names its column
    and row."""
    cases = _cases()
    for case in ("a NaN sent", "a null station", "a station byte not UTF-8", "no end marker"):
        assert arrow_api._plain_request(cases[case]) is None, case
    assert arrow_api._plain_request(_stream(_requests(4, 6))) is not None
