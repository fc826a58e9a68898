"""The charts' alerts and dashboards against a real Prometheus (Debian 12's 2.42) that scrapes the
real ingestion consumer and model server on loopback.

The rules are the PrometheusRules the charts render (with short durations and thresholds as
values, so each fault shows within seconds); the scrape jobs label each target as the chart's
PodMonitor and ServiceMonitor make the prometheus-operator label it (namespace, pod, container,
site, component). The faults are real: the broker stopped, poison messages published until the
dead-letter rate crosses its threshold, the model server stopped; each alert must be firing in
Prometheus's API, then resolve once the fault is gone. Every dashboard panel's query is then run
against that Prometheus: none may fail, and each whose metrics are scraped must return a series.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopback import MosquittoBroker, SeaweedS3
from loopback.processes import Daemon, free_port
from loopback.prometheus import PrometheusServer
from tests.charts.test_monitoring import SITES, dashboards, monitored, panel_queries, rules_of
from tests.conftest import start_peer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAMESPACE = "fedeploy"
SITE = "site-a"
STREAM_POD = "ingestion-stream-0"
SERVER_POD = "inference-5d8c7b9f4-x7k2p"
# Short enough that each fault fires within seconds, so the whole test takes about a minute.
INGESTION_ALERTS = {
    "brokerDisconnectedFor": "3s",
    "deadLettersPerMinute": 30,
    "deadLettersWindow": "15s",
    "deadLettersFor": "3s",
}
INFERENCE_ALERTS = {"notReadyFor": "3s"}
DEADLINE = 90.0


def _rules() -> list[dict[str, Any]]:
    return [
        *rules_of(monitored("ingestion", "hpc", {"monitoring": {"alerts": INGESTION_ALERTS}})),
        *rules_of(monitored("inference", "aws", {"monitoring": {"alerts": INFERENCE_ALERTS}})),
    ]


def _scrape(job: str, port: int, pod: str, container: str, component: str) -> dict[str, Any]:
    """A scrape job labelled as the operator labels the chart's monitor's targets."""
    labels = {
        "namespace": NAMESPACE,
        "pod": pod,
        "container": container,
        "site": SITE,
        "component": component,
    }
    return {
        "job_name": job,
        "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": labels}],
    }


def pushgateway_scrape(manifests: list[dict[str, Any]], url: str) -> dict[str, Any]:
    """The scrape job the prometheus-operator makes of the chart's Pushgateway PodMonitor,
    pointed at the Pushgateway at `url`: its honor_labels and metric relabelings, as rendered."""
    (monitor,) = [
        m
        for m in manifests
        if m["kind"] == "PodMonitor" and m["metadata"]["name"].endswith("-pushgateway")
    ]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    names = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    return {
        "job_name": f"{monitor['metadata']['namespace']}/{monitor['metadata']['name']}",
        "honor_labels": endpoint["honorLabels"],
        "metrics_path": endpoint["path"],
        "static_configs": [{"targets": [url.removeprefix("http://")]}],
        "metric_relabel_configs": [
            {names.get(key, key): value for key, value in rule.items()}
            for rule in endpoint["metricRelabelings"]
        ],
    }


def _wait_for(check: Callable[[], bool], what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tails = "\n".join(
        f"--- {log}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        for log in logs
        if log.exists()
    )
    raise AssertionError(f"not within {DEADLINE:.0f} s: {what}\n{tails}")


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """mosquitto, SeaweedFS, the consumer and the model server as processes, and a Prometheus
    scraping both with the charts' rules."""
    broker = start_peer(lambda: MosquittoBroker(tmp_path / "mosquitto").start())
    s3 = start_peer(lambda: SeaweedS3(tmp_path / "seaweedfs").start())
    started: list[Any] = [broker, s3]
    try:
        from tests.images.models import publish_synthetic_model

        endpoint = s3.endpoint
        s3.create_bucket("site-a-data")
        s3.create_bucket("site-a-models")
        publish_synthetic_model(endpoint, "site-a-models", "nowcast")

        stream_port, server_port = free_port(), free_port()
        consumer = Daemon(
            "consumer",
            [sys.executable, "-m", "fedeploy_ingestion", "stream"],
            tmp_path,
            env={
                **os.environ,
                **endpoint.env(),
                "INGEST_SITE": SITE,
                "INGEST_BUCKET": "site-a-data",
                # Only poison is published: nothing reaches the catalog.
                "INGEST_CATALOG_URL": f"http://127.0.0.1:{free_port()}",
                "INGEST_MQTT_HOST": broker.host,
                "INGEST_MQTT_PORT": str(broker.port),
                "INGEST_MQTT_TLS": "false",  # the loopback broker is plain MQTT
                "INGEST_HTTP_HOST": "127.0.0.1",
                "INGEST_HTTP_PORT": str(stream_port),
                "INGEST_LOG_LEVEL": "WARNING",
            },
        )
        server = Daemon(
            "server",
            [sys.executable, "-m", "fedeploy_inference", "serve"],
            tmp_path,
            env={
                **os.environ,
                **endpoint.env(),
                "INFER_S3_ENDPOINT_URL": endpoint.endpoint_url,
                "INFER_BUCKET": "site-a-models",
                "INFER_MODEL_NAME": "nowcast",
                "INFER_DEVICE": "cpu",
                "INFER_HOST": "127.0.0.1",
                "INFER_PORT": str(server_port),
            },
        )

        def ready(port: int, path: str) -> Callable[[], bool]:
            return lambda: httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200

        def start_consumer() -> None:
            consumer.start_and_wait(ready(stream_port, "/readyz"), 60, "the consumer's /readyz")

        def start_server() -> None:
            server.start_and_wait(ready(server_port, "/readyz"), 120, "the server's /readyz")

        start_consumer()
        started.append(consumer)
        start_server()
        started.append(server)
        prometheus = start_peer(
            lambda: PrometheusServer(
                tmp_path / "prometheus",
                [
                    _scrape("ingestion-stream", stream_port, STREAM_POD, "stream", "stream"),
                    _scrape("inference", server_port, SERVER_POD, "server", "server"),
                ],
                _rules(),
            ).start()
        )
        started.append(prometheus)
        yield {
            "broker": broker,
            "prometheus": prometheus,
            "consumer": consumer,
            "server": server,
            "start_server": start_server,
            "logs": [consumer.log_file, server.log_file, prometheus.daemon.log_file],
        }
    finally:
        for peer in reversed(started):
            peer.stop()


def _publish_poison(broker: MosquittoBroker, count: int) -> None:
    topic = f"fedeploy/{SITE}/stations/st-01/observations"
    broker.publish([(topic, b"{not json")] * count)


def test_alerts_fire_on_real_faults_and_resolve_and_every_dashboard_query_runs(peers):
    prometheus: PrometheusServer = peers["prometheus"]
    broker: MosquittoBroker = peers["broker"]
    logs = peers["logs"]

    def up(job: str) -> bool:
        return any(s["value"][1] == "1" for s in prometheus.query(f'up{{job="{job}"}}'))

    def state(alert: str) -> str | None:
        return prometheus.alert_states().get(alert)

    _wait_for(lambda: up("ingestion-stream") and up("inference"), "both targets up", logs)
    _wait_for(
        lambda: (
            bool(prometheus.query("ingest_broker_connected == 1"))
            and bool(prometheus.query("fedeploy_inference_ready == 1"))
        ),
        "the consumer connected and the model loaded, as Prometheus sees them",
        logs,
    )
    time.sleep(5)  # several evaluations of every rule on healthy series
    # Only IngestNothingReceived may be pending: the consumer really receives nothing yet (it
    # fires after nothingReceivedFor, 30 minutes by default).
    active = prometheus.alert_states()
    assert active.pop("IngestNothingReceived", "pending") == "pending"
    assert active == {}, "an alert is active while nothing is wrong"

    # The broker goes away: the consumer cannot reach it.
    broker.stop()
    _wait_for(lambda: state("IngestBrokerDisconnected") == "firing", "broker alert firing", logs)
    broker.start()
    _wait_for(lambda: state("IngestBrokerDisconnected") is None, "broker alert resolved", logs)

    # Poison: more than 30 dead letters a minute over 15 s, until the alert fires.
    deadline = time.monotonic() + DEADLINE
    while state("IngestDeadLettersRising") != "firing":
        assert time.monotonic() < deadline, "the dead-letter alert did not fire"
        _publish_poison(broker, 5)
        time.sleep(0.5)
    dead = prometheus.query('sum(ingest_dead_letters_total{namespace="fedeploy"})')
    assert float(dead[0]["value"][1]) >= 8
    _wait_for(lambda: state("IngestDeadLettersRising") is None, "dead letters resolved", logs)

    # The model server stops answering.
    server: Daemon = peers["server"]
    server.stop()
    _wait_for(lambda: state("InferenceNotReady") == "firing", "model server alert firing", logs)
    peers["start_server"]()
    _wait_for(lambda: state("InferenceNotReady") is None, "model server alert resolved", logs)

    # Every dashboard query runs; each whose metrics Prometheus has must return a series.
    scraped = set(prometheus.api("label/__name__/values"))
    boards = [
        *dashboards(monitored("ingestion", "hpc")),
        *dashboards(monitored("inference", "aws")),
        *dashboards(monitored("catalog", "hub")),
    ]
    assert len(boards) == 4
    checked_with_series = 0
    for board in boards:
        for title, expr in panel_queries(board):
            result = prometheus.query(expr)  # raises on a query Prometheus refuses
            names = set(re.findall(r"\b([a-z_]+)\{", expr)) - {"by", "on"}
            if names and names <= scraped:
                assert result, f"{board['title']} / {title}: no series for {expr}"
                checked_with_series += 1
    assert checked_with_series >= 20


def test_a_member_not_harvested_for_too_long_fires_through_the_pushgateway(tmp_path):
    """What the harvest pushes per member (outcome.py), scraped from Debian's real Pushgateway
    as the chart's Pushgateway monitor scrapes it: the member whose harvests fail goes
    stale and its alert fires, for it alone; a successful harvest of it resolves the alert."""
    from fedeploy_ingestion.outcome import push_harvest

    from loopback.prometheus import Pushgateway

    gateway = start_peer(lambda: Pushgateway(tmp_path / "pushgateway").start())
    try:
        values = {
            "monitoring": {
                "pushgateway": {"url": gateway.url},
                "alerts": {"harvestMaxAgeSeconds": 8},
            }
        }
        manifests = monitored("catalog", "hub", values)
        job = pushgateway_scrape(manifests, gateway.url)
        prometheus = start_peer(
            lambda: PrometheusServer(tmp_path / "prometheus", [job], rules_of(manifests)).start()
        )
        try:
            logs = [gateway.daemon.log_file, prometheus.daemon.log_file]

            def stale() -> set[str]:
                return {
                    a["labels"].get("member", "")
                    for a in prometheus.api("alerts")["alerts"]
                    if a["labels"]["alertname"] == "CatalogHarvestMemberStale"
                    and a["state"] == "firing"
                }

            ok = {"status": "ok", "items": 3}
            push_harvest(gateway.url, "hub", {"aws-eu": ok, "eu-cloud": ok})
            deadline = time.monotonic() + DEADLINE
            # eu-cloud keeps being harvested; aws-eu's harvests fail from now on.
            while stale() != {"aws-eu"}:
                assert time.monotonic() < deadline, f"aws-eu never alone stale: {stale()}"
                push_harvest(
                    gateway.url,
                    "hub",
                    {"aws-eu": {"status": "unreachable", "error": "timed out"}, "eu-cloud": ok},
                )
                time.sleep(1)
            push_harvest(gateway.url, "hub", {"aws-eu": ok, "eu-cloud": ok})
            _wait_for(lambda: stale() == set(), "the member's alert resolved", logs)
        finally:
            prometheus.stop()
    finally:
        gateway.stop()


def test_a_push_copying_the_consumers_labels_neither_masks_nor_fires_an_alert(tmp_path):
    """A pusher copies the stream consumer's job, namespace and pod into the real Pushgateway:
    broker connected (to mask the real disconnect) and an enormous lag (to fire a false alert).
    Scraped as the ingestion chart's Pushgateway monitor scrapes it (honor_labels, then only the
    Sentinel's job and this site kept), the push never reaches the rules: the consumer's real
    disconnect fires IngestBrokerDisconnected, and IngestLagBeyondWindow stays silent."""
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, start_http_server

    from loopback.prometheus import Pushgateway

    gateway = start_peer(lambda: Pushgateway(tmp_path / "pushgateway").start())
    consumer = CollectorRegistry()
    Gauge("ingest_broker_connected", "", registry=consumer).set(0)
    Gauge("ingest_lag_seconds", "", registry=consumer).set(0)
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=consumer)
    spoof = CollectorRegistry()
    Gauge("ingest_broker_connected", "", registry=spoof).set(1)
    Gauge("ingest_lag_seconds", "", registry=spoof).set(10**6)
    labels = {"namespace": NAMESPACE, "pod": STREAM_POD, "container": "stream", "site": SITE}
    push_to_gateway(gateway.url, job="ingestion-stream", registry=spoof, grouping_key=labels)
    values = {
        "monitoring": {
            "pushgateway": {"url": gateway.url},
            "alerts": {"brokerDisconnectedFor": "3s", "lagFor": "3s"},
        }
    }
    manifests = monitored("ingestion", "aws", values)
    jobs = [
        _scrape("ingestion-stream", port, STREAM_POD, "stream", "stream"),
        pushgateway_scrape(manifests, gateway.url),
    ]
    prometheus = start_peer(
        lambda: PrometheusServer(tmp_path / "prometheus", jobs, rules_of(manifests)).start()
    )
    try:
        logs = [gateway.daemon.log_file, prometheus.daemon.log_file]
        states = prometheus.alert_states
        _wait_for(lambda: states().get("IngestBrokerDisconnected") == "firing", "firing", logs)
        assert "IngestLagBeyondWindow" not in states()
        # What the rules see of the consumer: its own series alone, the push dropped.
        seen = prometheus.query('ingest_broker_connected{job="ingestion-stream"}')
        assert [s["value"][1] for s in seen] == ["0"], seen
        assert "ingest_broker_connected" in gateway.metrics()  # the push itself is there
    finally:
        prometheus.stop()
        server.shutdown()
        gateway.stop()


def test_spoofed_sentinel_groups_cannot_silence_copied_nothing(tmp_path):
    """Worker 0 really registered nothing; a pod reaching the real Pushgateway pushes, under
    job fedeploy-sentinel and this site, a worker 9 with 5 items, a second worker-0 group
    (instance=attacker) with 5, and a fresh kube-state-metrics CronJob success. Scraped as the
    ingestion chart's Pushgateway monitor scrapes it, the spoofed Sentinel series are kept and
    stamped, yet IngestSentinelCopiedNothing fires; the kube-state-metrics series is dropped
    (review finding 1)."""
    from fedeploy_ingestion.outcome import push_sentinel
    from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

    from loopback.prometheus import Pushgateway

    site = SITES["aws"]["ingestion"]["site"]["name"]
    gateway = start_peer(lambda: Pushgateway(tmp_path / "pushgateway").start())
    try:
        assert push_sentinel(gateway.url, site, 0, registered=0, failed=0)
        spoof = CollectorRegistry()
        Gauge("ingest_sentinel_last_run_registered_items", "", registry=spoof).set(5)
        for group in (
            {"site": site, "worker": "9"},
            {"site": site, "worker": "0", "instance": "attacker"},
        ):
            push_to_gateway(
                gateway.url, job="fedeploy-sentinel", registry=spoof, grouping_key=group
            )
        ksm = CollectorRegistry()
        Gauge(
            "kube_cronjob_status_last_successful_time", "", ["namespace", "cronjob"], registry=ksm
        ).labels(NAMESPACE, "ingestion-sentinel").set(time.time())
        push_to_gateway(
            gateway.url, job="fedeploy-sentinel", registry=ksm, grouping_key={"site": site}
        )
        values = {
            "sentinel": {"enabled": True},
            "monitoring": {
                "pushgateway": {"url": gateway.url},
                "alerts": {"sentinelNothingFor": "10s"},
            },
        }
        manifests = monitored("ingestion", "aws", values)
        prometheus = start_peer(
            lambda: PrometheusServer(
                tmp_path / "prometheus",
                [pushgateway_scrape(manifests, gateway.url)],
                rules_of(manifests),
            ).start()
        )
        try:
            logs = [gateway.daemon.log_file, prometheus.daemon.log_file]
            states = prometheus.alert_states
            _wait_for(
                lambda: states().get("IngestSentinelCopiedNothing") == "firing", "firing", logs
            )
            kept = prometheus.query(
                'ingest_sentinel_last_run_registered_items{fedeploy_pushgateway="ingestion"}'
            )
            assert len(kept) == 3, kept  # the spoofs reached Prometheus; the rule ignores them
            assert prometheus.query("kube_cronjob_status_last_successful_time") == []
        finally:
            prometheus.stop()
    finally:
        gateway.stop()
