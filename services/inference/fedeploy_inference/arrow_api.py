"""Arrow IPC stream bodies of the batch prediction endpoint (`application/vnd.apache.arrow.stream`).

For batch clients: the request is read straight into the columns the vectorised encoder takes
(RequestArrays) with array checks over the whole table, and the answer is written from the
forecast arrays, so neither side builds a Python object per observation or per lead.

Request table, one row per observation (a request is a run of consecutive rows with the same
station and issued_at, in the order the rows come; the per-request columns must then be equal on
every row of the run):

    station            string (or large_string, or a dictionary of either)  required, not null,
                       1-128 characters of [A-Za-z0-9._-]
    issued_at          timestamp with a time zone (any unit; read as us)     required, not null,
                       a whole hour
    time               timestamp with a time zone                            required, not null,
                       before issued_at
    longitude          float64, null: unknown                                optional, -180..180
    latitude           float64, null: unknown                                optional, -90..90
    scene_cloud_cover  float64, null: no scene                               optional, 0..100
    scene_acquired     timestamp with a time zone, null: no scene            optional, with
                       scene_cloud_cover (both null or both set)
    air_temperature, relative_humidity, air_pressure, wind_speed, precipitation
                       float64, null: missing                                optional (absent:
                       all missing), within contract.LIMITS, never NaN or infinite

Any other column is refused (as JSON refuses unknown fields). Several record batches are one
table; the stream must be whole (a truncated stream is refused).

Response table, one row per station x lead, in the order of the requests and their leads:

    station string, issued_at timestamp[us, UTC], lead_hours int32, time timestamp[us, UTC]
    (the hour [time, time + 1 h)), air_temperature float64, precipitation float64 (null: the
    station has not reported it), air_temperature_reason, precipitation_reason string (null
    when forecast); the schema's metadata carries model_name and model_version.

Refusals are FastAPI's 422 shape, located as ["body", <column>, <first offending row>].
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fedeploy_inference.contract import LIMITS, VARIABLES
from fedeploy_inference.features import TARGETS, absent_reason
from fedeploy_inference.predictor import _NO_SCENE, RequestArrays

ARROW_STREAM = "application/vnd.apache.arrow.stream"
MAX_OBSERVATIONS = 10_000  # per request, as PredictionRequest.observations
# The body read at most: far above max_batch requests of a day of hourly observations (about
# 120 bytes a row), below what would let one request exhaust the server's memory.
MAX_BODY_BYTES = 256 * 2**20
_HOUR_US = 3_600_000_000
_STATION_PATTERN = r"^[A-Za-z0-9._-]+$"

_REQUIRED = ("station", "issued_at", "time")
_FLOATS: dict[str, tuple[float, float]] = {
    "longitude": (-180.0, 180.0),
    "latitude": (-90.0, 90.0),
    "scene_cloud_cover": (0.0, 100.0),
    **LIMITS,
}
COLUMNS = (*_REQUIRED, "longitude", "latitude", "scene_cloud_cover", "scene_acquired", *VARIABLES)

RESPONSE_SCHEMA = pa.schema(
    [
        ("station", pa.string()),
        ("issued_at", pa.timestamp("us", tz="UTC")),
        ("lead_hours", pa.int32()),
        ("time", pa.timestamp("us", tz="UTC")),
        *((t, pa.float64()) for t in TARGETS),
        *((f"{t}_reason", pa.string()) for t in TARGETS),
    ]
)


class ArrowRejected(ValueError):
    """A refused Arrow body: `column` and `row` (None: the body as a whole) locate it."""

    def __init__(self, column: str | None, row: int | None, message: str) -> None:
        super().__init__(message)
        self.column, self.row = column, row

    @property
    def loc(self) -> list[str | int]:
        return [
            "body",
            *([self.column] if self.column else []),
            *([] if self.row is None else [self.row]),
        ]


@dataclass(frozen=True)
class ArrowBatch:
    """A parsed Arrow request: the encoder's columns, and per request its station and the first
    row of its run (to locate a refusal of the request as a whole)."""

    arrays: RequestArrays
    stations: pa.Array
    first_rows: np.ndarray


def read_table(body: bytes) -> pa.Table:
    """The whole table of an IPC stream; a body that is not one is refused."""
    try:
        with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
            return reader.read_all()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as error:
        raise ArrowRejected(
            None, None, f"not a complete Arrow IPC stream ({ARROW_STREAM}): {error}"
        ) from None


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _timestamps_us(table: pa.Table, name: str, nullable: bool) -> tuple[np.ndarray, np.ndarray]:
    """A timestamp column as int64 microseconds and its validity (exact: finer units refused
    where they do not fall on a microsecond)."""
    column = table.column(name)
    kind = column.type
    if not pa.types.is_timestamp(kind) or kind.tz is None:
        raise ArrowRejected(
            name,
            None,
            f"{name} is {kind}; a timestamp with a time zone (timestamp[us, UTC]) is required",
        )
    try:
        us = (
            column.cast(pa.int64())
            if kind.unit == "us"
            else column.cast(pa.timestamp("us", tz="UTC"))
        )
    except pa.ArrowInvalid as error:
        raise ArrowRejected(name, None, f"{name}: not whole microseconds ({error})") from None
    if column.null_count == 0:
        return us.cast(pa.int64()).to_numpy(), np.ones(len(column), dtype=bool)
    valid = pc.is_valid(us).to_numpy(zero_copy_only=False)
    if not nullable and (row := _first(~valid)) is not None:
        raise ArrowRejected(name, row, f"{name} is null at row {row}; a time is required")
    values = us.cast(pa.int64()).fill_null(0).to_numpy()
    return values, valid


def _floats(table: pa.Table, name: str) -> np.ndarray:
    """A float64 column as a numpy array, NaN where null; NaN, infinities and values out of the
    column's range refused."""
    n = table.num_rows
    if name not in table.column_names:
        return np.full(n, np.nan)
    column = table.column(name)
    if column.type != pa.float64():
        raise ArrowRejected(
            name, None, f"{name} is {column.type}; float64 (null: missing) is required"
        )
    values = column.to_numpy()  # nulls read as NaN
    nonfinite = ~np.isfinite(values)
    # Every non-finite value a null: no NaN or infinity was sent (the validity is read only
    # to find the first that was).
    if (
        int(np.count_nonzero(nonfinite)) != column.null_count
        and (row := _first(nonfinite & pc.is_valid(column).to_numpy(zero_copy_only=False)))
        is not None
    ):
        raise ArrowRejected(
            name, row, f"{name} is {values[row]} at row {row}; finite numbers or null are allowed"
        )
    low, high = _FLOATS[name]
    with np.errstate(invalid="ignore"):
        outside = (values < low) | (values > high)
    if (row := _first(outside)) is not None:
        raise ArrowRejected(
            name, row, f"{name} is {values[row]} at row {row}; {low:g} to {high:g} is allowed"
        )
    return np.ascontiguousarray(values, dtype=np.float64)


def _stations(table: pa.Table) -> pa.Array:
    column = table.column("station")
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)  # dictionary-encoded ids: read as their strings
        kind = column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise ArrowRejected("station", None, f"station is {kind}; a string is required")
    stations = column.combine_chunks().cast(pa.string())
    if (
        stations.null_count
        and (row := _first(~pc.is_valid(stations).to_numpy(zero_copy_only=False))) is not None
    ):
        raise ArrowRejected("station", row, f"station is null at row {row}; an id is required")
    return stations


def _check_ids(stations: pa.Array, starts: np.ndarray) -> pa.Array:
    """The requests' ids, read from their first rows (every row of a run has its id) and
    checked against the API's length and pattern: a bad id's first row is a run's first."""
    ids = stations.take(pa.array(starts))
    length = pc.utf8_length(ids).to_numpy()
    ok = pc.match_substring_regex(ids, _STATION_PATTERN).to_numpy(zero_copy_only=False)
    if (bad := _first((length < 1) | (length > 128) | ~ok)) is not None:
        row = int(starts[bad])
        raise ArrowRejected(
            "station",
            row,
            f"station {ids[bad].as_py()!r} at row {row}: 1 to 128 characters "
            f"of {_STATION_PATTERN} are allowed",
        )
    return ids


def _constant_within(name: str, values: np.ndarray, starts: np.ndarray, owner: np.ndarray) -> None:
    """A per-request column must be equal (NaN equal to NaN) on every row of its request."""
    first = values[starts][owner]
    differs = ~((values == first) | (np.isnan(values) & np.isnan(first)))
    if (row := _first(differs)) is not None:
        raise ArrowRejected(
            name,
            row,
            f"{name} at row {row} differs from the first row of its request (row "
            f"{int(starts[owner[row]])}); one value per station and issued_at is allowed",
        )


def parse_request(body: bytes, max_batch: int) -> ArrowBatch:
    """An Arrow request body checked and read into the encoder's columns (see the module's
    schema); raises ArrowRejected naming the column and the first offending row."""
    table = read_table(body)
    extra = [c for c in table.column_names if c not in COLUMNS]
    if extra:
        raise ArrowRejected(
            extra[0], None, f"unknown column {extra[0]!r}; the columns are {', '.join(COLUMNS)}"
        )
    if len(set(table.column_names)) != len(table.column_names):
        raise ArrowRejected(None, None, "a column is given twice")
    for name in _REQUIRED:
        if name not in table.column_names:
            raise ArrowRejected(name, None, f"column {name!r} is required")
    n = table.num_rows
    if n == 0:
        raise ArrowRejected(None, None, "no rows given; at least one observation is required")
    stations = _stations(table)
    origins, _ = _timestamps_us(table, "issued_at", nullable=False)
    times, _ = _timestamps_us(table, "time", nullable=False)
    if (row := _first(origins % _HOUR_US != 0)) is not None:
        raise ArrowRejected(
            "issued_at", row, f"issued_at at row {row} is not a whole hour (mm:ss = 00:00)"
        )
    if (row := _first(times >= origins)) is not None:
        raise ArrowRejected(
            "time",
            row,
            f"time at row {row} is not before issued_at; only past observations are allowed",
        )
    # A request is a run of rows with the same station and issued_at.
    same_station = pc.equal(stations[1:], stations[:-1]).to_numpy(zero_copy_only=False)
    new = np.ones(n, dtype=bool)
    new[1:] = ~(same_station & (origins[1:] == origins[:-1]))
    starts = np.flatnonzero(new)
    ids = _check_ids(stations, starts)
    b = starts.size
    if b > max_batch:
        raise ArrowRejected(
            "station",
            int(starts[max_batch]),
            f"{b} requests given (runs of station and "
            f"issued_at); at most {max_batch} allowed (INFER_MAX_BATCH)",
        )
    counts = np.diff(np.append(starts, n))
    if (big := _first(counts > MAX_OBSERVATIONS)) is not None:
        row = int(starts[big]) + MAX_OBSERVATIONS
        raise ArrowRejected(
            "time",
            row,
            f"{int(counts[big])} observations in the request from row "
            f"{int(starts[big])}; at most {MAX_OBSERVATIONS} allowed",
        )
    owner = np.repeat(np.arange(b), counts)
    floats = {name: _floats(table, name) for name in _FLOATS}
    if "scene_acquired" in table.column_names:
        acquired, has_acquired = _timestamps_us(table, "scene_acquired", nullable=True)
    else:
        acquired, has_acquired = np.zeros(n, np.int64), np.zeros(n, bool)
    has_cloud = ~np.isnan(floats["scene_cloud_cover"])
    if (row := _first(has_cloud != has_acquired)) is not None:
        name = "scene_acquired" if has_cloud[row] else "scene_cloud_cover"
        raise ArrowRejected(
            name,
            row,
            f"{name} is null at row {row} while the other scene column is not; "
            "a scene has both or neither",
        )
    acquired = np.where(has_acquired, acquired, _NO_SCENE)
    for name in ("longitude", "latitude", "scene_cloud_cover"):
        _constant_within(name, floats[name], starts, owner)
    if (row := _first(acquired != acquired[starts][owner])) is not None:
        raise ArrowRejected(
            "scene_acquired",
            row,
            f"scene_acquired at row {row} differs from the first row of "
            "its request; one scene per station and issued_at is allowed",
        )
    values = np.stack([floats[v] for v in VARIABLES], axis=1)
    arrays = RequestArrays(
        origins_us=origins[starts],
        longitude=floats["longitude"][starts],
        scene_cloud=floats["scene_cloud_cover"][starts],
        scene_acquired_us=acquired[starts],
        owner=owner,
        times_us=times,
        values=values,
    )
    return ArrowBatch(arrays, ids, starts)


def response_table(
    batch: ArrowBatch, forecast: np.ndarray, observed: np.ndarray, model: tuple[str, str]
) -> pa.Table:
    """The answer table (RESPONSE_SCHEMA) from forecasts (B, horizon, targets), NaN withheld, and
    which targets each request observed (B, targets): array operations only."""
    b, horizon, _ = forecast.shape
    request = np.repeat(np.arange(b), horizon)
    lead = np.tile(np.arange(1, horizon + 1, dtype=np.int32), b)
    origins = batch.arrays.origins_us[request]
    values = forecast.astype(np.float64).reshape(b * horizon, -1)
    columns: list[Any] = [
        batch.stations.take(pa.array(request)),
        pa.array(origins, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        pa.array(lead),
        pa.array(origins + (lead.astype(np.int64) - 1) * _HOUR_US).cast(
            pa.timestamp("us", tz="UTC")
        ),
    ]
    columns += [pa.array(values[:, k], mask=np.isnan(values[:, k])) for k in range(len(TARGETS))]
    for k, target in enumerate(TARGETS):
        choices = pa.array([None, absent_reason(target)], pa.string())
        columns.append(choices.take(pa.array((~observed[request, k]).astype(np.int8))))
    schema = RESPONSE_SCHEMA.with_metadata({"model_name": model[0], "model_version": model[1]})
    return pa.Table.from_arrays(columns, schema=schema)


def to_stream(table: pa.Table) -> bytes:
    """A table as the bytes of an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def table_from_requests(requests: list[dict[str, Any]]) -> pa.Table:
    """A client's helper: JSON-shaped request documents (PredictionRequest's fields) as the
    request table, one row per observation. For tests and benchmarks; a batch client builds its
    columns directly."""
    rows: dict[str, list[Any]] = {name: [] for name in COLUMNS}

    def when(text: str) -> datetime:
        return datetime.fromisoformat(text) if isinstance(text, str) else text

    for req in requests:
        scene = req.get("scene")
        for obs in req["observations"]:
            rows["station"].append(req["station"])
            rows["issued_at"].append(when(req["issued_at"]))
            rows["time"].append(when(obs["time"]))
            rows["longitude"].append(req.get("longitude"))
            rows["latitude"].append(req.get("latitude"))
            rows["scene_cloud_cover"].append(scene["cloud_cover"] if scene else None)
            rows["scene_acquired"].append(when(scene["acquired"]) if scene else None)
            for name in VARIABLES:
                rows[name].append(obs.get(name))
    stamp = pa.timestamp("us", tz="UTC")
    types = {name: pa.float64() for name in COLUMNS} | {
        "station": pa.string(),
        "issued_at": stamp,
        "time": stamp,
        "scene_acquired": stamp,
    }
    return pa.table({name: pa.array(rows[name], types[name]) for name in COLUMNS})
