"""A vm bridge's boot: its secrets come from SSM SecureStrings, read by root, piped to the setup;
the metadata service answers root only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fedeploy.bridge.node_config import TEMPLATE_DIR, render, secret_stdin
from fedeploy.bridge_boot import (
    BOOT_TAG,
    boot_command,
    instance_policy,
    instance_trust,
    parameter_name,
)

FETCH = TEMPLATE_DIR / "fetch-secrets.py"
SECRETS = {"jwt.key": "k" * 64, "tls.key": "-----BEGIN PRIVATE KEY-----\nx\n", "ca.crt": "A"}


@pytest.fixture
def ssm_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _bridge_instance(endpoint: str) -> str:
    """An instance with the bridge's instance profile associated, as EC2 starts it."""
    import boto3

    iam = boto3.client("iam", region_name="eu-north-1", endpoint_url=endpoint, **_keys())
    iam.create_role(RoleName="bridge", AssumeRolePolicyDocument=json.dumps(instance_trust()))
    iam.create_instance_profile(InstanceProfileName="bridge")
    iam.add_role_to_instance_profile(InstanceProfileName="bridge", RoleName="bridge")
    ec2 = boto3.client("ec2", region_name="eu-north-1", endpoint_url=endpoint, **_keys())
    (instance,) = ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, IamInstanceProfile={"Name": "bridge"}
    )["Instances"]
    return str(instance["InstanceId"])


def _associated(endpoint: str, instance_id: str) -> list[str]:
    import boto3

    ec2 = boto3.client("ec2", region_name="eu-north-1", endpoint_url=endpoint, **_keys())
    found = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["IamInstanceProfileAssociations"]
    return [a["AssociationId"] for a in found if a["State"] in ("associated", "associating")]


def test_the_fetch_script_turns_securestrings_into_the_setup_scripts_stdin_then_drops_the_role(
    ssm_endpoint,
):
    import boto3

    env = {
        "PATH": os.environ["PATH"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": ssm_endpoint,
        "AWS_CONFIG_FILE": "/nonexistent",
    }
    kms = boto3.client("kms", region_name="eu-north-1", endpoint_url=ssm_endpoint, **_keys())
    key = kms.create_key()["KeyMetadata"]["Arn"]
    ssm = boto3.client("ssm", region_name="eu-north-1", endpoint_url=ssm_endpoint, **_keys())
    for name, value in SECRETS.items():
        ssm.put_parameter(
            Name=parameter_name("hpc", name), Value=value, Type="SecureString", KeyId=key
        )
    instance = _bridge_instance(ssm_endpoint)
    assert _associated(ssm_endpoint, instance)
    pairs = [f"{n}={parameter_name('hpc', n)}" for n in sorted(SECRETS)]
    fetch = [sys.executable, str(FETCH), "--region", "eu-north-1", "--instance-id", instance]
    result = subprocess.run([*fetch, *pairs], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == secret_stdin(SECRETS)
    # The role that read them is gone from the instance: nothing on it can get it again.
    assert _associated(ssm_endpoint, instance) == []

    # A second run finds no role to drop (and could read nothing on EC2): it fails, loudly.
    again = subprocess.run([*fetch, *pairs], capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode != 0 and "no instance profile associated" in again.stderr

    missing = subprocess.run(
        [*fetch, "jwt.key=/fedeploy/hpc/none"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert missing.returncode != 0 and "ParameterNotFound" in missing.stderr
    assert "k" * 64 not in missing.stderr


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def test_the_boot_command_quotes_every_parameter_and_fails_when_the_fetch_fails():
    command = boot_command({"jwt.key": "/fedeploy/a b/bridge/jwt.key"})
    assert command.startswith("set -o pipefail; ")
    assert "'jwt.key=/fedeploy/a b/bridge/jwt.key'" in command


def test_the_instance_reads_only_its_parameters_and_decrypts_only_through_ssm():
    arns = [f"arn:aws:ssm:eu-north-1:1:parameter/fedeploy/hpc/bridge/{n}" for n in SECRETS]
    policy = instance_policy(arns, "arn:aws:kms:eu-north-1:1:key/k", "hpc")
    read, decrypt, find, drop = policy["Statement"]
    assert read["Action"] == ["ssm:GetParameter"] and read["Resource"] == sorted(arns)
    assert decrypt["Action"] == ["kms:Decrypt"]
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": "ssm.eu-north-1.amazonaws.com"}
    }
    # After first boot the instance drops its own profile, and no other instance's.
    assert find["Action"] == ["ec2:DescribeIamInstanceProfileAssociations"]
    assert drop["Action"] == ["ec2:DisassociateIamInstanceProfile"]
    assert drop["Resource"] == "arn:aws:ec2:eu-north-1:1:instance/*"
    assert drop["Condition"] == {"StringEquals": {f"ec2:ResourceTag/{BOOT_TAG}": "hpc"}}


def test_the_metadata_guard_passes_nft_check(tmp_path):
    nft = shutil.which("nft")
    if nft is None or os.geteuid() != 0:
        if os.environ.get("FEDEPLOY_REQUIRE_INTEGRATION") == "1" and nft is None:
            pytest.fail("nft is required (FEDEPLOY_REQUIRE_INTEGRATION=1)")
        pytest.skip("nft -c needs nft and root")
    path = tmp_path / "guard.nft"
    path.write_text(render("imds-guard.nft.j2"))
    result = subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "meta skuid != 0" in path.read_text()
