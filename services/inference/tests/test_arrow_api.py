"""Arrow IPC bodies of /v1/predict/batch: the same forecasts as JSON and the in-process model to
the last bit, and the refusals (column and first offending row) as a table."""

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
import torch
from fastapi.testclient import TestClient
from fedeploy_inference.api_schema import PredictionRequest
from fedeploy_inference.arrow_api import (
    _CACHED_ROWS,
    ARROW_STREAM,
    MAX_BODY_BYTES,
    RESPONSE_SCHEMA,
    ArrowBatch,
    ArrowRejected,
    _cached_layout,
    answer_stream,
    parse_request,
    response_batch,
    table_from_requests,
    to_stream,
)
from fedeploy_inference.predictor import RequestArrays, forecast_arrays
from fedeploy_inference.registry import load_model, publish
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.server import create_app

from tests.samples import DATA, request_for

ORIGIN = datetime(2026, 2, 20, 12, tzinfo=UTC)
ARROW = {"content-type": ARROW_STREAM}


def _requests(small_data):
    scene = {"cloud_cover": 40.0, "acquired": (ORIGIN - timedelta(hours=5)).isoformat()}
    return [
        request_for(small_data.series, "syn-000", ORIGIN),
        request_for(small_data.series, "syn-001", ORIGIN + timedelta(hours=3), scene),
        request_for(small_data.series, "syn-000", ORIGIN + timedelta(hours=7)),
        request_for(small_data.series, "syn-002", ORIGIN - timedelta(hours=30)),
    ]


@pytest.fixture
def ready(settings, trained):
    publish(s3_client(settings), settings.bucket, settings.model_name, trained, DATA)
    with TestClient(create_app(settings)) as client:
        for _ in range(300):
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        yield client


def test_arrow_forecasts_equal_json_and_the_in_process_model_to_the_bit(
    ready, settings, small_data
):
    requests = _requests(small_data)
    body = to_stream(table_from_requests(requests))
    arrow = ready.post("/v1/predict/batch", content=body, headers=ARROW)
    assert arrow.status_code == 200, arrow.text
    assert arrow.headers["content-type"] == ARROW_STREAM
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert table.schema.remove_metadata() == RESPONSE_SCHEMA
    as_json = ready.post("/v1/predict/batch", json={"requests": requests})
    assert as_json.status_code == 200
    answers = as_json.json()["predictions"]
    horizon = len(answers[0]["forecast"])
    assert table.num_rows == len(requests) * horizon
    for name in ("air_temperature", "precipitation"):
        want = [f[name] for a in answers for f in a["forecast"]]
        got = table.column(name).to_pylist()
        assert got == want  # float64 equality, nulls alike
        reasons = [f["reason"].get(name) for a in answers for f in a["forecast"]]
        assert table.column(f"{name}_reason").to_pylist() == reasons
    assert table.column("station").to_pylist() == [
        a["station"] for a in answers for _ in range(horizon)
    ]
    assert table.column("lead_hours").to_pylist() == [
        f["lead_hours"] for a in answers for f in a["forecast"]
    ]
    assert table.column("time").to_pylist() == [
        datetime.fromisoformat(f["time"]) for a in answers for f in a["forecast"]
    ]
    meta = table.schema.metadata
    assert meta[b"model_name"].decode() == settings.model_name
    loaded = load_model(
        s3_client(settings),
        settings.bucket,
        settings.model_name,
        meta[b"model_version"].decode(),
        torch.device("cpu"),
    )
    arrays = RequestArrays.from_requests([PredictionRequest.model_validate(r) for r in requests])
    forecast, _ = forecast_arrays(loaded, arrays, settings.observed_history_hours)
    expected = forecast.astype(np.float64).reshape(-1, 2)
    got = np.stack(
        [
            table.column(n).to_numpy(zero_copy_only=False)
            for n in ("air_temperature", "precipitation")
        ],
        axis=1,
    ).astype(np.float64)
    np.testing.assert_array_equal(got, expected)  # NaN where withheld, equal elsewhere
    # A JSON request asking for Arrow gets the same table.
    negotiated = ready.post(
        "/v1/predict/batch", json={"requests": requests}, headers={"accept": ARROW_STREAM}
    )
    assert negotiated.headers["content-type"] == ARROW_STREAM
    assert pa.ipc.open_stream(negotiated.content).read_all().equals(table)


def test_several_record_batches_and_dictionary_station_ids_read_as_one_table(small_data):
    requests = _requests(small_data)
    table = table_from_requests(requests)
    plain = parse_request(to_stream(table), 1024)
    dictionary = table.set_column(0, "station", table.column("station").dictionary_encode())
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, dictionary.schema) as writer:
        for piece in dictionary.to_batches(max_chunksize=7):
            writer.write_batch(piece)
    parsed = parse_request(sink.getvalue().to_pybytes(), 1024)
    assert parsed.stations.equals(plain.stations)
    want = RequestArrays.from_requests([PredictionRequest.model_validate(r) for r in requests])
    for name in RequestArrays.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(parsed.arrays, name), getattr(plain.arrays, name))
        np.testing.assert_array_equal(getattr(plain.arrays, name), getattr(want, name))


def _set(name, row, value, kind=None):
    def change(table):
        column = table.column(name).to_pylist()
        column[row] = value
        index = table.schema.get_field_index(name)
        return table.set_column(
            index, name, pa.array(column, kind or table.schema.field(name).type)
        )

    return change


def _drop(name):
    return lambda table: table.drop_columns([name])


def _retype(name, kind):
    def change(table):
        index = table.schema.get_field_index(name)
        return table.set_column(index, name, table.column(name).cast(kind))

    return change


def _add(name, values):
    return lambda table: table.append_column(name, pa.array(values(table.num_rows)))


REFUSALS = [
    ("missing station", _drop("station"), "station", None),
    ("missing time", _drop("time"), "time", None),
    ("extra column", _add("height", lambda n: [1.0] * n), "height", None),
    ("float32 values", _retype("air_pressure", pa.float32()), "air_pressure", None),
    ("string time", _retype("time", pa.string()), "time", None),
    ("naive time", _retype("time", pa.timestamp("us")), "time", None),
    ("NaN value", _set("air_temperature", 5, float("nan")), "air_temperature", 5),
    ("infinite value", _set("wind_speed", 9, float("inf")), "wind_speed", 9),
    ("value out of range", _set("relative_humidity", 30, 101.0), "relative_humidity", 30),
    ("latitude out of range", _set("latitude", 0, 91.0), "latitude", 0),
    ("longitude NaN", _set("longitude", 2, float("nan")), "longitude", 2),
    ("longitude differs within a request", _set("longitude", 3, 1.5), "longitude", 3),
    ("null station", _set("station", 4, None), "station", 4),
    ("bad station id", _set("station", 6, "a b"), "station", 6),
    ("null time", _set("time", 8, None), "time", 8),
    ("time not before issued_at", _set("time", 26, ORIGIN + timedelta(hours=30)), "time", 26),
    (
        "issued_at not a whole hour",
        _set("issued_at", 0, ORIGIN + timedelta(minutes=5)),
        "issued_at",
        0,
    ),
    ("cloud cover without acquisition", _set("scene_cloud_cover", 0, 10.0), "scene_acquired", 0),
]


@pytest.mark.parametrize("case,change,column,row", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_name_the_column_and_first_row(small_data, case, change, column, row):
    table = change(table_from_requests(_requests(small_data)))
    with pytest.raises(ArrowRejected) as refused:
        parse_request(to_stream(table), 1024)
    assert (refused.value.column, refused.value.row) == (column, row), str(refused.value)


def test_integer_station_ids_and_too_many_requests_or_rows_are_refused(small_data):
    table = table_from_requests(_requests(small_data))
    ints = table.set_column(0, "station", pa.array(range(table.num_rows)))
    with pytest.raises(ArrowRejected, match="station is int64"):
        parse_request(to_stream(ints), 1024)
    with pytest.raises(ArrowRejected, match="4 requests given") as refused:
        parse_request(to_stream(table), 3)
    assert refused.value.loc == ["body", "station", 72]
    one = table_from_requests([request_for(small_data.series, "syn-000", ORIGIN)])
    long = pa.concat_tables([one] * 417)  # 10,008 rows of one station and issued_at
    with pytest.raises(ArrowRejected, match="at most 10000") as refused:
        parse_request(to_stream(long), 1024)
    assert refused.value.loc == ["body", "time", 10_000]
    with pytest.raises(ArrowRejected, match="no rows"):
        parse_request(to_stream(table.slice(0, 0)), 1024)


def test_http_refusals_in_fastapis_shape(ready, small_data):
    body = to_stream(table_from_requests(_requests(small_data)))
    cases = [
        (b'{"requests": []}', ["body"]),
        (body[: len(body) // 2], ["body"]),  # truncated stream
        (
            to_stream(table_from_requests(_requests(small_data)).drop_columns(["issued_at"])),
            ["body", "issued_at"],
        ),
    ]
    for content, loc in cases:
        response = ready.post("/v1/predict/batch", content=content, headers=ARROW)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail[0]["loc"] == loc and detail[0]["type"] == "value_error"
    refused = ready.post(
        "/v1/predict/batch", content=body, headers={**ARROW, "accept": "application/json"}
    )
    assert refused.status_code == 406
    big = ready.post(
        "/v1/predict/batch",
        content=body,
        headers={**ARROW, "content-length": str(MAX_BODY_BYTES + 1)},
    )
    assert big.status_code in (413, 400)  # refused before reading (or by the client stack)
    # No recent temperature: the request's first row, under air_temperature.
    requests = _requests(small_data)
    for obs in requests[1]["observations"]:
        obs.pop("air_temperature", None)
    response = ready.post(
        "/v1/predict/batch", content=to_stream(table_from_requests(requests)), headers=ARROW
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "air_temperature", 24]


def test_the_openapi_document_names_the_arrow_media_type(settings):
    with TestClient(create_app(settings)) as client:
        operation = client.get("/openapi.json").json()["paths"]["/v1/predict/batch"]["post"]
    assert ARROW_STREAM in operation["requestBody"]["content"]
    assert "application/json" in operation["requestBody"]["content"]
    assert ARROW_STREAM in operation["responses"]["200"]["content"]
    assert "application/json" in operation["responses"]["200"]["content"]


def test_the_answer_stream_is_the_stream_writers_bytes(small_data):
    """The answer is written as the schema's message, the batch's and the end marker: the same
    bytes as pyarrow's stream writer makes of the table, readable as one."""
    batch = parse_request(to_stream(table_from_requests(_requests(small_data))), 1024)
    forecast = np.arange(len(batch.arrays) * 24 * 2, dtype=np.float32).reshape(-1, 24, 2)
    forecast[1, :, 1] = np.nan
    observed = np.ones((len(batch.arrays), 2), dtype=bool)
    observed[1, 1] = False
    model = ("station-forecast", "v1")
    answer = answer_stream(batch, forecast, observed, model)
    table = pa.Table.from_batches([response_batch(batch, forecast, observed, model)])
    assert answer == to_stream(table)
    read = pa.ipc.open_stream(answer).read_all()
    assert read.equals(table) and read.schema.metadata[b"model_version"] == b"v1"
    assert read.column("precipitation").null_count == 24


def test_an_answers_shape_columns_are_made_once_per_shape(small_data):
    """The columns that depend only on the answer's shape (lead_hours; the rows' requests the
    stations are taken by) are made once per shape, and each shape's are its own."""
    requests = _requests(small_data)
    model = ("station-forecast", "v1")

    def answer(count: int, horizon: int) -> tuple[pa.RecordBatch, ArrowBatch]:
        batch = parse_request(to_stream(table_from_requests(requests[:count])), 1024)
        forecast = np.zeros((count, horizon, 2), dtype=np.float32)
        return response_batch(batch, forecast, np.ones((count, 2), bool), model), batch

    first, _ = answer(4, 24)
    again, _ = answer(4, 24)
    lead = first.column("lead_hours").buffers()[1]
    assert again.column("lead_hours").buffers()[1].address == lead.address
    for count, horizon in ((2, 6), (4, 24), (3, 1)):
        table, batch = answer(count, horizon)
        assert table.column("lead_hours").to_pylist() == list(range(1, horizon + 1)) * count
        stations = [r["station"] for r in requests[:count]]
        assert table.column("station").to_pylist() == [s for s in stations for _ in range(horizon)]
        origins = batch.arrays.origins_us.repeat(horizon)
        leads = np.tile(np.arange(horizon) * 3_600_000_000, count)
        assert (
            table.column("time").cast(pa.int64()).to_numpy().tolist() == (origins + leads).tolist()
        )
        assert table.column("air_temperature_reason").null_count == count * horizon
    # An answer past the cached size is made as it comes (the cache holds at most 8 small shapes).
    cached = _cached_layout.cache_info().currsize
    table, _ = answer(4, _CACHED_ROWS // 4 + 1)
    assert table.column("lead_hours")[-1].as_py() == _CACHED_ROWS // 4 + 1
    assert _cached_layout.cache_info().currsize == cached


def test_per_request_values_equal_as_numbers_are_one_value(small_data):
    """0.0 and -0.0 differ in bits but are one longitude: the request is accepted."""
    table = table_from_requests(_requests(small_data)[:1])
    longitude = pa.array([0.0] + [-0.0] * (table.num_rows - 1))
    table = table.set_column(table.schema.get_field_index("longitude"), "longitude", longitude)
    parsed = parse_request(to_stream(table), 1024)
    assert parsed.arrays.longitude.tolist() == [0.0]
