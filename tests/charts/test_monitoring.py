"""The charts' monitoring objects: rendered where the cluster serves the prometheus-operator's API
(or when enabled), admitted by the NetworkPolicies to the metrics port only, and their alert
rules and dashboard queries checked by Debian 12's promtool (Prometheus 2.42).

`promtool test rules` runs every alert against a faulty series (it must fire) and a healthy one
(it must stay silent). Those unit tests compare labels only: the annotations are dropped from
the copy of the rules they run, because promtool compares an alert's annotations in full;
`promtool check rules` parses the annotations' templates in the rendered file itself.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedeploy.charts import render_chart
from fedeploy.config.monitoring import ALERT_KNOBS, DURATION_PATTERN, POSITIVE_DURATION_PATTERN
from tests.charts.conftest import CHARTS_DIR, NAMESPACE, SITES, deep_merge
from tests.conftest import unavailable

OPERATOR_API = "monitoring.coreos.com/v1"
# A site with a Pushgateway, where batch runs push their outcome.
PUSHGATEWAY = {"monitoring": {"pushgateway": {"url": "http://pushgateway.monitoring.svc:9091"}}}


def pushing(chart: str) -> dict[str, Any]:
    """The values of a site with a Pushgateway, for the charts whose batch runs push to it."""
    return PUSHGATEWAY if chart in ("ingestion", "catalog", "inference") else {}


MONITORING_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}
# Every (chart, site) pair of the chart tests' value sets.
CASES = [(chart, site) for site, charts in SITES.items() for chart in charts]


def scraped(chart: str, site: str) -> bool:
    """Whether the release runs a workload of ours that serves requests (and metrics): the
    catalog's are the published catalog's token guard and asset endpoint; its STAC API and
    database are upstream images without metrics."""
    return chart != "catalog" or bool(SITES[site][chart].get("exposure", {}).get("enabled"))


def monitored(
    chart: str, site: str, extra: dict[str, Any] | None = None, api: bool = True
) -> list[dict[str, Any]]:
    """The chart rendered for a site, on a cluster that serves the operator's API (`api`)."""
    values = deep_merge(copy.deepcopy(SITES[site][chart]), extra or {})
    return render_chart(
        CHARTS_DIR / chart, values, chart, NAMESPACE, api_versions=[OPERATOR_API] if api else ()
    )


def rules_of(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["spec"] for m in manifests if m["kind"] == "PrometheusRule"]


def alerts_of(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in spec["groups"] for rule in group["rules"] if "alert" in rule]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        unavailable("promtool is not installed (Debian 12: apt-get install -y prometheus)")
    return found


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------ where they render


@pytest.mark.parametrize(("chart", "site"), CASES)
def test_monitoring_renders_only_where_the_operator_api_is_served_or_when_enabled(chart, site):
    def kinds(manifests: list[dict[str, Any]]) -> set[str]:
        return {m["kind"] for m in manifests} & MONITORING_KINDS

    assert kinds(monitored(chart, site, api=False)) == set()
    served = kinds(monitored(chart, site))
    assert "PrometheusRule" in served
    assert bool(served & {"PodMonitor", "ServiceMonitor"}) == scraped(chart, site)
    assert kinds(monitored(chart, site, {"monitoring": {"enabled": True}}, api=False)) == served
    assert kinds(monitored(chart, site, {"monitoring": {"enabled": False}})) == set()


@pytest.mark.parametrize(("chart", "site"), CASES)
def test_the_monitoring_namespace_reaches_the_metrics_port_and_nothing_else(chart, site):
    def monitoring_rules(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            rule
            for m in manifests
            if m["kind"] == "NetworkPolicy"
            for rule in m["spec"].get("ingress", [])
            for peer in rule.get("from", [])
            if (peer.get("namespaceSelector") or {}).get("matchLabels")
            == {"kubernetes.io/metadata.name": "observability"}
        ]

    values = {"monitoring": {"namespace": "observability"}}
    assert monitoring_rules(monitored(chart, site, values, api=False)) == []
    manifests = monitored(chart, site, values)
    rules = monitoring_rules(manifests)
    if not scraped(chart, site):
        assert rules == []
        return
    assert rules, "no NetworkPolicy admits the monitoring namespace"
    scraped_names = {
        endpoint["port"]
        for m in manifests
        if m["kind"] in ("PodMonitor", "ServiceMonitor")
        for endpoint in m["spec"].get("podMetricsEndpoints", m["spec"].get("endpoints", []))
    }
    # The ports the monitors scrape, by number: the containers' ports of those names.
    metrics_ports = {
        port["containerPort"]
        for m in manifests
        if m["kind"] in ("Deployment", "StatefulSet")
        for container in m["spec"]["template"]["spec"]["containers"]
        for port in container.get("ports", [])
        if port.get("name") in scraped_names
    }
    assert metrics_ports
    for rule in rules:
        # One port, a metrics port, and only Prometheus's pods.
        (port,) = rule["ports"]
        assert port["protocol"] == "TCP" and port["port"] in metrics_ports
        assert rule["from"] == [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "observability"}
                },
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            }
        ]


@pytest.mark.parametrize(("chart", "site"), CASES)
def test_scrape_targets_select_pods_of_this_release_that_serve_metrics(chart, site):
    manifests = monitored(chart, site)
    pods = [m["spec"]["template"] for m in manifests if m["kind"] in ("Deployment", "StatefulSet")]
    for monitor in (m for m in manifests if m["kind"] in ("PodMonitor", "ServiceMonitor")):
        if monitor["kind"] == "ServiceMonitor":
            services = [
                s
                for s in manifests
                if s["kind"] == "Service"
                and all(
                    s["metadata"]["labels"].get(k) == v
                    for k, v in monitor["spec"]["selector"]["matchLabels"].items()
                )
            ]
            assert services, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
            selectors = [s["spec"]["selector"] for s in services]
        else:
            selectors = [monitor["spec"]["selector"]["matchLabels"]]
        expressions = monitor["spec"]["selector"].get("matchExpressions", [])
        if monitor["kind"] == "ServiceMonitor":
            expressions = []  # they chose the Services, whose selectors chose the pods
        assert all(e["operator"] == "In" for e in expressions)
        selected = [
            p
            for p in pods
            for selector in selectors
            if all(p["metadata"]["labels"].get(k) == v for k, v in selector.items())
            and all(p["metadata"]["labels"].get(e["key"]) in e["values"] for e in expressions)
        ]
        assert selected, f"{monitor['metadata']['name']} selects no pod"
        endpoints = monitor["spec"].get("podMetricsEndpoints", monitor["spec"].get("endpoints"))
        for pod in selected:
            ports = {p.get("name") for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            if monitor["kind"] == "ServiceMonitor":  # the Service's port, which targets the pods'
                ports = {p["name"] for s in services for p in s["spec"]["ports"]}
            assert {e["port"] for e in endpoints} <= ports


@pytest.mark.parametrize(
    ("chart", "site", "pushers", "names"),
    [
        ("ingestion", "aws", "fedeploy-sentinel", "ingest_sentinel_.+"),
        (
            "catalog",
            "hub",
            "fedeploy-harvest|fedeploy-restore-drill",
            "ingest_harvest_member_.+|catalog_restore_drill_.+",
        ),
        (
            "inference",
            "hpc",
            "fedeploy-bridge-submit",
            "fedeploy_bridge_(last_submission_timestamp_seconds|submissions_total)",
        ),
    ],
)
def test_the_pushgateway_is_scraped_by_the_charts_own_monitor_keeping_only_its_pushers(
    chart, site, pushers, names
):
    """A push under any other job (a scraped workload's, to mask its series), of any metric
    its pushers do not push (a kube-state-metrics series a backstop rule reads), or for another
    site is dropped by the chart's monitor, which stamps what it keeps; the rules on pushed
    series read only stamped series."""
    manifests = monitored(chart, site, pushing(chart))
    (monitor,) = [
        m
        for m in manifests
        if m["kind"] == "PodMonitor" and m["metadata"]["name"] == f"{chart}-pushgateway"
    ]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["monitoring"]}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["honorLabels"] is True and endpoint["targetPort"] == 9091
    assert endpoint["metricRelabelings"] == [
        {"sourceLabels": ["__name__"], "regex": names, "action": "keep"},
        {"sourceLabels": ["job"], "regex": pushers, "action": "keep"},
        {"sourceLabels": ["site"], "regex": SITES[site][chart]["site"]["name"], "action": "keep"},
        {"targetLabel": "fedeploy_pushgateway", "replacement": chart, "action": "replace"},
    ]
    (spec,) = rules_of(manifests)
    pushed = [
        rule
        for rule in alerts_of(spec)
        if re.search(r'job="fedeploy-(sentinel|harvest|bridge-submit|restore-drill)"', rule["expr"])
    ]
    assert pushed
    for rule in pushed:
        selectors = re.findall(r"\{[^{}]*job=\"fedeploy-[^{}]*\}", rule["expr"])
        assert selectors and all(f'fedeploy_pushgateway="{chart}"' in s for s in selectors)
    # Without a Pushgateway, no monitor of it.
    assert not [m for m in monitored(chart, site) if m["metadata"]["name"].endswith("-pushgateway")]


def test_the_bridge_probe_renders_with_the_bridge_and_reads_its_token_from_a_mounted_file():
    def probes(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            m["spec"]["template"]["spec"]
            for m in manifests
            if m["kind"] == "Deployment" and m["metadata"]["name"] == "inference-bridge-probe"
        ]

    (pod,) = probes(monitored("inference", "hpc"))
    (container,) = pod["containers"]
    assert container["command"][:3] == ["python", "-m", "fedeploy_inference.bridge_probe"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["INFER_BRIDGE_URL"] == SITES["hpc"]["inference"]["bridge"]["endpoint"]
    assert env["INFER_BRIDGE_TOKEN_FILE"] == "/etc/fedeploy/bridge/token"
    assert "INFER_BRIDGE_TOKEN" not in env
    (bridge,) = [v for v in pod["volumes"] if v["name"] == "bridge"]
    assert bridge["secret"]["secretName"] == SITES["hpc"]["inference"]["bridge"]["existingSecret"]
    other = {"bridge": {"probe": {"existingSecret": "probe-account"}}}
    (pod,) = probes(monitored("inference", "hpc", other))
    (bridge,) = [v for v in pod["volumes"] if v["name"] == "bridge"]
    assert bridge["secret"]["secretName"] == "probe-account"
    # Only where monitoring renders, with the bridge and the probe on.
    assert probes(monitored("inference", "hpc", api=False)) == []
    assert probes(monitored("inference", "hpc", {"bridge": {"probe": {"enabled": False}}})) == []
    assert probes(monitored("inference", "aws")) == []


# ------------------------------------------------------------------ promtool


@pytest.mark.parametrize(("chart", "site"), CASES)
def test_promtool_checks_every_rendered_rule_file(chart, site, tmp_path):
    specs = rules_of(monitored(chart, site))
    assert specs
    for n, spec in enumerate(specs):
        path = tmp_path / f"rules-{n}.yaml"
        path.write_text(yaml.safe_dump(spec))
        result = run_promtool("check", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
        for rule in alerts_of(spec):
            assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower())


# Per alert: (chart, site, values merged into the site's), then the cases promtool runs: each a
# test group of promtool's (interval, input_series, eval time, and the alert's labels when it
# must fire or None when it must stay silent).
_S = f'namespace="{NAMESPACE}"'
# The job each monitor labels its targets with (relabelled so): the rules pin it.
_STREAM = f'{_S}, job="ingestion-stream", pod="ingestion-stream-0"'
_SERVER = f'{_S}, job="inference", pod="inference-5d8c7b9f4-x7k2p"'
_SERVER_DOWN = {"namespace": NAMESPACE, "pod": "inference-5d8c7b9f4-x7k2p", "severity": "critical"}
_MIB = 1024 * 1024


def _case(interval: str, series: dict[str, str], at: str, fires: dict[str, str] | None):
    return {
        "interval": interval,
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "at": at,
        "fires": fires,
    }


def _pod_cases(pod: str, container: str) -> dict[str, list[dict[str, Any]]]:
    where = f'{_S}, pod="{pod}", container="{container}"'
    labels = {"namespace": NAMESPACE, "pod": pod, "container": container, "severity": "warning"}
    limit = f'kube_pod_container_resource_limits{{{where}, resource="memory", unit="byte"}}'
    return {
        "CrashLooping": [
            _case(
                "1m",
                {f"kube_pod_container_status_restarts_total{{{where}}}": "0+1x20"},
                "20m",
                labels,
            ),
            _case(
                "1m", {f"kube_pod_container_status_restarts_total{{{where}}}": "3x20"}, "20m", None
            ),
        ],
        "NearMemoryLimit": [
            _case(
                "1m",
                {
                    f"container_memory_working_set_bytes{{{where}}}": f"{480 * _MIB}x30",
                    limit: f"{512 * _MIB}x30",
                },
                "20m",
                labels,
            ),
            _case(
                "1m",
                {
                    f"container_memory_working_set_bytes{{{where}}}": f"{200 * _MIB}x30",
                    limit: f"{512 * _MIB}x30",
                },
                "20m",
                None,
            ),
        ],
    }


def _job_cases(job: str, cronjob: str, max_age: int) -> dict[str, list[dict[str, Any]]]:
    """A failed run of `cronjob` (fires), a succeeded one, an old failure (silent); no success
    for longer than `max_age` (fires), a recent one (silent)."""
    where = f'{_S}, job_name="{job}"'
    failed = {"namespace": NAMESPACE, "job_name": job, "severity": "warning"}
    stale = {"namespace": NAMESPACE, "cronjob": cronjob, "severity": "warning"}
    hours = max_age // 3600 + 2
    return {
        "Failed": [
            _case(
                "1m",
                {
                    f"kube_job_status_start_time{{{where}}}": "300x20",
                    f'kube_job_failed{{{where}, condition="true"}}': "1x20",
                },
                "10m",
                failed,
            ),
            _case(
                "1m",
                {
                    f"kube_job_status_start_time{{{where}}}": "300x20",
                    f'kube_job_failed{{{where}, condition="true"}}': "0x20",
                },
                "10m",
                None,
            ),
            _case(
                "1h",
                {
                    f"kube_job_status_start_time{{{where}}}": f"0x{hours}",
                    f'kube_job_failed{{{where}, condition="true"}}': f"1x{hours}",
                },
                f"{hours}h",
                None,
            ),
        ],
        "NoSuccess": [
            _case(
                "1h",
                {
                    f'kube_cronjob_status_last_successful_time{{{_S}, cronjob="{cronjob}"}}': f"0x{hours}"
                },
                f"{hours}h",
                stale,
            ),
            _case(
                "1h",
                {
                    f'kube_cronjob_status_last_successful_time{{{_S}, cronjob="{cronjob}"}}': f"0+3600x{hours}"
                },
                f"{hours}h",
                None,
            ),
            # Never succeeded: kube-state-metrics has no last success, only the creation time.
            _case(
                "1h",
                {f'kube_cronjob_created{{{_S}, cronjob="{cronjob}"}}': f"0x{hours}"},
                f"{hours}h",
                stale,
            ),
            # Created within max_age: not yet due.
            _case(
                "1h",
                {f'kube_cronjob_created{{{_S}, cronjob="{cronjob}"}}': f"{3600 * hours}x{hours}"},
                f"{hours}h",
                None,
            ),
        ],
    }


def _latency_cases(bucket: str, where: str) -> list[dict[str, Any]]:
    """Every request between 1 and 5 s (fires), or every one within 0.25 s (silent)."""
    series = [f'{bucket}{{{where}, le="{le}"}}' for le in ("0.25", "5.0", "+Inf")]
    slow = dict(zip(series, ("0x30", "0+10x30", "0+10x30"), strict=True))
    fast = dict.fromkeys(series, "0+10x30")
    fires = {"namespace": NAMESPACE, "severity": "warning"}
    return [_case("1m", slow, "20m", fires), _case("1m", fast, "20m", None)]


def _stream_labels(severity: str) -> dict[str, str]:
    return {"namespace": NAMESPACE, "pod": "ingestion-stream-0", "severity": severity}


_INGESTION_JOBS = _job_cases("ingestion-sentinel-29400000", "ingestion-sentinel", 46800)
_INGESTION_PODS = _pod_cases("ingestion-stream-0", "stream")
_INFERENCE_JOBS = _job_cases("inference-retrain-29400000", "inference-retrain", 1296000)
_INFERENCE_PODS = _pod_cases("inference-5d8c7b9f4-x7k2p", "server")
_BUCKET = "fedeploy_inference_request_duration_seconds_bucket"
_PUSHED_SENTINEL = (
    'ingest_sentinel_last_run_registered_items{job="fedeploy-sentinel", site="aws-eu", '
    'instance="pushgateway:9091", fedeploy_pushgateway="ingestion"'
)
_PUSHED_MEMBER = (
    'ingest_harvest_member_last_success_timestamp_seconds{job="fedeploy-harvest", site="hub", '
    'instance="pushgateway:9091", fedeploy_pushgateway="catalog"'
)
_PUSHED_FAILURE = _PUSHED_MEMBER.replace("last_success", "last_failure")
_PUSHED_REFUSAL = _PUSHED_MEMBER.replace("last_success", "last_refusal")
_REFUSAL_OF_ANOTHER_HUB = _PUSHED_REFUSAL.replace('site="hub"', 'site="other"')
_PROBE = f'{_S}, job="inference-bridge-probe", pod="inference-bridge-probe-6b7c8d9f5-k3m4n"'
_BRIDGE_DOWN = {"namespace": NAMESPACE, "severity": "critical"}
_PUSHED_SUBMISSION = (
    'fedeploy_bridge_last_submission_timestamp_seconds{job="fedeploy-bridge-submit", '
    'site="hpc-centre", instance="pushgateway:9091", fedeploy_pushgateway="inference"'
)


def _unstamped(series: str) -> str:
    """The same series from a scrape of the Pushgateway other than the chart's own monitor,
    which stamps what it keeps (a push that names the stamp is overwritten there)."""
    return re.sub(r', fedeploy_pushgateway="[^"]*"', "", series)


def _pushed_drill_cases(site: str) -> list[dict[str, Any]]:
    """The drill's pushed exit status (restore_drill/outcome.py): 1 fires, also beside a 0 pushed
    under another grouping key; 0, another site's failure, or a failure no chart monitor
    stamped (another scrape of the Pushgateway), stays silent."""
    status = (
        f'catalog_restore_drill_exit_status{{job="fedeploy-restore-drill", site="{site}", '
        'instance="pushgateway:9091", fedeploy_pushgateway="catalog"}'
    )
    spoofed = status.replace("pushgateway:9091", "b")
    fires = {"site": site, "severity": "critical"}
    return [
        _case("1m", {status: "1x10"}, "5m", fires),
        _case("1m", {status: "2x10", spoofed: "0x10"}, "5m", fires),
        _case("1m", {status: "0x10"}, "5m", None),
        _case("1m", {status.replace(site, "elsewhere"): "1x10"}, "5m", None),
        _case("1m", {_unstamped(status): "1x10"}, "5m", None),
        *_killed_drill_cases(status, fires),
    ]


def _killed_drill_cases(status: str, fires: dict[str, str]) -> list[dict[str, Any]]:
    """A drill killed mid-run (deadline 10800 s, OOM, eviction) pushed its start and never an
    outcome: past the deadline and 10 minutes it fires (before: silent, the last 0 stood);
    while it runs, or once it pushed an outcome, it does not."""
    started = status.replace("exit_status", "started_timestamp_seconds")
    last_run = status.replace("exit_status", "last_run_timestamp_seconds")
    # Timestamps in seconds of promtool's clock: a 0 pushed at 50 s, a drill started at 100 s.
    killed = {status: "0x30", last_run: "50x30", started: "100x30"}
    return [
        _case("10m", killed, "200m", fires),
        _case("10m", killed, "120m", None),  # still within its deadline
        _case("10m", {**killed, last_run: "200x30"}, "200m", None),  # it ended and pushed
        _case("10m", {started: "100x30"}, "200m", fires),  # the first drill ever, killed
        _case("10m", {_unstamped(started): "100x30", status: "0x30"}, "200m", None),
    ]


_HARVEST_JOBS = _job_cases("catalog-harvest-29400000", "catalog-harvest", 7200)
_CATALOG_PODS = _pod_cases("catalog-db-0", "postgres")
_API = f'{_S}, deployment="catalog"'
_DB = f'{_S}, statefulset="catalog-db"'

ALERT_CASES: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {
    # windowSeconds 600 (default) + lagGraceSeconds 600: lag beyond 1200 s.
    ("ingestion", "aws"): {
        "IngestBrokerDisconnected": [
            _case(
                "1m",
                {f"ingest_broker_connected{{{_STREAM}}}": "0x15"},
                "10m",
                _stream_labels("critical"),
            ),
            _case("1m", {f"ingest_broker_connected{{{_STREAM}}}": "1x15"}, "10m", None),
            # A series pushed to a Pushgateway (honor_labels) with the consumer's namespace and
            # pod but another job does not mask the real disconnect.
            _case(
                "1m",
                {
                    f"ingest_broker_connected{{{_STREAM}}}": "0x15",
                    f'ingest_broker_connected{{{_S}, job="anything", pod="ingestion-stream-0"}}': "1x15",
                },
                "10m",
                _stream_labels("critical"),
            ),
        ],
        "IngestNothingReceived": [
            _case(
                "1m",
                {
                    f"ingest_broker_connected{{{_STREAM}}}": "1x60",
                    f"ingest_messages_received_total{{{_STREAM}}}": "0x60",
                },
                "40m",
                _stream_labels("warning"),
            ),
            _case(
                "1m",
                {
                    f"ingest_broker_connected{{{_STREAM}}}": "1x60",
                    f"ingest_messages_received_total{{{_STREAM}}}": "0+10x60",
                },
                "40m",
                None,
            ),
            # Disconnected: IngestBrokerDisconnected's, not this alert's.
            _case(
                "1m",
                {
                    f"ingest_broker_connected{{{_STREAM}}}": "0x60",
                    f"ingest_messages_received_total{{{_STREAM}}}": "0x60",
                },
                "40m",
                None,
            ),
        ],
        "IngestDeadLettersRising": [
            _case(
                "1m",
                {f'ingest_dead_letters_total{{{_STREAM}, reason="json"}}': "0+10x30"},
                "20m",
                {"namespace": NAMESPACE, "severity": "warning"},
            ),
            _case(
                "1m",
                {f'ingest_dead_letters_total{{{_STREAM}, reason="json"}}': "0+1x30"},
                "20m",
                None,
            ),
            # Spread over the site's shards: 3 a minute each, 6 for the site.
            _case(
                "1m",
                {
                    f'ingest_dead_letters_total{{{_STREAM}, reason="json"}}': "0+3x30",
                    f'ingest_dead_letters_total{{{_STREAM.replace("-0", "-1")}, reason="json"}}': "0+3x30",
                },
                "20m",
                {"namespace": NAMESPACE, "severity": "warning"},
            ),
        ],
        "IngestLagBeyondWindow": [
            _case(
                "1m",
                {f"ingest_lag_seconds{{{_STREAM}}}": "1500x30"},
                "20m",
                _stream_labels("warning"),
            ),
            _case("1m", {f"ingest_lag_seconds{{{_STREAM}}}": "900x30"}, "20m", None),
        ],
        # Every write failing (held and retried, the lag gauge growing) for writeErrorsFor; a
        # burst that recovers stays silent.
        "IngestWriteErrors": [
            _case(
                "1m",
                {f'ingest_write_errors_total{{{_STREAM}, target="window"}}': "0+1x40"},
                "30m",
                _stream_labels("critical"),
            ),
            _case(
                "1m",
                {f'ingest_write_errors_total{{{_STREAM}, target="window"}}': "0+1x5 5x35"},
                "30m",
                None,
            ),
        ],
        # Gone: one of two consumers Pending (kube-state-metrics), or none scraped at all.
        "IngestStreamUnavailable": [
            _case(
                "1m",
                {
                    f'kube_statefulset_status_replicas_ready{{{_S}, statefulset="ingestion-stream"}}': "1x20",
                    f'kube_statefulset_replicas{{{_S}, statefulset="ingestion-stream"}}': "2x20",
                    f"up{{{_STREAM}}}": "1x20",
                },
                "15m",
                {"namespace": NAMESPACE, "statefulset": "ingestion-stream", "severity": "critical"},
            ),
            _case(
                "1m",
                {f'up{{{_S}, pod="catalog-0"}}': "1x20"},
                "15m",
                {"namespace": NAMESPACE, "severity": "critical"},
            ),
            _case("1m", {f"up{{{_STREAM}}}": "0x20"}, "15m", _stream_labels("critical")),
            _case(
                "1m",
                {
                    f'kube_statefulset_status_replicas_ready{{{_S}, statefulset="ingestion-stream"}}': "2x20",
                    f'kube_statefulset_replicas{{{_S}, statefulset="ingestion-stream"}}': "2x20",
                    f"up{{{_STREAM}}}": "1x20",
                },
                "15m",
                None,
            ),
        ],
        "IngestSentinelRunFailed": _INGESTION_JOBS["Failed"],
        # Pushed by the workers (outcome.py); a day without a registered item.
        "IngestSentinelCopiedNothing": [
            _case(
                "1h",
                {
                    f'{_PUSHED_SENTINEL}, worker="0"}}': "3 0x30",
                    f'{_PUSHED_SENTINEL}, worker="1"}}': "2 0x30",
                },
                "30h",
                {"site": "aws-eu", "severity": "warning"},
            ),
            _case(
                "1h",
                {
                    f'{_PUSHED_SENTINEL}, worker="0"}}': "0x30",
                    f'{_PUSHED_SENTINEL}, worker="1"}}': "0x20 4 0x9",
                },
                "30h",
                None,
            ),
            # Read by another scrape of the Pushgateway than the chart's monitor: not read.
            _case("1h", {f'{_unstamped(_PUSHED_SENTINEL)}, worker="0"}}': "3 0x30"}, "30h", None),
            # Spoofs (issue 31 review, finding 1) and groups left behind (finding 9) add nothing:
            # a group without a worker, a worker beyond the parallelism (4), and a second group
            # of worker 0 under another grouping key (its fewest items count).
            *(
                _case(
                    "1h",
                    {f'{_PUSHED_SENTINEL}, worker="0"}}': "0x30", f"{extra}}}": "5x30"},
                    "26h",
                    {"site": "aws-eu", "severity": "warning"},
                )
                for extra in (
                    _PUSHED_SENTINEL.replace("pushgateway:9091", "attacker"),
                    f'{_PUSHED_SENTINEL}, worker="9"',
                    f'{_PUSHED_SENTINEL.replace("pushgateway:9091", "b")}, worker="0"',
                )
            ),
        ],
        "IngestSentinelNoSuccess": _INGESTION_JOBS["NoSuccess"],
        "IngestCrashLooping": _INGESTION_PODS["CrashLooping"],
        "IngestNearMemoryLimit": _INGESTION_PODS["NearMemoryLimit"],
    },
    ("inference", "hpc"): {
        "InferenceNotReady": [
            _case(
                "1m",
                {f"fedeploy_inference_ready{{{_SERVER}}}": "0x10", f"up{{{_SERVER}}}": "1x10"},
                "10m",
                _SERVER_DOWN,
            ),
            # Not scraped at all (the server does not answer): up is 0, no ready series.
            _case(
                "1m",
                {f"up{{{_SERVER}}}": "0x10"},
                "10m",
                _SERVER_DOWN,
            ),
            _case(
                "1m",
                {f"fedeploy_inference_ready{{{_SERVER}}}": "1x10", f"up{{{_SERVER}}}": "1x10"},
                "10m",
                None,
            ),
        ],
        # Gone: the model server's only replica Pending (0 of 1 available), or none scraped.
        "InferenceServerUnavailable": [
            _case(
                "1m",
                {
                    f'kube_deployment_status_replicas_available{{{_S}, deployment="inference"}}': "0x20",
                    f'kube_deployment_spec_replicas{{{_S}, deployment="inference"}}': "1x20",
                },
                "15m",
                {"namespace": NAMESPACE, "severity": "critical"},
            ),
            _case(
                "1m",
                {
                    f'kube_deployment_status_replicas_available{{{_S}, deployment="inference"}}': "1x20",
                    f'kube_deployment_spec_replicas{{{_S}, deployment="inference"}}': "1x20",
                    f"up{{{_SERVER}}}": "0x20",
                },
                "15m",
                None,
            ),
            _case(
                "1m",
                {
                    f'kube_deployment_status_replicas_available{{{_S}, deployment="inference"}}': "2x20",
                    f'kube_deployment_spec_replicas{{{_S}, deployment="inference"}}': "2x20",
                    f"up{{{_SERVER}}}": "1x20",
                },
                "15m",
                None,
            ),
        ],
        "InferenceErrorRatio": [
            _case(
                "1m",
                {
                    f'fedeploy_inference_rejected_requests_total{{{_SERVER}, reason="error"}}': "0+10x30",
                    f'fedeploy_inference_request_duration_seconds_count{{{_SERVER}, endpoint="predict"}}': "0+10x30",
                },
                "20m",
                {"namespace": NAMESPACE, "severity": "warning"},
            ),
            # Refused bad requests (422) are the clients' errors, not the server's.
            _case(
                "1m",
                {
                    f'fedeploy_inference_rejected_requests_total{{{_SERVER}, reason="invalid"}}': "0+50x30",
                    f'fedeploy_inference_request_duration_seconds_count{{{_SERVER}, endpoint="predict"}}': "0+10x30",
                },
                "20m",
                None,
            ),
        ],
        "InferenceLatencyHigh": _latency_cases(_BUCKET, f'{_SERVER}, endpoint="predict"'),
        "InferenceRetrainSubmissionFailed": _INFERENCE_JOBS["Failed"],
        "InferenceRetrainNoSuccess": _INFERENCE_JOBS["NoSuccess"],
        "InferenceCrashLooping": _INFERENCE_PODS["CrashLooping"],
        "InferenceNearMemoryLimit": _INFERENCE_PODS["NearMemoryLimit"],
        # The bridge probe (bridge_probe.py): failing, or not scraped at all.
        "SlurmBridgeDown": [
            _case(
                "1m",
                {f"fedeploy_bridge_up{{{_PROBE}}}": "1x3 0x10", f"up{{{_PROBE}}}": "1x13"},
                "10m",
                _BRIDGE_DOWN,
            ),
            _case("1m", {f"up{{{_PROBE}}}": "0x13"}, "10m", _BRIDGE_DOWN),
            # Down for less than bridgeDownFor (5m), then up again.
            _case(
                "1m",
                {f"fedeploy_bridge_up{{{_PROBE}}}": "1x3 0x3 1x7", f"up{{{_PROBE}}}": "1x13"},
                "10m",
                None,
            ),
            # Another namespace's probe failing is not this release's bridge.
            _case(
                "1m",
                {
                    f"fedeploy_bridge_up{{{_PROBE}}}": "1x13",
                    f"up{{{_PROBE}}}": "1x13",
                    f"fedeploy_bridge_up{{{_PROBE.replace(NAMESPACE, 'other')}}}": "0x13",
                },
                "10m",
                None,
            ),
            # No probe target at all (its pod Pending, unschedulable or deleted: no IP, no
            # series) while the server is scraped: the bridge is not watched (review finding 3).
            _case("1m", {f"up{{{_SERVER}}}": "1x13"}, "10m", _BRIDGE_DOWN),
        ],
        # Pushed by the retrain CronJob's submission (bridge_submit.py), Unix times: a failure at
        # 600 s with no success since fires; a success after it, or a failure a day old, does not.
        "SlurmBridgeSubmissionsFailing": [
            _case(
                "1m",
                {
                    f'{_PUSHED_SUBMISSION}, outcome="failure"}}': "_x9 600x11",
                    f'{_PUSHED_SUBMISSION}, outcome="success"}}': "60x20",
                },
                "15m",
                {"site": "hpc-centre", "severity": "warning"},
            ),
            _case(
                "1m",
                {
                    f'{_PUSHED_SUBMISSION}, outcome="failure"}}': "_x9 600x11",
                    f'{_PUSHED_SUBMISSION}, outcome="success"}}': "60x12 720x8",
                },
                "15m",
                None,
            ),
            _case(
                "1h",
                {f'{_PUSHED_SUBMISSION}, outcome="failure"}}': "0x30"},
                "26h",
                None,
            ),
            # A later success pushed under another grouping key (a spoof: any pod reaching the
            # Pushgateway) is no success of the failing group.
            _case(
                "1m",
                {
                    f'{_PUSHED_SUBMISSION}, outcome="failure"}}': "600x20",
                    f'{_PUSHED_SUBMISSION.replace("pushgateway:9091", "x")}, outcome="success"}}': (
                        "720x20"
                    ),
                },
                "15m",
                {"site": "hpc-centre", "severity": "warning"},
            ),
            # Not kept by the chart's Pushgateway monitor: not read.
            _case(
                "1m",
                {f'{_unstamped(_PUSHED_SUBMISSION)}, outcome="failure"}}': "600x20"},
                "15m",
                None,
            ),
            # A failure pushed for another site is not this one's.
            _case(
                "1m",
                {
                    f'{_PUSHED_SUBMISSION.replace("hpc-centre", "aws-eu")}, outcome="failure"}}': "600x20"
                },
                "15m",
                None,
            ),
        ],
    },
    ("catalog", "hub"): {
        "CatalogApiUnavailable": [
            _case(
                "1m",
                {
                    f"kube_deployment_status_replicas_available{{{_API}}}": "1x20",
                    f"kube_deployment_spec_replicas{{{_API}}}": "2x20",
                },
                "15m",
                {"namespace": NAMESPACE, "deployment": "catalog", "severity": "critical"},
            ),
            _case(
                "1m",
                {
                    f"kube_deployment_status_replicas_available{{{_API}}}": "2x20",
                    f"kube_deployment_spec_replicas{{{_API}}}": "2x20",
                },
                "15m",
                None,
            ),
        ],
        "CatalogDatabaseNotReady": [
            _case(
                "1m",
                {f"kube_statefulset_status_replicas_ready{{{_DB}}}": "0x10"},
                "10m",
                {"namespace": NAMESPACE, "statefulset": "catalog-db", "severity": "critical"},
            ),
            _case("1m", {f"kube_statefulset_status_replicas_ready{{{_DB}}}": "1x10"}, "10m", None),
        ],
        "CatalogHarvestFailed": _HARVEST_JOBS["Failed"],
        "CatalogHarvestNoSuccess": _HARVEST_JOBS["NoSuccess"],
        # Pushed per member by the harvest (outcome.py): a's last success stays at 0 s while b's
        # moves on; only a is stale.
        "CatalogHarvestMemberStale": [
            _case(
                "10m",
                {
                    f'{_PUSHED_MEMBER}, member="aws-eu"}}': "0x20",
                    f'{_PUSHED_MEMBER}, member="eu-cloud"}}': "0+600x20",
                },
                "3h",
                {"site": "hub", "member": "aws-eu", "severity": "warning"},
            ),
            # A fresh timestamp pushed under another grouping key does not hide the stale one.
            _case(
                "10m",
                {
                    f'{_PUSHED_MEMBER}, member="aws-eu"}}': "0x20",
                    f'{_PUSHED_MEMBER.replace("pushgateway:9091", "b")}, member="aws-eu"}}': "0+600x20",
                },
                "3h",
                {"site": "hub", "member": "aws-eu", "severity": "warning"},
            ),
            _case(
                "10m",
                {
                    f'{_PUSHED_MEMBER}, member="aws-eu"}}': "0+600x20",
                    f'{_PUSHED_MEMBER}, member="eu-cloud"}}': "0+600x20",
                },
                "3h",
                None,
            ),
            # A member no longer harvested (its group left in the Pushgateway, or a spoofed
            # member) is not read.
            _case(
                "10m",
                {
                    f'{_PUSHED_MEMBER}, member="aws-eu"}}': "0+600x20",
                    f'{_PUSHED_MEMBER}, member="eu-cloud"}}': "0+600x20",
                    f'{_PUSHED_MEMBER}, member="removed"}}': "0x20",
                },
                "3h",
                None,
            ),
            # A stale timestamp pushed under job fedeploy-harvest but not kept by the chart's
            # monitor (another scrape of the Pushgateway) fires nothing.
            _case(
                "10m",
                {
                    f'{_PUSHED_MEMBER}, member="eu-cloud"}}': "0+600x20",
                    f'{_unstamped(_PUSHED_MEMBER)}, member="aws-eu"}}': "0x20",
                },
                "3h",
                None,
            ),
        ],
        # A member never harvested successfully pushes only failures: a's for three hours (it
        # fires after harvestMaxAgeSeconds), b's for one hour, c's since it recovered.
        "CatalogHarvestMemberNeverHarvested": [
            _case(
                "10m",
                {
                    f'{_PUSHED_FAILURE}, member="aws-eu"}}': "0+600x20",
                    f'{_PUSHED_MEMBER}, member="eu-cloud"}}': "0+600x20",
                },
                "3h",
                {"site": "hub", "member": "aws-eu", "severity": "warning"},
            ),
            _case(
                "10m",
                {
                    f'{_PUSHED_FAILURE}, member="aws-eu"}}': "_x12 7200+600x8",
                    f'{_PUSHED_FAILURE}, member="eu-cloud"}}': "0+600x20",
                    f'{_PUSHED_MEMBER}, member="eu-cloud"}}': "_x3 1800+600x17",
                },
                "3h",
                None,
            ),
            # Failures of a member the hub does not harvest (spoofed) fire nothing.
            _case(
                "10m",
                {
                    f'{_PUSHED_FAILURE}, member="invented"}}': "0+600x20",
                    f'{_PUSHED_MEMBER}, member="eu-cloud"}}': "0+600x20",
                },
                "3h",
                None,
            ),
        ],
        # When a harvest of a member last had items refused, pushed by every successful run
        # from the member's status collection (0 when none; outcome.py): a run at 2h refused
        # items of aws-eu (one or 400: the count is not read), the hourly runs after refuse none
        # and push the kept time; eu-cloud has never had any refused. Default hold: 24 h.
        "CatalogHarvestItemsRefused": [
            _case(
                "1h",
                {
                    f'{_PUSHED_REFUSAL}, member="aws-eu"}}': "0 0 7200x40",
                    f'{_PUSHED_REFUSAL}, member="eu-cloud"}}': "0x42",
                },
                "25h",
                {"site": "hub", "member": "aws-eu", "severity": "warning"},
            ),
            # ... a day after the refusal it resolves ...
            _case("1h", {f'{_PUSHED_REFUSAL}, member="aws-eu"}}': "0 0 7200x40"}, "27h", None),
            # ... or once an operator cleared it from the status (the next run pushes 0).
            _case("1h", {f'{_PUSHED_REFUSAL}, member="aws-eu"}}': "0 0 7200x10 0x30"}, "20h", None),
            # The latest of a member's series: neither a 0 nor a negative time pushed under
            # another grouping key hides a refusal (a sum, an average or a minimum would).
            *(
                _case(
                    "1h",
                    {
                        f'{_PUSHED_REFUSAL}, member="aws-eu"}}': "0 0 7200x40",
                        f'{_PUSHED_REFUSAL.replace("pushgateway:9091", "b")}, member="aws-eu"}}': (
                            spoof
                        ),
                    },
                    "20h",
                    {"site": "hub", "member": "aws-eu", "severity": "warning"},
                )
                for spoof in ("0x42", "-7200x42")
            ),
            _case(
                "1h",
                {
                    f'{_PUSHED_REFUSAL}, member="aws-eu"}}': "0x42",
                    f'{_PUSHED_REFUSAL}, member="eu-cloud"}}': "0x42",
                },
                "20h",
                None,
            ),
            # A refusal of a member the hub does not harvest now (a removed member's group left
            # in the Pushgateway, or a spoof), of another hub or another job, or a series not
            # kept by the chart's monitor, fires nothing: each matcher is needed.
            _case(
                "1h",
                {
                    f'{_PUSHED_REFUSAL}, member="removed"}}': "7200x42",
                    f'{_unstamped(_PUSHED_REFUSAL)}, member="aws-eu"}}': "7200x42",
                    f'{_REFUSAL_OF_ANOTHER_HUB}, member="aws-eu"}}': "7200x42",
                    f'{_PUSHED_REFUSAL.replace("fedeploy-harvest", "other")}, member="aws-eu"}}': (
                        "7200x42"
                    ),
                    f'{_PUSHED_REFUSAL}, member="eu-cloud"}}': "0x42",
                },
                "20h",
                None,
            ),
        ],
        "CatalogCrashLooping": _CATALOG_PODS["CrashLooping"],
        "CatalogNearMemoryLimit": _CATALOG_PODS["NearMemoryLimit"],
    },
}
_GUARD = f'{_S}, pod="catalog-auth-proxy-6c9f8d7b5-q2w3e"'
_GUARD_BUCKET = "fedeploy_catalog_request_duration_seconds_bucket"
_ASSETS = f'{_S}, pod="catalog-assets-7d6c5b4a3-r4t5y"'
ALERT_CASES[("catalog", "published")] = {
    **{
        name: cases
        for name, cases in ALERT_CASES[("catalog", "hub")].items()
        if not name.startswith("CatalogHarvest")
    },
    "CatalogErrorRatio": [
        _case(
            "1m",
            {
                f'fedeploy_catalog_requests_total{{{_GUARD}, method="GET", code="5xx"}}': "0+10x30",
                f'fedeploy_catalog_requests_total{{{_GUARD}, method="GET", code="2xx"}}': "0+10x30",
            },
            "20m",
            {"namespace": NAMESPACE, "severity": "critical"},
        ),
        # Refused tokens (401) and missing items (404) are the clients' errors.
        _case(
            "1m",
            {
                f'fedeploy_catalog_requests_total{{{_GUARD}, method="POST", code="4xx"}}': "0+10x30",
                f'fedeploy_catalog_requests_total{{{_GUARD}, method="GET", code="2xx"}}': "0+10x30",
            },
            "20m",
            None,
        ),
    ],
    "CatalogLatencyHigh": _latency_cases(_GUARD_BUCKET, _GUARD),
    # The restore drill (its backups on): pushed exit status, and the CronJob's last success.
    "CatalogRestoreDrillFailed": _pushed_drill_cases("eu-public"),
    "CatalogRestoreDrillStale": _job_cases(
        "catalog-restore-drill-29400000", "catalog-restore-drill", 691200
    )["NoSuccess"],
    "CatalogAssetErrorRatio": [
        _case(
            "1m",
            {
                f'ingest_asset_requests_total{{{_ASSETS}, code="5xx"}}': "0+10x30",
                f'ingest_asset_requests_total{{{_ASSETS}, code="3xx"}}': "0+10x30",
            },
            "20m",
            {"namespace": NAMESPACE, "severity": "warning"},
        ),
        # Refused tokens and unknown assets are the callers' errors.
        _case(
            "1m",
            {
                f'ingest_asset_requests_total{{{_ASSETS}, code="4xx"}}': "0+10x30",
                f'ingest_asset_requests_total{{{_ASSETS}, code="3xx"}}': "0+10x30",
            },
            "20m",
            None,
        ),
    ],
}


def _without_annotations(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    for rule in alerts_of(spec):
        rule.pop("annotations", None)
    return spec


@pytest.mark.parametrize(("chart", "site"), sorted(ALERT_CASES))
def test_every_alert_fires_on_the_faulty_series_and_stays_silent_on_the_healthy(
    chart, site, tmp_path
):
    (spec,) = rules_of(monitored(chart, site, pushing(chart)))
    names = {rule["alert"] for rule in alerts_of(spec)}
    cases = ALERT_CASES[(chart, site)]
    assert names == set(cases), "every alert needs its promtool cases, and only those"
    for name, runs in cases.items():
        assert any(r["fires"] for r in runs) and any(r["fires"] is None for r in runs), name
    run_alert_cases(spec, cases, tmp_path)


def run_alert_cases(
    spec: dict[str, Any], cases: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """`promtool test rules` of every case (`_case`) against the rule spec's alerts, without
    their annotations; fails with promtool's report."""
    rule_file = tmp_path / "rules.yaml"
    rule_file.write_text(yaml.safe_dump(_without_annotations(spec)))
    # One file per interval, evaluated at that interval: an hourly series over days evaluated
    # every minute would take promtool minutes.
    by_interval: dict[str, list[dict[str, Any]]] = {}
    for name, runs in cases.items():
        for n, run in enumerate(runs):
            by_interval.setdefault(run["interval"], []).append(
                {
                    "name": f"{name} #{n}",
                    "interval": run["interval"],
                    "input_series": run["input_series"],
                    "alert_rule_test": [
                        {
                            "eval_time": run["at"],
                            "alertname": name,
                            "exp_alerts": [{"exp_labels": run["fires"]}] if run["fires"] else [],
                        }
                    ],
                }
            )
    for interval, tests in by_interval.items():
        test_file = tmp_path / f"tests-{interval}.yaml"
        test_file.write_text(
            yaml.safe_dump(
                {"rule_files": [str(rule_file)], "evaluation_interval": interval, "tests": tests}
            )
        )
        result = run_promtool("test", "rules", str(test_file))
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


# ------------------------------------------------------------------ dashboards


def dashboards(manifests: list[dict[str, Any]], label: str = "grafana_dashboard") -> list[dict]:
    return [
        json.loads(text)
        for m in manifests
        if m["kind"] == "ConfigMap" and label in m["metadata"].get("labels", {})
        for text in m["data"].values()
    ]


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, query) for every target, with the dashboard's constant variables and
    Grafana's $__rate_interval replaced as Grafana would before sending the query."""
    constants = {
        v["name"]: v["query"] for v in board["templating"]["list"] if v["type"] == "constant"
    }
    found = []
    for panel in board["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "2m")
            for name, value in constants.items():
                expr = expr.replace(f"${name}", value)
            assert "$" not in expr, f"{panel['title']}: unresolved variable in {expr}"
            found.append((panel["title"], expr))
    return found


@pytest.mark.parametrize(("chart", "site"), CASES)
def test_every_dashboard_panel_query_parses(chart, site, tmp_path):
    values = {"monitoring": {"dashboards": {"label": "my_dashboards", "labelValue": "yes"}}}
    manifests = monitored(chart, site, values)
    assert dashboards(manifests) == []
    boards = dashboards(manifests, "my_dashboards")
    assert boards, "no dashboard under the configured label"
    for board in boards:
        assert board["uid"].startswith("fedeploy-") and len(board["uid"]) <= 40
        queries = panel_queries(board)
        assert queries
        # promtool parses a query by checking it as a recording rule.
        rules = {
            "groups": [
                {
                    "name": "panels",
                    "rules": [
                        {"record": f"panel_{n}", "expr": expr}
                        for n, (_, expr) in enumerate(queries)
                    ],
                }
            ]
        }
        path = tmp_path / f"{board['uid']}.yaml"
        path.write_text(yaml.safe_dump(rules))
        result = run_promtool("check", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_configmaps_go_to_the_configured_namespace():
    manifests = monitored(
        "ingestion", "aws", {"monitoring": {"dashboards": {"namespace": "grafana"}}}
    )
    (board,) = [m for m in manifests if "grafana_dashboard" in m["metadata"]["labels"]]
    assert board["metadata"]["namespace"] == "grafana"
    assert not dashboards(
        monitored("ingestion", "aws", {"monitoring": {"dashboards": {"enabled": False}}})
    )


_METRIC = re.compile(r"\b(ingest_[a-z_]+|fedeploy_(?:inference|catalog)_[a-z_]+)\b")


# Where the metrics the charts read are defined: the services' metrics modules, what the batch
# runs push, and the catalog's token guard.
_METRIC_SOURCES = (
    "services/ingestion/fedeploy_ingestion/metrics.py",
    "services/ingestion/fedeploy_ingestion/outcome.py",
    "services/inference/fedeploy_inference/service_metrics.py",
    "services/ingestion/fedeploy_ingestion/asset_endpoint.py",
    "charts/catalog/files/token_guard.py",
)


@pytest.mark.parametrize(("chart", "site"), CASES)
def test_dashboards_and_alerts_name_only_metrics_the_services_expose(chart, site):
    """A renamed metric would leave a panel or an alert empty for ever: each name they use is
    one our code defines (a counter's samples end in _total, a histogram's in _bucket, _count
    and _sum)."""
    defined = set()
    for source in _METRIC_SOURCES:
        text = (CHARTS_DIR.parent / source).read_text()
        defined |= set(re.findall(r'"((?:ingest|fedeploy_inference)_[a-z_]+)"', text))
        defined |= set(re.findall(r"\b(fedeploy_catalog_[a-z_]+?)(?:_total|_bucket)?\b", text))
    manifests = monitored(chart, site, pushing(chart))
    used = set()
    for board in dashboards(manifests):
        used |= {name for _, q in panel_queries(board) for name in _METRIC.findall(q)}
    for spec in rules_of(manifests):
        used |= {name for rule in alerts_of(spec) for name in _METRIC.findall(rule["expr"])}
    samples = {
        f"{name}{suffix}"
        for name in defined
        for suffix in ("", "_total", "_bucket", "_count", "_sum")
    }
    assert used <= samples, sorted(used - samples)


def test_every_alert_has_a_runbook_saying_what_it_means_and_three_things_to_check():
    text = (CHARTS_DIR.parent / "docs/operations.md").read_text()
    runbooks = text[text.index("\n## Runbooks\n") :]
    sections = dict(re.findall(r"\n### (\w+)\n(.*?)(?=\n### |\n## |\Z)", runbooks, re.S))
    alerts = {
        rule["alert"]
        for chart, site in CASES
        for spec in rules_of(monitored(chart, site, pushing(chart)))
        for rule in alerts_of(spec)
    }
    assert alerts == set(sections), "one runbook per alert, and none for an alert that is gone"
    for alert, body in sections.items():
        meaning, _, checks = body.strip().partition("\n\n1. ")
        assert meaning and checks, f"{alert}: what it means, then numbered checks"
        numbers = re.findall(r"^(\d)\. ", "1. " + checks, re.M)
        assert numbers == ["1", "2", "3"], f"{alert}: three things to check"


@pytest.mark.parametrize(
    ("chart", "site", "workload"),
    [("ingestion", "aws", "sentinel"), ("catalog", "hub", "harvester")],
)
def test_batch_runs_reach_the_pushgateway_only_when_the_site_has_one(chart, site, workload):
    def batch(manifests: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
        (cronjob,) = [m for m in manifests if m["kind"] == "CronJob"]
        (policy,) = [
            m
            for m in manifests
            if m["kind"] == "NetworkPolicy" and m["metadata"]["name"].endswith(f"-{workload}")
        ]
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return pod["containers"][0]["env"], policy["spec"]["egress"]

    def to_pushgateway(egress: list[dict]) -> list[dict]:
        return [
            rule
            for rule in egress
            if any(
                (peer.get("podSelector") or {}).get("matchLabels")
                == {"app.kubernetes.io/name": "prometheus-pushgateway"}
                for peer in rule["to"]
            )
        ]

    env, egress = batch(monitored(chart, site, api=False))
    assert "INGEST_PUSHGATEWAY_URL" not in {e["name"] for e in env}
    assert to_pushgateway(egress) == []
    env, egress = batch(monitored(chart, site, PUSHGATEWAY, api=False))
    assert {
        "name": "INGEST_PUSHGATEWAY_URL",
        "value": "http://pushgateway.monitoring.svc:9091",
    } in env
    (rule,) = to_pushgateway(egress)
    assert rule["ports"] == [{"protocol": "TCP", "port": 9091}]
    assert rule["to"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
    }


@pytest.mark.parametrize(
    ("chart", "site"), [("ingestion", "aws"), ("inference", "hpc"), ("catalog", "hub")]
)
def test_a_memory_ratio_of_1_is_refused_by_the_chart(chart, site):
    """A container is killed at its memory limit, so a ratio of 1 could never fire: the values
    schema refuses it (exclusiveMaximum), naming the value."""
    monitored(chart, site, {"monitoring": {"alerts": {"memoryLimitRatio": 0.99}}})
    with pytest.raises(Exception, match="memoryLimitRatio") as refused:
        monitored(chart, site, {"monitoring": {"alerts": {"memoryLimitRatio": 1}}})
    assert "Traceback" not in str(refused.value)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels, matchExpressions In/NotIn/Exists)
    selects a pod with `labels`."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
    return True


def test_the_bridge_probe_has_its_own_network_policy_and_service_account():
    """The probe reaches DNS and the bridge only, is reached by Prometheus on its metrics port
    only, and runs as a ServiceAccount of its own without the server's cloud role (review
    finding 6): the server's policy and ServiceAccount leave it out."""
    irsa = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/inference"}
    manifests = monitored(
        "inference",
        "hpc",
        {"networkPolicy": {"enabled": True}, "serviceAccount": {"annotations": irsa}},
    )
    (probe,) = [
        m
        for m in manifests
        if m["kind"] == "Deployment" and m["metadata"]["name"] == "inference-bridge-probe"
    ]
    labels = probe["spec"]["template"]["metadata"]["labels"]
    policies = [
        m
        for m in manifests
        if m["kind"] == "NetworkPolicy" and _selects(m["spec"]["podSelector"], labels)
    ]
    assert [p["metadata"]["name"] for p in policies] == ["inference-bridge-probe"]
    (policy,) = policies
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert ingress["from"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
    }
    egress = policy["spec"]["egress"]
    assert [sorted(p["port"] for p in rule["ports"]) for rule in egress] == [[53, 53], [6820]]
    assert all("ipBlock" in to for to in egress[1]["to"])
    # The server's pods are still under the server's policy.
    (server,) = [
        m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"] == "inference"
    ]
    server_labels = server["spec"]["template"]["metadata"]["labels"]
    assert [
        m["metadata"]["name"]
        for m in manifests
        if m["kind"] == "NetworkPolicy" and _selects(m["spec"]["podSelector"], server_labels)
    ] == ["inference"]
    pod = probe["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "inference-bridge-probe"
    assert pod["automountServiceAccountToken"] is False
    (account,) = [
        m
        for m in manifests
        if m["kind"] == "ServiceAccount" and m["metadata"]["name"] == "inference-bridge-probe"
    ]
    assert (
        "annotations" not in account["metadata"]
        and account["automountServiceAccountToken"] is False
    )


@pytest.mark.parametrize(
    ("chart", "site"), [("ingestion", "aws"), ("inference", "hpc"), ("catalog", "hub")]
)
def test_the_charts_durations_follow_prometheus_grammar_as_the_stack_file_does(chart, site):
    """Each duration of a chart's monitoring values (scrapeInterval and the alerts' `for:` and
    windows: its string values with a pattern) is checked with the stack file's pattern
    (Prometheus's ParseDuration: units from the largest down, each once, bounded digits), so a
    value given to the chart directly (helm --set) that Prometheus would refuse fails at render,
    naming its key, instead of reaching the cluster in a PrometheusRule the operator rejects.
    The windows of rate() and the scrape interval take POSITIVE_DURATION_PATTERN, as the stack
    file does (`[0s]` does not parse, a 0s interval is ignored); the `for:` keys may be zero."""
    schema = json.loads((CHARTS_DIR / chart / "values.schema.json").read_text())
    monitoring = schema["properties"]["monitoring"]["properties"]
    durations = {"scrapeInterval": monitoring["scrapeInterval"]} | {
        key: spec
        for key, spec in monitoring["alerts"]["properties"].items()
        if spec.get("type") == "string" and "pattern" in spec
    }
    assert len(durations) >= 7, sorted(durations)
    positive = {"scrapeInterval"} | {
        knobs.window for knobs in ALERT_KNOBS.values() if knobs.chart == chart and knobs.window
    }
    assert positive == _POSITIVE_KEYS[chart]
    assert {key: spec["pattern"] for key, spec in durations.items()} == {
        key: POSITIVE_DURATION_PATTERN if key in positive else DURATION_PATTERN for key in durations
    }
    fors = sorted(set(durations) - positive)
    assert fors and all(key.endswith("For") for key in fors), fors
    key = fors[0]
    monitored(chart, site, {"monitoring": {"alerts": {key: "1h30m"}}})
    monitored(chart, site, {"monitoring": {"alerts": {key: "0s"}}})
    for bad in ("1s1h", "1m1m", "99999999999999999999y"):
        with pytest.raises(Exception, match=key) as refused:
            monitored(chart, site, {"monitoring": {"alerts": {key: bad}}})
        assert "Traceback" not in str(refused.value)
    for key in sorted(positive):
        where = {key: None}
        place = where if key == "scrapeInterval" else {"alerts": where}
        for good in ("1h30m", "0h1m", "1ms"):
            where[key] = good
            monitored(chart, site, {"monitoring": place})
        for zero in ("0s", "0m", "00h0m", "0y0w0d0h0m0s0ms"):
            where[key] = zero
            with pytest.raises(Exception, match=key) as refused:
                monitored(chart, site, {"monitoring": place})
            assert "Traceback" not in str(refused.value)


# The keys of each chart's monitoring values that take durations above zero.
_POSITIVE_KEYS = {
    "catalog": {"scrapeInterval", "window"},
    "inference": {"scrapeInterval", "window"},
    "ingestion": {"scrapeInterval", "deadLettersWindow", "writeErrorsWindow"},
}


def test_the_federation_dashboard_shows_every_series_the_harvest_pushes_per_member():
    """An operator sees on the hub's federation dashboard what each alert on the harvest reads:
    each per-member series outcome.py pushes (successes, items, refusals, failures) is in a
    panel's query."""
    text = (CHARTS_DIR.parent / "services/ingestion/fedeploy_ingestion/outcome.py").read_text()
    pushed = set(re.findall(r'"(ingest_harvest_member_[a-z_]+)"', text))
    assert len(pushed) >= 5, pushed
    (board,) = [
        b
        for b in dashboards(monitored("catalog", "hub", pushing("catalog")))
        if b["panels"] and any("member" in q for _, q in panel_queries(b))
    ]
    shown = {name for _, q in panel_queries(board) for name in _METRIC.findall(q)}
    assert pushed <= shown, sorted(pushed - shown)


# Each alert with a window (the range of its rate()), with the site whose chart installs it.
_WINDOWED_ALERTS = {
    "IngestDeadLettersRising": "aws",
    "IngestWriteErrors": "aws",
    "InferenceErrorRatio": "hpc",
    "InferenceLatencyHigh": "hpc",
    "CatalogErrorRatio": "published",
    "CatalogLatencyHigh": "published",
    "CatalogAssetErrorRatio": "published",
}


@pytest.mark.parametrize("window", ["0s", "0m", "0ms", "1ms"])
@pytest.mark.parametrize("alert", sorted(_WINDOWED_ALERTS))
def test_a_window_the_stack_file_takes_makes_a_rule_promtool_takes(alert, window, tmp_path):
    """Review sweep33 F3: a window the stack file accepts (site.monitoring.alerts.rules.<alert>
    .window), rendered into the chart, is a rule promtool parses; `rate(...[0s])` is not
    ("duration must be greater than 0"), so every zero is refused at the key and the smallest
    positive window (1ms) renders a rule promtool takes."""
    from pydantic import ValidationError

    from fedeploy.config.monitoring import ALERT_KNOBS, Monitoring

    assert sorted(_WINDOWED_ALERTS) == sorted(n for n, k in ALERT_KNOBS.items() if k.window)
    chart = ALERT_KNOBS[alert].chart
    try:
        settings = Monitoring.model_validate({"alerts": {"rules": {alert: {"window": window}}}})
    except ValidationError:
        assert window != "1ms", "the smallest positive window is refused"
        return
    alerts = settings.chart_values(False, chart)["alerts"]
    (spec,) = rules_of(
        monitored(chart, _WINDOWED_ALERTS[alert], {"monitoring": {"alerts": alerts}})
    )
    (rule,) = [r for r in alerts_of(spec) if r["alert"] == alert]
    assert f"[{window}]" in rule["expr"], rule["expr"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("chart", "site"), CASES)
def test_every_operator_object_validates_against_its_vendored_crd_schema(chart, site):
    """Review sweep33 F4: the monitors and rules every chart renders for every kind of site
    (with a Pushgateway, too) validate against prometheus-operator's CRD schemas
    (fedeploy/crd_schemas), strict and not, for every Kubernetes version: before, each was
    "no schema for monitoring.coreos.com/v1 ...", so `monitoring.enabled: true` never planned
    clean."""
    from fedeploy.charts import CRD_SCHEMAS, validate_manifests

    objects = [
        m
        for extra in ({}, pushing(chart))
        for m in monitored(chart, site, extra)
        if m["kind"] in MONITORING_KINDS
    ]
    assert "PrometheusRule" in {m["kind"] for m in objects}
    for version in ("1.29", "1.33"):
        assert validate_manifests(objects, version, strict=True) == []
        assert validate_manifests(objects, version, strict=False) == []
    for kind in MONITORING_KINDS:
        schema = json.loads((CRD_SCHEMAS / f"{kind.lower()}-monitoring-v1.json").read_text())
        assert schema["properties"]["kind"] == {"enum": [kind]}
        assert schema["properties"]["spec"]["additionalProperties"] is False
        assert "prometheus-operator v0.93.0" in schema["$comment"]
