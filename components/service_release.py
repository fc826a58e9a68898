"""One of our Helm charts released on a site's cluster."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from fedeploy.service_values import chart_metadata


class ServiceRelease(pulumi.ComponentResource):
    """A Helm release of `charts/<chart>` (hooks, atomic upgrades and rollbacks are Helm's own)."""

    status: pulumi.Output[Any]
    chart_version: str
    app_version: str

    def __init__(
        self,
        name: str,
        *,
        chart: str,
        namespace: pulumi.Input[str],
        values: pulumi.Input[dict[str, Any]],
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:services:ServiceRelease", name, None, opts)
        metadata = chart_metadata(chart)
        self.chart_version = str(metadata["version"])
        self.app_version = str(metadata.get("appVersion", metadata["version"]))
        release = k8s.helm.v3.Release(
            name,
            name=chart,
            # Relative to the project directory, where `pulumi up` runs the program.
            chart=f"charts/{chart}",
            namespace=namespace,
            values=values,
            atomic=True,
            cleanup_on_fail=True,
            max_history=10,
            timeout=900,
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.status = release.status
        self.register_outputs({"status": self.status})
