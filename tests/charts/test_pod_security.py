"""The security settings every pod of every chart must carry, checked on the rendered manifests."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from fedeploy.charts import pod_template

CHARTS = Path(__file__).resolve().parents[2] / "charts"

LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)
CREDENTIAL_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|ACCESS_KEY|USER")


def _workloads(manifests):
    for manifest in manifests:
        template = pod_template(manifest)
        if template is not None:
            yield manifest, template


def _containers(spec):
    return [*spec.get("initContainers", []), *spec["containers"]]


def _where(manifest, container=None):
    name = f"{manifest['kind']}/{manifest['metadata']['name']}"
    return f"{name} container {container['name']}" if container else name


def test_every_value_set_runs_workloads_to_check(chart_case, rendered):
    assert list(_workloads(rendered(chart_case))), (
        f"{chart_case} runs no pod: the checks below would be empty"
    )


def test_pods_run_as_a_numeric_non_root_user_with_runtime_default_seccomp(chart_case, rendered):
    for manifest, template in _workloads(rendered(chart_case)):
        pod = template["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True, _where(manifest)
        assert isinstance(pod["runAsUser"], int) and pod["runAsUser"] > 0, _where(manifest)
        assert isinstance(pod["runAsGroup"], int) and pod["runAsGroup"] > 0, _where(manifest)
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", _where(manifest)


def test_containers_are_read_only_unprivileged_and_drop_all_capabilities(chart_case, rendered):
    for manifest, template in _workloads(rendered(chart_case)):
        for container in _containers(template["spec"]):
            context = container["securityContext"]
            where = _where(manifest, container)
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["runAsNonRoot"] is True, where
            assert context.get("privileged", False) is False, where
            assert "ALL" in context["capabilities"]["drop"], where
            assert not context["capabilities"].get("add"), where
            assert context["seccompProfile"]["type"] == "RuntimeDefault", where


def test_containers_have_a_writable_tmp_from_an_empty_dir(chart_case, rendered):
    for manifest, template in _workloads(rendered(chart_case)):
        empty_dirs = {v["name"] for v in template["spec"]["volumes"] if "emptyDir" in v}
        for container in _containers(template["spec"]):
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert mounts.get("/tmp") in empty_dirs, _where(manifest, container)


def test_containers_request_and_limit_cpu_and_memory(chart_case, rendered):
    for manifest, template in _workloads(rendered(chart_case)):
        for container in _containers(template["spec"]):
            resources = container["resources"]
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resources[kind][resource], (
                        f"{_where(manifest, container)} {kind}.{resource}"
                    )


def test_long_running_containers_have_liveness_and_readiness_probes(chart_case, rendered):
    for manifest, template in _workloads(rendered(chart_case)):
        if manifest["kind"] not in LONG_RUNNING:
            continue
        for container in template["spec"]["containers"]:
            assert "livenessProbe" in container, _where(manifest, container)
            assert "readinessProbe" in container, _where(manifest, container)


def test_pods_use_the_release_service_account_without_its_token(chart_case, rendered):
    manifests = rendered(chart_case)
    accounts = {m["metadata"]["name"] for m in manifests if m["kind"] == "ServiceAccount"}
    for manifest, template in _workloads(manifests):
        spec = template["spec"]
        assert spec["serviceAccountName"] in accounts, _where(manifest)
        assert spec["automountServiceAccountToken"] is False, _where(manifest)
    for manifest in manifests:
        if manifest["kind"] == "ServiceAccount":
            assert manifest["automountServiceAccountToken"] is False


def test_long_running_workloads_have_a_disruption_budget_that_selects_them(chart_case, rendered):
    manifests = rendered(chart_case)
    budgets = [
        m["spec"]["selector"]["matchLabels"]
        for m in manifests
        if m["kind"] == "PodDisruptionBudget"
    ]
    for manifest, template in _workloads(manifests):
        if manifest["kind"] not in LONG_RUNNING:
            continue
        labels = template["metadata"]["labels"]
        assert any(selector.items() <= labels.items() for selector in budgets), _where(manifest)


def test_every_object_and_pod_carries_the_standard_labels(chart_case, rendered):
    manifests = rendered(chart_case)
    for manifest in manifests:
        labels = manifest["metadata"]["labels"]
        for label in STANDARD_LABELS:
            assert labels.get(label), f"{_where(manifest)} lacks {label}"
        assert labels["app.kubernetes.io/name"] == chart_case.chart
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        version = yaml.safe_load((CHARTS / chart_case.chart / "Chart.yaml").read_text())["version"]
        assert labels["helm.sh/chart"] == f"{chart_case.chart}-{version}"
        assert labels["fedeploy.io/site"] == chart_case.values["site"]["name"]
    for manifest, template in _workloads(manifests):
        for label in STANDARD_LABELS:
            assert template["metadata"]["labels"].get(label), (
                f"pods of {_where(manifest)} lack {label}"
            )


def test_selectors_use_only_labels_that_never_change(chart_case, rendered):
    """A Deployment's or StatefulSet's selector is immutable: no version or chart label in it."""
    for manifest, _template in _workloads(rendered(chart_case)):
        if manifest["kind"] not in LONG_RUNNING:
            continue
        selector = manifest["spec"]["selector"]["matchLabels"]
        assert set(selector) <= {
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
        }, _where(manifest)


def test_credentials_come_only_from_secrets(chart_case, rendered):
    for manifest, template in _workloads(rendered(chart_case)):
        for container in _containers(template["spec"]):
            for env in container.get("env", []):
                # A *_FILE variable names where a mounted secret lies, not the secret.
                if CREDENTIAL_NAME.search(env["name"]) and not env["name"].endswith("_FILE"):
                    assert "value" not in env, (
                        f"{_where(manifest, container)} sets {env['name']} in plain text"
                    )
                    assert "secretKeyRef" in env["valueFrom"], (
                        f"{_where(manifest, container)} {env['name']}"
                    )


def test_no_secret_is_rendered_from_values(chart_case, rendered):
    """The only Secret a chart may render is the catalog's generated database password."""
    for manifest in rendered(chart_case):
        if manifest["kind"] != "Secret":
            continue
        assert chart_case.chart == "catalog", _where(manifest)
        assert not chart_case.values.get("database", {}).get("existingSecret"), _where(manifest)
        assert manifest["metadata"]["annotations"]["helm.sh/hook"] == "pre-install"
        assert set(manifest["data"]) == {"username", "password"}
