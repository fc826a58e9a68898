"""The few git operations `fedeploy affected` needs, through the git command line.

Trees are exported with `git archive` rather than `git worktree add`: it only reads the
repository, so it takes no lock and leaves nothing behind in a checkout other people share."""

from __future__ import annotations

import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from fedeploy.errors import FedeployError


class GitError(FedeployError):
    """A git command failed: a ref that does not exist, no merge base, not a repository."""


@dataclass(frozen=True, order=True)
class Change:
    """One path a change touches; `status` is git's letter: A added, M modified, D deleted."""

    path: str
    status: str


def _git(repo: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise GitError(
            "git is not installed (fedeploy affected reads the change with git)"
        ) from None
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace").strip()
        raise GitError(f"git {' '.join(args)} failed in {repo}: {stderr}")
    return done.stdout


def _git_text(repo: Path, *args: str) -> str:
    return _git(repo, *args).decode()


def is_repository(repo: Path) -> bool:
    """Whether `repo` is inside a git work tree or is a git directory."""
    try:
        _git(repo, "rev-parse", "--git-dir")
    except GitError:
        return False
    return True


def resolve(repo: Path, ref: str, what: str) -> str:
    """The commit a ref names; a clear error when it does not exist in this clone."""
    if not ref or ref.startswith("-") or set(ref) == {"0"}:
        raise GitError(f"{what} {ref!r} is not a git ref")
    try:
        return _git_text(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except GitError:
        if not is_repository(repo):
            raise GitError(f"{repo} is not a git repository (give --repo the clone)") from None
        raise GitError(
            f"{what} {ref!r} is not a commit in {repo}: fetch it first (in CI: a checkout with "
            "full history, e.g. actions/checkout with fetch-depth: 0, or `git fetch origin <ref>`)"
        ) from None


def changed_paths(repo: Path, base: str, head: str) -> list[Change]:
    """What `git diff base...head` touches (from the merge base), renames as delete plus add."""
    try:
        _git(repo, "merge-base", base, head)
    except GitError:
        raise GitError(
            f"{base[:12]} and {head[:12]} have no common ancestor in {repo}; a shallow clone "
            "lacks it: fetch the full history (fetch-depth: 0)"
        ) from None
    out = _git_text(repo, "diff", "--name-status", "--no-renames", "-z", f"{base}...{head}")
    fields = out.split("\0")
    changes = []
    for status, path in zip(fields[0::2], fields[1::2], strict=False):
        if path:
            changes.append(Change(path=path, status=status[:1]))
    return sorted(changes)


def has_path(repo: Path, commit: str, path: str) -> bool:
    """Whether the tree of `commit` holds `path` (a file or a directory)."""
    return bool(_git_text(repo, "ls-tree", "--name-only", commit, "--", path).strip())


def export_tree(repo: Path, commit: str, dest: Path) -> Path:
    """Write the files of `commit` into `dest` (which must exist) and return it."""
    data = _git(repo, "archive", "--format=tar", commit)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(dest, filter="data")  # refuses links and paths leaving dest
    return dest


def uncommitted_stack_files(repo: Path, stacks_dir: str) -> list[str]:
    """Stack files (Pulumi.<stack>.yaml) in `stacks_dir` (from the repository's top) that the
    working tree holds differently from HEAD: modified, added, deleted or untracked."""
    from fedeploy.config.loader import STACK_FILE

    try:
        out = _git_text(
            repo,
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--no-renames",
            "--",
            stacks_dir,
        )
    except GitError:
        return []
    paths = {entry[3:] for entry in out.split("\0") if len(entry) > 3}
    return sorted(p for p in paths if STACK_FILE.match(Path(p).name))


def working_tree_note(repo: Path, stacks_dir: str, head: str, command: str) -> str | None:
    """When --head is the checked-out commit and the working tree's stack files differ from
    it, the note saying they are left out (diff and affected compare commits, not files)."""
    if command == "affected --all":
        compared = "affected --all lists the stacks of a commit"
    else:
        compared = f"{command} compares commits"
    try:
        if resolve(repo, head, "--head") != resolve(repo, "HEAD", "HEAD"):
            return None
    except GitError:
        return None
    files = uncommitted_stack_files(repo, stacks_dir)
    if not files:
        return None
    shown = ", ".join(Path(f).name for f in files[:5]) + (", …" if len(files) > 5 else "")
    return (
        f"note: {len(files)} stack file(s) differ from HEAD in the working tree "
        f"(uncommitted or untracked: {shown}) and are not included: {compared} "
        f"(--head {head} is commit {resolve(repo, head, '--head')[:12]}); commit them to "
        "include them"
    )
