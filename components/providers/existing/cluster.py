"""The cluster of the kubernetes and hpc kinds (and the hub's): one that exists already."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from fedeploy.config.cluster import ExistingCluster as ExistingConfig


class ExistingCluster(pulumi.ComponentResource):
    """A cluster that exists already, reached with the kubeconfig from the stack file."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    name: pulumi.Output[str]
    version: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str | None]
    oidc_provider_arn: pulumi.Output[str | None]
    has_gpu: bool

    def __init__(
        self, name: str, *, config: ExistingConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("fedeploy:cluster:KubernetesCluster", name, None, opts)
        self.has_gpu = config.has_gpu
        self.kubeconfig = config.kubeconfig.output()
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            context=config.context,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name = pulumi.Output.from_input(config.context or name)
        self.version = pulumi.Output.from_input(config.version)
        self.oidc_issuer = pulumi.Output.from_input(None)
        self.oidc_provider_arn = pulumi.Output.from_input(None)
        self.register_outputs({"name": self.name, "version": self.version})
