"""The tags and labels that mark every resource of a site as fedeploy's."""

from __future__ import annotations


def resource_tags(site: str, extra: dict[str, str]) -> dict[str, str]:
    """Tags on every cloud resource; the user's own tags cannot override fedeploy's."""
    return {**extra, "fedeploy:site": site, "fedeploy:managed-by": "fedeploy"}


def kubernetes_labels(site: str) -> dict[str, str]:
    """Labels on every Kubernetes object fedeploy creates itself (charts add their own)."""
    return {
        "app.kubernetes.io/part-of": "fedeploy",
        "app.kubernetes.io/managed-by": "pulumi",
        "fedeploy.io/site": site,
    }
