"""Storage identities of an OpenStack site's workloads (`workload_identities`): which bucket and
key prefixes each workload touches, and the Ceph RGW bucket policy that grants exactly that to
the workload's own Keystone project.

Why a project per workload, not a user: RGW maps every Keystone user of a project to one RGW
user named after the project, which owns the project's buckets; two users of one project are
one identity to the store. A project that holds no bucket and is named in a bucket policy is
allowed what the policy says and nothing else. RGW uses its tenant where AWS has an account id;
with `rgw_keystone_implicit_tenants` false (RGW's default) a Keystone project's RGW user is
`<project id>` in the empty tenant, hence `arn:aws:iam:::user/<project id>`.
"""

from __future__ import annotations

from typing import Any

from fedeploy.values.exposure import ASSETS_SERVICE_ACCOUNT
from fedeploy.values.workload_access import (
    CATALOG_BACKUP_SERVICE_ACCOUNT,
    CATALOG_DRILL_SERVICE_ACCOUNT,
    WORKLOAD_ACCESS,
    WorkloadAccess,
    catalog_backup_access,
    service_access,
    workload_policy,
)


def storage_workloads(services: Any) -> dict[str, tuple[str, WorkloadAccess]]:
    """The workloads of `services` that use the store, each with its logical bucket and access:
    ingestion and inference when enabled, the asset endpoint of a published catalog with an
    ingestion bucket (read only), the internal catalog database's backups and their restore drill
    (read only)."""
    found: dict[str, tuple[str, WorkloadAccess]] = {}
    for service in ("ingestion", "inference"):
        spec = getattr(services, service)
        if spec is not None and spec.enabled:
            found[service] = (spec.bucket, service_access(service, services))
    ingestion = services.ingestion
    catalog = services.catalog
    if catalog.exposure is not None and ingestion is not None and ingestion.enabled:
        found[ASSETS_SERVICE_ACCOUNT] = (ingestion.bucket, WORKLOAD_ACCESS["assets"])
    if catalog.enabled and catalog.database == "internal" and catalog.backup.enabled:
        backup = catalog.backup
        found[CATALOG_BACKUP_SERVICE_ACCOUNT] = (
            backup.bucket,
            catalog_backup_access(backup.prefix),
        )
        if backup.drill.enabled:
            found[CATALOG_DRILL_SERVICE_ACCOUNT] = (
                backup.bucket,
                catalog_backup_access(backup.prefix, read_only=True),
            )
    return found


def rgw_principal(project_id: str) -> str:
    """The bucket-policy principal of a Keystone project's requests on RGW (empty tenant)."""
    if not project_id or ":" in project_id or "/" in project_id:
        raise ValueError(f"rgw_principal: not a Keystone project id: {project_id!r}")
    return f"arn:aws:iam:::user/{project_id}"


def _sid(workload: str) -> str:
    return "".join(part.capitalize() for part in workload.split("-"))


def workload_bucket_policy(
    bucket: str, grants: dict[str, tuple[str, WorkloadAccess]]
) -> dict[str, Any]:
    """The bucket policy (a dict) of one physical bucket: for each workload (name -> (principal,
    access)) the statements `workload_policy` grants on this bucket, each naming only that
    workload's principal. Raises ValueError for no grant (a policy for nobody)."""
    if not grants:
        raise ValueError(f"workload_bucket_policy: no workload uses bucket {bucket}")
    statements: list[dict[str, Any]] = []
    for workload, (principal, access) in sorted(grants.items()):
        document = workload_policy(access, [f"arn:aws:s3:::{bucket}"], None)
        for statement in document["Statement"]:
            statements.append(
                {
                    **statement,
                    "Sid": f"{_sid(workload)}{statement['Sid']}",
                    "Principal": {"AWS": [principal]},
                }
            )
    return {"Version": "2012-10-17", "Statement": statements}
