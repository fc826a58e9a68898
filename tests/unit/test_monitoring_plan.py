"""`fedeploy plan` reports per site what each release scrapes and alerts on, and advises where a
production site would install no alert."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from fedeploy.monitoring import monitoring_findings, monitoring_mode, release_monitoring
from fedeploy.report import as_text

ROOT = Path(__file__).resolve().parents[2]
INGESTION = {
    "site": {"name": "eu-cloud", "kind": "kubernetes"},
    "storage": {
        "endpoint": "https://s3.eu-cloud.example.org",
        "region": "eu-west-1",
        "bucket": "fedeploy-eu-cloud-data",
        "existingSecret": "s3-credentials",
    },
    "catalog": {"url": "http://catalog.fedeploy.svc.cluster.local:8080"},
    "stream": {"enabled": True, "mqtt": {"host": "broker.example.org"}},
}


def _monitoring(values: dict) -> dict:
    return release_monitoring(ROOT / "charts/ingestion", values, "ingestion", "fedeploy", [])


@pytest.mark.parametrize(
    ("enabled", "mode"), [("auto", "auto"), (True, "on"), (False, "off"), (None, "auto")]
)
def test_the_mode_follows_monitoring_enabled(enabled, mode):
    values = {} if enabled is None else {"monitoring": {"enabled": enabled}}
    assert monitoring_mode(values) == mode


def test_auto_lists_what_a_cluster_with_the_operator_would_install():
    summary = _monitoring(INGESTION)
    assert summary["mode"] == "auto"
    assert summary["targets"] == ["PodMonitor/ingestion-stream"]
    assert "IngestBrokerDisconnected" in summary["alerts"]
    assert "IngestSentinelRunFailed" not in summary["alerts"]  # no Sentinel copy here


def test_off_installs_nothing_and_a_production_site_is_advised():
    values = copy.deepcopy(INGESTION)
    values["monitoring"] = {"enabled": False}
    summary = _monitoring(values)
    assert summary == {"mode": "off", "targets": [], "alerts": []}
    production = {"name": "eu-cloud", "environment": "production"}
    (finding,) = monitoring_findings(production, {"ingestion": summary})
    assert finding.rule == "monitoring" and finding.enforcement == "advisory"
    assert "monitoring.enabled" in finding.message
    assert monitoring_findings({**production, "environment": "staging"}, {"i": summary}) == []
    assert monitoring_findings(production, {"i": summary, "j": _monitoring(INGESTION)}) == []


def test_the_plan_report_shows_each_releases_monitoring(example_report):
    data = example_report.to_dict()
    for name, site in data["sites"].items():
        for service, wiring in site["services"].items():
            summary = wiring["monitoring"]
            assert summary["mode"] == "auto", (name, service)
            assert summary["alerts"], (name, service)
        assert not [f for f in site["findings"] if f["rule"] == "monitoring"]
    text = as_text(example_report)
    assert "monitoring: where the cluster serves monitoring.coreos.com/v1: " in text
    assert "IngestBrokerDisconnected" in text and "CatalogApiUnavailable" in text
