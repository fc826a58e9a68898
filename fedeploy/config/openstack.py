"""`kind: openstack`: a site provisioned on an OpenStack cloud (CloudFerro, European Weather Cloud).

Kubernetes comes from Magnum, storage from the cloud's S3 API (Ceph RGW or Swift's S3 layer).
Images, flavors and the external network are given by id or name as the cloud lists them: the
offline plan looks nothing up."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from fedeploy.config.addresses import AccessCidr, Ipv4Cidr
from fedeploy.config.base import StrictModel, no_userinfo
from fedeploy.config.bridge import BridgeConfig
from fedeploy.config.cluster import KubernetesVersion, NodeGroupName
from fedeploy.config.provisioned import (
    FlavorName,
    FlavorNodeGroup,
    ProvisionedStore,
    check_site_options,
    has_gpu,
)
from fedeploy.config.services import Services
from fedeploy.config.site_base import ProvisionedSiteBase

OpenStackId = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="An OpenStack resource id (UUID), as `openstack ... list` shows it.",
    ),
]
MagnumLabel = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
# Labels fedeploy sets itself; a stack file that sets them would silently be overridden.
RESERVED_LABELS = ("kube_tag", "master_lb_allowed_cidrs", "kubelet_options")


class OpenStackNetwork(StrictModel):
    """The site's private network, its subnet and the router to the cloud's external network."""

    cidr: Ipv4Cidr = Field("10.60.0.0/20", description="Subnet address range, private, /16 to /24.")
    external_network_id: OpenStackId = Field(
        description="Id of the external (provider) network the router uplinks to, e.g. the "
        "cloud's `external` network."
    )
    dns_nameservers: list[str] = Field(
        default_factory=list,
        description="DNS servers handed out by DHCP; empty: the cloud's default.",
    )
    api_access_cidrs: list[AccessCidr] = Field(
        default_factory=list,
        description="CIDRs besides the site's own subnet that may reach the Kubernetes API "
        "(Magnum's load balancer); empty keeps it reachable from the site's network only.",
    )

    @model_validator(mode="after")
    def _private(self) -> OpenStackNetwork:
        net = ipaddress.ip_network(self.cidr)
        if not (net.is_private and 16 <= net.prefixlen <= 24):
            raise ValueError(f"cidr {self.cidr!r} must be a private IPv4 range from /16 to /24")
        if "0.0.0.0/0" in self.api_access_cidrs:
            raise ValueError(
                "api_access_cidrs lists 0.0.0.0/0, the whole internet: name the networks that "
                "need the API"
            )
        for server in self.dns_nameservers:
            try:
                ipaddress.IPv4Address(server)
            except ValueError:
                raise ValueError(f"dns_nameservers: {server!r} is not an IPv4 address") from None
        return self


class MagnumCluster(StrictModel):
    """A Kubernetes cluster from Magnum: its template, control plane and node groups."""

    version: KubernetesVersion = "1.30"
    kube_tag: str = Field(
        pattern=r"^v1\.[0-9]{2}\.[0-9]{1,2}$",
        description="The exact Kubernetes release Magnum installs (its `kube_tag` label), "
        "e.g. v1.30.4; must be of `version`.",
    )
    image_id: OpenStackId = Field(
        description="Id of the node image the Magnum driver expects (e.g. Fedora CoreOS)."
    )
    master_flavor: FlavorName = Field(description="Flavor of the control-plane nodes.")
    master_count: Literal[1, 3, 5] = Field(3, description="Control-plane nodes (odd, for etcd).")
    network_driver: Literal["calico", "flannel", "cilium"] = Field(
        "calico", description="The pod network Magnum installs (calico enforces NetworkPolicy)."
    )
    volume_driver: Literal["cinder"] = Field(
        "cinder", description="Persistent volumes from Cinder."
    )
    docker_volume_size_gib: int = Field(
        50, ge=10, le=1024, description="Each node's container-image volume."
    )
    keypair: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._ -]{1,255}$",
        description="Nova keypair for node SSH; unset: none (the default, nodes are not "
        "reached by SSH).",
    )
    labels: dict[MagnumLabel, str] = Field(
        default_factory=dict,
        description="Further Magnum labels of the cluster template, as the cloud documents them "
        "(e.g. cinder_csi_enabled, auto_healing_enabled, boot_volume_type).",
    )
    node_groups: dict[NodeGroupName, FlavorNodeGroup] = Field(
        min_length=1,
        description="Worker node groups by name; the first (by name) is the cluster's default.",
    )

    @property
    def has_gpu(self) -> bool:
        return has_gpu(self.node_groups)

    @model_validator(mode="after")
    def _consistent(self) -> MagnumCluster:
        if not self.kube_tag.startswith(f"v{self.version}."):
            raise ValueError(
                f"kube_tag {self.kube_tag!r} is not a release of version {self.version!r} "
                f"(expected v{self.version}.<patch>)"
            )
        if all(g.accelerator != "none" for g in self.node_groups.values()):
            raise ValueError(
                "node_groups has only GPU groups: Magnum's default worker group needs one "
                "group with accelerator: none"
            )
        for label in self.labels:
            if label in RESERVED_LABELS:
                raise ValueError(
                    f"labels.{label} is set by fedeploy itself (from kube_tag, "
                    "network.api_access_cidrs and the node groups); remove it"
                )
        return self


class WorkloadIdentities(StrictModel):
    """One Keystone project, user and EC2 credential per workload that touches storage, scoped
    by a bucket policy on the site's buckets (Ceph RGW; docs/configuration.md).

    The deploying identity needs Keystone's `manager` role on `domain_id` (the domain manager
    persona, Keystone 26 / OpenStack 2024.2 and later), not admin: it creates the projects and
    users and grants `role_id` (one of manager, member, reader); each workload user creates its
    own EC2 credential (Keystone lets only a user itself or a system admin do that)."""

    domain_id: OpenStackId = Field(
        description=(
            "Keystone domain the workload projects and users are created in; the deploying "
            "identity holds the `manager` role on it (or is a cloud admin)."
        )
    )
    role_id: OpenStackId = Field(
        description=(
            "Id of the role that lets a project use the object store (one of RGW's "
            "`rgw_keystone_accepted_roles`, usually `member`), granted on each workload's own "
            "project only."
        )
    )
    manager_cloud: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description=(
            "The clouds.yaml entry Pulumi creates the projects, users and grants with: a "
            "password sign-in scoped to `domain_id` (Keystone checks the `manager` role on a "
            "domain-scoped token; the site's own sign-in is project-scoped). Unset: the site's "
            "own sign-in, which then must be a cloud admin's."
        ),
    )
    auth_url: Annotated[str, BeforeValidator(no_userinfo)] = Field(
        pattern=r"^https://[^\s/@]+(:\d+)?(/[A-Za-z0-9._~-]+)*/v3/?$",
        description=(
            "The cloud's Keystone v3 URL (https), e.g. https://keystone.example.eu:5000/v3: each "
            "workload user signs in there to create its own EC2 credential."
        ),
    )


class OpenStackSite(ProvisionedSiteBase):
    """A site on an OpenStack cloud: Magnum Kubernetes in its own network, the cloud's S3 API.

    With role: storage, the site is its buckets only (a storage-only site)."""

    FULL_SITE_KEYS = ("network", "cluster")

    kind: Literal["openstack"] = Field(description="The kind of site: openstack.")
    region: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="OpenStack region name, e.g. WAW3-1 (CloudFerro) or RegionOne.",
    )
    availability_zone: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
        description="Availability zone of the bridge VM; unset: the cloud's default.",
    )
    network: OpenStackNetwork | None = Field(
        None,
        description="The site's private network (required unless role: storage, which refuses it).",
    )
    storage: ProvisionedStore = Field(
        description="Buckets on the cloud's S3 API, with EC2-style keys the site creates."
    )
    workload_identities: WorkloadIdentities | None = Field(
        None,
        description=(
            "Give each workload (ingestion, inference, the asset endpoint, catalog backups) a "
            "Keystone project, user and EC2 credential of its own, allowed by bucket policies "
            "only its prefixes (read-only for the asset endpoint); needs the `manager` role on "
            "the domain for the deploying identity (Keystone 2024.2 and later; a cloud admin "
            "also works), and Ceph RGW with rgw_keystone_implicit_tenants false. Unset: every "
            "pod holds the storage keys of the deploying user (the plan's storage-identity "
            "advisory)."
        ),
    )
    cluster: MagnumCluster | None = Field(
        None, description="The Magnum cluster (required unless role: storage, which refuses it)."
    )
    services: Services = Field(default_factory=Services, description="Our charts on this site.")
    bridge: BridgeConfig | None = Field(
        None,
        description=(
            "A SLURM bridge: gateway, existing, or vm (an instance in the site's subnet, with "
            "flavor_id and image_id; secrets from Barbican)."
        ),
    )

    @model_validator(mode="after")
    def _supported(self) -> OpenStackSite:
        check_site_options(self, kind="openstack", groups_key="cluster.node_groups")
        return self
