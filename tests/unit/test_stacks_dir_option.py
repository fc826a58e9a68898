"""`--stacks-dir` of every command, refused the same way: a missing path or a file is `stacks
directory <path>: no such directory`, exit 2; a directory without stack files is refused where
the answer would be an empty one. `diff` and `affected` read it from the git history of the two
revisions (so it must be inside the repository) and refuse it when neither holds stack files.
Through the command line (typer's CliRunner on fedeploy's app), as a user or CI runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedeploy import cli
from tests.builders import git

ROOT = Path(__file__).resolve().parents[2]

# Every command reading the stack files from disk, with the arguments it needs besides.
DISK_COMMANDS = {
    "plan": ["plan"],
    "validate": ["validate"],
    "secrets": ["secrets"],
    "verify": ["verify", "cf-waw"],
    "new": ["new", "site-one", "--kind", "aws"],
}


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli.app, list(args))


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "a-file").write_text("not a directory\n")
    (tmp_path / "empty").mkdir()
    return {
        "missing": tmp_path / "stackz",
        "a file": tmp_path / "a-file",
        "empty": tmp_path / "empty",
    }


@pytest.mark.parametrize("command", sorted(DISK_COMMANDS))
@pytest.mark.parametrize("case", ["missing", "a file"])
def test_a_missing_or_non_directory_stacks_dir_is_no_such_directory_exit_2(
    command: str, case: str, places: dict[str, Path]
) -> None:
    result = run(*DISK_COMMANDS[command], "--stacks-dir", str(places[case]))
    assert result.exit_code == 2, result.output
    assert f"stacks directory {places[case]}: no such directory" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_misspelt_stacks_dir_names_the_directory_it_was_meant_as(tmp_path: Path) -> None:
    (tmp_path / "stacks").mkdir()
    result = run("plan", "--stacks-dir", str(tmp_path / "stackz"))
    assert result.exit_code == 2, result.output
    assert f"did you mean '{tmp_path / 'stacks'}'?" in result.output


@pytest.mark.parametrize("command", ["plan", "validate", "secrets", "verify"])
def test_a_directory_without_stack_files_is_refused_where_the_answer_would_be_empty(
    command: str, places: dict[str, Path]
) -> None:
    result = run(*DISK_COMMANDS[command], "--stacks-dir", str(places["empty"]))
    assert result.exit_code == 2, result.output
    assert f"stacks directory {places['empty']}: no stack files" in result.output


def test_new_writes_the_first_stack_file_of_an_empty_directory(places: dict[str, Path]) -> None:
    result = run(*DISK_COMMANDS["new"], "--stacks-dir", str(places["empty"]))
    assert result.exit_code == 0, result.output
    assert (places["empty"] / "Pulumi.site-one.yaml").is_file()


def test_validate_of_named_files_checks_a_stacks_dir_given_beside_them(
    places: dict[str, Path],
) -> None:
    result = run(
        "validate",
        str(ROOT / "stacks" / "Pulumi.cf-waw.yaml"),
        "--stacks-dir",
        str(places["missing"]),
    )
    assert result.exit_code == 2, result.output
    assert f"stacks directory {places['missing']}: no such directory" in result.output


# ---- diff and affected: the stacks directory of the git history ----------------------------


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of two commits: the example stacks, then a README change."""
    path = tmp_path_factory.mktemp("stacks-dir") / "repo"
    shutil.copytree(ROOT / "stacks", path / "stacks")
    (path / "docs").mkdir()
    (path / "docs" / "index.md").write_text("# docs\n")
    (path / "README.md").write_text("# federation\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "base")
    (path / "README.md").write_text("# the federation\n")
    git(path, "commit", "-q", "-am", "readme")
    return path


CHANGE_COMMANDS = {
    "diff": ["diff", "--base", "HEAD~1"],
    "affected": ["affected", "--base", "HEAD~1"],
    "affected --all": ["affected", "--all"],
}


@pytest.mark.parametrize("command", sorted(CHANGE_COMMANDS))
@pytest.mark.parametrize(
    "given, problem",
    [
        ("stackz", "no such directory"),
        ("README.md", "no such directory"),
        ("docs", "no stack files (Pulumi.<site>.yaml) in it"),
    ],
)
def test_a_stacks_dir_without_stack_files_at_either_revision_is_exit_2(
    command: str, given: str, problem: str, repo: Path
) -> None:
    result = run(*CHANGE_COMMANDS[command], "--repo", str(repo), "--stacks-dir", given)
    assert result.exit_code == 2, result.output
    assert f"stacks directory {given}: {problem} at --head HEAD (commit " in result.output
    assert ("or at --base HEAD~1 (commit " in result.output) == (command != "affected --all")
    assert "no change on any of 0 site(s)" not in result.output
    assert not isinstance(result.exception, OSError)


@pytest.mark.parametrize("command", sorted(CHANGE_COMMANDS))
def test_a_misspelt_stacks_dir_of_a_change_names_the_one_meant(command: str, repo: Path) -> None:
    result = run(*CHANGE_COMMANDS[command], "--repo", str(repo), "--stacks-dir", "stackz")
    assert "(did you mean 'stacks'?)" in result.output


@pytest.mark.parametrize("command", sorted(CHANGE_COMMANDS))
@pytest.mark.parametrize("outside", ["/nonexistent", "OUTSIDE", "../elsewhere"])
def test_a_stacks_dir_outside_the_repository_is_refused_by_diff_and_affected_alike(
    command: str, outside: str, repo: Path, tmp_path: Path
) -> None:
    if outside == "OUTSIDE":  # a real stacks directory, but no part of the clone's history
        outside = str(tmp_path / "stacks")
        shutil.copytree(ROOT / "stacks", outside)
    result = run(*CHANGE_COMMANDS[command], "--repo", str(repo), "--stacks-dir", outside)
    assert result.exit_code == 2, result.output
    assert f"--stacks-dir {outside!r} must be a directory inside the repository" in result.output
    assert "git history" in result.output


def test_an_absolute_stacks_dir_inside_the_repository_is_taken_from_its_root(repo: Path) -> None:
    result = run(
        "affected", "--all", "--repo", str(repo), "--stacks-dir", str(repo / "stacks"), "-f", "json"
    )
    assert result.exit_code == 0, result.output
    assert '"eu-hub"' in result.stdout


@pytest.fixture
def removed(tmp_path: Path) -> Path:
    """A clone whose second commit deletes the whole stacks directory."""
    path = tmp_path / "repo"
    shutil.copytree(ROOT / "stacks", path / "stacks")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "base")
    git(path, "rm", "-q", "-r", "stacks")
    (path / "README.md").write_text("# no sites any more\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "remove every site")
    return path


def test_a_change_removing_the_stacks_directory_is_an_answer_every_stack_removed(
    removed: Path,
) -> None:
    from fedeploy.affected.find import find_affected
    from fedeploy.diff.compare import RevisionPlan, diff_revisions

    def never(tree: Path, stacks_dir: str, *_: str):  # type: ignore[no-untyped-def]
        raise AssertionError(f"planned {tree}")

    affected = find_affected(removed, "HEAD~1", planner=never)
    assert affected.waves == [] and len(affected.removed) == 7
    planned: list[str] = []

    def planner(tree: Path, stacks_dir: str, commit: str) -> RevisionPlan:
        planned.append(tree.name)
        return RevisionPlan(commit=commit)

    diff_revisions(removed, "HEAD~1", planner=planner)
    assert planned == ["base"]  # the head has no stack to plan; the base is compared with none
