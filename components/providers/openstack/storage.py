"""The openstack kind's storage: buckets on the cloud's S3 API (Ceph RGW or Swift's S3 layer),
made with an EC2-style credential of the deploying user in the site's project."""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from components.providers.base import BuildContext
from components.providers.object_lock import backup_locks
from components.providers.s3_compatible import S3CompatibleObjectStore
from fedeploy.config.openstack import OpenStackSite


def site_store(config: OpenStackSite, context: BuildContext) -> S3CompatibleObjectStore:
    """The deploying user's EC2 credential in the project and the site's buckets made with it."""
    name = context.name
    # EC2-style keys of the deploying user in this project: what the cloud's S3 API accepts.
    credential = openstack.identity.Ec2CredentialV3(
        f"{name}-s3-credential",
        region=config.region,
        opts=pulumi.ResourceOptions.merge(
            context.opts, pulumi.ResourceOptions(additional_secret_outputs=["secret"])
        ),
    )
    access: pulumi.Output[str] = credential.access
    secret: pulumi.Output[str] = pulumi.Output.secret(credential.secret)
    store = S3CompatibleObjectStore(
        f"{name}-storage",
        site=name,
        config=config.storage,
        tags=context.tags,
        credentials=(access, secret),
        object_locks=backup_locks(config.services.catalog, "openstack"),
        opts=context.opts,
    )
    return store
