"""The ovh kind's cluster: OVHcloud Managed Kubernetes, its API restrictions and node pools."""

from __future__ import annotations

import pulumi
import pulumi_ovh as ovh

from components.providers.kubeconfig_cluster import KubeconfigCluster
from components.providers.ovh.network import OvhNetwork
from fedeploy.config.ovh import OvhKube as KubeConfig
from fedeploy.node_pools import ovh_node_template


class OvhKubernetes(KubeconfigCluster):
    """Managed Kubernetes, its API restricted to the listed CIDRs, and its node pools (GPU
    pools labelled and tainted as on every kind)."""

    def __init__(
        self,
        name: str,
        *,
        project_id: str,
        region: str,
        config: KubeConfig,
        network: OvhNetwork | None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:cluster:KubernetesCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.has_gpu = config.has_gpu
        kube = ovh.cloudproject.Kube(
            name,
            service_name=project_id,
            name=name,
            region=region,
            version=config.version,
            update_policy=config.update_policy,
            private_network_id=network.network_id if network is not None else None,
            nodes_subnet_id=network.subnet_id if network is not None else None,
            opts=child,
        )
        if config.api_access_cidrs:
            ovh.cloudproject.KubeIpRestrictions(
                f"{name}-api-access",
                service_name=project_id,
                kube_id=kube.id,
                ips=list(config.api_access_cidrs),
                opts=child,
            )
        for pool_name, pool in sorted(config.node_pools.items()):
            ovh.cloudproject.KubeNodePool(
                f"{name}-{pool_name}",
                service_name=project_id,
                kube_id=kube.id,
                name=pool_name,
                flavor_name=pool.flavor,
                min_nodes=pool.min_size,
                desired_nodes=pool.desired_size,
                max_nodes=pool.max_size,
                autoscale=pool.autoscale,
                monthly_billed=False,
                template=ovh_node_template(pool_name, gpu=pool.accelerator == "nvidia"),
                opts=child,
            )
        self._connect(
            name, cluster_name=kube.name, version=config.version, kubeconfig=kube.kubeconfig
        )
