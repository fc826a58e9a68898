"""How a vm bridge boots without a secret in its EC2 user data.

Any process on an EC2 instance can read the instance's user data from the metadata service,
so a job on the bridge VM could read a JWT signing key delivered there and sign a token for
root. Instead, each secret is an SSM Parameter Store SecureString (encrypted with the bridge's
own KMS key); the instance role may read exactly those parameters and decrypt only through
SSM; root reads them at first boot (`templates/bridge/fetch-secrets.py`), pipes them into
the setup script and drops the instance profile, so the role is gone from the instance; and an nftables rule loaded at every boot lets only root reach link-local
destinations (169.254.0.0/16, fe80::/10: wherever the metadata service answers) and EC2's IPv6
metadata address, so jobs cannot take the role's credentials either.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fedeploy.bridge.node_config import TEMPLATE_DIR, VM_PACKAGES, BridgeNode, render

SETUP_PATH = "/root/fedeploy-bridge/setup.sh"
FETCH_PATH = "/root/fedeploy-bridge/fetch-secrets.py"
GUARD_PATH = "/etc/fedeploy-imds-guard.nft"
GUARD_UNIT = "fedeploy-imds-guard.service"
# The tag naming the bridge instance of a site: the only instance whose profile its role drops.
BOOT_TAG = "fedeploy-bridge-of"
# boto3 for the fetch script (Debian's package: no pip on the node).
BOOT_PACKAGES = (*VM_PACKAGES, "python3-boto3")


def parameter_name(site: str, secret: str) -> str:
    """The SSM parameter of one bridge secret: `/fedeploy/<site>/bridge/<secret>`."""
    return f"/fedeploy/{site}/bridge/{secret}"


def instance_trust() -> dict[str, Any]:
    """The instance role's trust policy: EC2 only."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def instance_policy(parameter_arns: list[str], kms_key_arn: str, site: str) -> dict[str, Any]:
    """Read exactly the bridge's parameters; decrypt with its key only through SSM; and drop
    the instance profile of the bridge's own instance (tagged `BOOT_TAG: site`), which the fetch
    script does once it has read them, so the role is gone from the instance after first boot."""
    parts = kms_key_arn.split(":")
    region, account = (parts[3], parts[4]) if len(parts) >= 6 else ("", "")
    decrypt: dict[str, Any] = {
        "Sid": "DecryptThroughSsm",
        "Effect": "Allow",
        "Action": ["kms:Decrypt"],
        "Resource": [kms_key_arn],
    }
    if region:
        decrypt["Condition"] = {"StringEquals": {"kms:ViaService": f"ssm.{region}.amazonaws.com"}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadBridgeSecrets",
                "Effect": "Allow",
                "Action": ["ssm:GetParameter"],
                "Resource": sorted(parameter_arns),
            },
            decrypt,
            {
                # Has no resource-level permission: it only lists associations.
                "Sid": "FindOwnRoleAssociation",
                "Effect": "Allow",
                "Action": ["ec2:DescribeIamInstanceProfileAssociations"],
                "Resource": "*",
            },
            {
                "Sid": "DropOwnRole",
                "Effect": "Allow",
                "Action": ["ec2:DisassociateIamInstanceProfile"],
                "Resource": f"arn:aws:ec2:{region or '*'}:{account or '*'}:instance/*",
                "Condition": {"StringEquals": {f"ec2:ResourceTag/{BOOT_TAG}": site}},
            },
        ],
    }


@dataclass(frozen=True)
class _BootFile:
    path: str
    mode: str
    content_b64: str


def _file(path: str, mode: str, text: str) -> _BootFile:
    return _BootFile(path, mode, base64.b64encode(text.encode()).decode())


def boot_files(node: BridgeNode) -> list[_BootFile]:
    """The files every vm bridge writes at boot, whatever its cloud: the metadata guard (rules
    and unit) and the setup script."""
    return [
        _file(GUARD_PATH, "0644", render("imds-guard.nft.j2")),
        _file(
            f"/etc/systemd/system/{GUARD_UNIT}",
            "0644",
            render("fedeploy-imds-guard.service.j2", guard_path=GUARD_PATH),
        ),
        _file(SETUP_PATH, "0700", node.setup_script),
    ]


def boot_command(parameters: Mapping[str, str]) -> str:
    """The shell line root runs once: fetch the secrets and pipe them into the setup script."""
    pairs = " ".join(shlex.quote(f"{name}={parameters[name]}") for name in sorted(parameters))
    return f"set -o pipefail; python3 {shlex.quote(FETCH_PATH)} {pairs} | {shlex.quote(SETUP_PATH)}"


def vm_cloud_init(
    node: BridgeNode, parameters: Mapping[str, str], versions: Mapping[str, Any]
) -> str:
    """The cloud-config of a vm bridge: packages, the setup and fetch scripts, the metadata
    guard, and the boot command; `parameters` maps each of the node's secrets to its SSM
    parameter name, `versions` their versions (a new secret version changes the user data)."""
    missing = sorted(set(node.secret_names) - set(parameters))
    if missing:
        raise ValueError(f"bridge secrets without an SSM parameter: {', '.join(missing)}")
    needed = {name: parameters[name] for name in node.secret_names}
    files = [
        *boot_files(node),
        _file(FETCH_PATH, "0700", (TEMPLATE_DIR / "fetch-secrets.py").read_text()),
    ]
    return render(
        "cloud-init.yaml.j2",
        packages=BOOT_PACKAGES,
        files=files,
        guard_unit=GUARD_UNIT,
        setup_command=boot_command(needed),
        versions=" ".join(f"{k}={versions[k]}" for k in sorted(needed) if k in versions),
    )
