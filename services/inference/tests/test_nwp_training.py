"""A training run with ingested NWP (issue 36, done when): GRIB2 products in the site's bucket
where the ingestion service puts them, read at the stations, fed to the model, and its card
reporting the NWP baseline (raw and lapse-rate corrected) beside persistence and climatology,
and the model with and without the forecast input; without products, the card says so."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import timedelta

import pyarrow as pa
import pytest
import torch
from fastapi.testclient import TestClient
from fedeploy_inference.api_schema import PredictionRequest
from fedeploy_inference.batch import Area, run_batch
from fedeploy_inference.evaluation import NWP_FORECASTS
from fedeploy_inference.hourly import to_hourly
from fedeploy_inference.model_watcher import ModelWatcher
from fedeploy_inference.predictor import RequestRejected, predict_requests
from fedeploy_inference.registry import load_manifest, resolve_version
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.server import create_app
from fedeploy_inference.service_metrics import ServiceMetrics
from fedeploy_inference.synthetic import SyntheticSpec, generate
from fedeploy_inference.synthetic_nwp import ErrorModel, products
from fedeploy_inference.train_from_store import record_dataset, train_and_publish
from fedeploy_inference.training import TrainConfig
from fedeploy_inference.window_store import write_windows
from pydantic import ValidationError

from tests.samples import request_for

# Small and fast: 2 stations, 30 days, a run every 12 h with 6-hourly steps on a 0.5-degree grid.
DATA = SyntheticSpec(stations=2, days=30)
# Steps to 24 h: published 8 h after it (the default), a run serves origins up to 20 h after it.
ERRORS = ErrorModel(run_every_hours=12, steps=(0, 6, 12, 18, 24), grid_degrees=0.5)
FAST = TrainConfig(epochs=4, patience=2, hidden=32)
COLLECTION = "sentinel/ecmwf-ifs-oper-fc"


def _card(client, settings, version: str) -> str:
    key = f"models/{settings.model_name}/{version}/model-card.md"
    return client.get_object(Bucket=settings.bucket, Key=key)["Body"].read().decode()


@pytest.fixture(scope="module")
def windows():
    return list(generate(DATA))


def test_training_with_ingested_forecasts_reports_the_nwp_baseline(settings, windows):
    client = s3_client(settings)
    write_windows(client, settings.bucket, windows)
    record_dataset(client, settings.bucket, "two synthetic stations", True, nwp={"synthetic": True})
    series = to_hourly(pa.concat_tables([t for _, t in windows]))
    written = 0
    for item, body in products(series, ERRORS):
        client.put_object(Bucket=settings.bucket, Key=f"{COLLECTION}/{item}/data.grib2", Body=body)
        written += 1
    # A corrupt product fails alone; a product without 2t is not read at all.
    bad = "ifs-0p5-oper-fc-2026010100-99h-2t_z"
    client.put_object(Bucket=settings.bucket, Key=f"{COLLECTION}/{bad}/data.grib2", Body=b"GRIB!")
    client.put_object(
        Bucket=settings.bucket,
        Key=f"{COLLECTION}/ifs-0p5-oper-fc-2026010100-0h-msl/data.grib2",
        Body=b"not read",
    )

    outcome = train_and_publish(settings, replace(FAST, nwp_input=True))

    nwp = outcome.metrics["nwp"]
    assert nwp["status"] == "measured"
    assert nwp["source"]["products"] == written and nwp["source"]["synthetic"] is True
    assert list(nwp["source"]["failed_products"]) == [bad]
    assert nwp["source"]["models"] == ["ifs"]
    scores = nwp["scores"]
    assert tuple(scores) == NWP_FORECASTS
    # Every figure of the comparison rests on the same values.
    assert len({s["count"] for s in scores.values()}) == 1 and scores["nwp_raw"]["count"] > 0
    assert nwp["data"]["stations"] == ["syn-000", "syn-001"]
    # The synthetic grid's orography is 300 m off each station: the correction helps.
    assert scores["nwp_lapse_corrected"]["rmse"] < scores["nwp_raw"]["rmse"]

    version = resolve_version(client, settings.bucket, settings.model_name, "latest")
    manifest = load_manifest(client, settings.bucket, settings.model_name, version)
    assert manifest["features"]["nwp"] is True
    rests_on = manifest["figures"]["model-card.md#nwp-at-the-stations"]
    assert rests_on["nwp"]["synthetic"] is True and rests_on["scored"]["values"] > 0
    card = _card(client, settings, version)
    section = card.split("### NWP at the stations")[1].split("###")[0]
    for row in (
        "| NWP, raw (nearest grid point) |",
        "| NWP, lapse-rate corrected |",
        "| persistence |",
        "| climatology |",
        "| model without the NWP input |",
        "| model with the NWP input (this version) |",
    ):
        assert row in section
    assert "**synthetic**" in section and f"{written} product(s) of model(s) ifs" in section
    assert bad in section
    data = json.loads(
        client.get_object(
            Bucket=settings.bucket, Key=f"models/{settings.model_name}/{version}/data.json"
        )["Body"].read()
    )
    assert data["nwp"]["stations"] == ["syn-000", "syn-001"]

    # The server serves it where the request carries the station's forecast (`forecast`, per
    # lead hour) and refuses a request without one, naming the field; batch runs read the
    # bucket's forecasts for it (test_batch_nwp.py).
    watcher = ModelWatcher(
        client, settings.bucket, settings.model_name, "latest", torch.device("cpu"),
        ServiceMetrics(), 60.0,
    )  # fmt: skip
    watcher.check()
    loaded = watcher.current
    assert loaded is not None and loaded.version == version and loaded.spec.nwp
    body = request_for(series, "syn-000", DATA.start + timedelta(days=26))
    with pytest.raises(RequestRejected, match="forecast must give .* none given") as refused:
        predict_requests(loaded, [PredictionRequest(**body)])
    assert refused.value.loc == (0, "forecast")
    cold, warm = (
        predict_requests(loaded, [PredictionRequest(**body, forecast=[t] * 6)])[0]["forecast"]
        for t in (0.0, 10.0)
    )
    # The model corrects the NWP it is given: 10 degC warmer in, about 10 degC warmer out.
    for a, b in zip(cold, warm, strict=True):
        assert 7.0 < b["air_temperature"] - a["air_temperature"] < 13.0
    with pytest.raises(RequestRejected, match="at most 6, null where none; 7 given"):
        predict_requests(loaded, [PredictionRequest(**body, forecast=[1.0] * 7)])
    with pytest.raises(ValidationError, match="forecast.0"):
        PredictionRequest(**body, forecast=[1000.0])
    with TestClient(create_app(settings)) as http:
        deadline = time.monotonic() + 15
        while http.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        refused_http = http.post("/v1/predict", json=body)
        assert refused_http.status_code == 422
        assert refused_http.json()["detail"][0]["loc"] == ["body", "forecast"]
        answered = http.post("/v1/predict", json={**body, "forecast": [5.0] * 6})
        assert answered.status_code == 200 and answered.json()["model"]["version"] == version
    day = DATA.start + timedelta(days=26)
    ran = run_batch(settings, Area(0.0, 40.0, 20.0, 60.0), day, day + timedelta(hours=6))
    assert (ran.stations, ran.nwp_stations) == (2, 2) and ran.rows > 0

    # By default (no --nwp-input) the model with NWP is trained and scored, and the one without
    # is published: the server serves it, and the card says which row is this version.
    outcome = train_and_publish(settings, FAST)
    assert outcome.metrics["nwp"]["status"] == "measured"
    assert outcome.metrics["nwp"]["published"] == "model_without_nwp"
    plain = resolve_version(client, settings.bucket, settings.model_name, "latest")
    assert (
        "nwp" not in load_manifest(client, settings.bucket, settings.model_name, plain)["features"]
    )
    watcher.check()
    assert watcher.current is not None and watcher.current.version == plain
    with pytest.raises(RequestRejected, match="trained without NWP input"):
        predict_requests(watcher.current, [PredictionRequest(**body, forecast=[1.0] * 6)])
    card = _card(client, settings, plain)
    section = card.split("### NWP at the stations")[1].split("###")[0]
    assert "| model without the NWP input (this version) |" in section
    assert "| model with the NWP input |" in section and "not published" in section
    assert "forecasts were ingested: a model with them is evaluated" in card


def test_without_ingested_forecasts_the_card_says_so(settings, windows):
    client = s3_client(settings)
    write_windows(client, settings.bucket, windows)
    outcome = train_and_publish(settings, FAST)
    assert outcome.metrics["nwp"]["status"] == "none ingested"
    version = resolve_version(client, settings.bucket, settings.model_name, "latest")
    assert (
        "nwp"
        not in load_manifest(client, settings.bucket, settings.model_name, version)["features"]
    )
    card = _card(client, settings, version)
    section = card.split("### NWP at the stations")[1].split("###")[0]
    assert "No NWP baseline and no NWP input: no NWP forecast was ingested" in section
    assert "no NWP input (none was ingested where it was trained)" in card
