"""Sections shared by the provisioned European cloud kinds (openstack, ovh).

Node groups are sized by the cloud's flavors; the object store is the cloud's S3 API, reached
with keys the site creates itself (none in the stack file)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from fedeploy.config.base import StrictModel
from fedeploy.config.bridge import check_vm_platform
from fedeploy.config.storage import (
    S3_REGION_WORDS,
    STORE_ENDPOINT_WORDS,
    BucketPrefix,
    Buckets,
    S3Region,
    StoreEndpoint,
    check_store_off_aws,
)
from fedeploy.gpu_flavors import accelerator_mismatch

FlavorName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="A flavor name of the cloud, e.g. eo2.xlarge or b3-16.",
    ),
]


class FlavorNodeGroup(StrictModel):
    """A group of worker nodes of one flavor; GPU groups are labelled and tainted like on aws."""

    flavor: FlavorName = Field(description="The nodes' flavor (name as the cloud lists it).")
    min_size: int = Field(1, ge=0, le=1000, description="Fewest nodes.")
    desired_size: int = Field(1, ge=0, le=1000, description="Nodes at creation.")
    max_size: int = Field(3, ge=1, le=1000, description="Most nodes.")
    accelerator: Literal["none", "nvidia"] = Field(
        "none",
        description="nvidia: GPU nodes (a GPU flavor), tainted nvidia.com/gpu=present:NoSchedule "
        "and labelled fedeploy.io/accelerator=nvidia so only inference lands there.",
    )

    @model_validator(mode="after")
    def _gpus_marked(self) -> FlavorNodeGroup:
        # A GPU flavor's nodes without the taint: any pod takes them. The other way round is
        # the provider's to decide (ovh: its flavor names are known; openstack: an advisory).
        if self.accelerator == "none":
            problem = accelerator_mismatch([self.flavor], self.accelerator, ec2=False)
            if problem:
                raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _sizes_ordered(self) -> FlavorNodeGroup:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"desired_size ({self.desired_size}) must lie between min_size ({self.min_size}) "
                f"and max_size ({self.max_size})"
            )
        return self


class ProvisionedStore(StrictModel):
    """Buckets on the cloud's S3 API, with credentials the site creates (never in the file)."""

    endpoint: StoreEndpoint = Field(
        description=f"The cloud's S3 endpoint URL: {STORE_ENDPOINT_WORDS}."
    )
    region: S3Region = Field(
        description=f"Region name the S3 API signs requests for: {S3_REGION_WORDS}."
    )
    path_style: bool = Field(True, description="Address buckets by path, not by virtual host.")
    encryption: Literal["aes256", "provider_managed"] = Field(
        "provider_managed",
        description="aes256: request SSE-S3 on every bucket (where the store supports it); "
        "provider_managed: the store encrypts at rest itself (reported as advisory).",
    )
    bucket_prefix: BucketPrefix = "fedeploy"
    buckets: Buckets

    @model_validator(mode="after")
    def _https_only(self) -> ProvisionedStore:
        check_store_off_aws(self.endpoint, self.buckets)
        return self


def has_gpu(groups: dict[str, FlavorNodeGroup]) -> bool:
    """Whether any group carries GPUs."""
    return any(g.accelerator != "none" for g in groups.values())


def check_site_options(site: Any, *, kind: str, groups_key: str) -> None:
    """What a provisioned European cloud site cannot offer (yet): RDS, a `vm` bridge off
    OpenStack (or with another cloud's fields), and a
    GPU inference without a GPU group; raises ValueError naming the keys. A storage-only site
    (no cluster, services off) has none of them."""
    if site.cluster is None:
        return
    if site.services.catalog.database == "rds":
        raise ValueError(
            "services.catalog.database is 'rds', which only aws sites offer "
            "(allowed here: internal, external)"
        )
    check_vm_platform(site.bridge, kind)
    inference = site.services.inference
    if inference and inference.enabled and inference.gpu == "on" and not site.cluster.has_gpu:
        raise ValueError(
            f"services.inference.gpu is 'on' but {groups_key} has no group with accelerator: nvidia"
        )
