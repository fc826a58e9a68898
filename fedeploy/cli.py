"""The `fedeploy` command line: the root that registers each command; each command's options,
logic and formats live in its own package (`fedeploy/<command>/command.py`)."""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from fedeploy.affected.command import affected_command
from fedeploy.diff.command import diff_command
from fedeploy.errors import FedeployError
from fedeploy.images.command import images_app
from fedeploy.new.command import new_command
from fedeploy.plan.command import plan_command
from fedeploy.restore_drill.command import restore_drill_command
from fedeploy.secrets.command import secrets_command
from fedeploy.validate.command import config_reference_command, schema_command, validate_command
from fedeploy.verify.command import verify_command

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
app.command("schema")(schema_command)
app.command("validate")(validate_command)
app.command("new")(new_command)
app.command("secrets")(secrets_command)
app.command("config-reference")(config_reference_command)
app.command("affected", help="The stacks a change affects, in waves of deployment order.")(
    affected_command
)
app.command("diff", help="What a change does to every site, from offline plans of both revisions.")(
    diff_command
)
app.command("verify", help="Check a deployed site from the outside, as its stack file says.")(
    verify_command
)
app.command(
    "restore-drill",
    help="Restore the catalog's backups into a scratch server and compare with the live one.",
)(restore_drill_command)
app.add_typer(
    images_app, name="images", help="The images the charts run, and their recorded digests."
)


def _mount_bridge() -> None:
    try:
        from fedeploy.bridge.command import bridge_app
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


if __name__ == "__main__":  # `python -m fedeploy.cli`, as the example pipelines run it
    from fedeploy.go_runtime import with_go_gc_percent

    with_go_gc_percent()  # after this module's imports: once, about a quarter of a second
    main()
