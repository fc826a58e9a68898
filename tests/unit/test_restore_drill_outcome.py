"""The scheduled drill's decision and its pushed outcome, without servers (issue 30).

With --settle-seconds the drill reads the live catalog before the wait and after the restore:
a restore that matches either is identical (the catalog was written to meanwhile); one that
matches neither differs. Whatever the outcome, it is pushed once, and a push that fails never
changes the exit status. The real restore and push run in tests/images/test_restore_drill_image.py.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedeploy.restore_drill import command
from fedeploy.restore_drill.catalog_state import CatalogState
from fedeploy.restore_drill.outcome import DrillOutcome, exposition, push
from fedeploy.restore_drill.scratch import ScratchServer


def _state(items: int, lsn: str | None = None) -> CatalogState:
    return CatalogState(("c",), {"c": items}, {("c", "c-0"): ("s3://b/0",)}, lsn=lsn)


class _Gateway(http.server.BaseHTTPRequestHandler):
    bodies: list[tuple[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers["Content-Length"])
        type(self).bodies.append((self.path, self.rfile.read(length).decode()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def gateway() -> Iterator[str]:
    _Gateway.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _drill(monkeypatch, reads: list[CatalogState], *args: str, targets=None, reached=True):
    """Run the command with the live reads and the restored read answered from `reads` in the
    order the drill makes them, and no restore at all; each restore's target LSN is appended
    to `targets`; `reached` False: a restore to an LSN finds the WAL ends before it."""
    answers = iter(reads)
    monkeypatch.setattr(command, "_read", lambda dsn, sample, salt, **_: next(answers))
    monkeypatch.setattr(command.time, "sleep", lambda seconds: None)

    @contextlib.contextmanager
    def restored(*_args, target_lsn=None, **_kwargs):
        if targets is not None:
            targets.append(target_lsn)
        if target_lsn and not reached:
            raise command.TargetNotReached("restore-drill: recovery ended before ...")
        # The scratch server: reached over its socket folder (the reads above ignore the DSN).
        yield ScratchServer(Path("/scratch/restore/socket"), "postgres")

    monkeypatch.setattr(command, "restored_server", restored)
    import typer

    app = typer.Typer()
    app.command()(command.restore_drill_command)
    argv = ["--backup-url", "s3://b/backups/catalog-db", "--live-dsn", "postgresql://x/pgstac"]
    return CliRunner().invoke(app, [*argv, *args])


def test_a_restore_to_the_live_reads_wal_position_matching_that_read_is_identical(
    monkeypatch, gateway
):
    # Read before the wait at WAL 0/3000060: 10 items; restored to that position: 10.
    targets: list[str | None] = []
    done = _drill(
        monkeypatch,
        [_state(10, "0/3000060"), _state(10)],
        "--settle-seconds", "60", "--pushgateway", gateway, "--site", "eu-public",
        targets=targets,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert targets == ["0/3000060"]
    assert "at WAL 0/3000060" in done.output
    assert "identical: 1 collections, 10 items restored" in done.output
    (start_path, start), (path, body) = _Gateway.bodies
    assert start_path == path and "catalog_restore_drill_started_timestamp_seconds" in start
    assert "exit_status" not in start
    assert path == "/metrics/job/fedeploy-restore-drill/site/eu-public"
    assert "catalog_restore_drill_exit_status 0.0" in body
    assert "catalog_restore_drill_last_success_timestamp_seconds" in body


def test_a_mismatch_is_tried_once_more_with_a_new_read(monkeypatch):
    # A commit landed between the first read's snapshot and its position: the second matches.
    targets: list[str | None] = []
    reads = [_state(10, "0/10"), _state(11), _state(12, "0/20"), _state(12)]
    done = _drill(monkeypatch, reads, "--settle-seconds", "60", targets=targets)
    assert done.exit_code == 0, done.output
    assert "once more" in done.output and targets == ["0/10", "0/20"]


def test_a_wal_ending_before_the_reads_position_is_restored_to_its_end(monkeypatch):
    # Nothing written after the read: no WAL record at or past it, so the end of the WAL.
    targets: list[str | None] = []
    reads = [_state(10, "0/10"), _state(10)]
    done = _drill(monkeypatch, reads, "--settle-seconds", "60", targets=targets, reached=False)
    assert done.exit_code == 0, done.output
    assert targets == ["0/10", None]


def test_a_restore_matching_neither_read_differs_and_is_pushed_so(monkeypatch, gateway):
    done = _drill(
        monkeypatch,
        [_state(10, "0/10"), _state(8), _state(12, "0/20"), _state(8)],
        "--settle-seconds", "60", "--pushgateway", gateway, "--site", "eu-public",
    )  # fmt: skip
    assert done.exit_code == 1, done.output
    assert "collection 'c': 8 items restored, 12 live" in done.output
    (_, _), (_, body) = _Gateway.bodies
    assert "catalog_restore_drill_exit_status 1.0" in body and "last_success" not in body


def test_without_settling_only_the_catalog_read_after_the_restore_counts(monkeypatch):
    done = _drill(monkeypatch, [_state(10), _state(12)])
    assert done.exit_code == 1 and "10 items restored, 12 live" in done.output


def test_a_drill_stopped_by_sigterm_pushes_could_not_run(monkeypatch, gateway):
    """The Job's deadline (or an eviction) sends SIGTERM: the drill ends as exit 2 and pushes
    it, after the start it pushed first (before: nothing was pushed)."""
    import os
    import signal

    class Killed:
        """Reads that end in SIGTERM: the first read is where the deadline strikes."""

        def __iter__(self):
            return self

        def __next__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("SIGTERM did not stop the drill")

    previous = signal.getsignal(signal.SIGTERM)
    try:
        done = _drill(monkeypatch, Killed(), "--pushgateway", gateway, "--site", "eu-public")
    finally:
        signal.signal(signal.SIGTERM, previous)
    # The entry points turn DrillError into its one line and exit 2.
    assert isinstance(done.exception, command.DrillError), done.exception
    assert "stopped by signal 15" in str(done.exception)
    (_, start), (_, body) = _Gateway.bodies
    assert "started_timestamp_seconds" in start
    assert "catalog_restore_drill_exit_status 2.0" in body


def test_a_push_that_fails_leaves_the_exit_status_alone(monkeypatch):
    done = _drill(
        monkeypatch,
        [_state(10), _state(10)],
        "--pushgateway", "http://127.0.0.1:9", "--site", "eu-public",
    )  # fmt: skip
    assert done.exit_code == 0
    assert "outcome not pushed to http://127.0.0.1:9" in done.output


def test_the_push_needs_a_site_and_refuses_a_label_that_could_break_the_grouping_key():
    assert push("http://gw:9091", "eu/public", DrillOutcome(0, 1.0, 1.0)) is not None
    assert push("ftp://gw", "eu-public", DrillOutcome(0, 1.0, 1.0)) is not None
    text = exposition(DrillOutcome(2, 1700000000.0, 3.5, 0))
    assert "catalog_restore_drill_exit_status 2.0" in text
    assert "catalog_restore_drill_duration_seconds 3.5" in text
    assert "last_success" not in text
    assert text.count("# TYPE") == 4
