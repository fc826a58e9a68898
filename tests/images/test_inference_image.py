"""The built CPU inference image, run exactly as the chart's Deployment runs it (settings read
from the rendered manifests of the example cluster site): it loads a model published to
SeaweedFS, reports ready and answers a forecast equal to the model's in memory."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from loopback import SeaweedS3
from loopback.processes import free_port
from tests.images.chart_run import container_of
from tests.images.conftest import chart_container, podman
from tests.images.models import publish_synthetic_model
from tests.samples import request_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_serve_loads_a_published_model_and_answers_a_forecast(
    images, manifests, s3: SeaweedS3, storage_keys: dict[str, Path]
) -> None:
    import torch
    from fedeploy_inference.training import predict

    bucket = f"images-models-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(bucket)
    endpoint = s3.endpoint
    published = publish_synthetic_model(endpoint, bucket, "nowcast")
    trained, series, version = published.trained, published.series, published.version

    chart = container_of(manifests("inference", "kubernetes"), "Deployment", "inference")
    port = free_port()
    env = {
        "INFER_S3_ENDPOINT_URL": endpoint.endpoint_url,
        "INFER_S3_REGION": endpoint.region,
        "INFER_BUCKET": bucket,
        "INFER_CATALOG_URL": "",
        "INFER_HOST": "127.0.0.1",
        "INFER_PORT": str(port),
    }
    name = f"fedeploy-serve-{bucket}"
    # The storage keys only as the chart gives them: the mounted shared credentials file.
    with chart_container(name, chart, env, storage_keys, images["inference"]) as logs:
        deadline = time.monotonic() + 120
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert ready is not None and ready.status_code == 200, logs()[-4000:]
        assert ready.json() == {"status": "ready", "model": "nowcast", "version": version}
        row = int(np.flatnonzero(trained.test.station == "syn-001")[5])
        origin = datetime.fromtimestamp(trained.test.origin_us[row] / 1e6, tz=UTC)
        expected = predict(
            trained.model,
            trained.test.features[[row]],
            trained.test.anchor[[row]],
            torch.device("cpu"),
        )
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/predict",
            json=request_for(series, "syn-001", origin),
            timeout=30,
        )
        assert answer.status_code == 200, (answer.text, logs()[-4000:])
        got = np.array(
            [[f["air_temperature"], f["precipitation"]] for f in answer.json()["forecast"]]
        )
        # The image's torch (2.13.0+cpu) computes what this environment's computes.
        np.testing.assert_allclose(got, expected[0], atol=1e-4)
        inspected = json.loads(podman("inspect", name).stdout)[0]
        assert inspected["Config"]["User"] == "10001:10001"
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True
