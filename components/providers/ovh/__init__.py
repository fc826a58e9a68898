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
from components.providers.ovh.identity import backup_identity
from components.providers.ovh.network import OvhNetwork
from components.providers.ovh.storage import site_store
from fedeploy.config.ovh import OvhSite


def provision(config: OvhSite, context: BuildContext) -> SiteResources:
    """Private network (if asked), Managed Kubernetes, an S3 user scoped to the site's buckets and
    one for the catalog's backups scoped to their prefix; a storage-only site (role: storage)
    gets the S3 user and its buckets only."""
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
    return SiteResources(
        store=store,
        cluster=cluster,
        region=config.region,
        network={"cidr": config.private_network.cidr} if config.private_network else {},
        credentials=StaticCredentials(store.access_key_id, store.secret_access_key),
        # The catalog's backups hold keys that reach their prefix only, not the site user's.
        workload_credentials=backup_identity(config, context, after=[store]),
        gpu=PROVISIONED_GPU,
        bridge_cidrs=[config.private_network.cidr] if config.private_network else [],
        provisioned_kubeconfig=cluster.kubeconfig,
        pod_storage_endpoint=store.endpoint,
    )
