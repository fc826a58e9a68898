"""Backup and restore of a catalog database on loopback peers, each time beside its goal.

    .venv/bin/python benchmarks/backup.py [--items 100000] [--collections 4]

A pgstac catalog of N items (loaded with pgstac's own create_items) in PostgreSQL archiving its
WAL with the catalog chart's archive_command; the chart's backup sidecar script takes a base
backup with barman-cloud into SeaweedFS; then `fedeploy restore-drill` (as the postgres user)
restores it into a scratch server, replays the WAL and compares every collection's count and a
sample of items with the live catalog. Printed: the database's size, the base backup's time and
stored size, the drill's time (restore + replay + comparison), each beside its goal.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from fedeploy.restore_drill.barman import BackupStore
from loopback import SeaweedS3
from loopback.barman import (
    BarmanTools,
    archiving_server,
    aws_env,
    restore_drill,
    sidecar_round,
)

# A site's catalog restored within an hour of a lost volume; a daily base backup well inside
# its interval. For 100,000 items on the CI machine's 2 cores.
GOALS_S = {"base backup": 300.0, "restore drill": 600.0}
BUCKET = "bench-site"


def _items(collection: str, start: int, count: int) -> list[dict]:
    return [
        {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": f"{collection}-{n:07d}",
            "collection": collection,
            "geometry": {"type": "Point", "coordinates": [n % 360 - 180, n % 170 - 85]},
            "bbox": [n % 360 - 180, n % 170 - 85, n % 360 - 180, n % 170 - 85],
            "properties": {"datetime": f"2026-{n % 12 + 1:02d}-01T{n % 24:02d}:00:00Z"},
            "assets": {"data": {"href": f"s3://{BUCKET}/{collection}/{n:07d}.parquet"}},
            "links": [],
        }
        for n in range(start, start + count)
    ]


def _load(dsn: str, items: int, collections: int) -> None:
    import psycopg

    per = items // collections
    with psycopg.connect(dsn, autocommit=True) as conn:
        for c in range(collections):
            name = f"bench-{c}"
            conn.execute(
                "SELECT pgstac.create_collection(%s::jsonb)",
                (
                    json.dumps(
                        {
                            "type": "Collection",
                            "stac_version": "1.0.0",
                            "id": name,
                            "description": "benchmark",
                            "license": "CC-BY-4.0",
                            "links": [],
                            "extent": {
                                "spatial": {"bbox": [[-180, -90, 180, 90]]},
                                "temporal": {"interval": [["2026-01-01T00:00:00Z", None]]},
                            },
                        }
                    ),
                ),
            )
            for start in range(0, per, 5000):
                batch = _items(name, start, min(5000, per - start))
                conn.execute("SELECT pgstac.create_items(%s::jsonb)", (json.dumps(batch),))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--collections", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    stoppers = []
    try:
        s3 = SeaweedS3(work / "seaweedfs").start()
        stoppers.append(s3.stop)
        s3.create_bucket(BUCKET)
        tools = BarmanTools().start()
        stoppers.append(tools.remove)
        endpoint = s3.endpoint
        env = aws_env(endpoint.access_key_id, endpoint.secret_access_key, endpoint.region)
        store = BackupStore(BUCKET, "backups/catalog-db", "catalog-db", endpoint.endpoint_url)
        live, spool = archiving_server(work / "live")
        stoppers.append(live.remove)
        dsn = live.create_database("catalog")
        began = time.monotonic()
        _load(dsn, args.items, args.collections)
        load_s = time.monotonic() - began
        import psycopg

        with psycopg.connect(dsn) as conn:
            size = conn.execute("SELECT pg_database_size('catalog')").fetchone()[0]  # type: ignore[index]
            cluster = conn.execute(
                "SELECT sum(pg_database_size(datname)) FROM pg_database"
            ).fetchone()[0]  # type: ignore[index]

        began = time.monotonic()
        sidecar_round(
            tools.bindir, store.url, "catalog-db", store.endpoint_url or "", live, spool, env, True
        )
        backup_s = time.monotonic() - began
        stored = sum(
            o["Size"]
            for page in endpoint.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=BUCKET, Prefix=store.key_prefix())
            for o in page.get("Contents", [])
        )

        began = time.monotonic()
        drill = restore_drill(
            tools,
            env,
            ["--backup-url", store.url, "--endpoint-url", store.endpoint_url or ""]
            + ["--database", "catalog", "--live-dsn", dsn],
        )
        drill_s = time.monotonic() - began
        if drill.returncode != 0:
            sys.exit(f"restore-drill exited {drill.returncode}:\n{drill.stdout}{drill.stderr}")

        mib = 1024 * 1024
        print(f"catalog of {args.items} items in {args.collections} collections")
        print(f"  load (pgstac.create_items)  {load_s:7.1f} s")
        print(
            f"  database size               {size / mib:7.1f} MiB (cluster {cluster / mib:.1f} MiB)"
        )
        print(f"  stored backup (base + WAL)  {stored / mib:7.1f} MiB")
        for name, seconds in (("base backup", backup_s), ("restore drill", drill_s)):
            goal = GOALS_S[name]
            verdict = "met" if seconds <= goal else f"MISSED by {seconds - goal:.0f} s"
            print(f"  {name:<27} {seconds:7.1f} s   goal <= {goal:.0f} s: {verdict}")
        print(f"  drill said: {drill.stdout.strip()}")
    finally:
        for stop in reversed(stoppers):
            stop()


if __name__ == "__main__":
    main()
