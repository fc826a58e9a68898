"""The token guard's request metrics: every request counted by method and status class (a refused
token, an upstream 5xx, an app that raises), with its duration, served in Prometheus's text
format on their own port, as prometheus_client's parser reads it."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from loopback.processes import free_port
from tests.unit.test_exposure import token_guard

ISSUER = "https://id.example.eu/realms/eofed"


def _samples(metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
    }


def _call(guard, method: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        pass

    scope = {"type": "http", "method": method, "headers": headers or []}
    asyncio.run(guard(scope, receive, send))


def test_every_request_is_counted_by_method_and_status_class_with_its_duration():
    async def upstream(scope, receive, send):
        status = 502 if scope["method"] == "POST" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = token_guard.TokenGuard(upstream, ISSUER)
    _call(guard, "GET")
    _call(guard, "GET")
    _call(guard, "POST")
    _call(guard, "BREW")  # an unknown method: one label value, whatever a client sends
    _call(guard, "GET", [(b"authorization", b"Bearer not-a-jwt")])  # refused by the guard
    samples = _samples(guard.metrics)
    total = "fedeploy_catalog_requests_total"
    assert samples[(total, (("code", "2xx"), ("method", "GET")))] == 2
    assert samples[(total, (("code", "5xx"), ("method", "POST")))] == 1
    assert samples[(total, (("code", "2xx"), ("method", "OTHER")))] == 1
    assert samples[(total, (("code", "4xx"), ("method", "GET")))] == 1
    assert samples[("fedeploy_catalog_request_duration_seconds_count", ())] == 5
    assert samples[("fedeploy_catalog_request_duration_seconds_bucket", (("le", "+Inf"),))] == 5
    assert samples[("fedeploy_catalog_request_duration_seconds_bucket", (("le", "10.0"),))] == 5


def test_an_upstream_that_raises_is_counted_as_a_5xx():
    async def broken(scope, receive, send):
        raise RuntimeError("upstream connection reset")

    guard = token_guard.TokenGuard(broken, ISSUER)
    with pytest.raises(RuntimeError):
        _call(guard, "GET")
    samples = _samples(guard.metrics)
    assert samples[("fedeploy_catalog_requests_total", (("code", "5xx"), ("method", "GET")))] == 1


def test_metrics_are_served_on_their_own_port_and_nothing_else_there():
    metrics = token_guard.RequestMetrics()
    metrics.observe("GET", 200, 0.01)
    port = free_port()
    server = token_guard.serve_metrics(metrics, port, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            body = answer.read().decode()
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert 'fedeploy_catalog_requests_total{method="GET",code="2xx"} 1' in body
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/search", timeout=5)
        assert refused.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
