"""`python3 -m fedeploy.restore_drill`: the drill alone (the restore-drill image's entry point),
the same options and exit codes as `fedeploy restore-drill`, without the rest of fedeploy."""

from __future__ import annotations

import sys

import typer

from fedeploy.errors import FedeployError
from fedeploy.restore_drill.command import restore_drill_command


def main() -> None:
    """Run the drill as a program: exit 0 identical, 1 differs, 2 cannot run (its reason in one
    line on stderr, never a traceback)."""
    try:
        typer.run(restore_drill_command)
    except FedeployError as error:
        typer.echo(str(error), err=True)
        sys.exit(error.exit_code)
    except Exception as error:  # the last resort: a bug, reported in one line
        typer.echo(f"restore-drill: internal error ({type(error).__name__}: {error})", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
