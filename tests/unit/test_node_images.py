"""EKS node groups boot the AMI type their instance types need: arm64 for Graviton, never mixed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fedeploy.config.cluster import eks_ami_type, instance_architecture
from fedeploy.offline.engine import plan_stack

FIELD_CASE = Path(__file__).resolve().parent.parent / "stack_files" / "valid"


@pytest.mark.parametrize(
    ("instance_type", "architecture"),
    [
        ("m7g.large", "arm64"),
        ("c7gn.2xlarge", "arm64"),
        ("r8gd.xlarge", "arm64"),
        ("t4g.medium", "arm64"),
        ("g5g.xlarge", "arm64"),
        ("x2gd.large", "arm64"),
        ("im4gn.large", "arm64"),
        ("is4gen.medium", "arm64"),
        ("a1.large", "arm64"),
        ("m6i.xlarge", "x86_64"),
        ("m6a.large", "x86_64"),
        ("g5.xlarge", "x86_64"),
        ("g4dn.xlarge", "x86_64"),
        ("gr6.4xlarge", "x86_64"),
        ("p5.48xlarge", "x86_64"),
        ("m7i-flex.large", "x86_64"),
        ("inf2.xlarge", "x86_64"),
    ],
)
def test_instance_architecture(instance_type, architecture):
    assert instance_architecture(instance_type) == architecture


@pytest.mark.parametrize(
    ("types", "accelerator", "ami_type"),
    [
        (["m7g.large", "c7g.large"], "none", "AL2023_ARM_64_STANDARD"),
        (["g5g.xlarge"], "nvidia", "AL2023_ARM_64_NVIDIA"),
        (["m6i.large"], "none", "AL2023_x86_64_STANDARD"),
        (["g5.xlarge", "g6.xlarge"], "nvidia", "AL2023_x86_64_NVIDIA"),
    ],
)
def test_ami_type_follows_the_instance_types(types, accelerator, ami_type):
    assert eks_ami_type(types, accelerator) == ami_type


def test_a_group_mixing_architectures_is_refused():
    with pytest.raises(ValueError, match=r"mixes architectures \(m7g.large \(arm64\), m6i"):
        eks_ami_type(["m7g.large", "m6i.large"], "none")


def test_the_graviton_field_case_plans_with_an_arm64_ami(tmp_path):
    shutil.copy(FIELD_CASE / "Pulumi.aws-graviton.yaml", tmp_path)
    plan = plan_stack(tmp_path / "Pulumi.aws-graviton.yaml")
    (group,) = plan.by_type("aws:eks/nodeGroup:NodeGroup")
    assert group.inputs["amiType"] == "AL2023_ARM_64_STANDARD"
    assert group.inputs["instanceTypes"] == ["m7g.large"]
