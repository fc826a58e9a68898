"""A static file server with HTTP Range support, standing in for an upstream's asset host.

It records every request (path and Range) and can cut a response after a number of bytes,
which is how the tests interrupt a copy midway.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Request:
    """One request the server answered."""

    path: str
    range: str | None
    status: int


class AssetServer:
    """Serves the files under `root` on 127.0.0.1, in a thread of this process."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.requests: list[Request] = []
        self._cuts: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer._serve(self)

            def do_HEAD(self) -> None:  # noqa: N802
                outer._serve(self, body=False)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="asset-server"
        )

    def start(self) -> AssetServer:
        """Serve in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def href(self, relative: str) -> str:
        """The URL of a file under the root."""
        return f"{self.url}/{relative}"

    def cut_next(self, relative: str, after_bytes: int) -> None:
        """The next GET of `relative` sends `after_bytes` of its body, then drops the connection."""
        with self._lock:
            self._cuts.setdefault("/" + relative, []).append(after_bytes)

    def _record(self, path: str, range_header: str | None, status: int) -> None:
        with self._lock:
            self.requests.append(Request(path, range_header, status))

    def _serve(self, handler: BaseHTTPRequestHandler, body: bool = True) -> None:
        path = unquote(urlsplit(handler.path).path)
        file = (self.root / path.lstrip("/")).resolve()
        range_header = handler.headers.get("Range")
        if not file.is_relative_to(self.root) or not file.is_file():
            self._record(path, range_header, 404)
            handler.send_error(404)
            return
        size = file.stat().st_size
        start, end, status = 0, size - 1, 200
        if range_header:
            match = _RANGE.match(range_header)
            if not match or int(match[1]) >= size:
                self._record(path, range_header, 416)
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{size}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            start = int(match[1])
            end = min(int(match[2]), size - 1) if match[2] else size - 1
            status = 206
        with self._lock:
            cuts = self._cuts.get(path)
            cut = cuts.pop(0) if cuts and body else None
        self._record(path, range_header, status)
        handler.send_response(status)
        handler.send_header("Content-Length", str(end - start + 1))
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Type", "application/octet-stream")
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        handler.end_headers()
        if not body:
            return
        remaining = end - start + 1 if cut is None else min(cut, end - start + 1)
        with file.open("rb") as stream:
            if cut is None:
                # The kernel sends the file (sendfile(2)) without this process's processor or
                # its GIL, as a remote upstream costs the copying process nothing: the copy
                # benchmark's rates and processor seconds are then the copy's own.
                handler.wfile.flush()
                handler.connection.sendfile(stream, start, remaining)
                return
            stream.seek(start)
            while remaining > 0:
                chunk = stream.read(min(CHUNK, remaining))
                if not chunk:
                    break
                handler.wfile.write(chunk)
                remaining -= len(chunk)
        if cut is not None:
            handler.wfile.flush()
            # Drop the connection mid-body, as a network failure would.
            handler.close_connection = True
            handler.connection.shutdown(2)


def write_random_file(path: Path, size: int) -> None:
    """A file of `size` random bytes (written in chunks, never whole in memory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        remaining = size
        while remaining > 0:
            chunk = os.urandom(min(CHUNK, remaining))
            stream.write(chunk)
            remaining -= len(chunk)
