"""Arrow request bodies carry NWP forecasts: the `forecast` column (list<double>, on each
request's first row) is read as JSON's `forecast`, a model with NWP input answers it to the last
bit as in process, and the same refusals as JSON, located as the Arrow path locates them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
import torch
from fastapi.testclient import TestClient
from fedeploy_inference import nwp
from fedeploy_inference.api_schema import PredictionRequest
from fedeploy_inference.arrow_api import (
    ARROW_STREAM,
    REQUEST_SCHEMA,
    REQUEST_SCHEMA_NWP,
    ArrowRejected,
    parse_request,
    table_from_requests,
    to_stream,
)
from fedeploy_inference.nwp import collect
from fedeploy_inference.predictor import RequestArrays, forecast_arrays
from fedeploy_inference.registry import load_model, publish
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.server import create_app
from fedeploy_inference.synthetic_nwp import ErrorModel, products
from fedeploy_inference.training import TrainConfig, train

from tests.samples import DATA, request_for

ORIGIN = datetime(2026, 2, 20, 12, tzinfo=UTC)
ARROW = {"content-type": ARROW_STREAM, "accept": ARROW_STREAM}
ERRORS = ErrorModel(run_every_hours=12, steps=(0, 6, 12, 18, 24), grid_degrees=0.5)


@pytest.fixture(scope="module")
def read(small_data):
    return collect(products(small_data.series, ERRORS), nwp.places(small_data.series))


@pytest.fixture(scope="module")
def nwp_trained(small_data, read):
    config = TrainConfig(epochs=3, patience=2, hidden=32, nwp_input=True)
    result = train(small_data.series, config, torch.device("cpu"), forecasts=read)
    assert result.spec.nwp
    return result


def _requests(small_data, read):
    """Four requests with the station's NWP as training reads it (NaN as null), one with a
    forecast shorter than the horizon."""
    scene = {"cloud_cover": 40.0, "acquired": (ORIGIN - timedelta(hours=5)).isoformat()}
    out = []
    for station, origin, extra in (
        ("syn-000", ORIGIN, None),
        ("syn-001", ORIGIN + timedelta(hours=3), scene),
        ("syn-000", ORIGIN + timedelta(hours=7), None),
        ("syn-002", ORIGIN - timedelta(hours=30), None),
    ):
        body = request_for(small_data.series, station, origin, extra)
        us = np.array([int(origin.timestamp() * 1e6)])
        lead = read.stations[station].at(us, 6)[0]
        body["forecast"] = [None if np.isnan(v) else float(v) for v in lead]
        out.append(body)
    out[2]["forecast"] = out[2]["forecast"][:4]
    out[3]["forecast"][1] = None
    return out


def _served(settings, result):
    publish(s3_client(settings), settings.bucket, settings.model_name, result, DATA)
    client = TestClient(create_app(settings))
    client.__enter__()
    for _ in range(300):
        if client.get("/readyz").status_code == 200:
            break
        time.sleep(0.05)
    return client


def test_arrow_forecasts_of_an_nwp_model_equal_json_and_in_process_to_the_bit(
    settings, small_data, read, nwp_trained
):
    requests = _requests(small_data, read)
    table = table_from_requests(requests)
    assert table.schema.equals(REQUEST_SCHEMA_NWP)
    first = [0, *np.cumsum([len(r["observations"]) for r in requests])[:-1].tolist()]
    column = table.column("forecast").to_pylist()
    assert [column[i] for i in first] == [r["forecast"] for r in requests]
    assert sum(v is not None for v in column) == len(requests)  # null on the other rows
    http = _served(settings, nwp_trained)
    try:
        answer = http.post("/v1/predict/batch", content=to_stream(table), headers=ARROW)
        assert answer.status_code == 200, answer.text
        got = pa.ipc.open_stream(answer.content).read_all()
        as_json = http.post("/v1/predict/batch", json={"requests": requests})
        assert as_json.status_code == 200, as_json.text
        answers = as_json.json()["predictions"]
        for name in ("air_temperature", "precipitation"):
            assert got.column(name).to_pylist() == [f[name] for a in answers for f in a["forecast"]]
        parsed = [PredictionRequest.model_validate(r) for r in requests]
        version = got.schema.metadata[b"model_version"].decode()
        model = load_model(
            s3_client(settings), settings.bucket, settings.model_name, version, torch.device("cpu")
        )
        forecast, _ = forecast_arrays(
            model, RequestArrays.from_requests(parsed), settings.observed_history_hours
        )
        in_process = forecast.astype(np.float64).reshape(-1, 2)
        served = np.stack(
            [
                got.column(n).to_numpy(zero_copy_only=False)
                for n in ("air_temperature", "precipitation")
            ],
            axis=1,
        )
        np.testing.assert_array_equal(served, in_process)
        # The forecast matters: another forecast, another answer.
        warmer = [{**r, "forecast": [10.0] * 6} for r in requests]
        other = http.post(
            "/v1/predict/batch", content=to_stream(table_from_requests(warmer)), headers=ARROW
        )
        assert other.status_code == 200
        assert pa.ipc.open_stream(other.content).read_all().column("air_temperature") != (
            got.column("air_temperature")
        )

        # A model with NWP input refuses a request without a forecast, naming the column and
        # the request's first row: the column absent, or null on a request's first row.
        without = table.drop_columns(["forecast"])
        assert without.schema.equals(REQUEST_SCHEMA)
        _refused(http, without, ["body", "forecast", 0], "none given")
        nulled = column.copy()
        nulled[first[2]] = None
        one_without = table.set_column(
            table.schema.get_field_index("forecast"), "forecast", pa.array(nulled, column_type())
        )
        _refused(http, one_without, ["body", "forecast", first[2]], "none given")
        # More leads than the model's horizon (6), as JSON refuses them.
        longer = [*requests[:1], {**requests[1], "forecast": [5.0] * 7}]
        _refused(http, table_from_requests(longer), ["body", "forecast", first[1]], "7 given")
        # A model with NWP input still needs a temperature: that refusal stays on its column.
        dry = [{**requests[0], "observations": [{"time": requests[0]["observations"][0]["time"]}]}]
        _refused(http, table_from_requests(dry), ["body", "air_temperature", 0], "air_temperature")
    finally:
        http.__exit__(None, None, None)


def column_type():
    return pa.list_(pa.float64())


def _refused(http, table, loc, text):
    answer = http.post("/v1/predict/batch", content=to_stream(table), headers=ARROW)
    assert answer.status_code == 422, answer.text
    (detail,) = answer.json()["detail"]
    assert detail["loc"] == loc and text in detail["msg"], detail


def test_a_model_without_nwp_input_refuses_an_arrow_forecast(settings, small_data, read, trained):
    requests = _requests(small_data, read)
    http = _served(settings, trained)
    try:
        # Only the second request gives one: it is the one named.
        given = [{**r, "forecast": None} for r in requests]
        given[1] = requests[1]
        table = table_from_requests(given)
        second = len(requests[0]["observations"])
        _refused(http, table, ["body", "forecast", second], "trained without NWP input")
        # A forecast column that is null throughout is no forecast.
        empty = table.set_column(
            table.schema.get_field_index("forecast"),
            "forecast",
            pa.nulls(table.num_rows, column_type()),
        )
        assert http.post("/v1/predict/batch", content=to_stream(empty), headers=ARROW).is_success
    finally:
        http.__exit__(None, None, None)


def test_forecast_columns_read_as_json_forecasts(small_data, read):
    requests = _requests(small_data, read)
    table = table_from_requests(requests)
    want = RequestArrays.from_requests([PredictionRequest.model_validate(r) for r in requests])
    got = parse_request(to_stream(table), 1024).arrays
    for name in RequestArrays.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
    assert got.nwp is not None and got.nwp.shape == (4, 6)
    np.testing.assert_array_equal(got.nwp_count, [6, 6, 4, 6])
    # Any float list type: float32 lists and fixed-size lists of the same values read alike.
    index = table.schema.get_field_index("forecast")
    as32 = table.set_column(
        index, "forecast", table.column("forecast").cast(pa.list_(pa.float32()))
    )
    assert parse_request(to_stream(as32), 1024).arrays.nwp.shape == (4, 6)
    without = table.drop_columns(["forecast"])
    plain = parse_request(to_stream(without), 1024).arrays
    assert plain.nwp is None and plain.nwp_count is None


@pytest.mark.parametrize(
    "forecasts,kind",
    [
        ([[1, 2], [3]], pa.list_(pa.int64())),
        ([None, None], pa.null()),
        ([[None, None], None], pa.list_(pa.null())),
    ],
    ids=["integers", "null column", "list of nulls"],
)
def test_integer_and_null_forecast_columns_read_as_json_takes_them(small_data, forecasts, kind):
    """As pyarrow infers them from JSON-shaped values (from_pylist, pa.array): integer lists
    are widened, a column or lists of nulls only are no forecast or no leads."""
    requests = [
        {**request_for(small_data.series, station, ORIGIN), "forecast": forecast}
        for station, forecast in zip(("syn-000", "syn-001"), forecasts, strict=True)
    ]
    table = table_from_requests([{**r, "forecast": None} for r in requests])
    rows = [None] * table.num_rows
    rows[0], rows[len(requests[0]["observations"])] = forecasts
    column = pa.array(rows)
    assert column.type == kind
    got = parse_request(to_stream(table.append_column("forecast", column)), 1024).arrays
    want = RequestArrays.from_requests([PredictionRequest.model_validate(r) for r in requests])
    for name in RequestArrays.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))


def _forecast_at(row, value):
    def change(table):
        column = table.column("forecast").to_pylist()
        column[row] = value
        index = table.schema.get_field_index("forecast")
        return table.set_column(index, "forecast", pa.array(column, column_type()))

    return change


FIRST_OF_SECOND = 24  # request_for gives 24 observations a request
REFUSALS = [
    ("on a later row", _forecast_at(5, [1.0, 2.0]), 5, "not the first row of its request"),
    ("empty list", _forecast_at(FIRST_OF_SECOND, []), FIRST_OF_SECOND, "gives 0 leads"),
    ("49 leads", _forecast_at(0, [1.0] * 49), 0, "gives 49 leads"),
    (
        "NaN lead",
        _forecast_at(FIRST_OF_SECOND, [1.0, float("nan")]),
        FIRST_OF_SECOND,
        "lead hour 2 is nan",
    ),
    ("infinite lead", _forecast_at(0, [float("inf")]), 0, "lead hour 1 is inf"),
    (
        "too hot",
        _forecast_at(FIRST_OF_SECOND, [None, 1.0, 1000.0]),
        FIRST_OF_SECOND,
        "lead hour 3 is 1000",
    ),
    (
        "strings",
        lambda t: t.set_column(
            t.schema.get_field_index("forecast"),
            "forecast",
            pa.array([["1"]] + [None] * (t.num_rows - 1), pa.list_(pa.string())),
        ),
        None,
        "a list of float64",
    ),
    (
        "a plain number",
        lambda t: t.set_column(
            t.schema.get_field_index("forecast"), "forecast", pa.array([1.0] * t.num_rows)
        ),
        None,
        "a list of float64",
    ),
]


@pytest.mark.parametrize("case,change,row,text", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_forecast_refusals_name_the_column_and_first_row(small_data, read, case, change, row, text):
    table = change(table_from_requests(_requests(small_data, read)))
    with pytest.raises(ArrowRejected, match=text) as refused:
        parse_request(to_stream(table), 1024)
    assert (refused.value.column, refused.value.row) == ("forecast", row), str(refused.value)
    assert refused.value.loc == ["body", "forecast", *([] if row is None else [row])]


def test_the_request_schema_is_unchanged_for_tables_without_forecasts(small_data):
    plain = [request_for(small_data.series, "syn-000", ORIGIN)]
    assert table_from_requests(plain).schema.equals(REQUEST_SCHEMA)
