"""Object lock on a site's bucket: the S3 default retention that keeps every object version from
deletion, the deleting workload's own credentials included (docs/operations.md, Backups).

AWS S3 turns it on for an existing versioned bucket through the configuration alone; Ceph RGW
(openstack) and OVHcloud's S3 only for a bucket created with it (`object_lock_enabled`).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from fedeploy.config.services import CatalogService


def backup_locks(catalog: CatalogService, kind: str) -> dict[str, tuple[str, int]]:
    """{logical bucket: (GOVERNANCE|COMPLIANCE, days)} the site's catalog backups ask for: only
    an in-cluster database's backups, which live in the site's own bucket."""
    if catalog.database != "internal":
        return {}
    return catalog.backup.locked_bucket(kind)


def lock_bucket(
    name: str,
    bucket: pulumi.Input[str],
    lock: tuple[str, int],
    opts: pulumi.ResourceOptions,
) -> aws.s3.BucketObjectLockConfiguration:
    """The bucket's default retention: `lock` is (mode, days); the bucket must be versioned."""
    mode, days = lock
    return aws.s3.BucketObjectLockConfiguration(
        name,
        bucket=bucket,
        object_lock_enabled="Enabled",
        rule={"default_retention": {"mode": mode, "days": days}},
        opts=opts,
    )
