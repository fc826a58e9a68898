"""The `fedeploy diff` command (the comparison lives in `fedeploy.diff.compare`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from fedeploy.cli_options import (
    BaseRef,
    HeadPlan,
    HeadRef,
    Repo,
    ReportFormat,
    RepoStacksDir,
    change_or_exit,
    write_forms,
)
from fedeploy.errors import FedeployError

# Every form, unshortened, and the comment as printed (--out).
OUT_FILES = {
    "json": "diff.json",
    "markdown": "diff.md",
    "text": "diff.txt",
    "comment": "comment.md",
}


def diff_command(
    sites: Annotated[
        list[str] | None,
        typer.Argument(help="Stacks to show (default: every stack of either revision)."),
    ] = None,
    base: BaseRef = None,
    head: HeadRef = "HEAD",
    head_plan: HeadPlan = None,
    stacks_dir: RepoStacksDir = None,
    repo: Repo = None,
    format: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="Output format.")
    ] = ReportFormat.text,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Also write every form, unshortened: diff.json, diff.md, diff.txt; and "
            "comment.md, as printed.",
        ),
    ] = None,
    max_chars: Annotated[
        int,
        typer.Option(
            "--max-chars",
            min=2000,
            help="Markdown: the most characters printed; over it, details give way to "
            "summaries (GitHub's comment limit is 65,536).",
        ),
    ] = 60_000,
    full_url: Annotated[
        str | None,
        typer.Option(
            "--full-url",
            help="Markdown: where the full diff is (e.g. the job's artifact), linked from a "
            "comment shortened to fit GitHub's 65,536-character limit.",
        ),
    ] = None,
) -> None:
    """What a change does to every site: resources, rendered manifests, contract outputs.

    Plans --base and --head offline (each revision with its own program) and compares them,
    grouped by wave. Exit status: 0 no change, 1 something changes, 2 invalid stack or error
    (among others, --stacks-dir holding no stack file at --head nor at --base: a misspelt
    directory would otherwise be "no change")."""
    from fedeploy.diff.compare import EXIT_INVALID, diff_revisions
    from fedeploy.diff.formats import as_json, as_markdown, as_text

    top, stacks = change_or_exit(base, repo, out, stacks_dir)
    assert base  # change_or_exit refuses a change without --base
    try:
        diff = diff_revisions(
            top,
            base,
            head,
            stacks_dir=stacks,
            sites=sites or None,
            head_recorded=head_plan,
        )
    except FedeployError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    from fedeploy.gitops.git_tree import working_tree_note

    note = working_tree_note(top, stacks, head, "diff")
    if note:
        diff.notes.append(note)
        typer.echo(note, err=True)
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    shown = {
        "text": lambda: as_text(diff, colour=colour),
        "json": lambda: as_json(diff),
        "markdown": lambda: as_markdown(diff, limit=max_chars, full_url=full_url),
    }
    sys.stdout.write(shown[format.value]())
    if out is not None:
        forms = {
            "json": as_json(diff),
            "markdown": as_markdown(diff, limit=None),
            "text": as_text(diff),
            "comment": as_markdown(diff, limit=max_chars, full_url=full_url),
        }
        write_forms(out, OUT_FILES, forms)
    raise typer.Exit(diff.exit_code)
