"""What a provider package hands back to the `Site` component: one small interface for every kind.

A provider builds the site's network, cluster, object store, managed database where it offers
one and (for a `vm` bridge) the bridge's host from its config class; `Site` composes the result
and never asks which kind it was."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pulumi

from fedeploy.errors import ProgramError
from fedeploy.node_pools import GPU_LABEL_KEY, GPU_LABEL_VALUE, GPU_TAINT_KEY

if TYPE_CHECKING:
    import pulumi_kubernetes as k8s

    from fedeploy.bridge.node_config import BridgeNode
    from fedeploy.config.bridge import BridgeConfig
    from fedeploy.config.services import CatalogService


class Cluster(Protocol):
    """The site's Kubernetes cluster as the services see it."""

    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    name: pulumi.Output[str]
    version: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str | None]
    has_gpu: bool


class Store(Protocol):
    """The site's object store: endpoint, region, physical bucket names by logical name."""

    endpoint: pulumi.Output[str]
    region: pulumi.Output[str]
    buckets: pulumi.Output[dict[str, str]]
    bucket_arns: pulumi.Output[dict[str, str]]
    kms_key_arn: pulumi.Output[str | None]
    auth: pulumi.Output[str]


@dataclass(frozen=True)
class GpuScheduling:
    """How pods reach the site's GPU nodes: the nodes' labels and the key of their taint."""

    node_selector: dict[str, str]
    taint_key: str


# The GPU nodes fedeploy provisions: every provisioned kind labels and taints them alike.
PROVISIONED_GPU = GpuScheduling({GPU_LABEL_KEY: GPU_LABEL_VALUE}, GPU_TAINT_KEY)


@dataclass(frozen=True)
class StaticCredentials:
    """S3 keys the pods read from a Kubernetes Secret (sites without cloud workload identity)."""

    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]


@dataclass(frozen=True)
class ManagedDatabase:
    """A PostgreSQL the provider runs for the catalog: where it is and who may reach it."""

    username: pulumi.Input[str]
    host: pulumi.Input[str]
    port: pulumi.Input[int]
    name: str
    client_cidrs: pulumi.Input[list[str]]
    # How clients check the server: libpq's sslmode, and the CA bundle verify-full checks against.
    ssl_mode: str = "require"
    ca_certificate: pulumi.Input[str] | None = None


class BridgeHost(Protocol):
    """Launches the VM a `vm`-mode SLURM bridge runs on, in the site's own network."""

    def launch(
        self,
        name: str,
        *,
        node: pulumi.Output[BridgeNode],
        secrets: pulumi.Output[dict[str, Any]],
        allowed_cidrs: pulumi.Output[list[str]],
        parent: pulumi.Resource,
    ) -> pulumi.Output[str]:
        """Create the VM and its firewall; return its private address (IPv4, dotted)."""
        ...


def boot_secret_names(config: BridgeConfig) -> list[str]:
    """The secrets a bridge host stores for its VM to read once at boot (keys of `launch`'s
    `secrets`): the JWT key, and the TLS key, certificate and CA where the bridge serves TLS."""
    return ["jwt.key", *(["tls.key", "tls.crt", "ca.crt"] if config.tls.enabled else [])]


@dataclass
class SiteResources:
    """Everything a provider built for one site, in the terms `Site` needs.

    `bridge_host` launches a `vm`-mode bridge's VM on kinds that offer one (aws, openstack);
    `cluster` is None on a storage-only site (role: storage), which has its store only."""

    store: Store
    cluster: Cluster | None
    region: str | None
    network: dict[str, Any]
    credentials: StaticCredentials | None = None
    gpu: GpuScheduling | None = None
    bridge_cidrs: pulumi.Input[list[str]] = field(default_factory=list)
    bridge_host: BridgeHost | None = None
    provisioned_kubeconfig: pulumi.Output[str] | None = None
    pod_storage_endpoint: pulumi.Input[str] = ""
    # Keys of each workload's own storage identity, by workload (ingestion, inference, assets,
    # catalog-backup); each gets a storage Secret of its own instead of `credentials`.
    workload_credentials: dict[str, StaticCredentials] = field(default_factory=dict)

    def workload_roles(
        self, site: str, namespace: str, services: Any, opts: pulumi.ResourceOptions
    ) -> dict[str, pulumi.Output[str]]:
        """Cloud identities of the services that touch storage, by service (none by default)."""
        return {}

    def managed_database(
        self,
        name: str,
        spec: CatalogService,
        *,
        password: pulumi.Output[str],
        production: bool,
        opts: pulumi.ResourceOptions,
    ) -> ManagedDatabase:
        """The catalog's managed PostgreSQL; providers that offer one override this."""
        raise ProgramError(
            f"{name}: services.catalog.database 'rds' is not offered on this kind of site"
        )


@dataclass(frozen=True)
class BuildContext:
    """What every provider gets besides its config: the site's name, tags and referenced outputs."""

    name: str
    tags: dict[str, str]
    referenced: dict[str, dict[str, pulumi.Output[Any]]]
    opts: pulumi.ResourceOptions


class Provision(Protocol):
    """A provider module's entry point: builds one kind of site from its validated config."""

    def __call__(self, config: Any, context: BuildContext) -> SiteResources: ...
