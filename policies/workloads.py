"""Rules over the Kubernetes manifests our charts render: hardened, bounded, probed, labelled."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from policies.findings import Finding

LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
POD_OWNERS = LONG_RUNNING | {"Job", "CronJob", "Pod"}
REQUIRED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
)


def _pod_spec(manifest: dict[str, Any]) -> dict[str, Any] | None:
    kind = manifest.get("kind")
    spec = manifest.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    if kind in POD_OWNERS:
        return ((spec.get("template") or {}).get("spec")) or {}
    return None


def _name(manifest: dict[str, Any]) -> str:
    return f"{manifest.get('kind')}/{(manifest.get('metadata') or {}).get('name')}"


def workload_findings(manifests: list[dict[str, Any]], release: str) -> Iterable[Finding]:
    """Findings for one release's rendered manifests."""
    kinds = {m.get("kind") for m in manifests}
    if kinds & POD_OWNERS and "NetworkPolicy" not in kinds:
        yield Finding(
            "network-policy", release, "the release runs pods but renders no NetworkPolicy"
        )
    for manifest in manifests:
        where = f"{release}: {_name(manifest)}"
        labels = (manifest.get("metadata") or {}).get("labels") or {}
        missing = [label for label in REQUIRED_LABELS if label not in labels]
        if missing:
            yield Finding("labels", where, f"lacks labels {', '.join(missing)}")
        if manifest.get("kind") == "Secret" and (
            manifest.get("data") or manifest.get("stringData")
        ):
            yield Finding(
                "no-plaintext-secrets",
                where,
                "a chart renders secret data from values; use an existing Secret",
            )
        pod = _pod_spec(manifest)
        if pod is None:
            continue
        yield from _pod_findings(pod, where, long_running=manifest.get("kind") in LONG_RUNNING)


def _pod_findings(pod: dict[str, Any], where: str, *, long_running: bool) -> Iterable[Finding]:
    pod_security = pod.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            yield Finding("pod-hardening", where, f"pod sets {flag}")
    if (pod_security.get("seccompProfile") or {}).get("type") not in (
        "RuntimeDefault",
        "Localhost",
    ):
        seccomp_everywhere = all(
            ((c.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
            in ("RuntimeDefault", "Localhost")
            for c in pod.get("containers") or []
        )
        if not seccomp_everywhere:
            yield Finding("pod-hardening", where, "no seccomp profile RuntimeDefault")
    containers = [(c, True) for c in pod.get("containers") or []]
    containers += [(c, False) for c in pod.get("initContainers") or []]
    for container, main in containers:
        name = f"{where} container {container.get('name')}"
        context = container.get("securityContext") or {}
        non_root = context.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
        if non_root is not True:
            yield Finding("pod-hardening", name, "does not set runAsNonRoot: true")
        if context.get("readOnlyRootFilesystem") is not True:
            yield Finding("pod-hardening", name, "root filesystem is writable")
        if context.get("allowPrivilegeEscalation") is not False:
            yield Finding("pod-hardening", name, "allows privilege escalation")
        if context.get("privileged"):
            yield Finding("pod-hardening", name, "is privileged")
        if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
            yield Finding("pod-hardening", name, "does not drop ALL capabilities")
        limits = (container.get("resources") or {}).get("limits") or {}
        requests = (container.get("resources") or {}).get("requests") or {}
        if not {"cpu", "memory"} <= set(limits) or not {"cpu", "memory"} <= set(requests):
            yield Finding("resources", name, "needs cpu and memory requests and limits")
        image = str(container.get("image", ""))
        if image.endswith(":latest") or (":" not in image.rsplit("/", 1)[-1] and "@" not in image):
            yield Finding(
                "pinned-images", name, f"image {image!r} is not pinned to a tag or digest"
            )
        if (
            main
            and long_running
            and not (container.get("livenessProbe") and container.get("readinessProbe"))
        ):
            yield Finding(
                "probes", name, "a long-running container needs liveness and readiness probes"
            )
