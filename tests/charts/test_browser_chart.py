"""STAC Browser in the catalog chart: its own host, config.js pointed at the catalog, nginx with
the security headers, non-root and read-only, a NetworkPolicy that admits the ingress controller
and lets it reach nothing; and the stack file's `services.catalog.browser` that turns it on."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from fedeploy.charts import render_chart, validate_manifests
from fedeploy.config.services import CatalogService
from fedeploy.values.exposure import browser_values, exposure_summary

NAMESPACE = "fedeploy"
ISSUER = "https://login.example.org/realms/eofed"
BROWSER = {
    "enabled": True,
    "url": "https://browse.eu-public.example.org/",
    "oidcClientId": "stac-browser",
    "scopes": ["stac:read"],
}


def _one(manifests: list[dict[str, Any]], kind: str, name: str = "catalog-browser") -> dict:
    (found,) = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def config_js(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The browser's options, as window.STAC_BROWSER_CONFIG receives them."""
    text = _one(manifests, "ConfigMap")["data"]["config.js"]
    match = re.fullmatch(r"window\.STAC_BROWSER_CONFIG = (.*);\n", text, re.DOTALL)
    assert match, text
    return json.loads(match[1])


def csp(manifests: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The Content-Security-Policy nginx sends, by directive."""
    site = _one(manifests, "ConfigMap")["data"]["default.conf"]
    (policy,) = set(re.findall(r'add_header Content-Security-Policy "([^"]+)" always;', site))
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


@pytest.fixture
def published(site_values, merge, charts_dir):
    def render(browser: dict[str, Any] | None = None, site: str = "published", **extra: Any):
        values = merge(site_values(site, "catalog"), {"browser": browser or BROWSER, **extra})
        return render_chart(charts_dir / "catalog", values, "catalog", NAMESPACE)

    return render


def test_a_published_catalog_serves_the_browser_on_its_own_host(published):
    manifests = published()
    assert validate_manifests(manifests, "1.29", strict=True) == []
    ingress = _one(manifests, "Ingress")
    assert ingress["spec"]["tls"] == [
        {"hosts": ["browse.eu-public.example.org"], "secretName": "catalog-browser-tls"}
    ]
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "browse.eu-public.example.org"
    assert [(p["path"], p["backend"]["service"]["name"]) for p in rule["http"]["paths"]] == [
        ("/", "catalog-browser")
    ]
    assert config_js(manifests) == {
        "catalogUrl": "https://stac.aws-eu.example.org/",
        "catalogTitle": "eu-public",
        "allowExternalAccess": False,
        "allowedDomains": [],
        "pathPrefix": "/",
        "historyMode": "history",
        "authConfig": {
            "type": "openIdConnect",
            "openIdConnectUrl": f"{ISSUER}/.well-known/openid-configuration",
            "oidcConfig": {"client_id": "stac-browser", "scope": "openid stac:read"},
        },
    }


def test_the_page_may_reach_only_itself_its_catalog_and_the_issuer(published):
    policy = csp(published())
    origins = ["'self'", "https://stac.aws-eu.example.org", "https://login.example.org"]
    assert policy["connect-src"] == origins
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'none'"]
    assert policy["form-action"] == ["'self'", "https://login.example.org"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert not [d for d, sources in policy.items() if "'unsafe-eval'" in sources]
    # Without login, the issuer is not reachable either.
    policy = csp(published({**BROWSER, "oidcClientId": ""}))
    assert policy["connect-src"] == origins[:2]
    assert policy["form-action"] == ["'self'"]
    assert "authConfig" not in config_js(published({**BROWSER, "oidcClientId": ""}))


def test_the_hubs_browser_is_the_front_page_of_every_member(published):
    manifests = published(
        site="hub",
        exposure={
            "enabled": True,
            "url": "https://stac.hub.example.org",
            "controllerNamespace": "ingress-nginx",
            "tls": {"certManagerIssuer": "letsencrypt"},
        },
        authProxy={"oidc": {"issuer": ISSUER, "audience": "eofed-catalog"}},
    )
    config = config_js(manifests)
    assert config["catalogUrl"] == "https://stac.hub.example.org/"
    # The members' hosts get the signed-in user's token (their asset endpoints).
    assert config["allowedDomains"] == [
        "stac.aws-eu.example.org",
        "stac.eu-cloud.example.org:8443",
        "stac.hpc.example.org:8081",
    ]
    assert csp(manifests)["connect-src"] == [
        "'self'",
        "https://stac.hub.example.org",
        "https://login.example.org",
        "https://stac.aws-eu.example.org",
        "https://stac.eu-cloud.example.org:8443",
        "http://stac.hpc.example.org:8081",
    ]


def test_the_browser_runs_non_root_read_only_and_reaches_nothing(published):
    manifests = published()
    deployment = _one(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/radiantearth/stac-browser:4.0.1"
    assert container["command"] == ["nginx", "-g", "daemon off;"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
    assert writable == ["/tmp"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    policy = _one(manifests, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["egress"] == []
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchExpressions"][0]["values"] == ["ingress-nginx"]
    site = _one(manifests, "ConfigMap")["data"]["default.conf"]
    for header in ("X-Content-Type-Options nosniff", "X-Frame-Options DENY", "Referrer-Policy"):
        assert f"add_header {header}" in site
    assert "try_files $uri $uri/ /index.html;" in site


def test_no_browser_unless_asked_for_and_published(rendered, site_values, merge, charts_dir):
    for site in ("published", "hub", "kubernetes"):
        assert not [m for m in rendered("catalog", site) if "browser" in m["metadata"]["name"]]
    # Asked for, but the catalog is not published: nothing (the stack file refuses it first).
    values = merge(site_values("kubernetes", "catalog"), {"browser": BROWSER})
    manifests = render_chart(charts_dir / "catalog", values, "catalog", NAMESPACE)
    assert not [m for m in manifests if "browser" in m["metadata"]["name"]]


def _document(**browser: Any) -> dict[str, Any]:
    """A published catalog's stack-file block with a browser."""
    return {
        "url": "https://stac.hub.example.org",
        "exposure": {
            "controller_namespace": "ingress-nginx",
            "tls": {"cert_manager_issuer": "letsencrypt"},
            "oidc": {"issuer": ISSUER, "audience": "eofed-catalog"},
        },
        "browser": {"url": "https://eofed.example.org/", **browser},
    }


def _catalog(**browser: Any) -> CatalogService:
    return CatalogService.model_validate(_document(**browser))


def test_the_stack_files_browser_block_becomes_the_charts_values():
    spec = _catalog(oidc_client_id="stac-browser", map_tile_origins=["https://tile.example.org"])
    assert browser_values(spec) == {
        "browser": {
            "enabled": True,
            "url": "https://eofed.example.org/",
            "title": "",
            "oidcClientId": "stac-browser",
            "scopes": ["stac:read"],
            "mapTileOrigins": ["https://tile.example.org"],
            "tlsSecretName": "",
        }
    }
    summary = exposure_summary({"exposure": {"enabled": True, "url": "u"}, **browser_values(spec)})
    assert summary["browser"] == "https://eofed.example.org/ (login: client stac-browser)"
    assert browser_values(_catalog().model_copy(update={"browser": None})) == {}


@pytest.mark.parametrize(
    ("browser", "catalog", "message"),
    [
        ({"url": "https://eofed.example.org/browse/"}, {}, "must be a host's root"),
        ({"url": "http://eofed.example.org/"}, {}, "must be https"),
        ({"url": "https://stac.hub.example.org/"}, {}, "the catalog's own host"),
        ({"map_tile_origins": ["https://tiles.example.org/x/"]}, {}, "https origin"),
        ({}, {"url": None, "exposure": None}, "needs a published catalog"),
        (
            {},
            {
                "exposure": {
                    "controller_namespace": "ingress-nginx",
                    "tls": {"secret": "hub-tls"},
                    "oidc": {"issuer": ISSUER, "audience": "a"},
                }
            },
            "browser.tls_secret",
        ),
    ],
)
def test_a_browser_that_cannot_be_served_is_refused_naming_why(browser, catalog, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        CatalogService.model_validate({**_document(**browser), **catalog})


def test_in_gateway_mode_the_browsers_host_is_an_httproute_on_the_catalogs_gateway(published):
    manifests = published(
        exposure={
            "mode": "gateway",
            "gateway": {"name": "public", "namespace": "gateway-system", "sectionName": "https"},
            "controllerNamespace": "gateway-system",
        }
    )
    assert validate_manifests(manifests, "1.29", strict=True) == []
    assert not [m for m in manifests if m["kind"] == "Ingress"]
    route = _one(manifests, "HTTPRoute")
    assert route["spec"]["hostnames"] == ["browse.eu-public.example.org"]
    assert route["spec"]["parentRefs"][0]["name"] == "public"
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [{"name": "catalog-browser", "port": 8080}]
    (ingress,) = _one(manifests, "NetworkPolicy")["spec"]["ingress"]
    assert ingress["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "gateway-system"
    ]


SECURITY_HEADERS = {
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Permissions-Policy",
    "Strict-Transport-Security",
}


def nginx_locations(conf: str) -> dict[str, list[str]]:
    """Each `location` block of the nginx site (by its match, e.g. '= /config.js'), with the
    header names its own add_header directives set."""
    conf = re.sub(r"#[^\n]*", "", conf)
    locations = {}
    for match in re.finditer(r"\blocation\s+([^{;]+?)\s*\{([^{}]*)\}", conf):
        locations[match[1]] = re.findall(r"^\s*add_header\s+(\S+)", match[2], re.MULTILINE)
    return locations


def test_every_location_sends_every_security_header(published):
    """nginx inherits the server's add_header only into a location with none of its own: the
    config.js location (Cache-Control) must repeat them all."""
    conf = _one(published(), "ConfigMap")["data"]["default.conf"]
    locations = nginx_locations(conf)
    assert set(locations) == {"/", "= /config.js"}
    for where, headers in locations.items():
        assert set(headers) >= SECURITY_HEADERS, (where, SECURITY_HEADERS - set(headers))
    assert "Cache-Control" in locations["= /config.js"]
