"""The `fedeploy` command line."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from fedeploy.cli_options import StacksDir, stacks_dir_or_exit
from fedeploy.errors import FedeployError
from fedeploy.plan.command import plan_command

app = typer.Typer(
    name="fedeploy",
    help="Plan and check a federated Earth-observation platform, one Pulumi stack per site.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: flags read as flags (`--all`), not `--all <bool>`.
    rich_markup_mode=None,
)
REPORT_BUGS = (
    "this is a bug in fedeploy, not in your stack files: please report it in fedeploy's issue "
    "tracker with the command you ran and its output with --debug (which adds the traceback)"
)
_debug = False


def _version(asked: bool) -> None:
    if asked:
        from importlib.metadata import PackageNotFoundError, version

        from fedeploy import __version__

        try:
            installed = version("fedeploy")
        except PackageNotFoundError:  # run from a source tree that was never installed
            installed = __version__
        typer.echo(f"fedeploy {installed}")
        raise typer.Exit(0)


@app.callback()
def options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an internal error.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print fedeploy's version."
        ),
    ] = False,
) -> None:
    """Plan and check a federated Earth-observation platform, one Pulumi stack per site."""
    global _debug
    _debug = debug


app.command("plan")(plan_command)


@app.command()
def schema() -> None:
    """Print the JSON Schema of a stack file (for editors and pipelines)."""
    from fedeploy.schema import stack_file_schema

    sys.stdout.write(json.dumps(stack_file_schema(), indent=2, sort_keys=True) + "\n")


@app.command()
def validate(
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


@app.command()
def new(
    site: Annotated[str, typer.Argument(help="The new site's (stack's) name.")],
    kind: Annotated[
        str, typer.Option("--kind", help="aws, openstack, ovh, kubernetes or hpc.")
    ] = "",
    hub: Annotated[
        str | None, typer.Option("--hub", help="Add the site to this hub's members.")
    ] = None,
    stacks_dir: StacksDir = None,
) -> None:
    """Write a new site's stack file with every required key: "<choose: ...>" where only you
    know the value, pending placeholders for secrets, address ranges free in the federation;
    then print the secrets still to set.

    Exit status: 0 written, 2 refused (a bad name or kind, the file exists, no such hub)."""
    from fedeploy.scaffold import NEW_KINDS, scaffold

    if not kind:
        raise typer.BadParameter(f"give the kind: {', '.join(NEW_KINDS)}", param_hint="--kind")
    where = stacks_dir_or_exit(stacks_dir)
    try:
        made = scaffold(site, kind, where, hub)
    except FedeployError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(err.exit_code) from None
    made.path.write_text(made.text)
    typer.echo(f"wrote {made.path}")
    if made.hub_path is not None and made.hub_text is not None:
        made.hub_path.write_text(made.hub_text)
        typer.echo(f"added {site} to the members of {where / made.hub_path.name}")
    typer.echo('replace each "<choose: ...>" value; `fedeploy plan` names every one left')
    _print_secrets(made.path)


@app.command()
def secrets(
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
            _print_secrets(files[name])
        except FedeployError as err:
            typer.echo(str(err), err=True)
            failed = True
    raise typer.Exit(2 if failed else 0)


def _print_secrets(path: Path) -> None:
    """Each pending secret of the stack file as the command that sets it (read from the raw
    object when the file does not validate yet, which is said); raises if it cannot be read."""
    from fedeploy.config.loader import (
        SITE_KEY,
        config_path,
        pending_secrets,
        raw_pending,
        read_stack_file,
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
    invalid = "" if site is not None else " (the file does not validate yet: `fedeploy validate`)"
    if not pending:
        typer.echo(f"{path}: no pending secret{invalid}")
        return
    typer.echo(
        f"{path}: {len(pending)} secret(s) still to set (`{SITE_KEY}` of stack "
        f"{stack_file.stack}){invalid}:"
    )
    for key in pending:
        typer.echo(
            f"  pulumi config set --stack {stack_file.stack} --secret --path "
            f"'{config_path(key)}' <value>"
        )


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
        write.write_text(splice(write.read_text(), stacks_dir_or_exit(None)))


def _mount_affected() -> None:
    from fedeploy.affected.command import affected_command

    app.command("affected", help="The stacks a change affects, in waves of deployment order.")(
        affected_command
    )


_mount_affected()


def _mount_diff() -> None:
    from fedeploy.diff.command import diff_command

    app.command(
        "diff", help="What a change does to every site, from offline plans of both revisions."
    )(diff_command)


_mount_diff()


def _mount_verify() -> None:
    from fedeploy.verify.command import verify_command

    app.command("verify", help="Check a deployed site from the outside, as its stack file says.")(
        verify_command
    )


_mount_verify()


def _mount_restore_drill() -> None:
    from fedeploy.restore_drill.command import restore_drill_command

    app.command(
        "restore-drill",
        help="Restore the catalog's backups into a scratch server and compare with the live one.",
    )(restore_drill_command)


_mount_restore_drill()


def _mount_images() -> None:
    from fedeploy.images.command import images_app

    app.add_typer(
        images_app, name="images", help="The images the charts run, and their recorded digests."
    )


_mount_images()


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
    """Entry point: fedeploy's own errors print as they are; anything else is a bug, reported in
    one line (exit 2; the traceback only with --debug)."""
    try:
        app()
    except FedeployError as err:
        typer.echo(str(err), err=True)
        raise SystemExit(err.exit_code) from None
    except Exception as err:  # the last resort: never a bare traceback
        if _debug or "--debug" in sys.argv[1:]:
            traceback.print_exc()
        typer.echo(f"fedeploy: internal error ({type(err).__name__}); {REPORT_BUGS}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
