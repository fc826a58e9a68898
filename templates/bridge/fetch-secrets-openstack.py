#!/usr/bin/python3
# Rendered by fedeploy from templates/bridge; the next deployment overwrites changes.
"""Reads the bridge's secrets from Barbican with the instance's application credential, as root
at first boot, and writes them as the setup script's standard input ('<name><TAB><base64>'
lines); then deletes the credential file. The credential (root-only file, short expiry) may
only GET these secrets' payloads. Arguments: <credential.json> <name>=<secret ref>..."""

import base64
import json
import os
import sys
import urllib.request


def token(credential: dict[str, str]) -> str:
    """A Keystone token for the application credential."""
    body = {
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": {
                    "id": credential["id"],
                    "secret": credential["secret"],
                },
            }
        }
    }
    ask = urllib.request.Request(
        credential["auth_url"].rstrip("/") + "/auth/tokens",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(ask, timeout=30) as answer:
        return str(answer.headers["X-Subject-Token"])


def payload(ref: str, subject: str) -> bytes:
    ask = urllib.request.Request(
        ref.rstrip("/") + "/payload",
        headers={"X-Auth-Token": subject, "Accept": "text/plain"},
    )
    with urllib.request.urlopen(ask, timeout=30) as answer:
        return bytes(answer.read())


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any("=" not in arg for arg in argv[1:]):
        print(
            "usage: fetch-secrets-openstack.py <credential.json> <name>=<ref>...", file=sys.stderr
        )
        return 2
    path = argv[0]
    with open(path, encoding="utf-8") as handle:
        credential = json.load(handle)
    try:
        subject = token(credential)
        for name, ref in (arg.split("=", 1) for arg in argv[1:]):
            value = payload(ref, subject)
            sys.stdout.write(f"{name}\t{base64.b64encode(value).decode()}\n")
    finally:
        os.remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
