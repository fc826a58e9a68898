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
    forecast           list<double> (or large_list, fixed_size_list; any     optional; only for a
                       float, integer or null element type), null: no        model with features.nwp
                       forecast (a column of type null: none anywhere)
                       The request's NWP 2 m temperature at the station (degC) for lead hours
                       1, 2, ... (as JSON's `forecast`: from the newest run published before
                       issued_at), null elements where none: 1 to MAX_FORECAST_LEADS elements,
                       each within the air_temperature limits, never NaN or infinite. Other
                       element types are widened to float64 as sent (a float32 3.1 is read as
                       3.0999999, JSON's 3.1 as 3.1). Set on each request's first row and null
                       on its other rows (one list a request, not one a row). A model with
                       features.nwp refuses a request whose first row has none (or more leads
                       than its horizon), a model without refuses one that has one, both as
                       ["body", "forecast", <the request's first row>].

Any other column is refused (as JSON refuses unknown fields). Several record batches are one
table; the stream must be whole and valid (a truncated stream, or list or string offsets that
are negative, decreasing or past their values, are refused before any column is read). Its
message headers are read first (check_stream): a compressed record or dictionary batch, more
rows than max_batch requests may have, or more than four messages a request allowed are
refused before anything is decompressed or decoded.

Response table, one row per station x lead, in the order of the requests and their leads:

    station string, issued_at timestamp[us, UTC], lead_hours int32, time timestamp[us, UTC]
    (the hour [time, time + 1 h)), air_temperature float64, precipitation float64 (null: the
    station has not reported it), air_temperature_reason, precipitation_reason string (null
    when forecast); the schema's metadata carries model_name and model_version.

Refusals are FastAPI's 422 shape, located as ["body", <column>, <first offending row>].
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fedeploy_inference.api_schema import MAX_FORECAST_LEADS
from fedeploy_inference.contract import LIMITS, VARIABLES
from fedeploy_inference.features import TARGETS, absent_reason
from fedeploy_inference.ipc_headers import (
    REMEMBERED_SCHEMA_BYTES,
    Declared,
    MalformedHeader,
    declared,
)
from fedeploy_inference.predictor import _NO_SCENE, RequestArrays, RequestRejected

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
FORECAST = "forecast"  # the optional per-request NWP column (see the module's schema)
_ALL_COLUMNS = (*COLUMNS, FORECAST)
_FORECAST_TYPE = pa.list_(pa.float64())

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
    first_rows: np.ndarray | None  # None: not read from a table (a JSON body answered in Arrow)

    def rejected(self, error: RequestRejected) -> ArrowRejected:
        """A request the model refused (loc: its index and field), located at its first row:
        in the `forecast` column where its forecast is at fault, else in air_temperature."""
        assert self.first_rows is not None, "only a batch read from a table has rows"
        row = int(self.first_rows[int(error.loc[0])])
        column = FORECAST if error.loc[1:2] == (FORECAST,) else "air_temperature"
        return ArrowRejected(column, row, f"the request from row {row}: {error}")


def most_rows(max_batch: int) -> int:
    """The most rows a request table may have: max_batch requests of MAX_OBSERVATIONS each."""
    return max_batch * MAX_OBSERVATIONS


def most_messages(max_batch: int) -> int:
    """The most IPC messages (schema, dictionaries, record batches) a request stream may have:
    four per request allowed, so that reading one costs no more than its rows."""
    return 4 * max_batch


def check_stream(body: bytes, max_batch: int, stop_after: int | None = None) -> Declared | None:
    """What the stream's message headers declare, read before any body is decoded; a stream
    that is compressed, declares more than most_rows(max_batch) rows or has more than
    most_messages(max_batch) messages is refused (ArrowRejected), as is a broken one. None
    where the walk stopped after `stop_after` messages (more remain; nothing checked)."""
    most = most_messages(max_batch)
    walk = most if stop_after is None else min(stop_after, most)
    try:
        found = declared(body, walk)
    except (pa.ArrowInvalid, OSError, MalformedHeader) as error:
        raise _not_a_stream(error) from None
    if found is None:
        if walk < most:  # stopped early: more remain, nothing checked
            return None
        raise ArrowRejected(
            None,
            None,
            f"more than {most_messages(max_batch)} IPC messages; at most four per request "
            "allowed (INFER_MAX_BATCH): write the table as fewer, larger record batches",
        )
    if found.compression is not None:
        raise ArrowRejected(
            None,
            None,
            f"the stream's batches are compressed ({found.compression}); only uncompressed "
            f"IPC streams are accepted (pyarrow: IpcWriteOptions(compression=None), the "
            "default)",
        )
    if found.rows > most_rows(max_batch):
        raise ArrowRejected(
            None,
            None,
            f"the stream declares {found.rows} rows; at most {most_rows(max_batch)} allowed "
            f"({max_batch} requests (INFER_MAX_BATCH) of at most {MAX_OBSERVATIONS} "
            "observations)",
        )
    return found


def _not_a_stream(error: Exception) -> ArrowRejected:
    return ArrowRejected(
        None, None, f"not a complete and valid Arrow IPC stream ({ARROW_STREAM}): {error}"
    )


def read_table(body: bytes) -> pa.Table:
    """The whole table of an IPC stream, fully validated; a body that is not one is refused.
    Its headers are to be checked first (check_stream): reading decompresses and decodes.

    The IPC reader checks only buffer sizes: list and string offsets that are negative,
    decreasing or past their values would make a compute kernel read out of bounds (a crash),
    so every offset is checked here (`validate(full=True)`) before any column is read. A
    schema other than REQUEST_SCHEMA(_NWP) has its field names and time zones read once, so
    that one that is not UTF-8 is refused here, not met as an error later. A request schema's
    stream is read message by message (_request_batches), any other by pyarrow's stream reader:
    the same table either way."""
    try:
        table = _request_batches(body)
        if table is None:
            with pa.ipc.open_stream(pa.py_buffer(body)) as reader:
                table = reader.read_all()
        table.validate(full=True)
        if not (table.schema.equals(REQUEST_SCHEMA) or table.schema.equals(REQUEST_SCHEMA_NWP)):
            for field in table.schema:  # their names and time zones are read as UTF-8
                if field.name and pa.types.is_timestamp(field.type):
                    str(field.type.tz)
    except (pa.ArrowException, OSError, UnicodeDecodeError) as error:
        raise _not_a_stream(error) from None
    return table


def _request_batches(body: bytes) -> pa.Table | None:
    """The table of a stream whose schema is REQUEST_SCHEMA(_NWP) and whose other messages are
    record batches, read with the schema remembered by its message's bytes (no stream reader
    and no schema parsed per call); not validated. None for any other stream (dictionaries,
    another schema, a message pyarrow refuses): the stream reader reads it as before, and
    words its errors."""
    messages = pa.ipc.MessageReader.open_stream(pa.py_buffer(body))
    try:
        first = messages.read_next_message()
        if first.type != "schema" or first.metadata.size > REMEMBERED_SCHEMA_BYTES:
            return None
        schema = _request_schema(first.serialize().to_pybytes())
        if schema is None:
            return None
        batches = []
        for message in messages:
            if message.type != "record batch":
                return None
            batches.append(pa.ipc.read_record_batch(message, schema))
    except (pa.ArrowException, OSError, StopIteration):
        return None
    return pa.Table.from_batches(batches, schema)


@functools.lru_cache(maxsize=8)
def _request_schema(message: bytes) -> pa.Schema | None:
    """The schema an encapsulated schema message declares where it is REQUEST_SCHEMA or
    REQUEST_SCHEMA_NWP (its metadata kept), else None; remembered by the message's bytes.
    Schema.equals compares byte order too: a big-endian stream is left to the stream reader,
    which swaps its buffers (read_record_batch would not)."""
    schema = pa.ipc.read_schema(pa.ipc.read_message(pa.py_buffer(message)))
    return schema if schema.equals(REQUEST_SCHEMA) or schema.equals(REQUEST_SCHEMA_NWP) else None


def _first(mask: np.ndarray) -> int | None:
    """The first True of a boolean array, None if none (argmax stops at the first)."""
    return int(mask.argmax()) if np.count_nonzero(mask) else None


def _timestamps_us(
    column: pa.ChunkedArray, name: str, nullable: bool, typed: bool
) -> tuple[np.ndarray, np.ndarray]:
    """A timestamp column as int64 microseconds (any value where null) and its validity (one
    True where it has no nulls); finer units refused where they do not fall on a microsecond.
    `typed`: the column is known to be timestamp[us, UTC]."""
    if not typed:
        kind = column.type
        if not pa.types.is_timestamp(kind) or kind.tz is None:
            raise ArrowRejected(
                name,
                None,
                f"{name} is {kind}; a timestamp with a time zone (timestamp[us, UTC]) is required",
            )
        if kind.unit != "us":
            try:
                column = column.cast(_STAMP)
            except pa.ArrowInvalid as error:
                raise ArrowRejected(
                    name, None, f"{name}: not whole microseconds ({error})"
                ) from None
    values = column.to_numpy().view(np.int64)  # datetime64[us], NaT where null
    if column.null_count == 0:
        return values, _ALL_VALID
    valid = values != _NAT
    if np.count_nonzero(valid) != len(values) - column.null_count:  # a value sent was NaT's
        valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    if not nullable and (row := _first(~valid)) is not None:
        raise ArrowRejected(name, row, f"{name} is null at row {row}; a time is required")
    return values, valid


_STAMP = pa.timestamp("us", tz="UTC")
_NAT = np.iinfo(np.int64).min
# _timestamps_us's validity of a column without nulls (broadcast against any row count).
_ALL_VALID = np.ones(1, dtype=bool)
_FLOAT_NAMES = tuple(_FLOATS)
_LOW = np.array([[low] for low, _ in _FLOATS.values()])
_HIGH = np.array([[high] for _, high in _FLOATS.values()])
# The request table as batch clients are told to write it (table_from_requests does): a body
# with this schema needs no check of its columns' names and types, only of their values.
REQUEST_SCHEMA = pa.schema(
    [
        ("station", pa.string()),
        ("issued_at", _STAMP),
        ("time", _STAMP),
        *((name, pa.float64()) for name in ("longitude", "latitude", "scene_cloud_cover")),
        ("scene_acquired", _STAMP),
        *((name, pa.float64()) for name in VARIABLES),
    ]
)
# The same with the forecast column, as table_from_requests writes it for requests that give one.
REQUEST_SCHEMA_NWP = REQUEST_SCHEMA.append(pa.field(FORECAST, _FORECAST_TYPE))


def _floats(columns: dict[str, pa.ChunkedArray], n: int, typed: bool) -> np.ndarray:
    """The float64 columns (_FLOATS' order) as one (columns, rows) array, NaN where null or
    absent; NaN, infinities and values out of a column's range refused. The checks run over
    the whole array; only a refused table is looked at column by column, to name the first
    column and row at fault as a column-by-column reading would. `typed`: the schema is
    REQUEST_SCHEMA (every column present, float64)."""
    out = np.empty((len(_FLOATS), n)) if typed else np.full((len(_FLOATS), n), np.nan)
    missing = 0  # NaN expected: the nulls and the absent columns' rows
    for k, name in enumerate(_FLOAT_NAMES):
        column = columns.get(name)
        if column is None:
            missing += n
            continue
        if not typed and column.type != pa.float64():
            _refuse_floats(columns, out[:k])  # a value refused in an earlier column comes first
            raise ArrowRejected(
                name, None, f"{name} is {column.type}; float64 (null: missing) is required"
            )
        out[k] = column.to_numpy()  # nulls read as NaN
        missing += column.null_count
    # Only the missing values fail (NaN compares false): no NaN or infinity was sent, and
    # every value sent is within its column's range.
    if int(np.count_nonzero((out >= _LOW) & (out <= _HIGH))) != out.size - missing:
        _refuse_floats(columns, out)
    return out


def _refuse_floats(columns: dict[str, pa.ChunkedArray], read: np.ndarray) -> None:
    """Raises ArrowRejected for the first column of `read` (_FLOATS' order) holding a value sent
    as NaN or infinite, or out of its range, at its first such row; returns if none does."""
    for name, values in zip(_FLOAT_NAMES, read, strict=False):
        if name not in columns:
            continue
        column = columns[name]
        nonfinite = ~np.isfinite(values)
        # The validity is read only to tell a NaN that was sent from a null.
        if (
            int(np.count_nonzero(nonfinite)) != column.null_count
            and (row := _first(nonfinite & pc.is_valid(column).to_numpy(zero_copy_only=False)))
            is not None
        ):
            raise ArrowRejected(
                name,
                row,
                f"{name} is {values[row]} at row {row}; finite numbers or null are allowed",
            )
        low, high = _FLOATS[name]
        with np.errstate(invalid="ignore"):
            outside = (values < low) | (values > high)
        if (row := _first(outside)) is not None:
            raise ArrowRejected(
                name, row, f"{name} is {values[row]} at row {row}; {low:g} to {high:g} is allowed"
            )


def _stations(column: pa.ChunkedArray, typed: bool) -> pa.Array:
    kind = column.type
    if not typed:
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
            if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                _check_expansion(column)
                column = column.cast(kind)  # dictionary-encoded ids: read as their strings
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise ArrowRejected("station", None, f"station is {kind}; a string is required")
    stations = (
        column.chunk(0)
        if column.num_chunks == 1 and pa.types.is_string(kind)
        else column.combine_chunks().cast(pa.string())
    )
    if (
        stations.null_count
        and (row := _first(~pc.is_valid(stations).to_numpy(zero_copy_only=False))) is not None
    ):
        raise ArrowRejected("station", row, f"station is null at row {row}; an id is required")
    return stations


def _check_expansion(column: pa.ChunkedArray) -> None:
    """Refuses a dictionary-encoded station column whose ids, written out (rows x its longest
    value), would take more than MAX_BODY_BYTES: a long value and many one-byte indices."""
    size = 0
    for chunk in column.chunks:
        lengths = pc.binary_length(chunk.dictionary)
        longest = pc.max(lengths).as_py() if len(lengths) else 0
        size += len(chunk) * (longest or 0)
    if size > MAX_BODY_BYTES:
        raise ArrowRejected(
            "station",
            None,
            f"the dictionary-encoded station column would take {size} bytes as strings (its "
            f"rows times its longest value); at most {MAX_BODY_BYTES} allowed (an id is 1-128 "
            "characters)",
        )


# The bytes _STATION_PATTERN allows: ids made only of these (and 1-128 long) need no regex.
_ID_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"


def _check_ids(stations: pa.Array, starts: np.ndarray) -> pa.Array:
    """The requests' ids, read from their first rows (every row of a run has its id) and
    checked against the API's length and pattern: a bad id's first row is a run's first."""
    ids = stations.take(pa.array(starts))
    # The common case over the ids' bytes at once: every byte allowed (so one byte a
    # character) and every length 1 to 128. Otherwise the pattern finds the first id at fault.
    _, offsets, data = ids.buffers()
    bounds = np.frombuffer(offsets, np.int32, len(ids) + 1, ids.offset * 4)
    length = np.diff(bounds)
    if length.min() >= 1 and length.max() <= 128 and data is not None:
        text = data.to_pybytes()[int(bounds[0]) : int(bounds[-1])]
        if not text.translate(None, _ID_BYTES):  # nothing left once the allowed bytes go
            return ids
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


def _constant_within(
    names: tuple[str, ...], values: np.ndarray, continues: np.ndarray, starts: np.ndarray
) -> None:
    """Per-request columns (one per row of `values`) must be equal (NaN equal to NaN) on every
    row of their request: each row to the one before where it `continues` its request (so to
    the request's first, and the first row at fault is the first that differs from it). The
    first column at fault is named. Equal bits pass at once (a null's NaN has one pattern);
    only a difference in bits is compared as numbers (0.0 equals -0.0)."""
    bits = values.view(np.int64)
    if not ((bits[:, 1:] != bits[:, :-1]) & continues).any():
        return
    after, before = values[:, 1:], values[:, :-1]
    differs = ~((after == before) | (np.isnan(after) & np.isnan(before))) & continues
    if not differs.any():
        return
    k = int(differs.any(axis=1).argmax())
    row = int(differs[k].argmax()) + 1
    request = int(np.searchsorted(starts, row, side="right")) - 1
    raise ArrowRejected(
        names[k],
        row,
        f"{names[k]} at row {row} differs from the first row of its request (row "
        f"{int(starts[request])}); one value per station and issued_at is allowed",
    )


def _columns(table: pa.Table) -> tuple[dict[str, pa.ChunkedArray], bool]:
    """The table's columns by name, and whether its schema is REQUEST_SCHEMA (then its names
    and types need no check); unknown, repeated and missing required columns refused."""
    if table.schema.equals(REQUEST_SCHEMA):
        return dict(zip(COLUMNS, table.columns, strict=True)), True
    names = table.column_names
    if table.schema.equals(REQUEST_SCHEMA_NWP):
        return dict(zip(names, table.columns, strict=True)), True
    extra = [c for c in names if c not in _ALL_COLUMNS]
    if extra:
        raise ArrowRejected(
            extra[0],
            None,
            f"unknown column {extra[0]!r}; the columns are {', '.join(_ALL_COLUMNS)}",
        )
    if len(set(names)) != len(names):
        raise ArrowRejected(None, None, "a column is given twice")
    for name in _REQUIRED:
        if name not in names:
            raise ArrowRejected(name, None, f"column {name!r} is required")
    return dict(zip(names, table.columns, strict=True)), False


def parse_request(body: bytes, max_batch: int, checked: bool = False) -> ArrowBatch:
    """An Arrow request body checked and read into the encoder's columns (see the module's
    schema); raises ArrowRejected naming the column and the first offending row. `checked`:
    check_stream has passed it (its headers are not read again)."""
    if not checked:
        check_stream(body, max_batch)
    table = read_table(body)
    columns, typed = _columns(table)
    n = table.num_rows
    if n == 0:
        raise ArrowRejected(None, None, "no rows given; at least one observation is required")
    stations = _stations(columns["station"], typed)
    origins, _ = _timestamps_us(columns["issued_at"], "issued_at", False, typed)
    times, _ = _timestamps_us(columns["time"], "time", False, typed)
    # A request is a run of rows with the same station and issued_at.
    continues = pc.equal(stations[1:], stations[:-1]).to_numpy(zero_copy_only=False)
    continues &= origins[1:] == origins[:-1]
    starts = np.concatenate(([True], ~continues)).nonzero()[0]
    # Every row of a run has its first row's issued_at: the first run's first row at fault is
    # the first row at fault.
    if (bad := _first(origins[starts] % _HOUR_US != 0)) is not None:
        at = int(starts[bad])
        raise ArrowRejected(
            "issued_at", at, f"issued_at at row {at} is not a whole hour (mm:ss = 00:00)"
        )
    if (row := _first(times >= origins)) is not None:
        raise ArrowRejected(
            "time",
            row,
            f"time at row {row} is not before issued_at; only past observations are allowed",
        )
    ids = _check_ids(stations, starts)
    b = starts.size
    if b > max_batch:
        raise ArrowRejected(
            "station",
            int(starts[max_batch]),
            f"{b} requests given (runs of station and "
            f"issued_at); at most {max_batch} allowed (INFER_MAX_BATCH)",
        )
    ends = np.empty_like(starts)
    ends[:-1], ends[-1] = starts[1:], n
    counts = ends - starts
    if (big := _first(counts > MAX_OBSERVATIONS)) is not None:
        row = int(starts[big]) + MAX_OBSERVATIONS
        raise ArrowRejected(
            "time",
            row,
            f"{int(counts[big])} observations in the request from row "
            f"{int(starts[big])}; at most {MAX_OBSERVATIONS} allowed",
        )
    floats = _floats(columns, n, typed)
    if "scene_acquired" in columns:
        acquired, has_acquired = _timestamps_us(
            columns["scene_acquired"], "scene_acquired", True, typed
        )
    else:
        acquired, has_acquired = np.zeros(n, np.int64), np.zeros(1, bool)
    has_cloud = ~np.isnan(floats[_CLOUD])
    if (row := _first(has_cloud != has_acquired)) is not None:
        name = "scene_acquired" if has_cloud[row] else "scene_cloud_cover"
        raise ArrowRejected(
            name,
            row,
            f"{name} is null at row {row} while the other scene column is not; "
            "a scene has both or neither",
        )
    acquired = np.where(has_acquired, acquired, _NO_SCENE)
    _constant_within(_PER_REQUEST, floats[: len(_PER_REQUEST)], continues, starts)
    if (row := _first((acquired[1:] != acquired[:-1]) & continues)) is not None:
        raise ArrowRejected(
            "scene_acquired",
            row + 1,
            f"scene_acquired at row {row + 1} differs from the first row of "
            "its request; one scene per station and issued_at is allowed",
        )
    nwp, nwp_count = (
        _forecasts(columns[FORECAST], starts, typed) if FORECAST in columns else (None, None)
    )
    arrays = RequestArrays(
        origins_us=origins[starts],
        longitude=floats[_FLOAT_NAMES.index("longitude"), starts],
        scene_cloud=floats[_CLOUD, starts],
        scene_acquired_us=acquired[starts],
        owner=np.arange(b).repeat(counts),
        times_us=times,
        values=np.ascontiguousarray(floats[_VALUES].T),
        nwp=nwp,
        nwp_count=nwp_count,
    )
    return ArrowBatch(arrays, ids, starts)


def _forecasts(
    column: pa.ChunkedArray, starts: np.ndarray, typed: bool
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The requests' forecasts as RequestArrays takes them: (B, most leads given) degC, NaN where
    none, and (B,) how many leads each gave (-1: none); (None, None) where no request gave one.
    Read from each request's first row; a list on another row, an empty or too long list, and
    a lead sent as NaN, infinite or outside the air_temperature limits are refused. The lengths
    are checked from the offsets alone: only the first rows' lists (at most MAX_FORECAST_LEADS
    values each) are copied and widened to float64."""
    kind = column.type
    if pa.types.is_null(kind):  # a column of nulls only (as JSON's `"forecast": null`): none
        return None, None
    if not (typed or _forecast_type(kind)):
        raise ArrowRejected(
            FORECAST,
            None,
            f"forecast is {kind}; a list of float64 (degC per lead hour, null where none) "
            "on each request's first row is required",
        )
    n = len(column)
    if column.null_count == n:
        return None, None
    # The lists' lengths (-1: null), read from the offsets without touching the values.
    count = pc.fill_null(pc.list_value_length(column).take(pa.array(starts)), -1)
    count = count.to_numpy().astype(np.int64)
    if n - column.null_count != np.count_nonzero(count >= 0):
        later = pc.is_valid(column).to_numpy().copy()  # a ChunkedArray: all rows
        later[starts] = False
        if (row := _first(later)) is not None:  # a list on a row other than a first row
            request = int(starts[np.searchsorted(starts, row, side="right") - 1])
            raise ArrowRejected(
                FORECAST,
                row,
                f"forecast is set at row {row}, not the first row of its request (row "
                f"{request}); one list per request, on its first row, null on the others",
            )
    if (bad := _first((count == 0) | (count > MAX_FORECAST_LEADS))) is not None:
        row = int(starts[bad])
        raise ArrowRejected(
            FORECAST,
            row,
            f"forecast at row {row} gives {int(count[bad])} leads; 1 to {MAX_FORECAST_LEADS} "
            "(lead hours 1, 2, ...) are allowed",
        )
    heads = column.take(pa.array(starts))
    heads = heads.chunk(0) if heads.num_chunks == 1 else heads.combine_chunks()
    if heads.type != _FORECAST_TYPE:  # other list types, float and integer widths: as float64
        heads = heads.cast(_FORECAST_TYPE, safe=False)  # an integer past 2**53 rounds
    flat = heads.flatten()
    values = flat.to_numpy(zero_copy_only=False)  # nulls read as NaN
    given = np.maximum(count, 0)
    low, high = LIMITS["air_temperature"]
    if int(np.count_nonzero((values >= low) & (values <= high))) != values.size - flat.null_count:
        sent = pc.is_valid(flat).to_numpy(zero_copy_only=False)
        at = int((sent & ~((values >= low) & (values <= high))).argmax())
        request = int(np.searchsorted(np.cumsum(given), at, side="right"))
        row, lead = int(starts[request]), at - int(given[:request].sum()) + 1
        raise ArrowRejected(
            FORECAST,
            row,
            f"forecast at row {row}: lead hour {lead} is {values[at]}; finite numbers from "
            f"{low:g} to {high:g} degC or null are allowed",
        )
    b = starts.size
    nwp = np.full((b, int(count.max())), np.nan)
    owner = np.arange(b).repeat(given)
    nwp[owner, np.arange(values.size) - (np.cumsum(given) - given).repeat(given)] = values
    return nwp, count


def _forecast_type(kind: pa.DataType) -> bool:
    """Whether a forecast column of this type is read: a list, large list or fixed-size list of
    floats or integers (as JSON takes numbers), or of nulls (no lead given)."""
    if not (
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    ):
        return False
    value = kind.value_type
    return pa.types.is_floating(value) or pa.types.is_integer(value) or pa.types.is_null(value)


# The per-request float columns lead _FLOATS, in the order they are checked.
_PER_REQUEST = ("longitude", "latitude", "scene_cloud_cover")
assert _FLOAT_NAMES[: len(_PER_REQUEST)] == _PER_REQUEST
assert tuple(REQUEST_SCHEMA.names) == COLUMNS
_CLOUD = _FLOAT_NAMES.index("scene_cloud_cover")
_VALUES = slice(_FLOAT_NAMES.index(VARIABLES[0]), _FLOAT_NAMES.index(VARIABLES[0]) + len(VARIABLES))
assert _FLOAT_NAMES[_VALUES] == VARIABLES


def response_batch(
    batch: ArrowBatch, forecast: np.ndarray, observed: np.ndarray, model: tuple[str, str]
) -> pa.RecordBatch:
    """The answer (RESPONSE_SCHEMA, the model in its metadata) from forecasts (B, horizon,
    targets), NaN withheld, and which targets each request observed (B, targets): array
    operations only, each column made from one numpy array."""
    b, horizon, _ = forecast.shape
    layout = _cached_layout(b, horizon) if b * horizon <= _CACHED_ROWS else _layout(b, horizon)
    origins = batch.arrays.origins_us
    # (targets, B * horizon), float32 widened exactly; NaN (withheld) written as null.
    values = np.ascontiguousarray(forecast.transpose(2, 0, 1), dtype=np.float64)
    values = values.reshape(len(TARGETS), -1)
    withheld = np.isnan(values)
    columns: list[Any] = [
        batch.stations.take(layout.request),
        _stamps(origins.repeat(horizon)),
        layout.lead_hours,
        _stamps((origins[:, None] + layout.offsets_us).ravel()),
        *(pa.array(values[k], mask=withheld[k]) for k in range(len(TARGETS))),
    ]
    for k in range(len(TARGETS)):
        columns.append(
            layout.no_reason  # every station observed it: no reason given
            if observed[:, k].all()
            else _REASONS[k].take(pa.array((~observed[:, k]).repeat(horizon).view(np.int8)))
        )
    return pa.RecordBatch.from_arrays(columns, schema=_response_schema(*model))


@dataclass(frozen=True)
class _Layout:
    """An answer's columns that depend only on its shape, B requests x horizon leads (rows
    request-major): each row's request (int64), lead_hours (int32), each lead's offset from
    its origin (1, horizon) us, and a reason column of nulls."""

    request: pa.Array
    lead_hours: pa.Array
    offsets_us: np.ndarray
    no_reason: pa.Array


def _layout(b: int, horizon: int) -> _Layout:
    """The answer's layout for B requests x horizon leads: arrays that are not changed once
    made."""
    hours = np.arange(horizon)
    offsets_us = (hours * _HOUR_US)[None, :]
    offsets_us.flags.writeable = False
    return _Layout(
        request=pa.array(np.arange(b).repeat(horizon)),
        lead_hours=pa.array((hours + 1).astype(np.int32)[None, :].repeat(b, axis=0).ravel()),
        offsets_us=offsets_us,
        no_reason=pa.nulls(b * horizon, pa.string()),
    )


# Answers of at most this many rows (2,730 requests of 24 leads) have their layout made once per
# shape, a batch client's calls mostly having one; 8 shapes of about 1 MB each at most.
_CACHED_ROWS = 2**16
_cached_layout = functools.lru_cache(maxsize=8)(_layout)


def answer_stream(
    batch: ArrowBatch, forecast: np.ndarray, observed: np.ndarray, model: tuple[str, str]
) -> bytes:
    """The answer as the bytes of an Arrow IPC stream: the schema's message (made once per
    model version), the record batch's, the end-of-stream marker; the bytes pyarrow's stream
    writer writes, without its writer."""
    answer = response_batch(batch, forecast, observed, model).serialize()
    return b"".join((_schema_message(*model), memoryview(answer), _END_OF_STREAM))


@functools.lru_cache(maxsize=8)
def _response_schema(name: str, version: str) -> pa.Schema:
    return RESPONSE_SCHEMA.with_metadata({"model_name": name, "model_version": version})


@functools.lru_cache(maxsize=8)
def _schema_message(name: str, version: str) -> bytes:
    return _response_schema(name, version).serialize().to_pybytes()


# An IPC stream's end: the continuation marker and a zero length.
_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _stamps(us: np.ndarray) -> pa.Array:
    """int64 microseconds as timestamp[us, UTC], sharing their memory (no conversion pass)."""
    return pa.Array.from_buffers(_STAMP, len(us), [None, pa.py_buffer(np.ascontiguousarray(us))])


# Per target, the reason column's two values: null (forecast) and why not.
_REASONS = [pa.array([None, absent_reason(target)], pa.string()) for target in TARGETS]


def to_stream(table: pa.Table) -> bytes:
    """A table as the bytes of an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def table_from_requests(requests: list[dict[str, Any]]) -> pa.Table:
    """A client's helper: JSON-shaped request documents (PredictionRequest's fields) as the
    request table, one row per observation; where any request gives a `forecast`, with the
    forecast column (REQUEST_SCHEMA_NWP: each request's list on its first row). For tests and
    benchmarks; a batch client builds its columns directly."""
    nwp = any(req.get(FORECAST) is not None for req in requests)
    names = _ALL_COLUMNS if nwp else COLUMNS
    rows: dict[str, list[Any]] = {name: [] for name in names}

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
        if nwp:
            rows[FORECAST] += [req.get(FORECAST)] + [None] * (len(req["observations"]) - 1)
    stamp = pa.timestamp("us", tz="UTC")
    types = {name: pa.float64() for name in COLUMNS} | {
        "station": pa.string(),
        "issued_at": stamp,
        "time": stamp,
        "scene_acquired": stamp,
        FORECAST: _FORECAST_TYPE,
    }
    return pa.table({name: pa.array(rows[name], types[name]) for name in names})
