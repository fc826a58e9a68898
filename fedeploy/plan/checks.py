"""What the offline plan checks in each planned stack: the policy pack's rules over the recorded
resources, and every Helm release rendered, linted and validated with real Helm."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    """Render, lint and validate every Helm release of the stack; problems become findings."""
    from fedeploy.charts import ChartError, lint_chart, render_chart, validate_manifests
    from fedeploy.plan.monitoring import operator_manifests, operator_workloads, release_monitoring

    rendered: list[RenderedRelease] = []
    findings: list[Finding] = []
    for resource in sorted(plan.by_type(RELEASE), key=lambda r: r.name):
        release = _release(resource)
        where = f"{resource.name} (chart {release.chart})"
        chart_dir = project_dir / release.chart
        try:
            release.manifests = render_chart(
                chart_dir, release.values, release.name, release.namespace
            )
        except ChartError as err:
            findings.append(Finding("chart-values", where, str(err)))
            continue
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
        rendered.append(release)
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
            for problem in validate_manifests(checked, kube_version, strict=True):
                findings.append(
                    Finding("manifest-schema", where, f"Kubernetes {kube_version}: {problem}")
                )
        findings.extend(workload_findings(checked, resource.name))
    return rendered, findings


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
    findings += exposure_findings(rendered)
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
