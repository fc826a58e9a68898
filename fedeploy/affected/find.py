"""`fedeploy affected`: the stacks a change affects, in waves of deployment order.

From `git diff base...head`: each changed path touches some sites (`gitops.path_rules`); a site
whose exported contract changes (offline plans of base and head compared) affects every stack
that reads the changed outputs, transitively; the affected stacks are grouped into waves from
the head's reference graph. Deleted stack files are reported as removed, never destroyed."""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fedeploy.config.loader import stacks_dir_in_repository, stacks_in_revisions
from fedeploy.errors import FedeployError
from fedeploy.gitops import git_tree
from fedeploy.gitops.closure import (
    ContractDiff,
    Decision,
    SiteInfo,
    close_over_contracts,
    compare_contracts,
    direct_effects,
    waves,
)
from fedeploy.gitops.path_rules import classify
from fedeploy.gitops.planned_sites import PlannedFederation, plan_tree
from fedeploy.gitops.program_files import program_files
from fedeploy.gitops.result import Affected
from fedeploy.references import Reference

Planner = Callable[[Path, str], PlannedFederation]


class AffectedError(FedeployError):
    """The affected stacks cannot be decided: the head does not validate or plan."""


def find_affected(
    repo: Path,
    base: str | None,
    head: str = "HEAD",
    *,
    stacks_dir: str = "stacks",
    every_stack: bool = False,
    planner: Planner = plan_tree,
    head_plan: Path | None = None,
) -> Affected:
    """Decide which stacks of `head` the change `base...head` affects (all with `every_stack`).

    `head_plan`: the head's recorded plan (planned_sites.read_recorded_plan), read as data
    instead of running the head's program. `stacks_dir` is from the repository's top; raises
    FederationError when it is outside the repository or holds stack files neither at the head
    nor at the base (at the head with `every_stack`): the answer would be an empty one."""
    stacks_dir = stacks_dir_in_repository(repo, stacks_dir)
    head_sha = git_tree.resolve(repo, head, "--head")
    base_sha = None if every_stack else git_tree.resolve(repo, base or "", "--base")
    with tempfile.TemporaryDirectory(prefix="fedeploy-affected-") as tmp:
        head_tree = git_tree.export_tree(repo, head_sha, _mkdir(Path(tmp) / "head"))
        trees = [(f"--head {head} (commit {head_sha[:12]})", head_tree)]
        base_tree = None
        if base_sha is not None:
            base_tree = git_tree.export_tree(repo, base_sha, _mkdir(Path(tmp) / "base"))
            trees.append((f"--base {base} (commit {base_sha[:12]})", base_tree))
        # Refused when neither revision holds stack files there: a misspelt directory.
        has_stacks = stacks_in_revisions(stacks_dir, trees)
        sites: dict[str, SiteInfo] = {}
        references: list[Reference] = []
        if has_stacks[0]:
            sites, references = head_federation(head_tree / stacks_dir)
        if base_sha is None:
            decision = Decision(
                reasons={name: ["every stack was asked for (--all)"] for name in sites}
            )
        else:
            head_planner = planner
            if head_plan is not None:
                head_planner = functools.partial(plan_tree, recorded=head_plan)
            if not has_stacks[0]:  # the change removes every stack: nothing to plan at the head
                head_planner = _no_stacks
            plans = _LazyPlans(
                base_tree if has_stacks[1] else None, head_tree, stacks_dir, planner, head_planner
            )
            files = program_files(head_tree)
            touched = [
                (change, classify(change.path, change.status, files, stacks_dir))
                for change in git_tree.changed_paths(repo, base_sha, head_sha)
            ]
            decision = direct_effects(touched, sites, plans.head)
            close_over_contracts(decision, references, plans.contract_diff)
        order = waves(decision.reasons, references)
    return Affected(
        base=base_sha,
        head=head_sha,
        waves=order,
        reasons=decision.reasons,
        sites={name: sites[name] for name in decision.reasons},
        removed=decision.removed,
        ignored=decision.ignored,
    )


def head_federation(stacks_dir: Path) -> tuple[dict[str, SiteInfo], list[Reference]]:
    """The head's sites and references from its validated stack files; raises if any is invalid."""
    from fedeploy.offline.federation import load_federation

    federation = load_federation(stacks_dir)
    if federation.errors:
        tree = f"{stacks_dir.parent}/"  # name files as the repository does, not the temporary copy
        problems = [str(e).replace(tree, "") for e in federation.errors]
        raise AffectedError(
            f"the stacks in {stacks_dir.name}/ at the head do not validate:\n{_bullets(problems)}"
        )
    sites = {
        name: SiteInfo(
            name=name,
            kind=site.kind,
            environment=site.environment,
            region=getattr(site, "region", None) if site.kind == "aws" else None,
            bridge=getattr(site, "bridge", None) is not None,
        )
        for name, site in sorted(federation.sites.items())
    }
    return sites, federation.references


class _LazyPlans:
    """The offline plans of head and base, each run at most once and only when asked for."""

    def __init__(
        self,
        base_tree: Path | None,
        head_tree: Path,
        stacks_dir: str,
        planner: Planner,
        head_planner: Planner,
    ):
        """`base_tree`: the base's exported tree, None when it holds no stack file."""
        self._base_tree, self._head_tree = base_tree, head_tree
        self._stacks_dir, self._planner, self._head_planner = stacks_dir, planner, head_planner
        self._head: PlannedFederation | None = None
        self._base_plan: PlannedFederation | None = None
        self._base_note = ""

    def head(self) -> PlannedFederation:
        if self._head is None:
            self._head = self._head_planner(self._head_tree, self._stacks_dir)
            if self._head.errors:
                raise AffectedError(
                    "the head revision does not plan offline, so what it affects cannot be decided:\n"
                    + _bullets(self._head.errors)
                )
        return self._head

    def base(self) -> PlannedFederation:
        if self._base_plan is None:
            if self._base_tree is None:
                self._base_plan, self._base_note = (
                    PlannedFederation(),
                    f"the base has no stack files in {self._stacks_dir}/",
                )
            else:
                self._base_plan = self._planner(self._base_tree, self._stacks_dir)
                if self._base_plan.errors:
                    self._base_note = (
                        f"the base does not plan offline ({self._base_plan.errors[0]})"
                    )
        return self._base_plan

    def contract_diff(self, site: str) -> ContractDiff:
        if self._head is None and self._base_plan is None:
            # Both plans are needed now: run them side by side (each is a subprocess).
            with ThreadPoolExecutor(max_workers=2) as pool:
                base_done = pool.submit(self.base)
                self.head()
                base_done.result()
        head = self.head().sites.get(site)
        if head is None:
            raise AffectedError(f"the head's offline plan has no stack {site!r}")
        base_plan = self.base()
        base = base_plan.sites.get(site)
        if base is None and self._base_note:
            # Unknown is treated as changed: deploying a reader for nothing is safe, skipping it is not.
            return ContractDiff(everything=True, note=f"{self._base_note}: assumed to change")
        return compare_contracts(None if base is None else base.outputs, head.outputs)


def _bullets(problems: list[str]) -> str:
    return "\n".join("  - " + p.replace("\n", "\n    ") for p in problems)


def _no_stacks(tree: Path, stacks_dir: str) -> PlannedFederation:
    """The plan of a head without stack files: no site (the offline plan would refuse it)."""
    return PlannedFederation()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path
