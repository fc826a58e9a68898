"""Options several commands share, read the same way by each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from fedeploy.errors import FedeployError

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
        "stackConfigDir there).",
    ),
]
Repo = Annotated[
    Path | None,
    typer.Option(
        "--repo",
        help="The git repository, or any folder in it (default: the one holding the project).",
    ),
]


def stacks_dir_or_exit(given: Path | None) -> Path:
    """`given` as typed, or the project's stacks directory (fedeploy.project.stacks_dir): relative
    to the current directory when that is inside the project, as messages then name the files.
    Exit 2 with the one message saying why there is none, or why it holds no stack file."""
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
        require_stacks_dir(given)
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
