"""The openstack kind's workload identities: per workload a Keystone project, user and EC2
credential, and per bucket a policy granting each workload its prefixes.

What the deploying identity needs: Keystone's `manager` role on the domain (the domain manager
persona of Keystone 26, OpenStack 2024.2): it may create projects and users in its domain and
grant them the `member`, `reader` or `manager` role, nothing above. It may not create an EC2
credential for another user (`identity:ec2_create_credential` is the credential's owner or a
system admin), so each workload user, with a random password only Pulumi's state holds, signs in
through a provider of its own, scoped to its own project, and creates its own. Keystone checks
the manager role on a domain-scoped token, which the site's own (project-scoped) provider does
not hold: with `manager_cloud` the projects, users and grants go through a provider signed in
from that clouds.yaml entry instead."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_openstack as openstack
import pulumi_random as random

from components.providers.base import BuildContext, StaticCredentials
from components.providers.openstack.network import tag_list
from components.providers.s3_compatible import S3CompatibleObjectStore
from fedeploy.config.openstack import OpenStackSite, WorkloadIdentities
from fedeploy.naming import bucket_name
from fedeploy.openstack_storage import rgw_principal, storage_workloads, workload_bucket_policy


def workload_identities(
    config: OpenStackSite,
    identities: WorkloadIdentities,
    store: S3CompatibleObjectStore,
    context: BuildContext,
) -> dict[str, StaticCredentials]:
    """Per workload: a Keystone project holding nothing, a user with the object-store role on
    it alone, and that user's EC2 credential, which the user creates itself (module docstring);
    per bucket, a policy granting each workload its prefixes (fedeploy/openstack_storage.py).
    Returns the keys by workload."""
    name = context.name
    secret_opts = pulumi.ResourceOptions.merge(
        context.opts, pulumi.ResourceOptions(additional_secret_outputs=["secret"])
    )
    workloads = storage_workloads(config.services)
    # Projects, users and grants: the domain manager's (domain-scoped) sign-in where given.
    managing = context.opts
    if identities.manager_cloud is not None:
        manager = openstack.Provider(
            f"{name}-domain-manager",
            cloud=identities.manager_cloud,
            region=config.region,
            opts=context.opts,
        )
        managing = pulumi.ResourceOptions.merge(
            context.opts, pulumi.ResourceOptions(provider=manager)
        )
    keys: dict[str, StaticCredentials] = {}
    principals: dict[str, pulumi.Output[str]] = {}
    for workload in sorted(workloads):
        label = f"fedeploy-{name}-{workload}"
        purpose = f"fedeploy {name}: storage identity of {workload} (holds no resources)"
        project = openstack.identity.Project(
            f"{name}-{workload}-project",
            name=label,
            domain_id=identities.domain_id,
            description=purpose,
            enabled=True,
            tags=tag_list(context.tags),
            opts=managing,
        )
        password = random.RandomPassword(
            f"{name}-{workload}-user-password",
            length=40,
            special=False,
            opts=pulumi.ResourceOptions.merge(
                context.opts, pulumi.ResourceOptions(additional_secret_outputs=["result"])
            ),
        )
        user = openstack.identity.User(
            f"{name}-{workload}-user",
            name=label,
            domain_id=identities.domain_id,
            default_project_id=project.id,
            description=purpose,
            enabled=True,
            password=password.result,
            opts=managing,
        )
        grant = openstack.identity.RoleAssignment(
            f"{name}-{workload}-role",
            user_id=user.id,
            project_id=project.id,
            role_id=identities.role_id,
            opts=managing,
        )
        # The user itself, in its own project: the only one besides a system admin that
        # Keystone lets create its EC2 credential.
        as_user = openstack.Provider(
            f"{name}-{workload}-keystone",
            auth_url=identities.auth_url,
            region=config.region,
            user_name=label,
            user_domain_id=identities.domain_id,
            password=password.result,
            tenant_id=project.id,
            opts=pulumi.ResourceOptions.merge(
                context.opts, pulumi.ResourceOptions(depends_on=[grant])
            ),
        )
        credential = openstack.identity.Ec2CredentialV3(
            f"{name}-{workload}-s3-credential",
            region=config.region,
            project_id=project.id,
            opts=pulumi.ResourceOptions.merge(
                secret_opts, pulumi.ResourceOptions(provider=as_user, depends_on=[grant])
            ),
        )
        keys[workload] = StaticCredentials(
            pulumi.Output.secret(credential.access), pulumi.Output.secret(credential.secret)
        )
        principals[workload] = project.id.apply(rgw_principal)
    storage = config.storage
    for logical in sorted({bucket for bucket, _ in workloads.values()}):
        physical = bucket_name(storage.bucket_prefix, name, logical)
        users = {w: access for w, (bucket, access) in workloads.items() if bucket == logical}
        policy = pulumi.Output.all(**{w: principals[w] for w in users}).apply(
            lambda ids, b=physical, u=users: workload_bucket_policy(
                b, {w: (ids[w], access) for w, access in u.items()}
            )
        )
        aws.s3.BucketPolicy(
            f"{name}-storage-{logical}-workloads",
            bucket=store.bucket_resources[logical].id,
            policy=pulumi.Output.json_dumps(policy),
            opts=pulumi.ResourceOptions(parent=store, provider=store.provider),
        )
    return keys
