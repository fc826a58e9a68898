"""`fedeploy bridge`: submit, watch and cancel SLURM jobs through a site's bridge."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

# The client (HTTP) and the job models load when a bridge command runs, not with the CLI:
# every other command (`fedeploy plan` first) would pay for them (0.18 s) at each start.
from fedeploy.bridge.directives import DirectiveError, directive_fields
from fedeploy.bridge.environment import ENV_API_VERSION, ENV_CA, ENV_TOKEN, ENV_URL, ENV_USER
from fedeploy.bridge.errors import BridgeError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from fedeploy.bridge.client import BridgeClient
    from fedeploy.bridge.jobs import JobStatus

bridge_app = typer.Typer(
    name="bridge",
    help=(
        "Submit, watch and cancel SLURM jobs through a site's bridge. The endpoint and the "
        f"user come from options or {ENV_URL} and {ENV_USER}; the token from {ENV_TOKEN} or "
        "--token-file, never an option (the process list would show it)."
    ),
    no_args_is_help=True,
    add_completion=False,
)

JobId = Annotated[int, typer.Argument(help="The SLURM job id.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the status as JSON.")]


class _Connection:
    """The client, made when a command first uses it: `--help` of a command needs no options."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._client: BridgeClient | None = None

    def client(self) -> BridgeClient:
        if self._client is None:
            for name, variable in (("url", ENV_URL), ("user", ENV_USER)):
                if not self._options[name]:
                    typer.echo(
                        f"Error: Missing option '--{name}' (env var: '{variable}').", err=True
                    )
                    raise typer.Exit(2)
            if not self._options["token"]:
                typer.echo(f"Error: no token: set {ENV_TOKEN} or --token-file.", err=True)
                raise typer.Exit(2)
            from fedeploy.bridge.client import BridgeClient

            options = dict(self._options)
            try:
                self._client = BridgeClient(
                    options.pop("url"), options.pop("user"), options.pop("token"), **options
                )
            except BridgeError as err:
                _fail(err)
        return self._client

    def __getattr__(self, name: str) -> Any:  # submit, status, cancel, wait
        return getattr(self.client(), name)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _token(token_file: Path | None) -> str | None:
    """The token from its file, else from the environment: never from the command line."""
    if token_file is None:
        return os.environ.get(ENV_TOKEN) or None
    try:
        return token_file.read_text().strip() or None
    except OSError as err:
        typer.echo(f"Error: --token-file {token_file}: {err.strerror}", err=True)
        raise typer.Exit(2) from None


@bridge_app.callback()
def connect(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(envvar=ENV_URL, help="The bridge's endpoint (https://...).")
    ] = None,
    user: Annotated[
        str | None, typer.Option(envvar=ENV_USER, help="The service user the token is for.")
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help=f"File holding the user's SLURM token (a mounted Secret); else {ENV_TOKEN}.",
            show_default=False,
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(envvar=ENV_CA, help="CA certificate (PEM) of the bridge's TLS listener."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one answer.")] = 60.0,
    retries: Annotated[
        int, typer.Option(min=0, help="Retries of a request on transient errors.")
    ] = 3,
    api_version: Annotated[
        str | None,
        typer.Option(
            envvar=ENV_API_VERSION,
            help="slurmrestd API version to speak (v0.0.38, v0.0.40 ... v0.0.45); default: the "
            "newest both the bridge and this client speak, from its /openapi/v3.",
        ),
    ] = None,
) -> None:
    """Connection options shared by every command (required by every command but --help)."""
    ctx.obj = _Connection(
        url=url,
        user=user,
        token=_token(token_file),
        ca_file=str(ca_file) if ca_file else None,
        timeout=timeout,
        retries=retries,
        api_version=api_version or None,
    )
    ctx.call_on_close(ctx.obj.close)


@bridge_app.command()
def submit(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="The batch script ('-' reads standard input).")],
    name: Annotated[
        str | None, typer.Option(help="The job's name (or #SBATCH --job-name in the script).")
    ] = None,
    time_limit: Annotated[
        int | None,
        typer.Option("--time", help="Wall-clock limit in minutes (or #SBATCH --time)."),
    ] = None,
    workdir: Annotated[
        str | None,
        typer.Option(help="Absolute working directory on the cluster (or #SBATCH --chdir)."),
    ] = None,
    partition: Annotated[str | None, typer.Option(help="Partition; default: the bridge's.")] = None,
    cpus: Annotated[int | None, typer.Option(help="CPUs (default 1).")] = None,
    memory: Annotated[int | None, typer.Option(help="Memory per node, MiB.")] = None,
    gpus: Annotated[int | None, typer.Option(help="GPUs (default 0).")] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="KEY=VALUE for the script (repeat).")
    ] = None,
    stdout: Annotated[str | None, typer.Option(help="Absolute stdout path ('%j': job id).")] = None,
    key: Annotated[
        str | None,
        typer.Option(help="Idempotency key: submitting again with it returns the same job."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Look for a job with --key among all jobs first, finished ones included (for a "
            "caller restarting after its job may have ended; lists every job on the controller).",
        ),
    ] = False,
    wait: Annotated[
        float | None, typer.Option(help="Wait this many seconds for the job to end.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Submit a batch script; prints the job id (and its final status with --wait).

    The script's #SBATCH lines for --job-name, --partition, --time, --cpus-per-task, --mem,
    --gpus, --output, --error, --chdir, --account, --qos (and --ntasks/--nodes of 1) fill the
    job; any other #SBATCH line is refused, naming it. An option given here and set differently
    by a line is refused too."""
    client: BridgeClient = ctx.obj
    text = _read_stdin() if str(script) == "-" else _read(script)
    if wait is not None and not (math.isfinite(wait) and wait >= 0):
        _fail(BridgeError(f"--wait must be a number of seconds, 0 or more, got {wait}"))
    environment: dict[str, str] = {}
    for item in env or []:
        if "=" not in item:
            _fail(BridgeError(f"--env {item!r}: expected KEY=VALUE"))
        k, v = item.split("=", 1)
        if k in environment and environment[k] != v:
            _fail(BridgeError(f"--env {k} is given twice with different values: keep one"))
        environment[k] = v
    given: dict[str, Any] = {
        "name": name,
        "partition": partition,
        "time_limit_minutes": time_limit,
        "cpus": cpus,
        "memory_mb": memory,
        "gpus": gpus,
        "working_directory": workdir,
        "stdout": stdout,
        "idempotency_key": key,
    }
    fields: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    fields["script"] = text
    if environment:
        fields["environment"] = environment
    if resume and not key:
        _fail(BridgeError("--resume needs --key: the key names the job to look for"))
    from pydantic import ValidationError

    from fedeploy.bridge.jobs import JobSpec

    try:
        spec = JobSpec(**fields)
    except ValidationError as err:
        _fail(BridgeError(f"the job is not valid: {_problems(err, _directive_lines(text))}"))
    try:
        job_id = client.submit(spec, resume=resume)
        if wait is None:
            typer.echo(json.dumps({"job_id": job_id}) if as_json else str(job_id))
            return
        status = client.wait(job_id, wait)
    except BridgeError as err:
        _fail(err)
    _print_status(status, as_json)


_OPTION_OF = {"name": "--name", "time_limit_minutes": "--time", "working_directory": "--workdir"}


def _directive_lines(script: str) -> dict[str, str]:
    """Field -> the script line that set it, for naming the line in a field's error."""
    try:
        return {field: d.where() for field, (_, d) in directive_fields(script).items()}
    except DirectiveError:  # reported by the job spec itself
        return {}


def _problems(err: ValidationError, lines: dict[str, str] | None = None) -> str:
    """One line per problem: the field (or none, for the script's directives) and the words;
    a field an #SBATCH line set also names that line."""
    problems = []
    for error in err.errors():
        where = ".".join(map(str, error["loc"]))
        if where in (lines or {}):
            where = f"{where} ({(lines or {})[where]})"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            option = _OPTION_OF.get(where, where)
            message = f"missing (give {option} or an #SBATCH line)"
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


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
        return path.read_text(encoding="utf-8")
    except OSError as err:
        _fail(BridgeError(f"cannot read the script {path}: {err.strerror}"))
    except UnicodeDecodeError:
        _fail(BridgeError(f"cannot read the script {path}: it is not UTF-8 text (a binary?)"))


def _read_stdin() -> str:
    try:
        return sys.stdin.read()
    except UnicodeDecodeError:
        _fail(BridgeError("cannot read the script from standard input: it is not UTF-8 text"))


def _fail(err: BridgeError) -> NoReturn:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(err.exit_code)
