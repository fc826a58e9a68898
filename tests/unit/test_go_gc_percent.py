"""The `fedeploy` command gives the embedded Helm library's Go runtime GOGC=400 (fedeploy/go_runtime.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fedeploy.go_runtime as entry

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "/venv/bin/fedeploy"


def _started(monkeypatch: pytest.MonkeyPatch, *arguments: str) -> list[tuple[str, list[str]]]:
    """This process made to look like `python3 -X dev /venv/bin/fedeploy <arguments>`, GOGC
    unset; the execs with_go_gc_percent then asks for."""
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.setattr(sys, "orig_argv", ["python3", "-X", "dev", SCRIPT, *arguments])
    monkeypatch.setattr(sys, "argv", [SCRIPT, *arguments])
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(os, "execv", lambda path, args: calls.append((path, args)))
    monkeypatch.setattr(sys, "gettrace", lambda: None)  # as without pytest's coverage or a debugger
    entry.with_go_gc_percent()
    return calls


def test_a_command_that_runs_helm_runs_again_with_gogc_set(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _started(monkeypatch, "--debug", "plan", "--format", "json")
    assert calls == [
        (
            sys.executable,
            [sys.executable, "-X", "dev", SCRIPT, "--debug", "plan", "--format", "json"],
        )
    ]
    assert os.environ["GOGC"] == entry.GO_GC_PERCENT
    assert _started(monkeypatch, "diff", "--base", "main")


@pytest.mark.parametrize(
    "arguments", [(), ("--version",), ("validate",), ("bridge", "status", "plan"), ("new", "x")]
)
def test_commands_that_never_load_helm_are_not_run_again(
    monkeypatch: pytest.MonkeyPatch, arguments: tuple[str, ...]
) -> None:
    assert _started(monkeypatch, *arguments) == []
    assert "GOGC" not in os.environ


def test_a_gogc_the_user_set_is_kept_and_nothing_is_run_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOGC", "100")
    monkeypatch.setattr(sys, "argv", [SCRIPT, "plan"])
    monkeypatch.setattr(sys, "orig_argv", ["python3", SCRIPT, "plan"])
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("ran the command again"))
    entry.with_go_gc_percent()
    assert os.environ["GOGC"] == "100"


def test_a_debugger_or_tracer_is_not_thrown_away(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.setattr(sys, "orig_argv", ["python3", SCRIPT, "plan"])
    monkeypatch.setattr(sys, "argv", [SCRIPT, "plan"])
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("ran the command again"))
    monkeypatch.setattr(sys, "gettrace", lambda: lambda *a: None)
    entry.with_go_gc_percent()
    assert "GOGC" not in os.environ


def test_where_exec_is_refused_the_command_goes_on_with_gos_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(*args: object) -> None:
        raise PermissionError("exec refused")

    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.setattr(sys, "orig_argv", ["python3", SCRIPT, "plan"])
    monkeypatch.setattr(sys, "argv", [SCRIPT, "plan"])
    monkeypatch.setattr(sys, "gettrace", lambda: None)
    monkeypatch.setattr(os, "execv", refused)
    entry.with_go_gc_percent()
    assert "GOGC" not in os.environ


def test_a_script_that_calls_main_is_not_started_again(tmp_path: Path) -> None:
    """A wrapper (or runpy) that sets sys.argv and calls main(): running sys.orig_argv again would
    run the wrapper again from its first line (review s30 F1)."""
    runs = tmp_path / "runs"
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(
        "import sys\n"
        f"open({str(runs)!r}, 'a').write('started\\n')\n"
        "sys.argv = ['fedeploy', 'plan', '--help']\n"
        "from fedeploy.__main__ import main\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GOGC"}
    subprocess.run(
        [sys.executable, str(wrapper)], cwd=ROOT, env=env, capture_output=True, check=False
    )
    assert runs.read_text() == "started\n"


def _first_gc_goal_mib(env: dict[str, str], *command: str) -> int:
    """The heap goal (MB) of the Go runtime's first collection in a one-stack plan run as
    `python <command> plan ewc-bologna`, from GODEBUG=gctrace=1."""
    done = subprocess.run(
        [sys.executable, *command, "plan", "ewc-bologna", "--format", "json"],
        cwd=ROOT,
        env={**env, "GODEBUG": "gctrace=1", "FEDEPLOY_PLAN_CACHE": "off"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    goals = re.findall(r"^gc 1 @.* (\d+) MB goal", done.stderr, re.MULTILINE)
    assert goals, done.stderr[-2000:]
    return int(goals[0])


@pytest.mark.parametrize("command", [("-m", "fedeploy"), ("-m", "fedeploy.cli")])
def test_the_helm_librarys_go_runtime_collects_at_the_set_target(command: tuple[str, ...]) -> None:
    """Go's runtime reads GOGC from the environment the process started with: the re-exec is
    what reaches it (its minimum heap goal is 4 MB times GOGC/100). `python -m fedeploy.cli` is
    how the example pipelines run it."""
    base = {k: v for k, v in os.environ.items() if k != "GOGC"}
    assert _first_gc_goal_mib(base, *command) >= 16
    assert _first_gc_goal_mib({**base, "GOGC": "100"}, *command) < 8


def _execs(monkeypatch: pytest.MonkeyPatch, orig_argv: list[str], argv: list[str]) -> int:
    """How many execs with_go_gc_percent asks for with this command line, GOGC unset."""
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.delenv("PYTHONPROFILEIMPORTTIME", raising=False)
    monkeypatch.setattr(sys, "orig_argv", orig_argv)
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "gettrace", lambda: None)
    calls: list[object] = []
    monkeypatch.setattr(os, "execv", lambda *a: calls.append(a))
    entry.with_go_gc_percent()
    return len(calls)


MODULE = str(ROOT / "fedeploy" / "__main__.py")


@pytest.mark.parametrize(
    ("orig_argv", "argv", "execs"),
    [
        (["python3", "-m", "fedeploy", "plan"], [MODULE, "plan"], 1),
        (["python3", "-I", "-mfedeploy.cli", "plan"], [MODULE, "plan"], 1),
        (["python3", "/venv/bin/fedeploy", "diff"], ["/venv/bin/fedeploy", "diff"], 1),
        # a wrapper that renames itself fedeploy, python -c with runpy, a profiler's -m chain
        (["python3", "wrapper.py", "plan"], ["fedeploy", "plan"], 0),
        (["python3", "-c", "import runpy; ...", "plan"], [MODULE, "plan"], 0),
        (["python3", "/venv/bin/fd", "plan"], ["/venv/bin/fd", "plan"], 0),
        (["python3", "-m", "fedeployer", "plan"], [MODULE, "plan"], 0),
    ],
)
def test_only_the_command_as_the_interpreter_was_asked_to_run_it_runs_again(
    monkeypatch: pytest.MonkeyPatch, orig_argv: list[str], argv: list[str], execs: int
) -> None:
    """Review s30b F3: sys.orig_argv's head must be the console script or `-m` an entry module."""
    assert _execs(monkeypatch, orig_argv, argv) == execs


def test_a_profiler_or_the_import_trace_is_not_thrown_away(monkeypatch: pytest.MonkeyPatch) -> None:
    """Review s30b F3/F4: `-m cProfile -m fedeploy` and PYTHONPROFILEIMPORTTIME."""
    command = (["python3", "-m", "cProfile", "-m", "fedeploy", "plan"], [MODULE, "plan"])
    monkeypatch.setattr(sys, "getprofile", lambda: object())
    assert _execs(monkeypatch, *command) == 0
    monkeypatch.setattr(sys, "getprofile", lambda: None)
    assert _execs(monkeypatch, *command) == 1
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    monkeypatch.setattr(sys, "gettrace", lambda: None)
    calls: list[object] = []
    monkeypatch.setattr(os, "execv", lambda *a: calls.append(a))
    monkeypatch.delenv("GOGC", raising=False)
    entry.with_go_gc_percent()
    assert calls == []
