"""The ovh kind's storage: an S3 user scoped to the site's buckets by its policy, its keys, and
the buckets on OVHcloud's S3 endpoint made with them."""

from __future__ import annotations

import pulumi
import pulumi_ovh as ovh

from components.providers.base import BuildContext
from components.providers.object_lock import backup_locks
from components.providers.s3_compatible import S3CompatibleObjectStore
from fedeploy.config.ovh import OvhSite
from fedeploy.naming import bucket_name
from fedeploy.s3_user_policy import site_user_policy


def site_store(config: OvhSite, context: BuildContext) -> S3CompatibleObjectStore:
    """The S3 user (objectstore_operator, limited to the site's buckets), its credential and the
    buckets, made only once the user's policy is in place."""
    name = context.name
    storage = config.storage
    physical = [bucket_name(storage.bucket_prefix, name, b) for b in sorted(storage.buckets)]
    user = ovh.cloudproject.User(
        f"{name}-s3-user",
        service_name=config.project_id,
        description=f"fedeploy {name}: object storage of the site's services",
        role_names=["objectstore_operator"],
        opts=context.opts,
    )
    credential = ovh.cloudproject.S3Credential(
        f"{name}-s3-credential",
        service_name=config.project_id,
        user_id=user.id,
        opts=pulumi.ResourceOptions.merge(
            context.opts, pulumi.ResourceOptions(additional_secret_outputs=["secretAccessKey"])
        ),
    )
    policy = ovh.cloudproject.S3Policy(
        f"{name}-s3-policy",
        service_name=config.project_id,
        user_id=user.id,
        policy=pulumi.Output.json_dumps(site_user_policy(physical)),
        opts=context.opts,
    )
    access: pulumi.Output[str] = credential.access_key_id
    secret: pulumi.Output[str] = pulumi.Output.secret(credential.secret_access_key)
    store = S3CompatibleObjectStore(
        f"{name}-storage",
        site=name,
        config=storage,
        tags=context.tags,
        credentials=(access, secret),
        object_locks=backup_locks(config.services.catalog, "ovh"),
        # The user may touch the buckets only once its policy is in place.
        opts=pulumi.ResourceOptions.merge(
            context.opts, pulumi.ResourceOptions(depends_on=[policy])
        ),
    )
    return store
