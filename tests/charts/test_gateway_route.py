"""Gateway API beside Ingress: `exposure.mode: gateway` renders an HTTPRoute on the stack file's
Gateway instead of the Ingress, valid against the vendored HTTPRoute schema, routing the same
path prefixes to the same Services; the NetworkPolicy admits the namespace the stack file names
and no controller by default."""

from __future__ import annotations

import copy
import importlib.util
import json

import pytest

from fedeploy.charts import CRD_SCHEMAS, ChartValuesError, render_chart, validate_manifests
from fedeploy.config.services import CatalogService
from fedeploy.values.exposure import exposure_route, exposure_summary, exposure_values
from loopback.routes import UnsupportedRoute, nginx_locations, published_routes
from tests.charts.test_network_policies import _pods, _policies, allowed
from tests.conftest import ROOT

NAMESPACE = "fedeploy"
GATEWAY = {"name": "public", "namespace": "gateway-system", "sectionName": "https"}


def _values(site_values, merge, url="https://stac.aws-eu.example.org", **exposure):
    return merge(site_values("published", "catalog"), {"exposure": {"url": url, **exposure}})


def _render(charts_dir, values):
    return render_chart(charts_dir / "catalog", values, "catalog", NAMESPACE)


def _kinds(manifests, kind):
    return [m for m in manifests if m["kind"] == kind]


@pytest.fixture
def gateway_values(site_values, merge):
    return _values(
        site_values,
        merge,
        mode="gateway",
        gateway=GATEWAY,
        controllerNamespace="gateway-system",
    )


def test_mode_gateway_renders_an_httproute_on_the_gateway_and_no_ingress(
    charts_dir, gateway_values
):
    manifests = _render(charts_dir, gateway_values)
    assert _kinds(manifests, "Ingress") == []
    (route,) = _kinds(manifests, "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "public",
            "namespace": "gateway-system",
            "sectionName": "https",
        }
    ]
    assert route["spec"]["hostnames"] == ["stac.aws-eu.example.org"]
    # No controller-specific annotation (TLS is the Gateway's), no rewrite, prefixes only.
    assert "annotations" not in route["metadata"]
    for rule in route["spec"]["rules"]:
        assert "filters" not in rule
        assert {m["path"]["type"] for m in rule["matches"]} == {"PathPrefix"}
    assert validate_manifests(manifests, "1.29", strict=True) == []


def test_the_httproute_is_checked_against_the_vendored_schema(charts_dir, gateway_values):
    (route,) = _kinds(_render(charts_dir, gateway_values), "HTTPRoute")
    typo = copy.deepcopy(route)
    typo["spec"]["rules"][0]["matches"][0]["pathh"] = typo["spec"]["rules"][0]["matches"][0].pop(
        "path"
    )
    wrong_type = copy.deepcopy(route)
    wrong_type["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Regex"
    errors = validate_manifests([typo, wrong_type], "1.31", strict=True)
    assert len(errors) == 2
    assert "pathh" in errors[0]
    assert "'Regex' is not one of" in errors[1]
    schema = json.loads((CRD_SCHEMAS / "httproute-gateway-v1.json").read_text())
    assert "Gateway API v1.6.1 (standard channel)" in schema["$comment"]


def test_both_modes_route_the_same_prefixes_to_the_same_services(
    charts_dir, site_values, merge, gateway_values
):
    for url in ("https://stac.aws-eu.example.org", "https://stac.example.org/federation/"):
        ingress = _render(charts_dir, _values(site_values, merge, url=url))
        gateway = _render(charts_dir, merge(gateway_values, {"exposure": {"url": url}}))
        assert _kinds(ingress, "HTTPRoute") == [] and len(_kinds(ingress, "Ingress")) == 1
        routes = published_routes(gateway)
        assert routes == published_routes(ingress)
        prefix = "/federation" if "federation" in url else ""
        assert routes == {
            prefix or "/": "catalog-auth-proxy",
            f"{prefix}/assets": "catalog-assets",
        }


def test_the_loopback_front_routes_only_plain_prefixes():
    routes = {"/": "catalog-auth-proxy", "/assets": "catalog-assets"}
    upstreams = {"catalog-auth-proxy": "http://127.0.0.1:1", "catalog-assets": "http://127.0.0.1:2"}
    assert nginx_locations(routes, upstreams) == {
        "/": "http://127.0.0.1:1",
        "= /assets": "http://127.0.0.1:2",
        "/assets/": "http://127.0.0.1:2",
    }
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                    "filters": [{"type": "URLRewrite"}],
                    "backendRefs": [{"name": "s", "port": 80}],
                }
            ]
        },
    }
    with pytest.raises(UnsupportedRoute, match="filters"):
        published_routes([route])
    with pytest.raises(UnsupportedRoute, match="found none"):
        published_routes([])


def test_the_proxy_admits_the_named_controller_namespace_only(charts_dir, gateway_values):
    manifests = _render(charts_dir, gateway_values)
    policies, pods = _policies(manifests), _pods(manifests)
    proxy, assets = (pods["auth-proxy"], NAMESPACE), (pods["assets"], NAMESPACE)
    data_plane = ({"app": "envoy"}, "gateway-system")
    nginx = ({"app.kubernetes.io/name": "ingress-nginx"}, "ingress-nginx")
    assert allowed(policies, data_plane, proxy, 8000)
    assert allowed(policies, data_plane, assets, 8080)
    assert not allowed(policies, nginx, proxy, 8000)
    assert not allowed(policies, data_plane, (pods["api"], NAMESPACE), 8080)


@pytest.mark.parametrize(
    ("exposure", "where"),
    [
        ({"controllerNamespace": ""}, "/exposure/controllerNamespace"),
        ({"mode": "gateway", "controllerNamespace": "gw"}, "/exposure/gateway/name"),
        (
            {"mode": "gateway", "controllerNamespace": "gw", "gateway": {"name": "public"}},
            "/exposure/gateway/namespace",
        ),
        ({"mode": "gatway"}, "/exposure/mode"),
        ({"gateway": {"nmae": "public"}}, "/exposure/gateway"),
    ],
)
def test_exposure_values_missing_or_mistyped_are_refused_at_render(
    charts_dir, site_values, merge, exposure, where
):
    with pytest.raises(ChartValuesError, match=where):
        _render(charts_dir, _values(site_values, merge, **exposure))


def test_no_controller_namespace_is_assumed(charts_dir, site_values):
    values = site_values("published", "catalog")
    del values["exposure"]["controllerNamespace"]  # the chart's default: none
    with pytest.raises(ChartValuesError, match="/exposure/controllerNamespace"):
        _render(charts_dir, values)


def _spec(**exposure):
    return CatalogService.model_validate(
        {
            "url": "https://catalog.site.example.eu",
            "exposure": {
                "tls": {"cert_manager_issuer": "letsencrypt"},
                "oidc": {"issuer": "https://id.example.eu", "audience": "cat"},
                **exposure,
            },
        }
    )


def test_the_stack_files_gateway_becomes_the_charts_and_the_plan_says_through_what():
    spec = _spec(
        mode="gateway",
        controller_namespace="envoy-gateway-system",
        gateway={"name": "public", "namespace": "gateway-system", "section_name": "https"},
    )
    exposure = exposure_values(spec)["exposure"]
    assert exposure["mode"] == "gateway" and "ingressClassName" not in exposure
    assert exposure["gateway"] == GATEWAY
    assert exposure["controllerNamespace"] == "envoy-gateway-system"
    summary = exposure_summary({"database": {}, **exposure_values(spec)})
    assert summary["through"] == "HTTPRoute on Gateway gateway-system/public (listener https)"
    assert summary["admits"] == "envoy-gateway-system"
    # Mode ingress (the default) passes no mode: the chart's default, today's values.
    ingress = exposure_values(_spec(controller_namespace="traefik", ingress_class="traefik"))
    assert "mode" not in ingress["exposure"] and "gateway" not in ingress["exposure"]
    assert exposure_route(ingress["exposure"]) == "Ingress class traefik"
    without_listener = {"mode": "gateway", "gateway": {"name": "g", "namespace": "n"}}
    assert exposure_route(without_listener) == "HTTPRoute on Gateway n/g"


@pytest.mark.parametrize(
    ("exposure", "words"),
    [
        ({}, "controller_namespace"),
        ({"controller_namespace": "gw", "mode": "gateway"}, "`gateway` (name, namespace"),
        (
            {"controller_namespace": "gw", "gateway": {"name": "g", "namespace": "n"}},
            "set `mode: gateway`",
        ),
        (
            {
                "controller_namespace": "gw",
                "mode": "gateway",
                "ingress_class": "nginx",
                "gateway": {"name": "g", "namespace": "n"},
            },
            "`ingress_class` is set but mode is gateway",
        ),
        (
            {"controller_namespace": "gw", "mode": "gateway", "gateway": {"name": "g"}},
            "namespace",
        ),
    ],
)
def test_stack_file_exposure_keys_are_checked(exposure, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace("`", "`")):
        _spec(**exposure)


def _crd_schema_script():
    spec = importlib.util.spec_from_file_location("crd_schema", ROOT / "scripts" / "crd_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_schema_script_closes_objects_and_pins_the_kind():
    crd = {
        "metadata": {
            "name": "widgets.example.org",
            "annotations": {
                "gateway.networking.k8s.io/bundle-version": "v9.9.9",
                "gateway.networking.k8s.io/channel": "standard",
            },
        },
        "spec": {
            "group": "example.org",
            "names": {"kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}},
                                },
                                "open": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                    "properties": {"a": {"type": "string"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
    schema = _crd_schema_script().crd_schema(crd, "v1")
    assert schema["additionalProperties"] is False
    assert schema["properties"]["spec"]["additionalProperties"] is False
    assert "additionalProperties" not in schema["properties"]["open"]
    assert schema["properties"]["apiVersion"] == {"enum": ["example.org/v1"]}
    assert schema["properties"]["kind"] == {"enum": ["Widget"]}
    assert schema["required"] == ["apiVersion", "kind", "metadata"]
    assert "Gateway API v9.9.9 (standard channel)" in schema["$comment"]
    # The vendored file is this script's output: closed the same way, the same kind pinned.
    vendored = json.loads((CRD_SCHEMAS / "httproute-gateway-v1.json").read_text())
    assert vendored["properties"]["kind"] == {"enum": ["HTTPRoute"]}
    assert vendored["properties"]["spec"]["additionalProperties"] is False
