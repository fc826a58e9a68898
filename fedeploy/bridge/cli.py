"""`fedeploy bridge`: submit, watch and cancel SLURM jobs through a site's bridge."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from fedeploy.bridge.client import ENV_CA, ENV_TOKEN, ENV_URL, ENV_USER, BridgeClient
from fedeploy.bridge.errors import BridgeError
from fedeploy.bridge.jobs import JobSpec, JobStatus

bridge_app = typer.Typer(
    name="bridge",
    help=(
        "Submit, watch and cancel SLURM jobs through a site's bridge. The endpoint, user and "
        f"token come from options or {ENV_URL}, {ENV_USER} and {ENV_TOKEN} (prefer the "
        "variable: an option shows in the process list)."
    ),
    no_args_is_help=True,
    add_completion=False,
)

JobId = Annotated[int, typer.Argument(help="The SLURM job id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the status as JSON.")]


@bridge_app.callback()
def connect(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(envvar=ENV_URL, help="The bridge's endpoint (https://...).")],
    user: Annotated[str, typer.Option(envvar=ENV_USER, help="The service user the token is for.")],
    token: Annotated[
        str, typer.Option(envvar=ENV_TOKEN, help="The user's SLURM token.", show_default=False)
    ],
    ca_file: Annotated[
        Path | None,
        typer.Option(envvar=ENV_CA, help="CA certificate (PEM) of the bridge's TLS listener."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one answer.")] = 60.0,
    retries: Annotated[
        int, typer.Option(min=0, help="Retries of a request on transient errors.")
    ] = 3,
) -> None:
    """Connection options shared by every command."""
    try:
        ctx.obj = BridgeClient(
            url,
            user,
            token,
            ca_file=str(ca_file) if ca_file else None,
            timeout=timeout,
            retries=retries,
        )
    except BridgeError as err:
        _fail(err)
    ctx.call_on_close(ctx.obj.close)


@bridge_app.command()
def submit(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="The batch script ('-' reads standard input).")],
    name: Annotated[str, typer.Option(help="The job's name.")],
    time_limit: Annotated[int, typer.Option("--time", help="Wall-clock limit in minutes.")],
    workdir: Annotated[str, typer.Option(help="Absolute working directory on the cluster.")],
    partition: Annotated[str | None, typer.Option(help="Partition; default: the bridge's.")] = None,
    cpus: Annotated[int, typer.Option(help="CPUs.")] = 1,
    memory: Annotated[int | None, typer.Option(help="Memory per node, MiB.")] = None,
    gpus: Annotated[int, typer.Option(help="GPUs.")] = 0,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="KEY=VALUE for the script (repeat).")
    ] = None,
    stdout: Annotated[str | None, typer.Option(help="Absolute stdout path ('%j': job id).")] = None,
    key: Annotated[
        str | None,
        typer.Option(help="Idempotency key: submitting again with it returns the same job."),
    ] = None,
    wait: Annotated[
        float | None, typer.Option(help="Wait this many seconds for the job to end.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Submit a batch script; prints the job id (and its final status with --wait)."""
    client: BridgeClient = ctx.obj
    text = sys.stdin.read() if str(script) == "-" else _read(script)
    environment = {}
    for item in env or []:
        if "=" not in item:
            _fail(BridgeError(f"--env {item!r}: expected KEY=VALUE"))
        k, v = item.split("=", 1)
        environment[k] = v
    fields: dict[str, Any] = {
        "name": name,
        "script": text,
        "partition": partition,
        "time_limit_minutes": time_limit,
        "cpus": cpus,
        "memory_mb": memory,
        "gpus": gpus,
        "environment": environment,
        "working_directory": workdir,
        "stdout": stdout,
    }
    if key:
        fields["idempotency_key"] = key
    try:
        spec = JobSpec(**fields)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        _fail(BridgeError(f"the job is not valid: {problems}"))
    try:
        job_id = client.submit(spec)
        if wait is None:
            typer.echo(json.dumps({"job_id": job_id}) if as_json else str(job_id))
            return
        status = client.wait(job_id, wait)
    except BridgeError as err:
        _fail(err)
    _print_status(status, as_json)


@bridge_app.command()
def status(ctx: typer.Context, job_id: JobId, as_json: AsJson = False) -> None:
    """Print a job's state, exit code, SLURM's reason and where its output went."""
    _run_and_print(lambda: ctx.obj.status(job_id), as_json)


@bridge_app.command()
def cancel(ctx: typer.Context, job_id: JobId, as_json: AsJson = False) -> None:
    """Cancel a job (retried until SLURM has it) and print its final state."""
    _run_and_print(lambda: ctx.obj.cancel(job_id), as_json)


def _run_and_print(action: Callable[[], JobStatus], as_json: bool) -> None:
    try:
        result = action()
    except BridgeError as err:
        _fail(err)
    _print_status(result, as_json)


def _print_status(result: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(asdict(result) | {"state": result.state.value}, sort_keys=True))
    else:
        typer.echo(result.describe())


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as err:
        _fail(BridgeError(f"cannot read the script {path}: {err.strerror}"))


def _fail(err: BridgeError) -> NoReturn:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(err.exit_code)
