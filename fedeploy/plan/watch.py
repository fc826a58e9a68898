"""`fedeploy plan --watch`: a warm planner that plans again whenever a stack file changes.

The process imports the program and the SDKs once, then plans in a child forked from it for
each change (copy-on-write: Pulumi's runtime state is process-wide, and a plan's leftovers or
crash must not reach the next one). The plan cache answers every stack whose inputs did not
change, so a change to one site plans that site and the stacks that read it. A change to what
the cache key hashes besides the stack files (the program, charts, templates, image lock)
restarts the watcher: the code it imported is no longer the code on disk."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

POLL_SECONDS = 0.1  # how often the stack files' sizes and mtimes are read
CODE_POLL_SECONDS = 1.0  # how often the project's code files are (a few hundred of them)
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
SHOWN_NAMES = 12  # stacks named in the status line before "and N more"

Snapshot = dict[str, tuple[int, int, int]]  # path: (mtime_ns, size, inode)


class _Stopped(Exception):
    """SIGTERM or SIGINT reached the watcher."""


@dataclass(frozen=True)
class WatchOptions:
    """What each plan of the watcher does: `fedeploy plan`'s own options."""

    stacks_dir: Path
    names: list[str] | None
    format: str
    out: Path | None
    jobs: int | None


def watch_plan(options: WatchOptions) -> int:
    """Plan, then plan again on every change to a stack file until SIGINT or SIGTERM (exit 0).

    Each report goes to stdout as `fedeploy plan` prints it; a status line on stderr says which
    stacks were planned, which came from the cache and how long it took."""
    from fedeploy.offline.cache import fingerprint_files
    from fedeploy.project import project_dir

    root = project_dir()
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    _adopt_orphans()
    try:
        _warm(root)
        code = _code_snapshot(fingerprint_files(root).values())
        stacks = _stacks_snapshot(options.stacks_dir)
        _plan_and_report(options, "first plan")
        code_checked = time.monotonic()
        while True:
            time.sleep(POLL_SECONDS)
            now = _stacks_snapshot(options.stacks_dir)
            if time.monotonic() - code_checked >= CODE_POLL_SECONDS:
                code_checked = time.monotonic()
                if _code_snapshot(fingerprint_files(root).values()) != code:
                    _restart()
            if now == stacks:
                continue
            now = _settled(options.stacks_dir, now)
            changed = sorted(Path(p).name for p in now.keys() ^ stacks.keys()) + sorted(
                Path(p).name for p in now.keys() & stacks.keys() if now[p] != stacks[p]
            )
            stacks = now
            _plan_and_report(options, "changed: " + ", ".join(changed))
    except _Stopped:
        _status("fedeploy plan --watch: stopped")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def _warm(root: Path) -> None:
    """Import everything a plan needs and hash the code once, in this process (never Helm: a
    process that loaded it cannot fork), so each plan's child inherits them."""
    import gc

    from fedeploy.charts import warm_chart_checks
    from fedeploy.offline.cache import code_fingerprint
    from fedeploy.offline.federation import collector_paused, warm_imports
    from fedeploy.plan import formats, run  # noqa: F401

    with collector_paused():
        warm_imports()
        warm_chart_checks()
    gc.freeze()  # the children's collectors never walk (and so copy) the SDKs' pages
    code_fingerprint(root)


def _stacks_snapshot(stacks_dir: Path) -> Snapshot:
    """Size, mtime and inode of every file in the stacks directory (a file added, removed,
    rewritten or replaced by a rename changes it); empty if the directory cannot be read."""
    try:
        entries = list(os.scandir(stacks_dir))
    except OSError:
        return {}
    found: Snapshot = {}
    for entry in entries:
        try:
            stat = entry.stat()
        except OSError:
            continue  # removed while listed
        if entry.is_file():
            found[entry.path] = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    return found


def _code_snapshot(paths: Iterable[Path]) -> Snapshot:
    """Size, mtime and inode of each of `paths` that exists."""
    found: Snapshot = {}
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        found[str(path)] = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    return found


def _settled(stacks_dir: Path, seen: Snapshot) -> Snapshot:
    """The stack files once they stop changing for a poll: two saves in quick succession (or a
    file written in parts) are planned once, whole."""
    while True:
        time.sleep(POLL_SECONDS)
        now = _stacks_snapshot(stacks_dir)
        if now == seen:
            return now
        seen = now


def _restart() -> None:
    """Replace this process with a fresh watcher (same command line): the code changed."""
    _status("fedeploy plan --watch: the project's code changed; restarting to plan with it")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)


def _status(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _names(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")


def _plan_and_report(options: WatchOptions, why: str) -> None:
    """Plan in a forked child, which prints the report; then the status line."""
    start = time.perf_counter()
    summary, ended = _in_child(options)
    seconds = time.perf_counter() - start
    if summary is None:
        _status(f"fedeploy plan --watch ({why}): the plan's process {ended}; {seconds:.2f} s")
    else:
        _status(
            f"fedeploy plan --watch ({why}): planned {_names(summary['planned'])}; "
            f"from the cache: {_names(summary['cached'])}; {seconds:.2f} s; "
            f"exit status {summary['exit']}"
        )
    _status(f"watching {options.stacks_dir} (Ctrl-C to stop)")


def _in_child(options: WatchOptions) -> tuple[dict | None, str]:
    """Run one plan in a child forked from this process, in its own process group (so its
    workers end with it); its summary, or None and how the child ended."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child(options, write_end)
    os.close(write_end)
    with _reaped(pid):
        chunks = []
        with os.fdopen(read_end, "rb") as pipe:
            while chunk := pipe.read(65536):
                chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
    _reap_orphans()
    if chunks:
        return json.loads(b"".join(chunks)), ""
    if os.WIFSIGNALED(status):
        return None, f"was killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return None, f"ended with status {os.waitstatus_to_exitcode(status)}"


@contextmanager
def _reaped(pid: int) -> Iterator[None]:
    """On the way out through an exception (the watcher stopped), end the child's process group
    and wait for the child."""
    with suppress(OSError):
        os.setpgid(pid, pid)  # as the child does: whichever runs first
    try:
        yield
    except BaseException:
        for sig in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl-C does not cut this short
            signal.signal(sig, signal.SIG_IGN)
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        with suppress(ChildProcessError):
            os.waitpid(pid, 0)
        _reap_orphans(wait=True)
        raise


def _adopt_orphans() -> None:
    """Make this process the reaper of its descendants that lose their parent (Linux's
    PR_SET_CHILD_SUBREAPER): a plan's workers, once its child is ended, are reaped here."""
    import ctypes
    import ctypes.util

    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_orphans(wait: bool = False) -> None:
    """Reap the descendants left to this process (see _adopt_orphans): those already ended, or
    with `wait`, every one, once it ends."""
    while True:
        try:
            pid, _ = os.waitpid(-1, 0 if wait else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(options: WatchOptions, write_end: int) -> None:
    """The forked child: plan, print the report (and --out), send the summary, exit."""
    code = 2
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        code = _plan_once(options, write_end)
    except BaseException as err:  # noqa: BLE001  a child never returns into the watcher's loop
        from fedeploy.errors import FedeployError

        if isinstance(err, FedeployError):
            sys.stderr.write(f"{err}\n")
            code = err.exit_code
        else:
            sys.stderr.write(f"fedeploy: internal error ({type(err).__name__}): {err}\n")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _plan_once(options: WatchOptions, write_end: int) -> int:
    from fedeploy.plan.formats import FORMATS
    from fedeploy.plan.run import run_plan, write_out

    report = run_plan(options.stacks_dir, options.names, jobs=options.jobs)
    sys.stdout.write(FORMATS[options.format](report))
    sys.stdout.flush()
    if options.out is not None:
        try:
            write_out(report, options.out)
        except OSError as err:
            sys.stderr.write(
                f"--out {options.out}: cannot write the plan's files: {err.strerror}\n"
            )
    federation = report.federation
    summary = {
        "planned": sorted(federation.plans.keys() - federation.from_cache),
        "cached": sorted(federation.plans.keys() & federation.from_cache),
        "exit": report.exit_code,
    }
    os.write(write_end, json.dumps(summary).encode())
    return report.exit_code
