"""The answer's record batch message is written from the forecast arrays into a template made once
by pyarrow (issue 35): the same bytes as pyarrow's stream writer makes of response_batch's table,
on random and edge answers, and pyarrow's writer wherever the template does not apply."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from fedeploy_inference import arrow_api
from fedeploy_inference.arrow_api import (
    _CACHED_ROWS,
    ArrowBatch,
    answer_stream,
    response_batch,
    to_stream,
)
from fedeploy_inference.predictor import RequestArrays

_HOUR_US = 3_600_000_000
_ID_CHARACTERS = list("ABCabcxyz0189._-")


def _batch(rng: np.random.Generator, b: int, stations: pa.Array | None = None) -> ArrowBatch:
    if stations is None:
        stations = pa.array(
            ["".join(rng.choice(_ID_CHARACTERS, rng.integers(1, 129))) for _ in range(b)]
        )
    arrays = RequestArrays(
        origins_us=rng.integers(0, 2**20, b) * _HOUR_US,
        longitude=np.full(b, np.nan),
        scene_cloud=np.full(b, np.nan),
        scene_acquired_us=np.zeros(b, np.int64),
        owner=np.zeros(0, np.int64),
        times_us=np.zeros(0, np.int64),
        values=np.zeros((0, 5)),
    )
    return ArrowBatch(arrays, stations, None)


def _writers_bytes(batch, forecast, observed, model) -> bytes:
    return to_stream(pa.Table.from_batches([response_batch(batch, forecast, observed, model)]))


def _answer(rng, b, horizon, withheld, unobserved):
    forecast = rng.standard_normal((b, horizon, 2)).astype(np.float32)
    forecast[rng.random(forecast.shape) < withheld] = np.nan
    observed = rng.random((b, 2)) >= unobserved
    return forecast, observed


@pytest.mark.parametrize("b", [1, 2, 3, 7, 8, 9, 64, 513])
@pytest.mark.parametrize("horizon", [1, 6, 24])
def test_the_answer_is_the_stream_writers_bytes_on_random_answers(b, horizon):
    """Rows that fill no byte of a bitmap and rows that do, withheld values (NaN) nowhere, in
    some rows and everywhere, targets observed by every station, some and none."""
    rng = np.random.default_rng(b * 100 + horizon)
    model = ("station-forecast", "v7")
    for withheld in (0.0, 0.1, 1.0):
        for unobserved in (0.0, 0.4, 1.0):
            batch = _batch(rng, b)
            forecast, observed = _answer(rng, b, horizon, withheld, unobserved)
            answer = answer_stream(batch, forecast, observed, model)
            assert answer == _writers_bytes(batch, forecast, observed, model)


def test_edge_values_keep_their_bits():
    """Signed zeros, infinities, the float32 extremes and subnormals, origins at the epoch and
    far from it: written as the writer writes them."""
    rng = np.random.default_rng(5)
    edges = np.array(
        [0.0, -0.0, np.inf, -np.inf, 3.4028235e38, -3.4028235e38, 1e-45, -1e-45, np.nan],
        np.float32,
    )
    b, horizon = 9, 2
    batch = _batch(rng, b)
    batch.arrays.origins_us[:] = np.array([0, 1, -1, 2**62, -(2**62), 5, 6, 7, 8])
    forecast = np.stack([edges, edges[::-1]], axis=1)[:, None, :].repeat(horizon, axis=1)
    observed = np.ones((b, 2), bool)
    model = ("m", "v")
    assert answer_stream(batch, forecast, observed, model) == _writers_bytes(
        batch, forecast, observed, model
    )


def test_the_largest_answers_past_the_cached_layouts_are_the_writers_bytes():
    """An answer of more rows than the layouts remembered (made as it comes) and one of exactly
    that many rows."""
    rng = np.random.default_rng(9)
    model = ("m", "v")
    for b, horizon in ((_CACHED_ROWS // 16, 16), (_CACHED_ROWS // 24 + 1, 24)):
        batch = _batch(rng, b)
        forecast, observed = _answer(rng, b, horizon, 0.05, 0.2)
        answer = answer_stream(batch, forecast, observed, model)
        assert answer == _writers_bytes(batch, forecast, observed, model)


def test_the_answer_is_written_without_pyarrows_writer(monkeypatch):
    """For the answers the template covers, neither response_batch's arrays nor pyarrow's
    serializer are made: the bytes come from the template (fails where answer_stream still
    serializes response_batch)."""
    rng = np.random.default_rng(3)
    batch = _batch(rng, 64)
    forecast, observed = _answer(rng, 64, 6, 0.1, 0.3)
    want = _writers_bytes(batch, forecast, observed, ("m", "v"))

    def refused(*args, **kwargs):
        raise AssertionError("pyarrow's writer was used")

    monkeypatch.setattr(arrow_api, "response_batch", refused)
    assert answer_stream(batch, forecast, observed, ("m", "v")) == want


@pytest.mark.parametrize(
    "stations",
    [
        pa.array(["a", "bb", "ccc", "dddd"], pa.large_string()),
        pa.array(["x", "a", "bb", "ccc", "dddd"]).slice(1),
    ],
    ids=["large strings", "a slice"],
)
def test_stations_the_template_does_not_cover_are_written_by_pyarrow(stations, monkeypatch):
    """Stations that are not a plain string array of its own (large strings, a slice) take
    response_batch and pyarrow's writer: the same bytes either way."""
    rng = np.random.default_rng(4)
    batch = _batch(rng, 4, stations)
    forecast, observed = _answer(rng, 4, 3, 0.2, 0.5)
    model = ("m", "v")
    made = []
    writer = arrow_api.response_batch

    def counted(*args, **kwargs):
        made.append(1)
        return writer(*args, **kwargs)

    monkeypatch.setattr(arrow_api, "response_batch", counted)
    answer = answer_stream(batch, forecast, observed, model)
    assert made
    assert answer == _writers_bytes(batch, forecast, observed, model)


def test_the_template_is_checked_when_made(monkeypatch):
    """A template whose bytes differ from pyarrow's at its making is not used (None): answers
    are then written by pyarrow."""
    arrow_api._batch_template.cache_clear()
    try:
        assert arrow_api._batch_template() is not None
        arrow_api._batch_template.cache_clear()
        monkeypatch.setattr(arrow_api, "_PADDING", [b"\x01" * k for k in range(8)])
        assert arrow_api._batch_template() is None
        rng = np.random.default_rng(6)
        batch = _batch(rng, 5)
        forecast, observed = _answer(rng, 5, 3, 0.3, 0.5)
        assert answer_stream(batch, forecast, observed, ("m", "v")) == _writers_bytes(
            batch, forecast, observed, ("m", "v")
        )
    finally:
        arrow_api._batch_template.cache_clear()
