"""barman-cloud command lines that restore one catalog database's backups from an S3 store.

The catalog chart's backup sidecar (charts/catalog/files/backup.sh) writes them with the same
tool and layout: everything under `s3://<bucket>/<prefix>`, one folder per server name, WAL and
base backups beside each other.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class BackupStore:
    """Where one database's backups live and how barman-cloud reaches that store."""

    bucket: str
    prefix: str
    server_name: str
    endpoint_url: str | None = None
    # Where barman-cloud's programs are; empty: found on PATH.
    bindir: str = ""

    def __post_init__(self) -> None:
        if not self.bucket or "/" in self.bucket:
            raise ValueError(f"bucket {self.bucket!r}: a bucket name, without '/'")
        if self.prefix.startswith("/") or self.prefix.endswith("/") or not self.prefix:
            raise ValueError(
                f"prefix {self.prefix!r}: a key prefix without leading or trailing '/'"
            )
        if not self.server_name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"server name {self.server_name!r}: letters, digits, '-' and '_'")

    @property
    def url(self) -> str:
        """The barman-cloud destination: `s3://bucket/prefix`."""
        return f"s3://{self.bucket}/{self.prefix}"

    def key_prefix(self) -> str:
        """The object keys this server's backups are written under."""
        return f"{self.prefix}/{self.server_name}/"

    def _program(self, name: str) -> str:
        return f"{self.bindir.rstrip('/')}/{name}" if self.bindir else name

    def _common(self) -> list[str]:
        argv = ["--cloud-provider", "aws-s3"]
        if self.endpoint_url:
            argv += ["--endpoint-url", self.endpoint_url]
        return argv

    def restore_command(self) -> str:
        """PostgreSQL's restore_command during recovery: each WAL segment from the store."""
        argv = [
            self._program("barman-cloud-wal-restore"),
            *self._common(),
            self.url,
            self.server_name,
        ]
        return shlex.join(argv) + " %f %p"

    def restore(self, data_dir: str, backup_id: str = "auto") -> list[str]:
        """Download a base backup into an empty data directory: `auto`, the newest (barman-cloud
        3.13, Debian 13's, knows no `latest`: it reads it as a backup's name), or an id."""
        return [
            self._program("barman-cloud-restore"),
            *self._common(),
            self.url,
            self.server_name,
            backup_id,
            data_dir,
        ]


def recovery_settings(
    store: BackupStore,
    target_name: str | None = None,
    target_time: str | None = None,
    target_lsn: str | None = None,
) -> dict[str, str]:
    """postgresql.conf settings that replay WAL from the store, up to a point if one is given.

    A named restore point (`pg_create_restore_point`), a time or a WAL position
    (`pg_current_wal_lsn()`, e.g. '0/3000060'), at most one; recovery then
    promotes, so the restored server takes writes of its own and never archives into the
    live server's folder (the drill leaves archive_mode off).
    """
    if len([t for t in (target_name, target_time, target_lsn) if t]) > 1:
        raise ValueError("a restore point name, a time or an LSN, not both")
    settings = {"restore_command": store.restore_command(), "archive_mode": "off"}
    if target_name:
        settings["recovery_target_name"] = target_name
    if target_time:
        settings["recovery_target_time"] = target_time
    if target_lsn:
        settings["recovery_target_lsn"] = target_lsn
    if target_name or target_time or target_lsn:
        settings["recovery_target_action"] = "promote"
        settings["recovery_target_inclusive"] = "true"
    return settings
