"""`fedeploy plan --watch`: a change to one stack file plans that stack and the stacks that read
it (the rest from the cache), a broken file's error is printed and the watcher keeps going, and
SIGTERM ends it with status 0 and no process left behind."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WAIT = 240.0  # seconds for one plan on a loaded machine (a bound for hangs, not a timing)


class Watcher:
    """A `fedeploy plan --watch` subprocess whose stderr lines are read as they come."""

    def __init__(self, stacks: Path, cache: Path, stdout: Path) -> None:
        env = {**os.environ, "FEDEPLOY_PLAN_CACHE": str(cache)}
        self.stdout = stdout.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fedeploy.cli", "plan", "--watch", "--stacks-dir", str(stacks)],
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


def test_sigterm_during_a_plan_ends_its_workers_and_leaves_no_process(
    stacks: Path, tmp_path: Path
) -> None:
    # An empty cache: the first plan forks two workers for its first wave of five stacks.
    watcher = Watcher(stacks, tmp_path / "cache", tmp_path / "reports.txt")
    session = watcher.process.pid
    try:
        deadline = time.monotonic() + WAIT
        while len(_session_processes(session)) < 4:  # the watcher, its planner, two workers
            assert time.monotonic() < deadline, f"no workers seen: {watcher.seen}"
            assert watcher.process.poll() is None, f"the watcher exited: {watcher.seen}"
            time.sleep(0.05)
    finally:
        status = watcher.stop()
    assert status == 0
    assert _session_processes(session) == []
