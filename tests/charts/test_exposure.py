"""A catalog with a public URL: Ingress with TLS, the auth proxy in front, and policies that keep
the unauthenticated API reachable only from the proxy and the site's writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedeploy.charts import ChartValuesError, render_chart, validate_manifests
from fedeploy.config.services import CatalogService
from fedeploy.values.exposure import assets_values, exposure_summary, exposure_values, storage_port
from fedeploy.values.wiring import SiteWiring
from tests.charts.test_network_policies import _pods, _policies, allowed

NAMESPACE = "fedeploy"
GUARD = Path(__file__).resolve().parents[2] / "charts/catalog/files/token_guard.py"


def _one(manifests, kind, suffix=""):
    (found,) = [
        m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith(suffix)
    ]
    return found


def _env(deployment):
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def test_a_public_catalog_gets_an_ingress_with_host_path_and_cert_manager_tls(rendered):
    ingress = _one(rendered("catalog", "published"), "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["stac.aws-eu.example.org"], "secretName": "catalog-tls"}
    ]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "stac.aws-eu.example.org"
    backends = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    # Everything goes through the proxy; the API's own Service is never a backend.
    assert backends == {"/": "catalog-auth-proxy", "/assets": "catalog-assets"}


def test_a_catalog_under_a_path_with_an_existing_tls_secret(charts_dir, site_values, merge):
    values = merge(
        site_values("hub", "catalog"),
        {
            "exposure": {
                "enabled": True,
                "url": "https://stac.hub.example.org/federation/",
                "ingressClassName": "traefik",
                "controllerNamespace": "traefik",
                "tls": {"secretName": "hub-catalog-tls"},
            },
            "authProxy": {"oidc": {"issuer": "https://id.example.org/", "audience": "hub"}},
        },
    )
    manifests = render_chart(charts_dir / "catalog", values, "catalog", NAMESPACE)
    assert validate_manifests(manifests, "1.29", strict=True) == []
    ingress = _one(manifests, "Ingress")
    assert "annotations" not in ingress["metadata"]
    assert ingress["spec"]["tls"][0]["secretName"] == "hub-catalog-tls"
    paths = [p["path"] for p in ingress["spec"]["rules"][0]["http"]["paths"]]
    assert paths == ["/federation"]  # no asset endpoint on the hub
    env = _env(_one(manifests, "Deployment", "-auth-proxy"))
    assert env["ROOT_PATH"] == "/federation"
    # The issuer verbatim (tokens name it exactly so); discovery under it without the slash.
    assert env["EXPECTED_ISSUER"] == "https://id.example.org/"
    assert env["OIDC_DISCOVERY_URL"] == "https://id.example.org/.well-known/openid-configuration"


def test_without_a_public_url_nothing_is_published(rendered):
    for site in ("hub", "kubernetes", "hpc"):
        manifests = rendered("catalog", site)
        assert not [m for m in manifests if m["kind"] == "Ingress"]
        assert not [m for m in manifests if "auth-proxy" in m["metadata"]["name"]]


def test_exposure_without_an_issuer_or_url_is_refused_at_render(charts_dir):
    values = {
        "site": {"name": "site-a", "kind": "kubernetes"},
        "exposure": {"enabled": True, "url": "https://stac.example.org", "tls": {}},
    }
    with pytest.raises(ChartValuesError) as raised:
        render_chart(charts_dir / "catalog", values, "catalog", NAMESPACE)
    assert "/authProxy/oidc/issuer" in str(raised.value)
    values["exposure"]["url"] = "http://stac.example.org"
    with pytest.raises(ChartValuesError, match="/exposure/url"):
        render_chart(charts_dir / "catalog", values, "catalog", NAMESPACE)


def test_the_proxy_is_configured_for_anonymous_reads_and_scoped_writes(rendered):
    manifests = rendered("catalog", "published")
    env = _env(_one(manifests, "Deployment", "-auth-proxy"))
    assert env["UPSTREAM_URL"] == "http://catalog.fedeploy.svc.cluster.local:8080"
    assert env["DEFAULT_PUBLIC"] == "true"
    assert env["ALLOWED_JWT_AUDIENCES"] == "eofed-catalog"
    assert env["EXPECTED_ISSUER"] == "https://login.example.org/realms/eofed"
    private = json.loads(env["PRIVATE_ENDPOINTS"])
    # Every Transactions endpoint, every writing method, needs the write scope.
    assert private["^/collections/([^/]+)/bulk_items$"] == [["POST", "stac:write"]]
    assert private["^/collections/([^/]+)/items/([^/]+)$"] == [
        ["PUT", "stac:write"],
        ["PATCH", "stac:write"],
        ["DELETE", "stac:write"],
    ]
    assert len(private) == 5
    deployment = _one(manifests, "Deployment", "-auth-proxy")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/developmentseed/stac-auth-proxy:v1.3.1"
    # The guard the proxy runs behind is the file the loopback tests exercise, byte for byte.
    config_map = _one(manifests, "ConfigMap", "-token-guard")
    assert config_map["data"]["token_guard.py"] == GUARD.read_text().rstrip("\n")


def test_only_the_proxy_and_the_writers_reach_the_unauthenticated_api(rendered):
    manifests = rendered("catalog", "published")
    policies, pods = _policies(manifests), _pods(manifests)
    api, proxy = (pods["api"], NAMESPACE), (pods["auth-proxy"], NAMESPACE)
    controller = ({"app.kubernetes.io/name": "ingress-nginx"}, "ingress-nginx")
    writer = (
        {"app.kubernetes.io/name": "ingestion", "app.kubernetes.io/part-of": "fedeploy"},
        NAMESPACE,
    )
    assert allowed(policies, proxy, api, 8080)
    assert allowed(policies, writer, api, 8080)
    # The ingress controller reaches the proxy, never the API behind it.
    assert allowed(policies, controller, proxy, 8000)
    assert not allowed(policies, controller, api, 8080)
    for stranger in (({"app": "x"}, NAMESPACE), ({"app": "x"}, "default"), (pods["api"], "other")):
        assert not allowed(policies, stranger, api, 8080)
        assert not allowed(policies, stranger, proxy, 8000)


def test_exposure_values_follow_the_stack_file():
    spec = CatalogService.model_validate(
        {
            "url": "https://catalog.site.example.eu",
            "exposure": {
                "controller_namespace": "traefik",
                "tls": {"secret": "site-tls"},
                "oidc": {"issuer": "https://id.example.eu/", "audience": "cat", "write_scope": "w"},
            },
        }
    )
    values = exposure_values(spec)
    assert values["exposure"]["url"] == "https://catalog.site.example.eu"
    assert values["exposure"]["tls"] == {
        "certManagerIssuer": "",
        "certManagerIssuerKind": "ClusterIssuer",
        "secretName": "site-tls",
    }
    assert values["authProxy"]["oidc"] == {
        "issuer": "https://id.example.eu/",
        "audience": "cat",
        "writeScope": "w",
    }
    assert exposure_summary({"database": {}, **values}) == {
        "public_url": "https://catalog.site.example.eu",
        "through": "Ingress class nginx",
        "admits": "traefik",
        "writes": "token with scope w",
        "issuer": "https://id.example.eu/",
        "assets": "not served",
    }
    assert exposure_values(CatalogService()) == {}
    assert exposure_summary({"database": {}})["public_url"] is None


def _wiring(
    kind="kubernetes",
    secret="fedeploy-storage",
    roles=None,
    endpoint="https://s3.x:8443",
    buckets=("site-a-raw",),
):
    return SiteWiring(
        site="site-a",
        kind=kind,
        namespace=NAMESPACE,
        storage_endpoint=endpoint,
        storage_region="gra",
        storage_secret=secret,
        role_arns=roles or {},
        gpu_node_selector=None,
        gpu_taint_key=None,
        asset_buckets=list(buckets),
    )


def test_the_asset_endpoint_runs_where_the_site_is_published_and_has_credentials():
    spec = CatalogService.model_validate(
        {
            "url": "https://catalog.site.example.eu",
            "exposure": {
                "controller_namespace": "traefik",
                "tls": {"secret": "site-tls"},
                "oidc": {"issuer": "https://id.example.eu", "audience": "cat"},
                "asset_url_lifetime_seconds": 300,
            },
        }
    )
    values = assets_values(spec, _wiring())["assets"]
    assert values["urlLifetimeSeconds"] == 300 and values["readScope"] == "stac:read"
    assert values["storage"]["existingSecret"] == "fedeploy-storage"
    assert values["storagePort"] == 8443
    assert values["serviceAccount"] == {"name": "assets", "annotations": {}}
    role = "arn:aws:iam::1:role/site-a-assets-role"
    on_aws = assets_values(spec, _wiring("aws", "", {"assets": role}, ""))["assets"]
    assert on_aws["serviceAccount"]["annotations"] == {"eks.amazonaws.com/role-arn": role}
    assert on_aws["storagePort"] == 443
    # No assets on the hub, none without credentials, none on a private catalog.
    assert assets_values(spec, _wiring("hub")) == {}
    assert assets_values(spec, _wiring("aws", "", {"ingestion": role}, "")) == {}
    assert assets_values(CatalogService(), _wiring()) == {}
    # Only the site's ingestion bucket is presigned; a site without one serves no assets
    # (an empty list would let the endpoint presign any bucket its keys can read).
    assert values["storage"]["buckets"] == ["site-a-raw"]
    assert assets_values(spec, _wiring(buckets=())) == {}
    assert storage_port("http://s3.local") == 80


def test_the_asset_endpoint_is_routed_configured_and_fenced(rendered):
    manifests = rendered("catalog", "published")
    deployment = _one(manifests, "Deployment", "-assets")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "assets"
    container = spec["containers"][0]
    assert container["command"] == ["fedeploy-ingest", "assets"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ASSETS_CATALOG_URL"] == "http://catalog.fedeploy.svc.cluster.local:8080"
    assert env["ASSETS_ISSUER"] == "https://login.example.org/realms/eofed"
    assert env["ASSETS_URL_LIFETIME_SECONDS"] == "900"
    assert json.loads(env["ASSETS_BUCKETS"]) == ["fedeploy-eu-public-data"]
    # The storage keys are the mounted shared credentials file, not variables.
    assert not [e for e in container["env"] if "valueFrom" in e]
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/etc/fedeploy/storage/credentials"
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounted = [volumes[m["name"]] for m in container["volumeMounts"]]
    assert {"secretName": "s3-credentials"}.items() <= mounted[-1]["secret"].items()
    policies, pods = _policies(manifests), _pods(manifests)
    assets, api = (pods["assets"], NAMESPACE), (pods["api"], NAMESPACE)
    controller = ({"app.kubernetes.io/name": "ingress-nginx"}, "ingress-nginx")
    assert allowed(policies, controller, assets, 8080)
    assert allowed(policies, assets, api, 8080)
    assert not allowed(policies, ({"app": "x"}, NAMESPACE), assets, 8080)
    assert not allowed(policies, assets, (pods["database"], NAMESPACE), 5432)


def test_assets_without_exposure_are_refused_at_render(charts_dir):
    with pytest.raises(ChartValuesError, match="/exposure/enabled"):
        render_chart(
            charts_dir / "catalog",
            {"site": {"name": "site-a", "kind": "kubernetes"}, "assets": {"enabled": True}},
            "catalog",
            NAMESPACE,
        )
