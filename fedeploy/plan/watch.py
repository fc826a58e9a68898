"""`fedeploy plan --watch`: a warm planner that plans again whenever a stack file changes.

The process imports the program and the SDKs once, then plans in a child forked from it for
each change (copy-on-write: Pulumi's runtime state is process-wide, and a plan's leftovers or
crash must not reach the next one). The plan cache answers every stack whose inputs did not
change, so a change to one site plans that site and the stacks that read it. A change to what
the cache key hashes besides the stack files (the program, charts, templates, image lock, the
installed packages) restarts the watcher, checked every second and before each plan: the code
it imported is no longer the code on disk. A restart into code that does not import says where
and waits for the next code change."""

from __future__ import annotations

import fnmatch
import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

POLL_SECONDS = 0.1  # how often the stack files' sizes and mtimes are read
CODE_POLL_SECONDS = 1.0  # how often the project's code files are (a few hundred of them)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PR_SET_CHILD_SUBREAPER = 36
SHOWN_NAMES = 12  # stacks named in the status line before "and N more"
STACK_GLOB = "Pulumi.*.yaml"  # the stack files the loader reads (fedeploy/config/loader.py)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # Ctrl-C, kill, a closed terminal
# What the restarted watcher imports before it plans; with every source file of the running
# code's packages compiled (a syntax error anywhere), the probe run before each restart.
PROBE_IMPORTS = (
    "fedeploy.cli",
    "fedeploy.charts",
    "fedeploy.offline.federation",
    "fedeploy.plan.formats",
    "fedeploy.plan.run",
    "fedeploy.plan.watch",
    "fedeploy.program",
)
PROBE_PACKAGES = ("fedeploy", "components", "policies")
_PROBE = """
import importlib, importlib.util, pathlib, sys
packages, imports = ([n for n in a.split(",") if n] for a in sys.argv[1:3])
for package in packages:
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.origin is not None:
        for path in sorted(pathlib.Path(spec.origin).parent.rglob("*.py")):
            compile(path.read_bytes(), str(path), "exec")
for name in imports:
    importlib.import_module(name)
"""

# path: (mtime_ns, size, inode, mode), and for a symlink its target's too (or nothing)
Snapshot = dict[str, tuple[int, ...]]


class _Stopped(Exception):
    """SIGTERM, SIGINT or SIGHUP reached the watcher."""


class _StdoutClosed(Exception):
    """The reader of the watcher's stdout went away (`fedeploy plan --watch | head`)."""


@dataclass(frozen=True)
class WatchOptions:
    """What each plan of the watcher does: `fedeploy plan`'s own options."""

    stacks_dir: Path
    names: list[str] | None
    format: str
    out: Path | None
    jobs: int | None


def watch_plan(options: WatchOptions) -> int:
    """Plan, then plan again on every change to a stack file until SIGINT, SIGTERM or SIGHUP
    (exit 0), or until stdout is closed (exit 0).

    Each report goes to stdout as `fedeploy plan` prints it; a status line on stderr says which
    stacks were planned, which came from the cache and how long it took."""
    from fedeploy.project import project_dir

    root = project_dir()
    previous = {sig: signal.signal(sig, _stop) for sig in STOP_SIGNALS}
    _adopt_orphans()
    try:
        _warm(root)
        stacks = _stacks_snapshot(options.stacks_dir)
        _plan_and_report(options, root, "first plan")
        code_checked = time.monotonic()
        while True:
            time.sleep(POLL_SECONDS)
            now = _stacks_snapshot(options.stacks_dir)
            if time.monotonic() - code_checked >= CODE_POLL_SECONDS:
                code_checked = time.monotonic()
                _restart_if_code_changed(root)
            if now == stacks:
                continue
            now = _settled(options.stacks_dir, now)
            changed = sorted(Path(p).name for p in now.keys() ^ stacks.keys()) + sorted(
                Path(p).name for p in now.keys() & stacks.keys() if now[p] != stacks[p]
            )
            stacks = now
            _plan_and_report(options, root, "changed: " + ", ".join(changed))
    except _Stopped:
        _status("fedeploy plan --watch: stopped")
        return 0
    except _StdoutClosed:
        _status("fedeploy plan --watch: stdout was closed (its reader ended); stopped")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def _restart_if_code_changed(root: Path) -> None:
    """Restart (see _restart) if the code hashed into the cache key changed since this process
    hashed it: what it imported, and what its plans would be kept under, is no longer on disk."""
    from fedeploy.offline.cache import code_changed

    if code_changed(root):
        _restart(root)


def _warm(root: Path) -> None:
    """Import everything a plan needs and hash the code once, in this process (never Helm: a
    process that loaded it cannot fork), so each plan's child inherits them."""
    from fedeploy.charts import warm_chart_checks
    from fedeploy.offline.cache import code_fingerprint
    from fedeploy.offline.federation import collector_paused, freeze_imports, warm_imports
    from fedeploy.plan import formats, run  # noqa: F401

    with collector_paused():
        warm_imports()
        warm_chart_checks()
    freeze_imports()  # the children's collectors never walk (and so copy) the SDKs' pages
    code_fingerprint(root)


def _stacks_snapshot(stacks_dir: Path) -> Snapshot:
    """lstat (mtime, size, inode, file type) of every entry the loader reads (STACK_GLOB), and
    for a symlink its target's stat where it exists: a file added, removed, rewritten, replaced
    by a rename or by a folder, FIFO or dangling symlink changes it; other files (an editor's
    swap file) do not. Empty if the directory cannot be read."""
    try:
        entries = list(os.scandir(stacks_dir))
    except OSError:
        return {}
    found: Snapshot = {}
    for entry in entries:
        if not fnmatch.fnmatchcase(entry.name, STACK_GLOB):
            continue
        try:
            found[entry.path] = _stat_of(os.lstat(entry.path))
        except OSError:
            continue  # removed while listed
        if stat.S_ISLNK(found[entry.path][3]):
            with suppress(OSError):
                found[entry.path] += _stat_of(os.stat(entry.path))
    return found


def _stat_of(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode)


def _settled(stacks_dir: Path, seen: Snapshot) -> Snapshot:
    """The stack files once they stop changing for a poll: two saves in quick succession (or a
    file written in parts) are planned once, whole."""
    while True:
        time.sleep(POLL_SECONDS)
        now = _stacks_snapshot(stacks_dir)
        if now == seen:
            return now
        seen = now


def _restart(root: Path) -> None:
    """Replace this process with a fresh watcher (same command line): the code changed. If the
    code on disk does not import, say where and wait for the next change to it first."""
    from fedeploy.offline.cache import code_snapshot

    _status("fedeploy plan --watch: the project's code changed; restarting to plan with it")
    while (failure := _import_failure()) is not None:
        _status(
            f"fedeploy plan --watch: the project's code does not import: {failure}; "
            "waiting for the next change to it"
        )
        broken = code_snapshot(root)
        while code_snapshot(root) == broken:
            time.sleep(CODE_POLL_SECONDS)
        _status("fedeploy plan --watch: the project's code changed; restarting to plan with it")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)


def _import_failure(
    packages: Iterable[str] = PROBE_PACKAGES, imports: Iterable[str] = PROBE_IMPORTS
) -> str | None:
    """Where and why the code on disk fails in a fresh interpreter (a source file of `packages`
    that does not compile, or one of `imports` that does not import), as the traceback's last
    `File ..., line N` and error lines; None if it all compiles and imports."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(packages), ",".join(imports)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    where = [line for line in lines if line.startswith("File ") and not line.startswith('File "<')]
    return "; ".join([*where[-1:], *lines[-1:]]) or f"status {done.returncode}"


def _status(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _names(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:SHOWN_NAMES])
    return shown + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")


def _plan_and_report(options: WatchOptions, root: Path, why: str) -> None:
    """Plan in a forked child, which prints the report; then the status line. If the code
    changed since it was hashed, restart instead (a plan would read the new code)."""
    _restart_if_code_changed(root)
    start = time.perf_counter()
    summary, ended = _in_child(options)
    seconds = time.perf_counter() - start
    if summary is None:
        _status(f"fedeploy plan --watch ({why}): the plan's process {ended}; {seconds:.2f} s")
    elif summary.get("stdout_closed"):
        raise _StdoutClosed
    else:
        _status(
            f"fedeploy plan --watch ({why}): planned {_names(summary['planned'])}; "
            f"from the cache: {_names(summary['cached'])}; {seconds:.2f} s; "
            f"exit status {summary['exit']}"
        )
    _status(f"watching {options.stacks_dir} (Ctrl-C to stop)")


def _in_child(options: WatchOptions) -> tuple[dict | None, str]:
    """Run one plan in a child forked from this process, in its own process group (so its
    workers end with it); its summary, or None and how the child ended. A child that dies on
    its own (a crash, the OOM killer) is reported: the pipe is polled with the child's exit,
    never read to an EOF its orphaned workers could hold off."""
    read_end, write_end = os.pipe()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise _StdoutClosed from None
    sys.stderr.flush()
    # A stop signal between the fork and _reaped would leave the child planning on, orphaned.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_end)
            _child(options, write_end)
        os.close(write_end)
        with _reaped(pid):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            chunks, status = _collect(pid, read_end)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        os.close(read_end)
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # what is left of its group: a dead child's workers
    _reap_orphans(wait=os.WIFSIGNALED(status))  # a crashed child's workers were just killed
    if chunks:
        return json.loads(b"".join(chunks)), ""
    if os.WIFSIGNALED(status):
        return None, f"was killed by signal {signal.Signals(os.WTERMSIG(status)).name}"
    return None, f"ended with status {os.waitstatus_to_exitcode(status)}"


def _collect(pid: int, read_end: int) -> tuple[list[bytes], int]:
    """What the child sends on `read_end` until it exits, and its wait status."""
    chunks: list[bytes] = []
    open_pipe = True
    while True:
        if open_pipe and select.select([read_end], [], [], POLL_SECONDS)[0]:
            chunk = os.read(read_end, 65536)
            chunks.append(chunk)
            open_pipe = bool(chunk)
        elif not open_pipe:
            time.sleep(POLL_SECONDS)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    while select.select([read_end], [], [], 0)[0] and (chunk := os.read(read_end, 65536)):
        chunks.append(chunk)  # what it wrote just before it exited
    return chunks, status


@contextmanager
def _reaped(pid: int) -> Iterator[None]:
    """On the way out through an exception (the watcher stopped), end the child's process group
    and wait for the child."""
    with suppress(OSError):
        os.setpgid(pid, pid)  # as the child does: whichever runs first
    try:
        yield
    except BaseException:
        for sig in STOP_SIGNALS:  # a second Ctrl-C does not cut this short
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
    _prctl(PR_SET_CHILD_SUBREAPER, 1)


def _prctl(option: int, value: int) -> None:
    """Linux's prctl(option, value); nothing where there is none."""
    import ctypes
    import ctypes.util

    with suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(option, value, 0, 0, 0)


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
    """The forked child: plan, print the report (and --out), send the summary, exit. It ends
    with the watcher (PR_SET_PDEATHSIG), and a SIGTERM ends its workers with it."""
    code = 2
    try:
        watcher = os.getppid()
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, _end_group)
        for sig in (signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != watcher:  # the watcher died before the line above
            _end_group(signal.SIGTERM, None)
        code = _plan_once(options, write_end)
    except BaseException as err:  # noqa: BLE001  a child never returns into the watcher's loop
        from fedeploy.errors import FedeployError

        if isinstance(err, FedeployError):
            sys.stderr.write(f"{err}\n")
            code = err.exit_code
        else:
            sys.stderr.write(f"fedeploy: internal error ({type(err).__name__}): {err}\n")
    finally:
        with suppress(OSError):
            sys.stdout.flush()
        with suppress(OSError):
            sys.stderr.flush()
        os._exit(code)


def _end_group(signum: int, frame: FrameType | None) -> None:
    """The child's SIGTERM: end its process group (its workers, which PR_SET_PDEATHSIG does
    not reach) and itself."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.killpg(0, signal.SIGTERM)
    os._exit(128 + signum)


def _plan_once(options: WatchOptions, write_end: int) -> int:
    from fedeploy.plan.formats import FORMATS
    from fedeploy.plan.run import run_plan, write_out

    report = run_plan(options.stacks_dir, options.names, jobs=options.jobs)
    try:
        sys.stdout.write(FORMATS[options.format](report))
        sys.stdout.flush()
    except BrokenPipeError:
        with suppress(OSError):  # what is left in the buffer can never be written
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        os.write(write_end, json.dumps({"stdout_closed": True}).encode())
        return 0
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
