"""The `fedeploy:site` object of a stack file: one model per kind of site."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal, TypeAlias

from pydantic import AfterValidator, Field, TypeAdapter, model_validator

from fedeploy.config.addresses import AvailabilityZone, AwsRegion, Ipv4Cidr, zone_region
from fedeploy.config.base import Name, StrictModel
from fedeploy.config.bridge import BridgeConfig, check_vm_platform
from fedeploy.config.cluster import EksCluster, ExistingCluster
from fedeploy.config.openstack import OpenStackSite
from fedeploy.config.ovh import OvhSite
from fedeploy.config.services import (
    SERVICES_NAMESPACE_WORDS,
    CatalogBackup,
    CatalogService,
    Cron,
    Services,
    backup_lock_days,
    check_services_namespace,
    refuse_namespace_clash,
)
from fedeploy.config.site_base import ProvisionedSiteBase, SiteBase
from fedeploy.config.storage import AwsStorage, S3CompatibleStorage


class AwsNetwork(StrictModel):
    """The site's VPC: public and private subnets over its availability zones."""

    cidr: Ipv4Cidr = Field("10.0.0.0/16", description="VPC address range, /16 to /20.")
    availability_zones: list[AvailabilityZone] = Field(
        min_length=2, max_length=6, description="Availability zones, e.g. eu-central-1a."
    )
    single_nat_gateway: bool = Field(
        False, description="One NAT gateway for all zones (cheaper, not zone-redundant)."
    )

    @model_validator(mode="after")
    def _cidr_valid(self) -> AwsNetwork:
        net = ipaddress.ip_network(self.cidr)
        if not (net.version == 4 and 16 <= net.prefixlen <= 20 and net.is_private):
            raise ValueError(f"cidr {self.cidr!r} must be a private IPv4 range from /16 to /20")
        if len(set(self.availability_zones)) != len(self.availability_zones):
            raise ValueError("availability_zones lists a zone twice")
        return self


class AwsSite(ProvisionedSiteBase):
    """A site in an AWS region: S3, EKS in its own VPC, optionally a bridge VM; or S3 only.

    With role: storage, the site is its S3 buckets only (a storage-only site)."""

    FULL_SITE_KEYS = ("network", "cluster")

    kind: Literal["aws"] = Field(description="The kind of site: aws.")
    region: AwsRegion = Field(description="AWS region, e.g. eu-central-1.")
    network: AwsNetwork | None = Field(
        None, description="The site's VPC (required unless role: storage, which refuses it)."
    )
    storage: AwsStorage = Field(description="S3 buckets.")
    cluster: EksCluster | None = Field(
        None, description="The EKS cluster (required unless role: storage, which refuses it)."
    )
    services: Services = Field(default_factory=Services, description="Our charts on this site.")
    bridge: BridgeConfig | None = Field(None, description="A SLURM bridge VM in the site's VPC.")

    @model_validator(mode="after")
    def _zones_in_region(self) -> AwsSite:
        for zone in self.network.availability_zones if self.network else []:
            if zone_region(zone) != self.region:
                raise ValueError(
                    f"network.availability_zones: {zone!r} is not a zone of region {self.region!r} "
                    f"(expected e.g. {self.region}a)"
                )
        return self

    @model_validator(mode="after")
    def _bridge_vm_fields(self) -> AwsSite:
        check_vm_platform(self.bridge, "aws")
        return self

    @model_validator(mode="after")
    def _gpu_when_asked(self) -> AwsSite:
        inference = self.services.inference
        has_gpu = self.cluster is not None and self.cluster.has_gpu
        if inference and inference.enabled and inference.gpu == "on" and not has_gpu:
            raise ValueError(
                "services.inference.gpu is 'on' but cluster.node_groups has no group with "
                "accelerator: nvidia"
            )
        return self


class _ExistingClusterSite(SiteBase):
    @model_validator(mode="after")
    def _no_rds(self) -> _ExistingClusterSite:
        services = getattr(self, "services", None)
        if services is not None and services.catalog.database == "rds":
            raise ValueError(
                "services.catalog.database is 'rds', which only aws sites offer "
                "(allowed here: internal, external)"
            )
        if services is not None:
            _no_backup_lock(services.catalog.backup, getattr(self, "kind", ""))
        cluster = getattr(self, "cluster", None)
        bridge = getattr(self, "bridge", None)
        if bridge is not None and bridge.mode == "vm":
            raise ValueError(
                "bridge.mode 'vm' creates an EC2 instance in an aws site's VPC; on this site use "
                "'gateway' (the centre's node over SSH) or 'existing' (the centre's slurmrestd)"
            )
        if (
            bridge is not None
            and bridge.mode == "gateway"
            and not getattr(cluster, "pod_cidrs", None)
            and not bridge.allowed_cidrs
        ):
            raise ValueError(
                "bridge: a gateway bridge admits only the cluster's ranges and allowed_cidrs, and "
                "both are empty, so nothing could reach it; set cluster.pod_cidrs (the cluster's "
                "pod and node ranges) or bridge.allowed_cidrs"
            )
        inference = services.inference if services is not None else None
        if (
            inference
            and inference.enabled
            and inference.gpu == "on"
            and not (cluster and cluster.has_gpu)
        ):
            raise ValueError("services.inference.gpu is 'on' but cluster.gpu is not set")
        return self


def _no_backup_lock(backup: CatalogBackup, kind: str) -> None:
    """On kubernetes and hpc the store is the site's own (storage.endpoint): fedeploy makes the
    buckets there and sets their versioning, but no object lock (which stores offer it, and
    whether on an existing bucket, differs: MinIO and Ceph RGW only on a bucket created with
    it), so a lock asked for here would silently be none."""
    mode = backup.object_lock
    if mode is None or mode == "off":
        return
    days = backup_lock_days(backup.retention_days, backup.base_backup_interval_hours)
    raise ValueError(
        f"site.services.catalog.backup.object_lock: given {mode!r}, but on a "
        f"{kind} site the object store is the site's own (storage.endpoint), not fedeploy's to "
        "lock: fedeploy sets versioning only there, so the backups would have no lock at all. "
        "Lock the backups' bucket (storage.buckets."
        f"{backup.bucket}) at the store, by its own means, with a default "
        f"{mode.upper()} retention of {days} days (retention_days + "
        "ceil(base_backup_interval_hours / 24) + 1; where the store locks only a bucket created "
        "with the lock, as MinIO and Ceph RGW do, that takes a bucket made so for the "
        "backups), then remove object_lock here (or set it to off)"
    )


class KubernetesSite(_ExistingClusterSite):
    """An existing Kubernetes cluster with an S3-compatible store (European cloud, on premise)."""

    kind: Literal["kubernetes"] = Field(description="The kind of site: kubernetes.")
    storage: S3CompatibleStorage = Field(description="The S3-compatible store and its buckets.")
    cluster: ExistingCluster = Field(description="The existing cluster.")
    services: Services = Field(default_factory=Services, description="Our charts on this site.")
    bridge: BridgeConfig | None = Field(None, description="A SLURM bridge, where a centre is near.")


class HpcSite(_ExistingClusterSite):
    """An HPC centre: its S3-compatible store, SLURM through a bridge, and its (required) cluster."""

    kind: Literal["hpc"] = Field(description="The kind of site: hpc.")
    storage: S3CompatibleStorage = Field(
        description="The centre's S3-compatible store and its buckets."
    )
    cluster: ExistingCluster = Field(
        description="The Kubernetes cluster next to the HPC system, where the bridge's Secret and "
        "Service and the services run."
    )
    bridge: BridgeConfig = Field(description="The SLURM bridge (required on hpc sites).")
    services: Services = Field(
        default_factory=Services, description="Our charts (needs a cluster)."
    )


class HubServices(StrictModel):
    """What the hub runs: the federated catalog."""

    namespace: Annotated[str, AfterValidator(check_services_namespace)] = Field(
        "fedeploy",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="Namespace of the catalog: " + SERVICES_NAMESPACE_WORDS + ".",
    )
    catalog: CatalogService = Field(
        default_factory=CatalogService, description="The federated catalog."
    )
    harvest_schedule: Cron = Field(
        "*/15 * * * *", description="How often the hub harvests member catalogs."
    )

    @model_validator(mode="after")
    def _namespace_apart(self) -> HubServices:
        refuse_namespace_clash(self.namespace, self.catalog, type(self).__name__)
        return self


class HubSite(SiteBase):
    """The federation's hub: knows the member sites and runs the federated catalog."""

    kind: Literal["hub"] = Field(description="The kind of site: hub.")
    members: list[Name] = Field(min_length=1, description="The member sites (stack names).")
    cluster: ExistingCluster = Field(description="The cluster the federated catalog runs on.")
    services: HubServices = Field(default_factory=HubServices, description="The federated catalog.")

    @model_validator(mode="after")
    def _members_unique(self) -> HubSite:
        seen = [m for i, m in enumerate(self.members) if m in self.members[:i]]
        if seen:
            raise ValueError(f"members lists {seen[0]!r} twice")
        if self.services.catalog.database == "rds":
            raise ValueError("services.catalog.database 'rds' is for aws sites only")
        return self


AnySite: TypeAlias = AwsSite | KubernetesSite | HpcSite | HubSite | OpenStackSite | OvhSite
SiteConfig = Annotated[AnySite, Field(discriminator="kind")]
MODELS: dict[str, type[SiteBase]] = {
    "aws": AwsSite,
    "kubernetes": KubernetesSite,
    "hpc": HpcSite,
    "hub": HubSite,
    "openstack": OpenStackSite,
    "ovh": OvhSite,
}
site_adapter: TypeAdapter[AnySite] = TypeAdapter(SiteConfig)  # type: ignore[arg-type]
