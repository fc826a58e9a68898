"""The `fedeploy plan` command line: options, --out, exit status."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from fedeploy.cli_options import ReportFormat, StacksDir, stacks_dir_or_exit


def plan_command(
    stacks: Annotated[
        list[str] | None, typer.Argument(help="Stacks to plan (default: every stack file).")
    ] = None,
    stacks_dir: StacksDir = None,
    format: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="Report format.")
    ] = ReportFormat.text,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write resources and manifests here.")
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="Stacks planned at once (default: CPUs)."),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Stay running: plan again (from the cache, in a warm process) whenever a stack "
            "file changes, until Ctrl-C.",
        ),
    ] = False,
) -> None:
    """Plan the federation offline: run every stack's program, render and check every chart.

    Exit status: 0 clean, 1 policy violations, 2 invalid config or program error (with --watch:
    0 when stopped by Ctrl-C or SIGTERM)."""
    from fedeploy.plan.formats import FORMATS
    from fedeploy.plan.run import run_plan, write_out

    stacks_dir = stacks_dir_or_exit(stacks_dir)
    if out is not None:
        _writable_out(out)  # before planning: a minute's work must not end in a failed write
    if watch:
        from fedeploy.plan.watch import WatchOptions, watch_plan

        options = WatchOptions(stacks_dir, stacks or None, format.value, out, jobs)
        raise typer.Exit(watch_plan(options))
    report = run_plan(stacks_dir, stacks or None, jobs=jobs)
    sys.stdout.write(FORMATS[format.value](report))
    if out is not None:
        try:
            write_out(report, out)
        except OSError as err:
            typer.echo(f"--out {out}: cannot write the plan's files: {err.strerror}", err=True)
            raise typer.Exit(2) from None
    raise typer.Exit(report.exit_code)


def _writable_out(out: Path) -> None:
    """Create --out, or exit 2 naming it when it cannot be a writable directory of a plan's own."""
    from fedeploy.plan.run import out_problem

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        typer.echo(f"--out {out}: cannot create the directory: {err.strerror}", err=True)
        raise typer.Exit(2) from None
    if not os.access(out, os.W_OK | os.X_OK):
        typer.echo(f"--out {out}: the directory is not writable", err=True)
        raise typer.Exit(2)
    problem = out_problem(out)
    if problem:
        typer.echo(f"--out {out}: {problem}", err=True)
        raise typer.Exit(2)
