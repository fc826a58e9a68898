"""`fedeploy plan` reports per site what each release scrapes and alerts on, and advises where a
production site would install no alert."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from fedeploy.plan.formats import as_text
from fedeploy.plan.monitoring import monitoring_findings, monitoring_mode, release_monitoring

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
        # The one the plan gives is the unwatched bridge's (hpc-kajaani's).
        assert not [
            f
            for f in site["findings"]
            if f["rule"] == "monitoring" and "bridge" not in f["message"]
        ]
    text = as_text(example_report)
    assert "monitoring: where the cluster serves monitoring.coreos.com/v1: " in text
    assert "IngestBrokerDisconnected" in text and "CatalogApiUnavailable" in text


# The example federation's Prometheus: kube-prometheus-stack, released as
# kube-prometheus-stack, with a Pushgateway (stacks/*.yaml, monitoring).
SELECTOR = {"release": "kube-prometheus-stack"}


def test_the_example_stacks_wire_every_chart_to_their_prometheus(example_report, example_plans):
    from fedeploy.plan.checks import RELEASE

    for name, plan in example_plans.items():
        releases = plan.by_type(RELEASE)
        assert releases, name
        for release in releases:
            monitoring = release.inputs["values"]["monitoring"]
            assert monitoring["labels"] == SELECTOR, (name, release.name)
            assert monitoring["enabled"] == "auto"
    sites = example_report.to_dict()["sites"]
    assert (
        "CatalogHarvestMemberStale"
        in sites["eu-hub"]["services"]["catalog"]["monitoring"]["alerts"]
    )
    for name in ("aws-frankfurt", "aws-dublin", "hpc-kajaani"):  # the Sentinel copies
        alerts = sites[name]["services"]["ingestion"]["monitoring"]["alerts"]
        assert "IngestSentinelCopiedNothing" in alerts, name


def test_the_site_monitoring_block_maps_onto_every_charts_values():
    from fedeploy.config.monitoring import Monitoring
    from fedeploy.values.services import _common
    from fedeploy.values.wiring import SiteWiring

    block = Monitoring.model_validate(
        {
            "enabled": True,
            "selector_labels": SELECTOR,
            "namespace": "observability",
            "prometheus_pod_labels": {"app": "prom"},
            "scrape_interval": "1m",
            "dashboards": {
                "enabled": False,
                "namespace": "grafana",
                "label": "d",
                "label_value": "y",
            },
            "pushgateway": {
                "url": "http://pg.observability.svc:9091",
                "namespace": "observability",
            },
            "alerts": {"enabled": False, "runbook_url": "https://wiki.example.org/runbooks"},
        }
    )
    wiring = SiteWiring("s", "kubernetes", "fedeploy", "", "", "", {}, None, None, monitoring=block)
    expected = {
        "enabled": True,
        "namespace": "observability",
        "prometheusPodLabels": {"app": "prom"},
        "labels": SELECTOR,
        "scrapeInterval": "1m",
        "runbookUrl": "https://wiki.example.org/runbooks",
        "dashboards": {"enabled": False, "namespace": "grafana", "label": "d", "labelValue": "y"},
        "alerts": {"enabled": False},
    }
    pushgateway = {
        "url": "http://pg.observability.svc:9091",
        "namespace": "observability",
        "podLabels": {"app.kubernetes.io/name": "prometheus-pushgateway"},
    }
    assert _common(wiring, "inference")["monitoring"] == expected
    for chart in ("catalog", "ingestion"):
        assert _common(wiring, chart)["monitoring"] == {**expected, "pushgateway": pushgateway}
    # Every key the block sets is one the charts' values declare.
    for chart in ("catalog", "ingestion", "inference"):
        declared = yaml.safe_load((ROOT / f"charts/{chart}/values.yaml").read_text())["monitoring"]
        for key, value in _common(wiring, chart)["monitoring"].items():
            assert key in declared, (chart, key)
            if isinstance(value, dict) and key not in ("labels", "prometheusPodLabels"):
                assert set(value) <= set(declared[key]), (chart, key)


@pytest.mark.parametrize(
    "url",
    ["http://user:secret@pg.monitoring.svc:9091", "ftp://pg:9091", "http://pg svc"],
)
def test_a_pushgateway_url_with_credentials_or_not_http_is_refused(url):
    from pydantic import ValidationError

    from fedeploy.config.monitoring import Monitoring

    with pytest.raises(ValidationError) as refused:
        Monitoring.model_validate({"pushgateway": {"url": url}})
    (error,) = refused.value.errors()
    assert error["loc"] == ("pushgateway", "url")
    assert error["type"] == ("url_userinfo" if "@" in url else "value_error")


def test_a_production_site_without_selector_labels_is_advised():
    summary = _monitoring(INGESTION)
    production = {"name": "eu-cloud", "environment": "production"}
    (finding,) = monitoring_findings(production, {"ingestion": summary}, {"ingestion": {}})
    assert finding.enforcement == "advisory"
    assert "monitoring.selector_labels" in finding.message and "ingestion" in finding.resource
    assert monitoring_findings(production, {"ingestion": summary}, {"ingestion": SELECTOR}) == []
    staging = {**production, "environment": "staging"}
    assert monitoring_findings(staging, {"ingestion": summary}, {"ingestion": {}}) == []


def test_the_plan_says_plainly_where_no_alert_watches_a_bridge(example_report):
    """A release wired to a bridge whose probe (and so SlurmBridgeDown) is not installed is
    advised; the example's HPC site installs the probe, so its plan lists the probe's monitor
    and the bridge alerts, and gives no such advice."""
    summary = {
        "mode": "auto",
        "targets": ["ServiceMonitor/inference"],
        "alerts": ["InferenceNotReady", "SlurmBridgeSubmissionsFailing"],
    }
    site = {"name": "hpc", "environment": "staging"}
    (finding,) = monitoring_findings(
        site, {"inference": summary}, bridges={"inference": "https://b:6820"}
    )
    assert finding.enforcement == "advisory" and finding.resource == "inference"
    assert "no alert" in finding.message and "https://b:6820" in finding.message
    assert "bridge.probe.enabled" in finding.message
    assert monitoring_findings(site, {"inference": summary}, bridges={"inference": ""}) == []
    probed = {**summary, "alerts": [*summary["alerts"], "SlurmBridgeDown"]}
    own = {"inference": "slurm-probe"}
    watched = monitoring_findings(
        site, {"inference": probed}, bridges={"inference": "https://b"}, probe_secrets=own
    )
    assert watched == []
    # Watched, but the probe holds the submitting token: advised to give it its own account.
    (shared,) = monitoring_findings(site, {"inference": probed}, bridges={"inference": "https://b"})
    assert "site.bridge.probe.existing_secret" in shared.message
    report = example_report.to_dict()["sites"]["hpc-kajaani"]
    findings = report["findings"]
    assert not [f for f in findings if f["rule"] == "monitoring" and "no alert" in f["message"]]
    monitoring = report["services"]["inference"]["monitoring"]
    assert "PodMonitor/inference-bridge-probe" in monitoring["targets"]
    assert "SlurmBridgeDown" in monitoring["alerts"]


def test_the_plan_renders_lists_and_checks_the_bridge_probe(
    example_report, example_plans, monkeypatch, tmp_path
):
    """The bridge probe renders only where the operator's API is served; the plan renders it
    with the monitors (monitoring/<release>.yaml of --out), counts it in the release's renders
    and runs the workload checks and the Kubernetes schemas over it (review finding 7)."""
    import fedeploy.plan.checks as checks
    from fedeploy.plan.run import write_out

    wiring = example_report.to_dict()["sites"]["hpc-kajaani"]["services"]["inference"]
    assert wiring["manifests"]["Deployment"] == 2
    assert wiring["manifests"]["ServiceAccount"] == 2
    write_out(example_report, tmp_path)
    monitoring = list(
        yaml.safe_load_all((tmp_path / "hpc-kajaani/monitoring/inference.yaml").read_text())
    )
    assert ("Deployment", "inference-bridge-probe") in {
        (m["kind"], m["metadata"]["name"]) for m in monitoring
    }
    seen: list[str] = []
    validated: list[str] = []

    def workloads(manifests, where):  # type: ignore[no-untyped-def]
        seen.extend(m["metadata"]["name"] for m in manifests if m["kind"] == "Deployment")
        return []

    def validate(manifests, kube_version, strict):  # type: ignore[no-untyped-def]
        validated.extend(m["metadata"]["name"] for m in manifests if m["kind"] == "Deployment")
        return []

    monkeypatch.setattr(checks, "workload_findings", workloads)
    monkeypatch.setattr("fedeploy.charts.validate_manifests", validate)
    checks.render_releases(example_plans["hpc-kajaani"], ROOT, "1.30.0")
    assert "inference-bridge-probe" in seen and "inference-bridge-probe" in validated


def test_a_setting_for_an_alert_the_site_does_not_install_is_advised_by_its_key(tmp_path):
    """hpc-kajaani installs neither SlurmBridgeSubmissionsFailing (retraining is not on: no
    stack-file key turns it on) nor IngestDeadLettersRising (no stream consumer): settings for
    them change nothing, and the plan says so naming each key path (review finding 4); a
    setting of an installed alert is not advised."""
    from fedeploy.plan.run import run_plan

    source = (ROOT / "stacks/Pulumi.hpc-kajaani.yaml").read_text()
    url = "        url: http://prometheus-pushgateway.monitoring.svc:9091\n"
    assert url in source
    rules = (
        "      alerts:\n        rules:\n"
        "          SlurmBridgeSubmissionsFailing:\n            threshold: 3600\n"
        "          IngestDeadLettersRising:\n            threshold: 20\n"
        "          SlurmBridgeDown:\n            for: 15m\n"
    )
    (tmp_path / "Pulumi.hpc-kajaani.yaml").write_text(source.replace(url, url + rules))
    report = run_plan(tmp_path, jobs=1, cache=None)
    findings = report.to_dict()["sites"]["hpc-kajaani"]["findings"]
    advised = {f["resource"]: f for f in findings if "does not install" in f["message"]}
    assert sorted(advised) == [
        "site.monitoring.alerts.rules.IngestDeadLettersRising",
        "site.monitoring.alerts.rules.SlurmBridgeSubmissionsFailing",
    ]
    assert all(f["enforcement"] == "advisory" for f in advised.values())
    assert (
        "retrain.enabled"
        in advised["site.monitoring.alerts.rules.SlurmBridgeSubmissionsFailing"]["message"]
    )


def test_the_bridge_probe_takes_its_own_account_from_the_stack_file(example_report, tmp_path):
    """Without site.bridge.probe the probe holds the submitting token, which the plan advises;
    with it, the probe mounts that Secret and the advice goes (review finding 5)."""
    from fedeploy.plan.run import run_plan, write_out

    findings = example_report.to_dict()["sites"]["hpc-kajaani"]["findings"]
    assert [f for f in findings if "site.bridge.probe.existing_secret" in f["message"]]
    source = (ROOT / "stacks/Pulumi.hpc-kajaani.yaml").read_text()
    bridge = "    bridge:\n      mode: gateway\n"
    assert bridge in source
    probe = "      probe:\n        existing_secret: slurm-probe\n"
    (tmp_path / "Pulumi.hpc-kajaani.yaml").write_text(source.replace(bridge, bridge + probe))
    report = run_plan(tmp_path, jobs=1, cache=None)
    findings = report.to_dict()["sites"]["hpc-kajaani"]["findings"]
    assert not [f for f in findings if "site.bridge.probe.existing_secret" in f["message"]]
    write_out(report, tmp_path / "out")
    monitoring = yaml.safe_load_all(
        (tmp_path / "out/hpc-kajaani/monitoring/inference.yaml").read_text()
    )
    (probe_pod,) = [
        m["spec"]["template"]["spec"]
        for m in monitoring
        if m["kind"] == "Deployment" and m["metadata"]["name"] == "inference-bridge-probe"
    ]
    (volume,) = [v for v in probe_pod["volumes"] if v["name"] == "bridge"]
    assert volume["secret"]["secretName"] == "slurm-probe"
