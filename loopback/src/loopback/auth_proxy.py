"""stac-auth-proxy on loopback, run as the catalog chart runs it: behind charts/catalog/files'
token guard, configured from the environment the chart renders for it."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from loopback.errors import PeerUnavailable
from loopback.processes import Daemon, free_port, uvicorn_command

GUARD_DIR = Path(__file__).resolve().parents[3] / "charts/catalog/files"


class AuthProxyServer:
    """One stac-auth-proxy process on 127.0.0.1. `env` is the chart's container environment
    (UPSTREAM_URL and OIDC_DISCOVERY_URL pointing at loopback peers); `ca_file` is trusted for
    the OIDC provider's https URLs."""

    def __init__(
        self,
        env: dict[str, str],
        workdir: Path,
        name: str = "auth-proxy",
        ca_file: Path | None = None,
    ) -> None:
        try:
            import stac_auth_proxy  # noqa: F401
        except ImportError as missing:
            raise PeerUnavailable(
                "stac-auth-proxy is not installed: pip install 'stac-auth-proxy==1.3.1'"
            ) from missing
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = dict(os.environ)
        full.update(env)
        if ca_file is not None:
            full["SSL_CERT_FILE"] = str(ca_file)
        # The chart's metrics port (9090 on every address) would collide between the proxies of
        # one test and reach beyond loopback: a free port of its own on 127.0.0.1.
        self.metrics_port: int | None = None
        if full.get("GUARD_METRICS_PORT"):
            self.metrics_port = free_port()
            full["GUARD_METRICS_PORT"] = str(self.metrics_port)
            full["GUARD_METRICS_HOST"] = "127.0.0.1"
        self.daemon = Daemon(
            name,
            uvicorn_command(
                "token_guard:create_app",
                self.port,
                f"--app-dir={GUARD_DIR}",
                "--proxy-headers",
                "--forwarded-allow-ips=127.0.0.1",
            ),
            Path(workdir),
            env=full,
        )

    def start(self, timeout: float = 60.0) -> AuthProxyServer:
        """Start and wait until its health check answers (it waits for upstream and OIDC)."""
        self.daemon.start_and_wait(self.ready, timeout, f"stac-auth-proxy on {self.url}")
        return self

    def launch(self) -> None:
        """Start without waiting (several peers start faster side by side); then `wait`."""
        self.daemon.start()

    def wait(self, timeout: float = 60.0) -> AuthProxyServer:
        """Wait for a launched proxy; a proxy that dies or stays unready is stopped."""
        self.daemon.wait(self.ready, timeout, f"stac-auth-proxy on {self.url}")
        return self

    def ready(self) -> bool:
        """Whether its health check answers 200."""
        return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200

    def stop(self) -> None:
        """Stop by pid file."""
        self.daemon.stop()
