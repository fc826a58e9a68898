"""stac-fastapi-pgstac with the transactions extension, served by uvicorn on loopback."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from loopback.processes import Daemon, free_port, uvicorn_command


class StacApiServer:
    """One STAC API process over one pgstac database, stopped by its pid file."""

    def __init__(
        self,
        dsn: str,
        workdir: Path,
        name: str = "stac-api",
        port: int | None = None,
        transactions: bool = True,
    ) -> None:
        self.dsn = dsn
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        parts = urlsplit(dsn)
        env = dict(os.environ)
        env.update(
            {
                # stac-fastapi-pgstac requires every one of these, a password even under trust auth.
                "PGUSER": parts.username or "postgres",
                "PGPASSWORD": parts.password or "unused",
                "PGHOST": parts.hostname or "127.0.0.1",
                "PGPORT": str(parts.port or 5432),
                "PGDATABASE": parts.path.lstrip("/"),
                "ENABLE_TRANSACTIONS_EXTENSIONS": "true" if transactions else "false",
                # Several APIs share one test cluster: keep each pool small.
                "DB_MIN_CONN_SIZE": "1",
                "DB_MAX_CONN_SIZE": "4",
            }
        )
        self.daemon = Daemon(
            name,
            uvicorn_command("stac_fastapi.pgstac.app:create_app", self.port),
            Path(workdir),
            env=env,
        )

    def start(self, timeout: float = 30.0) -> StacApiServer:
        """Start and wait until `/_mgmt/ping` answers."""
        self.daemon.start_and_wait(self._ping, timeout, f"stac-fastapi-pgstac on {self.url}")
        return self

    def stop(self) -> None:
        """Stop by pid file."""
        self.daemon.stop()

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.daemon.running

    def _ping(self) -> bool:
        return httpx.get(f"{self.url}/_mgmt/ping", timeout=1.0).status_code == 200
