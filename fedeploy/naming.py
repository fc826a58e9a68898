"""Physical names derived from the site and logical names: valid, stable from run to run."""

from __future__ import annotations

import re

_S3_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def bucket_name(prefix: str, site: str, bucket: str) -> str:
    """The S3 bucket name of a logical bucket: `<prefix>-<site>-<bucket>`, at most 63 characters."""
    name = f"{prefix}-{site}-{bucket}"
    if not _S3_NAME.match(name) or "--" in name:
        raise ValueError(f"{name!r} is not a valid S3 bucket name")
    return name


def resource_name(site: str, *parts: str) -> str:
    """A Pulumi logical name under the site, e.g. `aws-frankfurt-raw-versioning`."""
    return "-".join([site, *parts])
