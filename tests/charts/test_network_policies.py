"""NetworkPolicies: every pod starts denied, and exactly the traffic each service needs is allowed.

The policies are evaluated here the way a CNI does for pod-to-pod traffic: a connection is
allowed when some policy that selects the destination admits it (ingress) and some policy
that selects the source lets it out (egress).
"""

from __future__ import annotations

import pytest

from fedeploy.charts import pod_template, render_chart

NAMESPACE = "fedeploy"


def _matches(selector, labels):
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_admits(peer, labels, namespace, policy_namespace):
    if "ipBlock" in peer:
        return False
    namespace_labels = {"kubernetes.io/metadata.name": namespace}
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], namespace_labels):
            return False
    elif namespace != policy_namespace:
        return False
    return _matches(peer.get("podSelector", {}), labels)


def _rule_admits(rule, peers_key, labels, namespace, port, policy_namespace):
    ports = rule.get("ports")
    if ports and not any(p.get("port") == port for p in ports):
        return False
    peers = rule.get(peers_key)
    return not peers or any(_peer_admits(p, labels, namespace, policy_namespace) for p in peers)


def _selecting(policies, labels, direction):
    return [
        p
        for p in policies
        if direction in p["spec"]["policyTypes"] and _matches(p["spec"]["podSelector"], labels)
    ]


def _admits(policies, direction, source, destination, port):
    """Whether one side's policies (Ingress: the destination's, Egress: the source's) allow it."""
    (src_labels, src_ns), (dst_labels, dst_ns) = source, destination
    if direction == "Ingress":
        selected, rules, peers, peer = dst_labels, "ingress", "from", (src_labels, src_ns)
    else:
        selected, rules, peers, peer = src_labels, "egress", "to", (dst_labels, dst_ns)
    policies = _selecting(policies, selected, direction)
    return not policies or any(
        _rule_admits(rule, peers, *peer, port, policy["metadata"]["namespace"])
        for policy in policies
        for rule in policy["spec"].get(rules, [])
    )


def ingress_admits(policies, source, destination, port):
    """Whether the policies selecting pod `destination` admit `source` on `port`."""
    return _admits(policies, "Ingress", source, destination, port)


def egress_admits(policies, source, destination, port):
    """Whether the policies selecting pod `source` let it reach `destination` on `port`."""
    return _admits(policies, "Egress", source, destination, port)


def allowed(policies, source, destination, port):
    """Whether pod `source` may open a TCP connection to pod `destination` on `port`.

    Pods are (labels, namespace); a side that no policy selects is unrestricted.
    """
    return ingress_admits(policies, source, destination, port) and egress_admits(
        policies, source, destination, port
    )


def external_egress_ports(policies, labels):
    """TCP ports a pod may reach outside the cluster (ipBlock peers)."""
    ports = set()
    for policy in _selecting(policies, labels, "Egress"):
        for rule in policy["spec"].get("egress", []):
            if any("ipBlock" in peer for peer in rule.get("to", [])):
                ports |= {p["port"] for p in rule.get("ports", []) if p.get("protocol") == "TCP"}
    return ports


def _pods(manifests):
    """component -> pod labels, for every workload of a release."""
    pods = {}
    for manifest in manifests:
        template = pod_template(manifest)
        if template is not None:
            labels = template["metadata"]["labels"]
            pods[labels["app.kubernetes.io/component"]] = labels
    return pods


def _policies(manifests):
    return [m for m in manifests if m["kind"] == "NetworkPolicy"]


@pytest.fixture
def site(rendered, site_charts):
    """Every chart of one site, rendered into one namespace: (policies, component pods by chart)."""

    def build(name):
        policies, pods = [], {}
        for chart in site_charts(name):
            manifests = rendered(chart, name)
            policies += _policies(manifests)
            pods[chart] = _pods(manifests)
        return policies, pods

    return build


def test_every_pod_is_selected_for_both_ingress_and_egress(chart_case, rendered):
    manifests = rendered(chart_case)
    policies = _policies(manifests)
    for component, labels in _pods(manifests).items():
        assert _selecting(policies, labels, "Ingress"), f"{chart_case} {component}: ingress open"
        assert _selecting(policies, labels, "Egress"), f"{chart_case} {component}: egress open"


def test_network_policies_can_be_turned_off(chart_case, merge):
    values = merge(chart_case.values, {"networkPolicy": {"enabled": False}})
    manifests = render_chart(chart_case.chart_dir, values, chart_case.release, NAMESPACE)
    assert [m for m in manifests if m["kind"] == "NetworkPolicy"] == []


@pytest.mark.parametrize("site_name", ["aws", "kubernetes", "hpc"])
def test_services_with_a_catalog_url_reach_the_catalog_api_and_never_its_database(
    site, site_name, site_values
):
    policies, pods = site(site_name)
    api = (pods["catalog"]["api"], NAMESPACE)
    database = pods["catalog"].get("database")
    for chart in ("ingestion", "inference"):
        from_values = site_values(site_name, chart).get("catalog", {}).get("url")
        for component, labels in pods[chart].items():
            client = (labels, NAMESPACE)
            assert allowed(policies, client, api, 8080) == bool(from_values), f"{chart} {component}"
            if database is not None:
                assert not allowed(policies, client, (database, NAMESPACE), 5432)


def test_only_the_api_and_the_migration_reach_the_in_cluster_database(rendered):
    manifests = rendered("catalog", "kubernetes")
    policies, pods = _policies(manifests), _pods(manifests)
    database = (pods["database"], NAMESPACE)
    assert allowed(policies, (pods["api"], NAMESPACE), database, 5432)
    assert allowed(policies, (pods["migration"], NAMESPACE), database, 5432)
    stranger = {**pods["api"], "app.kubernetes.io/instance": "another-release"}
    assert not allowed(policies, (stranger, NAMESPACE), database, 5432)
    assert not allowed(policies, (pods["api"], "elsewhere"), database, 5432)
    # The database itself opens no connection to anything.
    assert external_egress_ports(policies, pods["database"]) == set()
    assert not allowed(policies, database, (pods["api"], NAMESPACE), 8080)


def test_the_catalog_api_admits_allowed_namespaces_and_no_other(rendered):
    manifests = rendered("catalog", "hub")
    policies, pods = _policies(manifests), _pods(manifests)
    api = (pods["api"], NAMESPACE)
    controller = {"app.kubernetes.io/name": "ingress-nginx"}
    assert allowed(policies, (controller, "ingress-nginx"), api, 8080)
    assert not allowed(policies, (controller, "default"), api, 8080)
    assert not allowed(policies, ({"app": "anything"}, NAMESPACE), api, 8080)
    assert allowed(policies, (pods["harvester"], NAMESPACE), api, 8080)
    # The harvester writes through the API, never to the database directly: both sides say so.
    harvester, database = (pods["harvester"], NAMESPACE), (pods["database"], NAMESPACE)
    assert not ingress_admits(policies, harvester, database, 5432)
    assert not egress_admits(policies, harvester, database, 5432)


def test_the_harvester_reaches_every_member_site_on_its_port(rendered):
    manifests = rendered("catalog", "hub")
    pods = _pods(manifests)
    assert external_egress_ports(_policies(manifests), pods["harvester"]) == {443, 8443, 8081}
    # The API itself goes out only to its database.
    assert external_egress_ports(_policies(manifests), pods["api"]) == set()


def test_the_catalog_reaches_an_external_database_only_on_its_cidrs_and_port(rendered):
    manifests = rendered("catalog", "aws")
    pods, policies = _pods(manifests), _policies(manifests)
    assert external_egress_ports(policies, pods["api"]) == {5432}
    cidrs = {
        peer["ipBlock"]["cidr"]
        for policy in _selecting(policies, pods["api"], "Egress")
        for rule in policy["spec"].get("egress", [])
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    }
    assert cidrs == {"10.20.0.0/16"}


@pytest.mark.parametrize(
    ("site_name", "component", "ports"),
    [
        # AWS S3 (443), the Copernicus sources (443); the broker on 8883.
        ("aws", "sentinel", {443}),
        ("aws", "stream", {443, 8883}),
        # The site's S3 endpoint names port 8443.
        ("kubernetes", "sentinel", {8443, 443}),
        # The broker on the MQTT-over-TLS default port.
        ("kubernetes", "stream", {8443, 8883}),
        ("hpc", "stream", {8333, 1883}),
    ],
)
def test_ingestion_leaves_the_cluster_only_for_storage_sources_and_broker(
    site, site_name, component, ports
):
    policies, pods = site(site_name)
    assert external_egress_ports(policies, pods["ingestion"][component]) == ports


@pytest.mark.parametrize(
    ("site_name", "ports"),
    [("aws", {443}), ("kubernetes", {8443}), ("hpc", {8333, 6820})],
)
def test_inference_leaves_the_cluster_only_for_storage_and_the_bridge(site, site_name, ports):
    policies, pods = site(site_name)
    assert external_egress_ports(policies, pods["inference"]["server"]) == ports


def test_inference_admits_labelled_clients_only(rendered):
    manifests = rendered("inference", "kubernetes")
    policies, server = _policies(manifests), (_pods(manifests)["server"], NAMESPACE)
    assert allowed(policies, ({"fedeploy.io/inference-client": "true"}, NAMESPACE), server, 8080)
    assert not allowed(policies, ({"app": "other"}, NAMESPACE), server, 8080)
    assert not allowed(
        policies, ({"fedeploy.io/inference-client": "true"}, NAMESPACE), server, 9090
    )


def test_the_dns_egress_rule_is_written_once_in_the_library(
    charts_dir, rendered, site_values, merge
):
    """The cluster-DNS egress (UDP and TCP 53 to networkPolicy.dns's pods) is the library's
    fedeploy-common.dnsEgress: no chart's template spells port 53 itself, and every egress
    policy rendered carries exactly that rule (the bridge probe's included)."""
    import re

    spelled = [
        f"{path.relative_to(charts_dir)}:{number}"
        for path in sorted(charts_dir.glob("*/templates/*"))
        if path.parent.parent.name != "fedeploy-common"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bport:\s*53\b", line)
    ]
    assert spelled == [], f"DNS egress spelled outside fedeploy-common.dnsEgress: {spelled}"
    dns = {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    # The bridge probe renders where monitoring does.
    values = merge(site_values("hpc", "inference"), {"monitoring": {"enabled": True}})
    manifests = render_chart(charts_dir / "inference", values, "inference", NAMESPACE)
    probe = next(p for p in _policies(manifests) if p["metadata"]["name"].endswith("bridge-probe"))
    assert probe["spec"]["egress"][0] == dns
    for chart in ("catalog", "ingestion", "inference"):
        for policy in _policies(rendered(chart, "hpc")):
            egress = policy["spec"].get("egress")
            if egress:
                assert [rule for rule in egress if rule == dns] == [dns], policy["metadata"]
