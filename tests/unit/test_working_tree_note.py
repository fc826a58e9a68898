"""diff and affected compare commits: stack files the working tree holds differently from
--head are left out, and both commands say so (stderr, and the JSON and Markdown forms)
instead of answering silently about fewer stacks (review 34, M1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import fedeploy.diff.compare as diff_compare
from fedeploy.affected.command import affected_command
from fedeploy.diff.command import diff_command
from fedeploy.diff.compare import FederationDiff
from fedeploy.gitops.git_tree import uncommitted_stack_files, working_tree_note
from tests.builders import git

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    shutil.copytree(ROOT / "stacks", path / "stacks")
    (path / "README.md").write_text("# federation\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "base")
    return path


def _working_changes(repo: Path) -> None:
    """A new untracked stack file and a changed committed one."""
    stacks = repo / "stacks"
    shutil.copy(stacks / "Pulumi.aws-dublin.yaml", stacks / "Pulumi.aws-new.yaml")
    hub = stacks / "Pulumi.eu-hub.yaml"
    hub.write_text(hub.read_text() + "\n# edited\n")
    (repo / "README.md").write_text("# not a stack file\n")


def _app(command) -> typer.Typer:  # type: ignore[no-untyped-def]
    app = typer.Typer()
    app.command(command.__name__.removesuffix("_command"))(command)
    app.command("version")(lambda: None)
    return app


def test_a_clean_tree_has_no_note(repo: Path) -> None:
    assert uncommitted_stack_files(repo, "stacks") == []
    assert working_tree_note(repo, "stacks", "HEAD", "diff") is None


def test_the_note_counts_untracked_and_modified_stack_files_only(repo: Path) -> None:
    _working_changes(repo)
    assert uncommitted_stack_files(repo, "stacks") == [
        "stacks/Pulumi.aws-new.yaml",
        "stacks/Pulumi.eu-hub.yaml",
    ]
    note = working_tree_note(repo, "stacks", "HEAD", "diff")
    assert note is not None
    assert "2 stack file(s) differ from HEAD in the working tree" in note
    assert "Pulumi.aws-new.yaml, Pulumi.eu-hub.yaml" in note
    assert "diff compares commits" in note and "commit them" in note
    # --head another commit than the one checked out: the working tree is not its concern.
    git(repo, "commit", "-q", "--allow-empty", "-m", "next")
    assert working_tree_note(repo, "stacks", "HEAD~1", "diff") is None


def test_affected_all_says_which_stack_files_it_left_out(repo: Path) -> None:
    _working_changes(repo)
    app = _app(affected_command)
    text = CliRunner().invoke(app, ["affected", "--repo", str(repo), "--all"])
    assert text.exit_code == 0, text.output
    assert "aws-new" not in text.stdout
    assert "2 stack file(s) differ from HEAD" in text.stderr
    assert "affected --all lists the stacks of a commit" in text.stderr
    data = json.loads(
        CliRunner().invoke(app, ["affected", "--repo", str(repo), "--all", "-f", "json"]).stdout
    )
    assert len(data["notes"]) == 1 and "Pulumi.aws-new.yaml" in data["notes"][0]
    markdown = CliRunner().invoke(app, ["affected", "--repo", str(repo), "--all", "-f", "markdown"])
    assert "> note: 2 stack file(s) differ from HEAD" in markdown.stdout


def test_diff_no_change_is_not_silent_about_the_working_tree(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _working_changes(repo)
    sha = git(repo, "rev-parse", "HEAD")

    def same(top, base, head, *, stacks_dir, sites, head_recorded=None):  # type: ignore[no-untyped-def]
        return FederationDiff(sha, sha, [], {})

    monkeypatch.setattr(diff_compare, "diff_revisions", same)
    app = _app(diff_command)
    args = ["diff", "--repo", str(repo), "--base", "HEAD"]
    text = CliRunner().invoke(app, args)
    assert text.exit_code == 0, text.output
    assert "no change on any of 0 site(s)" in text.stdout
    assert "2 stack file(s) differ from HEAD in the working tree" in text.stderr
    assert "diff compares commits" in text.stderr
    data = json.loads(CliRunner().invoke(app, [*args, "-f", "json"]).stdout)
    assert "diff compares commits" in data["notes"][0]
    markdown = CliRunner().invoke(app, [*args, "-f", "markdown"]).stdout
    assert "> note: 2 stack file(s) differ from HEAD" in markdown
