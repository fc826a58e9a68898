"""The Pulumi program of every stack: validate the site config, then build the site or the hub.

`pulumi up` runs it through `__main__.py`; `fedeploy plan` and the tests run the same function
in-process under Pulumi's mock runtime."""

from __future__ import annotations

import contextvars
import json
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.config import is_config_secret

from fedeploy.config.loader import PROJECT, SITE_KEY, validate_site
from fedeploy.references import references

STACKS_DIR = Path("stacks")
# True while the offline plan runs the program (fedeploy.offline.engine sets it in the stack's
# own context); otherwise the program is being deployed, and pending secrets are refused.
OFFLINE_PLAN: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "fedeploy_offline_plan", default=False
)


def load_site(stack: str, stacks_dir: Path) -> Any:
    """The validated site config of the running stack; raises StackConfigError before any resource."""
    text = pulumi.Config(PROJECT).get("site")
    try:
        raw = json.loads(text) if text is not None else None
    except json.JSONDecodeError:
        raw = text  # a plain string: validate_site says what it should be
    return validate_site(
        raw,
        stack_file=str(stacks_dir / f"Pulumi.{stack}.yaml"),
        stacks_dir=stacks_dir if stacks_dir.is_dir() else None,
        stack=stack,
        secrets_decrypted=is_config_secret(SITE_KEY),
        deploying=not OFFLINE_PLAN.get(),
    )


def build(stacks_dir: Path = STACKS_DIR) -> dict[str, pulumi.Output[Any]]:
    """Register the stack's resources and return the outputs it exports (its contract)."""
    # Imported here so that config validation (and its errors) never waits on provider SDKs.
    from components.hub import Hub
    from components.site import Site
    from fedeploy.images.lock import load_lock

    stack = pulumi.get_stack()
    site = load_site(stack, stacks_dir)
    load_lock()  # a broken images.lock.yaml stops the stack before any resource
    stack_refs: dict[str, pulumi.StackReference] = {}
    referenced: dict[str, dict[str, pulumi.Output[Any]]] = {}
    for ref in references(stack, site):
        if ref.target not in stack_refs:
            stack_refs[ref.target] = pulumi.StackReference(
                f"{pulumi.get_organization()}/{pulumi.get_project()}/{ref.target}"
            )
        outputs = referenced.setdefault(ref.target, {})
        outputs[ref.output] = stack_refs[ref.target].require_output(ref.output)
    if site.kind == "hub":
        hub = Hub(stack, site, members=referenced)
        return {**hub.contract}
    member = Site(stack, site, referenced=referenced)
    exports = dict(member.contract)
    if member.provisioned_kubeconfig is not None:  # a cluster this stack created
        exports["kubeconfig"] = pulumi.Output.secret(member.provisioned_kubeconfig)
    return exports


def main() -> None:
    """Entry point of `pulumi up`: errors in the stack file end the run without a traceback."""
    from fedeploy.errors import FedeployError

    try:
        exports = build()
    except FedeployError as err:
        raise pulumi.RunError(str(err)) from None
    for name, value in exports.items():
        pulumi.export(name, value)
