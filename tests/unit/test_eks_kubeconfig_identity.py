"""An aws site's kubeconfig asks `aws eks get-token` for the identity its AWS provider deploys
with (`aws:profile`, `aws:assumeRoles`): the cluster's creator, its only admin. Without it,
`pulumi up` reached the cluster as another principal and every chart install was Unauthorized."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import components.providers.aws.cluster as kubernetes_cluster
from fedeploy.errors import FedeployError
from fedeploy.kubeconfig import AwsIdentity, OperatorIdentityError, operator_identity
from fedeploy.offline.engine import plan_stack
from tests.conftest import STACKS

FIELD_CASE = Path(__file__).resolve().parent.parent / "stack_files" / "valid"
ROLE = "arn:aws:iam::111122223333:role/fedeploy-deploy"


def _planned_get_token_args(stack_file: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The `aws eks get-token` arguments of every kubeconfig the stack's program writes (the
    kubeconfig is a secret output, so the test reads it where it is made)."""
    written: list[str] = []
    real = kubernetes_cluster.eks_kubeconfig

    def record(**kwargs: Any) -> str:
        written.append(real(**kwargs))
        return written[-1]

    monkeypatch.setattr(kubernetes_cluster, "eks_kubeconfig", record)
    plan_stack(stack_file)
    return [yaml.safe_load(k)["users"][0]["user"]["exec"]["args"] for k in written]


def test_a_stack_with_a_profile_and_a_role_gets_a_kubeconfig_with_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(FIELD_CASE / "Pulumi.aws-operator-role.yaml", tmp_path)
    (args,) = _planned_get_token_args(tmp_path / "Pulumi.aws-operator-role.yaml", monkeypatch)
    assert args == [
        "eks",
        "get-token",
        "--cluster-name",
        "aws-operator-role-cluster",
        "--region",
        "eu-central-1",
        "--profile",
        "eofed-operator",
        "--role-arn",
        ROLE,
    ]


def test_a_stack_without_them_keeps_the_callers_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    (args,) = _planned_get_token_args(STACKS / "Pulumi.aws-dublin.yaml", monkeypatch)
    assert "--profile" not in args and "--role-arn" not in args


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, AwsIdentity()),
        ({"profile": "ops"}, AwsIdentity(profile="ops")),
        ({"assumeRoles": [{"roleArn": ROLE}]}, AwsIdentity(role_arn=ROLE)),
        (
            {"profile": "ops", "assumeRoles": [{"roleArn": ROLE, "sessionName": "up"}]},
            AwsIdentity(profile="ops", role_arn=ROLE),
        ),
    ],
)
def test_the_identity_of_the_provider_config(config: dict[str, Any], expected: AwsIdentity) -> None:
    assert operator_identity(config) == expected


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"assumeRole": {"roleArn": ROLE}}, ["config.aws:assumeRole", "aws:assumeRoles"]),
        (
            {"assumeRoles": [{"roleArn": ROLE}, {"roleArn": ROLE + "-2"}]},
            ["config.aws:assumeRoles", "chain of 2 roles", "aws:profile"],
        ),
        (
            {"assumeRoles": [{"roleArn": ROLE, "externalId": "x"}]},
            ["config.aws:assumeRoles[0]", "externalId", "AWS CLI profile"],
        ),
        ({"assumeRoles": [{"sessionName": "s"}]}, ["assumeRoles[0].roleArn", "None"]),
        ({"assumeRoles": {"roleArn": ROLE}}, ["config.aws:assumeRoles", "must be a list"]),
        ({"profile": " "}, ["config.aws:profile"]),
    ],
)
def test_settings_get_token_cannot_follow_are_refused_by_name(
    config: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(OperatorIdentityError) as raised:
        operator_identity(config)
    assert isinstance(raised.value, FedeployError)
    for word in words:
        assert word in str(raised.value)


def test_the_plan_refuses_pulumi_aws_6s_assume_role_key(tmp_path: Path) -> None:
    text = (FIELD_CASE / "Pulumi.aws-operator-role.yaml").read_text()
    text = text.replace("  aws:assumeRoles:\n  - roleArn:", "  aws:assumeRole:\n    roleArn:")
    text = text.replace("    sessionName: fedeploy-up\n", "")
    (tmp_path / "Pulumi.aws-operator-role.yaml").write_text(text)
    with pytest.raises(FedeployError, match=r"config\.aws:assumeRole: pulumi-aws 7 ignores it"):
        plan_stack(tmp_path / "Pulumi.aws-operator-role.yaml")
