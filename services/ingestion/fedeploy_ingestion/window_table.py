"""A window's observations as Parquet, with GeoParquet metadata where positions are known.

Columns follow the data contract: `station`, `time` (timestamp[us, UTC]), `longitude`,
`latitude`, `elevation`, then one float64 column per canonical variable (null where a
message did not carry it), then `published` (timestamp[us, UTC], null for own-format messages)
and `correction` (int32), which decide between two reports of one station and time
(`observation.merge`) and so travel with the row. When any row has a position, a WKB `geometry` column (2D point,
null where unknown) and the file-level `geo` metadata of GeoParquet 1.1 are added.
The bytes depend only on the observations, so rewriting a window rewrites identical bytes.
"""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC

import pyarrow as pa
import pyarrow.parquet as pq

from fedeploy_ingestion.observation import VARIABLES, Observation

MEDIA_TYPE = "application/vnd.apache.parquet"
GEOPARQUET_VERSION = "1.1.0"

BASE_FIELDS = [
    pa.field("station", pa.string(), nullable=False),
    pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("longitude", pa.float64()),
    pa.field("latitude", pa.float64()),
    pa.field("elevation", pa.float64()),
]
VARIABLE_FIELDS = [pa.field(name, pa.float64()) for name in VARIABLES]
REPORT_FIELDS = [
    pa.field("published", pa.timestamp("us", tz="UTC")),
    pa.field("correction", pa.int32(), nullable=False),
]
GEOMETRY_FIELD = pa.field("geometry", pa.binary())


def _wkb_point(longitude: float, latitude: float) -> bytes:
    # ISO WKB, little endian, geometry type 1 (Point), x = longitude, y = latitude.
    return struct.pack("<BIdd", 1, 1, longitude, latitude)


def to_table(observations: list[Observation]) -> pa.Table:
    """The Arrow table of a window (rows in the order given)."""
    columns: dict[str, list[object]] = {
        "station": [o.station for o in observations],
        "time": [o.time for o in observations],
        "longitude": [o.longitude for o in observations],
        "latitude": [o.latitude for o in observations],
        "elevation": [o.elevation for o in observations],
    }
    for name in VARIABLES:
        columns[name] = [o.values.get(name) for o in observations]
    columns["published"] = [o.published for o in observations]
    columns["correction"] = [o.correction for o in observations]
    fields = BASE_FIELDS + VARIABLE_FIELDS + REPORT_FIELDS
    positioned = [o for o in observations if o.position_known]
    metadata: dict[bytes, bytes] = {}
    if positioned:
        columns["geometry"] = [
            _wkb_point(o.longitude, o.latitude) if o.position_known else None  # type: ignore[arg-type]
            for o in observations
        ]
        fields = [*fields, GEOMETRY_FIELD]
        longitudes = [o.longitude for o in positioned if o.longitude is not None]
        latitudes = [o.latitude for o in positioned if o.latitude is not None]
        geo = {
            "version": GEOPARQUET_VERSION,
            "primary_column": "geometry",
            # No "crs": GeoParquet then means OGC:CRS84, longitude/latitude on WGS 84.
            "columns": {
                "geometry": {
                    "encoding": "WKB",
                    "geometry_types": ["Point"],
                    "bbox": [min(longitudes), min(latitudes), max(longitudes), max(latitudes)],
                }
            },
        }
        metadata[b"geo"] = json.dumps(geo, sort_keys=True).encode()
    schema = pa.schema(fields, metadata=metadata or None)
    return pa.Table.from_pydict(columns, schema=schema)


def to_parquet(observations: list[Observation]) -> bytes:
    """Parquet bytes of a window (zstd-compressed)."""
    sink = io.BytesIO()
    pq.write_table(to_table(observations), sink, compression="zstd")
    return sink.getvalue()


def from_parquet(data: bytes) -> list[Observation]:
    """The observations stored in a window object (the inverse of `to_parquet`)."""
    table = pq.read_table(io.BytesIO(data))
    names = set(table.column_names)
    observations = []
    for row in table.to_pylist():
        observations.append(
            Observation(
                station=row["station"],
                time=row["time"].astimezone(UTC),
                values={n: row[n] for n in VARIABLES if n in names and row[n] is not None},
                longitude=row.get("longitude"),
                latitude=row.get("latitude"),
                elevation=row.get("elevation"),
                # Windows written before corrections were kept have neither column.
                published=row["published"].astimezone(UTC) if row.get("published") else None,
                correction=row.get("correction") or 0,
            )
        )
    return observations
