"""A model trained on the synthetic stations and published to a loopback store, as the image
tests of the inference service need it (the same registry code the service uses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loopback.s3 import S3Endpoint
from tests.samples import DATA


@dataclass(frozen=True)
class Published:
    """What was published: the trained result, the hourly series, the raw windows, the
    version the registry gave it, and a client of the store."""

    trained: Any
    series: Any
    windows: list[Any]
    version: str
    client: Any


def publish_synthetic_model(
    endpoint: S3Endpoint, bucket: str, model: str, *, with_windows: bool = False
) -> Published:
    """Train 5 epochs on three synthetic stations over 60 days and publish the model as
    `model` in `bucket`; with `with_windows`, the observation windows too (a batch reads them)."""
    import pyarrow as pa
    import torch
    from fedeploy_inference.hourly import to_hourly
    from fedeploy_inference.registry import publish
    from fedeploy_inference.synthetic import SyntheticSpec, generate
    from fedeploy_inference.training import TrainConfig, train
    from fedeploy_inference.window_store import write_windows

    windows = list(generate(SyntheticSpec(stations=3, days=60)))
    series = to_hourly(pa.concat_tables([table for _, table in windows]))
    trained = train(series, TrainConfig(epochs=5), torch.device("cpu"))
    client = endpoint.client()
    if with_windows:
        write_windows(client, bucket, windows)
    version = publish(client, bucket, model, trained, DATA)
    return Published(trained, series, windows, version, client)
