"""The federation planner's schedule: each stack starts once the stacks it reads are planned,
the longest chains of references first, and the result is the one wave-by-wave planning gives,
errors included. Programs are replaced by a simulated pool with a clock (no Pulumi here)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from fedeploy.errors import FedeployError, ProgramError
from fedeploy.offline import federation
from fedeploy.offline.engine import StackPlan
from fedeploy.offline.federation import FederationPlan, chain_lengths
from fedeploy.references import Reference, deployment_order
from tests.conftest import ROOT, STACKS

# The example federation's shape: aws-frankfurt replicates to aws-dublin, the hub reads all.
MEMBERS = ["aws-dublin", "aws-frankfurt", "cf-waw", "ewc-bologna", "hpc-kajaani", "ovh-gra"]
# Seconds each stack takes to plan and check, roughly as measured on two cores.
SECONDS = {
    "aws-dublin": 0.9,
    "aws-frankfurt": 0.6,
    "cf-waw": 0.45,
    "ewc-bologna": 0.45,
    "hpc-kajaani": 0.55,
    "ovh-gra": 1.0,
    "eu-hub": 0.35,
}


def _federation(references: list[Reference]) -> FederationPlan:
    names = {r.stack for r in references} | {r.target for r in references}
    graph: dict[str, set[str]] = {name: set() for name in names}
    for ref in references:
        graph[ref.stack].add(ref.target)
    plan = FederationPlan(stacks_dir=Path("stacks"), references=references)
    plan.sites = {name: object() for name in names}
    plan.order = deployment_order(graph)
    return plan


def _example() -> FederationPlan:
    refs = [Reference("aws-frankfurt", "aws-dublin", "storage", "replication")]
    refs += [Reference("eu-hub", member, "catalog", "members") for member in MEMBERS]
    return _federation(refs)


class SimulatedPool:
    """An executor whose tasks take SECONDS each on a simulated clock; `wait` (patched into the
    planner) finishes the earliest one. `fail` names stacks whose program fails."""

    def __init__(self, fail: tuple[str, ...] = ()):
        self.clock = 0.0
        self.fail = fail
        self.started: dict[str, float] = {}
        self.refs: dict[str, dict[str, Any]] = {}
        self._ends: dict[Future[Any], tuple[float, str]] = {}

    def submit(self, fn: Any, task: Any) -> Future[Any]:
        name = task[0].name.removeprefix("Pulumi.").removesuffix(".yaml")
        assert name not in self.started, f"{name} planned twice"
        self.started[name] = self.clock
        self.refs[name] = task[1]
        future: Future[Any] = Future()
        self._ends[future] = (self.clock + SECONDS[name], name)
        return future

    def wait(self, futures: Any, return_when: Any) -> tuple[set[Any], set[Any]]:
        first = min(futures, key=lambda f: self._ends[f])
        self.clock, name = self._ends.pop(first)
        if name in self.fail:
            first.set_result(ProgramError(f"{name}: the program failed"))
        else:
            outputs = {"storage": f"{name}-bucket", "catalog": f"https://{name}"}
            first.set_result((StackPlan(name, [], outputs, [], []), f"checked {name}"))
        return {first}, set(futures) - {first}


def _run(
    plan: FederationPlan, pool: SimulatedPool, monkeypatch: pytest.MonkeyPatch, slots: int = 2
) -> FederationPlan:
    monkeypatch.setattr(federation, "wait", pool.wait)
    files = {name: Path(f"Pulumi.{name}.yaml") for name in plan.sites}
    results = federation._run_stacks(plan, files, pool, slots, check=None)  # type: ignore[arg-type]
    federation._gather(plan, results)
    return plan


def _wave_by_wave_seconds(plan: FederationPlan, slots: int) -> float:
    """What the former wave-synchronised planner took: each wave waits for its slowest part."""
    total = 0.0
    for wave in plan.order:
        lanes = [0.0] * slots
        for name in wave:
            lanes[lanes.index(min(lanes))] += SECONDS[name]
        total += max(lanes)
    return total


def test_chain_lengths_count_the_longest_chain_through_each_stack():
    plan = _example()
    reads = {name: set() for name in plan.sites}
    for ref in plan.references:
        reads[ref.stack].add(ref.target)
    assert chain_lengths(plan.order, reads) == {
        "aws-dublin": 3,
        "aws-frankfurt": 3,
        "eu-hub": 3,
        "cf-waw": 2,
        "ewc-bologna": 2,
        "hpc-kajaani": 2,
        "ovh-gra": 2,
    }


def test_a_stack_starts_once_what_it_reads_is_planned_not_when_its_wave_ends(monkeypatch):
    pool = SimulatedPool()
    plan = _run(_example(), pool, monkeypatch)
    assert plan.errors == []
    # The longest chain starts first; aws-frankfurt starts the moment aws-dublin is planned,
    # while the first wave (ovh-gra, ...) is still being planned.
    assert next(iter(pool.started)) == "aws-dublin"
    assert pool.started["aws-frankfurt"] == pytest.approx(SECONDS["aws-dublin"])
    assert pool.started["aws-frankfurt"] < max(
        pool.started[m] + SECONDS[m] for m in MEMBERS if m != "aws-frankfurt"
    )
    # Only the outputs it reads: aws-dublin's storage, not its catalog.
    assert pool.refs["aws-frankfurt"] == {"aws-dublin": {"storage": "aws-dublin-bucket"}}
    assert set(pool.refs["eu-hub"]) == set(MEMBERS)
    makespan = pool.started["eu-hub"] + SECONDS["eu-hub"]
    assert makespan < _wave_by_wave_seconds(plan, 2)
    # The report's side is the same as wave by wave: every plan and check, by stack.
    assert sorted(plan.plans) == sorted(plan.sites)
    assert plan.checked["ovh-gra"] == "checked ovh-gra"


def test_one_slot_plans_every_stack_once_in_an_order_that_respects_references(monkeypatch):
    pool = SimulatedPool()
    plan = _run(_example(), pool, monkeypatch, slots=1)
    order = list(pool.started)
    assert order.index("aws-dublin") < order.index("aws-frankfurt") < order.index("eu-hub")
    assert order[-1] == "eu-hub" and sorted(order) == sorted(plan.sites)


def test_a_failing_stack_stops_its_readers_and_the_report_is_the_wave_by_wave_one(monkeypatch):
    """ovh-gra fails last in the first wave; aws-frankfurt (second wave) has been planned by
    then. Wave by wave, the first wave's error ends the plan: aws-frankfurt is not reported,
    the hub is never started."""
    pool = SimulatedPool(fail=("ovh-gra",))
    plan = _run(_example(), pool, monkeypatch)
    assert "aws-frankfurt" in pool.started and "eu-hub" not in pool.started
    assert [str(e) for e in plan.errors] == ["ovh-gra: the program failed"]
    assert sorted(plan.plans) == ["aws-dublin", "cf-waw", "ewc-bologna", "hpc-kajaani"]


def test_errors_of_one_wave_are_all_reported_in_wave_order(monkeypatch):
    pool = SimulatedPool(fail=("ovh-gra", "cf-waw"))
    plan = _run(_example(), pool, monkeypatch)
    assert [str(e) for e in plan.errors] == [
        "cf-waw: the program failed",
        "ovh-gra: the program failed",
    ]
    assert all(isinstance(e, FedeployError) for e in plan.errors)


def test_a_failure_in_a_later_wave_still_lets_the_earlier_waves_finish(monkeypatch):
    """aws-frankfurt (second wave) fails while the first wave is still running: every stack of
    the first wave is planned and reported, the hub is not started."""
    pool = SimulatedPool(fail=("aws-frankfurt",))
    plan = _run(_example(), pool, monkeypatch)
    assert [str(e) for e in plan.errors] == ["aws-frankfurt: the program failed"]
    assert sorted(plan.plans) == sorted(set(MEMBERS) - {"aws-frankfurt"})
    assert "eu-hub" not in pool.started


def test_a_missing_output_is_reported_before_its_wave_runs(monkeypatch):
    refs = [
        Reference("aws-frankfurt", "aws-dublin", "bucket_registry", "replication"),
        Reference("eu-hub", "aws-dublin", "catalog", "members"),
        Reference("eu-hub", "aws-frankfurt", "catalog", "members"),
        Reference("eu-hub", "ovh-gra", "catalog", "members"),
    ]
    pool = SimulatedPool()
    plan = _run(_federation(refs), pool, monkeypatch)
    (error,) = plan.errors
    assert str(error).startswith(
        "stack 'aws-frankfurt' reads output 'bucket_registry' of stack 'aws-dublin' (replication)"
    )
    assert "aws-frankfurt" not in pool.started and "eu-hub" not in pool.started
    assert sorted(plan.plans) == ["aws-dublin", "ovh-gra"]


_FORKED_PLAN = """
import sys
from pathlib import Path
from fedeploy.plan.run import run_plan
from fedeploy.plan.formats import as_json
report = run_plan(Path(sys.argv[1]), jobs=2, cache=None)
# Every stack ran in a forked worker: this process never loaded Helm's Go runtime.
assert "helm_python._native" not in sys.modules, "a stack was planned in the parent"
# The SDKs' objects stay frozen: the final collections at exit would walk them all.
import gc
assert gc.get_freeze_count() > 100_000, gc.get_freeze_count()
sys.stdout.write(as_json(report))
"""


def test_forked_workers_plan_every_stack_and_report_the_same_bytes(example_report):
    """The pool path (a fresh process forks two workers and plans all seven stacks in them)
    against one process planning them one after the other."""
    from fedeploy.plan.formats import as_json

    forked = subprocess.run(
        [sys.executable, "-c", _FORKED_PLAN, str(STACKS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert forked.returncode == 0, forked.stderr[-2000:]
    assert forked.stdout == as_json(example_report)
