"""What the offline plan reports of each release's monitoring: its scrape targets and alerts, and
the advice for a production site that would install none.

A chart renders its monitors, rules and dashboards where the cluster serves the
prometheus-operator's API (`monitoring.enabled: auto`, the default), always (`true`) or never
(`false`). The plan sees no cluster, so for `auto` it renders the chart once more as a cluster
with the operator would, to list what would be installed there: the monitors, rules and
dashboards (templates/monitoring.yaml) and what runs only for them (templates/bridge-probe.yaml:
the inference chart's bridge probe, its ServiceAccount and NetworkPolicy), which the plan checks
like the release's other manifests (operator_workloads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policies.findings import Finding

OPERATOR_API = "monitoring.coreos.com/v1"
_TARGETS = ("PodMonitor", "ServiceMonitor")
# The templates of the charts that render only where monitoring renders: the monitors, rules
# and dashboards, and the inference chart's bridge probe (which only monitoring reads).
OPERATOR_TEMPLATES = ("monitoring.yaml", "bridge-probe.yaml")


def monitoring_mode(values: dict[str, Any]) -> str:
    """The release's `monitoring.enabled` as "auto", "on" or "off" (charts without it: "off")."""
    section = values.get("monitoring")
    enabled = section.get("enabled", "auto") if isinstance(section, dict) else "auto"
    if enabled is True:
        return "on"
    if enabled is False:
        return "off"
    return "auto"


def summarise(manifests: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """{mode, targets: ["PodMonitor/name", ...], alerts: [names]} from rendered manifests."""
    return {
        "mode": mode,
        "targets": sorted(
            f"{m['kind']}/{m['metadata']['name']}" for m in manifests if m.get("kind") in _TARGETS
        ),
        "alerts": sorted(
            str(rule["alert"])
            for m in manifests
            if m.get("kind") == "PrometheusRule"
            for group in (m.get("spec") or {}).get("groups") or []
            for rule in group.get("rules") or []
            if "alert" in rule
        ),
    }


def operator_manifests(
    chart_dir: Path,
    values: dict[str, Any],
    release: str,
    namespace: str,
    schema_checked: bool = False,
) -> list[dict[str, Any]]:
    """For `auto`, the objects a cluster that serves the operator's API gets, which the plan's
    own render (no cluster) leaves out (the templates OPERATOR_TEMPLATES: monitors, rules,
    dashboards, the bridge probe); else none. `schema_checked`: the values passed the chart's
    schema in the release's own render (render_chart's)."""
    from fedeploy.charts import render_chart

    if monitoring_mode(values) != "auto":
        return []
    return render_chart(
        chart_dir,
        values,
        release,
        namespace,
        [OPERATOR_API],
        only=OPERATOR_TEMPLATES,
        schema_checked=schema_checked,
    )


def operator_workloads(operator: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of `operator` (operator_manifests), the Kubernetes objects that run or guard something
    (the bridge probe's Deployment, ServiceAccount, NetworkPolicy): not the operator's own
    kinds and not the dashboards' ConfigMaps. The plan validates and checks them and counts
    them in the release's renders."""
    return [
        m
        for m in operator
        if not str(m.get("apiVersion", "")).startswith("monitoring.coreos.com/")
        and m.get("kind") != "ConfigMap"
    ]


def release_monitoring(
    chart_dir: Path,
    values: dict[str, Any],
    release: str,
    namespace: str,
    manifests: list[dict[str, Any]],
    operator: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What a release monitors and alerts on; for `auto`, on a cluster with the operator
    (`operator`: those objects, rendered here when not given)."""
    mode = monitoring_mode(values)
    if mode == "auto":
        manifests = (
            operator
            if operator is not None
            else operator_manifests(chart_dir, values, release, namespace)
        )
    summary = summarise(manifests if mode != "off" else [], mode)
    changed = changed_settings(chart_dir.name, values)
    if changed and mode != "off":
        summary["settings"] = changed
    return summary


def changed_settings(chart: str, values: dict[str, Any]) -> dict[str, Any]:
    """The chart's alert settings (`monitoring.alerts` values) the stack file changed from the
    chart's defaults, {value key: value}, in the order of the chart's defaults."""
    from fedeploy.config.monitoring import CHART_ALERT_DEFAULTS

    section = values.get("monitoring")
    given = section.get("alerts") if isinstance(section, dict) else None
    defaults = CHART_ALERT_DEFAULTS.get(chart, {})
    if not isinstance(given, dict):
        return {}
    return {key: given[key] for key in defaults if key in given and given[key] != defaults[key]}


def monitoring_findings(
    site: Any,
    monitoring: dict[str, dict[str, Any]],
    selector_labels: dict[str, dict[str, Any]] | None = None,
    bridges: dict[str, str] | None = None,
    probe_secrets: dict[str, str] | None = None,
) -> list[Finding]:
    """Advisory, on any site whose release is wired to a SLURM bridge that no alert watches
    (`bridges`: each release's bridge endpoint, "" for none), or whose bridge probe holds the
    submitting token (`probe_secrets`: each release's bridge.probe.existingSecret, "" for none);
    on a production site whose
    releases would install no alert at all, or whose monitors and rules carry no label a
    Prometheus selects them by (`selector_labels`: each release's `monitoring.labels`)."""
    if not isinstance(site, dict) or not monitoring:
        return []
    findings = [
        Finding(
            "monitoring",
            name,
            f"no alert watches the SLURM bridge {endpoint}: nothing probes it (the inference "
            "chart's bridge probe and SlurmBridgeDown render with bridge.probe.enabled and "
            "monitoring.alerts.enabled where monitoring renders); an unreachable bridge goes "
            "unnoticed until a submission fails (docs/charts.md, Monitoring)",
            enforcement="advisory",
        )
        for name, endpoint in sorted((bridges or {}).items())
        if endpoint and "SlurmBridgeDown" not in monitoring.get(name, {}).get("alerts", [])
    ]
    findings += [
        Finding(
            "monitoring",
            name,
            "the bridge probe uses the bridge's own Secret, whose token can submit and cancel "
            "jobs as the service user, though it only pings: give it a ping-only account "
            "(site.bridge.probe.existing_secret; docs/operations.md, SlurmBridgeDown)",
            enforcement="advisory",
        )
        for name, endpoint in sorted((bridges or {}).items())
        if endpoint
        and "SlurmBridgeDown" in monitoring.get(name, {}).get("alerts", [])
        and not (probe_secrets or {}).get(name)
    ]
    if site.get("environment") != "production":
        return findings
    return findings + _production_findings(monitoring, selector_labels)


def _production_findings(
    monitoring: dict[str, dict[str, Any]], selector_labels: dict[str, dict[str, Any]] | None
) -> list[Finding]:
    """A production site's: no alert at all, or monitors and rules no Prometheus selects."""
    if not any(summary["alerts"] for summary in monitoring.values()):
        return [
            Finding(
                "monitoring",
                ", ".join(sorted(monitoring)),
                "production site installs no alert and no scrape target: set the site's "
                "monitoring.enabled (auto or true) and monitoring.alerts.enabled, and run "
                "prometheus-operator (kube-prometheus-stack) in its cluster (docs/charts.md, "
                "Monitoring)",
                enforcement="advisory",
            )
        ]
    unlabelled = sorted(
        name
        for name, summary in monitoring.items()
        if summary["mode"] != "off"
        and (summary["alerts"] or summary["targets"])
        and not (selector_labels or {}).get(name)
    )
    if selector_labels is None or not unlabelled:
        return []
    return [
        Finding(
            "monitoring",
            ", ".join(unlabelled),
            "production site sets no monitoring.selector_labels: a kube-prometheus-stack "
            "Prometheus selects monitors and rules by `release: <its release name>` and ignores "
            "these, so nothing is scraped and no alert is evaluated; set the labels its "
            "Prometheus selects by (docs/charts.md, Monitoring)",
            enforcement="advisory",
        )
    ]


# Alerts that render only with the inference chart's retrain.enabled, which no stack-file key
# turns on yet (hand-made chart values only).
_RETRAIN_ALERTS = (
    "InferenceRetrainSubmissionFailed",
    "InferenceRetrainNoSuccess",
    "SlurmBridgeSubmissionsFailing",
)


def uninstalled_alert_findings(site: Any, monitoring: dict[str, dict[str, Any]]) -> list[Finding]:
    """Advisory, per setting of `site.monitoring.alerts.rules` (`site`: the site's config)
    that names an alert none of the site's releases installs (`monitoring`: each release's
    summary, by chart name): the setting changes nothing there. Naming the key path."""
    from fedeploy.config.monitoring import ALERT_KNOBS

    alerts = getattr(getattr(site, "monitoring", None), "alerts", None)
    rules = getattr(alerts, "rules", None)
    if rules is None:
        return []
    installed = {alert for summary in monitoring.values() for alert in summary.get("alerts", [])}
    findings = []
    for name in ALERT_KNOBS:
        if getattr(rules, name, None) is None or name in installed:
            continue
        why = (
            "it renders only with the inference chart's retrain.enabled (and, for "
            "SlurmBridgeSubmissionsFailing, a Pushgateway), which no stack-file key turns on yet"
            if name in _RETRAIN_ALERTS
            else "no release of this site renders it (its service, feature or monitoring is off "
            "here)"
        )
        findings.append(
            Finding(
                "monitoring",
                f"site.monitoring.alerts.rules.{name}",
                f"sets {name}, which this site does not install: {why}; the setting changes "
                "nothing here (docs/configuration.md, Alert thresholds)",
                enforcement="advisory",
            )
        )
    return findings
