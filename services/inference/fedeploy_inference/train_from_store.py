"""The training entry point's work: windows from the bucket in, a published version out."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import torch
import torch.distributed as dist
from botocore.exceptions import ClientError

from fedeploy_inference.catalog import scenes_for_stations
from fedeploy_inference.device import resolve_device
from fedeploy_inference.hourly import StationSeries, to_hourly
from fedeploy_inference.nwp import (
    DEFAULT_AVAILABLE_AFTER_HOURS,
    MAX_PRODUCT_BYTES,
    Forecasts,
    collect,
    places,
)
from fedeploy_inference.registry import publish
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.settings import InferenceSettings
from fedeploy_inference.training import TrainConfig, train
from fedeploy_inference.window_store import list_windows, read_windows

log = logging.getLogger(__name__)

# What the bucket's observations are: {"name": str, "synthetic": bool, "discontinuities"?:
# {station: [RFC 3339 times where a new continuous stretch begins]}}, written by `generate` (and
# by whoever loads a named data set); absent for a site's own ingested stream. No training
# sample straddles a declared discontinuity. Optional "nwp": {"synthetic": bool, ...}: what the
# bucket's ECMWF forecast products are where they were not copied from ECMWF (synthetic_nwp).
# Under observations/, the prefix the workload roles let inference read.
DATASET_KEY = "observations/dataset.json"


def describe_dataset(client: Any, bucket: str) -> dict[str, Any]:
    """The bucket's data set description (DATASET_KEY), {} where there is none.

    Raises ValueError naming the object when it is not a JSON object with a string `name` and
    a boolean `synthetic`."""
    try:
        body = client.get_object(Bucket=bucket, Key=DATASET_KEY)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return {}
        raise
    where = f"s3://{bucket}/{DATASET_KEY}"
    try:
        found = json.loads(body)
    except ValueError:
        raise ValueError(
            f"{where}: not JSON; an object with name and synthetic is required"
        ) from None
    if (
        not isinstance(found, dict)
        or not isinstance(found.get("name"), str)
        or not isinstance(found.get("synthetic"), bool)
    ):
        raise ValueError(
            f"{where}: {str(found)[:80]!r} found; an object with a string `name` and a boolean "
            "`synthetic` is allowed"
        )
    breaks = found.get("discontinuities", {})
    if not isinstance(breaks, dict):
        raise ValueError(f"{where}: discontinuities must map stations to lists of times")
    parsed: dict[str, list[int]] = {}
    for station, times in breaks.items():
        parsed[str(station)] = []
        for i, text in enumerate(times if isinstance(times, list) else [times]):
            try:
                when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
            except ValueError:
                when = None
            if when is None or when.tzinfo is None:
                raise ValueError(
                    f"{where}: discontinuities.{station}[{i}] is {str(text)[:40]!r}; an RFC 3339 "
                    "time with offset is allowed"
                )
            parsed[str(station)].append(int(when.timestamp() * 1_000_000))
    nwp = found.get("nwp", {})
    if not isinstance(nwp, dict) or not isinstance(nwp.get("synthetic", False), bool):
        raise ValueError(f"{where}: nwp must be an object with a boolean `synthetic`")
    described = {"name": found["name"], "synthetic": found["synthetic"], "breaks": parsed}
    if nwp:
        described["nwp"] = nwp
    return described


def record_dataset(
    client: Any,
    bucket: str,
    name: str,
    synthetic: bool,
    discontinuities: dict[str, list[str]] | None = None,
    nwp: dict[str, Any] | None = None,
) -> None:
    """Write the bucket's data set description (see DATASET_KEY)."""
    body: dict[str, Any] = {"name": name, "synthetic": synthetic}
    if discontinuities:
        body["discontinuities"] = discontinuities
    if nwp:
        body["nwp"] = nwp
    client.put_object(
        Bucket=bucket,
        Key=DATASET_KEY,
        Body=json.dumps(body).encode(),
        ContentType="application/json",
    )


# Where the ingestion service copies ECMWF open-data products (forecast_plan.Product.key):
# sentinel/ecmwf-<model>-<stream>-<type>/<model>-<resol>-<stream>-<type>-<run>-<step>h-<params>/
# data.grib2. Only products whose parameters include 2t are read.
FORECASTS_PREFIX = "sentinel/ecmwf-"
FORECAST_ASSET = "/data.grib2"


def forecast_keys(client: Any, bucket: str) -> list[str]:
    """The keys of the bucket's ingested ECMWF products that hold 2 m temperature, sorted."""
    keys = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=FORECASTS_PREFIX):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            item = key.rsplit("/", 2)[-2] if key.count("/") >= 2 else ""
            if key.endswith(FORECAST_ASSET) and "2t" in item.rsplit("-", 1)[-1].split("_"):
                keys.append(key)
    return sorted(keys)


def _product_bytes(client: Any, bucket: str, key: str) -> bytes | Exception:
    """A product's bytes, or why they cannot be had (too large, gone): it fails alone."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] > MAX_PRODUCT_BYTES:
            return ValueError(
                f"{key}: {head['ContentLength']} bytes; at most {MAX_PRODUCT_BYTES} are read"
            )
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        return ValueError(f"s3://{bucket}/{key}: {error}")


# Product types whose 2t is a temperature forecast: the deterministic forecast, the ensemble's
# control forecast and its mean (not the members pf, nor the spread es or probabilities ep).
FORECAST_TYPES = ("fc", "cf", "em")


def forecast_source(item: str) -> str:
    """The source (`<model>-<resol>-<stream>-<type>`) of a product's item id
    (`<source>-<yyyymmddHH>-<step>h-<params>`)."""
    return item.rsplit("-", 3)[0]


def choose_source(items: list[str]) -> tuple[list[str], dict[str, str]]:
    """The items of the one source read (the temperature forecast with the most products;
    by name on ties) and, per other source, why it is not read. Runs of two models or
    resolutions at the same time are not mixed, nor is an ensemble's spread read as a
    temperature."""
    by_source: dict[str, list[str]] = {}
    for item in items:
        by_source.setdefault(forecast_source(item), []).append(item)
    usable = [s for s in sorted(by_source) if s.rsplit("-", 1)[-1] in FORECAST_TYPES]
    chosen = max(usable, key=lambda s: len(by_source[s]), default=None)
    why = {}
    for source, own in by_source.items():
        kind = source.rsplit("-", 1)[-1]
        if kind not in FORECAST_TYPES:
            why[source] = (
                f"{len(own)} product(s) of type {kind}: only {', '.join(FORECAST_TYPES)} hold "
                "a 2 m temperature forecast read as one"
            )
        elif source != chosen:
            why[source] = (
                f"{len(own)} product(s) not read: one source is read, {chosen} (the most "
                "products), so two models' or resolutions' runs are not mixed"
            )
    return ([] if chosen is None else by_source[chosen]), why


def usable_runs(
    items: list[str], origins: tuple[datetime, datetime], available_after_hours: float
) -> list[str]:
    """The items (`<source>-<yyyymmddHH>-<step>h-<params>`) of every run a forecast from an
    origin in [start, end) could read: usable before `end` (reference time +
    `available_after_hours` < end) and reaching `start` (reference time + its longest step >=
    start). Not only the newest run usable at `start`: where that one cannot be read, training's
    reader falls back to the run before it, so the batch must have that one too. An item whose
    run time or step cannot be read is kept (read and judged by its contents)."""
    delay = timedelta(hours=available_after_hours)
    start, end = origins

    def run_and_step(item: str) -> tuple[datetime | None, float]:
        parts = item.rsplit("-", 3)
        try:
            run = datetime.strptime(parts[1], "%Y%m%d%H").replace(tzinfo=UTC)
        except (IndexError, ValueError):
            return None, float("inf")
        step = parts[2].removesuffix("h") if len(parts) > 2 else ""
        return run, float(step) if step.isdigit() else float("inf")

    parsed = {i: run_and_step(i) for i in items}
    reach: dict[datetime, float] = {}  # per run, its longest step (hours)
    for run, step in parsed.values():
        if run is not None:
            reach[run] = max(reach.get(run, 0.0), step)
    return [
        i
        for i, (run, _) in parsed.items()
        if run is None
        or (run + delay < end and run + timedelta(hours=min(reach[run], 1e6)) >= start)
    ]


def ingested_forecasts(
    client: Any,
    bucket: str,
    series: dict[str, StationSeries],
    synthetic: bool = False,
    available_after_hours: float = DEFAULT_AVAILABLE_AFTER_HOURS,
    origins: tuple[datetime, datetime] | None = None,
) -> Forecasts | None:
    """The bucket's ingested NWP read at the stations with a known position (nwp.collect), each
    run usable `available_after_hours` after its reference time, from one source
    (choose_source; the others are named in `sources_not_read`); None where the bucket holds
    no ECMWF product with 2t. `origins` [start, end): only the runs a forecast from one of
    those hours could read, the older ones that reach the period included (usable_runs; a
    batch run's period), chosen by key without a download."""
    keys = forecast_keys(client, bucket)
    if not keys:
        return None
    item = {key: key.rsplit("/", 2)[-2] for key in keys}
    chosen, not_read = choose_source(list(item.values()))
    if origins is not None:
        chosen = usable_runs(chosen, origins, available_after_hours)
    read = [key for key in keys if item[key] in set(chosen)]
    forecasts = collect(
        ((item[key], _product_bytes(client, bucket, key)) for key in read),
        places(series),
        model_of={item[key]: item[key].split("-", 1)[0] for key in read},
        synthetic=synthetic,
        available_after_hours=available_after_hours,
    )
    return replace(forecasts, sources_not_read=not_read) if not_read else forecasts


@dataclass(frozen=True)
class TrainOutcome:
    """What a training run produced: the version (None on ranks other than 0) and its metrics."""

    version: str | None
    metrics: dict[str, Any]


def train_and_publish(
    settings: InferenceSettings,
    config: TrainConfig,
    start: datetime | None = None,
    end: datetime | None = None,
    note: str = "",
) -> TrainOutcome:
    """Read the windows overlapping [start, end), train, evaluate and publish (rank 0 only)."""
    client = s3_client(settings)
    device = _training_device(settings.device)
    windows = list_windows(client, settings.bucket, start, end)
    if not windows:
        raise ValueError(
            f"s3://{settings.bucket}/observations/: no window between {start} and {end}; "
            "ingest observations first (or run `fedeploy-infer generate`)"
        )
    table = read_windows(client, settings.bucket, windows)
    series = to_hourly(table)
    scenes = (
        scenes_for_stations(settings.catalog_url, settings.sentinel_collection, series)
        if settings.catalog_url
        else None
    )
    dataset = describe_dataset(client, settings.bucket)
    forecasts = ingested_forecasts(
        client,
        settings.bucket,
        series,
        bool(dataset.get("nwp", {}).get("synthetic", False)),
        config.nwp_available_after_hours,
    )
    log.info("training on %d rows from %d windows on %s", table.num_rows, len(windows), device)
    result = train(
        series, config, device, scenes=scenes, breaks=dataset.get("breaks"), forecasts=forecasts
    )
    if dist.is_available() and dist.is_initialized() and dist.get_rank() != 0:
        return TrainOutcome(None, result.metrics)
    data = {
        "source": f"s3://{settings.bucket}/observations/",
        "name": dataset.get("name", f"observations in s3://{settings.bucket}"),
        "synthetic": dataset.get("synthetic", False),
        "windows": len(windows),
        "windows_sha256": hashlib.sha256("\n".join(w.key for w in windows).encode()).hexdigest(),
        "rows": table.num_rows,
        "stations": sorted(series),
        "station_places": {
            name: {"latitude": st.latitude, "longitude": st.longitude, "elevation": st.elevation}
            for name, st in sorted(series.items())
        },
        "period": {"start": result.period[0].isoformat(), "end": result.period[1].isoformat()},
        "samples": {"train": result.train_samples, "test": len(result.test)},
        "sentinel_scenes": sum(s.times_us.size for s in (scenes or {}).values()),
        "nwp": None if forecasts is None else forecasts.describe(),
        "train_config": config.__dict__,
        "note": note,
    }
    version = publish(client, settings.bucket, settings.model_name, result, data)
    log.info("published %s/%s", settings.model_name, version)
    return TrainOutcome(version, result.metrics)


def _training_device(requested: str) -> torch.device:
    """The device, one GPU per rank under torchrun (LOCAL_RANK picks it)."""
    device = resolve_device(requested)
    if device.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device
