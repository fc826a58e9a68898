"""The Arrow route's calls are counted in the service's metrics (batch size, forecasts, latency
by endpoint) once each, whichever way they are answered: on the event loop, in a worker thread,
or a JSON body answered in Arrow; a refused body adds no forecast. The Arrow route counts a call
once its answer is sent (server.py, `arrow_batch`)."""

import re
import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from fedeploy_inference import server
from fedeploy_inference.arrow_api import ARROW_STREAM, table_from_requests, to_stream
from fedeploy_inference.registry import publish
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.server import create_app

from tests.samples import DATA, request_for

ORIGIN = datetime(2026, 2, 20, 12, tzinfo=UTC)

ARROW = {"content-type": ARROW_STREAM}


@pytest.fixture
def ready(settings, trained):
    publish(s3_client(settings), settings.bucket, settings.model_name, trained, DATA)
    with TestClient(create_app(settings)) as client:
        for _ in range(300):
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        yield client


def _sample(metrics: str, name: str) -> float:
    """One sample's value in a Prometheus exposition (0 where the series is absent)."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _counts(client: TestClient) -> tuple[float, float, float]:
    metrics = client.get("/metrics").text
    return (
        _sample(metrics, "fedeploy_inference_predictions_total"),
        _sample(metrics, "fedeploy_inference_batch_size_count"),
        _sample(
            metrics, 'fedeploy_inference_request_duration_seconds_count{endpoint="predict_batch"}'
        ),
    )


def test_arrow_calls_are_counted_once_each_however_they_are_answered(
    ready, small_data, monkeypatch
):
    requests = [request_for(small_data.series, s, ORIGIN) for s in ("syn-000", "syn-001")]
    body = to_stream(table_from_requests(requests))
    assert _counts(ready) == (0, 0, 0)
    assert ready.post("/v1/predict/batch", content=body, headers=ARROW).status_code == 200
    assert _counts(ready) == (2, 1, 1)  # answered on the event loop
    monkeypatch.setattr(server, "INLINE_BODY_BYTES", 0)  # every body to a worker thread
    assert ready.post("/v1/predict/batch", content=body, headers=ARROW).status_code == 200
    assert _counts(ready) == (4, 2, 2)
    negotiated = ready.post(
        "/v1/predict/batch", json={"requests": requests}, headers={"accept": ARROW_STREAM}
    )
    assert negotiated.status_code == 200
    assert _counts(ready) == (6, 3, 3)
    refused = ready.post("/v1/predict/batch", content=body[:-100], headers=ARROW)
    assert refused.status_code == 422
    assert _counts(ready) == (6, 3, 3)
    metrics = ready.get("/metrics").text
    assert 'fedeploy_inference_rejected_requests_total{reason="invalid"} 1.0' in metrics
    # An endpoint's latency series appears once it has answered, as before.
    assert 'endpoint="predict"' not in metrics
    assert ready.post("/v1/predict", json=requests[0]).status_code == 200
    assert (
        'fedeploy_inference_request_duration_seconds_count{endpoint="predict"} 1.0'
        in ready.get("/metrics").text
    )
