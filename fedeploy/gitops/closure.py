"""The pure decisions of `fedeploy affected`: from touched paths to affected sites, the closure
over contracts other stacks read, and the waves to deploy them in.

No git, no files, no plans here: what the plans say comes in as values or callables, so the
rules are tested on plain data."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fedeploy.gitops.git_tree import Change
from fedeploy.gitops.path_rules import Touch
from fedeploy.gitops.planned_sites import PlannedFederation
from fedeploy.references import Reference, deployment_order

DESTROY_BY_HAND = (
    "its resources stay until someone runs `pulumi destroy` and `pulumi stack rm` for it"
)


@dataclass(frozen=True)
class SiteInfo:
    """What a pipeline needs to know of a stack: kind, environment (for approvals), region."""

    name: str
    kind: str
    environment: str
    region: str | None = None
    bridge: bool = False


@dataclass(frozen=True)
class ContractDiff:
    """Which outputs of a site differ between base and head; `everything` when it cannot tell."""

    outputs: frozenset[str] = frozenset()
    everything: bool = False
    note: str = ""


@dataclass
class Decision:
    """Affected sites with their reasons, removed sites, and the paths that touch nothing."""

    reasons: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)

    def add(self, site: str, reason: str) -> None:
        found = self.reasons.setdefault(site, [])
        if reason not in found:
            found.append(reason)


def _paths(paths: list[str]) -> str:
    more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
    return f"{paths[0]}{more}"


def direct_effects(
    touched: Iterable[tuple[Change, Touch]],
    sites: dict[str, SiteInfo],
    head_plan: Callable[[], PlannedFederation],
) -> Decision:
    """Sites each path affects by itself; `head_plan` is called only for charts and services."""
    decision = Decision()
    grouped: dict[Touch, list[str]] = {}
    for change, touch in touched:
        if touch.scope == "nothing":
            decision.ignored[change.path] = touch.why
        elif touch.scope == "stack":
            _stack_effect(decision, change, touch.name, sites)
        else:
            grouped.setdefault(touch, []).append(change.path)
    for touch, paths in sorted(grouped.items(), key=lambda item: item[1][0]):
        changed = f"{_paths(paths)} changed"
        if touch.scope == "every":
            for name in sites:
                decision.add(name, f"{changed}: {touch.why}")
        elif touch.scope == "bridges":
            for name, site in sites.items():
                if site.bridge:
                    decision.add(name, f"{changed}: the site has a SLURM bridge")
        elif touch.scope == "chart":
            for name, planned in head_plan().sites.items():
                if touch.name in planned.charts:
                    decision.add(name, f"{changed}: the site releases chart {touch.name}")
        elif touch.scope == "service":
            for name, planned in head_plan().sites.items():
                if touch.name in planned.images:
                    decision.add(name, f"{changed}: the site runs image {touch.name}")
                elif planned.unrendered_releases:
                    decision.add(
                        name, f"{changed}: a release of the site did not render, assumed to run it"
                    )
    return decision


def _stack_effect(
    decision: Decision, change: Change, name: str, sites: dict[str, SiteInfo]
) -> None:
    if name in sites:
        verb = "added" if change.status == "A" else "changed"
        decision.add(name, f"{change.path} {verb}")
    else:
        decision.removed[name] = f"{change.path} deleted: {DESTROY_BY_HAND}"


def close_over_contracts(
    decision: Decision,
    references: Iterable[Reference],
    contract_diff: Callable[[str], ContractDiff],
) -> None:
    """Add every stack that reads an output which changes, transitively, in place.

    `contract_diff(site)` is asked only about affected sites that a not-yet-affected stack
    reads, so a change that already affects every reader never plans anything."""
    refs = sorted(set(references))
    queue = sorted(decision.reasons)
    while queue:
        site = queue.pop(0)
        readers = [r for r in refs if r.target == site and r.stack not in decision.reasons]
        if not readers:
            continue
        diff = contract_diff(site)
        for ref in readers:
            if ref.stack in decision.reasons:
                continue  # reached through an earlier output of the same site
            if diff.everything or ref.output in diff.outputs:
                note = f" ({diff.note})" if diff.note else ""
                decision.add(ref.stack, f"reads {site}.{ref.output}, which changes{note}")
                queue.append(ref.stack)


def waves(affected: Iterable[str], references: Iterable[Reference]) -> list[list[str]]:
    """Affected stacks in deployment order: a stack comes after every affected stack it reads,
    directly or through stacks that are not affected; stacks of one wave may run in parallel."""
    chosen = set(affected)
    reads: dict[str, set[str]] = {}
    for ref in references:
        reads.setdefault(ref.stack, set()).add(ref.target)
    graph: dict[str, set[str]] = {}
    for stack in chosen:
        seen: set[str] = set()
        todo = list(reads.get(stack, ()))
        while todo:
            target = todo.pop()
            if target in seen:
                continue
            seen.add(target)
            todo.extend(reads.get(target, ()))
        graph[stack] = (seen & chosen) - {stack}
    return deployment_order(graph)


def compare_contracts(base: dict[str, object] | None, head: dict[str, object]) -> ContractDiff:
    """The outputs that differ; a site absent at the base counts as all new."""
    if base is None:
        return ContractDiff(everything=True, note="the site is new")
    return ContractDiff(
        outputs=frozenset(k for k in set(base) | set(head) if base.get(k) != head.get(k))
    )
