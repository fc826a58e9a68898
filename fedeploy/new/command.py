"""The `fedeploy new` command line (the stack file is written by `fedeploy.new.scaffold`)."""

from __future__ import annotations

from typing import Annotated

import typer

from fedeploy.cli_options import StacksDir, stacks_dir_or_exit
from fedeploy.errors import FedeployError
from fedeploy.secrets.command import print_secrets


def new_command(
    site: Annotated[str, typer.Argument(help="The new site's (stack's) name.")],
    kind: Annotated[
        str, typer.Option("--kind", help="aws, openstack, ovh, kubernetes or hpc.")
    ] = "",
    hub: Annotated[
        str | None, typer.Option("--hub", help="Add the site to this hub's members.")
    ] = None,
    storage_only: Annotated[
        bool,
        typer.Option(
            "--storage-only",
            help="A storage-only site (role: storage): buckets, no cluster, no services "
            "(aws, openstack, ovh).",
        ),
    ] = False,
    stacks_dir: StacksDir = None,
) -> None:
    """Write a new site's stack file with every required key: "<choose: ...>" where only you
    know the value, pending placeholders for secrets, address ranges free in the federation;
    then print the secrets still to set. With --storage-only, a site of buckets only.

    Exit status: 0 written, 2 refused (a bad name or kind, the file exists, no such hub)."""
    from fedeploy.new.scaffold import NEW_KINDS, scaffold

    if not kind:
        raise typer.BadParameter(f"give the kind: {', '.join(NEW_KINDS)}", param_hint="--kind")
    where = stacks_dir_or_exit(stacks_dir, need_stack_files=False)  # the first one may be new
    try:
        made = scaffold(site, kind, where, hub, storage_only=storage_only)
    except FedeployError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(err.exit_code) from None
    made.path.write_text(made.text)
    typer.echo(f"wrote {made.path}")
    if made.hub_path is not None and made.hub_text is not None:
        made.hub_path.write_text(made.hub_text)
        typer.echo(f"added {site} to the members of {where / made.hub_path.name}")
    typer.echo('replace each "<choose: ...>" value; `fedeploy plan` names every one left')
    print_secrets(made.path)
