"""How a site's catalog is published: the chart values of its Ingress and auth proxy, and the
plan's one-line account of it (pure functions over the validated config and chart values).

A catalog with `services.catalog.url` gets an Ingress, or in `exposure.mode: gateway` a Gateway
API HTTPRoute, to stac-auth-proxy: reads anonymous,
the Transactions endpoints only with a token of the site's OIDC issuer carrying the write
scope. Without a URL nothing is published and the catalog is reachable in-cluster only.
See docs/charts.md, "Exposure and access".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fedeploy.config.services import CatalogExposure, CatalogService
from fedeploy.values.wiring import SiteWiring

# The asset endpoint's ServiceAccount (its own, for a read-only role on aws sites).
ASSETS_SERVICE_ACCOUNT = "assets"


def exposure_values(spec: CatalogService) -> dict[str, Any]:
    """The catalog chart's `exposure` and `authProxy` values; `{}` when the catalog is private.

    Shape: {"exposure": {enabled, url, ingressClassName | mode "gateway" and gateway{...},
    controllerNamespace, tls{...}}, "authProxy": {"oidc": {...}}}.
    """
    if spec.url is None or spec.exposure is None:
        return {}
    exposure = spec.exposure
    return {
        "exposure": {
            "enabled": True,
            "url": str(spec.url).rstrip("/"),
            **_route_values(exposure),
            "controllerNamespace": exposure.controller_namespace,
            "tls": {
                "certManagerIssuer": exposure.tls.cert_manager_issuer or "",
                "certManagerIssuerKind": exposure.tls.cert_manager_issuer_kind,
                "secretName": exposure.tls.secret or "",
            },
        },
        "authProxy": {
            "oidc": {
                # Verbatim: OpenID Connect compares `iss` with it exactly.
                "issuer": exposure.oidc.issuer,
                "audience": exposure.oidc.audience,
                "writeScope": exposure.oidc.write_scope,
            }
        },
    }


def _route_values(exposure: CatalogExposure) -> dict[str, Any]:
    """The chart's keys of the mode: `ingressClassName` (mode ingress, the chart's default), or
    mode gateway and the HTTPRoute's parent `gateway`."""
    if exposure.gateway is None:
        return {"ingressClassName": exposure.ingress_class}
    gateway = exposure.gateway
    return {
        "mode": "gateway",
        "gateway": {
            "name": gateway.name,
            "namespace": gateway.namespace,
            "sectionName": gateway.section_name or "",
        },
    }


def exposure_route(exposure: dict[str, Any]) -> str:
    """What publishes a catalog, from its chart's `exposure` values: "Ingress class nginx" or
    "HTTPRoute on Gateway gateway-system/public (listener https)"."""
    gateway = exposure.get("gateway") or {}
    if exposure.get("mode") != "gateway":
        return f"Ingress class {exposure.get('ingressClassName', 'nginx')}"
    listener = f" (listener {gateway['sectionName']})" if gateway.get("sectionName") else ""
    return f"HTTPRoute on Gateway {gateway.get('namespace')}/{gateway.get('name')}{listener}"


def browser_values(spec: CatalogService) -> dict[str, Any]:
    """The catalog chart's `browser` values: STAC Browser on its own host for a published
    catalog with `browser`; `{}` otherwise. Login asks for the asset read scope."""
    if spec.browser is None or spec.exposure is None:
        return {}
    browser = spec.browser
    return {
        "browser": {
            "enabled": True,
            "url": str(browser.url),
            "title": browser.title or "",
            "oidcClientId": browser.oidc_client_id or "",
            "scopes": [spec.exposure.oidc.read_scope],
            "mapTileOrigins": [str(o).rstrip("/") for o in browser.map_tile_origins],
            "tlsSecretName": browser.tls_secret or "",
        }
    }


def storage_port(endpoint: str) -> int:
    """The TCP port of an S3 endpoint URL; 443 for AWS regional S3 (an empty endpoint)."""
    if not endpoint:
        return 443
    parts = urlsplit(endpoint)
    return parts.port or (80 if parts.scheme == "http" else 443)


def assets_values(spec: CatalogService, wiring: SiteWiring) -> dict[str, Any]:
    """The catalog chart's `assets` values: the asset endpoint of a published site with storage.

    On when the catalog is published, the site is not the hub (which holds no assets), it has an
    ingestion bucket (`wiring.asset_buckets`, the only buckets presigned), and the
    endpoint has credentials: static keys from its own storage Secret (openstack workload
    identities) or the site's, or its own IAM role (`wiring.role_arns["assets"]`). `{}`
    otherwise.
    """
    if spec.url is None or spec.exposure is None or wiring.kind == "hub":
        return {}
    if not wiring.asset_buckets:  # no ingestion bucket: nothing of this site to serve
        return {}
    role = wiring.role_arns.get(ASSETS_SERVICE_ACCOUNT)
    secret = wiring.secret_for(ASSETS_SERVICE_ACCOUNT)
    if not secret and role is None:
        return {}
    endpoint = wiring.storage_endpoint
    port = (
        endpoint.apply(storage_port) if hasattr(endpoint, "apply") else storage_port(endpoint or "")
    )
    return {
        "assets": {
            "enabled": True,
            "readScope": spec.exposure.oidc.read_scope,
            "urlLifetimeSeconds": spec.exposure.asset_url_lifetime_seconds,
            "storage": {
                "endpoint": endpoint,
                "region": wiring.storage_region,
                "buckets": wiring.asset_buckets,
                "existingSecret": secret,
            },
            "storagePort": port,
            "serviceAccount": {
                "name": ASSETS_SERVICE_ACCOUNT,
                "annotations": {"eks.amazonaws.com/role-arn": role} if role is not None else {},
            },
        }
    }


def exposure_summary(values: dict[str, Any]) -> dict[str, Any] | None:
    """What the plan report shows of a catalog release's values: public URL, what publishes it
    (`exposure_route`) and which namespace's pods reach it, write access and issuer, and the
    STAC Browser's URL when it serves one; None for a chart without a catalog API (values
    without `database`)."""
    if "database" not in values and "exposure" not in values:
        return None
    exposure = values.get("exposure") or {}
    if not exposure.get("enabled"):
        return {"public_url": None, "writes": "in-cluster writers only", "issuer": None}
    oidc = (values.get("authProxy") or {}).get("oidc") or {}
    assets = values.get("assets") or {}
    summary = {
        "public_url": exposure.get("url"),
        "through": exposure_route(exposure),
        "admits": exposure.get("controllerNamespace"),
        "writes": f"token with scope {oidc.get('writeScope', 'stac:write')}",
        "issuer": oidc.get("issuer"),
        "assets": (
            f"token with scope {assets.get('readScope', 'stac:read')}"
            if assets.get("enabled")
            else "not served"
        ),
    }
    browser = values.get("browser") or {}
    if browser.get("enabled"):
        login = browser.get("oidcClientId")
        summary["browser"] = (
            f"{browser['url']} ({f'login: client {login}' if login else 'no login'})"
        )
    return summary
