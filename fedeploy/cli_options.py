"""Options several commands share, read the same way by each."""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from fedeploy.errors import FedeployError


class ReportFormat(StrEnum):
    """What plan and diff print: text for people, JSON for tools, Markdown for pull requests."""

    text = "text"
    json = "json"
    markdown = "markdown"


StacksDir = Annotated[
    Path | None,
    typer.Option(
        "--stacks-dir",
        help="Directory of the stack files (default: the project's stackConfigDir, found from "
        "any folder of its git clone).",
    ),
]

# diff and affected: the git clone and its stacks directory, both from the clone's root.
RepoStacksDir = Annotated[
    str | None,
    typer.Option(
        "--stacks-dir",
        help="Directory of the stack files, from the repository root (default: Pulumi.yaml's "
        "stackConfigDir there); it is read from the git history, so it must be inside the "
        "repository, and a directory holding stack files at --head or --base (`affected "
        "--all`: at --head): where it holds none, the command exits 2 instead of answering "
        "for no stack.",
    ),
]
# diff and affected: the change between two revisions of that clone.
BaseRef = Annotated[
    str | None,
    typer.Option("--base", help="Commit or ref the change starts from (e.g. origin/main)."),
]
HeadRef = Annotated[str, typer.Option("--head", help="Commit or ref the change ends at.")]
HeadPlan = Annotated[
    Path | None,
    typer.Option(
        "--head-plan",
        help="The head's offline plan as recorded where its code ran (`fedeploy plan --format "
        "json --out DIR > DIR/plan.json`): read as untrusted data instead of running the head's "
        "program.",
    ),
]
Repo = Annotated[
    Path | None,
    typer.Option(
        "--repo",
        help="The git repository, or any folder in it (default: the one holding the project).",
    ),
]


def stacks_dir_or_exit(given: Path | None, *, need_stack_files: bool = True) -> Path:
    """`given` as typed, or the project's stacks directory (fedeploy.project.stacks_dir): relative
    to the current directory when that is inside the project, as messages then name the files.
    Exit 2 with the one message saying why there is none, or why it holds no stack file (unless
    not `need_stack_files`: `new` writes the first one)."""
    from fedeploy.config.loader import require_stacks_dir
    from fedeploy.project import project_dir, project_notes, stacks_dir

    try:
        if given is None:
            found = stacks_dir()
            root = project_dir()
            for note in project_notes(root):
                typer.echo(f"note: {note}", err=True)
            inside = Path.cwd().resolve().is_relative_to(root)
            given = Path(os.path.relpath(found)) if inside else found
        require_stacks_dir(given, need_stack_files=need_stack_files)
    except FedeployError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(err.exit_code) from None
    return given


def repository_or_exit(given: Path | None) -> tuple[Path, str]:
    """The git work tree's top and its stacks directory from there (fedeploy.project.repository);
    exit 2 with the one message saying why there is none."""
    from fedeploy.project import repository

    try:
        return repository(given)
    except FedeployError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(err.exit_code) from None


def change_or_exit(
    base: str | None,
    repo: Path | None,
    out: Path | None,
    stacks_dir: str | None = None,
    *,
    every_stack: bool | None = None,
) -> tuple[Path, str]:
    """Check a change's options before the long work, then find its repository: --base given
    (or --all, for a command that has it: `every_stack` not None), --out created, and the git
    work tree's top with its stacks directory: --stacks-dir from the top, refused outside the
    repository (fedeploy.config.loader.stacks_dir_in_repository), or the project's
    (repository_or_exit). Raises typer.BadParameter naming the option at fault; exits 2 when
    there is no repository or the stacks directory is outside it."""
    if not base and not every_stack:
        alternative = " or --all" if every_stack is not None else ""
        raise typer.BadParameter(
            f"give --base REF (the change's starting point){alternative}", param_hint="--base"
        )
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise typer.BadParameter(
                f"{out}: cannot create the directory ({err.strerror})", param_hint="--out"
            ) from None
    top, default = repository_or_exit(repo)
    if stacks_dir is None:
        return top, default
    from fedeploy.config.loader import stacks_dir_in_repository

    try:
        return top, stacks_dir_in_repository(top, stacks_dir)
    except FedeployError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(err.exit_code) from None


def write_forms(out: Path | None, files: Mapping[str, str], forms: Mapping[str, str]) -> None:
    """Write each form (by name) to its file (by the same name) in --out; nothing without --out."""
    if out is None:
        return
    for name, file in files.items():
        (out / file).write_text(forms[name])
