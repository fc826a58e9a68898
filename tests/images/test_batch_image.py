"""The built CPU inference image runs a batch forecast under the model server's pod settings
(read from the example cluster site's rendered Deployment: user, read-only root, no
capabilities, /tmp only): it writes its Parquet to SeaweedFS and registers its STAC item in a
real stac-fastapi-pgstac. (The chart has no batch workload of its own: batches run as SLURM jobs
through the bridge; this checks the image can run one as a pod runs.)"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from fedeploy.loopback import PostgresServer, SeaweedS3, StacApiServer
from tests.images.chart_run import container_of, podman_run_args
from tests.images.conftest import podman

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATA = {
    "source": "s3://b/observations/",
    "windows": 1,
    "rows": 1,
    "stations": ["syn-000"],
    "period": {"start": "2026-01-01", "end": "2026-03-01"},
    "samples": {"train": 1, "test": 1},
}


def test_batch_writes_its_parquet_and_registers_its_item(
    images,
    manifests,
    s3: SeaweedS3,
    postgres: PostgresServer,
    tmp_path: Path,
    storage_keys: dict[str, Path],
) -> None:
    import pyarrow as pa
    import torch
    from fedeploy_inference.hourly import to_hourly
    from fedeploy_inference.registry import publish
    from fedeploy_inference.s3 import s3_client
    from fedeploy_inference.settings import InferenceSettings
    from fedeploy_inference.synthetic import SyntheticSpec, generate
    from fedeploy_inference.training import TrainConfig, train
    from fedeploy_inference.window_store import write_windows

    chart = container_of(manifests("inference", "kubernetes"), "Deployment", "inference")
    chart_env = {e["name"]: e.get("value") for e in chart.container.get("env", [])}
    model = chart_env["INFER_MODEL_NAME"]
    bucket = f"images-batch-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(bucket)
    endpoint = s3.endpoint
    windows = list(generate(SyntheticSpec(stations=3, days=60)))
    trained = train(
        to_hourly(pa.concat_tables([t for _, t in windows])),
        TrainConfig(epochs=5),
        torch.device("cpu"),
    )
    host = InferenceSettings(bucket=bucket, s3_endpoint_url=endpoint.endpoint_url)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = endpoint.access_key_id
    os.environ["AWS_SECRET_ACCESS_KEY"] = endpoint.secret_access_key
    try:
        client = s3_client(host)
        write_windows(client, bucket, windows)
        publish(client, bucket, model, trained, DATA)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

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
        collection = chart_env.get("INFER_FORECAST_COLLECTION") or host.forecast_collection
        item = httpx.get(
            f"{catalog.url}/collections/{collection}/items/{outcome['run_id']}", timeout=30
        )
        assert item.status_code == 200, item.text
        assert item.json()["assets"]["data"]["href"] == f"s3://{bucket}/{outcome['key']}"
    finally:
        catalog.stop()
