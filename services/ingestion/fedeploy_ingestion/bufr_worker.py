"""BUFR decoding in a child process with a memory ceiling (`decode_bufr_bounded`).

What ecCodes allocates while unpacking is not known from section 3 alone: a delayed
replication factor (031001/031002) sits in section 4, so one 180 KB compressed message can ask
for 900 MiB. `decode_bufr` refuses what section 3 already shows too large; the rest is bounded
here: files are decoded, one at a time, in a worker process (started from a forkserver that has
ecCodes loaded) whose address space is capped at `DecodeBudget.max_decode_bytes` above what it
starts with. A worker that runs past it ends (MemoryError, or ecCodes aborting on a failed
allocation) and the file is refused `too-large`; the consumer is unharmed, the refusal is
dead-lettered (a redelivery does not repeat it) and the next file starts a new worker. The
parent waits in slices, calling `beat` after each, so a long message does not stop the
liveness heartbeat; a worker past `max_decode_seconds` is killed and the file refused
`too-large` too.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import resource
import threading
import time
from collections.abc import Callable
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from fedeploy_ingestion.bufr import DecodeBudget, SubsetRefusal, decode_bufr, load_eccodes
from fedeploy_ingestion.observation import InvalidObservation, Limits, Observation

# The parent beats the heartbeat at least this often while the worker decodes.
BEAT_SECONDS = 1.0
DEFAULT_BUDGET = DecodeBudget()


def _address_space() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _serve(conn: Connection, max_bytes: int) -> None:
    """The worker: decode each file sent until the pipe closes; after a MemoryError, end."""
    load_eccodes()  # loaded by the forkserver already: the ceiling is above the library
    ceiling = _address_space() + max_bytes
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
    try:
        trim: Callable[[int], int] | None = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        trim = None
    while True:
        try:
            data, now, limits, published, budget = conn.recv()
        except (EOFError, OSError):  # the consumer closed the pipe, or died (a reset): end
            return
        try:
            result: tuple[Any, ...] = ("ok", decode_bufr(data, now, limits, published, budget))
        except InvalidObservation as error:
            result = ("invalid", error.code, error.reason)
        except MemoryError:
            result = ("memory",)
        try:
            conn.send(result)
        except OSError:  # the consumer died before reading it: nobody is left to answer
            return
        if result[0] == "memory":
            return
        del data, result
        if trim is not None:
            trim(0)  # what the file took goes back to the system, not kept in the heap


class _Worker:
    """The one worker process and its pipe; started when needed, replaced when it ends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.process: Any = None
        self.conn: Connection | None = None
        self.max_bytes = 0
        self._context: Any = None

    def ready(self, max_bytes: int) -> Connection:
        if self.process is not None and (
            not self.process.is_alive() or self.max_bytes != max_bytes
        ):
            self.stop()
        if self.process is None or self.conn is None:
            if self._context is None:
                self._context = multiprocessing.get_context("forkserver")
                self._context.set_forkserver_preload(["eccodes", "fedeploy_ingestion.bufr"])
            parent, child = self._context.Pipe()
            self.process = self._context.Process(
                target=_serve, args=(child, max_bytes), daemon=True, name="bufr-decoder"
            )
            self.process.start()
            child.close()
            self.conn, self.max_bytes = parent, max_bytes
        return self.conn

    def stop(self) -> int | None:
        """End the worker; its exit code."""
        code = None
        if self.conn is not None:
            self.conn.close()
        if self.process is not None:
            self.process.join(1)
            if self.process.exitcode is None:
                self.process.kill()
                self.process.join()
            code = self.process.exitcode
            self.process.close()
        self.process = self.conn = None
        return code


_worker = _Worker()


def decode_bufr_bounded(
    data: bytes,
    now: datetime,
    limits: Limits,
    published: datetime | None = None,
    budget: DecodeBudget = DEFAULT_BUDGET,
    beat: Callable[[], None] = lambda: None,
) -> tuple[list[Observation], list[SubsetRefusal]]:
    """`decode_bufr` in the worker process, bounded by `budget.max_decode_bytes` of memory
    and `budget.max_decode_seconds`; past either, InvalidObservation `too-large`."""
    with _worker.lock:
        conn = _worker.ready(budget.max_decode_bytes)
        deadline = time.monotonic() + budget.max_decode_seconds
        result: tuple[Any, ...] | None = None
        try:
            conn.send((data, now, limits, published, budget))
            while result is None:
                beat()
                if conn.poll(BEAT_SECONDS):
                    result = conn.recv()
                elif time.monotonic() > deadline:
                    _worker.stop()
                    raise InvalidObservation(
                        "too-large",
                        f"decoding the BUFR file ({len(data)} bytes) took more than "
                        f"{budget.max_decode_seconds} s",
                    )
        except (EOFError, OSError):  # the worker ended without an answer (killed, aborted)
            result = None
        if result is None or result[0] == "memory":
            code = _worker.stop()
            how = "ran out of memory" if result else f"ended with exit code {code}"
            raise InvalidObservation(
                "too-large",
                f"decoding the BUFR file ({len(data)} bytes) needs more than "
                f"{budget.max_decode_bytes // 2**20} MiB (the decoder {how})",
            )
    if result[0] == "invalid":
        raise InvalidObservation(result[1], result[2])
    observations, refused = result[1]
    return observations, refused
