"""Observation windows in the site's bucket: list, read and write them as the contract lays out."""

from __future__ import annotations

import io
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fedeploy_inference.contract import (
    OBSERVATIONS_PREFIX,
    WINDOW_SCHEMA,
    WindowKey,
    parse_window_key,
)

_WORKERS = 8


def table_to_parquet(table: pa.Table) -> bytes:
    """Parquet bytes of a table (zstd)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def write_windows(client: Any, bucket: str, windows: Iterable[tuple[WindowKey, pa.Table]]) -> int:
    """Store each window under its contract key (a rewrite stores the same bytes); the count."""

    def put(item: tuple[WindowKey, pa.Table]) -> None:
        key, table = item
        client.put_object(
            Bucket=bucket,
            Key=key.key,
            Body=table_to_parquet(table.cast(WINDOW_SCHEMA)),
            ContentType="application/vnd.apache.parquet",
        )

    with ThreadPoolExecutor(_WORKERS) as pool:
        return sum(1 for _ in pool.map(put, windows))


def list_windows(
    client: Any,
    bucket: str,
    start: datetime | None = None,
    end: datetime | None = None,
    stations: Iterable[str] | None = None,
) -> list[WindowKey]:
    """Windows overlapping [start, end) (either open), of the given stations (default all)."""
    wanted = set(stations) if stations is not None else None
    prefixes = (
        [f"{OBSERVATIONS_PREFIX}{s}/" for s in sorted(wanted)]
        if wanted is not None
        else [OBSERVATIONS_PREFIX]
    )
    found: list[WindowKey] = []
    paginator = client.get_paginator("list_objects_v2")
    for prefix in prefixes:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                window = parse_window_key(obj["Key"])
                if window is None:
                    continue
                if start is not None and window.end <= start:
                    continue
                if end is not None and window.start >= end:
                    continue
                found.append(window)
    return sorted(found, key=lambda w: (w.station, w.start))


def read_parquet_object(client: Any, bucket: str, key: str) -> pa.Table:
    """One Parquet object as a table."""
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def read_windows(client: Any, bucket: str, windows: Iterable[WindowKey]) -> pa.Table:
    """The windows' rows in one table of the contract's columns; extra columns are dropped."""

    def get(window: WindowKey) -> pa.Table:
        table = read_parquet_object(client, bucket, window.key)
        missing = [f.name for f in WINDOW_SCHEMA if f.name not in table.column_names]
        if missing:
            raise ValueError(
                f"s3://{bucket}/{window.key}: columns {missing} missing; the data contract "
                f"requires {WINDOW_SCHEMA.names}"
            )
        return table.select(WINDOW_SCHEMA.names).cast(WINDOW_SCHEMA)

    with ThreadPoolExecutor(_WORKERS) as pool:
        tables = list(pool.map(get, windows))
    if not tables:
        return WINDOW_SCHEMA.empty_table()
    return pa.concat_tables(tables)
