"""Batch prediction runs: every station in an area, every hour of a period, one Parquet object.

A run's identity (model version, area, period) names its object and its catalog item, so a
run repeated (a SLURM job retried) overwrites the same object with the same rows and upserts
the same item. Results go to `forecasts/<model>/<version>/<run id>.parquet`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fedeploy_inference.catalog import forecast_item, register_item
from fedeploy_inference.device import resolve_device
from fedeploy_inference.features import Encoded, encode
from fedeploy_inference.hourly import StationSeries, to_hourly
from fedeploy_inference.predictor import run_model
from fedeploy_inference.registry import LoadedModel, load_model, resolve_version
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.settings import InferenceSettings
from fedeploy_inference.window_store import list_windows, read_windows, table_to_parquet

_HOUR_US = 3_600_000_000
FORECASTS_PREFIX = "forecasts/"

FORECAST_SCHEMA = pa.schema(
    [
        pa.field("station", pa.string(), nullable=False),
        pa.field("longitude", pa.float64()),
        pa.field("latitude", pa.float64()),
        pa.field("issued_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("lead_hours", pa.int16(), nullable=False),
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("air_temperature", pa.float64(), nullable=False),
        pa.field("precipitation", pa.float64(), nullable=False),
    ]
)


@dataclass(frozen=True)
class Area:
    """A longitude/latitude box (west, south, east, north), degrees."""

    west: float
    south: float
    east: float
    north: float

    def __post_init__(self) -> None:
        if not (-180 <= self.west < self.east <= 180 and -90 <= self.south < self.north <= 90):
            raise ValueError(
                f"area {self.as_tuple()}: west < east within -180..180 and south < north "
                "within -90..90 are required"
            )

    def as_tuple(self) -> tuple[float, float, float, float]:
        """(west, south, east, north)."""
        return (self.west, self.south, self.east, self.north)


@dataclass(frozen=True)
class BatchOutcome:
    """Where a run's results went."""

    run_id: str
    key: str
    rows: int
    stations: int
    registered: bool


def run_id(version: str, area: Area, start: datetime, end: datetime) -> str:
    """A run's identity, stable across retries."""
    digest = hashlib.sha256(repr((version, area.as_tuple())).encode()).hexdigest()[:8]
    return f"{version}_{start:%Y%m%dT%H%M%SZ}_{end:%Y%m%dT%H%M%SZ}_{digest}"


def _whole_hour(name: str, when: datetime) -> datetime:
    if when.tzinfo is None or when.minute or when.second or when.microsecond:
        raise ValueError(f"batch {name}: {when.isoformat()} given; a whole UTC hour is required")
    return when.astimezone(UTC)


def forecast_station(
    loaded: LoadedModel, st: StationSeries, start: datetime, end: datetime
) -> pa.Table:
    """Forecasts from every whole hour in [start, end) with a usable context at one station."""
    spec = loaded.spec
    c = spec.context_hours
    origins = np.arange(
        int(start.timestamp() * 1e6), int(end.timestamp() * 1e6), _HOUR_US, dtype=np.int64
    )
    first_us = int(st.start.timestamp() * 1e6)
    index = (origins - first_us) // _HOUR_US  # bin index of each origin in the series
    padded = np.concatenate(
        [
            np.full((c, st.values.shape[1]), np.nan),
            st.values,
            np.full(
                (max(0, int(index.max()) - st.values.shape[0] + 1), st.values.shape[1]), np.nan
            ),
        ]
    )
    # Padded row r is series bin r - c, so origin bin i reads padded rows [i, i + c); an
    # origin at or before the series' first bin has no context at all.
    keep = index >= 1
    origins, index = origins[keep], index[keep]
    context = np.stack([padded[i : i + c] for i in index]) if index.size else np.empty((0, c, 5))
    lon = np.full(origins.shape, np.nan if st.longitude is None else st.longitude)
    nan = np.full(origins.shape, np.nan)
    encoded = encode(spec, context, origins, lon, nan, nan)
    usable = encoded.usable
    if not usable.any():
        return FORECAST_SCHEMA.empty_table()
    forecast = run_model(
        loaded, Encoded(encoded.features[usable], encoded.anchor[usable], usable[usable])
    )
    origins = origins[usable]
    n, h = forecast.shape[0], forecast.shape[1]
    leads = np.tile(np.arange(1, h + 1, dtype=np.int16), n)
    issued = np.repeat(origins, h)
    return pa.Table.from_pydict(
        {
            "station": [st.station] * (n * h),
            "longitude": [st.longitude] * (n * h),
            "latitude": [st.latitude] * (n * h),
            "issued_at": pa.array(issued, pa.timestamp("us", tz="UTC")),
            "lead_hours": pa.array(leads, pa.int16()),
            "time": pa.array(
                issued + (leads.astype(np.int64) - 1) * _HOUR_US, pa.timestamp("us", tz="UTC")
            ),
            "air_temperature": forecast[:, :, 0].reshape(-1).astype(float),
            "precipitation": forecast[:, :, 1].reshape(-1).astype(float),
        },
        schema=FORECAST_SCHEMA,
    )


def run_batch(
    settings: InferenceSettings, area: Area, start: datetime, end: datetime
) -> BatchOutcome:
    """Forecast every station in the area from every hour of [start, end); store and register."""
    start, end = _whole_hour("start", start), _whole_hour("end", end)
    if end <= start:
        raise ValueError(
            f"batch period: end {end.isoformat()} is not after start {start.isoformat()}"
        )
    client = s3_client(settings)
    version = resolve_version(client, settings.bucket, settings.model_name, settings.model_version)
    loaded = load_model(
        client, settings.bucket, settings.model_name, version, resolve_device(settings.device)
    )
    context_start = start - timedelta(hours=loaded.spec.context_hours)
    table = read_windows(
        client, settings.bucket, list_windows(client, settings.bucket, context_start, end)
    )
    inside = pc.and_(
        pc.and_(
            pc.greater_equal(table["longitude"], area.west),
            pc.less_equal(table["longitude"], area.east),
        ),
        pc.and_(
            pc.greater_equal(table["latitude"], area.south),
            pc.less_equal(table["latitude"], area.north),
        ),
    )
    series = to_hourly(table.filter(pc.fill_null(inside, False)))
    parts = [forecast_station(loaded, st, start, end) for st in series.values()]
    result = pa.concat_tables(parts) if parts else FORECAST_SCHEMA.empty_table()
    rid = run_id(version, area, start, end)
    key = f"{FORECASTS_PREFIX}{settings.model_name}/{version}/{rid}.parquet"
    client.put_object(
        Bucket=settings.bucket,
        Key=key,
        Body=table_to_parquet(result),
        ContentType="application/vnd.apache.parquet",
    )
    registered = False
    if settings.catalog_url:
        item = forecast_item(
            settings.forecast_collection,
            rid,
            area.as_tuple(),
            start,
            end,
            f"s3://{settings.bucket}/{key}",
            settings.model_name,
            version,
            datetime.now(UTC),
        )
        register_item(settings.catalog_url, item)
        registered = True
    return BatchOutcome(rid, key, result.num_rows, len(series), registered)
