"""How a vm bridge boots on OpenStack without its secrets in the instance's user data.

OpenStack has no instance role, so the instance gets a credential of its own: each secret is a
Barbican secret; an application credential may only GET those secrets' payloads (Keystone access
rules) and expires `boot_window_minutes` after it is created (the boot window: Nova's boot,
the packages, then the fetch). That credential (never the secrets) is written by cloud-init to
a root-only file (0600); root's fetch script (`templates/bridge/fetch-secrets-openstack.py`)
pipes the secrets into the setup script and then removes every copy of the credential on the
instance (the file, cloud-init's copies of the user data) and revokes the token it used. The
user data is root-only too: the same nftables rule as on AWS, enabled before the fetch, lets
only root reach link-local addresses (Nova's metadata at 169.254.169.254 and fe80::a9fe:a9fe),
no config drive is attached, and cloud-init keeps its copy mode 0600.

Why it is not deleted at first boot, as AWS's role is dropped: Keystone refuses a restricted
application credential any change to application credentials, itself included
(`--unrestricted` would allow it, and also creating new credentials without access rules, which
Keystone's own API does not check: wider than the job). So the credential is gone by expiry:
after the boot window a copy of the user data opens nothing, and within it only root reads it.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from fedeploy.bridge.node_config import TEMPLATE_DIR, VM_PACKAGES, BridgeNode, render
from fedeploy.bridge_boot import GUARD_UNIT, SETUP_PATH, _file, boot_files

FETCH_PATH = "/root/fedeploy-bridge/fetch-secrets-openstack.py"
CREDENTIAL_PATH = "/root/fedeploy-bridge/credential.json"
BARBICAN_SERVICE = "key-manager"
_SECRET_REF = re.compile(r"^https?://[^\s]+/v1/secrets/([0-9a-fA-F-]{36})/?$")


def secret_uuid(ref: str) -> str:
    """The UUID of a Barbican secret from its reference URL (`.../v1/secrets/<uuid>`);
    ValueError for anything else."""
    match = _SECRET_REF.match(ref)
    if match is None:
        raise ValueError(f"{ref!r} is not a Barbican secret reference (.../v1/secrets/<uuid>)")
    return match.group(1)


def access_rules(secret_refs: Mapping[str, str]) -> list[dict[str, str]]:
    """Keystone access rules admitting exactly GET of each secret's payload, sorted by path."""
    paths = sorted({f"/v1/secrets/{secret_uuid(ref)}/payload" for ref in secret_refs.values()})
    return [{"service": BARBICAN_SERVICE, "method": "GET", "path": path} for path in paths]


def credential_expiry(now: datetime, minutes: int) -> str:
    """When the boot credential expires: `minutes` (the boot window) after `now`, rounded up to
    the minute, as Keystone's ISO 8601 UTC text. ValueError for a naive `now` or a window
    outside 1 to 1440 minutes."""
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    if not 1 <= minutes <= 1440:
        raise ValueError(f"boot window of {minutes} minutes: expected 1 to 1440")
    start = now.astimezone(UTC).replace(second=0, microsecond=0)
    if start < now:
        start += timedelta(minutes=1)
    return (start + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def credential_key(config_json: str, cidrs: Iterable[str]) -> str:
    """Eight hex digits naming the boot credential: a digest of the bridge's configuration
    (without its secrets), its admitted ranges and the bridge templates. A change to any of them
    re-creates the instance, and so creates a new credential with a fresh expiry."""
    blob = hashlib.sha256(config_json.encode())
    blob.update("\n".join(sorted(cidrs)).encode())
    for path in sorted(TEMPLATE_DIR.iterdir()):
        if path.is_file():
            blob.update(path.name.encode() + b"\0" + path.read_bytes())
    return blob.hexdigest()[:8]


def boot_command(secret_refs: Mapping[str, str]) -> str:
    """The shell line root runs once: fetch the secrets and pipe them into the setup script."""
    pairs = " ".join(shlex.quote(f"{n}={secret_refs[n]}") for n in sorted(secret_refs))
    return (
        f"set -o pipefail; python3 {shlex.quote(FETCH_PATH)} {shlex.quote(CREDENTIAL_PATH)} "
        f"{pairs} | {shlex.quote(SETUP_PATH)}"
    )


def openstack_cloud_init(
    node: BridgeNode,
    secret_refs: Mapping[str, str],
    credential: Mapping[str, str],
) -> str:
    """The cloud-config of a vm bridge on OpenStack: packages, the setup and fetch scripts, the
    metadata guard, the credential file (0600) and the boot command. `secret_refs` maps each of
    the node's secrets to its Barbican reference; `credential` has `id`, `secret`, `auth_url`."""
    missing = sorted(set(node.secret_names) - set(secret_refs))
    if missing:
        raise ValueError(f"bridge secrets without a Barbican secret: {', '.join(missing)}")
    absent = sorted({"id", "secret", "auth_url"} - set(credential))
    if absent:
        raise ValueError(f"the boot credential lacks {', '.join(absent)}")
    needed = {name: secret_refs[name] for name in node.secret_names}
    files = [
        *boot_files(node),
        _file(FETCH_PATH, "0700", (TEMPLATE_DIR / "fetch-secrets-openstack.py").read_text()),
        _file(
            CREDENTIAL_PATH,
            "0600",
            json.dumps({k: credential[k] for k in ("id", "secret", "auth_url")}, sort_keys=True),
        ),
    ]
    return render(
        "cloud-init.yaml.j2",
        packages=VM_PACKAGES,
        files=files,
        guard_unit=GUARD_UNIT,
        setup_command=boot_command(needed),
        versions="(Barbican secrets are immutable: a new value is a new secret)",
    )
