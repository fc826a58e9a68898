"""What the openstack and ovh kinds' clusters share: a cloud-managed Kubernetes reached by the
kubeconfig the cloud hands back, no workload OIDC issuer, GPU pools labelled and tainted alike."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.providers.base import GpuScheduling
from fedeploy.node_pools import GPU_LABEL_KEY, GPU_LABEL_VALUE, GPU_TAINT_KEY

# How pods reach GPU nodes of a managed cluster's pools (fedeploy/node_pools.py labels them).
NODE_POOL_GPU = GpuScheduling({GPU_LABEL_KEY: GPU_LABEL_VALUE}, GPU_TAINT_KEY)


class ManagedKubernetes(pulumi.ComponentResource):
    """Base of a provider's cluster component: subclasses create the cloud's cluster, then
    `_connect` it (the type token stays the subclass's own `super().__init__` argument)."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    name: pulumi.Output[str]
    version: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str | None]
    has_gpu: bool

    def _connect(
        self,
        name: str,
        *,
        cluster_name: pulumi.Output[str],
        version: str,
        kubeconfig: pulumi.Output[str],
    ) -> None:
        """Expose the cluster (`kubeconfig` kept secret) and a Kubernetes provider `<name>-k8s`
        on it; registers the component's outputs, so call it last."""
        self.name = cluster_name
        self.version = pulumi.Output.from_input(version)
        self.oidc_issuer = pulumi.Output.from_input(None)
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"name": self.name, "version": self.version})
