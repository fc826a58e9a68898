"""Batch prediction runs: every station in an area, every hour of a period, one Parquet object.

A run's identity (model version, area, period) names its object and its catalog item, so a
run repeated (a SLURM job retried) overwrites the same object with the same rows and upserts
the same item. Results go to `forecasts/<model>/<version>/<run id>.parquet`.

A model trained with NWP input (features.nwp) is fed, per station and origin, the site's
ingested ECMWF 2 m temperature from the newest run published before the origin that could be
read (else the one before it), read as training reads it (train_from_store.ingested_forecasts: the same source, nearest grid point,
lapse-rate correction and publication delay, the model's own); a station or hour without one
has none (the model's has-a-forecast flags 0), as a request without one in serving.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from botocore.exceptions import ClientError

from fedeploy_inference.catalog import forecast_item, register_item
from fedeploy_inference.device import resolve_device
from fedeploy_inference.features import (
    TARGETS,
    absent_reason,
    encode,
    observed_targets,
    withhold_unobserved,
)
from fedeploy_inference.hourly import StationSeries, to_hourly
from fedeploy_inference.nwp import DEFAULT_AVAILABLE_AFTER_HOURS, Forecasts, StationForecasts
from fedeploy_inference.predictor import run_model
from fedeploy_inference.registry import LoadedModel, load_model, model_prefix, resolve_version
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.settings import InferenceSettings
from fedeploy_inference.train_from_store import ingested_forecasts
from fedeploy_inference.window_store import list_windows, read_windows, table_to_parquet

log = logging.getLogger(__name__)
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
        # Null where the station has not reported the variable; `<variable>_reason` says so.
        *(pa.field(t, pa.float64()) for t in TARGETS),
        *(pa.field(f"{t}_reason", pa.string()) for t in TARGETS),
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
    """Where a run's results went. For a model with NWP input (else None): `nwp_stations`, how
    many stations had an ingested forecast at any hour; `nwp_failed_products`, how many products
    of the runs read could not be read (logged with their reasons); `nwp_station_hours` and
    `nwp_station_hours_without`, how many (station, origin) forecasts had an NWP forecast for
    at least one lead hour, and how many had none (the model's rule for none applied)."""

    run_id: str
    key: str
    rows: int
    stations: int
    registered: bool
    nwp_stations: int | None = None
    nwp_failed_products: int | None = None
    nwp_station_hours: int | None = None
    nwp_station_hours_without: int | None = None


def run_id(version: str, area: Area, start: datetime, end: datetime) -> str:
    """A run's identity, stable across retries."""
    digest = hashlib.sha256(repr((version, area.as_tuple())).encode()).hexdigest()[:8]
    return f"{version}_{start:%Y%m%dT%H%M%SZ}_{end:%Y%m%dT%H%M%SZ}_{digest}"


def _whole_hour(name: str, when: datetime) -> datetime:
    if when.tzinfo is None or when.minute or when.second or when.microsecond:
        raise ValueError(f"batch {name}: {when.isoformat()} given; a whole UTC hour is required")
    return when.astimezone(UTC)


def forecast_station(
    loaded: LoadedModel,
    st: StationSeries,
    start: datetime,
    end: datetime,
    history_hours: int = 24,
    nwp: StationForecasts | None = None,
    available_after_hours: float = DEFAULT_AVAILABLE_AFTER_HOURS,
) -> pa.Table:
    """Forecasts from every whole hour in [start, end) with a usable context at one station.

    A target the station has not reported within `history_hours` (at least the context) before
    an origin is null there, with `<target>_reason` saying why. For a model with NWP input
    (spec.nwp), `nwp` is the station's ingested forecasts (None: it has none), each origin
    reading the newest run usable `available_after_hours` after its reference time.
    """
    return _forecast_station(loaded, st, start, end, history_hours, nwp, available_after_hours)[0]


def _forecast_station(
    loaded: LoadedModel,
    st: StationSeries,
    start: datetime,
    end: datetime,
    history_hours: int,
    nwp: StationForecasts | None,
    available_after_hours: float,
) -> tuple[pa.Table, int]:
    """forecast_station's table, and how many of its origins had an NWP forecast for at least
    one lead hour (0 for a model without NWP input)."""
    spec = loaded.spec
    c = spec.context_hours
    back = max(c, history_hours)
    origins = np.arange(
        int(start.timestamp() * 1e6), int(end.timestamp() * 1e6), _HOUR_US, dtype=np.int64
    )
    first_us = int(st.start.timestamp() * 1e6)
    index = (origins - first_us) // _HOUR_US  # bin index of each origin in the series
    padded = np.concatenate(
        [
            np.full((back, st.values.shape[1]), np.nan),
            st.values,
            np.full(
                (max(0, int(index.max()) - st.values.shape[0] + 1), st.values.shape[1]), np.nan
            ),
        ]
    )
    # Padded row r is series bin r - back, so origin bin i reads its context from padded rows
    # [i + back - c, i + back) and its history from [i, i + back); an origin at or before the
    # series' first bin has no context at all.
    keep = index >= 1
    origins, index = origins[keep], index[keep]
    if not index.size:
        return FORECAST_SCHEMA.empty_table(), 0
    context = np.stack([padded[i + back - c : i + back] for i in index])
    observed = observed_targets(np.stack([padded[i : i + back] for i in index]))
    lon = np.full(origins.shape, np.nan if st.longitude is None else st.longitude)
    nan = np.full(origins.shape, np.nan)
    temperature = None
    if spec.nwp:
        temperature = (
            np.full((origins.size, spec.horizon_hours), np.nan)
            if nwp is None
            else nwp.at(origins, spec.horizon_hours, available_after_hours)
        )
    encoded = encode(spec, context, origins, lon, nan, nan, observed, temperature)
    usable = encoded.usable
    if not usable.any():
        return FORECAST_SCHEMA.empty_table(), 0
    with_nwp = (
        0
        if temperature is None
        else int(np.count_nonzero((~np.isnan(temperature)).any(axis=1) & usable))
    )
    encoded = encoded.select(usable)
    forecast = withhold_unobserved(run_model(loaded, encoded), encoded.observed)
    origins = origins[usable]
    n, h = forecast.shape[0], forecast.shape[1]
    leads = np.tile(np.arange(1, h + 1, dtype=np.int16), n)
    issued = np.repeat(origins, h)
    columns: dict[str, object] = {}
    for j, target in enumerate(TARGETS):
        values = forecast[:, :, j].reshape(-1).astype(float)
        absent = np.isnan(values)
        columns[target] = pa.array(values, pa.float64(), mask=absent)
        columns[f"{target}_reason"] = pa.array(
            [absent_reason(target) if a else None for a in absent], pa.string()
        )
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
            **columns,
        },
        schema=FORECAST_SCHEMA,
    ), with_nwp


def forecast_variables(table: pa.Table) -> dict[str, dict[str, object]]:
    """Per station of a run's table: the targets forecast at least once (`forecast`) and, for
    each target never forecast, why (`absent`)."""
    out: dict[str, dict[str, object]] = {}
    for station in sorted(set(table["station"].to_pylist())):
        rows = table.filter(pc.equal(table["station"], station))
        made = [t for t in TARGETS if rows[t].null_count < rows.num_rows]
        out[station] = {
            "forecast": made,
            "absent": {t: absent_reason(t) for t in TARGETS if t not in made},
        }
    return out


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
    history = max(loaded.spec.context_hours, settings.observed_history_hours)
    context_start = start - timedelta(hours=history)
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
    stations: dict[str, StationForecasts] = {}
    delay = DEFAULT_AVAILABLE_AFTER_HOURS
    if loaded.spec.nwp:
        delay = _available_after_hours(client, settings.bucket, settings.model_name, version)
        read = ingested_forecasts(client, settings.bucket, series, False, delay, (start, end))
        stations = {} if read is None else read.stations
        _log_forecasts_read(read, len(series))
    parts = [
        _forecast_station(
            loaded,
            st,
            start,
            end,
            settings.observed_history_hours,
            stations.get(name),
            delay,
        )
        for name, st in series.items()
    ]
    result = (
        pa.concat_tables([table for table, _ in parts]) if parts else FORECAST_SCHEMA.empty_table()
    )
    hours = result.num_rows // loaded.spec.horizon_hours  # (station, origin) forecasts
    with_nwp = sum(n for _, n in parts)
    if loaded.spec.nwp:
        (log.warning if with_nwp < hours else log.info)(
            "NWP input: %d of %d station-hours forecast with an NWP forecast, %d without one "
            "(the model's rule for none)",
            with_nwp,
            hours,
            hours - with_nwp,
        )
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
            forecast_variables(result),
        )
        register_item(settings.catalog_url, item)
        registered = True
    if not loaded.spec.nwp:
        return BatchOutcome(rid, key, result.num_rows, len(series), registered)
    return BatchOutcome(
        rid,
        key,
        result.num_rows,
        len(series),
        registered,
        nwp_stations=len(stations),
        nwp_failed_products=0 if read is None else len(read.failed),
        nwp_station_hours=with_nwp,
        nwp_station_hours_without=hours - with_nwp,
    )


def _log_forecasts_read(read: Forecasts | None, stations: int) -> None:
    """What a batch run's NWP read gave: the stations with a forecast (a warning where none),
    the products that failed, the stations no product covered and the sources not read (each
    a warning with the first few ids and reasons)."""
    (log.info if read is not None and read.stations else log.warning)(
        "NWP input: %d of %d stations have an ingested forecast (%s)",
        0 if read is None else len(read.stations),
        stations,
        "no ECMWF product with 2t in the bucket" if read is None else f"{read.products} products",
    )
    if read is None:
        return
    for what, reasons in (
        ("product(s) could not be read (their hours read the run before, if any)", read.failed),
        ("station(s) covered by no product", read.not_covered),
        ("source(s) not read", read.sources_not_read),
    ):
        if reasons:
            log.warning("NWP input: %d %s: %s", len(reasons), what, _first_few(reasons))


def _first_few(reasons: dict[str, str], shown: int = 3) -> str:
    """The first `shown` entries (by id) as `id: reason`, and how many more."""
    named = sorted(reasons.items())
    text = "; ".join(f"{key}: {why}" for key, why in named[:shown])
    return text + (f"; and {len(named) - shown} more" if len(named) > shown else "")


def _available_after_hours(client: Any, bucket: str, name: str, version: str) -> float:
    """The publication delay the version was trained with (data.json's train_config), so a
    batch run reads the runs its training samples could read; the default where not recorded."""
    key = model_prefix(name, version) + "data.json"
    try:
        data = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        return float(data["train_config"]["nwp_available_after_hours"])
    except (KeyError, TypeError, ValueError, ClientError):
        return DEFAULT_AVAILABLE_AFTER_HOURS
