"""Crafted Arrow bodies: offsets the IPC reader lets through are refused with a 422 instead of
crashing the server (review nwp27 finding 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fedeploy_inference.arrow_api import (
    ArrowRejected,
    parse_request,
    table_from_requests,
    to_stream,
)

# Run in a child process: a crash there (SIGSEGV) fails the test instead of ending pytest. The
# app is not started (no lifespan: no model), which is enough: a body is parsed before the
# model is consulted. Each case prints its name, the status and the refusal's detail.
_CRAFTED = r"""
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
from fastapi.testclient import TestClient
from fedeploy_inference.arrow_api import ARROW_STREAM, table_from_requests, to_stream
from fedeploy_inference.server import create_app
from fedeploy_inference.settings import InferenceSettings

ORIGIN = datetime(2026, 2, 20, 12, tzinfo=UTC)


def request(station, forecast):
    observations = [
        {"time": (ORIGIN - timedelta(hours=3 - i)).isoformat(), "air_temperature": 5.0 + i}
        for i in range(3)
    ]
    return {"station": station, "issued_at": ORIGIN.isoformat(), "longitude": 10.0,
            "latitude": 50.0, "observations": observations, "forecast": forecast}


base = table_from_requests([request("a", [1.0]), request("b", [3.0])])  # rows 0-2 and 3-5


def offsets(values):
    return pa.py_buffer(np.array(values, np.int32).tobytes())


def forecast(values):
    first_rows = pa.py_buffer(np.packbits([1, 0, 0, 1, 0, 0], bitorder="little").tobytes())
    column = pa.Array.from_buffers(
        pa.list_(pa.float64()), 6, [first_rows, offsets(values)], children=[pa.array([1.0, 2.0])]
    )
    return base.set_column(base.schema.get_field_index("forecast"), "forecast", column)


def station(values):
    column = pa.Array.from_buffers(pa.string(), 6, [None, offsets(values), pa.py_buffer(b"ab")])
    return base.set_column(0, "station", column)


CASES = {
    "forecast, negative offsets": forecast([0, -1000, -1000, -1000, 1, 1, 1]),
    "forecast, decreasing offsets": forecast([0, 2, 2, 2, 1, 1, 1]),
    "station, negative offset": station([0, 1, 1, 1, -100000, 2, 2]),
}
http = TestClient(create_app(InferenceSettings(bucket="unused", device="cpu"), client=object()))
headers = {"content-type": ARROW_STREAM, "accept": ARROW_STREAM}
for name, table in CASES.items():
    answer = http.post("/v1/predict/batch", content=to_stream(table), headers=headers)
    print(json.dumps([name, answer.status_code, answer.json()]), flush=True)
"""


def test_crafted_offsets_are_refused_as_an_invalid_stream():
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", _CRAFTED],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"rc {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers) == 3, done.stdout
    for name, status, body in answers:
        assert status == 422, (name, status, body)
        (detail,) = body["detail"]
        assert detail["loc"] == ["body"], (name, detail)
        assert "not a complete and valid Arrow IPC stream" in detail["msg"], (name, detail)
        assert "offset" in detail["msg"].lower(), (name, detail)


ORIGIN = datetime(2026, 2, 20, 12, tzinfo=UTC)


def _request(station: str, hours: int) -> dict:
    times = [(ORIGIN - timedelta(hours=hours - i)).isoformat() for i in range(hours)]
    return {
        "station": station,
        "issued_at": ORIGIN.isoformat(),
        "observations": [{"time": time} for time in times],
        "forecast": [1.0],
    }


# Rows a0, a1, b0: each case's list offsets and which rows hold a list, and the refusal.
_HUGE = {
    "first row": (lambda n: [0, n - 1, n - 1, n], [True, False, True], 0, r"gives \d+ leads"),
    "later row": (lambda n: [0, 1, n - 1, n], [True, True, True], 1, "not the first row"),
}


@pytest.mark.parametrize("kind", [np.float64, np.float16], ids=["float64", "float16"])
@pytest.mark.parametrize("where", list(_HUGE))
def test_a_huge_forecast_list_is_refused_before_its_values_are_copied(kind, where):
    """A 100 MB body whose list on one row holds nearly all of it is refused for its length,
    the Arrow memory allocated while parsing a small part of the body (the values were widened
    to float64 and the first rows' lists copied before their lengths were looked at)."""
    offsets, valid, row, refusal = _HUGE[where]
    base = table_from_requests([_request("a", 2), _request("b", 1)])
    n = 100 * 2**20 // np.dtype(kind).itemsize
    lists = pa.ListArray.from_arrays(
        pa.array(offsets(n), pa.int32()),
        pa.array(np.ones(n, kind)),
        mask=pa.array(np.logical_not(valid)),
    )
    body = to_stream(base.set_column(base.schema.get_field_index("forecast"), "forecast", lists))
    del lists
    previous = pa.default_memory_pool()
    counted = pa.proxy_memory_pool(previous)  # its own peak, of what parse_request allocates
    pa.set_memory_pool(counted)
    try:
        with pytest.raises(ArrowRejected, match=refusal) as refused:
            parse_request(body, 1024)
    finally:
        pa.set_memory_pool(previous)
    assert refused.value.loc == ["body", "forecast", row]
    assert counted.max_memory() < len(body) // 100, (counted.max_memory(), len(body))
