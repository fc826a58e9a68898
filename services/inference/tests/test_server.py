"""The server against S3 on loopback: not ready without a model, ready after, picks up a new
version, answers as the model does in memory, and refuses bad requests naming the field."""

import time
from datetime import UTC, datetime

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from fedeploy_inference.registry import publish
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.server import create_app
from fedeploy_inference.training import predict

from tests.samples import DATA, request_for


def _wait_for(client, predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get("/readyz")
        if predicate(response):
            return response
        time.sleep(0.05)
    raise AssertionError(f"/readyz never satisfied the condition; last: {response.json()}")


@pytest.fixture
def served(settings):
    with TestClient(create_app(settings)) as client:
        yield client


def test_not_ready_before_a_model_then_ready_then_follows_a_new_version(settings, trained, served):
    assert served.get("/healthz").status_code == 200
    response = _wait_for(served, lambda r: "no complete version" in r.json().get("reason", ""))
    assert response.status_code == 503
    first = publish(
        s3_client(settings),
        settings.bucket,
        settings.model_name,
        trained,
        DATA,
        now=datetime(2026, 5, 1, tzinfo=UTC),
    )
    ready = _wait_for(served, lambda r: r.status_code == 200)
    assert ready.json()["version"] == first
    second = publish(
        s3_client(settings),
        settings.bucket,
        settings.model_name,
        trained,
        DATA,
        now=datetime(2026, 5, 2, tzinfo=UTC),
    )
    _wait_for(served, lambda r: r.json().get("version") == second)
    metrics = served.get("/metrics").text
    assert (
        f'fedeploy_inference_model_info{{device="cpu",name="{settings.model_name}",version="{second}"}} 1.0'
        in metrics
    )


def test_predictions_before_a_model_are_refused_with_503(served, small_data):
    origin = datetime(2026, 2, 20, 12, tzinfo=UTC)
    response = served.post("/v1/predict", json=request_for(small_data.series, "syn-000", origin))
    assert response.status_code == 503


@pytest.fixture
def ready(settings, trained, served):
    publish(s3_client(settings), settings.bucket, settings.model_name, trained, DATA)
    _wait_for(served, lambda r: r.status_code == 200)
    return served


def test_served_forecast_equals_the_model_in_memory(ready, trained, small_data):
    rows = np.flatnonzero(trained.test.station == "syn-001")[[5, 40, 77]]
    requests = []
    for row in rows:
        origin = datetime.fromtimestamp(trained.test.origin_us[row] / 1e6, tz=UTC)
        requests.append(request_for(small_data.series, "syn-001", origin))
    expected = predict(
        trained.model, trained.test.features[rows], trained.test.anchor[rows], torch.device("cpu")
    )
    single = ready.post("/v1/predict", json=requests[0])
    assert single.status_code == 200, single.text
    got = np.array([[f["air_temperature"], f["precipitation"]] for f in single.json()["forecast"]])
    np.testing.assert_allclose(got, expected[0], atol=1e-4)
    batch = ready.post("/v1/predict/batch", json={"requests": requests})
    assert batch.status_code == 200, batch.text
    answers = batch.json()["predictions"]
    got = np.array(
        [[[f["air_temperature"], f["precipitation"]] for f in a["forecast"]] for a in answers]
    )
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert [a["forecast"][0]["lead_hours"] for a in answers] == [1, 1, 1]
    metrics = ready.get("/metrics").text
    assert 'fedeploy_inference_batch_size_bucket{le="4.0"} 2.0' in metrics
    assert (
        'fedeploy_inference_request_duration_seconds_count{endpoint="predict_batch"} 1.0' in metrics
    )


ORIGIN = datetime(2026, 2, 20, 12, tzinfo=UTC)


def _bad(small_data, change):
    body = request_for(small_data.series, "syn-000", ORIGIN)
    change(body)
    return body


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        (
            lambda b: b["observations"][3].update(air_temperature=75.0),
            ["body", "observations", 3, "air_temperature"],
        ),
        (
            lambda b: b["observations"][0].update(relative_humidity=-1),
            ["body", "observations", 0, "relative_humidity"],
        ),
        (lambda b: b.update(issued_at="2026-02-20T12:30:00+00:00"), ["body", "issued_at"]),
        (lambda b: b.update(issued_at="2026-02-20T12:00:00"), ["body", "issued_at"]),
        (
            lambda b: b["observations"][-1].update(time="2026-02-20T13:00:00Z"),
            ["body", "observations"],
        ),
        (lambda b: b.update(observations=[]), ["body", "observations"]),
        (lambda b: b.update(longitude=200), ["body", "longitude"]),
        (lambda b: b.update(colour="red"), ["body", "colour"]),
        (lambda b: b.pop("station"), ["body", "station"]),
        (
            lambda b: [o.pop("air_temperature", None) for o in b["observations"]],
            ["body", "observations"],
        ),
    ],
)
def test_bad_requests_get_422_naming_the_field(ready, small_data, change, loc):
    response = ready.post("/v1/predict", json=_bad(small_data, change))
    assert response.status_code == 422, response.text
    assert [d["loc"] for d in response.json()["detail"]] == [loc]


def test_bad_request_inside_a_batch_names_its_index(ready, small_data):
    good = request_for(small_data.series, "syn-000", ORIGIN)
    bad = _bad(small_data, lambda b: [o.pop("air_temperature", None) for o in b["observations"]])
    response = ready.post("/v1/predict/batch", json={"requests": [good, bad]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "requests", 1, "observations"]


def test_a_refused_value_is_echoed_only_when_small(ready, small_data):
    """A 422 repeats a small refused scalar (as FastAPI does) but not a refused list of a
    million values: the answer stays small whatever the request's size."""
    small = ready.post("/v1/predict", json=_bad(small_data, lambda b: b.update(longitude=200)))
    assert small.status_code == 422
    assert small.json()["detail"][0]["input"] == 200
    huge = _bad(small_data, lambda b: b.update(observations=[0.5] * 1_000_000))
    response = ready.post("/v1/predict", json=huge)
    assert response.status_code == 422
    assert len(response.content) < 10_000, len(response.content)
    assert all("input" not in d for d in response.json()["detail"]), response.text[:500]


def test_a_batch_over_the_limit_is_refused(settings, trained, small_data):
    limited = settings.model_copy(update={"max_batch": 2})
    publish(s3_client(settings), settings.bucket, settings.model_name, trained, DATA)
    with TestClient(create_app(limited)) as client:
        _wait_for(client, lambda r: r.status_code == 200)
        body = request_for(small_data.series, "syn-000", ORIGIN)
        response = client.post("/v1/predict/batch", json={"requests": [body] * 3})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "requests"]
    assert "at most 2" in response.json()["detail"][0]["msg"]


def test_a_failing_prediction_is_counted_as_an_error(settings, trained, small_data, monkeypatch):
    # The error-ratio alert (charts/inference, InferenceErrorRatio) reads this reason.
    import fedeploy_inference.server as server

    def broken(*_args, **_kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(server, "predict_requests", broken)
    publish(s3_client(settings), settings.bucket, settings.model_name, trained, DATA)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        _wait_for(client, lambda r: r.status_code == 200)
        body = request_for(small_data.series, "syn-000", ORIGIN)
        assert client.post("/v1/predict", json=body).status_code == 500
        metrics = client.get("/metrics").text
    assert 'fedeploy_inference_rejected_requests_total{reason="error"} 1.0' in metrics


def test_the_openapi_document_describes_the_bodies_without_dangling_references(settings):
    """The predict endpoints read their bodies' bytes themselves; the document still says what
    they take, every reference resolving inside the document."""
    import json

    document = create_app(settings, client=object()).openapi()
    text = json.dumps(document)
    assert "#/$defs/" not in text
    body = document["paths"]["/v1/predict/batch"]["post"]["requestBody"]["content"]
    request = body["application/json"]["schema"]["properties"]["requests"]["items"]
    assert set(request["properties"]) >= {"station", "issued_at", "observations"}
    assert request["properties"]["observations"]["items"]["additionalProperties"] is False
    single = document["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert single["application/json"]["schema"]["required"] == request["required"]
    for reference in {r.split('"')[0] for r in text.split('"$ref": "')[1:]}:
        assert reference.removeprefix("#/components/schemas/") in document["components"]["schemas"]
