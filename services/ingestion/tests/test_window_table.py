"""Window objects: the contract's columns, GeoParquet metadata, identical bytes on rewrite."""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
from fedeploy_ingestion.observation import Observation
from fedeploy_ingestion.window_table import from_parquet, to_parquet

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def observations(positioned: bool) -> list[Observation]:
    return [
        Observation(
            "s1",
            T0 + timedelta(seconds=10 * i),
            {"air_temperature": 10.0 + i, "wind_speed": 2.5} if i % 2 else {"air_pressure": 1013.2},
            longitude=11.0 + i if positioned else None,
            latitude=46.0 if positioned else None,
            elevation=250.0 if positioned else None,
        )
        for i in range(4)
    ]


def read(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def test_columns_and_types_follow_the_contract() -> None:
    table = read(to_parquet(observations(positioned=False)))
    assert table.schema.field("station").type == pa.string()
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    for name in (
        "longitude",
        "latitude",
        "elevation",
        "air_temperature",
        "relative_humidity",
        "air_pressure",
        "wind_speed",
        "precipitation",
    ):
        assert table.schema.field(name).type == pa.float64(), name
    assert table.column("air_pressure").to_pylist() == [1013.2, None, 1013.2, None]
    assert table.column("precipitation").null_count == 4


def test_without_positions_there_is_no_geoparquet_metadata() -> None:
    table = read(to_parquet(observations(positioned=False)))
    assert "geometry" not in table.column_names
    assert b"geo" not in (table.schema.metadata or {})


def test_with_positions_the_file_is_geoparquet() -> None:
    table = read(to_parquet(observations(positioned=True)))
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["version"] == "1.1.0"
    assert geo["primary_column"] == "geometry"
    assert geo["columns"]["geometry"]["encoding"] == "WKB"
    assert geo["columns"]["geometry"]["bbox"] == [11.0, 46.0, 14.0, 46.0]
    first = table.column("geometry")[0].as_py()
    assert struct.unpack("<BIdd", first) == (1, 1, 11.0, 46.0)


def test_reading_back_gives_the_same_observations() -> None:
    for positioned in (True, False):
        original = observations(positioned)
        assert from_parquet(to_parquet(original)) == original


def test_the_same_observations_give_the_same_bytes() -> None:
    assert to_parquet(observations(True)) == to_parquet(observations(True))
