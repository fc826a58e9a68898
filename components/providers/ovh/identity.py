"""The ovh kind's workload identities: the catalog's backups get an S3 user of their own whose
policy admits only the backup prefix (write, read for a restore, delete for retention), like the
`catalog-backup` role of aws sites; the other workloads keep the site's S3 user."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_ovh as ovh

from components.providers.base import BuildContext, StaticCredentials
from fedeploy.config.ovh import OvhSite
from fedeploy.naming import bucket_name
from fedeploy.openstack_storage import storage_workloads
from fedeploy.values.workload_access import (
    CATALOG_BACKUP_SERVICE_ACCOUNT,
    WorkloadAccess,
    workload_policy,
)


def prefix_user_policy(bucket: str, access: WorkloadAccess) -> dict[str, Any]:
    """The OVHcloud S3 policy (a dict, the shape of the site user's: statements only) granting
    `access` on one physical bucket: `workload_policy`'s statements."""
    document = workload_policy(access, [f"arn:aws:s3:::{bucket}"], None)
    return {"Statement": document["Statement"]}


def backup_identity(
    config: OvhSite, context: BuildContext, after: list[pulumi.Resource]
) -> dict[str, StaticCredentials]:
    """The catalog-backup workload's S3 user (objectstore_operator, limited by its policy to the
    backup prefix), its policy and its credential, by workload; empty when the site keeps no
    catalog backups. `after`: what must exist first (the bucket)."""
    found = storage_workloads(config.services).get(CATALOG_BACKUP_SERVICE_ACCOUNT)
    if found is None:
        return {}
    logical, access = found
    name = context.name
    workload = CATALOG_BACKUP_SERVICE_ACCOUNT
    bucket = bucket_name(config.storage.bucket_prefix, name, logical)
    user = ovh.cloudproject.User(
        f"{name}-{workload}-s3-user",
        service_name=config.project_id,
        description=f"fedeploy {name}: catalog backups, under their prefix only",
        role_names=["objectstore_operator"],
        opts=context.opts,
    )
    policy = ovh.cloudproject.S3Policy(
        f"{name}-{workload}-s3-policy",
        service_name=config.project_id,
        user_id=user.id,
        policy=pulumi.Output.json_dumps(prefix_user_policy(bucket, access)),
        opts=context.opts,
    )
    credential = ovh.cloudproject.S3Credential(
        f"{name}-{workload}-s3-credential",
        service_name=config.project_id,
        user_id=user.id,
        opts=pulumi.ResourceOptions.merge(
            context.opts,
            pulumi.ResourceOptions(
                additional_secret_outputs=["secretAccessKey"], depends_on=[policy, *after]
            ),
        ),
    )
    return {
        workload: StaticCredentials(
            credential.access_key_id, pulumi.Output.secret(credential.secret_access_key)
        )
    }
