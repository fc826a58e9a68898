"""The openstack kind's cluster: Kubernetes from Magnum, its template and node groups."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_openstack as openstack

from components.providers.kubeconfig_cluster import KubeconfigCluster
from components.providers.openstack.network import OpenStackNetwork
from fedeploy.config.openstack import MagnumCluster as MagnumConfig
from fedeploy.config.openstack import OpenStackNetwork as NetworkConfig
from fedeploy.node_pools import magnum_group_labels, magnum_template_labels


def _raw_config(kubeconfig: Any) -> str:
    # The provider's typed output (`raw_config`), or its wire form (`rawConfig`) under mocks.
    raw = getattr(kubeconfig, "raw_config", None)
    if raw is None and isinstance(kubeconfig, dict):
        raw = kubeconfig.get("raw_config", kubeconfig.get("rawConfig"))
    return str(raw or "")


class MagnumKubernetes(KubeconfigCluster):
    """A Magnum cluster template, the cluster (control plane behind a load balancer that admits
    only the site's network and the listed CIDRs, no floating IPs) and its node groups."""

    def __init__(
        self,
        name: str,
        *,
        region: str,
        config: MagnumConfig,
        network: OpenStackNetwork,
        network_config: NetworkConfig,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:cluster:KubernetesCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.has_gpu = config.has_gpu
        groups = sorted(config.node_groups.items())
        # Magnum's default worker group: the first group without GPUs (validated to exist).
        default_name, default = next((n, g) for n, g in groups if g.accelerator == "none")
        template = openstack.containerinfra.ClusterTemplate(
            f"{name}-template",
            name=f"{name}-template",
            region=region,
            coe="kubernetes",
            image=config.image_id,
            flavor=default.flavor,
            master_flavor=config.master_flavor,
            network_driver=config.network_driver,
            volume_driver=config.volume_driver,
            docker_volume_size=config.docker_volume_size_gib,
            external_network_id=network_config.external_network_id,
            fixed_network=network.network_id,
            fixed_subnet=network.subnet_id,
            dns_nameserver=(network_config.dns_nameservers or [None])[0],
            floating_ip_enabled=False,
            master_lb_enabled=True,
            tls_disabled=False,
            public=False,
            registry_enabled=False,
            keypair_id=config.keypair,
            labels=magnum_template_labels(
                dict(config.labels),
                kube_tag=config.kube_tag,
                api_cidrs=[network_config.cidr, *network_config.api_access_cidrs],
            ),
            opts=child,
        )
        cluster = openstack.containerinfra.Cluster(
            name,
            name=name,
            region=region,
            cluster_template_id=template.id,
            master_count=config.master_count,
            master_flavor=config.master_flavor,
            node_count=default.desired_size,
            flavor=default.flavor,
            keypair=config.keypair,
            fixed_network=network.network_id,
            fixed_subnet=network.subnet_id,
            floating_ip_enabled=False,
            master_lb_enabled=True,
            labels=magnum_group_labels(default_name, gpu=False),
            merge_labels=True,
            opts=child,
        )
        for group_name, group in groups:
            if group_name == default_name:
                continue
            openstack.containerinfra.NodeGroup(
                f"{name}-{group_name}",
                name=group_name,
                region=region,
                cluster_id=cluster.id,
                role="worker",
                flavor_id=group.flavor,
                node_count=group.desired_size,
                min_node_count=group.min_size,
                max_node_count=group.max_size,
                labels=magnum_group_labels(group_name, gpu=group.accelerator == "nvidia"),
                merge_labels=True,
                opts=child,
            )
        self._connect(
            name,
            cluster_name=cluster.name,
            version=config.version,
            kubeconfig=cluster.kubeconfig.apply(_raw_config),
        )
