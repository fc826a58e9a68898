"""The cyclic garbage collector while the planner plans its stacks in its own process (no
worker forked: a one-site change, `--jobs 1`): paused for all of them, not only during each,
so its passes do not walk the SDK modules the programs imported after every stack; run every
COLLECT_EVERY stacks; and what the stacks leave moves to its oldest generation unwalked at the
end, unless this process froze its imports for forked children (freeze_imports)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from fedeploy.offline import federation
from fedeploy.offline.engine import StackPlan
from tests.conftest import STACKS


class _Cycle:
    me: Any


class _Programs:
    """plan_stack replaced: each stack's plan at once, with every output the stacks reading it
    read, and a few thousand objects of its own (kept in `made`); `events` in order."""

    def __init__(self, events: list[tuple[str, Any]]) -> None:
        loaded = federation.load_federation(STACKS)
        self.outputs: dict[str, set[str]] = {}
        for ref in loaded.references:
            self.outputs.setdefault(ref.target, set()).add(ref.output)
        self.events = events
        self.made: list[Any] = []
        self.cycles: list[weakref.ref[Any]] = []  # a garbage cycle each program leaves

    def __call__(self, path: Path, references: dict[str, Any]) -> StackPlan:
        name = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        self.events.append(("program", name))
        made = [{"stack": name, "n": n} for n in range(3000)]
        self.made.append(made)
        cycle = _Cycle()
        cycle.me = cycle
        self.cycles.append(weakref.ref(cycle))
        outputs = {output: f"{name}-{output}" for output in self.outputs.get(name, ())}
        return StackPlan(name, [], outputs, [], [])


@pytest.fixture
def events(monkeypatch):
    """The programs run and the collections made, in order, while the example is planned."""
    events: list[tuple[str, Any]] = []

    def collected(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            events.append(("collection", info["generation"]))

    monkeypatch.setattr(federation, "_frozen", False)
    monkeypatch.setattr(federation, "_left", False)
    programs = _Programs(events)
    monkeypatch.setattr(federation, "plan_stack", programs)
    gc.callbacks.append(collected)
    try:
        yield events, programs
    finally:
        gc.callbacks.remove(collected)


def _plan(jobs: int = 1) -> federation.FederationPlan:
    plan = federation.plan_federation(STACKS, jobs=jobs)
    assert not plan.errors, plan.errors
    return plan


def test_no_collection_runs_between_the_stacks_planned_here(events):
    events, programs = events
    plan = _plan()
    ran = [i for i, (what, _) in enumerate(events) if what == "program"]
    assert len(ran) == len(plan.sites) == 7 < federation.COLLECT_EVERY
    between = events[ran[0] : ran[-1]]
    assert [e for e in between if e[0] == "collection"] == []
    assert gc.isenabled()


def test_the_young_generations_are_collected_every_so_many_stacks(events, monkeypatch):
    events, programs = events
    monkeypatch.setattr(federation, "COLLECT_EVERY", 3)
    _plan()
    ran = [i for i, (what, _) in enumerate(events) if what == "program"]
    collections = [(i, e[1]) for i, e in enumerate(events) if e[0] == "collection"]
    inside = [(i, gen) for i, gen in collections if ran[0] < i < ran[-1]]
    # Before the 4th and the 7th stack, one collection of generations 0 and 1 each.
    assert inside == [(ran[3] - 1, 1), (ran[6] - 1, 1)]


def test_what_the_stacks_left_is_in_the_oldest_generation_after_the_plan(events):
    events, programs = events
    _plan()
    assert gc.get_freeze_count() == 0
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(made) in oldest for made in programs.made)


def test_a_second_plan_here_first_collects_the_garbage_the_first_left(events):
    events, programs = events
    _plan()
    first = list(programs.cycles)
    assert len(first) == 7
    _plan()
    assert [ref() for ref in first] == [None] * 7


def test_young_objects_move_to_the_oldest_generation_unless_this_process_froze_some(
    monkeypatch,
):
    monkeypatch.setattr(federation, "_frozen", False)
    gc.collect()
    gc.disable()  # no collection moves them first
    try:
        made = [{"n": n} for n in range(1000)]
        assert any(o is made for o in gc.get_objects(generation=0))
        federation._young_to_oldest()
        assert gc.get_freeze_count() == 0
        assert not any(o is made for o in gc.get_objects(generation=0))
        assert any(o is made for o in gc.get_objects(generation=2))

        federation.freeze_imports()  # as a planner that forks does: what it froze stays so
        frozen = gc.get_freeze_count()
        young = [{"n": n} for n in range(10)]
        federation._young_to_oldest()
        assert gc.get_freeze_count() == frozen
        assert any(o is young for o in gc.get_objects(generation=0))
    finally:
        gc.unfreeze()
        gc.enable()


def test_freezing_imports_after_a_plan_here_first_collects_what_it_left(events):
    """Review RA F1: a plan with no worker leaves its garbage to the oldest generation; a later
    freeze_imports (a plan that forks workers) must not freeze that garbage for good."""
    events, programs = events
    _plan()
    first = list(programs.cycles)
    try:
        federation.freeze_imports()
        assert [ref() for ref in first] == [None] * 7
    finally:
        gc.unfreeze()


def test_a_plan_here_leaves_a_freeze_of_the_calling_program_alone(events):
    """Review RA F2: a program that froze its own objects before calling the planner finds
    them still frozen after a plan with no worker."""
    events, programs = events
    kept = [{"mine": n} for n in range(1000)]
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        assert before > 0
        _plan()
        # Still frozen: in no generation the collector walks (the count may drop by the few
        # frozen objects freed since, never to the plan's unfreeze's 0).
        walked = {id(o) for o in gc.get_objects()}
        assert id(kept) not in walked and all(id(k) not in walked for k in kept)
        assert gc.get_freeze_count() > before // 2
    finally:
        gc.unfreeze()
