"""`fedeploy restore-drill`: restore the catalog's backups into a scratch server and compare it
with the live catalog. Exit 0: identical; 1: differs; 2: the drill could not run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from fedeploy.restore_drill.barman import BackupStore
from fedeploy.restore_drill.catalog_state import SAMPLE_PER_COLLECTION, differences, read_state
from fedeploy.restore_drill.scratch import DrillError, restored_server


def _store(url: str, server_name: str, endpoint_url: str | None) -> BackupStore:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise typer.BadParameter(
            f"{url!r} is not s3://BUCKET/PREFIX (the chart's backup.bucket and backup.prefix)",
            param_hint="--backup-url",
        )
    try:
        return BackupStore(parts.netloc, parts.path.strip("/"), server_name, endpoint_url)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--backup-url/--server-name") from None


def restore_drill_command(
    backup_url: Annotated[
        str, typer.Option("--backup-url", help="Where the backups are: s3://BUCKET/PREFIX.")
    ],
    live_dsn: Annotated[
        str,
        typer.Option(
            "--live-dsn",
            envvar="DRILL_LIVE_DSN",
            help="The live catalog database (libpq URL), read in read-only transactions only.",
        ),
    ],
    server_name: Annotated[
        str, typer.Option("--server-name", help="The database's folder under the prefix.")
    ] = "catalog-db",
    endpoint_url: Annotated[
        str | None, typer.Option("--endpoint-url", help="S3 endpoint; empty for AWS S3.")
    ] = None,
    database: Annotated[
        str, typer.Option("--database", help="The catalog's database in the restored server.")
    ] = "pgstac",
    user: Annotated[
        str, typer.Option("--user", help="A role of the restored server (its superuser).")
    ] = "postgres",
    target_name: Annotated[
        str | None,
        typer.Option(
            "--target-name", help="Replay up to this restore point (pg_create_restore_point)."
        ),
    ] = None,
    target_time: Annotated[
        str | None,
        typer.Option(
            "--target-time", help="Replay up to this time, e.g. '2026-12-06 07:00:00+00'."
        ),
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Scratch space (default: a temporary folder).")
    ] = None,
    pg_bindir: Annotated[
        str | None, typer.Option("--pg-bindir", help="PostgreSQL's programs (pg_ctl).")
    ] = None,
    sample: Annotated[
        int,
        typer.Option(
            "--sample",
            min=1,
            max=1_000_000,
            help="Items compared by id and asset hrefs per collection (as many as a collection "
            "holds compares every item).",
        ),
    ] = SAMPLE_PER_COLLECTION,
) -> None:
    """Restore the latest base backup (replayed to the end of the WAL, or to --target-name or
    --target-time) into a scratch server and compare its catalog with the live one: collections,
    items per collection, a sample of items with their asset hrefs. Exit 0 identical, 1 differs,
    2 cannot run."""
    if target_name and target_time:
        raise typer.BadParameter("give --target-name or --target-time, not both")
    store = _store(backup_url, server_name, endpoint_url)
    with tempfile.TemporaryDirectory(prefix="restore-drill-") as scratch:
        where = workdir or Path(scratch)
        with restored_server(
            store,
            where,
            target_name=target_name,
            target_time=target_time,
            pg_bindir=pg_bindir,
            user=user,
        ) as port:
            try:
                restored = read_state(f"postgresql://{user}@127.0.0.1:{port}/{database}", sample)
                live = read_state(live_dsn, sample)
            except Exception as error:  # psycopg's errors: the database is not reachable
                raise DrillError(
                    f"restore-drill: reading a catalog failed: {type(error).__name__}: {error}"
                ) from None
    found = differences(restored, live)
    counts = sum(restored.item_counts.values())
    point = f" at {target_name or target_time}" if (target_name or target_time) else ""
    if not found:
        typer.echo(
            f"identical: {len(restored.collections)} collections, {counts} items restored{point} "
            f"from {backup_url}/{server_name} match the live catalog"
        )
        return
    typer.echo(f"differs: the catalog restored{point} from {backup_url}/{server_name}:")
    for line in found:
        typer.echo(f"  - {line}")
    raise typer.Exit(1)
