"""The `site.cluster` section: EKS on aws sites, an existing cluster elsewhere."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from fedeploy.config.addresses import AccessCidr, Cidr
from fedeploy.config.base import Secret, StrictModel, Word
from fedeploy.config.monitoring import LabelKey, Labels
from fedeploy.gpu_flavors import accelerator_mismatch

KubernetesVersion = Annotated[
    str,
    Field(
        pattern=r"^1\.(2[5-9]|3[0-7])$",
        description="Kubernetes minor version, 1.25 to 1.37 (the schemas the plan validates against).",
    ),
]

NodeGroupName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")]
InstanceType = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$",
        description="An EC2 instance type: family.size, e.g. m6i.xlarge or m7g.large.",
    ),
]

# family = prefix letters, a generation digit, attribute letters (m7g, c6gn, g5g, x2gd, is4gen).
_FAMILY = re.compile(r"^(?P<prefix>[a-z]+)(?P<generation>[0-9]+)(?P<attributes>[a-z-]*)$")
Architecture = Literal["arm64", "x86_64"]


def instance_architecture(instance_type: str) -> Architecture:
    """The CPU architecture of an EC2 instance type: arm64 for Graviton families (a `g` among
    the attribute letters after the generation: m7g, c6gn, r8gd, g5g, is4gen) and a1."""
    family = instance_type.split(".", 1)[0]
    if family == "a1":
        return "arm64"
    match = _FAMILY.match(family)
    if match and "g" in match["attributes"].split("-", 1)[0]:
        return "arm64"
    return "x86_64"


def eks_ami_type(instance_types: list[str], accelerator: str) -> str:
    """The EKS managed node group AMI type for these instance types (Amazon Linux 2023).

    Raises ValueError when the types mix architectures: one AMI cannot boot both."""
    architectures = {t: instance_architecture(t) for t in instance_types}
    if len(set(architectures.values())) > 1:
        listed = ", ".join(f"{t} ({a})" for t, a in architectures.items())
        raise ValueError(
            f"instance_types mixes architectures ({listed}); a node group boots one AMI, so "
            "put arm64 (Graviton) and x86_64 types in separate node groups"
        )
    arm = next(iter(architectures.values())) == "arm64"
    gpu = accelerator == "nvidia"
    return {
        (True, True): "AL2023_ARM_64_NVIDIA",
        (True, False): "AL2023_ARM_64_STANDARD",
        (False, True): "AL2023_x86_64_NVIDIA",
        (False, False): "AL2023_x86_64_STANDARD",
    }[(arm, gpu)]


class NodeGroup(StrictModel):
    """A managed node group: sizes, instance types, and whether it carries GPUs."""

    instance_types: list[InstanceType] = Field(
        min_length=1,
        description="EC2 instance types, e.g. m6i.xlarge; the first is preferred. One "
        "architecture per group: the AMI type (x86_64 or arm64 for Graviton families such as "
        "m7g, with the NVIDIA variant for accelerator: nvidia) derives from them.",
    )
    min_size: int = Field(1, ge=0, le=1000, description="Fewest nodes.")
    desired_size: int = Field(1, ge=0, le=1000, description="Nodes at creation.")
    max_size: int = Field(3, ge=1, le=1000, description="Most nodes.")
    disk_size_gib: int = Field(50, ge=20, le=16384, description="Root volume size of each node.")
    capacity_type: Literal["ON_DEMAND", "SPOT"] = Field("ON_DEMAND", description="Purchase option.")
    accelerator: Literal["none", "nvidia"] = Field(
        "none",
        description="nvidia: GPU nodes, tainted nvidia.com/gpu=present:NoSchedule and labelled "
        "fedeploy.io/accelerator=nvidia so only inference lands there.",
    )

    @property
    def ami_type(self) -> str:
        """The EKS AMI type its instance types boot (validated to be one architecture)."""
        return eks_ami_type(self.instance_types, self.accelerator)

    @model_validator(mode="after")
    def _one_architecture(self) -> NodeGroup:
        eks_ami_type(self.instance_types, self.accelerator)
        return self

    @model_validator(mode="after")
    def _accelerator_fits(self) -> NodeGroup:
        problem = accelerator_mismatch(self.instance_types, self.accelerator, ec2=True)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _sizes_ordered(self) -> NodeGroup:
        if self.min_size > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) is above max_size ({self.max_size})")
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"desired_size ({self.desired_size}) must lie between min_size ({self.min_size}) "
                f"and max_size ({self.max_size})"
            )
        return self


class EksCluster(StrictModel):
    """An EKS cluster in the site's own VPC."""

    version: KubernetesVersion = "1.33"
    node_groups: dict[NodeGroupName, NodeGroup] = Field(
        min_length=1, description="Managed node groups by name."
    )
    public_access_cidrs: list[AccessCidr] = Field(
        default_factory=list,
        description="CIDRs that may reach the API server's public endpoint; empty keeps the "
        "endpoint private (deploy from inside the VPC).",
    )
    log_types: list[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]] = (
        Field(["api", "audit", "authenticator"], description="Control-plane logs to CloudWatch.")
    )

    @property
    def has_gpu(self) -> bool:
        return any(g.accelerator != "none" for g in self.node_groups.values())


class GpuNodes(StrictModel):
    """How an existing cluster marks its GPU nodes."""

    node_selector: Labels = Field(
        {"fedeploy.io/accelerator": "nvidia"},
        description="Labels of the GPU nodes (Kubernetes label names and values: the inference "
        "pods' nodeSelector).",
    )
    taint_key: LabelKey = Field(
        "nvidia.com/gpu",
        description="Key of the GPU nodes' NoSchedule taint (the inference pods' toleration): "
        "a Kubernetes qualified name, an optional prefix of lower-case DNS labels and '/', then "
        "1 to 63 characters of letters, digits, '-', '_' and '.', beginning and ending with a "
        "letter or digit (e.g. nvidia.com/gpu).",
    )


class ExistingCluster(StrictModel):
    """A cluster that exists already, handed over by kubeconfig."""

    kubeconfig: Secret = Field(description="The kubeconfig (secret).")
    context: Word | None = Field(
        None, description="Context in the kubeconfig; its current one if unset."
    )
    version: KubernetesVersion = Field(description="The cluster's Kubernetes minor version.")
    gpu: GpuNodes | None = Field(
        None, description="Set when the cluster has GPU nodes for inference."
    )
    pod_cidrs: list[Cidr] = Field(
        default_factory=list,
        description="The cluster's pod and node address ranges (what a bridge's firewall admits).",
    )

    @property
    def has_gpu(self) -> bool:
        return self.gpu is not None
