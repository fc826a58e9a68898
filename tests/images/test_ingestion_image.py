"""The built ingestion image, run exactly as the chart's stream StatefulSet runs it (settings
read from the rendered manifests of the example HPC site), against loopback peers."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from loopback import MosquittoBroker, PostgresServer, SeaweedS3, StacApiServer
from loopback.observations import encoded, observation
from loopback.processes import free_port
from tests.images.chart_run import container_of
from tests.images.conftest import chart_container, podman

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = datetime(2024, 6, 1, 0, 0, tzinfo=UTC)


def _wait(predicate, seconds: float, what: str, logs) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} not within {seconds} s; container log:\n{logs()[-4000:]}")


def test_stream_consumes_observations_into_storage_and_catalog(
    images, manifests, broker: MosquittoBroker, s3: SeaweedS3, postgres: PostgresServer,
    tmp_path: Path, storage_keys: dict[str, Path],
) -> None:  # fmt: skip
    bucket = f"images-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(bucket)
    catalog = StacApiServer(
        postgres.create_database(f"images_{uuid.uuid4().hex[:8]}"), tmp_path / "catalog"
    ).start()
    chart = container_of(manifests("ingestion", "hpc"), "StatefulSet", "ingestion-stream")
    port = free_port()
    # The chart's cluster addresses and Secret references, pointed at the loopback peers.
    env = {
        "INGEST_S3_ENDPOINT_URL": s3.endpoint.endpoint_url,
        "INGEST_S3_REGION": s3.endpoint.region,
        "INGEST_BUCKET": bucket,
        "INGEST_CATALOG_URL": catalog.url,
        "INGEST_MQTT_HOST": broker.host,
        "INGEST_MQTT_PORT": str(broker.port),
        "INGEST_MQTT_TLS": "false",  # the loopback broker is plain MQTT
        "INGEST_MQTT_TOPICS": "edge/#",
        "INGEST_MQTT_CLIENT_ID": f"image-{bucket}",
        "INGEST_SHARD_INDEX": "0",
        "INGEST_WINDOW_GRACE_SECONDS": "0",
        "INGEST_FLUSH_IDLE_SECONDS": "1",
        "INGEST_HTTP_HOST": "127.0.0.1",
        "INGEST_HTTP_PORT": str(port),
    }
    name = f"fedeploy-stream-{bucket}"
    # The storage keys only as the chart gives them: the mounted shared credentials file.
    try:
        with chart_container(name, chart, env, storage_keys, images["ingestion"]) as logs:
            started = time.monotonic()
            _wait(
                lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200,
                60,
                "the stream consumer's /readyz",
                logs,
            )
            ready_after = time.monotonic() - started
            stations = ["bz-01", "bz-02", "tn-01"]
            messages = [
                (
                    f"edge/{station}/obs",
                    encoded(observation(station, T0 + timedelta(seconds=10 * i), humidity=None)),
                )
                for i in range(20)
                for station in stations
            ]
            broker.publish(messages)

            def items() -> list[dict]:
                answer = httpx.post(
                    f"{catalog.url}/search", json={"limit": 100}, timeout=10
                ).raise_for_status()
                return answer.json()["features"]

            def observed() -> int:
                return sum(
                    item["properties"].get("fedeploy:observation_count", 0) for item in items()
                )

            _wait(lambda: observed() == len(messages), 90, "every observation in the catalog", logs)
            keys = [
                entry["Key"]
                for entry in s3.endpoint.client()
                .list_objects_v2(Bucket=bucket, Prefix="observations/")
                .get("Contents", [])
            ]
            assert keys, "no observation object in the bucket"
            assert all(key.endswith(".parquet") for key in keys), keys
            hrefs = {a["href"] for item in items() for a in item["assets"].values()}
            assert {f"s3://{bucket}/{key}" for key in keys} <= hrefs, (keys, hrefs)
            # The process the chart starts runs as the chart's user, on a read-only root.
            inspected = json.loads(podman("inspect", name).stdout)[0]
            assert inspected["Config"]["User"] == "10001:10001"
            assert inspected["HostConfig"]["ReadonlyRootfs"] is True
            assert podman("top", name, "user", "args").stdout.split()[2] in {"10001", "fedeploy"}
            podman("stop", "--time", "30", name)
            state = json.loads(podman("inspect", name).stdout)[0]["State"]
            assert state["ExitCode"] == 0, logs()
            print(f"ingestion stream ready after {ready_after:.1f} s")
    finally:
        catalog.stop()
