"""Static storage keys as a file: the AWS shared credentials file our pods mount.

On sites whose object store has static keys (kubernetes, openstack, ovh), the site's storage
Secret holds one key, `credentials`: an INI file in the format of `~/.aws/credentials` with a
`[default]` profile. The charts mount it read-only under `/etc/fedeploy/storage` and name it in
`AWS_SHARED_CREDENTIALS_FILE`, so boto3's default credential chain reads the keys from the file
and no container holds them in its environment (where `/proc/<pid>/environ`, crash reports and
child processes would see them).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pulumi

SECRET_KEY = "credentials"
# The site's own storage Secret (its static keys): every workload without a Secret of its own
# mounts it.
SITE_SECRET = "fedeploy-storage"
# The keys as earlier releases took them from the Secret (environment variables); kept so that
# their pods still start during an upgrade. Nothing of this release reads them.
LEGACY_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# Every variable through which boto3's default credential chain finds keys before or instead of
# the shared credentials file: a pod that reads the file must set none of them (the tests clear
# them to prove the keys come from the file).
OTHER_CREDENTIAL_SOURCES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
MOUNT_DIR = "/etc/fedeploy/storage"
FILE = f"{MOUNT_DIR}/{SECRET_KEY}"
PROFILE = "default"

# Access key ids and secret keys of AWS and the S3-compatible stores: printable, no spaces.
_KEY = re.compile(r"[\x21-\x7e]+")


def shared_credentials_file(access_key_id: str, secret_access_key: str) -> str:
    """The INI text of a shared credentials file holding one `[default]` profile.

    Raises ValueError naming the field (never its value) when a key is empty or holds a
    character outside printable ASCII, a space or a line break: such a value would end the INI
    line early or add a setting of its own.
    """
    for field, value in (
        ("access_key_id", access_key_id),
        ("secret_access_key", secret_access_key),
    ):
        if not _KEY.fullmatch(value):
            raise ValueError(
                f"storage {field}: empty or holds a space, line break or non-ASCII character; "
                "an S3 key is printable ASCII without spaces"
            )
    return (
        f"[{PROFILE}]\n"
        f"aws_access_key_id = {access_key_id}\n"
        f"aws_secret_access_key = {secret_access_key}\n"
    )


def storage_secret_data(
    access_key_id: pulumi.Input[str], secret_access_key: pulumi.Input[str]
) -> dict[str, pulumi.Input[str]]:
    """The string data of a site's storage Secret: `{"credentials": <INI text>}`, a secret
    Output built from the two keys once Pulumi knows them (`shared_credentials_file`), and the
    two keys under the names earlier releases read as environment variables (LEGACY_KEYS).

    Why the legacy keys stay: the Secret is updated before Helm rolls the pods, so a pod of the
    previous release that restarts in between (or that an atomic upgrade rolls back to) would
    fail on a missing key. No workload of this release reads them (a chart test proves it);
    they go once no deployed release can read them."""
    import pulumi

    text = pulumi.Output.all(access_key_id, secret_access_key).apply(
        lambda keys: shared_credentials_file(keys[0], keys[1])
    )
    return {
        SECRET_KEY: pulumi.Output.secret(text),
        LEGACY_KEYS[0]: pulumi.Output.secret(access_key_id),
        LEGACY_KEYS[1]: pulumi.Output.secret(secret_access_key),
    }
