"""Starting, waiting for and stopping the peers' processes; always by pid, never by name."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from loopback.errors import PeerStartError

# Peers' ports: never from the kernel's ephemeral range. A port bind(0) returned is free only
# until its socket closes; before the peer binds it, any outgoing connection on the machine (the
# suite's own clients, a second test run) may take it as its source port, and the peer then
# fails to start or, worse, the readiness check reaches the other socket. Below that range the
# kernel hands out nothing by itself; a lock file per port, held until this process exits,
# keeps two test processes (xdist workers, a second `make test`) from picking the same one.
PORT_LOCKS = Path(os.environ.get("FEDEPLOY_PORT_LOCKS", "/tmp/fedeploy-loopback-ports"))
LOWEST_PORT = 15000
_held: dict[int, int] = {}  # port -> the open lock file's descriptor, kept for the process's life


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int, address: str) -> bool:
    """Whether a listener can bind address:port now (SO_REUSEADDR, as nginx and uvicorn set)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port for a peer to listen on at `address`: free now, outside the ephemeral range
    (so no outgoing connection takes it before the peer binds) and reserved to this process by
    a lock file (so no other test process picks it). Falls back to bind(0) where the ephemeral
    range leaves nothing below it."""
    import fcntl
    import random

    high = _ephemeral_low()
    if high - LOWEST_PORT < 1000:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
            return int(sock.getsockname()[1])
    PORT_LOCKS.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        PORT_LOCKS.chmod(0o1777)  # any user's test run may take its own locks beside ours
    span = high - LOWEST_PORT
    start = random.randrange(span)
    for step in range(span):
        port = LOWEST_PORT + (start + step) % span
        if port in _held:
            continue
        try:
            fd = os.open(PORT_LOCKS / f"{port}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if _bindable(port, "127.0.0.1") and (address == "127.0.0.1" or _bindable(port, address)):
            _held[port] = fd
            return port
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    raise OSError(f"no free port between {LOWEST_PORT} and {high} on {address}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path | None) -> None:
    """Poll `check` until it is true; raise PeerStartError naming `what` and its log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except PeerStartError:
            raise
        except Exception:  # not up yet: refused connections, timeouts, 5xx
            pass
        time.sleep(0.05)
    tail = ""
    if log is not None and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise PeerStartError(f"{what} was not ready after {timeout:.0f} s (log: {log}){tail}")


def uvicorn_command(app: str, port: int, *options: str) -> list[str]:
    """The command serving the ASGI app factory `app` ("module:function") on 127.0.0.1:`port`
    with this Python's uvicorn, warnings only and no access log; `options` are uvicorn's."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--factory",
        "--host=127.0.0.1",
        f"--port={port}",
        *options,
        "--log-level=warning",
        "--no-access-log",
    ]


class Daemon:
    """A child process that writes its pid to a file and is stopped through that file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        workdir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.workdir = workdir
        self.env = env
        self.pid_file = workdir / f"{name}.pid"
        self.log_file = workdir / f"{name}.log"
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process in its own session, output to `<name>.log`, pid to `<name>.pid`."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.workdir,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._popen.pid}\n")

    def start_and_wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Start, then wait until `ready()`; a peer that dies or stays unready is stopped."""
        self.start()
        self.wait(ready, timeout, what)

    def wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait until `ready()` for a started process; one that dies or stays unready is
        stopped."""

        def check() -> bool:
            self.ensure_running()
            return ready()

        try:
            wait_until(check, timeout, what, self.log_file)
        except BaseException:
            self.stop()  # never leave a half-started peer behind
            raise

    @property
    def running(self) -> bool:
        """Whether the process is still alive."""
        return self._popen is not None and self._popen.poll() is None

    def ensure_running(self) -> None:
        """Raise PeerStartError with the log's tail when the process has exited."""
        if not self.running:
            tail = self.log_file.read_text(errors="replace").splitlines()[-20:]
            raise PeerStartError(f"{self.name} exited (log: {self.log_file}):\n" + "\n".join(tail))

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the pid in the pid file, SIGKILL after `timeout`; no-op when not running."""
        self._signal_and_reap(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL at once: what a crash or an OOM kill looks like to the peers."""
        self._signal_and_reap(signal.SIGKILL, 5.0)

    def _signal_and_reap(self, sig: signal.Signals, timeout: float) -> None:
        if not self.pid_file.exists():
            return
        pid = int(self.pid_file.read_text().strip())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if self._popen is not None and self._popen.pid == pid:
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._popen.wait(5.0)
        self.pid_file.unlink(missing_ok=True)
