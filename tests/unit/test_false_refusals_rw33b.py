"""False refusals and untrue messages found by review rw33b (F4, F5, F7, F9, F10): cron
descriptors, a tab in a schedule, a trailing-dot store host, the kube- prefix, a relative
Polytope date, the default issuer kind beside a Secret."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from fedeploy.config.loader import check_stack_file
from fedeploy.config.services import Cron, cron_problem
from fedeploy.config.storage import store_endpoint_problem
from fedeploy.errors import StackConfigError
from fedeploy.plan.run import run_plan
from tests.builders import STACKS, edit_site, example_stacks
from tests.charts.test_polytope_eodag_sources import POLYTOPE, POLYTOPE_KEY, REQUEST
from tests.unit.test_settings_take_effect import _issues, _refused

SCHEDULES = [
    ("eu-hub", "services.harvest_schedule"),
    ("aws-frankfurt", "services.ingestion.sentinel.schedule"),
    ("cf-waw", "services.catalog.backup.drill.schedule"),
]
DESCRIPTORS = ["@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"]
CHARTS = Path(__file__).resolve().parents[2] / "charts"


def _chart_cron_patterns() -> dict[str, str]:
    return {
        chart.name: json.loads((chart / "values.schema.json").read_text())["definitions"]["cron"][
            "pattern"
        ]
        for chart in sorted(CHARTS.iterdir())
        if (chart / "values.schema.json").exists()
        and "cron" in json.loads((chart / "values.schema.json").read_text()).get("definitions", {})
    }


def _matches(pattern: str, text: str) -> bool:
    """A JSON Schema pattern's match (ECMA-262: `$` is the end, not before a final newline)."""
    return re.search(pattern.removesuffix("$") + r"\Z", text) is not None


# ---- F4: descriptors ------------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "key"), SCHEDULES)
@pytest.mark.parametrize("schedule", DESCRIPTORS)
def test_a_descriptor_kubernetes_takes_is_taken(stack: str, key: str, schedule: str) -> None:
    assert not _issues(stack, {key: schedule})


@pytest.mark.parametrize(("stack", "key"), SCHEDULES)
@pytest.mark.parametrize("schedule", ["@every 1h", "@reboot", "@Daily", "@daily ", "@fortnightly"])
def test_another_descriptor_is_refused_saying_which_are_taken(
    stack: str, key: str, schedule: str
) -> None:
    message = _refused(stack, {key: schedule}, f"site.{key}", repr(schedule), "@hourly, @daily")
    assert "must match pattern" not in message, message


# ---- F5: what separates the fields -----------------------------------------------------------


@pytest.mark.parametrize(("stack", "key"), SCHEDULES)
@pytest.mark.parametrize("schedule", ["0\t*/2 * * *", "0 */2 * *\n*", "0 \t*/2 * * *"])
def test_a_tab_or_line_break_between_fields_is_refused_at_the_key(
    stack: str, key: str, schedule: str
) -> None:
    _refused(stack, {key: schedule}, f"site.{key}", "separate the five fields with spaces")


@pytest.mark.parametrize(("stack", "key"), SCHEDULES)
@pytest.mark.parametrize("schedule", [" 0 * * * *", "0 * * * * "])
def test_whitespace_around_the_schedule_is_refused(stack: str, key: str, schedule: str) -> None:
    _refused(stack, {key: schedule}, f"site.{key}", "starts or ends with whitespace")


def test_every_schedule_the_stack_file_takes_the_charts_take() -> None:
    """What the site's models hand the charts matches each chart's `cron` pattern (@midnight is
    handed over as @daily, its other name, which the charts list), and what the charts refuse
    the stack file refuses at the key."""
    patterns = _chart_cron_patterns()
    assert set(patterns) >= {"catalog", "inference", "ingestion"}, patterns
    cron = TypeAdapter(Cron)
    taken = [*DESCRIPTORS, "15 * * * *", "0  */2 * * *", "0 0 29 2 *", "*/5 9-17 * * MON-FRI"]
    for schedule in taken:
        handed = cron.validate_python(schedule)
        for chart, pattern in patterns.items():
            assert _matches(pattern, handed), (chart, schedule, handed)
    assert cron.validate_python("@midnight") == "@daily"
    for schedule in ["0\t*/2 * * *", "0 * * * *\n", " @daily", "@every 5m"]:
        assert cron_problem(schedule), schedule
        assert not all(_matches(p, schedule) for p in patterns.values()), schedule


def test_a_descriptor_plans_through_the_charts(tmp_path: Path) -> None:
    names = [path.name[len("Pulumi.") : -len(".yaml")] for path in STACKS.glob("Pulumi.*.yaml")]
    stacks = example_stacks(tmp_path / "stacks", names)

    def edit(site: dict[str, Any]) -> None:
        site["services"]["harvest_schedule"] = "@midnight"

    edit_site(stacks / "Pulumi.eu-hub.yaml", edit)
    report = run_plan(stacks, ["eu-hub"], jobs=1, cache=None)
    assert not report.errors, report.errors
    _, findings = report.federation.checked["eu-hub"]
    assert not [f for f in findings if f.rule == "chart-values"], findings


# ---- F7: a trailing dot in the store's host --------------------------------------------------


def test_a_trailing_dot_host_is_told_to_drop_the_dot() -> None:
    problem = store_endpoint_problem("https://s3.example.org./")
    assert problem is not None
    assert "ends in a dot" in problem and "'s3.example.org'" in problem, problem
    assert "not a DNS name" not in problem, problem
    _refused(
        "ovh-gra",
        {"storage.endpoint": "https://s3.example.org."},
        "site.storage.endpoint",
        "write the name without it, 's3.example.org'",
    )


# ---- F9: messages that are true and say what is allowed --------------------------------------


@pytest.mark.parametrize("namespace", ["kube-eo", "kube-system"])
def test_the_kube_prefix_is_said_to_be_reserved(namespace: str) -> None:
    message = _refused(
        "cf-waw",
        {"services.namespace": namespace},
        "site.services.namespace",
        "Kubernetes reserves the kube- prefix for its own namespaces",
    )
    assert "keeps for itself" not in message, message


def test_a_relative_date_is_not_told_to_quote_it_and_hears_what_is_allowed(tmp_path) -> None:
    for written in ("-1", '"-1"'):
        stacks = example_stacks(tmp_path / f"stacks{len(written)}", ("aws-frankfurt",))
        path = stacks / "Pulumi.aws-frankfurt.yaml"

        def edit(site: dict[str, Any]) -> None:
            sentinel = site["services"]["ingestion"]["sentinel"]
            sentinel["polytope"] = [{**POLYTOPE, "requests": [{**REQUEST, "date": "DATE"}]}]
            sentinel["polytope_credentials"] = POLYTOPE_KEY

        edit_site(path, edit)
        path.write_text(re.sub(r"date: '?DATE'?", f"date: {written}", path.read_text()))
        with pytest.raises(StackConfigError) as refused:
            check_stack_file(path, check_federation=False)
        text = str(refused.value)
        assert "-1 is not an absolute date: allowed are dates yyyymmdd or yyyy-mm-dd" in text
        assert "quote it" not in text, text


# ---- F10: the default issuer kind beside a Secret ----------------------------------------------


def test_the_default_issuer_kind_beside_a_secret_is_taken() -> None:
    exposure = "services.catalog.exposure.tls"
    assert not _issues("hpc-kajaani", {f"{exposure}.cert_manager_issuer_kind": "ClusterIssuer"})
    _refused(
        "hpc-kajaani",
        {f"{exposure}.cert_manager_issuer_kind": "Issuer"},
        f"site.{exposure}.cert_manager_issuer_kind",
        "remove cert_manager_issuer_kind",
    )
