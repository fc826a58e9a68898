"""A loopback HTTP server of in-memory files: a WIS2 node's download host for the benchmark and
the case study (the tests' own host also fails and records requests on purpose)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class DataHost:
    """Serves `files` (URL path -> bytes; read at each request, so it may be filled after the
    start) on 127.0.0.1 at `port`, in a thread of this process; 404 for any other path."""

    def __init__(self, files: dict[str, bytes]) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body in separate writes would wait for a delayed ACK (40 ms).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 - the http.server interface
                body = files.get(self.path, b"")
                self.send_response(200 if self.path in files else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
