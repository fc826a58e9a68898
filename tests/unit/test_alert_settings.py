"""Per-alert thresholds, `for:` durations and windows in the stack file (`monitoring.alerts.rules`):
the charts' defaults, validated with clear errors, passed to each chart's values so the rendered
PrometheusRule carries them, and shown on the plan's monitoring line where they change."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from fedeploy.config.loader import check_stack_file
from fedeploy.config.monitoring import ALERT_KNOBS, CHART_ALERT_DEFAULTS, Monitoring
from fedeploy.errors import StackConfigError
from fedeploy.plan.formats import _monitoring as monitoring_line
from fedeploy.plan.monitoring import release_monitoring
from fedeploy.values.services import _common
from fedeploy.values.wiring import SiteWiring
from tests.charts.conftest import CHARTS_DIR, SITES
from tests.charts.test_monitoring import alerts_of, monitored, pushing, rules_of

ROOT = Path(__file__).resolve().parents[2]
INVALID = ROOT / "tests" / "stack_files" / "invalid"
RULES = {
    "SlurmBridgeDown": {"for": "12m"},
    "IngestDeadLettersRising": {"threshold": 40, "window": "7m", "for": "3m"},
    "CatalogErrorRatio": {"threshold": 0.2},
    "CatalogAssetErrorRatio": {"threshold": 0.2, "for": "20m"},
}
# The value sets of tests/charts whose rules hold each alert.
SITE = {"inference": "hpc", "ingestion": "aws", "catalog": "published"}


def _chart_values(rules: dict, chart: str) -> dict:
    block = Monitoring.model_validate({"alerts": {"rules": rules}})
    wiring = SiteWiring("s", "kubernetes", "fedeploy", "", "", "", {}, None, None, monitoring=block)
    return _common(wiring, chart)["monitoring"]


def _rule(chart: str, name: str, monitoring: dict) -> dict:
    (spec,) = rules_of(monitored(chart, SITE[chart], {"monitoring": monitoring}))
    (rule,) = [r for r in alerts_of(spec) if r["alert"] == name]
    return rule


def test_the_defaults_are_the_charts_and_every_setting_names_a_value_of_its_chart():
    for chart, defaults in CHART_ALERT_DEFAULTS.items():
        declared = yaml.safe_load((ROOT / f"charts/{chart}/values.yaml").read_text())
        alerts = declared["monitoring"]["alerts"]
        assert {k: v for k, v in alerts.items() if k in defaults} == defaults, chart
    for name, knobs in ALERT_KNOBS.items():
        assert set(knobs.keys().values()) <= set(CHART_ALERT_DEFAULTS[knobs.chart]), name
    # Every alert the charts render for these sites is one a stack file can tune, and no other.
    rendered = {
        rule["alert"]
        for chart, site in [*SITE.items(), ("catalog", "hub")]
        for spec in rules_of(monitored(chart, site, pushing(chart)))
        for rule in alerts_of(spec)
    }
    assert set(ALERT_KNOBS) <= rendered
    assert {
        a for a in rendered - set(ALERT_KNOBS) if not a.startswith("CatalogRestoreDrill")
    } == set()


def test_a_setting_reaches_the_rendered_rule_and_only_its_chart():
    inference = _chart_values(RULES, "inference")
    assert inference["alerts"] == {"enabled": True, "bridgeDownFor": "12m"}
    assert _rule("inference", "SlurmBridgeDown", inference)["for"] == "12m"
    assert _rule("inference", "InferenceNotReady", inference)["for"] == "5m"  # default kept

    ingestion = _chart_values(RULES, "ingestion")
    rule = _rule("ingestion", "IngestDeadLettersRising", ingestion)
    assert rule["for"] == "3m"
    assert "[7m]" in rule["expr"] and "40" in rule["expr"]
    assert "deadLettersPerMinute" not in _chart_values({}, "ingestion")["alerts"]

    catalog = _chart_values(RULES, "catalog")
    assert catalog["alerts"] == {"enabled": True, "errorRatio": 0.2, "errorRatioFor": "20m"}
    for name in ("CatalogErrorRatio", "CatalogAssetErrorRatio"):
        rule = _rule("catalog", name, catalog)
        assert "0.2" in rule["expr"] and rule["for"] == "20m"


def test_the_plan_line_says_which_settings_differ_from_the_charts_defaults():
    values = {"monitoring": _chart_values(RULES, "catalog")}
    catalog = {**copy.deepcopy(SITES["published"]["catalog"]), **values}
    summary = release_monitoring(CHARTS_DIR / "catalog", catalog, "catalog", "fedeploy", [])
    assert summary["settings"] == {"errorRatio": 0.2, "errorRatioFor": "20m"}
    assert monitoring_line(summary).endswith(
        "; alert settings changed from the chart's defaults: errorRatio 0.2, errorRatioFor 20m"
    )
    # A value equal to the chart's default is no change; none at all leaves the line as it was.
    default = {**SITES["hpc"]["inference"], "monitoring": _chart_values(RULES, "inference")}
    default["monitoring"]["alerts"]["bridgeDownFor"] = "5m"
    summary = release_monitoring(CHARTS_DIR / "inference", default, "inference", "fedeploy", [])
    assert "settings" not in summary
    assert "changed" not in monitoring_line(summary)


@pytest.mark.parametrize(
    ("stem", "key", "says"),
    [
        (
            "alert-unknown-name",
            "site.monitoring.alerts.rules.SlurmBridgeDwn",
            [
                "unknown key 'SlurmBridgeDwn'",
                "did you mean 'SlurmBridgeDown'?",
                "allowed: CatalogApiUnavailable, ",
                "SlurmBridgeDown, SlurmBridgeSubmissionsFailing",
            ],
        ),
        (
            "alert-duration-in-words",
            "site.monitoring.alerts.rules.IngestBrokerDisconnected.for",
            ["given '5 minutes'", "a Prometheus duration", "e.g. 5m or 1h30m"],
        ),
        (
            "alert-ratio-above-1",
            "site.monitoring.alerts.rules.IngestNearMemoryLimit.threshold",
            ["given 1.5", "must be less than 1"],
        ),
        # A container is killed at its limit: a memory ratio of 1 could never fire.
        (
            "alert-memory-ratio-1",
            "site.monitoring.alerts.rules.IngestNearMemoryLimit.threshold",
            ["given 1;", "must be less than 1"],
        ),
        (
            "alert-setting-it-lacks",
            "site.monitoring.alerts.rules.SlurmBridgeDown.threshold",
            ["unknown key 'threshold'", "allowed: for"],
        ),
    ],
)
def test_a_bad_setting_is_a_clear_error_naming_file_key_value_and_what_is_allowed(stem, key, says):
    path = INVALID / f"Pulumi.{stem}.yaml"
    with pytest.raises(StackConfigError) as refused:
        check_stack_file(path, check_federation=False)
    text = str(refused.value)
    assert str(path) in text
    (line,) = [line for line in text.splitlines() if f"- {key}:" in line]
    for words in says:
        assert words in line, line
    assert "Traceback" not in text


def test_two_alerts_sharing_a_chart_value_may_not_give_it_two_values(tmp_path):
    source = (INVALID / "Pulumi.alert-ratio-above-1.yaml").read_text()
    path = tmp_path / "Pulumi.shared.yaml"
    path.write_text(
        source.replace(
            "          IngestNearMemoryLimit:\n            threshold: 1.5\n",
            "          CatalogErrorRatio:\n            threshold: 0.1\n"
            "          CatalogAssetErrorRatio:\n            threshold: 0.3\n",
        )
    )
    with pytest.raises(StackConfigError) as refused:
        check_stack_file(path, check_federation=False)
    text = str(refused.value)
    assert "rules.CatalogAssetErrorRatio.threshold: given 0.3" in text
    assert "rules.CatalogErrorRatio.threshold gives 0.1" in text
    assert "monitoring.alerts.errorRatio" in text
