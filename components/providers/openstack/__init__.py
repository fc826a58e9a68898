"""The openstack kind: a private network routed to the cloud's external network, Kubernetes from
Magnum, and buckets on the cloud's S3 API with EC2-style keys the site creates."""

from __future__ import annotations

from components.providers.base import (
    PROVISIONED_GPU,
    BuildContext,
    SiteResources,
    StaticCredentials,
)
from components.providers.openstack.bridge_host import OpenStackBridgeHost
from components.providers.openstack.cluster import MagnumKubernetes
from components.providers.openstack.identity import workload_identities
from components.providers.openstack.network import OpenStackNetwork
from components.providers.openstack.storage import site_store
from fedeploy.config.openstack import OpenStackSite


def provision(config: OpenStackSite, context: BuildContext) -> SiteResources:
    """Network, Magnum cluster and S3 buckets with an EC2 credential of the deploying user; a
    storage-only site (role: storage) gets the credential and its buckets only."""
    name = context.name
    if config.storage_only:
        return SiteResources(
            store=site_store(config, context), cluster=None, region=config.region, network={}
        )
    assert config.network is not None and config.cluster is not None  # a full site's (validated)
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
    store = site_store(config, context)
    workload_keys: dict[str, StaticCredentials] = {}
    if config.workload_identities is not None:
        workload_keys = workload_identities(config, config.workload_identities, store, context)
    bridge_host = None
    if config.bridge is not None and config.bridge.mode == "vm":
        bridge_host = OpenStackBridgeHost(
            site=name,
            config=config.bridge,
            region=config.region,
            network_id=network.network_id,
            cidrs=[config.network.cidr, *config.bridge.allowed_cidrs],
            availability_zone=config.availability_zone,
            tags=context.tags,
        )
    return SiteResources(
        store=store,
        cluster=cluster,
        region=config.region,
        network={"cidr": config.network.cidr},
        # With workload identities no pod holds the deploying user's keys (only Pulumi does).
        credentials=(
            None
            if workload_keys
            else StaticCredentials(store.access_key_id, store.secret_access_key)
        ),
        workload_credentials=workload_keys,
        gpu=PROVISIONED_GPU,
        bridge_cidrs=[config.network.cidr],
        bridge_host=bridge_host,
        provisioned_kubeconfig=cluster.kubeconfig,
        pod_storage_endpoint=store.endpoint,
    )
