"""The openstack kind: a private network routed to the cloud's external network, Kubernetes from
Magnum, and buckets on the cloud's S3 API with EC2-style keys the site creates."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_openstack as openstack

from components.object_store import S3CompatibleObjectStore
from components.providers.base import BuildContext, GpuScheduling, SiteResources, StaticCredentials
from fedeploy.config.openstack import MagnumCluster as MagnumConfig
from fedeploy.config.openstack import OpenStackNetwork as NetworkConfig
from fedeploy.config.openstack import OpenStackSite
from fedeploy.node_pools import (
    GPU_LABEL_KEY,
    GPU_LABEL_VALUE,
    GPU_TAINT_KEY,
    magnum_group_labels,
    magnum_template_labels,
)


def _tag_list(tags: dict[str, str]) -> list[str]:
    # Neutron tags are plain strings.
    return [f"{k}={v}" for k, v in sorted(tags.items())]


def _raw_config(kubeconfig: Any) -> str:
    # The provider's typed output (`raw_config`), or its wire form (`rawConfig`) under mocks.
    raw = getattr(kubeconfig, "raw_config", None)
    if raw is None and isinstance(kubeconfig, dict):
        raw = kubeconfig.get("raw_config", kubeconfig.get("rawConfig"))
    return str(raw or "")


class OpenStackNetwork(pulumi.ComponentResource):
    """A private network and subnet, and a router with SNAT to the named external network."""

    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]
    cidr: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        region: str,
        config: NetworkConfig,
        tags: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:network:OpenStackNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = _tag_list(tags)
        network = openstack.networking.Network(
            name,
            name=name,
            region=region,
            admin_state_up=True,
            port_security_enabled=True,
            tags=labels,
            opts=child,
        )
        subnet = openstack.networking.Subnet(
            f"{name}-subnet",
            name=f"{name}-subnet",
            region=region,
            network_id=network.id,
            cidr=config.cidr,
            ip_version=4,
            enable_dhcp=True,
            dns_nameservers=list(config.dns_nameservers) or None,
            tags=labels,
            opts=child,
        )
        router = openstack.networking.Router(
            f"{name}-router",
            name=f"{name}-router",
            region=region,
            external_network_id=config.external_network_id,
            enable_snat=True,
            tags=labels,
            opts=child,
        )
        openstack.networking.RouterInterface(
            f"{name}-router-interface",
            region=region,
            router_id=router.id,
            subnet_id=subnet.id,
            opts=child,
        )
        self.network_id = network.id
        self.subnet_id = subnet.id
        self.cidr = pulumi.Output.from_input(config.cidr)
        self.register_outputs({"network_id": self.network_id, "subnet_id": self.subnet_id})


class MagnumKubernetes(pulumi.ComponentResource):
    """A Magnum cluster template, the cluster (control plane behind a load balancer that admits
    only the site's network and the listed CIDRs, no floating IPs) and its node groups."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    name: pulumi.Output[str]
    version: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str | None]
    has_gpu: bool

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
        self.name = cluster.name
        self.version = pulumi.Output.from_input(config.version)
        self.oidc_issuer = pulumi.Output.from_input(None)
        self.kubeconfig = pulumi.Output.secret(cluster.kubeconfig.apply(_raw_config))
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True, opts=child
        )
        self.register_outputs({"name": self.name, "version": self.version})


def provision(config: OpenStackSite, context: BuildContext) -> SiteResources:
    """Network, Magnum cluster and S3 buckets with an EC2 credential of the deploying user."""
    name = context.name
    network = OpenStackNetwork(
        f"{name}-network",
        region=config.region,
        config=config.network,
        tags=context.tags,
        opts=context.opts,
    )
    cluster = MagnumKubernetes(
        f"{name}-cluster",
        region=config.region,
        config=config.cluster,
        network=network,
        network_config=config.network,
        opts=context.opts,
    )
    # EC2-style keys of the deploying user in this project: what the cloud's S3 API accepts.
    credential = openstack.identity.Ec2CredentialV3(
        f"{name}-s3-credential",
        region=config.region,
        opts=pulumi.ResourceOptions.merge(
            context.opts, pulumi.ResourceOptions(additional_secret_outputs=["secret"])
        ),
    )
    access: pulumi.Output[str] = credential.access
    secret: pulumi.Output[str] = pulumi.Output.secret(credential.secret)
    store = S3CompatibleObjectStore(
        f"{name}-storage",
        site=name,
        config=config.storage,
        tags=context.tags,
        credentials=(access, secret),
        opts=context.opts,
    )
    return SiteResources(
        store=store,
        cluster=cluster,
        region=config.region,
        network={"cidr": config.network.cidr},
        credentials=StaticCredentials(store.access_key_id, store.secret_access_key),
        gpu=GpuScheduling({GPU_LABEL_KEY: GPU_LABEL_VALUE}, GPU_TAINT_KEY),
        bridge_cidrs=[config.network.cidr],
        provisioned_kubeconfig=cluster.kubeconfig,
        pod_storage_endpoint=store.endpoint,
    )
