#!/usr/bin/python3
# Rendered by fedeploy from templates/bridge; the next deployment overwrites changes.
"""Reads the bridge's secrets from Barbican with the instance's application credential, as root
at first boot, and writes them as the setup script's standard input ('<name><TAB><base64>'
lines); then, fetched or not, removes every copy of the credential on the instance (the file,
cloud-init's copies of the user data) and revokes the token it used. The credential (root-only,
expiring at the end of the boot window) may only GET these secrets' payloads.
Arguments: <credential.json> <name>=<secret ref>..."""

import base64
import contextlib
import glob
import json
import os
import sys
import urllib.request

# Where cloud-init keeps the user data it read (mode 0600), the credential in it.
CLOUD_DIR = os.environ.get("FEDEPLOY_CLOUD_INIT_DIR", "/var/lib/cloud")
USER_DATA_COPIES = ("instance/user-data.txt*", "instances/*/user-data.txt*")


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


def revoke(credential: dict[str, str], subject: str) -> None:
    """Revoke the token (a token may revoke itself); a failure is only reported."""
    ask = urllib.request.Request(
        credential["auth_url"].rstrip("/") + "/auth/tokens",
        method="DELETE",
        headers={"X-Auth-Token": subject, "X-Subject-Token": subject},
    )
    try:
        with urllib.request.urlopen(ask, timeout=30):
            pass
    except OSError as failure:
        print(f"fetch-secrets: could not revoke the boot token: {failure}", file=sys.stderr)


def forget(path: str) -> None:
    """Remove the credential file and cloud-init's copies of the user data."""
    copies = [
        p for pattern in USER_DATA_COPIES for p in glob.glob(os.path.join(CLOUD_DIR, pattern))
    ]
    for copy in [path, *sorted(copies)]:
        with contextlib.suppress(FileNotFoundError):
            os.remove(copy)


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
    subject = None
    try:
        subject = token(credential)
        for name, ref in (arg.split("=", 1) for arg in argv[1:]):
            value = payload(ref, subject)
            sys.stdout.write(f"{name}\t{base64.b64encode(value).decode()}\n")
        sys.stdout.flush()
    finally:
        # After the fetch, and whatever became of it: no copy of the credential stays here.
        forget(path)
        if subject is not None:
            revoke(credential, subject)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
