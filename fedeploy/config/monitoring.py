"""The `monitoring` block of a site: how the site's charts meet the cluster's Prometheus.

Each field maps one to one onto the `monitoring` values of every chart on the site
(fedeploy.values.services.monitoring_values); docs/charts.md, Monitoring, says what they render.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, create_model, model_validator

from fedeploy.config.addresses import PORT_PATTERN, url_port_problem
from fedeploy.config.base import StrictModel, no_userinfo

LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"

LabelKey = Annotated[str, Field(pattern=LABEL_KEY_PATTERN, max_length=253)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]
Labels = dict[LabelKey, LabelValue]

# The Pushgateway's URL: its clients are prometheus_client's push functions (urllib, which takes
# an IPv6 literal in brackets) and the charts' NetworkPolicies, which admit the Pushgateway's
# pods by namespace and labels (either address family) on the URL's port
# (fedeploy-common.urlPort, which reads the port after an IPv6 literal's brackets). A port
# outside 1-65535 becomes a NetworkPolicyPort the API server refuses.
PUSHGATEWAY_URL_PATTERN = (
    rf"^(https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:{PORT_PATTERN})?(/[^\s]*)?)?$"
)
PUSHGATEWAY_URL_WORDS = (
    "http:// or https://, a DNS name, an IPv4 address or an IPv6 address in brackets "
    "(http://[fd00::9]:9091), an optional port 1 to 65535 and path; no user name or password, "
    "no whitespace"
)


def pushgateway_url_problem(url: str) -> str | None:
    """Why `url` cannot be the site's Pushgateway URL; None when it can (empty: none)."""
    if not url:
        return None
    if not re.fullmatch(r"https?://\S+", url):
        return "is not an http:// or https:// URL without whitespace"
    if problem := url_port_problem(url):
        return problem
    authority = url.partition("://")[2].partition("/")[0]
    if authority.startswith("["):
        literal = authority[1:].partition("]")[0]
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return f"the address in brackets {literal!r} is not an IPv6 address"
    host = authority.rpartition("]")[0] + "]" if authority.startswith("[") else authority
    host = host if host.startswith("[") else host.partition(":")[0]
    if not re.fullmatch(PUSHGATEWAY_URL_PATTERN, url):
        return f"the host {host!r} is not a DNS name (letters, digits, '-', '.') or an address"
    if not host.startswith("[") and host.rsplit(".", 1)[-1].isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"the host {host!r} is neither a DNS name nor an IPv4 address"
    return None


def _bracketed_address(value: Any) -> Any:
    """An IPv6 literal that is none, named before urlsplit (no_userinfo) raises on it."""
    if isinstance(value, str) and value.partition("://")[2].startswith("["):
        literal = value.partition("://")[2][1:].partition("]")[0]
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise ValueError(
                f"the address in brackets {literal!r} is not an IPv6 address; allowed: "
                f"{PUSHGATEWAY_URL_WORDS}"
            ) from None
    return value


def _pushgateway_url(value: str) -> str:
    if problem := pushgateway_url_problem(value):
        raise ValueError(f"given {value!r}: {problem}; allowed: {PUSHGATEWAY_URL_WORDS}")
    return value


PushgatewayUrl = Annotated[
    str,
    BeforeValidator(no_userinfo),
    # Runs before no_userinfo (the last BeforeValidator runs first).
    BeforeValidator(_bracketed_address),
    Field(
        max_length=2048,
        json_schema_extra={"pattern": PUSHGATEWAY_URL_PATTERN},
        description="URL of the site's Prometheus Pushgateway, where the Sentinel workers and "
        "the hub's harvest push their outcome when their runs end (http or https; a DNS name, "
        "an IPv4 address or an IPv6 address in brackets, e.g. http://[fd00::9]:9091; an "
        "optional port 1 to 65535 and path; no user name or password); empty: none, and the "
        "alerts that read pushed series (IngestSentinelCopiedNothing, CatalogHarvestMemberStale) "
        "are not installed.",
    ),
    AfterValidator(_pushgateway_url),
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


# Prometheus's own duration grammar (prometheus/common model.ParseDuration, which promtool and
# the operator's CRD apply): units from the largest down, each at most once, not empty. Digits
# are bounded so that the largest value, 99y999w9999d99999h999999m9999999s999999999ms (about
# 159 years), fits the int64 nanoseconds Prometheus holds (about 292 years); "0" without a unit,
# which Prometheus also takes, is left out (0s says it).
DURATION_UNITS: tuple[tuple[str, int], ...] = (
    ("y", 2),
    ("w", 3),
    ("d", 4),
    ("h", 5),
    ("m", 6),
    ("s", 7),
    ("ms", 9),
)


def _duration_pattern() -> str:
    # One branch per first unit present, so the empty string matches none (no look-ahead:
    # pydantic's regex engine has none).
    part = [f"[0-9]{{1,{digits}}}{unit}" for unit, digits in DURATION_UNITS]
    branches = [
        part[first] + "".join(f"(?:{later})?" for later in part[first + 1 :])
        for first in range(len(part))
    ]
    return "^(?:" + "|".join(branches) + ")$"


def _positive_duration_pattern() -> str:
    # DURATION_PATTERN's durations with a digit other than 0: one branch per first unit whose
    # number is not zero, the units before it present only as zeros (0h30m), those after it any.
    zero = [f"0{{1,{digits}}}{unit}" for unit, digits in DURATION_UNITS]
    part = [f"[0-9]{{1,{digits}}}{unit}" for unit, digits in DURATION_UNITS]
    # Not zero, at most `digits` digits: the leading zeros, then a digit 1-9, then the rest.
    above_zero = [
        "(?:"
        + "|".join(
            "0" * zeros
            + "[1-9]"
            + (f"[0-9]{{0,{digits - 1 - zeros}}}" if zeros < digits - 1 else "")
            for zeros in range(digits)
        )
        + f"){unit}"
        for unit, digits in DURATION_UNITS
    ]
    branches = [
        "".join(f"(?:{before})?" for before in zero[:first])
        + above_zero[first]
        + "".join(f"(?:{later})?" for later in part[first + 1 :])
        for first in range(len(part))
    ]
    return "^(?:" + "|".join(branches) + ")$"


DURATION_PATTERN = _duration_pattern()
# A window of rate() (`[0s]` does not parse: "duration must be greater than 0") or a scrape
# interval (Prometheus ignores 0s and scrapes at its global interval): above zero.
POSITIVE_DURATION_PATTERN = _positive_duration_pattern()
_DURATION_RULES = (
    "digits and a unit: y, w, d, h, m, s or ms, e.g. 5m or 1h30m; the units from the largest "
    "down, each at most once, with at most 2 digits for y, 3 for w, 4 for d, 5 for h, 6 for m, "
    "7 for s and 9 for ms"
)
_DURATION_WORDS = f"a Prometheus duration ({_DURATION_RULES})"
_POSITIVE_DURATION_WORDS = (
    f"a Prometheus duration above zero ({_DURATION_RULES}; not 0s, 0m or any other zero)"
)
Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=48)]
PositiveDuration = Annotated[str, Field(pattern=POSITIVE_DURATION_PATTERN, max_length=48)]

# The charts' defaults (charts/*/values.yaml, monitoring.alerts; a test keeps them equal).
CHART_ALERT_DEFAULTS: dict[str, dict[str, Any]] = {
    "ingestion": {
        "brokerDisconnectedFor": "5m",
        "nothingReceivedFor": "30m",
        "deadLettersPerMinute": 5,
        "deadLettersWindow": "5m",
        "deadLettersFor": "10m",
        "streamUnavailableFor": "10m",
        "lagGraceSeconds": 600,
        "lagFor": "10m",
        "writeErrorsWindow": "10m",
        "writeErrorsFor": "15m",
        "sentinelMaxAgeSeconds": 46800,
        "sentinelNothingFor": "1d",
        "sentinelFailedWindowSeconds": 21600,
        "restarts": 2,
        "memoryLimitRatio": 0.9,
        "memoryFor": "15m",
    },
    "inference": {
        "notReadyFor": "5m",
        "unavailableFor": "10m",
        "errorRatio": 0.05,
        "window": "5m",
        "errorRatioFor": "10m",
        "latencySeconds": 1,
        "latencyFor": "10m",
        "retrainFailedWindowSeconds": 86400,
        "retrainMaxAgeSeconds": 1296000,
        "bridgeDownFor": "5m",
        "bridgeSubmissionFailedWindowSeconds": 86400,
        "restarts": 2,
        "memoryLimitRatio": 0.9,
        "memoryFor": "15m",
    },
    "catalog": {
        "errorRatio": 0.05,
        "window": "5m",
        "errorRatioFor": "10m",
        "latencySeconds": 2,
        "latencyFor": "10m",
        "apiUnavailableFor": "10m",
        "databaseNotReadyFor": "5m",
        "harvestFailedWindowSeconds": 3600,
        "harvestMaxAgeSeconds": 7200,
        "harvestRefusedHoldSeconds": 86400,
        "restarts": 2,
        "memoryLimitRatio": 0.9,
        "memoryFor": "15m",
    },
}


@dataclass(frozen=True)
class AlertKnobs:
    """Where one alert's settings live in its chart's `monitoring.alerts` values: the chart,
    the key of its threshold (with its unit and kind: one of _THRESHOLDS), of its `for:` and
    of its window."""

    chart: str
    threshold: str = ""
    unit: str = ""
    kind: str = "number"
    for_: str = ""
    window: str = ""

    def keys(self) -> dict[str, str]:
        """{stack-file key: chart value key} for the settings this alert has."""
        named = {"threshold": self.threshold, "for": self.for_, "window": self.window}
        return {key: value for key, value in named.items() if value}

    def describe(self, name: str) -> str:
        """What the alert's settings are, with the chart's defaults, for the reference."""
        defaults = CHART_ALERT_DEFAULTS[self.chart]
        said = {
            "threshold": f"threshold in {self.unit}",
            "for": "for",
            "window": "window",
        }
        settings = ", ".join(
            f"`{key}` ({said[key]}; {self.chart} chart's {chart_key}, default "
            f"{defaults[chart_key]})"
            for key, chart_key in self.keys().items()
        )
        return f"{name}: {settings}."


def _knobs(chart: str, for_: str = "", **more: Any) -> AlertKnobs:
    return AlertKnobs(chart, for_=for_, **more)


_RATIO = {"kind": "ratio", "unit": "a share of 1"}
_ERROR_RATIO = {"threshold": "errorRatio", **_RATIO, "window": "window"}
_LATENCY = {"threshold": "latencySeconds", "unit": "seconds (95th percentile)", "window": "window"}
# A container is killed at its memory limit, so its working set never exceeds it: a ratio of
# 1 or more could never fire.
_MEMORY = {"threshold": "memoryLimitRatio", "kind": "below_one", "unit": "a share of 1, below 1"}
_RESTARTS = {"threshold": "restarts", "unit": "restarts in 15 minutes", "kind": "int"}


def _seconds(key: str, what: str) -> dict[str, str]:
    return {"threshold": key, "unit": f"seconds {what}", "kind": "seconds"}


# Every alert whose settings a stack file may change, and the chart values they are. Several
# alerts of a chart can share a value (CatalogErrorRatio and CatalogAssetErrorRatio one error
# ratio, the harvest alerts one maximum age): a stack file giving them different values is
# refused.
ALERT_KNOBS: dict[str, AlertKnobs] = {
    "IngestBrokerDisconnected": _knobs("ingestion", "brokerDisconnectedFor"),
    "IngestNothingReceived": _knobs("ingestion", "nothingReceivedFor"),
    "IngestDeadLettersRising": _knobs(
        "ingestion",
        "deadLettersFor",
        threshold="deadLettersPerMinute",
        unit="dead letters a minute",
        window="deadLettersWindow",
    ),
    "IngestWriteErrors": _knobs("ingestion", "writeErrorsFor", window="writeErrorsWindow"),
    "IngestStreamUnavailable": _knobs("ingestion", "streamUnavailableFor"),
    "IngestLagBeyondWindow": _knobs(
        "ingestion", "lagFor", **_seconds("lagGraceSeconds", "beyond the window")
    ),
    "IngestSentinelRunFailed": _knobs(
        "ingestion", **_seconds("sentinelFailedWindowSeconds", "after the run's start")
    ),
    "IngestSentinelNoSuccess": _knobs(
        "ingestion", **_seconds("sentinelMaxAgeSeconds", "without a success")
    ),
    "IngestSentinelCopiedNothing": _knobs("ingestion", "sentinelNothingFor"),
    "IngestCrashLooping": _knobs("ingestion", **_RESTARTS),
    "IngestNearMemoryLimit": _knobs("ingestion", "memoryFor", **_MEMORY),
    "InferenceNotReady": _knobs("inference", "notReadyFor"),
    "InferenceServerUnavailable": _knobs("inference", "unavailableFor"),
    "InferenceErrorRatio": _knobs("inference", "errorRatioFor", **_ERROR_RATIO),
    "InferenceLatencyHigh": _knobs("inference", "latencyFor", **_LATENCY),
    "InferenceRetrainSubmissionFailed": _knobs(
        "inference", **_seconds("retrainFailedWindowSeconds", "after the run's start")
    ),
    "InferenceRetrainNoSuccess": _knobs(
        "inference", **_seconds("retrainMaxAgeSeconds", "without a success")
    ),
    "SlurmBridgeDown": _knobs("inference", "bridgeDownFor"),
    "SlurmBridgeSubmissionsFailing": _knobs(
        "inference", **_seconds("bridgeSubmissionFailedWindowSeconds", "after the failure")
    ),
    "InferenceCrashLooping": _knobs("inference", **_RESTARTS),
    "InferenceNearMemoryLimit": _knobs("inference", "memoryFor", **_MEMORY),
    "CatalogApiUnavailable": _knobs("catalog", "apiUnavailableFor"),
    "CatalogErrorRatio": _knobs("catalog", "errorRatioFor", **_ERROR_RATIO),
    "CatalogLatencyHigh": _knobs("catalog", "latencyFor", **_LATENCY),
    "CatalogAssetErrorRatio": _knobs("catalog", "errorRatioFor", **_ERROR_RATIO),
    "CatalogDatabaseNotReady": _knobs("catalog", "databaseNotReadyFor"),
    "CatalogHarvestFailed": _knobs(
        "catalog", **_seconds("harvestFailedWindowSeconds", "after the run's start")
    ),
    **{
        name: _knobs("catalog", **_seconds("harvestMaxAgeSeconds", "without a success"))
        for name in (
            "CatalogHarvestNoSuccess",
            "CatalogHarvestMemberStale",
            "CatalogHarvestMemberNeverHarvested",
        )
    },
    "CatalogHarvestItemsRefused": _knobs(
        "catalog", **_seconds("harvestRefusedHoldSeconds", "after the last refusal")
    ),
    "CatalogCrashLooping": _knobs("catalog", **_RESTARTS),
    "CatalogNearMemoryLimit": _knobs("catalog", "memoryFor", **_MEMORY),
}

_THRESHOLDS: dict[str, tuple[str, Any, str]] = {
    "int": ("Count", Annotated[int, Field(ge=0, strict=True)], "a whole number, 0 or more"),
    # The charts' windows and maximum ages: a whole number of seconds, at least one (their
    # values.schema.json refuses 0, which would make the alert fire at once or never).
    "seconds": (
        "Seconds",
        Annotated[int, Field(ge=1, strict=True)],
        "a whole number of seconds, 1 or more",
    ),
    "ratio": (
        "Ratio",
        Annotated[float, Field(gt=0, le=1, strict=True)],
        "a share above 0, at most 1",
    ),
    "below_one": (
        "Share",
        Annotated[float, Field(gt=0, lt=1, strict=True)],
        "a share above 0, below 1",
    ),
    "number": ("Number", Annotated[float, Field(gt=0, strict=True)], "a number above 0"),
}


@functools.cache
def _settings_model(kind: str, has_for: bool, has_window: bool) -> type[StrictModel]:
    """The model of an alert's settings of one shape: a threshold of `kind` ("" for none),
    a `for:`, a window; each optional (absent: the chart's default)."""
    fields: dict[str, Any] = {}
    name = "Alert"
    if kind:
        word, threshold, words = _THRESHOLDS[kind]
        name += word
        fields["threshold"] = (
            threshold | None,
            Field(None, description=f"The alert's threshold: {words} (its unit: see the alert)."),
        )
    if has_for:
        name += "For"
        fields["for_"] = (
            Duration | None,
            Field(
                None,
                alias="for",
                description=f"{_DURATION_WORDS}: how long the condition must hold before the "
                "alert fires.",
            ),
        )
    if has_window:
        name += "Window"
        fields["window"] = (
            PositiveDuration | None,
            Field(
                None,
                description=f"{_POSITIVE_DURATION_WORDS}: the window the rate is measured over.",
            ),
        )
    doc = "An alert's settings, each absent for the chart's default."
    model = create_model(f"{name}Settings", __base__=StrictModel, __doc__=doc, **fields)
    # Named in this module, so that pickle finds the class by its name: plan workers send the
    # parsed site (these settings in it) to the planning process.
    model.__module__ = __name__
    globals()[model.__name__] = model
    return model


_RULE_FIELDS: dict[str, Any] = {
    name: (
        _settings_model(knobs.threshold and knobs.kind, bool(knobs.for_), bool(knobs.window))
        | None,
        Field(None, description=knobs.describe(name)),
    )
    for name, knobs in ALERT_KNOBS.items()
}
AlertRules = create_model(
    "AlertRules",
    __base__=StrictModel,
    __doc__="Per alert, its settings changed from the charts' defaults.",
    **_RULE_FIELDS,
)


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
    rules: AlertRules = Field(  # type: ignore[valid-type]
        default_factory=AlertRules,
        description="Per alert, by name: its threshold, `for:` and window where it has them, "
        "changed from the chart's defaults (docs/configuration.md lists them).",
    )

    @model_validator(mode="after")
    def _one_value_per_chart_key(self) -> Alerts:
        """Alerts that share a chart value must not be given different ones."""
        self.overrides()
        return self

    def overrides(self) -> dict[str, dict[str, Any]]:
        """{chart: {monitoring.alerts key: value}} of the settings given; ValueError naming the
        alerts where two give one chart value different values."""
        found: dict[str, dict[str, tuple[str, Any]]] = {}
        for name, knobs in ALERT_KNOBS.items():
            given = getattr(self.rules, name)
            if given is None:
                continue
            for key, chart_key in knobs.keys().items():
                value = getattr(given, "for_" if key == "for" else key)
                if value is None:
                    continue
                chart = found.setdefault(knobs.chart, {})
                if chart_key in chart and chart[chart_key][1] != value:
                    other, before = chart[chart_key]
                    raise ValueError(
                        f"rules.{name}.{key}: given {value!r}, but rules.{other}.{key} gives "
                        f"{before!r}: both are the {knobs.chart} chart's "
                        f"monitoring.alerts.{chart_key}; give them one value"
                    )
                chart[chart_key] = (name, value)
        return {
            chart: {key: value for key, (_, value) in keys.items()} for chart, keys in found.items()
        }


def _auto_or_boolean(value: Any) -> Any:
    """`monitoring.enabled` as written: a boolean or the word auto, nothing else (pydantic
    would take the strings "yes", "on" or "1" for true)."""
    if isinstance(value, bool) or value == "auto":
        return value
    if value is None:
        given = "an empty value"
    else:
        kinds = {
            str: "a string",
            int: "a number",
            float: "a number",
            list: "a list",
            dict: "a mapping",
        }
        given = f"{value!r} ({kinds.get(type(value), type(value).__name__)})"
    raise ValueError(
        f"given {given}; allowed: auto, true or false (true and false unquoted: YAML booleans)"
    )


class Monitoring(StrictModel):
    """How the site's charts meet the cluster's Prometheus (prometheus-operator's API)."""

    enabled: Annotated[Literal["auto"] | bool, BeforeValidator(_auto_or_boolean)] = Field(
        "auto",
        description="Renders the monitors, alert rules and dashboards: auto (only where the "
        "cluster serves monitoring.coreos.com/v1), true or false (YAML booleans, not strings).",
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
    scrape_interval: PositiveDuration = Field(
        "30s",
        description=f"How often Prometheus scrapes the services: {_POSITIVE_DURATION_WORDS}.",
    )
    dashboards: Dashboards = Field(default_factory=Dashboards, description="Grafana dashboards.")
    pushgateway: Pushgateway = Field(
        default_factory=Pushgateway, description="The Pushgateway batch runs push to."
    )
    alerts: Alerts = Field(default_factory=Alerts, description="The alert rules.")

    def chart_values(self, pushes: bool, chart: str = "") -> dict[str, Any]:
        """The `monitoring` values of `chart`; `pushes`: the chart's batch runs push outcomes.
        The alerts' thresholds and durations are only those the stack file changed."""
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
            "alerts": {
                "enabled": self.alerts.enabled,
                **self.alerts.overrides().get(chart, {}),
            },
        }
        if pushes:
            values["pushgateway"] = {
                "url": self.pushgateway.url,
                "namespace": self.pushgateway.namespace,
                "podLabels": dict(self.pushgateway.pod_labels),
            }
        return values
