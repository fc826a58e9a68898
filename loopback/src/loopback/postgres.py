"""A private PostgreSQL with PostGIS and pgstac on loopback, for tests and the demo.

Runs as the `postgres` user when started by root (PostgreSQL refuses root). Trust
authentication on 127.0.0.1 only, and fsync off: fast and disposable, never for real data.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from loopback.errors import PeerStartError, PeerUnavailable
from loopback.processes import free_port, port_open, wait_until

TEMPLATE_DB = "pgstac_template"
# What a fedeploy catalog adds to pgstac after migrating; the catalog chart applies the same.
# The catalog chart's migration Job runs the same file after pypgstac's migrations.
QUERYABLES_SQL = Path(__file__).resolve().parents[3] / "charts/catalog/files/pgstac-queryables.sql"


def postgres_bindir() -> Path:
    """Where initdb and pg_ctl are: $FEDEPLOY_PG_BINDIR or the newest /usr/lib/postgresql/*/bin."""
    given = os.environ.get("FEDEPLOY_PG_BINDIR")
    candidates = (
        [given]
        if given
        else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise PeerUnavailable(
        "PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or "
        "$FEDEPLOY_PG_BINDIR): apt-get install -y postgresql postgresql-15-postgis-3"
    )


def _postgis_installed(bindir: Path) -> bool:
    version = bindir.parent.name
    return bool(glob.glob(f"/usr/share/postgresql/{version}/extension/postgis.control"))


class PostgresServer:
    """One PostgreSQL cluster in `workdir`, with a pgstac-migrated template database."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        settings: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        # Extra server settings (`-c name=value`), and environment the server's own commands
        # (archive_command, restore_command) see beside this process's.
        self.settings = dict(settings or {})
        self.env = env
        self.port = port or free_port()
        self.bindir = postgres_bindir()
        if not _postgis_installed(self.bindir):
            raise PeerUnavailable(
                f"PostGIS is not installed for PostgreSQL {self.bindir.parent.name}: "
                f"apt-get install -y postgresql-{self.bindir.parent.name}-postgis-3"
            )
        # PostgreSQL refuses to run as root: run its programs as the postgres user instead.
        self._user = "postgres" if os.geteuid() == 0 else None
        # That user cannot enter a root-only temporary directory (pytest's are 0700), so the
        # cluster then lives in a directory of its own under /tmp, named in `workdir`.
        self.cluster_dir = (
            Path(tempfile.mkdtemp(prefix="fedeploy-pg-")) if self._user else self.workdir
        )
        self.data_dir = self.cluster_dir / "data"
        self.log_file = self.cluster_dir / "postgres.log"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """initdb, start on 127.0.0.1:port, and migrate pgstac into the template database."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.cluster_dir, entry.pw_uid, entry.pw_gid)
            (self.workdir / "cluster-dir").write_text(f"{self.cluster_dir}\n")
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
        )
        self._start_server()
        try:
            self.execute("postgres", f"CREATE DATABASE {TEMPLATE_DB}")
            self.migrate(TEMPLATE_DB)
        except BaseException:
            self.stop()  # never leave a half-started server behind
            raise
        return self

    def start_existing(self, timeout: float = 60.0) -> PostgresServer:
        """Start on a data directory already in `data_dir` (a restored backup), no initdb."""
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            for path in [self.cluster_dir, *self.cluster_dir.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)
        self._start_server(timeout)
        return self

    def _start_server(self, timeout: float = 30.0) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.cluster_dir}",
                "-c listen_addresses=127.0.0.1",
                # Disposable test data: durability costs time and buys nothing here.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
                *(f"-c {name}={shlex.quote(value)}" for name, value in self.settings.items()),
            ]
        )
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-o",
                options,
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ]
        )
        try:
            wait_until(lambda: port_open(self.port), 10, "PostgreSQL", self.log_file)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop through pg_ctl, which signals the pid in the cluster's postmaster.pid."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run(
                [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]
            )

    def remove(self) -> None:
        """Stop and delete the cluster's files."""
        self.stop()
        shutil.rmtree(self.cluster_dir, ignore_errors=True)

    # --- databases -------------------------------------------------------------------------

    def dsn(self, database: str) -> str:
        """A libpq connection URL for `database` (trust auth: no password)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def migrate(self, database: str) -> None:
        """Install pgstac into `database` with pypgstac's migrations, then our queryables."""
        from pypgstac.db import PgstacDB
        from pypgstac.migrate import Migrate

        with PgstacDB(dsn=self.dsn(database)) as db:
            Migrate(db).run_migration()
        self.execute(database, QUERYABLES_SQL.read_text())

    def create_database(self, name: str, context: bool = True) -> str:
        """A fresh pgstac database copied from the migrated template (about 0.2 s); its DSN.

        `context` turns on pgstac's match counts, so searches report how many items matched.
        """
        self.execute("postgres", f"CREATE DATABASE {_identifier(name)} TEMPLATE {TEMPLATE_DB}")
        if context:
            self.execute(name, "UPDATE pgstac.pgstac_settings SET value='on' WHERE name='context'")
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing its connections first."""
        self.execute("postgres", f"DROP DATABASE IF EXISTS {_identifier(name)} WITH (FORCE)")

    def execute(self, database: str, sql: str) -> None:
        """Run one statement (autocommit) in `database`."""
        import psycopg

        with psycopg.connect(self.dsn(database), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def _run(self, argv: list[str]) -> None:
        env = {**os.environ, **self.env} if self.env else None
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            user=self._user,
            cwd=self.cluster_dir,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            raise PeerStartError(
                f"{Path(argv[0]).name} failed with status {result.returncode} "
                f"(log: {self.log_file}):\n{result.stdout}{result.stderr}"
            )


def _identifier(name: str) -> str:
    if not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise ValueError(
            f"database name {name!r} is not allowed: letters, digits and '_', "
            "starting with a letter"
        )
    return name
