"""Plans one stack offline: its real program, run in-process under Pulumi's mock runtime.

No CLI, no plugins, no credentials: provider answers are deterministic stand-ins, `secure:`
values are unknown secrets, and StackReferences answer with the referenced stacks' own plans."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedeploy.errors import FedeployError, ProgramError

SECRET = "[secret]"
UNKNOWN = "[unknown]"
_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a secret value on the wire
_UNKNOWN_WIRE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


@dataclass
class Resource:
    """One resource the program registered, with its inputs as the engine saw them."""

    type: str
    name: str
    inputs: dict[str, Any]
    provider: str | None
    custom: bool
    secret_paths: list[str] = field(default_factory=list)


@dataclass
class StackPlan:
    """Everything the program of one stack did under the mocks."""

    stack: str
    resources: list[Resource]
    outputs: dict[str, Any]
    secret_outputs: list[str]
    logs: list[str]

    def by_type(self, typ: str) -> list[Resource]:
        return [r for r in self.resources if r.type == typ]


def reveal(value: Any, path: str = "", secret_paths: list[str] | None = None) -> Any:
    """Unwrap the wire form of inputs: secrets become SECRET (their paths noted), unknowns UNKNOWN."""
    if isinstance(value, dict):
        if value.get(_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            if secret_paths is not None:
                secret_paths.append(path)
            return SECRET
        return {k: reveal(v, f"{path}.{k}" if path else k, secret_paths) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v, f"{path}[{i}]", secret_paths) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == _UNKNOWN_WIRE:
        return UNKNOWN
    return value


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of a mock input (output types are dict subclasses)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _Mocks:
    def __init__(self, region: str, references: dict[str, dict[str, Any]], stack: str):
        self.region = region
        self.references = references
        self.stack = stack
        self.resources: list[Resource] = []

    def new_resource(self, args: Any) -> tuple[str | None, dict[str, Any]]:
        from fedeploy.offline import standins

        inputs = _plain(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            target = str(inputs.get("name", args.name)).rsplit("/", 1)[-1]
            if target not in self.references:
                raise ProgramError(
                    f"stack {self.stack!r} references stack {target!r}, which was not planned"
                )
            self.resources.append(Resource(args.typ, args.name, {"name": target}, None, True))
            return target, {
                "name": target,
                "outputs": self.references[target],
                "secretOutputNames": [],
            }
        secret_paths: list[str] = []
        shown = reveal(inputs, secret_paths=secret_paths)
        self.resources.append(
            Resource(args.typ, args.name, shown, args.provider, bool(args.custom), secret_paths)
        )
        if not args.custom:
            return None, {}
        return (
            standins.resource_id(args.typ, args.name, inputs),
            standins.outputs(args.typ, args.name, inputs, self.region),
        )

    def call(self, args: Any) -> dict[str, Any]:
        raise ProgramError(
            f"the program called the provider function {args.token!r}, which the offline plan "
            "cannot answer; compute it from config or resource outputs instead"
        )


def _monitor(mocks: _Mocks) -> Any:
    """Pulumi's mock monitor, which keeps the last of two resources with one URN, made to note
    each URN registered twice (`duplicates`), as the real engine refuses them."""
    import threading

    from pulumi.runtime.mocks import MockMonitor

    class Monitor(MockMonitor):
        def __init__(self) -> None:
            super().__init__(mocks)  # type: ignore[arg-type]  # duck-typed as in set_mocks
            self.duplicates: list[str] = []
            self._seen: set[str] = set()
            self._lock = threading.Lock()  # registrations arrive on the SDK's worker threads

        def RegisterResource(self, request: Any) -> Any:  # noqa: N802  (the gRPC method's name)
            urn = self.make_urn(request.parent, request.type, request.name)
            with self._lock:
                if urn in self._seen:
                    self.duplicates.append(urn)
                self._seen.add(urn)
            return super().RegisterResource(request)

    return Monitor()


class _LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname.lower()}: {record.getMessage()}")


def _config_values(raw_config: dict[str, Any]) -> dict[str, str]:
    """Stack config as the CLI passes it: strings as they are, everything else as JSON."""
    values: dict[str, str] = {}
    for key, value in raw_config.items():
        if ":" not in str(key):
            continue
        values[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return values


def _no_source_positions() -> Any:
    """Stop the SDK recording where in the program each resource was made (it walks and
    formats the whole Python stack for every resource: about 4% of a stack's plan) for a mock
    run, whose monitor never reads it; returns what `_source_positions` puts back."""
    from pulumi.runtime import resource
    from pulumi.runtime.proto import source_pb2

    traced = resource._get_stack_trace
    resource._get_stack_trace = source_pb2.StackTrace  # no frames: no source position
    return traced


def _source_positions(traced: Any) -> None:
    """Put back the SDK's recording of source positions (`_no_source_positions`)."""
    from pulumi.runtime import resource

    resource._get_stack_trace = traced


# The StackReference methods that read one output by name (guarded during a plan).
_OUTPUT_READS = ("get_output", "require_output", "get_output_details")


def _listed_outputs_only(stack: str, references: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Make reading an output of a planned stack that `references` does not hold (the outputs
    fedeploy/references.py lists for `stack`) a ProgramError naming both stacks and the output,
    for the plan's duration; returns what `_all_outputs` puts back. The mock answers a
    StackReference with the listed outputs only, so without this `get_output` would read an
    unlisted one as None and `require_output` fail with a bare KeyError."""
    import pulumi

    saved = {name: getattr(pulumi.StackReference, name) for name in _OUTPUT_READS}

    def guarded(read: Any) -> Any:
        def listed_only(self: Any, name: Any, *args: Any, **kwargs: Any) -> Any:
            target = str(getattr(self, "_name", "")).rsplit("/", 1)[-1]
            listed = references.get(target)
            if listed is not None and isinstance(name, str) and name not in listed:
                raise ProgramError(
                    f"stack {stack!r} reads output {name!r} of stack {target!r}, which "
                    f"fedeploy/references.py does not list among the outputs {stack!r} reads "
                    f"(it lists: {', '.join(sorted(listed)) or 'none'}); add it there: the list "
                    "orders the deployment, drives `fedeploy affected` and keys the plan's cache"
                )
            return read(self, name, *args, **kwargs)

        return listed_only

    for name, read in saved.items():
        setattr(pulumi.StackReference, name, guarded(read))
    return saved


def _all_outputs(saved: dict[str, Any]) -> None:
    """Put back the StackReference methods `_listed_outputs_only` guarded."""
    import pulumi

    for name, read in saved.items():
        setattr(pulumi.StackReference, name, read)


def plan_stack(
    stack_file: Path,
    *,
    references: dict[str, dict[str, Any]] | None = None,
    config_override: dict[str, Any] | None = None,
    secret_keys: list[str] | None = None,
) -> StackPlan:
    """Run the program of `stack_file` under the mocks; raises FedeployError on any failure.

    `config_override` replaces keys of the stack file's config; `secret_keys` marks config keys
    as secret, as the CLI does for a key that holds a decrypted `secure:` value. A raised error
    carries `resources_registered`: how many resources the program had registered by then."""
    ctx = contextvars.Context()
    return ctx.run(
        _plan_in_context, stack_file, references or {}, config_override, secret_keys or []
    )


def _plan_in_context(
    stack_file: Path,
    references: dict[str, dict[str, Any]],
    config_override: dict[str, Any] | None,
    secret_keys: list[str],
) -> StackPlan:
    import pulumi
    import yaml
    from pulumi.runtime import settings
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from fedeploy import program
    from fedeploy.config.loader import PROJECT, stack_name_of

    program.OFFLINE_PLAN.set(True)  # this stack's own context: pending secrets are allowed
    stack = stack_name_of(stack_file)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, as config/loader.py
    document = yaml.load(stack_file.read_text(), Loader=loader) or {}
    raw_config = dict(document.get("config") or {})
    if config_override is not None:
        raw_config.update(config_override)
    site = raw_config.get(f"{PROJECT}:site")
    region = (site or {}).get("region") if isinstance(site, dict) else None
    mocks = _Mocks(region or "eu-central-1", references, stack)
    monitor = _monitor(mocks)
    collector = _LogCollector()
    logger = logging.getLogger(f"fedeploy.offline.{stack}")
    logger.propagate = False
    logger.handlers = [collector]
    logger.setLevel(logging.DEBUG)

    # A fresh event loop per stack: the runtime keeps futures bound to the loop they were made on.
    # The caller's loop is put back afterwards (tests and other mock runs use theirs).
    policy = asyncio.get_event_loop_policy()
    try:
        previous: asyncio.AbstractEventLoop | None = policy.get_event_loop()
    except RuntimeError:
        previous = None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    traced = _no_source_positions()
    reads = _listed_outputs_only(stack, references)
    try:
        pulumi.runtime.set_mocks(
            mocks,  # type: ignore[arg-type]  # duck-typed: the SDK only calls its two methods
            project=PROJECT,
            stack=stack,
            preview=False,
            logger=logger,
            monitor=monitor,
        )
        pulumi.runtime.set_all_config(_config_values(raw_config), secret_keys)
        settings.SETTINGS.rpc_manager.clear()  # type: ignore[attr-defined]
        resolved: dict[str, tuple[Any, bool, bool]] = {}

        def run() -> None:
            exports = program.build(stack_file.parent)

            async def resolve() -> None:
                for key, value in sorted(exports.items()):
                    out = pulumi.Output.from_input(value)
                    plain = await out.future(with_unknowns=True)
                    resolved[key] = (plain, await out.is_secret(), await out.is_known())

            _sync_await(resolve())

        _sync_await(run_pulumi_func(run))
        if monitor.duplicates:
            raise ProgramError(
                f"{stack_file}: two resources share the URN {monitor.duplicates[0]}: "
                "`pulumi up` refuses a duplicate URN; give one of them another name"
            )
    except FedeployError as err:
        err.resources_registered = len(mocks.resources)  # type: ignore[attr-defined]
        raise
    except Exception as err:  # the program's own failure, reported with its stack's name
        failure = ProgramError(f"{stack_file}: the program failed: {type(err).__name__}: {err}")
        failure.resources_registered = len(mocks.resources)  # type: ignore[attr-defined]
        raise failure from err
    finally:
        _source_positions(traced)
        _all_outputs(reads)
        asyncio.set_event_loop(previous)
        loop.close()

    outputs: dict[str, Any] = {}
    secret: list[str] = []
    for key, (value, is_secret, known) in resolved.items():
        if is_secret:
            secret.append(key)
            outputs[key] = SECRET
        elif not known:
            outputs[key] = UNKNOWN
        else:
            outputs[key] = _plain(value)
    return StackPlan(stack, mocks.resources, outputs, secret, collector.lines)
