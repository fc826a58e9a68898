"""Shared fixtures: the example federation planned once per session by the offline engine."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import NoReturn

import pytest

from tests.peers import start_peer

__all__ = ["EXAMPLE_STACKS", "ROOT", "STACKS", "start_peer", "unavailable"]

# Tests plan with the caches they make themselves, never the user's (fedeploy/offline/cache.py);
# the commands they run as subprocesses inherit this.
os.environ.setdefault("FEDEPLOY_PLAN_CACHE", "off")

ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "stacks"
EXAMPLE_STACKS = sorted(p.name.split(".")[1] for p in STACKS.glob("Pulumi.*.yaml"))


def unavailable(reason: str) -> NoReturn:
    """Skip the test for a missing peer or tool, or fail it under FEDEPLOY_REQUIRE_INTEGRATION=1
    (CI), where every one must be there."""
    if os.environ.get("FEDEPLOY_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"integration peer missing (FEDEPLOY_REQUIRE_INTEGRATION=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _a_current_event_loop():
    """Pulumi's mock runtime makes its futures on the current event loop; a test before may have
    left none (asyncio.run ends by unsetting it), which made later mock runs fail by test order."""
    policy = asyncio.get_event_loop_policy()
    try:
        policy.get_event_loop()
    except RuntimeError:
        policy.set_event_loop(policy.new_event_loop())


@pytest.fixture(scope="session")
def example_report():
    """The plan report of the whole example federation (the same engine as `fedeploy plan`)."""
    from fedeploy.plan.run import run_plan

    return run_plan(STACKS, jobs=1)


@pytest.fixture(scope="session")
def example_plans(example_report):
    """Each example stack's recorded resources and outputs, by stack name."""
    assert not example_report.errors, example_report.errors
    return example_report.federation.plans
