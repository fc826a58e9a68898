"""The `fedeploy diff` command (the comparison lives in `fedeploy.diff`)."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from fedeploy.cli_options import Repo, RepoStacksDir
from fedeploy.errors import FedeployError

OUT_FILES = {"json": "diff.json", "markdown": "diff.md", "text": "diff.txt"}


class DiffFormat(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


def diff_command(
    sites: Annotated[
        list[str] | None,
        typer.Argument(help="Stacks to show (default: every stack of either revision)."),
    ] = None,
    base: Annotated[
        str, typer.Option("--base", help="Commit or ref the change starts from (e.g. origin/main).")
    ] = "",
    head: Annotated[str, typer.Option("--head", help="Commit or ref the change ends at.")] = "HEAD",
    stacks_dir: RepoStacksDir = None,
    repo: Repo = None,
    format: Annotated[
        DiffFormat, typer.Option("--format", "-f", help="Output format.")
    ] = DiffFormat.text,
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
    grouped by wave. Exit status: 0 no change, 1 something changes, 2 invalid stack or error."""
    from fedeploy.diff import EXIT_INVALID, diff_revisions
    from fedeploy.diff_formats import as_json, as_markdown, as_text
    from fedeploy.project import repository

    if not base:
        raise typer.BadParameter(
            "give --base REF (the change's starting point)", param_hint="--base"
        )
    if out is not None:  # before planning, which takes a while
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise typer.BadParameter(
                f"{out}: cannot create the directory ({err.strerror})", param_hint="--out"
            ) from None
    try:
        top, default_stacks = repository(repo)
        diff = diff_revisions(
            top, base, head, stacks_dir=stacks_dir or default_stacks, sites=sites or None
        )
    except FedeployError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    shown = {
        "text": lambda: as_text(diff, colour=colour),
        "json": lambda: as_json(diff),
        "markdown": lambda: as_markdown(diff, limit=max_chars, full_url=full_url),
    }
    sys.stdout.write(shown[format.value]())
    if out is not None:
        (out / OUT_FILES["json"]).write_text(as_json(diff))
        (out / OUT_FILES["markdown"]).write_text(as_markdown(diff, limit=None))
        (out / OUT_FILES["text"]).write_text(as_text(diff))
        (out / "comment.md").write_text(as_markdown(diff, limit=max_chars, full_url=full_url))
    raise typer.Exit(diff.exit_code)
