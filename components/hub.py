"""The federation's hub: the registry of member sites and the federated catalog."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_random as random

from components import kube_core
from components.providers.existing.cluster import ExistingCluster
from components.service_release import ServiceRelease
from fedeploy.config.site import HubSite
from fedeploy.values.services import catalog_url, catalog_values
from fedeploy.values.site_identity import kubernetes_labels
from fedeploy.values.wiring import SiteWiring

# What the registry (the hub's `federation` output) holds of each member, from its outputs.
REGISTRY_FIELDS = ("site", "catalog_url", "storage", "bridge")


def _registry(ordered: list[tuple[str, Any]], values: list[Any]) -> dict[str, dict[str, Any]]:
    """The registry from the members (by name, sorted) and their REGISTRY_FIELDS outputs' values,
    member after member."""
    width = len(REGISTRY_FIELDS)
    return {
        site: dict(zip(REGISTRY_FIELDS, values[index * width : (index + 1) * width], strict=True))
        for index, (site, _) in enumerate(ordered)
    }


class Hub(pulumi.ComponentResource):
    """Reads every member's contract (stack outputs only) and harvests their catalogs into one.

    `federation` (the registry) lists every member with its `site`, `storage`, `catalog_url` and
    `bridge`; a storage-only member (its `site.role` is storage) is there with its buckets and an
    empty `catalog_url`, so the catalog, which harvests members with a catalog URL, skips it."""

    contract: dict[str, pulumi.Output[Any]]
    kubeconfig: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        config: HubSite,
        *,
        members: dict[str, dict[str, pulumi.Output[Any]]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("fedeploy:site:Hub", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = kubernetes_labels(name)
        cluster = ExistingCluster(f"{name}-cluster", config=config.cluster, opts=child)
        on_cluster = pulumi.ResourceOptions(parent=self, provider=cluster.provider)
        namespace = config.services.namespace
        kube_core.Namespace(
            f"{name}-namespace",
            metadata={
                "name": namespace,
                "labels": {**labels, "pod-security.kubernetes.io/enforce": "restricted"},
            },
            opts=on_cluster,
        )
        password = random.RandomPassword(
            f"{name}-catalog-db-password", length=32, special=False, opts=child
        )
        kube_core.Secret(
            f"{name}-catalog-db",
            metadata={"name": "catalog-db", "namespace": namespace, "labels": labels},
            type="Opaque",
            string_data={"username": "pgstac", "password": password.result},
            opts=on_cluster,
        )
        ordered = sorted(members.items())
        # One Output over every member's outputs, built into the lists and maps in one step: a
        # federation of hundreds of members made an Output per member and walked each value again
        # in an outer Output.all (seconds of the hub's plan at 300 members).
        sites = pulumi.Output.all(*[outputs["catalog_url"] for _, outputs in ordered]).apply(
            lambda urls: [
                {"name": site, "url": url}
                for (site, _), url in zip(ordered, urls, strict=True)
                if url
            ]
        )
        wiring = SiteWiring(
            site=name,
            kind="hub",
            namespace=namespace,
            storage_endpoint="",
            storage_region="",
            storage_secret="",
            role_arns={},
            gpu_node_selector=None,
            gpu_taint_key=None,
            environment=config.environment,
            monitoring=config.monitoring,
        )
        release = ServiceRelease(
            f"{name}-catalog",
            chart="catalog",
            namespace=namespace,
            values=catalog_values(
                wiring,
                config.services.catalog,
                database_secret="catalog-db",
                federation_sites=sites,
                harvest_schedule=config.services.harvest_schedule,
            ),
            provider=cluster.provider,
            opts=child,
        )
        url = (
            str(config.services.catalog.url).rstrip("/")
            if config.services.catalog.url
            else catalog_url(namespace)
        )
        registry = pulumi.Output.all(
            *[outputs[field] for _, outputs in ordered for field in REGISTRY_FIELDS]
        ).apply(lambda values: _registry(ordered, values))
        self.kubeconfig = cluster.kubeconfig
        self.contract = {
            "site": pulumi.Output.from_input(
                {"name": name, "kind": "hub", "environment": config.environment}
            ),
            "catalog_url": pulumi.Output.from_input(url),
            "federation": registry,
            "services": pulumi.Output.from_input(
                {
                    "catalog": {
                        "chart_version": release.chart_version,
                        "app_version": release.app_version,
                    }
                }
            ),
        }
        self.register_outputs(self.contract)
