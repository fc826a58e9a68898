"""A stack's checks run beside the programs that come after it when the planner plans in its
own process (fedeploy.offline.federation._InProcess), and `helm lint` beside the rest of a
release's checks (fedeploy.plan.checks._check_release): the stacks that read a stack start
without waiting for its checks, and the results, errors and what the cache keeps are those of
planning one stack after another. Ordering is shown with events, never with timing."""

from __future__ import annotations

import gc
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from fedeploy import charts
from fedeploy.charts import ChartError, LintFinding
from fedeploy.errors import FederationError, ProgramError
from fedeploy.offline import federation
from fedeploy.offline.engine import StackPlan
from fedeploy.plan import checks, monitoring
from tests.unit.test_federation_schedule import MEMBERS, _example

GUARD = 30  # seconds an event is waited for before the test gives up (a failure, not a figure)


def _name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


class _Programs:
    """plan_stack replaced: each stack's plan at once (its outputs named after it), a
    ProgramError for the stacks in `fail`; `started` in order, `on_start` called first."""

    def __init__(self, fail: tuple[str, ...] = (), on_start: Any = None) -> None:
        self.fail = fail
        self.on_start = on_start
        self.started: list[str] = []

    def __call__(self, path: Path, references: dict[str, Any]) -> StackPlan:
        name = _name(path)
        self.started.append(name)
        if self.on_start is not None:
            self.on_start(name)
        if name in self.fail:
            raise ProgramError(f"{name}: the program failed")
        outputs = {"storage": f"{name}-bucket", "catalog": f"https://{name}"}
        return StackPlan(name, [], outputs, [], [])


class _Cache:
    """Keeps nothing; records which stacks were put."""

    def __init__(self) -> None:
        self.kept: list[str] = []

    def key(self, stack_file: Path, references: Any, check: Any) -> str:
        return str(stack_file)

    def get(self, key: str) -> None:
        return None

    def put(self, key: str, value: Any) -> None:
        self.kept.append(value[0].stack)


class _Serial:
    """The former in-process executor: each stack planned and checked at once, in turn."""

    def submit(self, fn: Any, task: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(task))
        return future


def _plan(executor: Any, check: Any, slots: int = 1) -> tuple[Any, list[str]]:
    plan = _example()
    files = {name: Path(f"Pulumi.{name}.yaml") for name in plan.sites}
    cache = _Cache()
    try:
        results = federation._run_stacks(plan, files, executor, slots, check, cache=cache)  # type: ignore[arg-type]
    finally:
        if isinstance(executor, federation._InProcess):
            executor.close()
    federation._gather(plan, results)
    return plan, cache.kept


def test_a_stack_that_reads_another_starts_while_that_stack_is_being_checked(monkeypatch):
    """cf-waw's checks wait until the hub, which reads cf-waw, has started its program: they
    end only because the hub did not wait for them (planned one after the other, the checks
    would wait for ever, here GUARD seconds, and see the hub not started)."""
    hub_started = threading.Event()
    monkeypatch.setattr(
        federation,
        "plan_stack",
        _Programs(on_start=lambda name: name == "eu-hub" and hub_started.set()),
    )
    seen: dict[str, bool] = {}

    def check(plan: StackPlan, site: Any) -> str:
        if plan.stack == "cf-waw":
            seen["hub started before cf-waw's checks ended"] = hub_started.wait(GUARD)
        return f"checked {plan.stack}"

    plan, kept = _plan(federation._InProcess(1), check)
    assert seen == {"hub started before cf-waw's checks ended": True}
    assert plan.errors == []
    assert plan.checked == {name: f"checked {name}" for name in plan.sites}
    assert sorted(kept) == sorted(plan.sites)


@pytest.mark.parametrize(
    ("program_fails", "check_fails"),
    [
        ((), ()),
        ((), ("cf-waw",)),  # the hub has started by then: not reported, not kept
        ((), ("aws-dublin",)),  # aws-frankfurt (second wave) reads it
        ((), ("aws-frankfurt",)),
        ((), ("eu-hub",)),
        ((), ("ovh-gra", "cf-waw")),
        (("ovh-gra",), ()),
        (("hpc-kajaani",), ("aws-dublin",)),
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_results_errors_and_what_the_cache_keeps_are_those_of_one_stack_after_another(
    monkeypatch, program_fails, check_fails, threads
):
    def check(plan: StackPlan, site: Any) -> str:
        if plan.stack in check_fails:
            raise FederationError(f"{plan.stack}: its checks failed")
        return f"checked {plan.stack}"

    outcomes = []
    for executor in (_Serial(), federation._InProcess(threads)):
        monkeypatch.setattr(federation, "plan_stack", _Programs(fail=program_fails))
        plan, kept = _plan(executor, check)
        outcomes.append(
            ([str(e) for e in plan.errors], plan.plans, plan.checked, sorted(kept), plan.order)
        )
    serial, beside = outcomes
    assert beside == serial


def test_the_hub_planned_before_its_members_checks_failed_is_neither_reported_nor_kept(
    monkeypatch,
):
    programs = _Programs()
    monkeypatch.setattr(federation, "plan_stack", programs)

    def check(plan: StackPlan, site: Any) -> str:
        if plan.stack == "cf-waw":
            raise FederationError("cf-waw: its checks failed")
        return f"checked {plan.stack}"

    plan, kept = _plan(federation._InProcess(1), check)
    assert "eu-hub" in programs.started  # started beside cf-waw's checks
    assert [str(e) for e in plan.errors] == ["cf-waw: its checks failed"]
    assert "eu-hub" not in plan.plans and "eu-hub" not in kept
    assert sorted(kept) == sorted(set(MEMBERS) - {"cf-waw"})


def test_the_collector_stays_paused_until_the_last_thread_leaves_its_block():
    inside = threading.Event()
    leave = threading.Event()

    def other() -> None:
        with federation.collector_paused():
            inside.set()
            leave.wait(GUARD)

    assert gc.isenabled()
    thread = threading.Thread(target=other)
    with federation.collector_paused():
        thread.start()
        assert inside.wait(GUARD)
    try:
        assert not gc.isenabled(), "the other thread's block is still open"
    finally:
        leave.set()
        thread.join()
    assert gc.isenabled()


def test_young_objects_move_to_the_oldest_generation_unless_a_process_froze_some():
    gc.collect()
    gc.disable()  # no collection moves them first
    try:
        made = [{"n": n} for n in range(1000)]
        assert any(o is made for o in gc.get_objects(generation=0))
        federation._young_to_oldest()
        assert gc.get_freeze_count() == 0
        assert not any(o is made for o in gc.get_objects(generation=0))
        assert any(o is made for o in gc.get_objects(generation=2))

        gc.freeze()  # as a planner that forks does: what it froze stays frozen
        frozen = gc.get_freeze_count()
        young = [{"n": n} for n in range(10)]
        federation._young_to_oldest()
        assert gc.get_freeze_count() == frozen
        assert any(o is young for o in gc.get_objects(generation=0))
    finally:
        gc.unfreeze()
        gc.enable()


# A release's checks: Helm's lint beside the operator objects, the schemas and the rules.

RELEASE = checks.RenderedRelease("catalog", "charts/catalog", "eo", {"catalog": {}})
MANIFESTS = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}]


def _release_checks(monkeypatch: pytest.MonkeyPatch, **replaced: Any) -> Any:
    parts = {
        "render_chart": lambda *a, **k: list(MANIFESTS),
        "lint_chart": lambda *a, **k: [],
        "validate_manifests": lambda *a, **k: [],
        "operator_manifests": lambda *a, **k: [],
        "release_monitoring": lambda *a, **k: {},
        **replaced,
    }
    for name, part in parts.items():
        in_monitoring = name in ("operator_manifests", "release_monitoring")
        monkeypatch.setattr(monitoring if in_monitoring else charts, name, part)
    monkeypatch.setattr(checks, "workload_findings", lambda manifests, name: [])
    release = checks.RenderedRelease(**vars(RELEASE))
    return checks._check_release(release, "catalog", Path("charts/catalog"), "1.30")


def test_helm_lint_runs_beside_the_schema_check_and_its_findings_keep_their_place(monkeypatch):
    validated = threading.Event()

    def lint(*args: Any, **kwargs: Any) -> list[LintFinding]:
        # Ends once the manifests were validated: only if lint runs beside the validation.
        assert validated.wait(GUARD), "lint ran before the schemas were checked, not beside"
        return [LintFinding("warning", "templates/x.yaml", "icon is recommended")]

    def validate(*args: Any, **kwargs: Any) -> list[str]:
        validated.set()
        return ["ConfigMap/x: data: not allowed"]

    checked, findings = _release_checks(monkeypatch, lint_chart=lint, validate_manifests=validate)
    assert checked == (MANIFESTS, [], {})
    assert [(f.rule, f.message) for f in findings] == [
        ("chart-lint", "templates/x.yaml: icon is recommended"),
        ("manifest-schema", "Kubernetes 1.30: ConfigMap/x: data: not allowed"),
    ]


def test_lint_starts_only_once_the_values_rendered(monkeypatch):
    linted: list[int] = []

    def render(*args: Any, **kwargs: Any) -> list[Any]:
        raise ChartError("chart charts/catalog: values rejected by values.schema.json: x")

    checked, findings = _release_checks(
        monkeypatch, render_chart=render, lint_chart=lambda *a, **k: linted.append(1) or []
    )
    assert checked is None and [f.rule for f in findings] == ["chart-values"]
    assert linted == []


def test_a_lint_that_cannot_run_fails_the_release_as_before_even_when_validation_fails_too(
    monkeypatch,
):
    def lint(*args: Any, **kwargs: Any) -> list[LintFinding]:
        raise ChartError("chart charts/catalog: helm lint could not run: boom")

    def validate(*args: Any, **kwargs: Any) -> list[str]:
        raise KeyError("apiVersion")

    with pytest.raises(ChartError, match="helm lint could not run"):
        _release_checks(monkeypatch, lint_chart=lint, validate_manifests=validate)
    with pytest.raises(KeyError):  # lint fine: validation's own error
        _release_checks(monkeypatch, validate_manifests=validate)


def test_an_operator_render_error_comes_first_as_it_ran_before_lint(monkeypatch):
    def operator(*args: Any, **kwargs: Any) -> list[Any]:
        raise ChartError("chart charts/catalog: rendering failed: operator")

    def lint(*args: Any, **kwargs: Any) -> list[LintFinding]:
        raise ChartError("chart charts/catalog: helm lint could not run: boom")

    with pytest.raises(ChartError, match="operator"):
        _release_checks(monkeypatch, operator_manifests=operator, lint_chart=lint)
