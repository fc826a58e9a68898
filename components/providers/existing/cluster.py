"""The cluster of the kubernetes and hpc kinds (and the hub's): one that exists already."""

from __future__ import annotations

import pulumi

from components.providers.kubeconfig_cluster import KubeconfigCluster
from fedeploy.config.cluster import ExistingCluster as ExistingConfig


class ExistingCluster(KubeconfigCluster):
    """A cluster that exists already, reached with the kubeconfig from the stack file."""

    def __init__(
        self, name: str, *, config: ExistingConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("fedeploy:cluster:KubernetesCluster", name, None, opts)
        self.has_gpu = config.has_gpu
        self._connect(
            name,
            cluster_name=pulumi.Output.from_input(config.context or name),
            version=config.version,
            kubeconfig=config.kubeconfig.output(),
            context=config.context,
        )
