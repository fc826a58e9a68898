"""The Go runtime inside the Helm library fedeploy renders and lints charts with (helm-python-sdk's
libhelm_c): its garbage collector target, which only a fresh exec can set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Go's garbage collector target for the Helm library that renders and lints the charts
# (helm-python-sdk's libhelm_c: a Go runtime inside this process). At Go's default (100) a render
# or a lint collects every few megabytes, and the collections took about a fifth to a third of
# Helm's processor time (`fedeploy plan` of 30 sites: 7-8 % of its processor time); at 400 the
# Go heap may grow to five times what is live (a few megabytes during a render).
GO_GC_PERCENT = "400"


# The commands that run Helm (they plan stacks and render charts); the others never load it.
HELM_COMMANDS = frozenset({"plan", "diff"})


def with_go_gc_percent() -> None:
    """Run this command again with GOGC=GO_GC_PERCENT when GOGC is unset (a value the user set
    is kept, `GOGC=100` restores Go's default). The Go runtime reads the environment the process
    started with, not later changes, so the one way to give it a value is a fresh exec: the same
    interpreter, options and arguments (sys.orig_argv), before anything is read or written (the
    console script and `python -m fedeploy` before their modules load: about an interpreter
    start; `python -m fedeploy.cli` after its imports: about a quarter of a second).

    Only where it pays and replays nothing else: a command that runs Helm (HELM_COMMANDS),
    started as fedeploy itself (the console script named `fedeploy`, `python -m fedeploy` or
    `fedeploy.cli`, with the arguments the interpreter was given: not a script, `python -c` or
    runpy that calls `main()`, which would start again from its first line), nothing watching
    it (`_observed`); POSIX only (execv replaces the process there, elsewhere it would start a
    second one). Any GOGC the user sets, `GOGC=100` included, turns the exec off."""
    if "GOGC" in os.environ or os.name != "posix" or not sys.executable:
        return
    if not _started_as_fedeploy() or _command() not in HELM_COMMANDS:
        return
    if _observed():
        return
    os.environ["GOGC"] = GO_GC_PERCENT
    try:
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    except OSError:  # no exec here (a sandbox that forbids it): Go's default, nothing else
        del os.environ["GOGC"]


# The modules that run the command line (`python -m <one of them>`).
_ENTRY_MODULES = ("fedeploy", "fedeploy.__main__", "fedeploy.cli")


def _started_as_fedeploy() -> bool:
    """Whether the interpreter was asked to run the `fedeploy` command itself, with the
    arguments this process holds: sys.orig_argv is `<python> [options] <console script named
    fedeploy> <arguments>` or `<python> [options] -m <an entry module> <arguments>`, where the
    arguments are sys.argv[1:] (so not a script, `python -c` or runpy that calls main(), and
    not a profiler's `-m cProfile -m fedeploy`: it is checked apart)."""
    arguments = sys.argv[1:]
    head = sys.orig_argv[: len(sys.orig_argv) - len(arguments)]
    if sys.orig_argv[len(head) :] != arguments or len(head) < 2:
        return False
    if head[-2] == "-m" and head[-1] in _ENTRY_MODULES:
        return True
    if any(head[-1] == f"-m{module}" for module in _ENTRY_MODULES):
        return True
    return head[-1] == sys.argv[0] and Path(head[-1]).name == "fedeploy"


def _observed() -> bool:
    """Whether something watches this process that a fresh exec would lose or repeat: a
    debugger, tracer or profiler, or the interpreter's own import trace or verbose mode."""
    import_times = "PYTHONPROFILEIMPORTTIME" in os.environ and not sys.flags.ignore_environment
    return (
        sys.gettrace() is not None
        or sys.getprofile() is not None
        or "importtime" in sys._xoptions
        or import_times
        or bool(sys.flags.verbose)
    )


def _command() -> str | None:
    """The command named on the command line (the first argument that is not an option: the
    root's options, --debug and --version, take no value)."""
    return next((argument for argument in sys.argv[1:] if not argument.startswith("-")), None)
