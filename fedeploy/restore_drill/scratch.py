"""A scratch PostgreSQL restored from the backups: barman-cloud-restore, then WAL replay to the
latest state or a point in time, on 127.0.0.1 and a private socket folder, removed afterwards."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from fedeploy.errors import FedeployError
from fedeploy.restore_drill.barman import BackupStore, recovery_settings


class DrillError(FedeployError):
    """The drill could not run (exit 2): no backup, a tool missing, a server that never started."""

    exit_code = 2


def _bindir(given: str | None) -> Path:
    candidates = [given] if given else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise DrillError(
        "restore-drill: no pg_ctl found (give --pg-bindir, e.g. /usr/lib/postgresql/17/bin): "
        "the scratch server needs PostgreSQL's programs of the backed-up major version"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(argv: list[str], what: str, timeout: float, log: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as missing:
        raise DrillError(f"restore-drill: {what}: {missing.filename} is not installed") from None
    except subprocess.TimeoutExpired:
        raise DrillError(f"restore-drill: {what} did not finish in {timeout:.0f} s") from None
    if done.returncode != 0:
        text = done.stdout + done.stderr
        if log is not None and log.exists():
            text += log.read_text(errors="replace")
        tail = "\n".join(text.strip().splitlines()[-8:])
        raise DrillError(f"restore-drill: {what} failed (status {done.returncode}):\n{tail}")
    return done.stdout


# pg_controldata's names of the limits a standby or a recovering server must match or exceed.
_LIMITS = {
    "max_connections setting": "max_connections",
    "max_worker_processes setting": "max_worker_processes",
    "max_wal_senders setting": "max_wal_senders",
    "max_prepared_xacts setting": "max_prepared_transactions",
    "max_locks_per_xact setting": "max_locks_per_transaction",
}


def primary_limits(controldata: str) -> dict[str, str]:
    """The primary's limits recorded in pg_controldata's output, as settings."""
    found = {}
    for line in controldata.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in _LIMITS and value.strip().isdigit():
            found[_LIMITS[key.strip()]] = value.strip()
    return found


@contextlib.contextmanager
def restored_server(
    store: BackupStore,
    workdir: Path,
    *,
    target_name: str | None = None,
    target_time: str | None = None,
    pg_bindir: str | None = None,
    user: str = "postgres",
    timeout: float = 3600.0,
) -> Iterator[int]:
    """Restore the latest base backup into `workdir`, replay WAL up to the target, and yield the
    port of the running scratch server (trust auth on 127.0.0.1 only); stopped and removed after."""
    bindir = _bindir(pg_bindir)
    data = workdir / "data"
    if data.exists():
        raise DrillError(f"restore-drill: {data} exists; give an empty --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    started = False
    try:
        _run(store.restore(str(data)), "barman-cloud-restore", timeout)
        os.chmod(data, 0o700)
        settings = recovery_settings(store, target_name=target_name, target_time=target_time)
        # Replay refuses lower limits than the primary had (the chart sets them with -c, which
        # the backup does not carry): take them from the restored control file.
        controldata = _run([str(bindir / "pg_controldata"), str(data)], "pg_controldata", 60)
        settings.update(primary_limits(controldata))
        # The scratch server is reached by this process only: no TCP beyond loopback, trust.
        settings.update({"listen_addresses": "127.0.0.1", "unix_socket_directories": str(workdir)})
        # The backup carries the primary's postgresql.conf: pgstac's image (v0.10) preloads
        # pg_tle, pg_stat_statements, pg_cron and plprofiler, which a server that only reads the
        # catalog's tables neither needs nor has; none is loaded.
        settings["shared_preload_libraries"] = ""
        with (data / "postgresql.auto.conf").open("a") as conf:
            for name, value in settings.items():
                conf.write(f"{name} = '{value.replace(chr(39), chr(39) * 2)}'\n")
        (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        (data / "recovery.signal").touch()
        port = _free_port()
        log = workdir / "postgres.log"
        _run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                f"-p {port}",
                "-l",
                str(log),
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            "the scratch server",
            timeout + 30,
            log,
        )
        started = True
        _wait_promoted(f"postgresql://{user}@127.0.0.1:{port}/postgres", workdir, timeout)
        yield port
    finally:
        if started:
            subprocess.run(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(data, ignore_errors=True)


def _wait_promoted(dsn: str, workdir: Path, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(psycopg.OperationalError),
            psycopg.connect(dsn, connect_timeout=5) as conn,
        ):
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and row[0] is False:
                return
        time.sleep(0.2)
    log = workdir / "postgres.log"
    tail = log.read_text(errors="replace").splitlines()[-8:] if log.exists() else []
    raise DrillError("restore-drill: recovery did not end in time:\n" + "\n".join(tail))
