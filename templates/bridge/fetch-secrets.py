#!/usr/bin/python3
# Rendered by fedeploy from templates/bridge; the next deployment overwrites changes.
"""Reads the bridge's secrets from SSM Parameter Store with the instance role, as root at boot,
and writes them as the setup script's standard input ('<name><TAB><base64>' lines): they never
touch EC2 user data or the disk. Then the instance drops its own instance profile: from the end
of first boot on, no process on it (root included) can get the role that reads the secrets,
whatever reaches the metadata service. Arguments: <name>=<parameter> pairs, optionally
--region R and --instance-id I (both default to the metadata service's answers)."""

import base64
import json
import sys
import urllib.request

import boto3

METADATA = "http://169.254.169.254/latest"


def metadata(path: str) -> str:
    """One answer of the metadata service (IMDSv2: a session token first)."""
    ask = urllib.request.Request(
        f"{METADATA}/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
    )
    with urllib.request.urlopen(ask, timeout=5) as answer:
        token = answer.read().decode()
    ask = urllib.request.Request(f"{METADATA}/{path}", headers={"X-aws-ec2-metadata-token": token})
    with urllib.request.urlopen(ask, timeout=5) as answer:
        return str(answer.read().decode())


def drop_instance_profile(ec2, instance_id: str) -> int:
    """Disassociate every instance profile of this instance (ec2: a boto3 client); how many
    were dropped."""
    found = ec2.describe_iam_instance_profile_associations(
        Filters=[
            {"Name": "instance-id", "Values": [instance_id]},
            {"Name": "state", "Values": ["associated", "associating"]},
        ]
    )["IamInstanceProfileAssociations"]
    for association in found:
        ec2.disassociate_iam_instance_profile(AssociationId=association["AssociationId"])
    return len(found)


def main(argv: list[str]) -> int:
    options: dict[str, str] = {}
    while len(argv) > 1 and argv[0] in ("--region", "--instance-id"):
        options[argv[0]], argv = argv[1], argv[2:]
    pairs = [arg.split("=", 1) for arg in argv]
    if not pairs or any(len(pair) != 2 for pair in pairs):
        print(
            "usage: fetch-secrets.py [--region R] [--instance-id I] <name>=<parameter>...",
            file=sys.stderr,
        )
        return 2
    region = options.get("--region") or str(
        json.loads(metadata("dynamic/instance-identity/document"))["region"]
    )
    instance_id = options.get("--instance-id") or metadata("meta-data/instance-id")
    ssm = boto3.client("ssm", region_name=region)
    for name, parameter in pairs:
        answer = ssm.get_parameter(Name=parameter, WithDecryption=True)
        value = answer["Parameter"]["Value"].encode()
        sys.stdout.write(f"{name}\t{base64.b64encode(value).decode()}\n")
    sys.stdout.flush()
    dropped = drop_instance_profile(boto3.client("ec2", region_name=region), instance_id)
    if dropped == 0:
        print(f"no instance profile associated with {instance_id} to drop", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
