"""Every command finds the project and its stacks directory the same way from any folder of its
git clone (the root, stacks/, docs/, a folder deeper down), or refuses with one message.

From stacks/, `affected --base` reported the changed site as deleted, `affected --all` found
no stack and `diff` compared 0 sites, all with exit 0 (git read only the current folder); from
docs/ they failed naming a temporary directory; `plan` and `verify` found no stacks directory,
or (from a clone other than the installed checkout) another project's. The CLI runs as a user
runs it: a subprocess in each folder of a temporary clone with a base ref."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.diff import copy_project

ROOT = Path(__file__).resolve().parents[2]
SITE = "aws-dublin"
FOLDERS = [".", "stacks", "docs", "charts/catalog/templates"]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A project of one site at tag `base`; the head changes that site's stack file."""
    repo = copy_project(tmp_path_factory.mktemp("discovery") / "clone", [SITE])
    (repo / "docs").mkdir()
    (repo / "docs" / "notes.md").write_text("# notes\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    _git(repo, "tag", "base")
    stack = repo / "stacks" / f"Pulumi.{SITE}.yaml"
    text = stack.read_text()
    assert "max_size: 4" in text
    stack.write_text(text.replace("max_size: 4", "max_size: 5", 1))
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "grow")
    return repo


def fedeploy(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "FEDEPLOY_PROJECT_DIR"}
    return subprocess.run(
        [sys.executable, "-c", "from fedeploy.cli import main; main()", *args],
        cwd=cwd,
        env={**environment, **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("folder", FOLDERS)
def test_affected_finds_the_change_from_any_folder(clone: Path, folder: str) -> None:
    changed = fedeploy(clone / folder, "affected", "--base", "base", "-f", "json")
    assert changed.returncode == 0, changed.stderr
    data = json.loads(changed.stdout)
    assert data["stacks"] == [SITE] and data["removed"] == []
    assert data["reasons"] == {SITE: [f"stacks/Pulumi.{SITE}.yaml changed"]}
    every = fedeploy(clone / folder, "affected", "--all", "-f", "json")
    assert every.returncode == 0, every.stderr
    assert json.loads(every.stdout)["stacks"] == [SITE]


@pytest.mark.parametrize("folder", ["stacks", "docs"])
def test_diff_compares_the_sites_from_any_folder(clone: Path, folder: str) -> None:
    done = fedeploy(clone / folder, "diff", "--base", "base", "-f", "json")
    assert done.returncode == 1, done.stderr  # something changes
    sites = json.loads(done.stdout)["sites"]
    assert list(sites) == [SITE] and sites[SITE]["status"] == "changed"


@pytest.mark.parametrize("folder", FOLDERS)
def test_plan_validate_and_verify_read_this_clones_stacks(clone: Path, folder: str) -> None:
    here = clone / folder
    validated = fedeploy(here, "validate")
    assert validated.returncode == 0, validated.stderr
    assert f"Pulumi.{SITE}.yaml: ok" in validated.stdout
    # verify of a stack that is not there lists the stacks it found: this clone's, not ROOT's.
    unknown = fedeploy(here, "verify", "nosuch")
    assert unknown.returncode == 2
    assert f"(stacks in {_shown(here, clone / 'stacks')}: {SITE})" in unknown.stderr


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["stacks", "docs"])
def test_plan_plans_this_clones_stacks_from_any_folder(clone: Path, folder: str) -> None:
    planned = fedeploy(clone / folder, "plan", "-f", "json")
    assert planned.returncode == 0, planned.stderr
    report = json.loads(planned.stdout)
    assert list(report["sites"]) == [SITE]
    assert Path(clone / folder, report["stacks_dir"]).resolve() == clone / "stacks"


def _shown(cwd: Path, path: Path) -> str:
    return os.path.relpath(path, cwd)


def test_a_folder_outside_any_project_is_refused_in_one_message(tmp_path: Path) -> None:
    """FEDEPLOY_PROJECT_DIR naming no project: every command says so, exit 2, no traceback."""
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    for args in (
        ["plan"],
        ["validate"],
        ["verify", SITE],
        ["affected", "--all"],
        ["diff", "--base", "HEAD"],
    ):
        done = fedeploy(tmp_path, *args, FEDEPLOY_PROJECT_DIR=str(nowhere))
        assert done.returncode == 2, (args, done.stderr)
        assert f"{nowhere}: not a fedeploy project directory" in done.stderr, args
        assert f"chosen as FEDEPLOY_PROJECT_DIR={nowhere}" in done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""


def test_a_project_outside_git_is_refused_by_the_git_commands(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "untracked", [SITE])
    for args in (["affected", "--all"], ["diff", "--base", "HEAD"]):
        done = fedeploy(project / "stacks", *args, FEDEPLOY_PROJECT_DIR=str(project))
        assert done.returncode == 2, (args, done.stderr)
        assert f"{project} is not inside a git work tree" in done.stderr
        assert "give --repo the clone" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("stackConfigDir: stackz", "stackConfigDir: 'stackz': "),
        ("stackConfigDir: ../stacks", "is not a directory inside the project"),
        ("stackConfigDir: [stacks", "is not valid YAML"),
        ("name: fedeploy", "name: 'eofed', but the stack files' settings are under"),
    ],
)
def test_a_broken_stack_config_dir_is_named(tmp_path: Path, setting: str, said: str) -> None:
    """Pulumi reads the stack files from stackConfigDir: a wrong one planned clean before."""
    project = copy_project(tmp_path / "project", [SITE])
    pulumi_yaml = project / "Pulumi.yaml"
    text = pulumi_yaml.read_text()
    if setting.startswith("name:"):
        text = text.replace(setting, "name: eofed")
    else:
        text = text.replace("stackConfigDir: stacks", setting)
    pulumi_yaml.write_text(text)
    for args in (["plan"], ["validate"], ["verify", SITE]):
        done = fedeploy(project, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert f"{pulumi_yaml}: " in done.stderr and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_a_missing_virtualenv_is_a_note_and_the_plan_goes_on(tmp_path: Path) -> None:
    """Pulumi.yaml's runtime.options.virtualenv that is not there stops `pulumi up`; the offline
    plan ran clean without a word."""
    project = copy_project(tmp_path / "project", [SITE])
    done = fedeploy(project, "validate")
    assert done.returncode == 0, done.stderr
    assert (
        f"note: {project / 'Pulumi.yaml'}: runtime.options.virtualenv: '.venv' is not a "
        "virtual environment"
    ) in done.stderr
    (project / ".venv").mkdir()
    (project / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert "virtualenv" not in fedeploy(project, "validate").stderr
