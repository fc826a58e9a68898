"""`/healthz`, `/readyz` and `/metrics` on one small HTTP server in a daemon thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fedeploy_ingestion.metrics import Metrics


class ProbeServer:
    """Serves the chart's probes and Prometheus's scrape; stopped with `close()`."""

    def __init__(
        self,
        host: str,
        port: int,
        metrics: Metrics,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/metrics":
                    outer._send(self, 200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
                elif self.path == "/healthz":
                    ok = healthy()
                    outer._send(self, 200 if ok else 503, b"ok\n" if ok else b"stalled\n")
                elif self.path == "/readyz":
                    ok = ready()
                    outer._send(self, 200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                else:
                    outer._send(self, 404, b"not found\n")

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the structured logs

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, daemon=True, name="probes"
        )

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def start(self) -> ProbeServer:
        """Serve in the background."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
