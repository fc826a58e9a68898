"""Supply chain and pod hardening of every chart: images pinned by digest, high UIDs, and each
checkov waiver a one-line reason on the workload it covers (docs/charts.md lists them)."""

from __future__ import annotations

import copy

import pytest
import yaml

from fedeploy.charts import ChartValuesError, pod_template, render_chart
from fedeploy.offline.engine import StackPlan
from fedeploy.plan.checks import RenderedRelease, digest_findings

DIGEST = "sha256:" + "ab12" * 16
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
# (chart, workload name suffix) -> why its UID is below 10000; nothing else may be.
LOW_UID = {("catalog", "-db"): 999}


def _containers(manifest):
    spec = pod_template(manifest)["spec"]
    return [*(spec.get("initContainers") or []), *spec["containers"]]


def _workloads(manifests):
    return [m for m in manifests if m["kind"] in WORKLOADS]


def _skips(manifest):
    annotations = manifest["metadata"].get("annotations") or {}
    return {
        value.split("=", 1)[0]: value.split("=", 1)[1]
        for key, value in annotations.items()
        if key.startswith("checkov.io/skip")
    }


def test_digests_pin_every_image_and_lift_the_image_waivers(chart_case, charts_dir) -> None:
    values = copy.deepcopy(chart_case.values)
    chart_values = yaml.safe_load((charts_dir / chart_case.chart / "values.yaml").read_text())
    # Every image block the chart has, with a digest (the defaults' blocks, merged into the case).
    merged = _with_digests(chart_values, values)
    manifests = render_chart(chart_case.chart_dir, merged, chart_case.release, "fedeploy")
    for workload in _workloads(manifests):
        for container in _containers(workload):
            assert container["image"].endswith("@" + DIGEST), (
                workload["metadata"]["name"],
                container,
            )
        assert not {"CKV_K8S_43", "CKV_K8S_15"} & set(_skips(workload))
    # Without digests the waiver says why, on every workload.
    for workload in _workloads(
        render_chart(chart_case.chart_dir, values, chart_case.release, "fedeploy")
    ):
        skips = _skips(workload)
        assert "image-digest" in skips["CKV_K8S_43"], workload["metadata"]["name"]
        assert "CKV_K8S_15" in skips


def _with_digests(defaults, values):
    """`values` with a digest in every image block the chart's defaults have."""
    merged = copy.deepcopy(values)

    def walk(default, target):
        for key, value in default.items():
            if isinstance(value, dict):
                node = target.setdefault(key, {})
                if "repository" in value and "tag" in value:
                    node["digest"] = DIGEST
                walk(value, node)

    walk(defaults, merged)
    return merged


@pytest.mark.parametrize("chart", ["catalog", "ingestion", "inference"])
@pytest.mark.parametrize("digest", ["sha256:abc", "md5:" + "0" * 32, "sha256:" + "G" * 64])
def test_a_malformed_digest_is_refused(chart, digest, charts_dir, site_values) -> None:
    site = {"catalog": "hub", "ingestion": "aws", "inference": "aws"}[chart]
    values = site_values(site, chart)
    values.setdefault("image", {})["digest"] = digest
    with pytest.raises(ChartValuesError, match="digest"):
        render_chart(charts_dir / chart, values, chart, "fedeploy")


def test_every_container_runs_with_a_high_uid_or_says_why(chart_case, rendered) -> None:
    for workload in _workloads(rendered(chart_case)):
        name = workload["metadata"]["name"]
        pod = pod_template(workload)["spec"]
        for container in _containers(workload):
            uid = (container.get("securityContext") or {}).get("runAsUser") or (
                pod.get("securityContext") or {}
            ).get("runAsUser")
            allowed = next(
                (
                    u
                    for (c, suffix), u in LOW_UID.items()
                    if c == chart_case.chart and name.endswith(suffix)
                ),
                None,
            )
            if allowed is not None:
                assert uid == allowed and "uid 999" in _skips(workload)["CKV_K8S_40"]
            else:
                assert uid is not None and uid >= 10000, (name, container["name"], uid)


def _plan(environment: str | None) -> StackPlan:
    outputs = {"site": {"name": "s", "environment": environment}} if environment else {}
    return StackPlan("s", [], outputs, [], [])


def _release(image: str) -> RenderedRelease:
    manifest = {
        "kind": "CronJob",
        "metadata": {"name": "x"},
        "spec": {
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": image}]}}}}
        },
    }
    return RenderedRelease("ingestion", "charts/ingestion", "fedeploy", {}, [manifest])


def test_the_plan_advises_digests_on_production_sites_only() -> None:
    tagged = _release("ghcr.io/fedeploy/ingestion:0.1.0")
    [finding] = digest_findings(_plan("production"), [tagged])
    assert finding.rule == "image-digest" and finding.enforcement == "advisory"
    assert "ghcr.io/fedeploy/ingestion:0.1.0" in finding.message
    assert digest_findings(_plan("staging"), [tagged]) == []
    pinned = _release(f"ghcr.io/fedeploy/ingestion:0.1.0@{DIGEST}")
    assert digest_findings(_plan("production"), [pinned]) == []
