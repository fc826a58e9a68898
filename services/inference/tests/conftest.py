"""Shared fixtures: S3 on loopback (moto's threaded server), a small synthetic data set, and a
model trained on it once per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pytest
import torch

from fedeploy_inference.hourly import StationSeries, to_hourly
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.settings import InferenceSettings
from fedeploy_inference.synthetic import SyntheticSpec, generate
from fedeploy_inference.training import TrainConfig, TrainingResult, train

# Small enough to train in about a second on 2 cores, long enough for several fronts.
SMALL_SPEC = SyntheticSpec(stations=3, days=60)
SMALL_TRAINING = TrainConfig(epochs=30)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, with dummy credentials in the environment."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def settings(s3_endpoint: str) -> InferenceSettings:
    """Settings on a fresh bucket of its own."""
    values = InferenceSettings(
        bucket=f"t-{uuid.uuid4().hex[:12]}",
        s3_endpoint_url=s3_endpoint,
        device="cpu",
        poll_seconds=0.1,
    )
    s3_client(values).create_bucket(Bucket=values.bucket)
    return values


@dataclass(frozen=True)
class SmallData:
    """The small synthetic set as windows and as hourly series."""

    windows: list
    series: dict[str, StationSeries]


@pytest.fixture(scope="session")
def small_data() -> SmallData:
    windows = list(generate(SMALL_SPEC))
    return SmallData(windows, to_hourly(pa.concat_tables([t for _, t in windows])))


@pytest.fixture(scope="session")
def trained(small_data: SmallData) -> TrainingResult:
    """A model trained once per session on the small set."""
    return train(small_data.series, SMALL_TRAINING, torch.device("cpu"))


def unavailable(reason: str) -> None:
    """Skip for a missing peer, or fail where CI requires every integration test to run."""
    if os.environ.get("FEDEPLOY_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"FEDEPLOY_REQUIRE_INTEGRATION=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def stac_api(tmp_path_factory) -> Iterator[str]:
    """stac-fastapi-pgstac with transactions over a fresh pgstac database; its URL."""
    try:
        from fedeploy.loopback import PeerUnavailable, PostgresServer, StacApiServer
    except ImportError as error:
        unavailable(f"the loopback harness cannot be imported: {error}")
    root = tmp_path_factory.mktemp("catalog")
    try:
        postgres = PostgresServer(root / "pg").start()
    except PeerUnavailable as error:
        unavailable(str(error))
    try:
        api = StacApiServer(postgres.create_database("inference"), root / "api").start()
        try:
            yield api.url
        finally:
            api.stop()
    finally:
        postgres.remove()


@pytest.fixture
def skip_or_fail():
    """`unavailable` for tests (test modules cannot import conftest in importlib mode)."""
    return unavailable
