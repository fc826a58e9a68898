"""The routes a catalog chart publishes, read from its rendered Ingress or Gateway API HTTPRoute,
as nginx locations of the loopback federation (loopback.nginx.NginxTls routes).

Both exposure modes publish path prefixes to Services, and nothing else: `published_routes`
refuses what nginx would not do as the cluster does (a regex or exact path, a rewrite or
another filter, a header or query match, a weighted or second backend), so the loopback
front routes exactly what the chart renders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

INGRESS_API = "networking.k8s.io/v1"
HTTPROUTE_API = "gateway.networking.k8s.io/v1"


class UnsupportedRoute(ValueError):
    """A rendered route that is not a plain path prefix to one Service; the message says which."""


def published_routes(manifests: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """{path prefix: Service name} of the one Ingress or HTTPRoute among `manifests`.

    A prefix has no trailing slash but "/" itself ("/", "/federation/assets"). Raises
    UnsupportedRoute when there is none, more than one, or a rule that is not a prefix to a
    Service.
    """
    found = [
        m
        for m in manifests
        if (m.get("apiVersion"), m.get("kind"))
        in ((INGRESS_API, "Ingress"), (HTTPROUTE_API, "HTTPRoute"))
    ]
    if len(found) != 1:
        kinds = [f"{m['kind']}/{m['metadata']['name']}" for m in found]
        raise UnsupportedRoute(f"expected one Ingress or HTTPRoute, found {kinds or 'none'}")
    (route,) = found
    if route["kind"] == "Ingress":
        return _ingress_routes(route)
    return _httproute_routes(route)


def _ingress_routes(ingress: Mapping[str, Any]) -> dict[str, str]:
    routes: dict[str, str] = {}
    for rule in ingress["spec"].get("rules", []):
        for path in rule.get("http", {}).get("paths", []):
            if path.get("pathType") != "Prefix":
                raise UnsupportedRoute(f"Ingress path {path.get('path')}: not pathType Prefix")
            _add(routes, path["path"], path["backend"]["service"]["name"])
    return routes


def _httproute_routes(route: Mapping[str, Any]) -> dict[str, str]:
    routes: dict[str, str] = {}
    for rule in route["spec"].get("rules", []):
        if rule.get("filters"):
            raise UnsupportedRoute(f"HTTPRoute rule {rule.get('matches')}: filters are not routed")
        backends = rule.get("backendRefs", [])
        if len(backends) != 1 or backends[0].get("kind", "Service") != "Service":
            raise UnsupportedRoute(f"HTTPRoute rule {rule.get('matches')}: not one Service")
        for match in rule.get("matches", []):
            path = match.get("path", {})
            if set(match) != {"path"} or path.get("type") != "PathPrefix":
                raise UnsupportedRoute(f"HTTPRoute match {match}: not a PathPrefix alone")
            _add(routes, path["value"], backends[0]["name"])
    return routes


def _add(routes: dict[str, str], prefix: str, service: str) -> None:
    key = prefix.rstrip("/") or "/"
    if routes.setdefault(key, service) != service:
        raise UnsupportedRoute(f"prefix {key} goes to both {routes[key]} and {service}")


def nginx_locations(routes: Mapping[str, str], upstreams: Mapping[str, str]) -> dict[str, str]:
    """NginxTls routes {location: upstream URL} of `published_routes`' prefixes, the Services
    named by `upstreams` {Service name: local URL}.

    A prefix matches as Ingress Prefix and HTTPRoute PathPrefix do, by whole path elements:
    "/assets" is the locations "= /assets" and "/assets/". KeyError names a Service without a
    local upstream.
    """
    locations: dict[str, str] = {}
    for prefix, service in routes.items():
        upstream = upstreams[service]
        if prefix == "/":
            locations["/"] = upstream
        else:
            locations[f"= {prefix}"] = upstream
            locations[f"{prefix}/"] = upstream
    return locations
