"""A scratch PostgreSQL restored from the backups: barman-cloud-restore, then WAL replay to the
latest state or a point in time, reached only through a Unix socket in a private (0700) folder of
the drill's workdir (no TCP listener), removed afterwards."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fedeploy.errors import FedeployError
from fedeploy.restore_drill.barman import BackupStore, recovery_settings


class DrillError(FedeployError):
    """The drill could not run (exit 2): no backup, a tool missing, a server that never started."""

    exit_code = 2


class TargetNotReached(DrillError):
    """The WAL in the store ends before the recovery target: nothing was written after it."""


def _bindir(given: str | None) -> Path:
    candidates = [given] if given else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise DrillError(
        "restore-drill: no pg_ctl found (give --pg-bindir, e.g. /usr/lib/postgresql/17/bin): "
        "the scratch server needs PostgreSQL's programs of the backed-up major version"
    )


# The port names the socket file only (.s.PGSQL.5432): the scratch server listens on no TCP port,
# and its socket folder is the drill's own, so no other server can hold that name.
SCRATCH_PORT = 5432
# PostgreSQL's longest Unix socket path (sun_path less its terminating byte).
_SOCKET_PATH_MAX = 107


@dataclass(frozen=True)
class ScratchServer:
    """A running scratch server: its Unix socket folder (mode 0700) and the role to connect as."""

    socket_dir: Path
    user: str

    def dsn(self, database: str) -> str:
        """libpq connection string of `database` over the socket (host is the socket folder)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=str(self.socket_dir), port=str(SCRATCH_PORT), user=self.user, dbname=database
        )


# What a workdir's absolute path may hold. PostgreSQL reads unix_socket_directories and libpq
# reads host as comma-separated lists, libpq takes a host starting with `@` for an abstract socket
# (no file permissions: any uid could connect), and pg_ctl hands -o's config_file to /bin/sh, so
# spaces, quotes and the shell's other characters cannot pass either.
_WORKDIR_PATH = re.compile(r"/[A-Za-z0-9/._+@:-]*")


def scratch_workdir(workdir: Path) -> Path:
    """`workdir` made absolute (symlinks resolved) for the scratch server's paths. DrillError: a
    character PostgreSQL, libpq or pg_ctl's shell would read as more than a path."""
    absolute = workdir.resolve()
    if not _WORKDIR_PATH.fullmatch(str(absolute)):
        odd = sorted({c for c in str(absolute) if not _WORKDIR_PATH.fullmatch("/" + c)})
        raise DrillError(
            f"restore-drill: --workdir {str(absolute)!r} holds {', '.join(map(repr, odd))}: the "
            "scratch server's paths may hold only letters, digits and / . _ + - @ : (PostgreSQL "
            "and libpq read ',' as a list of folders and a leading '@' as an abstract socket, "
            "and pg_ctl passes the path through /bin/sh); give another --workdir"
        )
    return absolute


def _socket_dir(workdir: Path) -> Path:
    """The scratch server's socket folder in `workdir` (absolute, see `scratch_workdir`), made
    (or kept) a 0700 folder of this process's user. DrillError: a path too long for a Unix
    socket, or something there that is not a folder of ours (a file, a symlink, another uid's)."""
    folder = workdir / "socket"
    socket_file = folder / f".s.PGSQL.{SCRATCH_PORT}"
    if len(os.fsencode(socket_file)) > _SOCKET_PATH_MAX:
        raise DrillError(
            f"restore-drill: the scratch server's socket {socket_file} is longer than "
            f"{_SOCKET_PATH_MAX} bytes, a Unix socket's limit; give a shorter --workdir"
        )
    # Something already there (a folder, a file, a symlink, dangling or not) is checked below.
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    found = os.lstat(folder)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        raise DrillError(
            f"restore-drill: {folder} is not a folder of this user (uid {os.getuid()}); "
            "give an empty --workdir"
        )
    os.chmod(folder, 0o700)
    return folder


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
    target_lsn: str | None = None,
    pg_bindir: str | None = None,
    user: str = "postgres",
    timeout: float = 3600.0,
) -> Iterator[ScratchServer]:
    """Restore the latest base backup into `workdir`, replay WAL up to the target, and yield the
    running scratch server (trust auth on its Unix socket in `workdir`/socket, mode 0700; no
    TCP listener); stopped and removed after.

    Nothing the backup carries is executed: the server reads only the configuration the drill
    writes (see `_distrust_backup`). TargetNotReached: the WAL in the store ends before
    `target_lsn` (nothing was written after it)."""
    workdir = scratch_workdir(workdir)
    bindir = _bindir(pg_bindir)
    data = workdir / "data"
    if data.exists():
        raise DrillError(f"restore-drill: {data} exists; give an empty --workdir")
    workdir.mkdir(parents=True, exist_ok=True)
    sockets = _socket_dir(workdir)
    started = False
    try:
        _run(store.restore(str(data)), "barman-cloud-restore", timeout)
        os.chmod(data, 0o700)
        settings = recovery_settings(
            store, target_name=target_name, target_time=target_time, target_lsn=target_lsn
        )
        # Replay refuses lower limits than the primary had (the chart sets them with -c, which
        # the backup does not carry): take them from the restored control file.
        controldata = _run([str(bindir / "pg_controldata"), str(data)], "pg_controldata", 60)
        settings.update(primary_limits(controldata))
        conf = _distrust_backup(data, workdir, sockets, settings)
        log = workdir / "postgres.log"
        # A log of an earlier restore in the same --workdir (the first try of a scheduled drill,
        # whose target was not reached) must not be read as this server's.
        log.unlink(missing_ok=True)
        try:
            _run(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    f"-c config_file={conf}",
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
        except DrillError:
            _target_not_reached(log)
            raise
        started = True
        server = ScratchServer(sockets, user)
        _wait_promoted(server.dsn("postgres"), workdir, timeout)
        yield server
    finally:
        if started:
            subprocess.run(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)


# Settings that run a program or load a library: a backup names none of them for the drill.
_NEVER_FROM_THE_BACKUP = {
    "recovery_end_command": "",
    "archive_cleanup_command": "",
    "archive_command": "",
    "archive_library": "",
    "shared_preload_libraries": "",
    "session_preload_libraries": "",
    "local_preload_libraries": "",
    "jit": "off",
}


# Options of every connection to the scratch server: a client's settings outrank the backup's
# per-role and per-database ones (ALTER ROLE ... SET session_preload_libraries, kept in the
# restored catalog), so no library the backup names is loaded when the drill connects.
SCRATCH_OPTIONS = "-c session_preload_libraries= -c local_preload_libraries= -c jit=off"


def drill_config(settings: dict[str, str], workdir: Path, socket_dir: Path) -> str:
    """The scratch server's whole postgresql.conf: `settings`, no TCP listener and one Unix
    socket in `socket_dir`, the drill's own hba and ident files in `workdir`, and every
    program-running or library-loading setting blanked (these last, so no setting given can
    turn them back on)."""
    every = {
        **settings,
        "listen_addresses": "",
        "port": str(SCRATCH_PORT),
        "unix_socket_directories": str(socket_dir),
        "unix_socket_permissions": "0700",
        "hba_file": str(workdir / "drill_hba.conf"),
        "ident_file": str(workdir / "drill_ident.conf"),
        **_NEVER_FROM_THE_BACKUP,
    }
    return "".join(
        f"{name} = '{value.replace(chr(39), chr(39) * 2)}'\n" for name, value in every.items()
    )


def _distrust_backup(data: Path, workdir: Path, socket_dir: Path, settings: dict[str, str]) -> Path:
    """Make the restored data directory start under the drill's configuration alone; the file to
    give as `-c config_file`. The backup's postgresql.conf (and what it includes), pg_hba.conf
    and pg_ident.conf are never read; postgresql.auto.conf, which the server always reads from
    the data directory, is emptied; a standby.signal (a server that never promotes) removed."""
    (data / "postgresql.auto.conf").write_text("")
    (data / "standby.signal").unlink(missing_ok=True)
    (data / "recovery.signal").touch()
    (workdir / "drill_hba.conf").write_text("local all all trust\n")
    (workdir / "drill_ident.conf").write_text("")
    conf = workdir / "drill.conf"
    conf.write_text(drill_config(settings, workdir, socket_dir))
    return conf


_NOT_REACHED = "recovery ended before configured recovery target was reached"


def _target_not_reached(log: Path) -> None:
    """Raise TargetNotReached if the server's log says the WAL ended before the target."""
    if log.exists() and _NOT_REACHED in log.read_text(errors="replace"):
        raise TargetNotReached(f"restore-drill: {_NOT_REACHED}")


def _wait_promoted(dsn: str, workdir: Path, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _target_not_reached(workdir / "postgres.log")
        with (
            contextlib.suppress(psycopg.OperationalError),
            psycopg.connect(dsn, connect_timeout=5, options=SCRATCH_OPTIONS) as conn,
        ):
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and row[0] is False:
                return
        time.sleep(0.2)
    log = workdir / "postgres.log"
    tail = log.read_text(errors="replace").splitlines()[-8:] if log.exists() else []
    raise DrillError("restore-drill: recovery did not end in time:\n" + "\n".join(tail))
