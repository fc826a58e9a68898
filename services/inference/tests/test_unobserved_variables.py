"""A variable a station has not reported is never forecast: the HTTP API, batch runs (the code
the SLURM batch job runs) and the STAC item answer it as absent, with a reason; training neither
learns nor scores it, and the model card lists per station what is forecast."""

import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from fedeploy_inference import batch as batch_module
from fedeploy_inference.batch import Area, forecast_variables, run_batch
from fedeploy_inference.catalog import forecast_item
from fedeploy_inference.cli import main
from fedeploy_inference.contract import VARIABLES
from fedeploy_inference.features import (
    PRECIPITATION,
    FeatureSpec,
    absent_reason,
    build_samples,
    observed_targets,
)
from fedeploy_inference.hourly import StationSeries
from fedeploy_inference.registry import publish
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.server import create_app

from tests.samples import DATA

REASON = "no observations of precipitation at this station"
DRY = "syn-001"  # the station whose precipitation is removed below


def test_the_reason_is_the_documented_one():
    assert absent_reason("precipitation") == REASON


def _observations(st: StationSeries, origin: datetime, hours: int, drop_rain_after: int = 0):
    """The station's observations of the `hours` before origin; precipitation only in the first
    `drop_rain_after` of them."""
    first = st.hour_index(origin) - hours
    rows = []
    for k, i in enumerate(range(first, first + hours)):
        row = {"time": (st.start + timedelta(hours=i)).isoformat()}
        for j, name in enumerate(VARIABLES):
            if name == "precipitation" and k >= drop_rain_after:
                continue
            if not np.isnan(st.values[i, j]):
                row[name] = float(st.values[i, j])
        rows.append(row)
    return rows


def _request(st, origin, hours, drop_rain_after=0):
    return {
        "station": st.station,
        "issued_at": origin.isoformat(),
        "longitude": st.longitude,
        "latitude": st.latitude,
        "observations": _observations(st, origin, hours, drop_rain_after),
    }


def _ready_client(settings, trained):
    publish(s3_client(settings), settings.bucket, settings.model_name, trained, DATA)
    client = TestClient(create_app(settings))
    return client


def _wait_ready(client):
    import time

    for _ in range(300):
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("the server never became ready")


def test_api_answers_null_with_a_reason_for_unreported_precipitation(settings, trained, small_data):
    st = small_data.series["syn-000"]
    origin = st.start + timedelta(days=50)
    with _ready_client(settings, trained) as client:
        _wait_ready(client)
        full = client.post("/v1/predict", json=_request(st, origin, 24, drop_rain_after=24))
        dry = client.post("/v1/predict", json=_request(st, origin, 24, drop_rain_after=0))
    assert full.status_code == 200 and dry.status_code == 200, dry.text
    for lead in full.json()["forecast"]:
        assert isinstance(lead["precipitation"], float) and lead["reason"] == {}
    for got, ref in zip(dry.json()["forecast"], full.json()["forecast"], strict=True):
        assert got["precipitation"] is None
        assert got["reason"] == {"precipitation": REASON}
        assert isinstance(got["air_temperature"], float) and ref["air_temperature"] is not None


def test_api_history_setting_decides_how_far_back_a_report_counts(settings, trained, small_data):
    """Rain reported 40-48 h before the origin only: within a 48 h history it is forecast, within
    the default 24 h it is not."""
    st = small_data.series["syn-000"]
    origin = st.start + timedelta(days=50)
    body = _request(st, origin, 48, drop_rain_after=8)
    with _ready_client(settings, trained) as client:
        _wait_ready(client)
        short = client.post("/v1/predict", json=body).json()
    longer = settings.model_copy(update={"observed_history_hours": 48})
    with TestClient(create_app(longer)) as client:
        _wait_ready(client)
        long = client.post("/v1/predict", json=body).json()
    assert all(f["precipitation"] is None for f in short["forecast"])
    assert all(isinstance(f["precipitation"], float) for f in long["forecast"])
    assert all(f["reason"] == {} for f in long["forecast"])


def _without_rain(windows, station):
    """The windows with the station's precipitation column emptied (a station without a gauge)."""
    out = []
    for key, table in windows:
        if pc.any(pc.equal(table["station"], station)).as_py():
            index = table.schema.get_field_index("precipitation")
            table = table.set_column(
                index, table.schema.field(index), pa.nulls(table.num_rows, pa.float64())
            )
        out.append((key, table))
    return out


def _read(client, bucket, key):
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


@pytest.fixture
def dry_bucket(settings, trained, small_data):
    """Windows where syn-001 never reports precipitation, and the trained model published."""
    from fedeploy_inference.window_store import write_windows

    client = s3_client(settings)
    write_windows(client, settings.bucket, _without_rain(small_data.windows, DRY))
    publish(client, settings.bucket, settings.model_name, trained, DATA)
    return client


def _check_run_table(table):
    dry = table.filter(pc.equal(table["station"], DRY))
    wet = table.filter(pc.equal(table["station"], "syn-000"))
    assert dry.num_rows > 0 and wet.num_rows > 0
    assert dry["precipitation"].null_count == dry.num_rows, "never a number where unreported"
    assert set(dry["precipitation_reason"].to_pylist()) == {REASON}
    assert dry["air_temperature"].null_count == 0
    assert wet["precipitation"].null_count == 0
    assert set(wet["precipitation_reason"].to_pylist()) == {None}


def test_batch_run_writes_null_and_reason_and_the_item_says_so(settings, dry_bucket, monkeypatch):
    registered = []
    monkeypatch.setattr(batch_module, "register_item", lambda url, item: registered.append(item))
    settings = settings.model_copy(update={"catalog_url": "http://catalog.invalid"})
    start, end = datetime(2026, 2, 22, tzinfo=UTC), datetime(2026, 2, 23, tzinfo=UTC)
    outcome = run_batch(settings, Area(4.0, 40.0, 11.0, 55.0), start, end)
    _check_run_table(_read(dry_bucket, settings.bucket, outcome.key))
    (item,) = registered
    variables = item["properties"]["fedeploy:variables"]
    assert variables[DRY] == {"forecast": ["air_temperature"], "absent": {"precipitation": REASON}}
    assert variables["syn-000"] == {
        "forecast": ["air_temperature", "precipitation"],
        "absent": {},
    }


def test_slurm_batch_job_command_never_forecasts_unreported_precipitation(
    settings, dry_bucket, monkeypatch, capsys
):
    """The SLURM batch job runs `python -m fedeploy_inference batch ...` (slurm_jobs): the same
    entry point, run here in-process."""
    monkeypatch.setenv("INFER_BUCKET", settings.bucket)
    monkeypatch.setenv("INFER_S3_ENDPOINT_URL", settings.s3_endpoint_url)
    monkeypatch.setenv("INFER_DEVICE", "cpu")
    args = ["batch", "--bbox", "4,40,11,55"]
    args += ["--start", "2026-02-22T00:00:00Z", "--end", "2026-02-22T12:00:00Z"]
    assert main(args) == 0
    outcome = json.loads(capsys.readouterr().out)
    _check_run_table(_read(dry_bucket, settings.bucket, outcome["key"]))


def test_forecast_item_carries_the_variables_per_station():
    table = pa.table(
        {
            "station": ["a", "a", "b"],
            "air_temperature": [1.0, 2.0, 3.0],
            "precipitation": [None, 0.5, None],
        }
    )
    variables = forecast_variables(table)
    assert variables["a"]["forecast"] == ["air_temperature", "precipitation"]
    assert variables["b"]["absent"] == {"precipitation": REASON}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    item = forecast_item("c", "i", (0, 0, 1, 1), now, now, "s3://b/k", "m", "v", now, variables)
    assert item["properties"]["fedeploy:variables"] == variables


def test_observed_targets_looks_at_the_whole_history():
    history = np.full((2, 30, len(VARIABLES)), np.nan)
    history[:, -1, 0] = 5.0
    history[1, 0, PRECIPITATION] = 0.0  # a dry hour is an observation too
    seen = observed_targets(history)
    assert seen.tolist() == [[True, False], [True, True]]


def test_training_neither_learns_nor_scores_unreported_targets(small_data):
    series = dict(small_data.series)
    st = series[DRY]
    values = st.values.copy()
    values[:, PRECIPITATION] = np.nan
    series[DRY] = StationSeries(st.station, st.start, values, st.longitude, st.latitude, None)
    samples = build_samples(FeatureSpec(), series)
    dry = samples.station == DRY
    assert dry.any() and not samples.target_known[dry][:, :, 1].any()
    assert samples.target_known[~dry][:, :, 1].any()


def test_model_card_lists_the_variables_forecast_per_station(settings, trained):
    from dataclasses import replace

    result = replace(
        trained,
        station_targets={"syn-000": ["air_temperature", "precipitation"], DRY: ["air_temperature"]},
    )
    client = s3_client(settings)
    version = publish(client, settings.bucket, settings.model_name, result, DATA)
    card = (
        client.get_object(
            Bucket=settings.bucket, Key=f"models/{settings.model_name}/{version}/model-card.md"
        )["Body"]
        .read()
        .decode()
    )
    assert f"| {DRY} | `air_temperature` | `precipitation` |" in card
    assert "| syn-000 | `air_temperature`, `precipitation` | none |" in card


def test_trained_model_lists_every_station_with_its_reported_targets(trained):
    assert trained.station_targets == {
        name: ["air_temperature", "precipitation"] for name in ("syn-000", "syn-001", "syn-002")
    }
