"""`fedeploy plan --watch`: a change to one stack file plans that stack and the stacks that read
it (the rest from the cache), a broken file's error is printed and the watcher keeps going, and
SIGTERM ends it with status 0 and no process left behind."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedeploy.plan.run import OUT_MARK

ROOT = Path(__file__).resolve().parents[2]
WAIT = 240.0  # seconds for one plan on a loaded machine (a bound for hangs, not a timing)


class Watcher:
    """A `fedeploy plan --watch` subprocess whose stderr lines are read as they come."""

    def __init__(self, stacks: Path, cache: Path, stdout: Path, *options: str) -> None:
        env = {**os.environ, "FEDEPLOY_PLAN_CACHE": str(cache)}
        self.stdout = stdout.open("w")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "fedeploy.cli", "plan", "--watch"),
                *("--stacks-dir", str(stacks), *options),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.stdout,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its session id names every process it starts
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def next_status(self) -> list[str]:
        """The lines up to and including the next 'watching' line (one plan's status)."""
        got: list[str] = []
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.process.poll() is None, f"the watcher exited: {self.seen}"
                continue
            self.seen.append(line)
            got.append(line)
            if line.startswith("watching "):
                return got
        raise AssertionError(f"no status line in {WAIT} s: {self.seen}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.stdout.close()


def _session_processes(session: int) -> list[int]:
    """The processes still alive in `session` (zombies included: a child never reaped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # after ')': state, ppid, pgrp, session
            found.append(int(entry.name))
    return found


@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    folder = tmp_path / "stacks"
    folder.mkdir()
    for path in (ROOT / "stacks").glob("Pulumi.*.yaml"):
        shutil.copy(path, folder / path.name)
    return folder


def _change_catalog(path: Path, host: str) -> None:
    text = path.read_text()
    assert "https://catalog." in text
    path.write_text(text.replace("https://catalog.", f"https://{host}."))


def test_watch_replans_the_changed_stack_keeps_going_after_an_error_and_stops_cleanly(
    stacks: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "reports.txt"
    watcher = Watcher(stacks, tmp_path / "cache", reports)
    try:
        first = "".join(watcher.next_status())
        assert "(first plan): planned aws-dublin, aws-frankfurt, cf-waw, eu-hub" in first
        assert "exit status 0" in first

        _change_catalog(stacks / "Pulumi.cf-waw.yaml", "stac")
        changed = "".join(watcher.next_status())
        # The member and the hub that reads its outputs; every other stack from the cache.
        assert "(changed: Pulumi.cf-waw.yaml): planned cf-waw, eu-hub;" in changed
        assert "from the cache: aws-dublin, aws-frankfurt, ewc-bologna, hpc-kajaani, ovh-gra" in (
            changed
        )

        broken = stacks / "Pulumi.ovh-gra.yaml"
        good = broken.read_text()
        broken.write_text(good + "config: [unclosed\n")
        error = "".join(watcher.next_status())
        assert "exit status 2" in error
        last_report = reports.read_text().rsplit("fedeploy plan", 1)[-1]
        assert "Pulumi.ovh-gra.yaml" in last_report  # the usual clear error names the file
        assert "Traceback" not in error + last_report
        assert watcher.process.poll() is None  # still watching

        broken.write_text(good)
        fixed = "".join(watcher.next_status())
        assert "exit status 0" in fixed

        member = stacks / "Pulumi.hpc-kajaani.yaml"
        kept = member.read_bytes()
        member.unlink()  # the hub reads it: the plan says so
        removed = "".join(watcher.next_status())
        assert "(changed: Pulumi.hpc-kajaani.yaml)" in removed
        assert "exit status 2" in removed
        assert (
            "no stack file Pulumi.hpc-kajaani.yaml"
            in reports.read_text().rsplit("fedeploy plan", 1)[-1]
        )
        member.write_bytes(kept)  # back: every stack's plan is in the cache
        added = "".join(watcher.next_status())
        assert "(changed: Pulumi.hpc-kajaani.yaml): planned none;" in added
        assert "exit status 0" in added

        _change_catalog(stacks / "Pulumi.ewc-bologna.yaml", "stac")  # stopped mid-plan, maybe
        time.sleep(1.0)
    finally:
        status = watcher.stop()
    assert status == 0
    assert _session_processes(watcher.process.pid) == []
    assert "stopped" in "".join(watcher.seen + list(watcher.lines.queue))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "reports.txt", "stacks"]


@contextlib.contextmanager
def _planning(stacks: Path, tmp_path: Path) -> Iterator[Watcher]:
    """A watcher whose first plan is running (an empty cache: the plan forks two workers for
    its first wave of five stacks); on leaving, it is stopped with SIGTERM, which must exit 0
    and leave no process in its session."""
    watcher = Watcher(stacks, tmp_path / "cache", tmp_path / "reports.txt")
    session = watcher.process.pid
    try:
        _wait_for_workers(watcher)
        yield watcher
    finally:
        status = watcher.stop()
    assert status == 0
    assert _session_processes(session) == []


def test_sigterm_during_a_plan_ends_its_workers_and_leaves_no_process(
    stacks: Path, tmp_path: Path
) -> None:
    with _planning(stacks, tmp_path):
        pass  # the SIGTERM comes while the first plan's workers run


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _wait_for_workers(watcher: Watcher) -> None:
    """Wait (a bound for hangs, not a timing) until a plan runs: the watcher, its planner and
    two workers in the watcher's session."""
    deadline = time.monotonic() + WAIT
    while len(_session_processes(watcher.process.pid)) < 4:
        assert time.monotonic() < deadline, f"no workers seen: {watcher.seen}"
        assert watcher.process.poll() is None, f"the watcher exited: {watcher.seen}"
        time.sleep(0.05)


def test_a_plan_that_crashes_is_reported_and_the_watcher_goes_on(
    stacks: Path, tmp_path: Path
) -> None:
    # Review watch27 finding 2: the child SEGVs (the OOM killer kills one process the same way);
    # its workers held the summary pipe open and the watcher waited for it for good.
    with _planning(stacks, tmp_path) as watcher:
        session = watcher.process.pid
        os.kill(_children(session)[0], signal.SIGSEGV)
        crashed = "".join(watcher.next_status())
        assert "(first plan): the plan's process was killed by signal SIGSEGV" in crashed
        assert _session_processes(session) == [session]  # its workers are gone, and reaped
        _change_catalog(stacks / "Pulumi.cf-waw.yaml", "stac")
        assert "(changed: Pulumi.cf-waw.yaml): planned" in "".join(watcher.next_status())


@pytest.mark.parametrize("how", [signal.SIGHUP, signal.SIGKILL])
def test_a_closed_terminal_or_a_killed_watcher_ends_the_plan(
    stacks: Path, tmp_path: Path, how: signal.Signals
) -> None:
    # Review watch27 finding 3: SIGHUP killed the watcher at once and the plan ran on (and
    # rewrote --out) re-parented to init; so did kill -9.
    out = tmp_path / "out"
    watcher = Watcher(stacks, tmp_path / "cache", tmp_path / "reports.txt", "--out", str(out))
    session = watcher.process.pid
    try:
        _wait_for_workers(watcher)
        watcher.process.send_signal(how)
        assert watcher.process.wait(timeout=60) == (0 if how == signal.SIGHUP else -how)
        deadline = time.monotonic() + WAIT
        while _session_processes(session) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _session_processes(session) == []
        written = [p.name for p in out.iterdir()] if out.exists() else []
        assert OUT_MARK not in written, "the plan went on without the watcher and wrote --out"
    finally:
        watcher.stop()
        for pid in _session_processes(session):
            os.kill(pid, signal.SIGKILL)


def test_watch_ends_when_its_stdout_is_closed(stacks: Path, tmp_path: Path) -> None:
    # Review watch27 finding 9: `fedeploy plan --watch | head` ran on, each plan an internal error.
    env = {**os.environ, "FEDEPLOY_PLAN_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-m", "fedeploy.cli", "plan", "--watch", "--stacks-dir", str(stacks)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before the first report
    try:
        _, err = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "stdout was closed" in err and "internal error" not in err


def test_the_stacks_snapshot_is_the_loaders_glob_with_each_entrys_type(tmp_path: Path) -> None:
    # Review watch27 findings 4 and 8: a folder, FIFO or dangling symlink named like a stack file
    # was invisible; an editor's swap file in the folder planned.
    from fedeploy.plan.watch import _stacks_snapshot

    (tmp_path / "Pulumi.a.yaml").write_text("config: {}\n")
    before = _stacks_snapshot(tmp_path)
    (tmp_path / ".Pulumi.a.yaml.swp").write_text("x\n")
    (tmp_path / "4913").write_text("")
    (tmp_path / "notes.txt").write_text("x\n")
    assert _stacks_snapshot(tmp_path) == before
    for make in (
        lambda p: p.mkdir(),
        lambda p: p.symlink_to(tmp_path / "nowhere"),
        lambda p: os.mkfifo(p),
    ):
        entry = tmp_path / "Pulumi.b.yaml"
        make(entry)
        added = _stacks_snapshot(tmp_path)
        assert added != before and str(entry) in added
        (entry.rmdir if entry.is_dir() and not entry.is_symlink() else entry.unlink)()
        assert _stacks_snapshot(tmp_path) == before
    link = tmp_path / "Pulumi.c.yaml"
    link.symlink_to(tmp_path / "target.yaml")
    dangling = _stacks_snapshot(tmp_path)
    (tmp_path / "target.yaml").write_text("config: {}\n")
    assert _stacks_snapshot(tmp_path) != dangling  # the target appearing is a change


def test_a_code_change_seen_before_a_plan_restarts_instead_of_planning(monkeypatch) -> None:
    # Review watch27 finding 1: the plan forked with the new chart on disk was kept under the old
    # code's key; the code is checked again just before each fork.
    import fedeploy.offline.cache as cache
    from fedeploy.plan import watch

    class Restarted(Exception):
        pass

    def restart(root: Path) -> None:
        raise Restarted

    monkeypatch.setattr(cache, "code_changed", lambda root: True)
    monkeypatch.setattr(watch, "_restart", restart)
    monkeypatch.setattr(watch, "_in_child", lambda options: pytest.fail("planned"))
    options = watch.WatchOptions(ROOT / "stacks", None, "text", None, 1)
    with pytest.raises(Restarted):
        watch._plan_and_report(options, ROOT, "changed: Pulumi.cf-waw.yaml")


def test_a_restart_into_code_that_does_not_import_says_where_and_waits(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    # Review watch27 finding 5: the restarted watcher died with "a bug in fedeploy".
    import fedeploy.offline.cache as cache
    from fedeploy.plan import watch

    package = tmp_path / "probed_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "fine.py").write_text("x = 1\n")
    (package / "unimported.py").write_text("x = 1\ndef broken(:\n")  # not imported first
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert watch._import_failure(["probed_pkg"], []) is not None
    assert watch._import_failure([], ["probed_pkg.fine"]) is None
    failure = watch._import_failure(["probed_pkg"], ["probed_pkg.fine"])
    assert failure is not None and "unimported.py" in failure and "line 2" in failure
    assert "SyntaxError" in failure
    assert watch._import_failure() is None  # the repository's own code

    failures = iter([failure, None])
    snapshots = iter([{"a": (1,)}, {"a": (1,)}, {"a": (2,)}])
    monkeypatch.setattr(watch, "_import_failure", lambda: next(failures))
    monkeypatch.setattr(cache, "code_snapshot", lambda root: next(snapshots))
    monkeypatch.setattr(watch, "CODE_POLL_SECONDS", 0)

    class Execed(Exception):
        pass

    def execv(*args: object) -> None:
        raise Execed

    monkeypatch.setattr(os, "execv", execv)
    with pytest.raises(Execed):
        watch._restart(tmp_path)
    err = capsys.readouterr().err
    assert "does not import: " in err and "waiting for the next change" in err
    assert err.count("restarting to plan with it") == 2
