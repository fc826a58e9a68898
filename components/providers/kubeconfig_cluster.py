"""What the existing, openstack and ovh kinds' clusters share: a Kubernetes reached by a
kubeconfig (the stack file's, or the one the cloud hands back) and no workload OIDC issuer."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s


class KubeconfigCluster(pulumi.ComponentResource):
    """Base of a provider's cluster component: subclasses create (or find) the cluster, then
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
        context: str | None = None,
    ) -> None:
        """Expose the cluster (`kubeconfig` kept secret) and a Kubernetes provider `<name>-k8s`
        on it, in the kubeconfig's `context` if given; registers the component's outputs, so
        call it last."""
        self.name = cluster_name
        self.version = pulumi.Output.from_input(version)
        self.oidc_issuer = pulumi.Output.from_input(None)
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            context=context,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"name": self.name, "version": self.version})
