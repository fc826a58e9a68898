"""URL ports and IPv6 literals of the Pushgateway and the bridge (review sweep33 F5, F16).

A URL's port becomes a NetworkPolicy port (and a PodMonitor's targetPort), which the API server
refuses outside 1-65535, so the stack file refuses it at its key (fedeploy.config.addresses). An
IPv6 literal is taken where it works end to end: the Pushgateway's URL (its NetworkPolicy
admits the Pushgateway's pods by labels, either family; prometheus_client pushes to [addr]:port;
fedeploy-common.urlPort reads the port after the brackets), not bridge.endpoint or
bridge.auth_url (the inference NetworkPolicies admit the bridge over IPv4 only, the bridge VM's
security group lets it out over IPv4 only): refused there, saying so.
"""

from __future__ import annotations

import copy
import http.server
import json
import socket
import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from fedeploy.charts import render_chart
from fedeploy.errors import StackConfigError
from fedeploy.offline.engine import plan_stack
from fedeploy.plan.run import check_planned
from tests.builders import example_site
from tests.charts.conftest import CHARTS_DIR, NAMESPACE, SITES, deep_merge
from tests.conftest import STACKS, unavailable

PUSHGATEWAY_KEY = "site.monitoring.pushgateway.url"
ENDPOINT_KEY = "site.bridge.endpoint"
EXISTING_BRIDGE = {
    "mode": "existing",
    "endpoint": "https://slurm-api.example.org:6820",
    "token": {"secure": "v1:YQ==:Yg=="},
    "partitions": ["gpu"],
}


def _refused(stack: str, site: dict[str, Any]) -> Any:
    with pytest.raises(StackConfigError) as raised:
        plan_stack(STACKS / f"Pulumi.{stack}.yaml", config_override={"fedeploy:site": site})
    (issue,) = raised.value.issues
    return issue


def _pushgateway_site(url: str) -> dict[str, Any]:
    site = copy.deepcopy(example_site("aws-dublin"))
    site["monitoring"]["pushgateway"]["url"] = url
    return site


def _bridge_site(**bridge: Any) -> dict[str, Any]:
    site = copy.deepcopy(example_site("hpc-kajaani"))
    site["bridge"] = {**EXISTING_BRIDGE, **bridge}
    return site


def _pushgateway_ports(manifests: list[dict[str, Any]], namespace: str) -> list[Any]:
    """The ports of every egress rule to the Pushgateway's namespace, and every PodMonitor's
    targetPort for it."""
    ports = [
        port["port"]
        for m in manifests
        if m["kind"] == "NetworkPolicy"
        for rule in m["spec"].get("egress", [])
        if any(
            (peer.get("namespaceSelector") or {}).get("matchLabels")
            == {"kubernetes.io/metadata.name": namespace}
            for peer in rule.get("to", [])
        )
        for port in rule.get("ports", [])
    ]
    return ports + [
        endpoint["targetPort"]
        for m in manifests
        if m["kind"] == "PodMonitor" and m["metadata"]["name"].endswith("-pushgateway")
        for endpoint in m["spec"]["podMetricsEndpoints"]
    ]


# ---------------------------------------------------------------------- the Pushgateway


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("http://[fd00::9]:9091", 9091),
        ("http://[fd00::9]/", 80),
        ("https://[fd00::9]", 443),
        ("http://[2001:db8::1:9]:65535/push", 65535),
        ("http://pg.example.eu:1/", 1),
    ],
)
def test_a_pushgateway_url_plans_clean_and_its_port_reaches_every_policy(url: str, port: int):
    """Before: an IPv6 literal was refused by the pattern, and the charts read `9]` as the
    port of http://[fd00::9] (a NetworkPolicy and PodMonitor port of 0)."""
    plan = plan_stack(
        STACKS / "Pulumi.aws-dublin.yaml", config_override={"fedeploy:site": _pushgateway_site(url)}
    )
    rendered, findings = check_planned(plan, None)
    assert [f for f in findings if f.enforcement == "mandatory"] == []
    seen = []
    for release in rendered:
        if "pushgateway" in release.values.get("monitoring", {}):
            assert release.values["monitoring"]["pushgateway"]["url"] == url
        seen += _pushgateway_ports(release.manifests + release.operator_manifests, "monitoring")
    # The Sentinel workers' and the restore drill's egress, and their PodMonitors.
    assert len(seen) >= 4 and set(seen) == {port}, seen


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://pg.example.eu:0/", ["'0'", "1 to 65535"]),
        ("http://pg.example.eu:99999/", ["'99999'", "1 to 65535"]),
        ("http://pg.example.eu:65536", ["'65536'", "1 to 65535"]),
        ("http://pg.example.eu:09091", ["'09091'", "leading zeros"]),
        ("http://pg.example.eu:/", ["empty"]),
        ("http://[fd00::9]:0/", ["'0'", "1 to 65535"]),
        ("http://[fd00::zz]:9091/", ["'fd00::zz' is not an IPv6 address"]),
        ("http://[10.0.0.1]:9091/", ["'10.0.0.1' is not an IPv6 address"]),
        ("http://[fd00::9]9091/", ["follows the address in brackets"]),
        ("http://10.0.0.256:9091/", ["neither a DNS name nor an IPv4 address"]),
        ("http://pg_gw:9091/", ["'pg_gw'"]),
    ],
)
def test_a_pushgateway_url_no_policy_can_carry_is_refused_at_its_key(url: str, words: list[str]):
    """Before: ports 0 and 99999 planned clean and became NetworkPolicy ports the API server
    refuses ("must be between 1 and 65535")."""
    issue = _refused("aws-dublin", _pushgateway_site(url))
    assert issue.path == PUSHGATEWAY_KEY
    for word in ["IPv6 address in brackets", *words]:
        assert word in str(issue), str(issue)
    # The URL as given (but a bracketed address that is none is named alone, before the URL
    # is parsed for a password it could carry).
    assert repr(url) in str(issue) or "is not an IPv6 address" in str(issue), str(issue)


def test_prometheus_client_pushes_to_an_ipv6_literal():
    """The pushers (outcome.py, bridge_submit.py, the restore drill) push with prometheus_client:
    it reaches a Pushgateway named by an IPv6 literal."""
    if not socket.has_ipv6:
        unavailable("no IPv6 on this machine")
    got: list[tuple[str, str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.command, self.path, self.headers["Host"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    class Server(http.server.HTTPServer):
        address_family = socket.AF_INET6

    try:
        server = Server(("::1", 0), Handler)
    except OSError:
        unavailable("no IPv6 loopback on this machine")
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        registry = CollectorRegistry()
        Gauge("fedeploy_test", "a test series", registry=registry).set(1)
        push_to_gateway(
            f"http://[::1]:{port}", job="j", registry=registry, grouping_key={"site": "s"}
        )
    finally:
        server.shutdown()
    assert got == [("PUT", "/metrics/job/j/site/s", f"[::1]:{port}")]


# ---------------------------------------------------------------------- the bridge


@pytest.mark.parametrize("endpoint", ["https://slurm-api.example.org:0", "http://s.example:65536"])
def test_a_bridge_endpoint_port_outside_1_to_65535_is_refused_at_its_key(endpoint: str):
    """Before: :0 planned clean and became the inference NetworkPolicy's egress port 0."""
    tls = {"tls": {"enabled": False}} if endpoint.startswith("http:") else {}
    issue = _refused("hpc-kajaani", _bridge_site(endpoint=endpoint, **tls))
    assert issue.path == ENDPOINT_KEY
    assert "1 to 65535" in str(issue) and repr(endpoint) in str(issue), str(issue)


@pytest.mark.parametrize(
    "endpoint", ["https://[fd00::22]:6820", "https://[fd00::22]", "https://[::ffff:10.0.0.1]:443"]
)
def test_a_bridge_endpoint_on_an_ipv6_literal_is_refused_saying_so(endpoint: str):
    """Before: planned as far as a chart-values VIOLATION quoting the inference chart (and the
    NetworkPolicies admit the bridge over 0.0.0.0/0 only)."""
    issue = _refused("hpc-kajaani", _bridge_site(endpoint=endpoint))
    assert issue.path == ENDPOINT_KEY
    assert "IPv6 addresses are not supported in bridge.endpoint" in str(issue), str(issue)


@pytest.mark.parametrize(
    ("auth_url", "words"),
    [
        ("https://keystone.example.eu:0/v3", ["'0'", "1 to 65535"]),
        ("https://keystone.example.eu:99999/v3", ["'99999'", "1 to 65535"]),
        ("https://[fd00::5]:5000/v3", ["IPv6 addresses are not supported in bridge.auth_url"]),
    ],
)
def test_a_keystone_url_the_vm_cannot_reach_is_refused_at_its_key(auth_url: str, words):
    """Before: :0 became the security group's egress port 443 (`port or 443`) and :99999 an
    error in the program (urlsplit's port)."""
    from fedeploy.config.bridge import BridgeConfig

    with pytest.raises(ValueError, match="auth_url") as raised:
        BridgeConfig.model_validate(
            {
                "mode": "vm",
                "flavor_id": "eo1.large",
                "image_id": "9f3c2d1e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
                "auth_url": auth_url,
                "partitions": ["gpu"],
            }
        )
    for word in words:
        assert word in str(raised.value), str(raised.value)


def test_a_bridge_endpoint_with_a_valid_port_plans_clean():
    site = _bridge_site(endpoint="https://slurm-api.example.org:65535")
    plan = plan_stack(STACKS / "Pulumi.hpc-kajaani.yaml", config_override={"fedeploy:site": site})
    rendered, findings = check_planned(plan, None)
    assert [f for f in findings if f.enforcement == "mandatory"] == []
    (inference,) = [r for r in rendered if r.name == "inference"]
    ports = {
        port["port"]
        for m in inference.manifests
        if m["kind"] == "NetworkPolicy"
        for rule in m["spec"].get("egress", [])
        if any("ipBlock" in peer for peer in rule.get("to", []))
        for port in rule.get("ports", [])
    }
    assert 65535 in ports


# ---------------------------------------------------------------------- the charts alone


def _rendered(chart: str, site: str, extra: dict[str, Any]) -> list[dict[str, Any]]:
    values = deep_merge(copy.deepcopy(SITES[site][chart]), extra)
    return render_chart(
        CHARTS_DIR / chart,
        values,
        chart,
        NAMESPACE,
        api_versions=["monitoring.coreos.com/v1"],
    )


@pytest.mark.parametrize(("chart", "site"), [("ingestion", "aws"), ("catalog", "hub")])
@pytest.mark.parametrize(
    ("url", "port"),
    [("http://[fd00::9]:9091", 9091), ("http://[::1]", 80), ("https://[fd00::9]/x", 443)],
)
def test_the_charts_read_the_port_after_an_ipv6_literal(chart, site, url: str, port: int):
    """fedeploy-common.urlPort (and the Pushgateway's egress and PodMonitor, which use it):
    before, `9]` was read as the port of http://[fd00::9], rendered as port 0."""
    manifests = _rendered(chart, site, {"monitoring": {"pushgateway": {"url": url}}})
    ports = _pushgateway_ports(manifests, "monitoring")
    assert ports and set(ports) == {port}, ports


@pytest.mark.parametrize(("chart", "site"), [("ingestion", "aws"), ("catalog", "hub")])
@pytest.mark.parametrize("url", ["http://pg.example.eu:0", "http://pg.example.eu:99999"])
def test_the_charts_refuse_a_pushgateway_port_outside_1_to_65535(chart, site, url: str):
    with pytest.raises(Exception, match="pushgateway") as refused:
        _rendered(chart, site, {"monitoring": {"pushgateway": {"url": url}}})
    assert "Traceback" not in str(refused.value)


def test_every_url_port_in_the_charts_schemas_is_1_to_65535():
    """No chart's values.schema.json takes a URL port of 0 or above 65535 (the five-digit
    `[0-9]{1,5}` they had took both)."""
    from fedeploy.config.addresses import PORT_PATTERN

    for chart in ("catalog", "inference", "ingestion"):
        text = (CHARTS_DIR / chart / "values.schema.json").read_text()
        assert "(:[0-9]{1,5})" not in text, chart
        # URLs the charts reach (a host part), not runbookUrl's link for people.
        patterns = [p for p in _patterns(json.loads(text)) if "://[A-Za-z0-9.-]+" in p]
        assert patterns and all(f"(:{PORT_PATTERN})?" in p for p in patterns), chart


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return own + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


@pytest.mark.parametrize("audience", ["[eofed]", "[x", "eofed,catalog", "eofed catalog"])
def test_the_catalog_chart_refuses_an_audience_the_proxy_would_split(audience: str):
    """stac-auth-proxy splits ALLOWED_JWT_AUDIENCES at commas and JSON-decodes a leading `[`:
    the chart refuses both, as the stack file does (before: a leading `[` was taken)."""
    with pytest.raises(Exception, match="audience") as refused:
        _rendered("catalog", "published", {"authProxy": {"oidc": {"audience": audience}}})
    assert "Traceback" not in str(refused.value)


def test_the_catalog_chart_takes_a_plain_audience():
    manifests = _rendered("catalog", "published", {"authProxy": {"oidc": {"audience": "eo-x]"}}})
    assert manifests
