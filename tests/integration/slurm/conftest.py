"""A real one-node SLURM for the session, and a proxy that loses answers on purpose."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from fedeploy.bridge.client import BridgeClient
from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[3]


def _harness() -> ModuleType:
    # scripts/ is not a package; load the harness from its file.
    name = "fedeploy_slurm_cluster"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "slurm_cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def releases() -> list[str]:
    """The Slurm releases the suite runs against: both (22.05 on the host, 24.11 in its root
    filesystem), or those FEDEPLOY_SLURM_RELEASES names (comma-separated) on a developer's
    machine; CI runs both."""
    chosen = os.environ.get("FEDEPLOY_SLURM_RELEASES")
    return [r.strip() for r in chosen.split(",") if r.strip()] if chosen else ["22.05", "24.11"]


@pytest.fixture(scope="session", params=releases())
def slurm(request) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """munged, slurmctld, slurmd, slurmrestd and the TLS proxy, from the rendered templates,
    once per Slurm release: every test of the suite runs against each."""
    harness = _harness()
    release = request.param
    reason = harness.missing_prerequisites(release)
    if reason:
        unavailable(f"Slurm {release}: {reason}")
    # Not under pytest's tmp dir: it is private to root, and munge, slurm and the job user
    # must reach their files.
    root = Path(tempfile.mkdtemp(prefix=f"fedeploy-slurm-{release}-"))
    cluster = harness.LocalSlurm(root, release=release)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def client(slurm) -> Iterator[BridgeClient]:  # type: ignore[no-untyped-def]
    """A client through the TLS proxy, as a pod would have it."""
    with BridgeClient(
        slurm.endpoint, slurm.user, slurm.token(), ca_file=slurm.ca_file, retries=2, backoff=0.1
    ) as bridge:
        yield bridge


@pytest.fixture
def job_dir(slurm, request) -> Path:  # type: ignore[no-untyped-def]
    """A directory the job user writes to, one per test."""
    path = slurm.jobs_dir / request.node.name.replace("[", "-").replace("]", "")
    path.mkdir(exist_ok=True)
    shutil.chown(path, slurm.user, slurm.user)
    return path


@pytest.fixture
def jobs_with_key(slurm) -> Callable[[str], list[str]]:  # type: ignore[no-untyped-def]
    """Job ids SLURM holds with an idempotency key, read by squeue rather than the client."""

    def find(key: str) -> list[str]:
        result = subprocess.run(
            slurm.command(["squeue", "--states=all", "-h", "-o", "%i|%k"]),
            capture_output=True,
            text=True,
            check=True,
            env=slurm.env(),
        )
        return [
            line.split("|")[0]
            for line in result.stdout.splitlines()
            if line.endswith(f"fedeploy-key:{key}")
        ]

    return find


class LosingProxy(socketserver.ThreadingTCPServer):
    """Plain HTTP in front of slurmrestd that forwards a request and then, when `lose`
    says so, closes the connection instead of passing the answer back: a crash between
    the submission and its answer, as the caller sees it."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream_port: int, lose: Callable[[str, str], bool]):
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream_port = upstream_port
        self.lose = lose
        self.lost: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> LosingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _ProxyHandler(socketserver.BaseRequestHandler):
    server: LosingProxy

    def handle(self) -> None:
        request = _read_http(self.request)
        if not request:
            return
        method, path = request.split(b" ", 2)[:2]
        with socket.create_connection(("127.0.0.1", self.server.upstream_port)) as upstream:
            upstream.sendall(request)
            answer = _read_http(upstream)
        if self.server.lose(method.decode(), path.decode()):
            self.server.lost.append(f"{method.decode()} {path.decode()}")
            return  # the answer is dropped; closing the socket is all the client sees
        self.request.sendall(answer)


def _read_http(sock: socket.socket) -> bytes:
    """One HTTP message with a Content-Length body (what httpx and slurmrestd send)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def losing_proxy(slurm):  # type: ignore[no-untyped-def]
    """Start a LosingProxy with a rule: `with losing_proxy(rule) as proxy: ...`."""

    def start(lose: Callable[[str, str], bool]) -> LosingProxy:
        return LosingProxy(slurm.ports["internal"], lose)

    return start
