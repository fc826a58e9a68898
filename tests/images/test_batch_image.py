"""The built CPU inference image runs a batch forecast under the model server's pod settings
(read from the example cluster site's rendered Deployment: user, read-only root, no
capabilities, /tmp only): it writes its Parquet to SeaweedFS and registers its STAC item in a
real stac-fastapi-pgstac. (The chart has no batch workload of its own: batches run as SLURM jobs
through the bridge; this checks the image can run one as a pod runs.)"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from loopback import PostgresServer, SeaweedS3, StacApiServer
from tests.images.chart_run import container_of, podman_run_args
from tests.images.conftest import podman
from tests.images.models import publish_synthetic_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_batch_writes_its_parquet_and_registers_its_item(
    images,
    manifests,
    s3: SeaweedS3,
    postgres: PostgresServer,
    tmp_path: Path,
    storage_keys: dict[str, Path],
) -> None:
    chart = container_of(manifests("inference", "kubernetes"), "Deployment", "inference")
    chart_env = {e["name"]: e.get("value") for e in chart.container.get("env", [])}
    model = chart_env["INFER_MODEL_NAME"]
    bucket = f"images-batch-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(bucket)
    endpoint = s3.endpoint
    published = publish_synthetic_model(endpoint, bucket, model, with_windows=True)
    client = published.client

    catalog = StacApiServer(
        postgres.create_database(f"batch_{uuid.uuid4().hex[:8]}"), tmp_path / "catalog"
    ).start()
    env = {
        "INFER_S3_ENDPOINT_URL": endpoint.endpoint_url,
        "INFER_S3_REGION": endpoint.region,
        "INFER_BUCKET": bucket,
        "INFER_CATALOG_URL": catalog.url,
        "INFER_HOST": "127.0.0.1",
        "INFER_PORT": "8080",
    }
    # The storage keys only as the chart gives them: the mounted shared credentials file.
    try:
        done = podman(
            "run", "--rm", *podman_run_args(chart, env, storage_keys),
            "--entrypoint", json.dumps(["fedeploy-infer"]), images["inference"],
            "batch", "--bbox", "4,40,11,55",
            "--start", "2026-02-22T00:00:00Z", "--end", "2026-02-23T00:00:00Z",
            timeout=300,
        )  # fmt: skip
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
        # Stations sit at 5, 10 and 15 degE: the box holds the first two.
        assert outcome["stations"] == 2 and outcome["registered"] is True, outcome
        body = client.get_object(Bucket=bucket, Key=outcome["key"])["Body"].read()
        table = pq.read_table(io.BytesIO(body))
        assert table.num_rows == outcome["rows"] > 0
        assert set(table["station"].to_pylist()) == {"syn-000", "syn-001"}
        from fedeploy_inference.settings import InferenceSettings

        default = InferenceSettings(bucket=bucket).forecast_collection
        collection = chart_env.get("INFER_FORECAST_COLLECTION") or default
        item = httpx.get(
            f"{catalog.url}/collections/{collection}/items/{outcome['run_id']}", timeout=30
        )
        assert item.status_code == 200, item.text
        assert item.json()["assets"]["data"]["href"] == f"s3://{bucket}/{outcome['key']}"
    finally:
        catalog.stop()
