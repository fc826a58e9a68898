"""One of our Helm charts released on a site's cluster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from fedeploy.images.lock import pin_images
from fedeploy.values.services import chart_metadata


class ServiceRelease(pulumi.ComponentResource):
    """A Helm release of `charts/<chart>` (hooks, atomic upgrades and rollbacks are Helm's own).

    Every image of the release that images.lock.yaml holds runs pinned by its digest
    (fedeploy.images.lock); a digest the values set already wins."""

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
            # A plain mapping is pinned as it is, so its Outputs (secrets, unknowns in a
            # preview) stay where they are; only values given as one Output wait for it.
            values=pin_images(chart, values)
            if isinstance(values, Mapping)
            else pulumi.Output.from_input(values).apply(lambda given: pin_images(chart, given)),
            atomic=True,
            cleanup_on_fail=True,
            max_history=10,
            timeout=900,
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.status = release.status
        self.register_outputs({"status": self.status})
