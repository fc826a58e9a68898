"""The ovh kind's storage: the site's S3 user (`identity.s3_user`), scoped to the site's buckets
by its policy, and the buckets on OVHcloud's S3 endpoint made with its keys."""

from __future__ import annotations

import pulumi

from components.providers.base import BuildContext
from components.providers.object_lock import backup_locks
from components.providers.ovh.identity import s3_user
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
    site_user = s3_user(
        name,
        config,
        context,
        f"fedeploy {name}: object storage of the site's services",
        site_user_policy(physical),
    )
    access, secret = site_user.keys.access_key_id, site_user.keys.secret_access_key
    store = S3CompatibleObjectStore(
        f"{name}-storage",
        site=name,
        config=storage,
        tags=context.tags,
        credentials=(access, secret),
        object_locks=backup_locks(config.services.catalog, "ovh"),
        # The user may touch the buckets only once its policy is in place.
        opts=pulumi.ResourceOptions.merge(
            context.opts, pulumi.ResourceOptions(depends_on=[site_user.policy])
        ),
    )
    return store
