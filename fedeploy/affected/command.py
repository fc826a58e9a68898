"""The `fedeploy affected` command line (the decision lives in `fedeploy.affected.find`)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from fedeploy.cli_options import (
    BaseRef,
    HeadPlan,
    HeadRef,
    Repo,
    RepoStacksDir,
    change_or_exit,
    write_forms,
)
from fedeploy.errors import FedeployError

OUT_FILES = {
    "json": "affected.json",
    "markdown": "affected.md",
    "text": "affected.txt",
    "gitlab": "gitlab-pipeline.yml",
}


class AffectedFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"
    gitlab = "gitlab"


def affected_command(
    base: BaseRef = None,
    head: HeadRef = "HEAD",
    head_plan: HeadPlan = None,
    every_stack: Annotated[
        bool,
        typer.Option(
            "--all", help="Every stack, in waves, ignoring --base (first deployment, drift checks)."
        ),
    ] = False,
    stacks_dir: RepoStacksDir = None,
    repo: Repo = None,
    format: Annotated[
        AffectedFormat, typer.Option("--format", "-f", help="Output format.")
    ] = AffectedFormat.text,
    gitlab_include: Annotated[
        str,
        typer.Option(
            "--gitlab-include",
            help="With --format gitlab: the file defining the .fedeploy-up job template.",
        ),
    ] = ".gitlab/fedeploy.yml",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Also write every form here: affected.json, affected.md, affected.txt, gitlab-pipeline.yml.",
        ),
    ] = None,
) -> None:
    """Stacks a change affects, grouped into waves of deployment order (JSON feeds a job matrix).

    Exit status: 0 with an answer (nothing affected included), 2 when it cannot be decided:
    among others, when --stacks-dir holds no stack file at --head nor at --base (at --head with
    --all), as a misspelt directory would otherwise affect nothing."""
    from fedeploy.affected.find import find_affected
    from fedeploy.gitops.formats import FORMATS, as_gitlab
    from fedeploy.gitops.git_tree import working_tree_note

    top, stacks = change_or_exit(base, repo, out, stacks_dir, every_stack=every_stack)
    try:
        affected = find_affected(
            top, base, head, stacks_dir=stacks, every_stack=every_stack, head_plan=head_plan
        )
    except FedeployError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(err.exit_code) from None
    note = working_tree_note(top, stacks, head, "affected --all" if every_stack else "affected")
    if note:
        affected.notes.append(note)
        typer.echo(note, err=True)
    forms = {name: render(affected) for name, render in FORMATS.items()}
    forms["gitlab"] = as_gitlab(affected, gitlab_include)
    sys.stdout.write(forms[format.value])
    write_forms(out, OUT_FILES, forms)
