"""barman-cloud's programs where the `postgres` user can run them, for the backup drill.

PostgreSQL runs archive_command and restore_command as its own user, which cannot enter the
pyenv interpreter's folder (0700 under /root). So the programs run from a venv made from the
system's /usr/bin/python3.11, in a directory of its own under /tmp, that reads the packages
installed beside this interpreter (barman[cloud], boto3, psycopg2: same Python minor version).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from loopback.errors import PeerStartError, PeerUnavailable
from loopback.postgres import PostgresServer

SYSTEM_PYTHON = Path("/usr/bin/python3.11")
# The barman-cloud programs the drill and the chart use, and the module each one runs.
PROGRAMS = {
    "barman-cloud-wal-archive": "barman.clients.cloud_walarchive",
    "barman-cloud-wal-restore": "barman.clients.cloud_walrestore",
    "barman-cloud-backup": "barman.clients.cloud_backup",
    "barman-cloud-backup-list": "barman.clients.cloud_backup_list",
    "barman-cloud-backup-delete": "barman.clients.cloud_backup_delete",
    "barman-cloud-restore": "barman.clients.cloud_restore",
    "barman-cloud-check-wal-archive": "barman.clients.cloud_check_wal_archive",
}


class BarmanTools:
    """A folder of barman-cloud programs any local user can run; `bindir` for BackupStore."""

    def __init__(self) -> None:
        if importlib.util.find_spec("barman") is None:
            raise PeerUnavailable(
                "barman-cloud is not installed: pip install 'barman[cloud]>=3.19,<3.20'"
            )
        if not SYSTEM_PYTHON.exists():
            raise PeerUnavailable(f"{SYSTEM_PYTHON} is missing: apt-get install -y python3.11-venv")
        self.root = Path(tempfile.mkdtemp(prefix="fedeploy-barman-"))
        self.bindir = self.root / "bin"
        # The venv's interpreter: runs fedeploy itself as another user (`restore-drill`).
        self.python = self.root / "venv" / "bin" / "python"

    def start(self) -> BarmanTools:
        """Make the venv (no pip: about 1 s) and one launcher per program."""
        self.root.chmod(0o755)
        venv = self.root / "venv"
        made = subprocess.run(
            [str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(venv)],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            raise PeerStartError(f"python3.11 -m venv failed: {made.stderr}")
        site = Path(sysconfig.get_paths()["purelib"])
        # addsitedir, not a plain path line: the host's own .pth files (an editable fedeploy) count.
        (next(venv.glob("lib/python3*/site-packages")) / "fedeploy-host.pth").write_text(
            f"import site; site.addsitedir({str(site)!r})\n"
        )
        self.bindir.mkdir()
        for program, module in PROGRAMS.items():
            launcher = self.bindir / program
            launcher.write_text(f'#!/bin/sh\nexec {venv}/bin/python -m {module} "$@"\n')
            launcher.chmod(0o755)
        for path in [self.root, *self.root.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        return self

    def run(self, argv: list[str], env: dict[str, str], timeout: float = 300.0) -> str:
        """Run one barman-cloud command (argv[0] a program of `bindir`); its output."""
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise PeerStartError(
                f"{Path(argv[0]).name} failed with status {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result.stdout

    def remove(self) -> None:
        """Delete the venv and the launchers."""
        shutil.rmtree(self.root, ignore_errors=True)


def aws_env(
    access_key_id: str, secret_access_key: str, region: str = "us-east-1"
) -> dict[str, str]:
    """The environment barman-cloud's boto3 reads its credentials from."""
    return {
        "AWS_ACCESS_KEY_ID": access_key_id,
        "AWS_SECRET_ACCESS_KEY": secret_access_key,
        "AWS_DEFAULT_REGION": region,
        # This interpreter's modules only: the system Python must not read the user's site.
        "PYTHONNOUSERSITE": "1",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin") + f":{Path(sys.executable).parent}",
    }


# Where the catalog chart's database keeps the WAL spool, in the container.
CHART_SPOOL = "/var/lib/postgresql/wal-spool"


def _catalog_chart() -> Path:
    from fedeploy.project import project_dir

    return project_dir() / "charts" / "catalog"


def chart_archive_command(spool: Path) -> str:
    """The archive_command the catalog chart gives its database with backups on (rendered with
    real Helm), its spool moved to `spool`."""
    from fedeploy.charts import render_chart

    values = {"backup": {"enabled": True, "bucket": "any"}, "database": {"existingSecret": "db"}}
    (statefulset,) = [
        m for m in render_chart(_catalog_chart(), values) if m["kind"] == "StatefulSet"
    ]
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    (command,) = [a.split("=", 1)[1] for a in args if a.startswith("archive_command=")]
    if CHART_SPOOL not in command:
        raise PeerStartError(f"the chart's archive_command writes elsewhere: {command}")
    return str(command).replace(CHART_SPOOL, str(spool))


def archiving_server(workdir: Path) -> tuple[PostgresServer, Path]:
    """A started PostgresServer whose WAL goes to a spool by the chart's archive_command."""
    server = PostgresServer(workdir)
    spool = server.cluster_dir / "wal-spool"  # the chart's init container makes it
    spool.mkdir()
    if os.geteuid() == 0:  # the server runs as postgres and writes the spool
        entry = pwd.getpwnam("postgres")
        os.chown(spool, entry.pw_uid, entry.pw_gid)
    server.settings = {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": chart_archive_command(spool),
    }
    return server.start(), spool


def sidecar_round(
    bindir: Path,
    url: str,
    server_name: str,
    endpoint_url: str,
    server: PostgresServer,
    spool: Path,
    env: dict[str, str],
    base_backup: bool,
) -> None:
    """One round of the catalog chart's backup sidecar (charts/catalog/files/backup.sh), run as
    the pod runs it: upload the spooled WAL, then a base backup and the retention if due."""
    result = subprocess.run(
        ["/bin/sh", str(_catalog_chart() / "files" / "backup.sh")],
        env={
            **os.environ,
            **env,
            "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "BACKUP_URL": url,
            "BACKUP_SERVER_NAME": server_name,
            "BACKUP_ENDPOINT_URL": endpoint_url,
            "BACKUP_RETENTION_DAYS": "14",
            "BACKUP_INTERVAL_SECONDS": "0" if base_backup else "86400",
            "BACKUP_POLL_SECONDS": "1",
            "BACKUP_SPOOL": str(spool),
            "BACKUP_HEARTBEAT": str(spool.parent / "backup-heartbeat"),
            "BACKUP_ONCE": "1",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(server.port),
            "PGUSER": "postgres",
            "PGDATABASE": "postgres",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0 or "failed" in result.stderr:
        raise PeerStartError(f"backup.sh round failed:\n{result.stdout}{result.stderr}")


def restore_drill(
    tools: BarmanTools, env: dict[str, str], args: list[str]
) -> subprocess.CompletedProcess[str]:
    """`fedeploy restore-drill ARGS` as the postgres user (pg_ctl refuses root), with the
    barman-cloud programs on PATH and the store's credentials in `env`."""
    return subprocess.run(
        [str(tools.python), "-m", "fedeploy.cli", "restore-drill", *args],
        env={
            **os.environ,
            **env,
            "HOME": "/tmp",
            "PATH": f"{tools.bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        },
        user="postgres" if os.geteuid() == 0 else None,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
