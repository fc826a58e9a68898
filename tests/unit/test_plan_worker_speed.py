"""What the planner does to spend less time per stack without changing what it plans: the
cyclic garbage collector is paused while a stack is planned and checked (and on again after),
and Pulumi's SDK does not record each resource's source position in a mock run."""

from __future__ import annotations

import contextlib
import gc
from typing import Any

from fedeploy.offline import federation
from fedeploy.offline.engine import plan_stack
from tests.conftest import STACKS

STACK = STACKS / "Pulumi.ewc-bologna.yaml"  # reads no other stack


def test_the_collector_is_paused_while_a_stack_is_planned_and_checked_and_on_after(monkeypatch):
    seen: list[bool] = []
    monkeypatch.setattr(
        federation, "plan_stack", lambda path, references: seen.append(gc.isenabled())
    )

    def check(plan: Any, site: Any) -> None:
        seen.append(gc.isenabled())

    assert gc.isenabled()
    federation._plan_one((STACK, {}, None, check))
    assert seen == [False, False]
    assert gc.isenabled()


def test_the_collector_stays_off_after_a_stack_when_it_was_off(monkeypatch):
    monkeypatch.setattr(federation, "plan_stack", lambda path, references: None)
    gc.disable()
    try:
        federation._plan_one((STACK, {}, None, None))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_failing_stack_turns_the_collector_back_on(monkeypatch):
    def fail(path: Any, references: Any) -> None:
        raise RuntimeError("not a FedeployError: it propagates")

    monkeypatch.setattr(federation, "plan_stack", fail)
    with contextlib.suppress(RuntimeError):
        federation._plan_one((STACK, {}, None, None))
    assert gc.isenabled()


def test_a_mock_run_records_no_source_positions_and_puts_the_sdk_back():
    from pulumi.runtime import resource

    calls: list[int] = []
    original = resource._get_stack_trace

    def spy() -> Any:
        calls.append(1)
        return original()

    resource._get_stack_trace = spy
    try:
        plan = plan_stack(STACK)
        assert plan.resources  # resources were registered, none asked for its stack trace
        assert calls == []
        assert resource._get_stack_trace is spy  # what was there before the plan is back
    finally:
        resource._get_stack_trace = original
