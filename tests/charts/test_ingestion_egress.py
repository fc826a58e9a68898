"""The ingestion chart's egress to the internet leaves out the metadata service and the cluster.

The Sentinel workers follow hrefs from an untrusted upstream: their NetworkPolicy admits the
sources' CIDRs but never 169.254.0.0/16 (cloud metadata) nor the cluster's pod and service
ranges, which the service itself refuses too (INGEST_BLOCKED_NETWORKS)."""

from __future__ import annotations

import json

from fedeploy.charts import pod_template, render_chart
from fedeploy.config.services import IngestionService
from fedeploy.values.services import ingestion_values
from fedeploy.values.wiring import SiteWiring

CLUSTER = ["10.20.0.0/16", "172.20.0.0/16", "fd00:10::/64"]


def _render(chart_dir, values):
    return render_chart(chart_dir, values, "ingestion", "fedeploy")


def _ip_blocks(manifests, component):
    policy = next(
        m
        for m in manifests
        if m["kind"] == "NetworkPolicy"
        and m["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component") == component
    )
    return [
        (rule["ports"], peer["ipBlock"])
        for rule in policy["spec"]["egress"]
        for peer in rule.get("to", [])
        if "ipBlock" in peer
    ]


def test_the_sources_rule_leaves_out_metadata_and_the_cluster(charts_dir, site_values, merge):
    values = merge(
        site_values("aws", "ingestion"),
        {"networkPolicy": {"clusterCIDRs": CLUSTER, "sourceCIDRs": ["0.0.0.0/0", "::/0"]}},
    )
    manifests = _render(charts_dir / "ingestion", values)
    blocks = _ip_blocks(manifests, "sentinel")
    sources = [block for ports, block in blocks if {"port": 443, "protocol": "TCP"} in ports]
    by_cidr = {block["cidr"]: set(block.get("except", [])) for block in sources}
    assert by_cidr["0.0.0.0/0"] >= {"169.254.0.0/16", "10.20.0.0/16", "172.20.0.0/16"}
    assert by_cidr["::/0"] >= {"fe80::/10", "fd00:10::/64"}
    # Each family's exceptions only: Kubernetes refuses an except outside its cidr.
    assert not any(":" in c for c in by_cidr["0.0.0.0/0"])
    assert all(":" in c for c in by_cidr["::/0"])
    # Every whole-internet rule (storage, broker) leaves out the metadata range at least.
    for component in ("sentinel", "stream"):
        for _, block in _ip_blocks(manifests, component):
            if block["cidr"] == "0.0.0.0/0":
                assert "169.254.0.0/16" in block.get("except", []), (component, block)
    # The downloads refuse the same cluster ranges.
    cronjob = next(m for m in manifests if m["kind"] == "CronJob")
    env = {e["name"]: e.get("value") for e in pod_template(cronjob)["spec"]["containers"][0]["env"]}
    assert json.loads(env["INGEST_BLOCKED_NETWORKS"]) == CLUSTER


def test_a_narrow_source_cidr_carries_no_exception(charts_dir, site_values, merge):
    values = merge(
        site_values("aws", "ingestion"),
        {"networkPolicy": {"clusterCIDRs": CLUSTER, "sourceCIDRs": ["192.0.2.0/24"]}},
    )
    blocks = _ip_blocks(_render(charts_dir / "ingestion", values), "sentinel")
    assert {"cidr": "192.0.2.0/24"} in [block for _, block in blocks]


def test_the_site_passes_its_cluster_ranges_to_the_chart() -> None:
    wiring = SiteWiring(
        site="aws-eu",
        kind="aws",
        namespace="fedeploy",
        storage_endpoint="",
        storage_region="eu-central-1",
        storage_secret="",
        role_arns={},
        gpu_node_selector=None,
        gpu_taint_key=None,
    )
    spec = IngestionService.model_validate(
        {"stream": {"mqtt": {"host": "broker.example.org"}}, "sentinel": None}
    )
    values = ingestion_values(
        wiring,
        spec,
        bucket="b",
        catalog="http://catalog",
        sentinel_secret="",
        mqtt_secret="",
        cluster_cidrs=["10.30.0.0/16"],
    )
    assert values["networkPolicy"] == {"clusterCIDRs": ["10.30.0.0/16"]}


def test_declared_download_hosts_reach_the_service(charts_dir) -> None:
    from fedeploy_ingestion.settings import IngestSettings

    spec = IngestionService.model_validate(
        {
            "sentinel": {
                "sources": [
                    {
                        "name": "mirror",
                        "url": "https://stac.mirror.example.org/v1",
                        "collections": ["sentinel-2-l2a"],
                        "bbox": [10, 45, 13, 48],
                        "assets": ["B04"],
                        "download_hosts": ["dl.mirror.example.org", "*.cdn.example.org"],
                    }
                ]
            }
        }
    )
    wiring = SiteWiring("eu", "aws", "fedeploy", "", "eu-central-1", "", {}, None, None)
    values = ingestion_values(
        wiring,
        spec,
        bucket="raw-data",
        catalog="http://catalog",
        sentinel_secret="",
        mqtt_secret="",
    )
    values["site"] = {"name": "eu-site", "kind": "aws"}
    manifests = _render(charts_dir / "ingestion", values)
    cronjob = next(m for m in manifests if m["kind"] == "CronJob")
    env = {e["name"]: e.get("value") for e in pod_template(cronjob)["spec"]["containers"][0]["env"]}
    [source] = IngestSettings(sources=json.loads(env["INGEST_SOURCES"])).sources
    assert source.download_hosts == ["dl.mirror.example.org", "*.cdn.example.org"]
