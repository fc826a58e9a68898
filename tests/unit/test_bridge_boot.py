"""A vm bridge's boot: its secrets come from SSM SecureStrings, read by root, piped to the setup;
the metadata service answers root only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fedeploy.bridge.node_config import TEMPLATE_DIR, render, secret_stdin
from fedeploy.bridge_boot import boot_command, instance_policy, parameter_name

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


def test_the_fetch_script_turns_securestrings_into_the_setup_scripts_stdin(ssm_endpoint):
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
    pairs = [f"{n}={parameter_name('hpc', n)}" for n in sorted(SECRETS)]
    result = subprocess.run(
        [sys.executable, str(FETCH), "--region", "eu-north-1", *pairs],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == secret_stdin(SECRETS)

    missing = subprocess.run(
        [sys.executable, str(FETCH), "--region", "eu-north-1", "jwt.key=/fedeploy/hpc/none"],
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
    policy = instance_policy(arns, "arn:aws:kms:eu-north-1:1:key/k")
    read, decrypt = policy["Statement"]
    assert read["Action"] == ["ssm:GetParameter"] and read["Resource"] == sorted(arns)
    assert decrypt["Action"] == ["kms:Decrypt"]
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": "ssm.eu-north-1.amazonaws.com"}
    }


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
