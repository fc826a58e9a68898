"""`kind: ovh`: a site provisioned in an OVHcloud Public Cloud project.

Managed Kubernetes with node pools, optionally on a private network (vRack) of its own, and
buckets on OVHcloud's S3 endpoint with an S3 user the site creates."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field, model_validator

from fedeploy.config.addresses import AccessCidr, Ipv4Cidr
from fedeploy.config.base import StrictModel
from fedeploy.config.bridge import BridgeConfig
from fedeploy.config.cluster import KubernetesVersion, NodeGroupName
from fedeploy.config.provisioned import (
    FlavorNodeGroup,
    ProvisionedStore,
    check_site_options,
    has_gpu,
)
from fedeploy.config.services import Services
from fedeploy.config.site_base import ProvisionedSiteBase
from fedeploy.gpu_flavors import accelerator_mismatch

OvhRegion = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{2,4}[0-9]{0,2}(-[A-Z]{2,4}-[0-9])?$",
        description="OVHcloud Public Cloud region, e.g. GRA9, SBG5, DE1, WAW1 or EU-WEST-PAR.",
    ),
]


class OvhPrivateNetwork(StrictModel):
    """A private network (vRack) for the cluster's nodes, created for the site."""

    vlan_id: int = Field(ge=1, le=4000, description="VLAN id of the network in the vRack.")
    cidr: Ipv4Cidr = Field("10.50.0.0/20", description="Subnet address range, private.")

    @model_validator(mode="after")
    def _private(self) -> OvhPrivateNetwork:
        net = ipaddress.ip_network(self.cidr)
        if not (net.is_private and 16 <= net.prefixlen <= 24):
            raise ValueError(f"cidr {self.cidr!r} must be a private IPv4 range from /16 to /24")
        return self


class OvhNodePool(FlavorNodeGroup):
    """A node pool of one flavor (GPU flavors such as t1-45 or l4-90 with accelerator: nvidia)."""

    autoscale: bool = Field(True, description="Let the cluster autoscaler size the pool.")

    @model_validator(mode="after")
    def _gpu_flavor(self) -> OvhNodePool:
        # OVHcloud names every GPU flavor by its card: an unknown name has none.
        problem = accelerator_mismatch([self.flavor], self.accelerator, ec2=False)
        if problem:
            raise ValueError(problem)
        return self


class OvhKube(StrictModel):
    """OVHcloud Managed Kubernetes."""

    version: KubernetesVersion = "1.31"
    update_policy: Literal["ALWAYS_UPDATE", "MINIMAL_DOWNTIME", "NEVER_UPDATE"] = Field(
        "MINIMAL_DOWNTIME", description="How OVHcloud applies patch releases."
    )
    api_access_cidrs: list[AccessCidr] = Field(
        default_factory=list,
        description="CIDRs that may reach the API server (its IP restrictions); empty leaves "
        "OVHcloud's default (open) and the plan reports it.",
    )
    node_pools: dict[NodeGroupName, OvhNodePool] = Field(
        min_length=1, description="Node pools by name."
    )

    @property
    def has_gpu(self) -> bool:
        return has_gpu(dict(self.node_pools))

    @model_validator(mode="after")
    def _restricted(self) -> OvhKube:
        if "0.0.0.0/0" in self.api_access_cidrs:
            raise ValueError(
                "api_access_cidrs lists 0.0.0.0/0, the whole internet: name the networks "
                "that need the API"
            )
        return self


class OvhSite(ProvisionedSiteBase):
    """A site in an OVHcloud Public Cloud project: Managed Kubernetes and its S3 storage.

    With role: storage, the site is its buckets only (a storage-only site)."""

    kind: Literal["ovh"] = Field(description="The kind of site: ovh.")
    project_id: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="The Public Cloud project id (its `service_name`, 32 hex digits).",
    )
    region: OvhRegion
    private_network: OvhPrivateNetwork | None = Field(
        None, description="A private network (vRack) for the nodes; unset: public network."
    )
    storage: ProvisionedStore = Field(
        description="Buckets on OVHcloud's S3 endpoint, reached by an S3 user the site creates "
        "whose policy admits the site's own buckets only."
    )
    cluster: OvhKube | None = Field(
        None,
        description="The Managed Kubernetes cluster (required unless role: storage, which "
        "refuses it).",
    )
    services: Services = Field(default_factory=Services, description="Our charts on this site.")
    bridge: BridgeConfig | None = Field(
        None, description="A SLURM bridge: gateway or existing (vm: aws and openstack sites only)."
    )

    @model_validator(mode="after")
    def _supported(self) -> OvhSite:
        check_site_options(self, kind="ovh", groups_key="cluster.node_pools")
        return self
