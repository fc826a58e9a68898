"""Review sweep33 F4: `monitoring.enabled: true` (documented: auto, true or false) could never
plan clean: the operator's kinds (PodMonitor, ServiceMonitor, PrometheusRule of
monitoring.coreos.com/v1) are then in the release's manifests, and the manifest schema check
reported each as having no schema. They are now validated against their CRDs' schemas
(fedeploy/crd_schemas, from prometheus-operator), with `true` as with `auto` (where the plan
renders them apart, for a cluster that serves the operator's API)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from fedeploy.plan import checks
from fedeploy.plan.checks import RenderedRelease

ROOT = Path(__file__).resolve().parents[2]
MONITORING_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}


@pytest.mark.parametrize("site", ["cf-waw", "hpc-kajaani"])
def test_a_site_with_monitoring_enabled_true_plans_clean(tmp_path, site):
    from fedeploy.plan.run import run_plan

    source = (ROOT / f"stacks/Pulumi.{site}.yaml").read_text()
    assert source.count("\n    monitoring:\n") == 1
    (tmp_path / f"Pulumi.{site}.yaml").write_text(
        source.replace("\n    monitoring:\n", "\n    monitoring:\n      enabled: true\n")
    )
    report = run_plan(tmp_path, jobs=1, cache=None)
    assert report.violations == [], [f.message for _, f in report.violations]
    assert [f for f in report.sites[site].findings if f.rule == "manifest-schema"] == []
    # The operator's objects are in the releases' manifests, and were validated there.
    releases = report.sites[site].releases
    kinds = {m["kind"] for release in releases for m in release.manifests}
    assert kinds & MONITORING_KINDS == MONITORING_KINDS
    assert {release.monitoring["mode"] for release in releases} == {"on"}


def _release(chart: str, site: str) -> RenderedRelease:
    from tests.charts.conftest import NAMESPACE, SITES

    return RenderedRelease(chart, f"charts/{chart}", NAMESPACE, copy.deepcopy(SITES[site][chart]))


def _broken(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's objects with a field their CRD does not have, or a wrong type."""
    broken = copy.deepcopy(manifests)
    for manifest in broken:
        if manifest["kind"] == "PodMonitor":
            manifest["spec"]["podMetricsEndpoints"][0]["prot"] = "metrics"
        elif manifest["kind"] == "ServiceMonitor":
            manifest["spec"]["endpoints"][0]["interval"] = "30 seconds"
        elif manifest["kind"] == "PrometheusRule":
            manifest["spec"]["groups"][0]["rules"][0]["for"] = 5
    return broken


@pytest.mark.parametrize(("chart", "site"), [("catalog", "published"), ("inference", "hpc")])
@pytest.mark.parametrize("enabled", ["auto", True])
def test_the_operator_objects_are_validated_against_their_crd_schemas(
    monkeypatch, chart, site, enabled
):
    """In both modes a PodMonitor, ServiceMonitor or PrometheusRule that its CRD refuses is a
    manifest-schema violation naming the object and the field; valid ones are none."""
    from fedeploy import charts
    from fedeploy.plan import monitoring

    def checked() -> list[str]:
        release = _release(chart, site)
        release.values["monitoring"] = {"enabled": enabled}
        outcome, findings = checks._check_release(
            release, f"x-{chart}", ROOT / release.chart, "1.31"
        )
        assert outcome is not None
        rendered = release.manifests + release.operator_manifests
        assert {m["kind"] for m in rendered} & MONITORING_KINDS, "nothing to validate"
        return [f.message for f in findings if f.rule == "manifest-schema"]

    assert checked() == []
    if enabled == "auto":
        real = monitoring.operator_manifests
        monkeypatch.setattr(
            monitoring, "operator_manifests", lambda *a, **k: _broken(real(*a, **k))
        )
    else:
        render = charts.render_chart
        monkeypatch.setattr(charts, "render_chart", lambda *a, **k: _broken(render(*a, **k)))
    found = checked()
    assert found, "the broken operator objects were not validated"
    for message in found:
        assert "no schema" not in message
        assert any(f"{kind}/" in message for kind in MONITORING_KINDS), message
    expected = {"catalog": ["'prot' was unexpected", "5 is not of type 'string'"]}
    expected["inference"] = ["'30 seconds' does not match", "5 is not of type 'string'"]
    for words in expected[chart]:
        assert any(words in message for message in found), (words, found)


@pytest.mark.parametrize(("strategy", "valid"), [("warn", True), ("Abort", True), ("drop", False)])
def test_the_rule_schema_s_case_blind_pattern_is_checked_not_a_crash(strategy, valid):
    """PrometheusRule's partial_response_strategy pattern is `^(?i)(abort|warn)?$` in the CRD, a
    flag group Python's re refuses there ("global flags not at the start"): the vendored schema
    writes it `(?i)^(abort|warn)?$`, so a rule group with the field is checked, not a crash."""
    from fedeploy.charts import validate_manifests

    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "r"},
        "spec": {
            "groups": [
                {
                    "name": "g",
                    "partial_response_strategy": strategy,
                    "rules": [{"alert": "A", "expr": "up == 0", "for": "0s"}],
                }
            ]
        },
    }
    found = validate_manifests([rule], "1.31")
    assert found == ([] if valid else [found[0]]), found
    if not valid:
        assert "partial_response_strategy" in found[0] and "does not match" in found[0]
