"""`fedeploy secrets`: the secrets each stack file still needs, as the commands that set them
(also printed by `fedeploy new` for the file it wrote)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fedeploy.cli_options import StacksDir, stacks_dir_or_exit
from fedeploy.errors import FedeployError


def secrets_command(
    stacks: Annotated[
        list[str] | None, typer.Argument(help="Stacks to list (default: every stack file).")
    ] = None,
    stacks_dir: StacksDir = None,
) -> None:
    """The secrets each stack file still needs (pending placeholders), as the
    `pulumi config set --secret --path` commands that set them.

    Exit status: 0 listed (none pending included), 2 a stack file that cannot be read."""
    from fedeploy.offline.federation import stack_files

    where = stacks_dir_or_exit(stacks_dir)
    files = stack_files(where)
    failed = False
    for name in stacks or list(files):
        if name not in files:
            typer.echo(f"no stack file Pulumi.{name}.yaml in {where}", err=True)
            failed = True
            continue
        try:
            print_secrets(files[name])
        except FedeployError as err:
            typer.echo(str(err), err=True)
            failed = True
    raise typer.Exit(2 if failed else 0)


def print_secrets(path: Path) -> None:
    """Each pending secret of the stack file as the command that sets it (read from the raw
    object when the file does not validate yet, which is said); raises if it cannot be read."""
    from fedeploy.config.loader import (
        SITE_KEY,
        pending_secrets,
        raw_pending,
        read_stack_file,
        set_secret_command,
        validate_site,
    )

    stack_file = read_stack_file(path)
    raw = stack_file.raw
    try:
        site = validate_site(raw, stack_file=str(path), stack=stack_file.stack)
    except FedeployError:
        # Choices left to make do not hide the secrets: list them from the raw object.
        site = None
    pending = pending_secrets(site) if site is not None else raw_pending(raw)
    invalid = (
        ""
        if site is not None
        else " (read from the file as written, without validating it: it does not validate "
        "yet, `fedeploy validate` says why)"
    )
    if not pending:
        found = (
            "no value is a `pending:` placeholder"
            if site is not None
            else "the file as written holds no `pending:` placeholder (checked without "
            "validating it: it does not validate yet, `fedeploy validate` says why)"
        )
        typer.echo(f"{path}: no pending secret: {found}")
        return
    typer.echo(
        f"{path}: {len(pending)} secret(s) still to set (`{SITE_KEY}` of stack "
        f"{stack_file.stack}){invalid}:"
    )
    for key in pending:
        typer.echo(f"  {set_secret_command(stack_file.stack, key)}")
