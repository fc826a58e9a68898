"""fedeploy.charts.validate_manifests builds each schema's validator once and answers exactly as
kubernetes-validate's own `validate` does, document by document."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fedeploy import charts
from fedeploy.charts import validate_manifests


def _deployment(name: str = "api") -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": "registry.example/api:1.0",
                            "ports": [{"containerPort": 8080}],
                            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                        }
                    ]
                },
            },
        },
    }


def _corpus() -> list[dict[str, Any]]:
    """Valid objects of several API groups, and the ways a rendered object goes wrong."""
    unknown_field = _deployment("typo")
    unknown_field["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    wrong_type = _deployment("wrong-type")
    wrong_type["spec"]["replicas"] = "two"
    missing_required = _deployment("no-selector")
    del missing_required["spec"]["selector"]
    bad_top_level = _deployment("extra")
    bad_top_level["extra"] = True
    sidecar = _deployment("sidecar")  # restartPolicy of an init container: 1.28 and later
    sidecar["spec"]["template"]["spec"]["initContainers"] = [
        {"name": "proxy", "image": "registry.example/proxy:1", "restartPolicy": "Always"}
    ]
    return [
        _deployment(),
        unknown_field,
        wrong_type,
        missing_required,
        bad_top_level,
        sidecar,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"}, "spec": {}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": 1}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": "get"}],
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {}, "spec": {"schedule": 5}},
    ]


def _as_kubernetes_validate_reports(
    manifests: list[dict[str, Any]], version: str, strict: bool
) -> list[str]:
    """The report built from kubernetes_validate.validate, one document at a time."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    lines = []
    for manifest in manifests:
        name = f"{manifest['kind']}/{manifest['metadata'].get('name', '?')}"
        try:
            kubernetes_validate.validate(copy.deepcopy(manifest), version, strict=strict)
        except ValidationError as error:
            where = "/".join(str(part) for part in error.path) or "(top level)"
            lines.append(f"{name}: {where}: {error.message}")
        except SchemaNotFoundError:
            lines.append(
                f"{name}: no schema for {manifest['apiVersion']} {manifest['kind']} "
                f"in Kubernetes {version}"
            )
    return lines


@pytest.mark.parametrize("version", ["1.25", "1.27", "1.29", "1.31", "1.33", "1.37"])
@pytest.mark.parametrize("strict", [True, False])
def test_reports_are_kubernetes_validates_own(version, strict):
    corpus = _corpus()
    expected = _as_kubernetes_validate_reports(corpus, version, strict)
    assert validate_manifests(corpus, version, strict=strict) == expected
    # Every way of going wrong above is caught somewhere (the comparison is not vacuous).
    assert len(expected) >= 6


def test_each_schema_is_built_once_and_reused():
    charts._validator.cache_clear()
    documents = [_deployment(f"api-{i}") for i in range(40)]
    documents[7]["spec"]["replicas"] = "many"
    errors = validate_manifests(documents, "1.31")
    assert errors == ["Deployment/api-7: spec/replicas: 'many' is not of type 'integer', 'null'"]
    info = charts._validator.cache_info()
    assert (info.misses, info.hits) == (1, 39)
    # Strict and lenient schemas, and each version, are distinct validators.
    validate_manifests(documents[:1], "1.31", strict=False)
    validate_manifests(documents[:1], "1.30")
    assert charts._validator.cache_info().misses == 3


def test_a_custom_resource_is_reported_each_time_it_appears():
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    line = "Widget/w: no schema for example.com/v1 Widget in Kubernetes 1.33"
    assert validate_manifests([widget, widget], "1.33") == [line, line]


def test_the_manifest_given_is_not_changed():
    document = _deployment()
    document["spec"]["replicas"] = "two"
    before = copy.deepcopy(document)
    validate_manifests([document], "1.29")
    assert document == before


@pytest.mark.parametrize("metadata", [-1, "x", ["a"], True])
def test_metadata_that_is_no_mapping_is_a_finding_not_a_crash(metadata):
    found = validate_manifests(
        [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}], "1.30"
    )
    assert len(found) == 1 and found[0].startswith("ConfigMap/?: metadata: "), found
