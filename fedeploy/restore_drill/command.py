"""`fedeploy restore-drill`: restore the catalog's backups into a scratch server and compare it
with the live catalog. Exit 0: identical; 1: differs; 2: the drill could not run."""

from __future__ import annotations

import os
import pwd
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from fedeploy.restore_drill.barman import BackupStore
from fedeploy.restore_drill.catalog_state import (
    SAMPLE_PER_COLLECTION,
    CatalogState,
    differences,
    new_salt,
    read_state,
)
from fedeploy.restore_drill.outcome import DrillOutcome, push, push_started
from fedeploy.restore_drill.scratch import (
    SCRATCH_OPTIONS,
    DrillError,
    TargetNotReached,
    restored_server,
    scratch_workdir,
)


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
    live_user_file: Annotated[
        Path | None,
        typer.Option(
            "--live-user-file",
            envvar="DRILL_LIVE_USER_FILE",
            help="A file holding the live catalog's read-only role (a mounted Secret's key).",
        ),
    ] = None,
    live_password_file: Annotated[
        Path | None,
        typer.Option(
            "--live-password-file",
            envvar="DRILL_LIVE_PASSWORD_FILE",
            help="A file holding that role's password; user and password override the DSN's.",
        ),
    ] = None,
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
        Path | None,
        typer.Option(
            "--workdir",
            help="Scratch space (default: a temporary folder); its absolute path may hold only "
            "letters, digits and / . _ + - @ :.",
        ),
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
            help="Items per collection named in words when they differ (asset hrefs, content), "
            "chosen anew each run; every item is compared by a digest whatever this is.",
        ),
    ] = SAMPLE_PER_COLLECTION,
    settle_seconds: Annotated[
        int,
        typer.Option(
            "--settle-seconds",
            min=0,
            max=86_400,
            help="Read the live catalog and its WAL position first, wait this long (the chart: "
            "archive timeout plus upload interval and a margin) so that WAL is in the store, "
            "restore to that position and compare with that read (once more on a mismatch: a "
            "commit can land between the read's snapshot and its position). 0: restore to the "
            "end of the WAL and read the live catalog after the restore.",
        ),
    ] = 0,
    pushgateway: Annotated[
        str | None,
        typer.Option(
            "--pushgateway",
            envvar="DRILL_PUSHGATEWAY_URL",
            help="Push the outcome to this Prometheus Pushgateway (job fedeploy-restore-drill).",
        ),
    ] = None,
    site: Annotated[
        str,
        typer.Option("--site", envvar="DRILL_SITE", help="The site label of the pushed outcome."),
    ] = "",
) -> None:
    """Restore the latest base backup (replayed to the end of the WAL, to --target-name or
    --target-time, or with --settle-seconds to the live read's WAL position) into a scratch
    server and compare its catalog with the live one: collections and their documents, items
    per collection and a digest of all of them, a salted sample named in words. Exit 0
    identical, 1 differs,
    2 cannot run; the outcome is pushed to --pushgateway whatever it is."""
    if target_name and target_time:
        raise typer.BadParameter("give --target-name or --target-time, not both")
    if settle_seconds and (target_name or target_time):
        raise typer.BadParameter("--settle-seconds compares the end of the WAL, not a target")
    if pushgateway and not site:
        raise typer.BadParameter("--pushgateway needs --site (the pushed series' site label)")
    store = _store(backup_url, server_name, endpoint_url)
    _default_user_without_passwd(user)
    started = time.monotonic()
    status, items = 2, 0
    if pushgateway:
        failed = push_started(pushgateway, site, time.time())
        if failed:
            typer.echo(f"restore-drill: start not pushed to {pushgateway}: {failed}", err=True)
    # The Job's deadline or an eviction sends SIGTERM: end as "could not run", pushed below.
    if threading.current_thread() is threading.main_thread():  # signals reach only that one
        signal.signal(signal.SIGTERM, _terminated)
    try:
        live_dsn = _with_credentials(live_dsn, live_user_file, live_password_file)
        status, items = _drill(
            store,
            live_dsn,
            workdir=workdir,
            target_name=target_name,
            target_time=target_time,
            pg_bindir=pg_bindir,
            user=user,
            database=database,
            sample=sample,
            settle_seconds=settle_seconds,
        )
    finally:
        if pushgateway:
            outcome = DrillOutcome(status, time.time(), time.monotonic() - started, items)
            failed = push(pushgateway, site, outcome)
            if failed:
                typer.echo(
                    f"restore-drill: outcome not pushed to {pushgateway}: {failed}", err=True
                )
    if status:
        raise typer.Exit(status)


def _terminated(signum: int, _frame: object) -> None:
    """SIGTERM: stop the drill as one that could not run (exit 2), so its outcome is pushed."""
    raise DrillError(f"restore-drill: stopped by signal {signum} before it could finish")


def _default_user_without_passwd(user: str) -> None:
    """libpq works out a default user from the passwd entry of the process's uid, and fails
    every connection without one (a pod's uid 10001 in the restore-drill image has none):
    PGUSER then names one. Every connection the drill makes names its user anyway."""
    try:
        pwd.getpwuid(os.getuid())
    except KeyError:
        os.environ.setdefault("PGUSER", user)


def _with_credentials(dsn: str, user_file: Path | None, password_file: Path | None) -> str:
    """The DSN with the user and password read from these files (each optional)."""
    from psycopg.conninfo import make_conninfo

    given = {}
    try:
        for key, path in (("user", user_file), ("password", password_file)):
            if path is not None:
                given[key] = path.read_text().strip()
    except OSError as error:
        raise DrillError(f"restore-drill: the live catalog's credentials: {error}") from None
    return make_conninfo(dsn, **given) if given else dsn


def _read(
    dsn: str, sample: int, salt: str, *, with_lsn: bool = False, options: str = ""
) -> CatalogState:
    try:
        return read_state(dsn, sample, salt, with_lsn=with_lsn, options=options)
    except Exception as error:  # psycopg's errors: the database is not reachable
        raise DrillError(
            f"restore-drill: reading a catalog failed: {type(error).__name__}: {error}"
        ) from None


def _drill(
    store: BackupStore,
    live_dsn: str,
    *,
    workdir: Path | None,
    target_name: str | None,
    target_time: str | None,
    pg_bindir: str | None,
    user: str,
    database: str,
    sample: int,
    settle_seconds: int,
) -> tuple[int, int]:
    """Restore, compare and report; (exit status 0 or 1, items restored). DrillError: cannot run
    (a --workdir the scratch server cannot use is refused before anything is read)."""
    if workdir is not None:
        workdir = scratch_workdir(workdir)

    def restore_and_read(
        salt: str, target_lsn: str | None = None, live: bool = False
    ) -> tuple[CatalogState, CatalogState | None]:
        with tempfile.TemporaryDirectory(prefix="restore-drill-") as scratch:
            where = workdir or Path(scratch)
            with restored_server(
                store,
                where,
                target_name=target_name,
                target_time=target_time,
                target_lsn=target_lsn,
                pg_bindir=pg_bindir,
                user=user,
            ) as server:
                restored = _read(
                    server.dsn(database),
                    sample,
                    salt,
                    options=SCRATCH_OPTIONS,
                )
                return restored, (_read(live_dsn, sample, salt) if live else None)

    if settle_seconds:
        for attempt in (1, 2):
            salt = new_salt()
            before = _read(live_dsn, sample, salt, with_lsn=True)
            typer.echo(
                f"read the live catalog ({sum(before.item_counts.values())} items) at WAL "
                f"{before.lsn}; waiting {settle_seconds} s for that WAL to reach the store"
            )
            time.sleep(settle_seconds)
            try:
                restored, _ = restore_and_read(salt, target_lsn=before.lsn)
            except TargetNotReached:
                # No WAL record after that position in the store: nothing was written since,
                # so the end of the WAL is that moment.
                typer.echo("no WAL past that position in the store: restoring to its end")
                restored, _ = restore_and_read(salt)
            found = differences(restored, before)
            if not found or attempt == 2:
                break
            typer.echo(
                "differs from that read; once more (a commit may have landed between the "
                "read's snapshot and its WAL position)"
            )
    else:
        restored, live = restore_and_read(new_salt(), live=True)
        assert live is not None
        found = differences(restored, live)
    counts = sum(restored.item_counts.values())
    point = f" at {target_name or target_time}" if (target_name or target_time) else ""
    where_from = f"{store.url}/{store.server_name}"
    if not found:
        typer.echo(
            f"identical: {len(restored.collections)} collections, {counts} items restored{point} "
            f"from {where_from} match the live catalog"
        )
        return 0, counts
    typer.echo(f"differs: the catalog restored{point} from {where_from}:")
    for line in found:
        typer.echo(f"  - {line}")
    return 1, counts
