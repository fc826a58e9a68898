"""Which machine types carry NVIDIA GPUs, as each provider names them: one check that both the
stack file's `accelerator` and the policy pack's taint rule use.

EC2 names its families (docs.aws.amazon.com/ec2/latest/instancetypes/ac.html): the g and p
families carry NVIDIA GPUs, but for g4ad (AMD Radeon Pro V520). OVHcloud names its GPU flavors by
their card (t1-45, t2-90, l4-90, l40s-180, a10-45, a100-180, h100-380, rtx5000-28). OpenStack
clouds name flavors as they like: CloudFerro's vm.a6000.2 and gpu.*, the European Weather
Cloud's ...-1a100 are recognised, and a flavor with another name may still have GPUs."""

from __future__ import annotations

import re

# The GPU's name (or `gpu`) as a word of the flavor's name, or a count before it (1a100).
GPU_FLAVOR = re.compile(
    r"(^|[^a-z0-9])(t[12]|l4|l40s?|a10|a30|a40|a100|a6000|h100|h200|v100|rtx\d*|gpu)([^a-z]|$)"
    r"|\d(a100|h100|l40s?|a6000|v100)\b",
    re.I,
)
_EC2_GPU_FAMILY = re.compile(r"^(g\d+[a-z]*|gr\d+[a-z]*|p\d+[a-z]*(-[a-z0-9]+)?)$", re.I)
_EC2_NOT_NVIDIA = frozenset({"g4ad"})  # AMD GPUs: no NVIDIA driver, no nvidia.com/gpu


def is_gpu_flavor(flavor: str, *, ec2: bool = False) -> bool:
    """Whether an OpenStack/OVHcloud flavor (or, with ec2, an EC2 instance type) has GPUs."""
    if ec2:
        family = flavor.split(".", 1)[0].lower()
        return bool(_EC2_GPU_FAMILY.match(family))
    return bool(GPU_FLAVOR.search(flavor))


def is_nvidia_instance_type(instance_type: str) -> bool:
    """Whether an EC2 instance type carries NVIDIA GPUs (the g and p families but g4ad)."""
    family = instance_type.split(".", 1)[0].lower()
    return is_gpu_flavor(instance_type, ec2=True) and family not in _EC2_NOT_NVIDIA


def accelerator_mismatch(flavors: list[str], accelerator: str, *, ec2: bool) -> str | None:
    """Why `accelerator` does not fit these machine types, or None when it does: nvidia needs
    NVIDIA GPU types only (else the NVIDIA image, the GPU taint and a GPU request that no node
    can meet), none needs types without GPUs (else untainted GPUs any pod may take)."""
    known = is_nvidia_instance_type if ec2 else is_gpu_flavor
    what = "instance type" if ec2 else "flavor"
    if accelerator == "nvidia":
        without = [f for f in flavors if not known(f)]
        if without:
            return (
                f"accelerator is 'nvidia' but {what} {', '.join(without)} has no NVIDIA GPU: "
                "inference would ask for a GPU no node has; use a GPU "
                + ("type (g5, g6, p4d, ...)" if ec2 else "flavor")
                + " or accelerator: none"
            )
    else:
        gpus = [f for f in flavors if is_gpu_flavor(f, ec2=ec2)]
        if gpus:
            return (
                f"accelerator is {accelerator!r} but {what} {', '.join(gpus)} has GPUs: the nodes "
                "would go untainted, any pod taking them; set accelerator: nvidia"
            )
    return None
