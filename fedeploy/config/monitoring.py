"""The `monitoring` block of a site: how the site's charts meet the cluster's Prometheus.

Each field maps one to one onto the `monitoring` values of every chart on the site
(fedeploy.values.services.monitoring_values); docs/charts.md, Monitoring, says what they render.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from fedeploy.config.base import StrictModel, no_userinfo

LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"

LabelKey = Annotated[str, Field(pattern=LABEL_KEY_PATTERN, max_length=253)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]
Labels = dict[LabelKey, LabelValue]

PushgatewayUrl = Annotated[
    str,
    BeforeValidator(no_userinfo),
    Field(
        pattern=r"^(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s]*)?)?$",
        max_length=2048,
        description="URL of the site's Prometheus Pushgateway, where the Sentinel workers and "
        "the hub's harvest push their outcome when their runs end (http or https, host, "
        "optional port and path, no user name or password); empty: none, and the alerts that "
        "read pushed series (IngestSentinelCopiedNothing, CatalogHarvestMemberStale) are not "
        "installed.",
    ),
]


class Pushgateway(StrictModel):
    """The site's Prometheus Pushgateway, for batch runs' outcomes."""

    url: PushgatewayUrl = ""
    namespace: str = Field(
        "monitoring",
        pattern=NAMESPACE_PATTERN,
        description="Namespace of the Pushgateway's pods (the NetworkPolicies let the batch runs "
        "reach them there, on the URL's port only).",
    )
    pod_labels: Labels = Field(
        {"app.kubernetes.io/name": "prometheus-pushgateway"},
        min_length=1,
        description="Labels of the Pushgateway's pods.",
    )


class Dashboards(StrictModel):
    """The Grafana dashboards, as ConfigMaps for Grafana's dashboard sidecar."""

    enabled: bool = Field(True, description="Renders each chart's dashboard ConfigMap.")
    namespace: str = Field(
        "",
        pattern=r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$",
        description="Namespace of the dashboard ConfigMaps (where the sidecar looks); empty: "
        "the services' namespace.",
    )
    label: LabelKey = Field(
        "grafana_dashboard",
        description="Label the sidecar selects dashboard ConfigMaps by (kube-prometheus-stack: "
        "grafana_dashboard).",
    )
    label_value: LabelValue = Field("1", description="Value of that label.")


class Alerts(StrictModel):
    """The alert rules (PrometheusRules; a runbook per alert in docs/operations.md)."""

    enabled: bool = Field(True, description="Installs each chart's alert rules.")
    runbook_url: Annotated[
        str, BeforeValidator(no_userinfo), Field(pattern=r"^https?://\S+$", max_length=2048)
    ] = Field(
        "https://github.com/fedeploy/fedeploy/blob/main/docs/operations.md",
        description="Base URL of the runbooks; each alert links <runbook_url>#<alert name in "
        "lower case> (a copy of docs/operations.md your on-call reaches).",
    )


class Monitoring(StrictModel):
    """How the site's charts meet the cluster's Prometheus (prometheus-operator's API)."""

    enabled: Literal["auto"] | bool = Field(
        "auto",
        description="Renders the monitors, alert rules and dashboards: auto (only where the "
        "cluster serves monitoring.coreos.com/v1), true or false.",
    )
    selector_labels: Labels = Field(
        default_factory=dict,
        description="Labels on every PodMonitor, ServiceMonitor and PrometheusRule, which the "
        "cluster's Prometheus selects them by: kube-prometheus-stack selects only "
        "`release: <its Helm release name>` unless told otherwise; empty: a Prometheus that "
        "selects every monitor and rule.",
    )
    namespace: str = Field(
        "monitoring",
        pattern=NAMESPACE_PATTERN,
        description="Namespace of the cluster's Prometheus: the only one the NetworkPolicies "
        "admit, to the metrics ports only.",
    )
    prometheus_pod_labels: Labels = Field(
        {"app.kubernetes.io/name": "prometheus"},
        description="Labels of the Prometheus pods in that namespace; empty admits every pod "
        "there.",
    )
    scrape_interval: str = Field(
        "30s",
        pattern=r"^([0-9]+(ms|s|m|h|d|w|y))+$",
        description="How often Prometheus scrapes the services (a Prometheus duration).",
    )
    dashboards: Dashboards = Field(default_factory=Dashboards, description="Grafana dashboards.")
    pushgateway: Pushgateway = Field(
        default_factory=Pushgateway, description="The Pushgateway batch runs push to."
    )
    alerts: Alerts = Field(default_factory=Alerts, description="The alert rules.")

    def chart_values(self, pushes: bool) -> dict[str, Any]:
        """The charts' `monitoring` values; `pushes`: the chart's batch runs push outcomes."""
        values: dict[str, Any] = {
            "enabled": self.enabled,
            "namespace": self.namespace,
            "prometheusPodLabels": dict(self.prometheus_pod_labels),
            "labels": dict(self.selector_labels),
            "scrapeInterval": self.scrape_interval,
            "runbookUrl": self.alerts.runbook_url,
            "dashboards": {
                "enabled": self.dashboards.enabled,
                "namespace": self.dashboards.namespace,
                "label": self.dashboards.label,
                "labelValue": self.dashboards.label_value,
            },
            "alerts": {"enabled": self.alerts.enabled},
        }
        if pushes:
            values["pushgateway"] = {
                "url": self.pushgateway.url,
                "namespace": self.pushgateway.namespace,
                "podLabels": dict(self.pushgateway.pod_labels),
            }
        return values
