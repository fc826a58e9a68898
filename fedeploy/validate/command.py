"""The stack file's commands: `fedeploy validate` (check files without planning), `fedeploy
schema` (its JSON Schema) and `fedeploy config-reference` (the key reference in the docs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from fedeploy.cli_options import StacksDir, stacks_dir_or_exit
from fedeploy.errors import FedeployError


def schema_command() -> None:
    """Print the JSON Schema of a stack file (for editors and pipelines)."""
    from fedeploy.validate.schema import stack_file_schema

    sys.stdout.write(json.dumps(stack_file_schema(), indent=2, sort_keys=True) + "\n")


def validate_command(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Stack files to check (default: every one in the stacks directory)."),
    ] = None,
    stacks_dir: StacksDir = None,
) -> None:
    """Validate stack files without planning them; every problem of every file is printed, with
    the checks across the stack files beside them (references, bucket names, address ranges).

    Exit status: 0 valid (notes and advisories may be printed), 2 invalid."""
    from fedeploy.config.loader import check_stack_file, stray_stack_files
    from fedeploy.offline.federation import stack_files

    failed = False
    if files and stacks_dir is not None:
        stacks_dir_or_exit(stacks_dir)  # not read beside named files, but never a wrong one
    if not files:
        where = stacks_dir_or_exit(stacks_dir)
        files = list(stack_files(where).values())
        for stray in stray_stack_files(where):
            failed = True
            typer.echo(stray, err=True)
    for path in files:
        try:
            checked = check_stack_file(path)
        except FedeployError as err:
            failed = True
            typer.echo(str(err), err=True)
            continue
        typer.echo(f"{path}: ok")
        for note in checked.notes:
            typer.echo(f"  note: {note}")
    raise typer.Exit(2 if failed else 0)


def config_reference_command(
    write: Annotated[
        Path | None, typer.Option("--write", help="Update this Markdown file in place.")
    ] = None,
) -> None:
    """Print (or splice into docs/configuration.md) the key reference generated from the model."""
    from fedeploy.config.reference import reference, splice

    if write is None:
        sys.stdout.write(reference() + "\n")
    else:
        write.write_text(splice(write.read_text(), stacks_dir_or_exit(None)))
