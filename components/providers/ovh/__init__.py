"""The ovh kind: OVHcloud Managed Kubernetes with node pools, optionally on a private network
(vRack) of its own, and buckets on OVHcloud's S3 endpoint with an S3 user the site creates."""

from __future__ import annotations

from components.providers.base import (
    PROVISIONED_GPU,
    BuildContext,
    SiteResources,
    StaticCredentials,
)
from components.providers.ovh.cluster import OvhKubernetes
from components.providers.ovh.identity import workload_identities
from components.providers.ovh.network import OvhNetwork
from components.providers.ovh.storage import site_store
from fedeploy.config.ovh import OvhSite


def provision(config: OvhSite, context: BuildContext) -> SiteResources:
    """Private network (if asked), Managed Kubernetes, an S3 user scoped to the site's buckets
    (the deploying one) and one per workload scoped to its prefixes; a storage-only site (role:
    storage) gets the site's S3 user and its buckets only."""
    name = context.name
    if config.storage_only:
        return SiteResources(
            store=site_store(config, context), cluster=None, region=config.region, network={}
        )
    assert config.cluster is not None  # a full site's (validated)
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
    store = site_store(config, context)
    workload_keys = workload_identities(config, context, after=[store])
    return SiteResources(
        store=store,
        cluster=cluster,
        region=config.region,
        network={"cidr": config.private_network.cidr} if config.private_network else {},
        # Each workload holds an S3 user of its own, limited to its prefixes; the site user,
        # which makes the buckets, stays in Pulumi's state (a pod holds it only where no
        # workload has a user of its own).
        credentials=(
            None
            if workload_keys
            else StaticCredentials(store.access_key_id, store.secret_access_key)
        ),
        workload_credentials=workload_keys,
        gpu=PROVISIONED_GPU,
        bridge_cidrs=[config.private_network.cidr] if config.private_network else [],
        provisioned_kubeconfig=cluster.kubeconfig,
        pod_storage_endpoint=store.endpoint,
    )
