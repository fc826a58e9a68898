"""How a site's catalog is published: the chart values of its Ingress and auth proxy, and the
plan's one-line account of it (pure functions over the validated config and chart values).

A catalog with `services.catalog.url` gets an Ingress to stac-auth-proxy: reads anonymous,
the Transactions endpoints only with a token of the site's OIDC issuer carrying the write
scope. Without a URL nothing is published and the catalog is reachable in-cluster only.
See docs/charts.md, "Exposure and access".
"""

from __future__ import annotations

from typing import Any

from fedeploy.config.services import CatalogService


def issuer_url(issuer: Any) -> str:
    """The issuer as tokens name it: the configured URL without a trailing slash."""
    return str(issuer).rstrip("/")


def exposure_values(spec: CatalogService) -> dict[str, Any]:
    """The catalog chart's `exposure` and `authProxy` values; `{}` when the catalog is private.

    Shape: {"exposure": {enabled, url, ingressClassName, tls{...}}, "authProxy": {"oidc": {...}}}.
    """
    if spec.url is None or spec.exposure is None:
        return {}
    exposure = spec.exposure
    return {
        "exposure": {
            "enabled": True,
            "url": str(spec.url).rstrip("/"),
            "ingressClassName": exposure.ingress_class,
            "tls": {
                "certManagerIssuer": exposure.tls.cert_manager_issuer or "",
                "certManagerIssuerKind": exposure.tls.cert_manager_issuer_kind,
                "secretName": exposure.tls.secret or "",
            },
        },
        "authProxy": {
            "oidc": {
                "issuer": issuer_url(exposure.oidc.issuer),
                "audience": exposure.oidc.audience,
                "writeScope": exposure.oidc.write_scope,
            }
        },
    }


def exposure_summary(values: dict[str, Any]) -> dict[str, Any] | None:
    """What the plan report shows of a catalog release's values: public URL, write access and
    issuer; None for a chart without a catalog API (values without `database`)."""
    if "database" not in values and "exposure" not in values:
        return None
    exposure = values.get("exposure") or {}
    if not exposure.get("enabled"):
        return {"public_url": None, "writes": "in-cluster writers only", "issuer": None}
    oidc = (values.get("authProxy") or {}).get("oidc") or {}
    return {
        "public_url": exposure.get("url"),
        "writes": f"token with scope {oidc.get('writeScope', 'stac:write')}",
        "issuer": oidc.get("issuer"),
    }
