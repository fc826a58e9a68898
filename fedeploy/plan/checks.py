"""What the offline plan checks in each planned stack: the policy pack's rules over the recorded
resources, and every Helm release rendered, linted and validated with real Helm."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from fedeploy.offline.cache import PlanCache, code_fingerprint
from fedeploy.offline.engine import Resource, StackPlan
from fedeploy.plan.monitoring import monitoring_findings
from policies.cloud import evaluate
from policies.findings import Finding, Subject
from policies.workloads import workload_findings

RELEASE = "kubernetes:helm.sh/v3:Release"


@dataclass
class RenderedRelease:
    """One release's chart rendered with the values the program gave it."""

    name: str
    chart: str
    namespace: str
    values: dict[str, Any]
    manifests: list[dict[str, Any]] = field(default_factory=list)
    # Its scrape targets and alerts (fedeploy.plan.monitoring.summarise).
    monitoring: dict[str, Any] = field(default_factory=dict)
    # With monitoring.enabled auto: the monitoring objects a cluster serving the operator's API
    # gets on top of `manifests` (fedeploy.plan.monitoring.operator_manifests).
    operator_manifests: list[dict[str, Any]] = field(default_factory=list)


def _provider_name(urn: str | None) -> str | None:
    return urn.split("::")[-2] if urn else None


def subjects(plan: StackPlan) -> list[Subject]:
    """The recorded resources as the rules see them, each with its provider's inputs."""
    providers = {r.name: r.inputs for r in plan.resources if r.type.startswith("pulumi:providers:")}
    return [
        Subject(
            type=r.type,
            name=r.name,
            props=r.inputs,
            secret_paths=tuple(r.secret_paths),
            provider_props=providers.get(_provider_name(r.provider) or "", {}),
        )
        for r in plan.resources
        if r.custom
    ]


def render_releases(
    plan: StackPlan, project_dir: Path, kube_version: str | None
) -> tuple[list[RenderedRelease], list[Finding]]:
    """Render, lint and validate every Helm release of the stack; problems become findings.
    Inside `release_checks_kept_in(cache)`, a release checked before comes from the cache."""

    rendered: list[RenderedRelease] = []
    findings: list[Finding] = []
    for resource in sorted(plan.by_type(RELEASE), key=lambda r: r.name):
        release = _release(resource)
        where = f"{resource.name} (chart {release.chart})"
        key = _release_key(release, project_dir / release.chart, where, kube_version)
        stored = _RELEASE_CACHE.get(key) if _RELEASE_CACHE is not None and key else None
        kept: ReleaseChecks
        if _well_formed(stored):
            kept = stored
        else:
            kept = _check_release(release, resource.name, project_dir / release.chart, kube_version)
            if _RELEASE_CACHE is not None and key:
                _RELEASE_CACHE.put(key, kept)
        checked, release_findings = kept
        findings.extend(release_findings)
        if checked is not None:
            release.manifests, release.operator_manifests, release.monitoring = checked
            rendered.append(release)
    return rendered, findings


# The plan cache that keeps each release's checks (render, lint, schemas, workload rules) by
# chart, values, name, namespace, Kubernetes version and code (None: every release is checked).
_RELEASE_CACHE: PlanCache | None = None
ReleaseChecks = tuple[
    tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]] | None, list[Finding]
]


@contextlib.contextmanager
def release_checks_kept_in(cache: PlanCache | None) -> Iterator[None]:
    """Within the block, each release's checks come from `cache` where a release with the same
    chart, values, name, namespace, Kubernetes version and code was checked before (a stack
    replanned because one of its releases changed renders only that release), and are kept
    there otherwise. Set before the planners are forked, so they share it."""
    global _RELEASE_CACHE
    before, _RELEASE_CACHE = _RELEASE_CACHE, cache
    try:
        yield
    finally:
        _RELEASE_CACHE = before


def _well_formed(kept: Any) -> TypeGuard[ReleaseChecks]:
    """Whether a cache entry has the shape `_check_release` gives (anything else is a miss)."""
    if not (isinstance(kept, tuple) and len(kept) == 2 and isinstance(kept[1], list)):
        return False
    checked, findings = kept
    if not all(isinstance(f, Finding) for f in findings):
        return False
    if checked is None:
        return bool(findings)  # a release that did not render says why
    return (
        isinstance(checked, tuple)
        and len(checked) == 3
        and isinstance(checked[0], list)
        and isinstance(checked[1], list)
        and isinstance(checked[2], dict)
    )


def _release_key(
    release: RenderedRelease, chart_dir: Path, where: str, kube_version: str | None
) -> str | None:
    """The cache key of one release's checks, or None (never kept) for values JSON cannot
    spell exactly (anything but JSON's own types)."""
    if _RELEASE_CACHE is None:
        return None
    try:
        values = json.dumps(release.values, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None
    document = json.dumps(
        {
            "what": "release-checks",
            "code": code_fingerprint(_RELEASE_CACHE.root),
            # Where the chart is, not only its name: its findings name the folder it was
            # rendered from (a copy of the project that `fedeploy diff` plans is another key).
            "chart": str(chart_dir.resolve()),
            "name": release.name,
            "namespace": release.namespace,
            "where": where,
            "values": values,
            "kube_version": kube_version,
        },
        sort_keys=True,
    )
    return hashlib.sha256(document.encode()).hexdigest()


def _check_release(
    release: RenderedRelease, resource_name: str, chart_dir: Path, kube_version: str | None
) -> ReleaseChecks:
    """One release (the Release resource `resource_name`) rendered, linted and validated: (its
    manifests, operator manifests and monitoring summary, or None where it did not render) and
    its findings."""
    from fedeploy.charts import ChartError, lint_chart, render_chart, validate_manifests
    from fedeploy.plan.monitoring import operator_manifests, operator_workloads, release_monitoring

    where = f"{resource_name} (chart {release.chart})"
    findings: list[Finding] = []
    try:
        release.manifests = render_chart(chart_dir, release.values, release.name, release.namespace)
    except ChartError as err:
        return None, [Finding("chart-values", where, str(err))]
    # render_chart above has checked these values against values.schema.json.
    release.operator_manifests = operator_manifests(
        chart_dir, release.values, release.name, release.namespace, schema_checked=True
    )
    release.monitoring = release_monitoring(
        chart_dir,
        release.values,
        release.name,
        release.namespace,
        release.manifests,
        release.operator_manifests,
    )
    for lint in lint_chart(
        chart_dir,
        release.values,
        strict=True,
        kube_version=kube_version,
        namespace=release.namespace,
        # render_chart above has checked these values against values.schema.json.
        schema_checked=True,
    ):
        if lint.severity in ("error", "warning"):
            findings.append(Finding("chart-lint", where, f"{lint.path}: {lint.message}"))
    # With the operator's API, the bridge probe and its objects run too: checked alike.
    checked = release.manifests + operator_workloads(release.operator_manifests)
    if kube_version:
        # Every object a cluster with the operator's API gets is validated, the operator's own
        # kinds (PodMonitor, ServiceMonitor, PrometheusRule) with their CRDs' schemas
        # (fedeploy/crd_schemas): with `auto` as with `true`, where they are in the manifests.
        validated = release.manifests + release.operator_manifests
        for problem in validate_manifests(validated, kube_version, strict=True):
            findings.append(
                Finding("manifest-schema", where, f"Kubernetes {kube_version}: {problem}")
            )
    findings.extend(workload_findings(checked, resource_name))
    return (release.manifests, release.operator_manifests, release.monitoring), findings


def _release(resource: Resource) -> RenderedRelease:
    inputs = resource.inputs
    return RenderedRelease(
        name=str(inputs.get("name") or resource.name),
        chart=str(inputs["chart"]),
        namespace=str(inputs.get("namespace") or "default"),
        values=dict(inputs.get("values") or {}),
    )


def digest_findings(plan: StackPlan, rendered: list[RenderedRelease]) -> list[Finding]:
    """Advisory, on a production site: each release whose images are not pinned by digest
    (a tag can be moved to other content; the chart's image.digest pins it)."""
    site = plan.outputs.get("site")
    if not isinstance(site, dict) or site.get("environment") != "production":
        return []
    findings = []
    for release in rendered:
        images = sorted(
            {
                str(container.get("image"))
                for manifest in release.manifests
                for container in _containers(manifest)
                if "@sha256:" not in str(container.get("image", ""))
            }
        )
        if images:
            findings.append(
                Finding(
                    "image-digest",
                    release.name,
                    f"production site runs images not pinned by digest: {', '.join(images)}; "
                    "record their digests in images.lock.yaml (`fedeploy images record`, as the "
                    "release pipeline does) or set image.digest",
                    enforcement="advisory",
                )
            )
    return findings


def exposure_findings(rendered: list[RenderedRelease]) -> list[Finding]:
    """Advisory: a published catalog whose controller_namespace is kube-system (Cilium's
    Gateway data plane runs there): the NetworkPolicies admit that namespace's pods to the auth
    proxy and the asset endpoint, and kube-system holds many pods besides the proxy's."""
    findings = []
    for release in rendered:
        exposure = release.values.get("exposure")
        if not isinstance(exposure, dict) or not exposure.get("enabled"):
            continue
        if exposure.get("controllerNamespace") == "kube-system":
            findings.append(
                Finding(
                    "exposure-kube-system",
                    release.name,
                    "services.catalog.exposure.controller_namespace is kube-system: every pod "
                    "in kube-system (DNS, CNI agents, cloud controllers...) can then reach the "
                    "catalog's auth proxy and asset endpoint, not only the Gateway's data plane; "
                    "where the controller allows it, run its proxy in a namespace of its own",
                    enforcement="advisory",
                )
            )
    return findings


# A Keycloak realm's URL (any context path, /auth on Keycloak before 17) with a trailing slash:
# Keycloak's `iss` is the realm's URL without one.
# Issuers whose tokens' `iss` ends in a slash (their own documentation: Auth0's tenant URL,
# Azure AD v1's https://sts.windows.net/<tenant>/, Azure AD B2C's
# https://<tenant>.b2clogin.com/<tenant id>/v2.0/, Authentik's /application/o/<slug>/); every
# other provider fedeploy's users run (Keycloak, Okta, Google, GitLab, Dex, Cognito, Azure AD
# v2, Authelia) issues `iss` without one.
_SLASH_ISSUERS = re.compile(
    r"^https://([^/]+\.auth0\.com|sts\.windows\.net/[^/]+|[^/]+\.b2clogin\.com/[^/]+/v2\.0"
    r"|[^/]+/application/o/[^/]+)/$"
)
_SLASH_ISSUER_HOSTS = re.compile(r"^https://([^/]+\.auth0\.com|sts\.windows\.net)(/|$)")


def issuer_findings(rendered: list[RenderedRelease]) -> list[Finding]:
    """Advisory: an OIDC issuer whose trailing slash likely differs from its tokens' `iss`.
    The issuer is compared with `iss` byte for byte (22dbcf2; fedeploy used to strip a trailing
    slash, so an issuer written with a stray one worked): one ending in `/` is flagged unless it
    is a provider whose `iss` has one (Auth0, Azure AD v1, Authentik), and one of those
    providers written without it is flagged too."""
    findings = []
    for release in rendered:
        exposure = release.values.get("exposure")
        if not isinstance(exposure, dict) or not exposure.get("enabled"):
            continue
        oidc = (release.values.get("authProxy") or {}).get("oidc") or {}
        issuer = str(oidc.get("issuer") or "")
        if issuer.endswith("/") and not _SLASH_ISSUERS.match(issuer):
            said = (
                f"ends in a slash, which most providers' tokens do not (Keycloak, Okta, Google, "
                f"GitLab, Dex, Cognito, Azure AD v2: iss {issuer[:-1]!r})"
            )
        elif not issuer.endswith("/") and _SLASH_ISSUER_HOSTS.match(issuer):
            said = (
                "has no trailing slash, but this provider's tokens end in one (Auth0: "
                "https://<tenant>.auth0.com/, Azure AD v1: https://sts.windows.net/<tenant>/)"
            )
        else:
            continue
        findings.append(
            Finding(
                "exposure-issuer-slash",
                release.name,
                f"services.catalog.exposure.oidc.issuer {issuer!r} {said}; the issuer is "
                "compared with the tokens' `iss` byte for byte (fedeploy before this version "
                "dropped a trailing slash), so a difference refuses every token (401). Copy "
                "`iss` exactly, from a token or from the `issuer` of the provider's "
                "/.well-known/openid-configuration",
                enforcement="advisory",
            )
        )
    return findings


def _containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = manifest.get("spec") or {}
    if manifest.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    pod = spec if manifest.get("kind") == "Pod" else (spec.get("template") or {}).get("spec") or {}
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def check_stack(
    plan: StackPlan, project_dir: Path, kube_version: str | None
) -> tuple[list[RenderedRelease], list[Finding]]:
    """All findings of one stack, sorted, and its rendered releases."""
    rendered, findings = render_releases(plan, project_dir, kube_version)
    findings = evaluate(subjects(plan)) + findings + digest_findings(plan, rendered)
    findings += exposure_findings(rendered) + issuer_findings(rendered)
    findings += monitoring_findings(
        plan.outputs.get("site"),
        {r.name: r.monitoring for r in rendered},
        {r.name: (r.values.get("monitoring") or {}).get("labels") or {} for r in rendered},
        {
            r.name: str(bridge.get("endpoint") or "")
            for r in rendered
            if isinstance(bridge := r.values.get("bridge"), dict) and bridge.get("enabled")
        },
        {
            r.name: str((bridge.get("probe") or {}).get("existingSecret") or "")
            for r in rendered
            if isinstance(bridge := r.values.get("bridge"), dict)
        },
    )
    return rendered, sorted(set(findings))
