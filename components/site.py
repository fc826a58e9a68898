"""A member site of the federation: storage, cluster, bridge and services, and its contract."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.catalog_database import RdsPostgres
from components.kubernetes_cluster import EksCluster, ExistingCluster
from components.object_store import AwsObjectStore, S3CompatibleObjectStore
from components.service_release import ServiceRelease
from components.workload_role import WorkloadRole
from fedeploy.config.services import Credentials
from fedeploy.config.site import AwsSite, HpcSite, KubernetesSite
from fedeploy.service_values import (
    SERVICE_ACCOUNTS,
    SiteWiring,
    catalog_url,
    catalog_values,
    inference_values,
    ingestion_values,
    wants_gpu,
)
from fedeploy.site_identity import kubernetes_labels, resource_tags

if TYPE_CHECKING:
    from components.slurm_bridge import SlurmBridge

MemberSite = AwsSite | KubernetesSite | HpcSite


class Site(pulumi.ComponentResource):
    """Everything one site runs, composed from its validated config; `contract` is what it exports."""

    contract: dict[str, pulumi.Output[Any]]
    kubeconfig: pulumi.Output[str] | None

    def __init__(
        self,
        name: str,
        config: MemberSite,
        *,
        referenced: dict[str, dict[str, pulumi.Output[Any]]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:site:Site", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._name = name
        self._config = config
        self._tags = resource_tags(name, config.tags)
        self._labels = kubernetes_labels(name)

        self.storage = self._storage(referenced, child)
        self.cluster: EksCluster | ExistingCluster | None = None
        if isinstance(config, AwsSite):
            self.cluster = EksCluster(
                f"{name}-cluster",
                region=config.region,
                network=config.network,
                config=config.cluster,
                tags=self._tags,
                opts=child,
            )
        elif config.cluster is not None:
            self.cluster = ExistingCluster(f"{name}-cluster", config=config.cluster, opts=child)
        self.kubeconfig = self.cluster.kubeconfig if self.cluster else None

        self.bridge: SlurmBridge | None = None
        releases: dict[str, ServiceRelease] = {}
        catalog = None
        if self.cluster is not None:
            namespace = self._namespace(child)
            self.bridge = self._bridge(namespace, child)
            releases, catalog = self._services(namespace, child)

        self.contract = self._contract(releases, catalog)
        self.register_outputs(self.contract)

    # -- storage -------------------------------------------------------------------------------
    def _storage(
        self, referenced: dict[str, dict[str, pulumi.Output[Any]]], child: pulumi.ResourceOptions
    ) -> AwsObjectStore | S3CompatibleObjectStore:
        config = self._config
        if isinstance(config, AwsSite):
            targets = {
                site: outputs["storage"]
                for site, outputs in referenced.items()
                if "storage" in outputs
            }
            return AwsObjectStore(
                f"{self._name}-storage",
                site=self._name,
                region=config.region,
                config=config.storage,
                tags=self._tags,
                replication_targets=targets,
                opts=child,
            )
        return S3CompatibleObjectStore(
            f"{self._name}-storage",
            site=self._name,
            config=config.storage,
            tags=self._tags,
            opts=child,
        )

    # -- Kubernetes side -------------------------------------------------------------------------
    def _on_cluster(self) -> pulumi.ResourceOptions:
        assert self.cluster is not None
        return pulumi.ResourceOptions(parent=self, provider=self.cluster.provider)

    def _namespace(self, child: pulumi.ResourceOptions) -> str:
        name = self._config.services.namespace
        k8s.core.v1.Namespace(
            f"{self._name}-namespace",
            metadata={
                "name": name,
                "labels": {
                    **self._labels,
                    # Pods that are not non-root, read-only and capability-free are refused.
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
            opts=self._on_cluster(),
        )
        return name

    def _secret(
        self, suffix: str, name: str, namespace: str, data: dict[str, pulumi.Input[str]]
    ) -> str:
        k8s.core.v1.Secret(
            f"{self._name}-{suffix}",
            metadata={"name": name, "namespace": namespace, "labels": self._labels},
            type="Opaque",
            string_data={key: pulumi.Output.secret(value) for key, value in data.items()},
            opts=self._on_cluster(),
        )
        return name

    def _credentials_secret(
        self, suffix: str, name: str, namespace: str, creds: Credentials | None
    ) -> str:
        if creds is None:
            return ""
        return self._secret(
            suffix,
            name,
            namespace,
            {"username": creds.username.output(), "password": creds.password.output()},
        )

    def _bridge(self, namespace: str, child: pulumi.ResourceOptions) -> SlurmBridge | None:
        config = self._config
        if config.bridge is None:
            return None
        from components.slurm_bridge import SlurmBridge

        assert self.cluster is not None
        if isinstance(config, AwsSite):
            assert isinstance(self.cluster, EksCluster)
            vpc = self.cluster.vpc
            allowed: pulumi.Input[list[str]] = pulumi.Output.all(vpc.cidr).apply(list)
            vpc_id, subnet_id = vpc.vpc_id, vpc.private_subnet_ids.apply(lambda ids: ids[0])
        else:
            assert config.cluster is not None
            allowed, vpc_id, subnet_id = list(config.cluster.pod_cidrs), None, None
        return SlurmBridge(
            f"{self._name}-bridge",
            site_name=self._name,
            config=config.bridge,
            namespace=namespace,
            k8s_provider=self.cluster.provider,
            labels=self._labels,
            allowed_cidrs=allowed,
            vpc_id=vpc_id,
            subnet_id=subnet_id,
            tags=self._tags,
            opts=child,
        )

    def _wiring(self, namespace: str, roles: dict[str, Any]) -> SiteWiring:
        config = self._config
        static = ""
        if not isinstance(config, AwsSite):
            assert isinstance(self.storage, S3CompatibleObjectStore)
            static = self._secret(
                "storage-credentials",
                "fedeploy-storage",
                namespace,
                {
                    "AWS_ACCESS_KEY_ID": self.storage.access_key_id,
                    "AWS_SECRET_ACCESS_KEY": self.storage.secret_access_key,
                },
            )
        gpu_selector, taint = None, None
        if isinstance(config, AwsSite):
            gpu_selector, taint = {"fedeploy.io/accelerator": "nvidia"}, "nvidia.com/gpu"
        elif config.cluster is not None and config.cluster.gpu is not None:
            gpu_selector, taint = (
                dict(config.cluster.gpu.node_selector),
                config.cluster.gpu.taint_key,
            )
        return SiteWiring(
            site=self._name,
            kind=config.kind,
            namespace=namespace,
            storage_endpoint="" if isinstance(config, AwsSite) else self.storage.endpoint,
            storage_region=self.storage.region,
            storage_secret=static,
            role_arns=roles,
            gpu_node_selector=gpu_selector,
            gpu_taint_key=taint,
        )

    def _roles(self, namespace: str, child: pulumi.ResourceOptions) -> dict[str, Any]:
        """IAM roles for the services that touch storage (aws sites only)."""
        config = self._config
        if not isinstance(config, AwsSite):
            return {}
        assert isinstance(self.cluster, EksCluster) and isinstance(self.storage, AwsObjectStore)
        roles: dict[str, Any] = {}
        for service, write in (("ingestion", True), ("inference", True)):
            spec = getattr(config.services, service)
            if spec is None or not spec.enabled:
                continue
            bucket = spec.bucket
            role = WorkloadRole(
                f"{self._name}-{service}-role",
                namespace=namespace,
                service_account=SERVICE_ACCOUNTS[service],
                oidc_provider_arn=self.cluster.oidc_provider_arn,
                oidc_issuer=self.cluster.oidc_issuer,
                bucket_arns=[self.storage.bucket_arns.apply(lambda arns, b=bucket: arns[b])],
                kms_key_arn=self.storage.kms_key_arn,
                write=write,
                tags=self._tags,
                opts=child,
            )
            roles[service] = role.arn
        return roles

    def _services(
        self, namespace: str, child: pulumi.ResourceOptions
    ) -> tuple[dict[str, ServiceRelease], ServiceRelease | None]:
        config = self._config
        assert self.cluster is not None
        wiring = self._wiring(namespace, self._roles(namespace, child))
        services = config.services
        releases: dict[str, ServiceRelease] = {}
        in_cluster = catalog_url(namespace)

        def release(
            chart: str, values: dict[str, Any], after: list[pulumi.Resource]
        ) -> ServiceRelease:
            return ServiceRelease(
                f"{self._name}-{chart}",
                chart=chart,
                namespace=namespace,
                values=values,
                provider=self.cluster.provider,  # type: ignore[union-attr]
                opts=pulumi.ResourceOptions(parent=self, depends_on=after),
            )

        secrets: list[pulumi.Resource] = []
        if services.catalog.enabled:
            releases["catalog"] = release(
                "catalog", self._catalog_values(wiring, namespace, child), secrets
            )
        if services.ingestion is not None and services.ingestion.enabled:
            spec = services.ingestion
            values = ingestion_values(
                wiring,
                spec,
                bucket=self.storage.buckets.apply(lambda b: b[spec.bucket]),
                catalog=in_cluster,
                sentinel_secret=self._credentials_secret(
                    "sentinel-credentials",
                    "sentinel-credentials",
                    namespace,
                    spec.sentinel.credentials if spec.sentinel else None,
                ),
                mqtt_secret=self._credentials_secret(
                    "mqtt-credentials",
                    "mqtt-credentials",
                    namespace,
                    spec.stream.mqtt.credentials if spec.stream else None,
                ),
            )
            releases["ingestion"] = release("ingestion", values, list(releases.values()))
        if services.inference is not None and services.inference.enabled:
            spec_i = services.inference
            bridge = None
            if self.bridge is not None and config.bridge is not None:
                bridge = {
                    "endpoint": self.bridge.endpoint,
                    "secret_name": self.bridge.secret_name,
                    "partition": config.bridge.default_partition,
                    "ca_key": "ca.crt" if self.bridge.has_ca else "",
                }
            values = inference_values(
                wiring,
                spec_i,
                bucket=self.storage.buckets.apply(lambda b: b[spec_i.bucket]),
                catalog=in_cluster,
                gpu=wants_gpu(spec_i, self.cluster.has_gpu),
                bridge=bridge,
            )
            releases["inference"] = release("inference", values, list(releases.values())[:1])
        return releases, releases.get("catalog")

    def _catalog_values(
        self, wiring: SiteWiring, namespace: str, child: pulumi.ResourceOptions
    ) -> dict[str, Any]:
        config = self._config
        spec = config.services.catalog
        if spec.database == "external":
            assert spec.external is not None
            secret = self._secret(
                "catalog-db",
                "catalog-db",
                namespace,
                {"username": spec.external.username, "password": spec.external.password.output()},
            )
            return catalog_values(
                wiring,
                spec,
                database_secret=secret,
                database_host=spec.external.host,
                database_port=spec.external.port,
                database_name=spec.external.name,
                ssl_mode=spec.external.ssl_mode,
            )
        password = random.RandomPassword(
            f"{self._name}-catalog-db-password", length=32, special=False, opts=child
        )
        if spec.database == "rds":
            assert isinstance(config, AwsSite) and isinstance(self.cluster, EksCluster)
            database = RdsPostgres(
                f"{self._name}-catalog-db",
                config=spec.rds,
                vpc_id=self.cluster.vpc.vpc_id,
                vpc_cidr=self.cluster.vpc.cidr,
                subnet_ids=self.cluster.vpc.private_subnet_ids,
                password=password.result,
                production=config.environment == "production",
                tags=self._tags,
                opts=child,
            )
            secret = self._secret(
                "catalog-db",
                "catalog-db",
                namespace,
                {"username": database.username, "password": password.result},
            )
            return catalog_values(
                wiring,
                spec,
                database_secret=secret,
                database_host=database.address,
                database_port=database.port,
                database_name=database.database,
                ssl_mode="require",
                database_cidrs=self.cluster.vpc.cidr.apply(lambda cidr: [cidr]),
            )
        secret = self._secret(
            "catalog-db",
            "catalog-db",
            namespace,
            {"username": "pgstac", "password": password.result},
        )
        return catalog_values(wiring, spec, database_secret=secret)

    # -- the contract ------------------------------------------------------------------------------
    def _contract(
        self, releases: dict[str, ServiceRelease], catalog: ServiceRelease | None
    ) -> dict[str, pulumi.Output[Any]]:
        config = self._config
        storage = self.storage
        cluster = self.cluster
        url = None
        if catalog is not None:
            url = (
                str(config.services.catalog.url).rstrip("/")
                if config.services.catalog.url
                else catalog_url(config.services.namespace)
            )
        return {
            "site": pulumi.Output.from_input(
                {
                    "name": self._name,
                    "kind": config.kind,
                    "environment": config.environment,
                    "region": getattr(config, "region", None)
                    or getattr(config.storage, "region", None),
                }
            ),
            "storage": pulumi.Output.all(
                endpoint=storage.endpoint,
                region=storage.region,
                buckets=storage.buckets,
                bucket_arns=storage.bucket_arns,
                kms_key_arn=storage.kms_key_arn,
                auth=storage.auth,
            ),
            "cluster": (
                pulumi.Output.all(
                    name=cluster.name, version=cluster.version, oidc_issuer=cluster.oidc_issuer
                )
                if cluster is not None
                else pulumi.Output.from_input({})
            ),
            "network": pulumi.Output.from_input(
                {"cidr": config.network.cidr}
                if isinstance(config, AwsSite)
                else {"pod_cidrs": _pod_cidrs(config)}
            ),
            # Stack outputs never hold null: a StackReference would not see the key at all.
            "catalog_url": pulumi.Output.from_input(url or ""),
            "services": pulumi.Output.from_input(
                {
                    chart: {"chart_version": r.chart_version, "app_version": r.app_version}
                    for chart, r in sorted(releases.items())
                }
            ),
            "bridge": (
                pulumi.Output.all(
                    enabled=True,
                    endpoint=self.bridge.endpoint,
                    secret_name=self.bridge.secret_name,
                    partitions=self.bridge.partitions,
                )
                if self.bridge is not None
                else pulumi.Output.from_input({"enabled": False})
            ),
        }


def _pod_cidrs(config: MemberSite) -> list[str]:
    cluster = getattr(config, "cluster", None)
    return list(getattr(cluster, "pod_cidrs", []) or [])
