"""A member site of the federation: storage, cluster, bridge and services, and its contract."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_random as random

from components import kube_core
from components.providers import BuildContext, SiteResources, provider_for
from components.providers.base import Cluster
from components.service_release import ServiceRelease
from fedeploy.config.services import ApiKey, Credentials, PolytopeKey
from fedeploy.config.site_base import is_storage_only
from fedeploy.values.services import (
    catalog_url,
    catalog_values,
    inference_values,
    ingestion_values,
    wants_gpu,
)
from fedeploy.values.site_identity import kubernetes_labels, resource_tags
from fedeploy.values.storage_credentials import SITE_SECRET, storage_secret_data
from fedeploy.values.wiring import SiteWiring

if TYPE_CHECKING:
    from components.slurm_bridge import SlurmBridge


class Site(pulumi.ComponentResource):
    """Everything one site runs, composed from its validated config; `contract` is what it exports.

    The provider module of the site's kind (components/providers) builds its network, cluster
    and object store; this component wires the services onto them, whatever the kind. A
    storage-only site (role: storage) has its object store only: no namespace, bridge or
    service, and a contract whose cluster, network and services are empty."""

    contract: dict[str, pulumi.Output[Any]]
    kubeconfig: pulumi.Output[str] | None
    provisioned_kubeconfig: pulumi.Output[str] | None

    def __init__(
        self,
        name: str,
        config: Any,
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

        provision = provider_for(config.kind)
        self.infrastructure: SiteResources = provision(
            config, BuildContext(name=name, tags=self._tags, referenced=referenced, opts=child)
        )
        self.storage = self.infrastructure.store
        self.cluster = self.infrastructure.cluster
        self.kubeconfig = self.cluster.kubeconfig if self.cluster is not None else None
        self.provisioned_kubeconfig = self.infrastructure.provisioned_kubeconfig

        self.bridge: SlurmBridge | None = None
        releases: dict[str, ServiceRelease] = {}
        catalog: ServiceRelease | None = None
        if self.cluster is not None:
            namespace = self._namespace(child)
            self.bridge = self._bridge(namespace, child)
            releases, catalog = self._services(namespace, child)

        self.contract = self._contract(releases, catalog)
        self.register_outputs(self.contract)

    # -- Kubernetes side -------------------------------------------------------------------------
    @property
    def _running(self) -> Cluster:
        """The cluster the services run on (a full site's: a storage-only site never asks)."""
        assert self.cluster is not None
        return self.cluster

    def _on_cluster(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, provider=self._running.provider)

    def _namespace(self, child: pulumi.ResourceOptions) -> str:
        name = self._config.services.namespace
        kube_core.Namespace(
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
        kube_core.Secret(
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

    def _api_key_secret(self, name: str, namespace: str, key: ApiKey | None) -> str:
        """A Secret `name` with keys consumer_key and consumer_secret; "" without a key."""
        if key is None:
            return ""
        return self._secret(
            name,
            name,
            namespace,
            {
                "consumer_key": key.consumer_key.output(),
                "consumer_secret": key.consumer_secret.output(),
            },
        )

    def _polytope_secret(self, namespace: str, key: PolytopeKey | None) -> str:
        """A Secret `polytope-credentials` with key `key` (and `email` for an ECMWF key); ""
        without a key."""
        if key is None:
            return ""
        data: dict[str, pulumi.Input[str]] = {"key": key.key.output()}
        if key.email:
            data["email"] = key.email
        return self._secret("polytope-credentials", "polytope-credentials", namespace, data)

    def _bridge(self, namespace: str, child: pulumi.ResourceOptions) -> SlurmBridge | None:
        config = self._config
        if config.bridge is None:
            return None
        from components.slurm_bridge import SlurmBridge

        infra = self.infrastructure
        return SlurmBridge(
            f"{self._name}-bridge",
            site_name=self._name,
            config=config.bridge,
            namespace=namespace,
            k8s_provider=self._running.provider,
            labels=self._labels,
            allowed_cidrs=infra.bridge_cidrs,
            bridge_host=infra.bridge_host,
            opts=child,
        )

    def _wiring(self, namespace: str, roles: dict[str, Any]) -> SiteWiring:
        config = self._config
        infra = self.infrastructure
        static = ""
        if infra.credentials is not None:
            static = self._secret(
                "storage-credentials",
                SITE_SECRET,
                namespace,
                # One file, boto3's shared credentials file, mounted by every pod that uses
                # the keys: none of them holds the keys in its environment.
                storage_secret_data(
                    infra.credentials.access_key_id, infra.credentials.secret_access_key
                ),
            )
        # A workload with an identity of its own reads its own keys only, from its own Secret.
        own = {
            workload: self._secret(
                f"storage-credentials-{workload}",
                f"fedeploy-storage-{workload}",
                namespace,
                storage_secret_data(keys.access_key_id, keys.secret_access_key),
            )
            for workload, keys in sorted(infra.workload_credentials.items())
        }
        # A workload whose key the store's owner scoped (kubernetes and hpc sites) mounts that
        # key's existing Secret instead of the site's.
        own.update(getattr(config.storage, "workload_credentials", {}))
        gpu = infra.gpu
        ingestion = config.services.ingestion
        asset_buckets: Any = ()
        if ingestion is not None and ingestion.enabled:
            asset_buckets = self.storage.buckets.apply(lambda b: [b[ingestion.bucket]])
        return SiteWiring(
            site=self._name,
            kind=config.kind,
            namespace=namespace,
            storage_endpoint=infra.pod_storage_endpoint,
            storage_region=self.storage.region,
            storage_secret=static,
            storage_secrets=own,
            role_arns=roles,
            gpu_node_selector=dict(gpu.node_selector) if gpu is not None else None,
            gpu_taint_key=gpu.taint_key if gpu is not None else None,
            asset_buckets=asset_buckets,
            environment=config.environment,
            monitoring=config.monitoring,
        )

    def _services(
        self, namespace: str, child: pulumi.ResourceOptions
    ) -> tuple[dict[str, ServiceRelease], ServiceRelease | None]:
        config = self._config
        roles = self.infrastructure.workload_roles(self._name, namespace, config.services, child)
        wiring = self._wiring(namespace, roles)
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
                provider=self._running.provider,
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
                cluster_cidrs=self.infrastructure.bridge_cidrs,
                wis2_secret=self._credentials_secret(
                    "wis2-credentials",
                    "wis2-credentials",
                    namespace,
                    spec.stream.wis2.credentials if spec.stream and spec.stream.wis2 else None,
                ),
                eumetsat_secret=self._api_key_secret(
                    "eumetsat-credentials",
                    namespace,
                    spec.sentinel.eumetsat_credentials if spec.sentinel else None,
                ),
                polytope_secret=self._polytope_secret(
                    namespace, spec.sentinel.polytope_credentials if spec.sentinel else None
                ),
                eodag_secret=self._credentials_secret(
                    "eodag-credentials",
                    "eodag-credentials",
                    namespace,
                    spec.sentinel.eodag_credentials if spec.sentinel else None,
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
                    "probe_secret": (
                        config.bridge.probe.existing_secret if config.bridge.probe else ""
                    ),
                }
            values = inference_values(
                wiring,
                spec_i,
                bucket=self.storage.buckets.apply(lambda b: b[spec_i.bucket]),
                catalog=in_cluster,
                gpu=wants_gpu(spec_i, self._running.has_gpu),
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
                database_ca=spec.external.ca_certificate,
            )
        password = random.RandomPassword(
            f"{self._name}-catalog-db-password", length=32, special=False, opts=child
        )
        if spec.database == "rds":
            database = self.infrastructure.managed_database(
                f"{self._name}-catalog-db",
                spec,
                password=password.result,
                production=config.environment == "production",
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
                database_host=database.host,
                database_port=database.port,
                database_name=database.name,
                ssl_mode=database.ssl_mode,
                database_ca=database.ca_certificate,
                database_cidrs=database.client_cidrs,
            )
        secret = self._secret(
            "catalog-db",
            "catalog-db",
            namespace,
            {"username": "pgstac", "password": password.result},
        )
        backup_bucket = self.storage.buckets.apply(lambda b: b.get(spec.backup.bucket))
        drill_secret = None
        if spec.backup.enabled and spec.backup.drill.enabled:
            # The restore drill's read-only role (the migration creates it as a pgstac_read member).
            drill_password = random.RandomPassword(
                f"{self._name}-catalog-drill-password", length=32, special=False, opts=child
            )
            drill_secret = self._secret(
                "catalog-drill-db",
                "catalog-drill-db",
                namespace,
                {"username": "catalog_drill", "password": drill_password.result},
            )
        return catalog_values(
            wiring,
            spec,
            database_secret=secret,
            backup_bucket=backup_bucket,
            drill_secret=drill_secret,
        )

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
        site: dict[str, Any] = {
            "name": self._name,
            "kind": config.kind,
            "environment": config.environment,
            "region": self.infrastructure.region,
        }
        if is_storage_only(config):
            # Only a storage-only site says its role: a full site's contract stays as it was.
            site["role"] = "storage"
        return {
            "site": pulumi.Output.from_input(site),
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
            "network": pulumi.Output.from_input(self.infrastructure.network),
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
