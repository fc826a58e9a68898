"""The kubernetes and hpc kinds: a cluster (cluster.py) and an S3-compatible store
(components/providers/s3_compatible.py) that exist already; no network, database or bridge host."""

from __future__ import annotations

from components.providers.base import BuildContext, GpuScheduling, SiteResources, StaticCredentials
from components.providers.existing.cluster import ExistingCluster
from components.providers.s3_compatible import S3CompatibleObjectStore
from fedeploy.config.site import HpcSite, KubernetesSite


def provision(config: KubernetesSite | HpcSite, context: BuildContext) -> SiteResources:
    """Buckets on the given store, reached with its keys; the cluster from its kubeconfig."""
    name = context.name
    store = S3CompatibleObjectStore(
        f"{name}-storage",
        site=name,
        config=config.storage,
        tags=context.tags,
        opts=context.opts,
    )
    cluster = ExistingCluster(f"{name}-cluster", config=config.cluster, opts=context.opts)
    gpu = config.cluster.gpu
    return SiteResources(
        store=store,
        cluster=cluster,
        region=config.storage.region,
        network={"pod_cidrs": list(config.cluster.pod_cidrs)},
        credentials=StaticCredentials(store.access_key_id, store.secret_access_key),
        gpu=GpuScheduling(dict(gpu.node_selector), gpu.taint_key) if gpu is not None else None,
        bridge_cidrs=list(config.cluster.pod_cidrs),
        pod_storage_endpoint=store.endpoint,
    )
