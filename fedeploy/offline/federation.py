"""Plans a whole federation: every stack's program in deployment order, references answered
by the referenced stacks' own plans, then the checks only the whole federation can show."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedeploy.config.loader import STACK_FILE, check_stack_file
from fedeploy.errors import FedeployError, FederationError, StackConfigError
from fedeploy.offline.engine import StackPlan, plan_stack
from fedeploy.references import Reference, deployment_order, references


@dataclass
class FederationPlan:
    """The plan of every stack, how they reference each other, and the problems found."""

    stacks_dir: Path
    sites: dict[str, Any] = field(default_factory=dict)
    plans: dict[str, StackPlan] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)
    order: list[list[str]] = field(default_factory=list)
    errors: list[FedeployError] = field(default_factory=list)
    checked: dict[str, Any] = field(default_factory=dict)  # what `check` returned, per stack
    notes: dict[str, list[Any]] = field(default_factory=dict)  # advisories on each stack file

    @property
    def ok(self) -> bool:
        return not self.errors


def stack_files(stacks_dir: Path) -> dict[str, Path]:
    """Every stack file in the directory, by stack name."""
    files = {}
    for path in sorted(stacks_dir.glob("Pulumi.*.y*ml")):
        match = STACK_FILE.match(path.name)
        if match:
            files[match["stack"]] = path
    return files


def load_federation(stacks_dir: Path, names: list[str] | None = None) -> FederationPlan:
    """Validate the named stacks (all by default) and every stack they read from."""
    plan = FederationPlan(stacks_dir=stacks_dir)
    files = stack_files(stacks_dir)
    wanted = list(names or files)
    for name in wanted:
        if name not in files:
            plan.errors.append(
                FederationError(
                    f"no stack file Pulumi.{name}.yaml in {stacks_dir} (stacks: {', '.join(files)})"
                )
            )
    queue = [n for n in wanted if n in files]
    while queue:
        name = queue.pop(0)
        if name in plan.sites:
            continue
        try:
            loaded = check_stack_file(files[name])
            site = loaded.site
            plan.notes[name] = loaded.notes
        except StackConfigError as err:
            plan.errors.append(err)
            plan.sites[name] = None
            continue
        plan.sites[name] = site
        for ref in references(name, site):
            plan.references.append(ref)
            if ref.target in files and ref.target not in plan.sites:
                queue.append(ref.target)
    for ref in plan.references:
        if ref.target not in files:
            plan.errors.append(
                FederationError(
                    f"stack {ref.stack!r} ({ref.because}) references stack {ref.target!r}, which has no stack file"
                )
            )
    # Invalid sites stay out of the deployment order: they cannot deploy.
    graph: dict[str, set[str]] = {name: set() for name, s in plan.sites.items() if s is not None}
    for ref in plan.references:
        if plan.sites.get(ref.target) is not None:
            graph.setdefault(ref.stack, set()).add(ref.target)
    try:
        plan.order = deployment_order(graph)
    except FederationError as err:
        plan.errors.append(err)
    return plan


Check = Callable[[StackPlan, Any], Any]
MIN_PARALLEL_WAVE = 4
Task = tuple[Path, dict[str, dict[str, Any]], Any, Check | None]


def _plan_one(task: Task) -> tuple[StackPlan, Any] | FedeployError:
    path, refs, site, check = task
    try:
        stack_plan = plan_stack(path, references=refs)
        return stack_plan, check(stack_plan, site) if check is not None else None
    except FedeployError as err:
        return err


def warm_imports() -> None:
    """Load the program and the provider modules it touches once, before workers are forked,
    so no worker pays for the imports again (pulumi_aws loads its modules lazily)."""
    import pulumi_aws as aws
    import pulumi_kubernetes as k8s

    import components.hub
    import components.site
    import components.slurm_bridge  # noqa: F401

    # The SDKs load a package's modules on the first access to one of its classes (a module's
    # __name__ alone loads nothing): touch one class of every package the components use.
    for cls in (
        aws.s3.BucketV2,
        aws.kms.Key,
        aws.iam.Role,
        aws.ec2.Vpc,
        aws.eks.Cluster,
        aws.rds.Instance,
        aws.ssm.Parameter,
        k8s.core.v1.Secret,
        k8s.meta.v1.ObjectMetaArgs,
        k8s.helm.v3.Release,
        k8s.apiextensions.CustomResource,
    ):
        getattr(cls, "__name__", None)
    # Every kind's provider module, and the lazily loaded SDK packages they touch.
    import pulumi_openstack as openstack
    import pulumi_ovh as ovh
    import requests  # noqa: F401  (the chart checks' schema cache)

    from components.providers import PROVIDERS, provider_for

    for kind in sorted(PROVIDERS):
        provider_for(kind)
    for sdk_class in (
        openstack.networking.Network,
        openstack.containerinfra.Cluster,
        openstack.identity.Ec2CredentialV3,
        openstack.compute.Instance,
        openstack.keymanager.SecretV1,
        ovh.cloudproject.Kube,
    ):
        getattr(sdk_class, "__name__", None)


def fork_is_safe() -> bool:
    """False once this process has loaded the Helm library (it rendered charts itself): the Go
    runtime inside it keeps threads a forked child does not inherit, and the child's first chart
    render then hangs for ever. Such a process plans its stacks one after the other."""
    return "helm_python._native" not in sys.modules


def plan_federation(
    stacks_dir: Path,
    names: list[str] | None = None,
    jobs: int | None = None,
    check: Check | None = None,
) -> FederationPlan:
    """Validate, then run every program wave by wave; stacks of one wave may run in parallel.

    `check(stack_plan, site)` runs right after each stack's plan, in the same worker; its
    results land in `checked`."""
    plan = load_federation(stacks_dir, names)
    if plan.errors:
        return plan
    files = stack_files(stacks_dir)
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    pool = None
    # Forking pays off only once a wave holds several stacks: the imports a worker inherits
    # cost less than planning a few stacks, but more than planning one or two.
    if jobs > 1 and max(map(len, plan.order), default=0) >= MIN_PARALLEL_WAVE and fork_is_safe():
        warm_imports()
        # Pulumi's runtime state is process-wide: stacks run side by side in forked processes.
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"))
    try:
        _run_waves(plan, files, pool, check)
    finally:
        if pool is not None:
            pool.shutdown()
    return plan


def _run_waves(
    plan: FederationPlan,
    files: dict[str, Path],
    pool: ProcessPoolExecutor | None,
    check: Check | None,
) -> None:
    for wave in plan.order:
        tasks = []
        for name in wave:
            refs: dict[str, dict[str, Any]] = {}
            for ref in plan.references:
                if ref.stack != name:
                    continue
                outputs = plan.plans[ref.target].outputs
                if ref.output not in outputs:
                    plan.errors.append(
                        FederationError(
                            f"stack {name!r} reads output {ref.output!r} of stack {ref.target!r} "
                            f"({ref.because}), which {ref.target!r} does not export "
                            f"(it exports: {', '.join(sorted(outputs))})"
                        )
                    )
                refs[ref.target] = outputs
            tasks.append((files[name], refs, plan.sites[name], check))
        if plan.errors:
            return
        if pool is None or len(tasks) == 1:
            results = [_plan_one(task) for task in tasks]
        else:
            results = list(pool.map(_plan_one, tasks))
        for name, result in zip(wave, results, strict=True):
            if isinstance(result, FedeployError):
                plan.errors.append(result)
            else:
                plan.plans[name], plan.checked[name] = result
        if plan.errors:
            return
