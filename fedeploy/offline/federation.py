"""Plans a whole federation: every stack's program in deployment order, references answered
by the referenced stacks' own plans, then the checks only the whole federation can show."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedeploy.config.loader import (
    STACK_FILE,
    check_stack_file,
    listed_once,
    stray_stack_files,
)
from fedeploy.errors import FedeployError, FederationError, StackConfigError
from fedeploy.images.lock import ImageLockError, load_lock
from fedeploy.offline.cache import PlanCache
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
    from_cache: set[str] = field(default_factory=set)  # stacks whose plans the cache answered

    @property
    def ok(self) -> bool:
        return not self.errors


def stack_files(stacks_dir: Path) -> dict[str, Path]:
    """Every stack file in the directory, by stack name."""
    files = {}
    for path in sorted(stacks_dir.glob("Pulumi.*.yaml")):
        match = STACK_FILE.match(path.name)
        if match:
            files[match["stack"]] = path
    return files


def load_federation(stacks_dir: Path, names: list[str] | None = None) -> FederationPlan:
    """Validate the named stacks (all by default) and every stack they read from."""
    plan = FederationPlan(stacks_dir=stacks_dir)
    try:
        load_lock()  # every stack pins its images from it: a broken lock is one error, first
    except ImageLockError as err:
        plan.errors.append(err)
        return plan
    files = stack_files(stacks_dir)
    wanted = list(names or files)
    plan.errors += [FederationError(stray) for stray in stray_stack_files(stacks_dir)]
    for name in wanted:
        if name not in files:
            plan.errors.append(
                FederationError(
                    f"no stack file Pulumi.{name}.yaml in {stacks_dir} (stacks: {', '.join(files)})"
                )
            )
    queue = [n for n in wanted if n in files]
    with listed_once():  # the directory listed once per load, not twice per stack
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
Result = tuple[StackPlan, Any] | FedeployError  # a stack's plan and its checks, or its error


def _plan_one(task: Task) -> Result:
    path, refs, site, check = task
    # A stack's plan makes a few hundred thousand objects, most alive until it ends (Pulumi's
    # outputs, Helm's manifests): the collector's passes over them in between found little and
    # took about a tenth of a stack's time. Its garbage is collected once, after it.
    with collector_paused():
        try:
            stack_plan = plan_stack(path, references=refs)
            return stack_plan, check(stack_plan, site) if check is not None else None
        except FedeployError as err:
            return err


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (if it was on), back on after it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def warm_imports() -> None:
    """Load the program and the provider modules it touches once, before workers are forked,
    so no worker pays for the imports again (the SDKs load their modules lazily)."""
    import pulumi_kubernetes as k8s
    import requests  # noqa: F401  (the chart checks' schema cache)

    import components.hub
    import components.kube_core
    import components.site
    import components.slurm_bridge  # noqa: F401
    from components.providers import warm_provider_sdks

    # The SDK loads a package's modules on the first access to one of its classes (a module's
    # __name__ alone loads nothing): touch one class of every package the components use. Not
    # core/v1 nor discovery/v1: components/kube_core.py stands in for the four kinds used from
    # them (it imports meta/v1, touched here too), and loading them would only cost time.
    for cls in (
        k8s.meta.v1.ObjectMetaArgs,
        k8s.helm.v3.Release,
        k8s.apiextensions.CustomResource,
    ):
        getattr(cls, "__name__", None)
    warm_provider_sdks()


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
    cache: PlanCache | None = None,
) -> FederationPlan:
    """Validate, then run every stack's program as soon as every stack it reads from is planned;
    with `jobs` > 1 several at once, each in a forked process, those on the longest chain of
    references first.

    The result does not depend on what ran when: it is the plan wave by wave (`order`) would
    give. The first wave with a problem ends it: that wave's problems are reported in wave order,
    and no later wave is reported (a failing stack stops every stack that reads it, and the
    planner starts no stack the report could no longer show). `check(stack_plan, site)` runs
    right after each stack's plan, in the same worker; its results land in `checked`.

    With a `cache`, a stack whose key (its stack file, the outputs it reads, the code) is kept
    there is not planned again, and each stack planned is kept."""
    plan = load_federation(stacks_dir, names)
    if plan.errors:
        return plan
    files = stack_files(stacks_dir)
    known = _cached(plan, files, cache, check)
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    pool: ProcessPoolExecutor | None = None
    # Forking pays off only once a wave holds several stacks: the imports a worker inherits
    # cost less than planning a few stacks, but more than planning one or two.
    left = [[name for name in wave if name not in known] for wave in plan.order]
    if jobs > 1 and max(map(len, left), default=0) >= MIN_PARALLEL_WAVE and fork_is_safe():
        _prepare_fork()
        # Pulumi's runtime state is process-wide: stacks run side by side in forked processes.
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork"))
    try:
        if pool is not None:
            results = _run_stacks(plan, files, pool, jobs, check, known, cache)
        else:
            # Here, the collector stays paused while the stacks are planned (_InProcess runs
            # it every COLLECT_EVERY stacks), and what they leave goes to its oldest generation.
            _collect_what_a_plan_left()
            with collector_paused():
                results = _run_stacks(plan, files, _InProcess(), 1, check, known, cache)
                _young_to_oldest()
    finally:
        if pool is not None:
            pool.shutdown()
    if cache is not None and cache.written:
        cache.prune()
    _gather(plan, results)
    return plan


def _cached(
    plan: FederationPlan, files: Mapping[str, Path], cache: PlanCache | None, check: Check | None
) -> dict[str, Result]:
    """The stacks whose plans the cache holds, wave by wave: a stack is looked up once every
    stack it reads is known (from the cache too), with the outputs they export."""
    known: dict[str, Result] = {}
    if cache is None:
        return known
    planned: dict[str, StackPlan] = {}
    for wave in plan.order:
        for name in wave:
            reads = {ref.target for ref in plan.references if ref.stack == name}
            if not reads <= planned.keys():
                continue
            refs, problems = _reference_inputs(plan, name, planned)
            if problems:
                continue
            hit = cache.get(cache.key(files[name], refs, check))
            if hit is not None:
                known[name] = hit
                planned[name] = hit[0]
                plan.from_cache.add(name)
    return known


def _prepare_fork() -> None:
    """Import the SDKs with the cyclic garbage collector paused (the imports make hundreds of
    thousands of objects, none of them garbage, and each collection in between walks them all),
    then freeze what is there: the workers inherit it without their collector walking it again
    or touching (and so copying) its pages. It stays frozen in this process too: nearly all of it
    is the SDKs' modules, alive until exit, and the interpreter's final collections walked them
    for over a second after every plan."""
    with collector_paused():
        warm_imports()
    freeze_imports()


def freeze_imports() -> None:
    """gc.freeze: what the collector tracks now (the SDKs' modules, imported before workers are
    forked) is never walked again, here or in the forked children. Recorded, so that
    _young_to_oldest leaves it frozen (gc.get_freeze_count walks it all to count it: 0.05 s in
    a `--watch` planner)."""
    global _frozen
    # An earlier plan here (--jobs 1) left its garbage to the oldest generation: collect it
    # first, or freezing would keep it for the life of the process.
    _collect_what_a_plan_left()
    gc.freeze()
    _frozen = True


_frozen = False  # whether this process (or the one it was forked from) called freeze_imports


def _young_to_oldest() -> None:
    """Move the objects the collector tracks into its oldest generation without walking them
    (gc.freeze then gc.unfreeze), unless anything is frozen here already (freeze_imports', or
    the calling program's own gc.freeze: they stay frozen). The
    stacks planned in this process leave a few hundred thousand objects, nearly all alive until
    the report, many of them the SDK modules their programs imported: the collector's first
    passes after each stack walked them (0.2 s of a one-site change's plan) to find a few
    thousand garbage cycles, which the next full collection finds instead."""
    global _left
    # Nor where the program that called the planner froze objects of its own: gc.unfreeze
    # would undo that freeze. Counting them walks them, so only where freeze_imports did not
    # run (the command's planner froze nothing of its own: 0 there, at no cost).
    if not _frozen and gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()
        _left = True


_left = False  # whether _young_to_oldest moved a plan's objects, garbage unfound, since


def _collect_what_a_plan_left() -> None:
    """A full collection where an earlier plan in this process left its objects to the oldest
    generation (_young_to_oldest): no collection counts them, so a process planning again and
    again (tests, a library) would otherwise keep every plan's garbage (17 MB more after each
    plan of the example, eight in a row). A process's first plan pays nothing."""
    global _left
    if _left:
        gc.collect()
        _left = False


# In this process, the collector runs once per so many stacks planned (plan_federation pauses
# it for all of them): a stack's program and checks leave some 10,000 objects of cyclic garbage.
COLLECT_EVERY = 8


class _InProcess:
    """Runs each task at once in this process: the executor where no worker may be forked.
    The collector, paused by plan_federation, collects the young generations before every
    COLLECT_EVERY-th stack after the first."""

    def __init__(self) -> None:
        self._started = 0

    def submit(self, fn: Callable[[Task], Result], task: Task) -> Future[Result]:
        if self._started and self._started % COLLECT_EVERY == 0:
            gc.collect(1)  # the garbage of the stacks since the last
        self._started += 1
        future: Future[Result] = Future()
        future.set_result(fn(task))
        return future


def chain_lengths(order: list[list[str]], reads: Mapping[str, set[str]]) -> dict[str, int]:
    """For each stack, how many stacks the longest chain of references through it holds: the
    stacks it reads (transitively), itself, and the stacks that read it (transitively).

    `order` is the deployment order (waves; each stack reads only stacks of earlier waves),
    `reads` maps each stack of it to the stacks it reads. The stacks with the longest chains
    bound the federation's planning time, so they start first."""
    upstream: dict[str, int] = {}
    downstream: dict[str, int] = {}
    readers: dict[str, set[str]] = {name: set() for wave in order for name in wave}
    for name, targets in reads.items():
        for target in targets:
            readers[target].add(name)
    for wave in order:
        for name in wave:
            upstream[name] = 1 + max((upstream[t] for t in reads.get(name, ())), default=0)
    for wave in reversed(order):
        for name in wave:
            downstream[name] = 1 + max((downstream[r] for r in readers[name]), default=0)
    return {name: upstream[name] + downstream[name] - 1 for name in upstream}


def _reference_inputs(
    plan: FederationPlan, name: str, planned: Mapping[str, StackPlan]
) -> tuple[dict[str, dict[str, Any]], list[FedeployError]]:
    """The outputs of each stack `name` reads (only those: its StackReferences answer with them
    alone, so a change to an output it does not read neither replans it nor costs its program
    the SDK's deep copy of every output at each `require_output`), and an error for each output
    it reads that the stack does not export."""
    refs: dict[str, dict[str, Any]] = {}
    errors: list[FedeployError] = []
    for ref in plan.references:
        if ref.stack != name:
            continue
        outputs = planned[ref.target].outputs
        read = refs.setdefault(ref.target, {})
        if ref.output in outputs:
            read[ref.output] = outputs[ref.output]
        else:
            errors.append(
                FederationError(
                    f"stack {name!r} reads output {ref.output!r} of stack {ref.target!r} "
                    f"({ref.because}), which {ref.target!r} does not export "
                    f"(it exports: {', '.join(sorted(outputs))})"
                )
            )
    return refs, errors


def _run_stacks(
    plan: FederationPlan,
    files: dict[str, Path],
    executor: ProcessPoolExecutor | _InProcess,
    slots: int,
    check: Check | None,
    known: Mapping[str, Result] | None = None,
    cache: PlanCache | None = None,
) -> dict[str, Result]:
    """Plan each stack once every stack it reads is planned, at most `slots` at a time, the
    longest chains first; the result (a plan and its checks, or the error) of each stack run.
    Stacks in `known` are not run (their results as given); with a `cache`, a stack found
    there when its turn comes is not run either, and each stack run is kept there.

    A stack whose wave the report can no longer reach is not started: after a failing stack,
    any stack of a later wave; after a stack reading an output that is not there, any stack of
    its wave or later (see `_gather`)."""
    wave_of = {name: index for index, wave in enumerate(plan.order) for name in wave}
    reads: dict[str, set[str]] = {name: set() for name in wave_of}
    for ref in plan.references:
        if ref.stack in reads:
            reads[ref.stack].add(ref.target)
    chain = chain_lengths(plan.order, reads)
    results: dict[str, Result] = dict(known or {})
    planned = {name: r[0] for name, r in results.items() if not isinstance(r, FedeployError)}
    waiting = sorted(
        (name for name in wave_of if name not in results),
        key=lambda name: (-chain[name], wave_of[name], name),
    )
    last_wave = len(plan.order) - 1  # the last wave the report can still reach
    running: dict[Future[Result], str] = {}
    keys: dict[str, str] = {}
    while True:
        found = True
        while found:  # a stack found in the cache may make the stacks that read it ready
            found = False
            for name in list(waiting):
                if len(running) >= slots:
                    break
                if wave_of[name] > last_wave:
                    waiting.remove(name)
                elif reads[name] <= planned.keys():
                    waiting.remove(name)
                    refs, problems = _reference_inputs(plan, name, planned)
                    if problems:
                        last_wave = min(last_wave, wave_of[name] - 1)
                        continue
                    if cache is not None:
                        keys[name] = cache.key(files[name], refs, check)
                        hit = cache.get(keys[name])
                        if hit is not None:
                            results[name], planned[name], found = hit, hit[0], True
                            plan.from_cache.add(name)
                            continue
                    task = (files[name], refs, plan.sites[name], check)
                    running[executor.submit(_plan_one, task)] = name
        if not running:
            return results
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            name = running.pop(future)
            result = results[name] = future.result()
            if isinstance(result, FedeployError):
                last_wave = min(last_wave, wave_of[name])
            else:
                planned[name] = result[0]
                if cache is not None:
                    cache.put(keys[name], result)


def _gather(plan: FederationPlan, results: Mapping[str, Result]) -> None:
    """Record the results wave by wave, up to the first wave with a problem: a reference to an
    output that is not there (that wave's stacks are then not reported) or a stack that failed."""
    for wave in plan.order:
        for name in wave:
            plan.errors.extend(_reference_inputs(plan, name, plan.plans)[1])
        if plan.errors:
            return
        for name in wave:
            result = results[name]
            if isinstance(result, FedeployError):
                plan.errors.append(result)
            else:
                plan.plans[name], plan.checked[name] = result
        if plan.errors:
            return
