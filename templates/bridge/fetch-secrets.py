#!/usr/bin/python3
# Rendered by fedeploy from templates/bridge; the next deployment overwrites changes.
"""Reads the bridge's secrets from SSM Parameter Store with the instance role, as root at boot,
and writes them as the setup script's standard input ('<name><TAB><base64>' lines): they never
touch EC2 user data or the disk. Arguments: <name>=<parameter> pairs, optionally --region R."""

import base64
import json
import sys
import urllib.request

import boto3

METADATA = "http://169.254.169.254/latest"


def instance_region() -> str:
    """The region, from the metadata service (IMDSv2: a session token first)."""
    ask = urllib.request.Request(
        f"{METADATA}/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
    )
    with urllib.request.urlopen(ask, timeout=5) as answer:
        token = answer.read().decode()
    ask = urllib.request.Request(
        f"{METADATA}/dynamic/instance-identity/document",
        headers={"X-aws-ec2-metadata-token": token},
    )
    with urllib.request.urlopen(ask, timeout=5) as answer:
        return str(json.load(answer)["region"])


def main(argv: list[str]) -> int:
    region = None
    if len(argv) > 1 and argv[0] == "--region":
        region, argv = argv[1], argv[2:]
    pairs = [arg.split("=", 1) for arg in argv]
    if not pairs or any(len(pair) != 2 for pair in pairs):
        print("usage: fetch-secrets.py [--region R] <name>=<parameter>...", file=sys.stderr)
        return 2
    ssm = boto3.client("ssm", region_name=region or instance_region())
    for name, parameter in pairs:
        answer = ssm.get_parameter(Name=parameter, WithDecryption=True)
        value = answer["Parameter"]["Value"].encode()
        sys.stdout.write(f"{name}\t{base64.b64encode(value).decode()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
