"""Versions of a model in the site's bucket, published atomically and loaded back verified.

Layout: `models/<name>/<version>/` holds `weights.pt`, `model-card.md`, `metrics.json`,
`data.json`, `forecast.png` and `manifest.json`. The manifest is written last and lists every
other file with its sha256: a version without a manifest is incomplete and never loaded.
`models/<name>/LATEST` names the newest version and is written after its manifest. Versions
are `<UTC YYYYMMDDTHHMMSSZ>-<first 8 hex of the weights' sha256>`, so they sort by time; where
LATEST is missing, the newest version with a manifest is the latest.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import torch
from botocore.exceptions import ClientError

from fedeploy_inference import __version__
from fedeploy_inference.features import FeatureSpec
from fedeploy_inference.model import NetConfig, StationForecaster
from fedeploy_inference.model_card import dataset_title, figure_sources, render_model_card
from fedeploy_inference.training import TrainingResult

_VERSION = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")
PLOT_LEAD_HOURS = 3


class ModelNotFoundError(LookupError):
    """No (complete) version of the model is in the bucket."""


class ModelIntegrityError(RuntimeError):
    """A stored file does not match its manifest."""


@dataclass(frozen=True)
class LoadedModel:
    """A version loaded onto a device, with its manifest."""

    name: str
    version: str
    model: StationForecaster
    spec: FeatureSpec
    manifest: dict[str, Any]
    device: torch.device


def model_prefix(name: str, version: str) -> str:
    """Key prefix of one version."""
    return f"models/{name}/{version}/"


def new_version(weights: bytes, now: datetime | None = None) -> str:
    """A sortable, content-tagged version string."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{hashlib.sha256(weights).hexdigest()[:8]}"


def weights_bytes(model: StationForecaster) -> bytes:
    """The model's state dict, on the CPU, as torch.save bytes."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def _entry(body: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}


def _json(data: Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode()


def publish(
    client: Any,
    bucket: str,
    name: str,
    result: TrainingResult,
    data: dict[str, Any],
    now: datetime | None = None,
) -> str:
    """Publish a trained model as a new version; LATEST moves to it. Returns the version."""
    # matplotlib loads only where models are published, never in the serving process.
    from fedeploy_inference.plot import forecast_plot

    weights = weights_bytes(result.model)
    version = new_version(weights, now)
    png, station = forecast_plot(
        result.test,
        result.test_forecast,
        PLOT_LEAD_HOURS,
        f"{dataset_title(data)}, {name} {version}",
        places=data.get("station_places"),
        metrics=result.metrics,
    )
    data = {
        **data,
        "split": result.split.isoformat(),
        "plot_station": station,
        "forecast_variables": result.station_targets,
        "training": result.selection,
    }
    files: dict[str, tuple[bytes, str]] = {
        "weights.pt": (weights, "application/octet-stream"),
        "metrics.json": (_json(result.metrics), "application/json"),
        "data.json": (_json(data), "application/json"),
        "climatology.json": (_json(result.climatology.to_dict()), "application/json"),
        "forecast.png": (png, "image/png"),
    }
    manifest: dict[str, Any] = {
        "schema": "fedeploy.model-manifest/1",
        "name": name,
        "version": version,
        "created": (now or datetime.now(UTC)).astimezone(UTC).isoformat(),
        "code_version": __version__,
        "torch_version": torch.__version__,
        "net": result.model.config.to_dict(),
        "features": result.spec.to_dict(),
        "files": {k: _entry(body) for k, (body, _) in files.items()},
        "figures": figure_sources(data, result.metrics),
    }
    card = render_model_card(manifest, result.metrics, data).encode()
    files["model-card.md"] = (card, "text/markdown")
    manifest["files"]["model-card.md"] = _entry(card)
    prefix = model_prefix(name, version)
    for file_name, (body, content_type) in files.items():
        client.put_object(
            Bucket=bucket, Key=prefix + file_name, Body=body, ContentType=content_type
        )
    client.put_object(
        Bucket=bucket,
        Key=prefix + "manifest.json",
        Body=_json(manifest),
        ContentType="application/json",
    )
    current = _read_latest_pointer(client, bucket, name)
    if current is None or current < version:
        client.put_object(
            Bucket=bucket,
            Key=f"models/{name}/LATEST",
            Body=version.encode(),
            ContentType="text/plain",
        )
    return version


def _get(client: Any, bucket: str, key: str) -> bytes | None:
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return None
        raise


def _read_latest_pointer(client: Any, bucket: str, name: str) -> str | None:
    body = _get(client, bucket, f"models/{name}/LATEST")
    if body is None:
        return None
    version = body.decode().strip()
    if not _VERSION.match(version):
        raise ModelIntegrityError(
            f"s3://{bucket}/models/{name}/LATEST holds {version[:40]!r}; expected a version "
            "like 20260101T000000Z-0123abcd"
        )
    return version


def list_versions(client: Any, bucket: str, name: str) -> list[str]:
    """Every version prefix of the model, oldest first (complete or not)."""
    paginator = client.get_paginator("list_objects_v2")
    found = []
    for page in paginator.paginate(Bucket=bucket, Prefix=f"models/{name}/", Delimiter="/"):
        for prefix in page.get("CommonPrefixes", []):
            version = prefix["Prefix"].rstrip("/").rsplit("/", 1)[-1]
            if _VERSION.match(version):
                found.append(version)
    return sorted(found)


def resolve_version(client: Any, bucket: str, name: str, requested: str) -> str:
    """The concrete version `requested` means (`latest` or a version), checked to be complete."""
    if requested != "latest":
        candidates = [requested]
    else:
        pointer = _read_latest_pointer(client, bucket, name)
        candidates = [pointer] if pointer else list(reversed(list_versions(client, bucket, name)))
    for version in candidates:
        if _get(client, bucket, model_prefix(name, version) + "manifest.json") is not None:
            return version
    raise ModelNotFoundError(
        f"s3://{bucket}/models/{name}/: no complete version matching {requested!r} "
        "(a version is complete once its manifest.json exists)"
    )


def load_manifest(client: Any, bucket: str, name: str, version: str) -> dict[str, Any]:
    """A version's manifest."""
    body = _get(client, bucket, model_prefix(name, version) + "manifest.json")
    if body is None:
        raise ModelNotFoundError(
            f"s3://{bucket}/{model_prefix(name, version)}manifest.json: missing"
        )
    return json.loads(body)


def load_model(
    client: Any, bucket: str, name: str, version: str, device: torch.device
) -> LoadedModel:
    """Load a version onto a device, verifying the weights against the manifest."""
    manifest = load_manifest(client, bucket, name, version)
    key = model_prefix(name, version) + "weights.pt"
    weights = _get(client, bucket, key)
    if weights is None:
        raise ModelIntegrityError(f"s3://{bucket}/{key}: listed in the manifest but missing")
    expected = manifest["files"]["weights.pt"]["sha256"]
    if hashlib.sha256(weights).hexdigest() != expected:
        raise ModelIntegrityError(
            f"s3://{bucket}/{key}: sha256 differs from the manifest's {expected}"
        )
    model = StationForecaster(NetConfig(**manifest["net"]))
    # weights_only refuses pickled code: a tampered file cannot run anything on load.
    state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.to(device).eval()
    return LoadedModel(
        name=name,
        version=version,
        model=model,
        spec=FeatureSpec.from_dict(manifest["features"]),
        manifest=manifest,
        device=device,
    )
