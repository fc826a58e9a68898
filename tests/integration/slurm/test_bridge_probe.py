"""The bridge probe (services/inference's bridge_probe) against a real slurmrestd, and its alert
against a real Prometheus (Debian 12's 2.42) with the inference chart's rendered rules.

A slurmrestd of its own (`rest_for`, plain HTTP on loopback) is probed with the site's user and
token read from files, as the chart mounts them: while it runs fedeploy_bridge_up is 1 and the
last success is stamped; once it is stopped the probe says unreachable, the gauge is 0 and the
last success stays where it was. Scraped by Prometheus, the stopped slurmrestd fires
SlurmBridgeDown.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import start_http_server

from loopback.processes import free_port
from loopback.prometheus import PrometheusServer
from tests.charts.test_monitoring import dashboards, monitored, panel_queries, rules_of
from tests.peers import start_peer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

fedeploy_inference = pytest.importorskip("fedeploy_inference.bridge_probe")
from fedeploy_inference.bridge_probe import BridgeMetrics, probe_once, run  # noqa: E402
from fedeploy_inference.settings import InferenceSettings  # noqa: E402


def _settings(slurm: Any, url: str, tmp_path: Path) -> InferenceSettings:
    """The probe's settings as the chart gives them: the user and token as mounted files."""
    (tmp_path / "user").write_text(slurm.user + "\n")
    (tmp_path / "token").write_text(slurm.token() + "\n")
    return InferenceSettings(
        bucket="fedeploy-probe",
        bridge_url=url,
        bridge_user_file=str(tmp_path / "user"),
        bridge_token_file=str(tmp_path / "token"),
    )


def _value(metrics: BridgeMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


def test_the_probe_says_up_while_slurmrestd_answers_and_down_once_it_stops(slurm, tmp_path):
    metrics = BridgeMetrics()
    with slurm.rest_for(slurm.api_version) as url:
        settings = _settings(slurm, url, tmp_path)
        assert probe_once(settings, metrics, timeout=10) == "ok"
        assert _value(metrics, "fedeploy_bridge_up") == 1
        last_success = _value(metrics, "fedeploy_bridge_last_success_timestamp_seconds")
        assert last_success and abs(last_success - time.time()) < 30
        assert 0 < (_value(metrics, "fedeploy_bridge_probe_duration_seconds") or 0) < 10
    assert probe_once(settings, metrics, timeout=5) == "unreachable"
    assert _value(metrics, "fedeploy_bridge_up") == 0
    assert _value(metrics, "fedeploy_bridge_last_success_timestamp_seconds") == last_success
    assert _value(metrics, "fedeploy_bridge_probes_total", outcome="ok") == 1
    assert _value(metrics, "fedeploy_bridge_probes_total", outcome="unreachable") == 1


def test_a_token_slurm_refuses_is_down_with_the_reason(slurm, tmp_path):
    metrics = BridgeMetrics()
    with slurm.rest_for(slurm.api_version) as url:
        settings = _settings(slurm, url, tmp_path)
        (tmp_path / "token").write_text(
            slurm.token().rsplit(".", 1)[0] + ".c2lnbmVkLXdpdGgtYW5vdGhlci1rZXk"
        )
        assert probe_once(settings, metrics, timeout=10) == "auth"
    assert _value(metrics, "fedeploy_bridge_up") == 0


def test_slurm_bridge_down_fires_in_prometheus_once_slurmrestd_stops(slurm, tmp_path):
    values = {"monitoring": {"alerts": {"bridgeDownFor": "3s"}}}
    rules = rules_of(monitored("inference", "hpc", values))
    metrics = BridgeMetrics()
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    stop = threading.Event()
    job = {
        "job_name": "inference-bridge-probe",
        "static_configs": [
            {
                "targets": [f"127.0.0.1:{port}"],
                "labels": {
                    "namespace": "fedeploy",
                    "pod": "inference-bridge-probe-6b7c8d9f5-k3m4n",
                    "site": "hpc-centre",
                    "component": "bridge-probe",
                },
            }
        ],
    }
    prometheus = start_peer(lambda: PrometheusServer(tmp_path / "prometheus", [job], rules).start())
    probe: threading.Thread | None = None
    try:
        with slurm.rest_for(slurm.api_version) as url:
            settings = _settings(slurm, url, tmp_path)
            probe = threading.Thread(
                target=run, args=(settings, metrics, 1.0, 3.0, stop), daemon=True
            )
            probe.start()
            _wait(lambda: _bridge_up(prometheus) == 1.0, "fedeploy_bridge_up 1 in Prometheus")
            # Before the first scrape there is no probe target at all (absent up), which with a
            # bridgeDownFor of 3 s may fire; once the probe is scraped up, it resolves.
            _wait(
                lambda: "SlurmBridgeDown" not in prometheus.alert_states(),
                "SlurmBridgeDown resolved while the probe is up",
            )
            # The inference dashboard's bridge panels answer with the probe's series.
            (board,) = dashboards(monitored("inference", "hpc"))
            bridge_panels = [q for t, q in panel_queries(board) if "fedeploy_bridge_" in q]
            assert len(bridge_panels) == 2
            for query in bridge_panels:
                assert prometheus.query(query), query
        # slurmrestd stopped: the probe fails, and the alert fires after bridgeDownFor.
        _wait(lambda: _bridge_up(prometheus) == 0.0, "fedeploy_bridge_up 0 in Prometheus")
        _wait(
            lambda: prometheus.alert_states().get("SlurmBridgeDown") == "firing",
            "SlurmBridgeDown firing",
        )
    finally:
        stop.set()
        if probe is not None:
            probe.join(timeout=15)
        server.shutdown()
        prometheus.stop()


def _bridge_up(prometheus: PrometheusServer) -> float | None:
    result = prometheus.query('fedeploy_bridge_up{job="inference-bridge-probe"}')
    return float(result[0]["value"][1]) if result else None


def _wait(check: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def test_submissions_push_their_outcome_to_the_pushgateway(slurm, job_dir, tmp_path, monkeypatch):
    """What the retrain CronJob's submission pushes (bridge_submit.submit_recorded), to Debian's
    real Pushgateway: a job SLURM accepts stamps the success, one it refuses (a partition that
    does not exist) the failure, under the group SlurmBridgeSubmissionsFailing reads."""
    from fedeploy_inference.bridge_submit import PUSH_JOB, bridge_client, submit_recorded
    from fedeploy_inference.slurm_jobs import InferenceJob

    from loopback.prometheus import Pushgateway

    gateway = start_peer(lambda: Pushgateway(tmp_path / "pushgateway").start())
    monkeypatch.setenv("INFER_PUSHGATEWAY_URL", gateway.url)
    monkeypatch.setenv("INFER_SITE", "hpc-centre")
    metrics = BridgeMetrics()

    def job(partition: str) -> InferenceJob:
        return InferenceJob(
            name="probe-push",
            script="#!/bin/bash\ntrue\n",
            partition=partition,
            time_limit_minutes=1,
            nodes=1,
            cpus=1,
            memory_mb=64,
            gpus=0,
            environment={"PATH": "/usr/bin:/bin"},
            working_directory=str(job_dir),
            idempotency_key=f"probe-push-{partition}-{time.time_ns()}",
        )

    try:
        with slurm.rest_for(slurm.api_version) as url:
            settings = _settings(slurm, url, tmp_path)
            with bridge_client(settings) as bridge:
                assert submit_recorded(bridge, job("debug"), metrics) > 0
                with pytest.raises(Exception, match="partition"):
                    submit_recorded(bridge, job("no-such-partition"), metrics)
        pushed = gateway.metrics()
        for outcome in ("success", "failure"):
            (line,) = [
                line
                for line in pushed.splitlines()
                if line.startswith("fedeploy_bridge_last_submission_timestamp_seconds{")
                and f'outcome="{outcome}"' in line
            ]
            assert f'job="{PUSH_JOB}"' in line and 'site="hpc-centre"' in line
            assert abs(float(line.rsplit(" ", 1)[1]) - time.time()) < 120
    finally:
        gateway.stop()
