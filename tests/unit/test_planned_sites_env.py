"""The plan of a revision's tree (diff, affected) runs that tree's own program and charts."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from fedeploy.gitops import planned_sites


def test_a_tree_is_planned_as_its_own_project_whatever_the_caller_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With FEDEPLOY_PROJECT_DIR set (to today's checkout, say), the base revision's plan read
    # today's charts and stacks instead of its own.
    monkeypatch.setenv("FEDEPLOY_PROJECT_DIR", str(tmp_path / "current"))
    seen: dict[str, Any] = {}

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.update(kwargs)
        return subprocess.CompletedProcess(command, 0, stdout="{}", stderr="")

    monkeypatch.setattr(planned_sites.subprocess, "run", run)
    base = tmp_path / "base"
    base.mkdir()
    report, _ = planned_sites.run_plan_in_tree(base, "stacks", tmp_path / "out")
    assert report == {}
    assert seen["cwd"] == base
    assert seen["env"]["FEDEPLOY_PROJECT_DIR"] == str(base.resolve())
