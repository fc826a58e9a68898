"""The bridge probe's outcomes and the submission counters, against a stand-in slurmrestd
(tests/integration/slurm/test_bridge_probe.py runs them against a real one)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fedeploy_inference.bridge_probe import PROBE_MAX_ANSWER_MIB, BridgeMetrics, main, probe_once
from fedeploy_inference.bridge_submit import Submitter
from fedeploy_inference.settings import InferenceSettings
from fedeploy_inference.slurm_jobs import JobResources, training_job

URL = "https://bridge.test:6820"


def _settings(tmp_path: Path, token: str = "a-token") -> InferenceSettings:
    (tmp_path / "token").write_text(token)
    return InferenceSettings(
        bucket="site-a-data",
        bridge_url=URL,
        bridge_user="svc",
        bridge_token_file=str(tmp_path / "token"),
    )


def _sample(metrics: BridgeMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


def _refusing(status: int):  # type: ignore[no-untyped-def]
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/openapi/v3":
            return httpx.Response(200, json={"paths": {"/slurm/v0.0.38/ping": {}}})
        return httpx.Response(status, json={"errors": []})

    return answer


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def test_a_huge_answer_is_an_error_read_no_further_than_the_probes_cap(tmp_path):
    """A hostile bridge answers 60 MiB (under the client's general 64 MiB cap): the probe
    stops reading past PROBE_MAX_ANSWER_MIB, streaming, and says `error` (its container's
    limit is 128Mi; reading the whole answer took it to about 290 MiB)."""
    mib = 2**20
    sent = [0]

    def body():  # type: ignore[no-untyped-def]
        yield b'{"errors": [], "x": ['
        for _ in range(60):
            sent[0] += mib
            yield b'"' + b"a" * (mib - 4) + b'",'
        yield b"1]}"

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/openapi/v3":
            return httpx.Response(200, json={"paths": {"/slurm/v0.0.38/ping": {}}})
        return httpx.Response(200, content=body(), headers={"content-type": "application/json"})

    metrics = BridgeMetrics()
    settings = _settings(tmp_path)
    assert probe_once(settings, metrics, timeout=10, transport=httpx.MockTransport(answer)) == (
        "error"
    )
    assert sent[0] <= (PROBE_MAX_ANSWER_MIB + 1) * mib
    assert _sample(metrics, "fedeploy_bridge_up") == 0


@pytest.mark.parametrize(
    ("transport", "outcome"), [(_refusing(401), "auth"), (_unreachable, "unreachable")]
)
def test_a_failed_probe_is_down_with_its_reason_and_keeps_the_last_success(
    tmp_path, transport, outcome
):
    metrics = BridgeMetrics()
    metrics.last_success.set(1234.0)
    settings = _settings(tmp_path)
    assert probe_once(settings, metrics, timeout=2, transport=httpx.MockTransport(transport)) == (
        outcome
    )
    assert _sample(metrics, "fedeploy_bridge_up") == 0
    assert _sample(metrics, "fedeploy_bridge_probes_total", outcome=outcome) == 1
    assert _sample(metrics, "fedeploy_bridge_last_success_timestamp_seconds") == 1234.0
    # Every outcome is exported from the start, at 0, so a rate over it is defined.
    assert _sample(metrics, "fedeploy_bridge_probes_total", outcome="ok") == 0


def test_a_probe_without_a_readable_token_is_down_not_a_crash(tmp_path):
    metrics = BridgeMetrics()
    settings = _settings(tmp_path)
    (tmp_path / "token").unlink()
    assert probe_once(settings, metrics, timeout=2) == "error"
    assert _sample(metrics, "fedeploy_bridge_up") == 0


def test_the_probe_refuses_to_start_without_a_bridge_url(monkeypatch, capsys):
    monkeypatch.setenv("INFER_BUCKET", "site-a-data")
    monkeypatch.delenv("INFER_BRIDGE_URL", raising=False)
    assert main(["--port", "0"]) == 2
    assert "INFER_BRIDGE_URL" in capsys.readouterr().err


def test_a_submitter_counts_its_submissions_by_outcome(tmp_path):
    metrics = BridgeMetrics()
    settings = _settings(tmp_path)
    job = training_job(settings, JobResources())
    refusing = Submitter(settings, httpx.MockTransport(_refusing(401)), metrics=metrics)
    with pytest.raises(Exception, match="token|refused|401"):
        refusing.submit(job)
    (tmp_path / "token").unlink()
    with pytest.raises(ValueError, match="INFER_BRIDGE_TOKEN_FILE"):
        Submitter(settings, metrics=metrics).submit(job)
    assert _sample(metrics, "fedeploy_bridge_submissions_total", outcome="failure") == 2
    assert _sample(metrics, "fedeploy_bridge_submissions_total", outcome="success") == 0
    assert _sample(metrics, "fedeploy_bridge_last_submission_timestamp_seconds", outcome="failure")
