"""The ovh kind: OVHcloud Managed Kubernetes with node pools, optionally on a private network
(vRack) of its own, and buckets on OVHcloud's S3 endpoint with an S3 user the site creates."""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_kubernetes as k8s
import pulumi_ovh as ovh

from components.object_store import S3CompatibleObjectStore
from components.providers.base import BuildContext, GpuScheduling, SiteResources, StaticCredentials
from fedeploy.config.ovh import OvhKube as KubeConfig
from fedeploy.config.ovh import OvhPrivateNetwork, OvhSite
from fedeploy.naming import bucket_name
from fedeploy.node_pools import GPU_LABEL_KEY, GPU_LABEL_VALUE, GPU_TAINT_KEY, ovh_node_template
from fedeploy.s3_user_policy import site_user_policy


class OvhNetwork(pulumi.ComponentResource):
    """A private network in the project's vRack and one subnet in the site's region."""

    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        project_id: str,
        region: str,
        config: OvhPrivateNetwork,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:network:OvhPrivateNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        hosts = list(ipaddress.ip_network(config.cidr).hosts())
        network = ovh.cloudproject.NetworkPrivate(
            name,
            service_name=project_id,
            name=name,
            regions=[region],
            vlan_id=config.vlan_id,
            opts=child,
        )
        subnet = ovh.cloudproject.NetworkPrivateSubnet(
            f"{name}-subnet",
            service_name=project_id,
            network_id=network.id,
            region=region,
            network=config.cidr,
            start=str(hosts[1]),
            end=str(hosts[-1]),
            dhcp=True,
            no_gateway=False,
            opts=child,
        )
        # The cluster takes the network's OpenStack id in its region, not OVHcloud's own id.
        self.network_id = network.regions_openstack_ids.apply(lambda ids: ids[region])
        self.subnet_id = subnet.id
        self.register_outputs({"network_id": self.network_id, "subnet_id": self.subnet_id})


class OvhKubernetes(pulumi.ComponentResource):
    """Managed Kubernetes, its API restricted to the listed CIDRs, and its node pools (GPU
    pools labelled and tainted as on every kind)."""

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
        self.name = kube.name
        self.version = pulumi.Output.from_input(config.version)
        self.oidc_issuer = pulumi.Output.from_input(None)
        self.kubeconfig = pulumi.Output.secret(kube.kubeconfig)
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True, opts=child
        )
        self.register_outputs({"name": self.name, "version": self.version})


def provision(config: OvhSite, context: BuildContext) -> SiteResources:
    """Private network (if asked), Managed Kubernetes, an S3 user scoped to the site's buckets."""
    name = context.name
    network = (
        OvhNetwork(
            f"{name}-network",
            project_id=config.project_id,
            region=config.region,
            config=config.private_network,
            opts=context.opts,
        )
        if config.private_network is not None
        else None
    )
    cluster = OvhKubernetes(
        f"{name}-cluster",
        project_id=config.project_id,
        region=config.region,
        config=config.cluster,
        network=network,
        opts=context.opts,
    )
    storage = config.storage
    physical = [bucket_name(storage.bucket_prefix, name, b) for b in sorted(storage.buckets)]
    user = ovh.cloudproject.User(
        f"{name}-s3-user",
        service_name=config.project_id,
        description=f"fedeploy {name}: object storage of the site's services",
        role_names=["objectstore_operator"],
        opts=context.opts,
    )
    credential = ovh.cloudproject.S3Credential(
        f"{name}-s3-credential",
        service_name=config.project_id,
        user_id=user.id,
        opts=pulumi.ResourceOptions.merge(
            context.opts, pulumi.ResourceOptions(additional_secret_outputs=["secretAccessKey"])
        ),
    )
    policy = ovh.cloudproject.S3Policy(
        f"{name}-s3-policy",
        service_name=config.project_id,
        user_id=user.id,
        policy=pulumi.Output.json_dumps(site_user_policy(physical)),
        opts=context.opts,
    )
    access: pulumi.Output[str] = credential.access_key_id
    secret: pulumi.Output[str] = pulumi.Output.secret(credential.secret_access_key)
    store = S3CompatibleObjectStore(
        f"{name}-storage",
        site=name,
        config=storage,
        tags=context.tags,
        credentials=(access, secret),
        # The user may touch the buckets only once its policy is in place.
        opts=pulumi.ResourceOptions.merge(
            context.opts, pulumi.ResourceOptions(depends_on=[policy])
        ),
    )
    return SiteResources(
        store=store,
        cluster=cluster,
        region=config.region,
        network={"cidr": config.private_network.cidr} if config.private_network else {},
        credentials=StaticCredentials(store.access_key_id, store.secret_access_key),
        gpu=GpuScheduling({GPU_LABEL_KEY: GPU_LABEL_VALUE}, GPU_TAINT_KEY),
        bridge_cidrs=[config.private_network.cidr] if config.private_network else [],
        provisioned_kubeconfig=cluster.kubeconfig,
        pod_storage_endpoint=store.endpoint,
    )
