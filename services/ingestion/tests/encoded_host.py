"""A loopback HTTP server answering scripted bodies with scripted headers (Content-Encoding
bombs among them), in a thread of the test process; and the bombs themselves."""

from __future__ import annotations

import gzip
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MiB = 1024 * 1024


class EncodedHost:
    """Serves `routes[path] = (body, headers)` on 127.0.0.1; 404 elsewhere. `accept[path]`
    records the Accept-Encoding each request sent."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.accept: Counter[tuple[str, str]] = Counter()
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                host.accept[(self.path, self.headers.get("Accept-Encoding", ""))] += 1
                body, headers = host.routes.get(self.path, (b"", {}))
                self.send_response(200 if self.path in host.routes else 404)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "localhost") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def gzip_of_zeros(size: int) -> bytes:
    """gzip of `size` zero bytes, compressed 1 MiB at a time (never `size` in memory)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    parts = [packer.compress(block) for _ in range(size // MiB)]
    return b"".join([*parts, packer.flush()])


def stacked_gzip_bomb(size: int = 600 * MiB) -> bytes:
    """`Content-Encoding: gzip, gzip`: about 1 KiB on the wire, `size` bytes decoded."""
    return gzip.compress(gzip_of_zeros(size), 9)
