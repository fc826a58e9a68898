"""A loopback HTTP server of in-memory files: a WIS2 node's download host for the tests, the
ingestion benchmark and the case study."""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class DataHost:
    """Serves `files` (URL path -> bytes; read at each request, so they may be added after the
    start) on 127.0.0.1 at `port`, in a thread of this process; 404 for any other path.

    `requests[path]` counts the requests; `fail[path] = n` answers the next n of them 503."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files: dict[str, bytes] = files if files is not None else {}
        self.fail: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body in separate writes would wait for a delayed ACK (40 ms).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 - the http.server interface
                host.requests[self.path] += 1
                if host.fail[self.path] > 0:
                    host.fail[self.path] -= 1
                    self._answer(503, b"")
                    return
                body = host.files.get(self.path)
                self._answer(200 if body is not None else 404, body or b"")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "localhost") -> str:
        """The URL of `path` on this server, named by `host` (which must resolve to loopback)."""
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
