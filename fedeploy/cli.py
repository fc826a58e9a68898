"""The `fedeploy` command line."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from fedeploy.errors import FedeployError

app = typer.Typer(
    name="fedeploy",
    help="Plan and check a federated Earth-observation platform, one Pulumi stack per site.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Format(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


StacksDir = Annotated[Path, typer.Option("--stacks-dir", help="Directory of the stack files.")]


@app.command()
def plan(
    stacks: Annotated[
        list[str] | None, typer.Argument(help="Stacks to plan (default: every stack file).")
    ] = None,
    stacks_dir: StacksDir = Path("stacks"),
    format: Annotated[Format, typer.Option("--format", "-f", help="Report format.")] = Format.text,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write resources and manifests here.")
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", help="Stacks planned at once (default: CPUs).")
    ] = None,
) -> None:
    """Plan the federation offline: run every stack's program, render and check every chart.

    Exit status: 0 clean, 1 policy violations, 2 invalid config or program error."""
    from fedeploy.plan import run_plan, write_out
    from fedeploy.report import FORMATS

    report = run_plan(stacks_dir, stacks or None, jobs=jobs)
    sys.stdout.write(FORMATS[format.value](report))
    if out is not None:
        write_out(report, out)
    raise typer.Exit(report.exit_code)


@app.command()
def schema() -> None:
    """Print the JSON Schema of a stack file (for editors and pipelines)."""
    from fedeploy.schema import stack_file_schema

    sys.stdout.write(json.dumps(stack_file_schema(), indent=2, sort_keys=True) + "\n")


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Stack files to check.")]) -> None:
    """Validate stack files without planning them; every problem of every file is printed."""
    from fedeploy.config.loader import load_stack_file

    failed = False
    for path in files:
        try:
            load_stack_file(path)
            typer.echo(f"{path}: ok")
        except FedeployError as err:
            failed = True
            typer.echo(str(err), err=True)
    raise typer.Exit(2 if failed else 0)


@app.command("config-reference")
def config_reference(
    write: Annotated[
        Path | None, typer.Option("--write", help="Update this Markdown file in place.")
    ] = None,
) -> None:
    """Print (or splice into docs/configuration.md) the key reference generated from the model."""
    from fedeploy.config.reference import reference, splice

    if write is None:
        sys.stdout.write(reference() + "\n")
    else:
        write.write_text(splice(write.read_text(), Path("stacks")))


def _mount_affected() -> None:
    from fedeploy.affected import affected_command

    app.command("affected", help="The stacks a change affects, in waves of deployment order.")(
        affected_command
    )


_mount_affected()


def _mount_diff() -> None:
    from fedeploy.diff_command import diff_command

    app.command(
        "diff", help="What a change does to every site, from offline plans of both revisions."
    )(diff_command)


_mount_diff()


def _mount_bridge() -> None:
    try:
        from fedeploy.bridge.cli import bridge_app
    except ImportError:  # the bridge's CLI is optional in a trimmed install
        return
    app.add_typer(
        bridge_app, name="bridge", help="Submit, watch and cancel SLURM jobs through a bridge."
    )


_mount_bridge()


def main() -> None:
    try:
        app()
    except FedeployError as err:
        typer.echo(str(err), err=True)
        raise SystemExit(err.exit_code) from None


if __name__ == "__main__":
    main()
