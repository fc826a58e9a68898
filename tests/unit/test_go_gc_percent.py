"""The `fedeploy` command gives the embedded Helm library's Go runtime GOGC=400 (fedeploy/__main__.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fedeploy.__main__ as entry

ROOT = Path(__file__).resolve().parents[2]


def test_an_unset_gogc_runs_the_same_command_again_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    monkeypatch.setattr(sys, "orig_argv", ["python3", "-X", "dev", "/venv/bin/fedeploy", "plan"])
    calls = []
    monkeypatch.setattr(os, "execv", lambda path, args: calls.append((path, args)))
    entry.with_go_gc_percent()
    assert calls == [(sys.executable, [sys.executable, "-X", "dev", "/venv/bin/fedeploy", "plan"])]
    assert os.environ["GOGC"] == entry.GO_GC_PERCENT


def test_a_gogc_the_user_set_is_kept_and_nothing_is_run_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOGC", "100")
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("ran the command again"))
    entry.with_go_gc_percent()
    assert os.environ["GOGC"] == "100"


def test_where_exec_is_refused_the_command_goes_on_with_gos_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GOGC", raising=False)

    def refused(*args: object) -> None:
        raise PermissionError("exec refused")

    monkeypatch.setattr(os, "execv", refused)
    entry.with_go_gc_percent()
    assert "GOGC" not in os.environ


RENDER = (
    "import fedeploy.__main__ as m; m.with_go_gc_percent(); "
    "from fedeploy.charts import render_chart; render_chart('charts/catalog')"
)


def _first_gc_goal_mib(env: dict[str, str], command: tuple[str, ...] = ("-c", RENDER)) -> int:
    """The heap goal (MB) of the Go runtime's first collection while charts render, from
    GODEBUG=gctrace=1, in a fresh interpreter running `command` (by default one that enters as
    the `fedeploy` command does and renders a chart)."""
    done = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env={**env, "GODEBUG": "gctrace=1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    goals = re.findall(r"^gc 1 @.* (\d+) MB goal", done.stderr, re.MULTILINE)
    assert goals, done.stderr[-2000:]
    return int(goals[0])


def test_the_helm_librarys_go_runtime_collects_at_the_set_target() -> None:
    """Go's runtime reads GOGC from the environment the process started with: the re-exec is
    what reaches it (its minimum heap goal is 4 MB times GOGC/100)."""
    base = {k: v for k, v in os.environ.items() if k != "GOGC"}
    assert _first_gc_goal_mib(base) >= 16
    assert _first_gc_goal_mib({**base, "GOGC": "100"}) < 8


def test_python_m_fedeploy_cli_as_the_pipelines_run_it_gets_the_target_too() -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("GOGC", "FEDEPLOY_PLAN_CACHE")}
    plan = ("-m", "fedeploy.cli", "plan", "ewc-bologna", "--format", "json")
    assert _first_gc_goal_mib({**base, "FEDEPLOY_PLAN_CACHE": "off"}, plan) >= 16
