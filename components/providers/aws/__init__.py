"""The aws kind: S3 buckets (storage), EKS (cluster) in the site's own VPC (network), IRSA roles
(identity), RDS for the catalog (database) and the EC2 host of a `vm` bridge (bridge_host)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from components.providers.aws.bridge_host import AwsBridgeHost
from components.providers.aws.cluster import EksCluster
from components.providers.aws.database import RdsPostgres
from components.providers.aws.identity import WorkloadRole
from components.providers.aws.storage import AwsObjectStore
from components.providers.base import (
    PROVISIONED_GPU,
    BuildContext,
    ManagedDatabase,
    SiteResources,
)
from components.providers.object_lock import backup_locks
from fedeploy.config.services import CatalogService
from fedeploy.config.site import AwsSite
from fedeploy.values.exposure import ASSETS_SERVICE_ACCOUNT
from fedeploy.values.services import SERVICE_ACCOUNTS
from fedeploy.values.workload_access import (
    CATALOG_BACKUP_SERVICE_ACCOUNT,
    CATALOG_DRILL_SERVICE_ACCOUNT,
    WORKLOAD_ACCESS,
    catalog_backup_access,
    service_access,
)


@dataclass
class AwsResources(SiteResources):
    """An aws site's resources: services get IAM roles, the catalog may get RDS."""

    eks: EksCluster | None = None
    s3: AwsObjectStore | None = None
    tags: dict[str, str] | None = None

    def workload_roles(
        self, site: str, namespace: str, services: Any, opts: pulumi.ResourceOptions
    ) -> dict[str, pulumi.Output[str]]:
        assert self.eks is not None and self.s3 is not None
        eks, s3 = self.eks, self.s3
        roles: dict[str, pulumi.Output[str]] = {}

        def role(key: str, service_account: str, bucket: str, access: Any) -> None:
            roles[key] = WorkloadRole(
                f"{site}-{key}-role",
                namespace=namespace,
                service_account=service_account,
                oidc_provider_arn=eks.oidc_provider_arn,
                oidc_issuer=eks.oidc_issuer,
                bucket_arns=[s3.bucket_arns.apply(lambda arns: arns[bucket])],
                kms_key_arn=s3.kms_key_arn,
                access=access,
                tags=dict(self.tags or {}),
                opts=opts,
            ).arn

        for service in ("ingestion", "inference"):
            spec = getattr(services, service)
            if spec is not None and spec.enabled:
                role(
                    service,
                    SERVICE_ACCOUNTS[service],
                    spec.bucket,
                    service_access(service, services),
                )
        # A published catalog's asset endpoint presigns reads of the ingestion bucket's assets:
        # a role of its own that may only read them (fedeploy/values/exposure.py, docs/charts.md).
        ingestion = services.ingestion
        if services.catalog.exposure is not None and ingestion is not None and ingestion.enabled:
            role("assets", ASSETS_SERVICE_ACCOUNT, ingestion.bucket, WORKLOAD_ACCESS["assets"])
        # The internal catalog database's backups: a role that may only touch the backup prefix.
        catalog = services.catalog
        if catalog.enabled and catalog.database == "internal" and catalog.backup.enabled:
            backup = catalog.backup
            role(
                CATALOG_BACKUP_SERVICE_ACCOUNT,
                CATALOG_BACKUP_SERVICE_ACCOUNT,
                backup.bucket,
                catalog_backup_access(backup.prefix),
            )
            # Its restore drill: a role that may only list and read the backups.
            if backup.drill.enabled:
                role(
                    CATALOG_DRILL_SERVICE_ACCOUNT,
                    CATALOG_DRILL_SERVICE_ACCOUNT,
                    backup.bucket,
                    catalog_backup_access(backup.prefix, read_only=True),
                )
        return roles

    def managed_database(
        self,
        name: str,
        spec: CatalogService,
        *,
        password: pulumi.Output[str],
        production: bool,
        opts: pulumi.ResourceOptions,
    ) -> ManagedDatabase:
        assert self.eks is not None
        vpc = self.eks.vpc
        database = RdsPostgres(
            name,
            config=spec.rds,
            vpc_id=vpc.vpc_id,
            vpc_cidr=vpc.cidr,
            subnet_ids=vpc.private_subnet_ids,
            password=password,
            production=production,
            tags=dict(self.tags or {}),
            opts=opts,
        )
        return ManagedDatabase(
            username=database.username,
            host=database.address,
            port=database.port,
            name=database.database,
            client_cidrs=vpc.cidr.apply(lambda cidr: [cidr]),
            ssl_mode=database.ssl_mode,
            ca_certificate=database.ca_bundle,
        )


def provision(config: AwsSite, context: BuildContext) -> SiteResources:
    """S3 (replicating to the referenced sites' buckets) and EKS with its VPC; a storage-only
    site (role: storage) gets its S3 buckets only."""
    name = context.name
    targets = {
        site: outputs["storage"]
        for site, outputs in context.referenced.items()
        if "storage" in outputs
    }
    store = AwsObjectStore(
        f"{name}-storage",
        site=name,
        region=config.region,
        config=config.storage,
        tags=context.tags,
        replication_targets=targets,
        object_locks=backup_locks(config.services.catalog, "aws"),
        opts=context.opts,
    )
    if config.storage_only:
        return SiteResources(store=store, cluster=None, region=config.region, network={})
    assert config.network is not None and config.cluster is not None  # a full site's (validated)
    cluster = EksCluster(
        f"{name}-cluster",
        region=config.region,
        network=config.network,
        config=config.cluster,
        tags=context.tags,
        opts=context.opts,
    )
    vpc = cluster.vpc
    bridge_host = None
    if config.bridge is not None and config.bridge.mode == "vm":
        bridge_host = AwsBridgeHost(
            site=name,
            config=config.bridge,
            vpc_id=vpc.vpc_id,
            subnet_id=vpc.private_subnet_ids.apply(lambda ids: ids[0]),
            tags=context.tags,
        )
    return AwsResources(
        store=store,
        cluster=cluster,
        region=config.region,
        network={"cidr": config.network.cidr},
        gpu=PROVISIONED_GPU,
        bridge_cidrs=pulumi.Output.all(vpc.cidr).apply(list),
        bridge_host=bridge_host,
        provisioned_kubeconfig=cluster.kubeconfig,
        eks=cluster,
        s3=store,
        tags=context.tags,
    )
