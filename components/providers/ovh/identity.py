"""The ovh kind's S3 users: one shape (`s3_user`: an objectstore_operator user, the S3 policy
that limits it, its credential) for the site's own user, which makes the buckets and whose keys
stay in Pulumi's state, and for each workload's user (`workload_identities`), whose policy
grants `workload_policy`'s statements on its prefixes only, like the per-workload roles of aws
sites and Keystone projects of openstack sites with `workload_identities`: the asset endpoint
reads, ingestion and inference reach their prefixes, the catalog's backups theirs; no pod holds
a user that may change a bucket's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_ovh as ovh

from components.providers.base import BuildContext, StaticCredentials
from fedeploy.config.ovh import OvhSite
from fedeploy.naming import bucket_name
from fedeploy.openstack_storage import storage_workloads
from fedeploy.values.workload_access import WorkloadAccess, workload_policy


def prefix_user_policy(bucket: str, access: WorkloadAccess) -> dict[str, Any]:
    """The OVHcloud S3 policy (a dict, the shape of the site user's: statements only) granting
    `access` on one physical bucket: `workload_policy`'s statements."""
    document = workload_policy(access, [f"arn:aws:s3:::{bucket}"], None)
    return {"Statement": document["Statement"]}


@dataclass(frozen=True)
class S3User:
    """An OVHcloud S3 user, the policy that limits it and its credential."""

    user: ovh.cloudproject.User
    policy: ovh.cloudproject.S3Policy
    credential: ovh.cloudproject.S3Credential

    @property
    def keys(self) -> StaticCredentials:
        """The credential's keys, the secret one as a secret Output."""
        return StaticCredentials(
            self.credential.access_key_id, pulumi.Output.secret(self.credential.secret_access_key)
        )


def s3_user(
    stem: str,
    config: OvhSite,
    context: BuildContext,
    description: str,
    policy: dict[str, Any],
    after: list[pulumi.Resource] | None = None,
) -> S3User:
    """An objectstore_operator user `<stem>-s3-user` limited by `policy` (`<stem>-s3-policy`) and
    its credential `<stem>-s3-credential`, made once the policy is in place (and `after`), so
    the keys never hold more than the policy grants."""
    user = ovh.cloudproject.User(
        f"{stem}-s3-user",
        service_name=config.project_id,
        description=description,
        role_names=["objectstore_operator"],
        opts=context.opts,
    )
    attached = ovh.cloudproject.S3Policy(
        f"{stem}-s3-policy",
        service_name=config.project_id,
        user_id=user.id,
        policy=pulumi.Output.json_dumps(policy),
        opts=context.opts,
    )
    credential = ovh.cloudproject.S3Credential(
        f"{stem}-s3-credential",
        service_name=config.project_id,
        user_id=user.id,
        opts=pulumi.ResourceOptions.merge(
            context.opts,
            pulumi.ResourceOptions(
                additional_secret_outputs=["secretAccessKey"],
                depends_on=[attached, *(after or [])],
            ),
        ),
    )
    return S3User(user, attached, credential)


def workload_identities(
    config: OvhSite, context: BuildContext, after: list[pulumi.Resource]
) -> dict[str, StaticCredentials]:
    """Per workload that uses the store (`storage_workloads`: ingestion, inference, the asset
    endpoint, the catalog's backups), an S3 user whose policy grants its prefixes of its one
    bucket only; its keys by workload. `after`: what must exist first (the buckets)."""
    name = context.name
    keys: dict[str, StaticCredentials] = {}
    for workload, (logical, access) in sorted(storage_workloads(config.services).items()):
        bucket = bucket_name(config.storage.bucket_prefix, name, logical)
        keys[workload] = s3_user(
            f"{name}-{workload}",
            config,
            context,
            f"fedeploy {name}: storage of {workload}, under its prefixes only",
            prefix_user_policy(bucket, access),
            after,
        ).keys
    return keys
