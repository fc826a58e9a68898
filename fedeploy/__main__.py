"""The `fedeploy` command (and `python -m fedeploy`): sets the embedded Go runtime's garbage
collector target, then runs the command line (fedeploy/cli.py)."""

from __future__ import annotations

import os
import sys

# Go's garbage collector target for the Helm library that renders and lints the charts
# (helm-python-sdk's libhelm_c: a Go runtime inside this process). At Go's default (100) a render
# or a lint collects every few megabytes, and the collections took about a fifth to a third of
# Helm's processor time (`fedeploy plan` of 30 sites: 7-8 % of its processor time); at 400 the
# Go heap may grow to five times what is live (a few megabytes during a render).
GO_GC_PERCENT = "400"


def with_go_gc_percent() -> None:
    """Run this command again with GOGC=GO_GC_PERCENT when GOGC is unset (a value the user set
    is kept, `GOGC=100` restores Go's default). The Go runtime reads the environment the process
    started with, not later changes, so the one way to give it a value is a fresh exec: the same
    interpreter, options and arguments (sys.orig_argv), before anything is read or written and
    before the command's modules load (about an interpreter start, once). POSIX only: execv
    replaces the process there, elsewhere it would start a second one."""
    if "GOGC" in os.environ or os.name != "posix" or not sys.executable:
        return
    os.environ["GOGC"] = GO_GC_PERCENT
    try:
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    except OSError:  # no exec here (a sandbox that forbids it): Go's default, nothing else
        del os.environ["GOGC"]


def main() -> None:
    """Entry point of the `fedeploy` command."""
    with_go_gc_percent()
    from fedeploy.cli import main as run

    run()


if __name__ == "__main__":
    main()
