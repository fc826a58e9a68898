"""Plans a whole federation: every stack's program in deployment order, references answered
by the referenced stacks' own plans, then the checks only the whole federation can show."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedeploy.config.loader import STACK_FILE, load_stack_file
from fedeploy.errors import FedeployError, FederationError, StackConfigError
from fedeploy.network import overlapping
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
    findings: list[Any] = field(default_factory=list)  # fedeploy.checks.Finding

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
            _, site = load_stack_file(files[name])
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
    graph: dict[str, set[str]] = {name: set() for name in plan.sites}
    for ref in plan.references:
        graph.setdefault(ref.stack, set()).add(ref.target)
    try:
        plan.order = deployment_order(graph)
    except FederationError as err:
        plan.errors.append(err)
    _check_address_ranges(plan)
    return plan


def _check_address_ranges(plan: FederationPlan) -> None:
    ranges: dict[str, str] = {}
    for name, site in plan.sites.items():
        if site is None:
            continue
        if site.kind == "aws":
            ranges[f"{name} (network.cidr)"] = site.network.cidr
        cluster = getattr(site, "cluster", None)
        for index, cidr in enumerate(getattr(cluster, "pod_cidrs", None) or []):
            ranges[f"{name} (cluster.pod_cidrs.{index})"] = cidr
    for a, b in overlapping(ranges):
        plan.errors.append(
            FederationError(
                f"address ranges overlap: {a} {ranges[a]} and {b} {ranges[b]}; sites could never be peered"
            )
        )


def _plan_one(args: tuple[Path, dict[str, dict[str, Any]]]) -> StackPlan | FedeployError:
    path, refs = args
    try:
        return plan_stack(path, references=refs)
    except FedeployError as err:
        return err


def plan_federation(
    stacks_dir: Path, names: list[str] | None = None, jobs: int | None = None
) -> FederationPlan:
    """Validate, then run every program wave by wave; stacks of one wave may run in parallel."""
    plan = load_federation(stacks_dir, names)
    if plan.errors:
        return plan
    files = stack_files(stacks_dir)
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
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
            tasks.append((files[name], refs))
        if plan.errors:
            return plan
        for name, result in zip(wave, _run_wave(tasks, jobs), strict=True):
            if isinstance(result, FedeployError):
                plan.errors.append(result)
            else:
                plan.plans[name] = result
        if plan.errors:
            return plan
    return plan


def _run_wave(
    tasks: list[tuple[Path, dict[str, dict[str, Any]]]], jobs: int
) -> list[StackPlan | FedeployError]:
    if jobs <= 1 or len(tasks) <= 1:
        return [_plan_one(task) for task in tasks]
    # Pulumi's runtime state is process-wide: stacks run side by side in forked processes.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context) as pool:
        return list(pool.map(_plan_one, tasks, chunksize=max(1, len(tasks) // (jobs * 4))))
