"""The catalog reaches RDS with sslmode=verify-full against the region's RDS CA bundle, mounted."""

from __future__ import annotations

from typing import Any

from fedeploy.charts import render_chart
from tests.conftest import ROOT

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _pods(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        m["spec"]["template"]["spec"]
        for m in manifests
        if m["kind"] in ("Deployment", "Job", "StatefulSet")
    ]


def _database_containers(manifests: list[dict[str, Any]]) -> list[tuple[dict, dict]]:
    found = []
    for pod in _pods(manifests):
        for container in pod.get("initContainers", []) + pod["containers"]:
            if any(e["name"] == "PGSSLMODE" for e in container.get("env", [])):
                found.append((pod, container))
    return found


def test_an_rds_site_verifies_the_database_certificate_and_its_name(example_report):
    site = example_report.sites["aws-frankfurt"]
    (release,) = [r for r in site.releases if r.name == "catalog"]
    database = release.values["database"]
    assert database["sslMode"] == "verify-full" and "BEGIN CERTIFICATE" in database["caCertificate"]
    plan = example_report.federation.plans["aws-frankfurt"]
    (fetch,) = plan.by_type("command:local:Command")
    assert fetch.inputs["create"].endswith(
        "https://truststore.pki.rds.amazonaws.com/eu-central-1/eu-central-1-bundle.pem"
    )
    assert "--proto =https" in fetch.inputs["create"]
    _assert_mounted(release.manifests, database["caCertificate"])


def _assert_mounted(manifests: list[dict[str, Any]], ca: str) -> None:
    (config_map,) = [
        m
        for m in manifests
        if m["kind"] == "ConfigMap" and m["metadata"]["name"].endswith("-database-ca")
    ]
    assert config_map["data"]["ca.crt"] == ca
    containers = _database_containers(manifests)
    assert containers
    for pod, container in containers:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["PGSSLMODE"] == "verify-full"
        assert env["PGSSLROOTCERT"] == "/etc/fedeploy/database/ca.crt"
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "database-ca"]
        assert mount["mountPath"] == "/etc/fedeploy/database"
        (volume,) = [v for v in pod["volumes"] if v["name"] == "database-ca"]
        assert volume["configMap"]["name"] == config_map["metadata"]["name"]


def test_the_chart_mounts_a_given_ca_for_an_external_database():
    values = {
        "site": {"name": "site-a", "kind": "aws"},
        "database": {
            "mode": "external",
            "host": "db.example.org",
            "existingSecret": "catalog-db",
            "sslMode": "verify-full",
            "caCertificate": CA,
        },
    }
    _assert_mounted(render_chart(ROOT / "charts/catalog", values, "catalog", "fedeploy"), CA)


def test_no_ca_no_mount():
    values = {
        "site": {"name": "site-a", "kind": "kubernetes"},
        "database": {"mode": "external", "host": "db.example.org", "existingSecret": "db"},
    }
    manifests = render_chart(ROOT / "charts/catalog", values, "catalog", "fedeploy")
    for _, container in _database_containers(manifests):
        assert "PGSSLROOTCERT" not in {e["name"] for e in container["env"]}
