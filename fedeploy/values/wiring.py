"""What every chart on a site is wired to (`SiteWiring`): the one input, beside a service's own
config, of the values functions in this package."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fedeploy.config.monitoring import Monitoring


@dataclass(frozen=True)
class SiteWiring:
    """What every chart on a site is wired to: storage, identity and the site's own names."""

    site: str
    kind: str
    namespace: str
    storage_endpoint: Any  # "" on aws: the regional endpoint
    storage_region: Any
    storage_secret: str  # "" when pods use IAM roles for service accounts
    role_arns: dict[str, Any]  # service -> IAM role ARN (aws sites)
    gpu_node_selector: dict[str, str] | None
    gpu_taint_key: str | None
    # Physical names of the buckets the site's services register assets from (its ingestion
    # bucket): the only buckets the asset endpoint presigns. Empty: no asset is served.
    asset_buckets: Any = ()
    # The site's environment; the policy pack reads it from the catalog's values.
    environment: str = "production"
    # Storage Secrets of workloads with keys of their own (openstack `workload_identities`, ovh's
    # users, kubernetes and hpc `storage.workload_credentials`), by workload (assets, ingestion,
    # inference, catalog-backup, catalog-drill): they replace `storage_secret`.
    storage_secrets: dict[str, str] = field(default_factory=dict)

    def secret_for(self, workload: str) -> str:
        """The storage Secret the workload mounts: its own, else the site's ("" for none)."""
        return self.storage_secrets.get(workload, self.storage_secret)

    # The site's `monitoring` block (its Prometheus's selector labels, namespace, Pushgateway):
    # every chart's `monitoring` values. None: the charts' defaults.
    monitoring: Monitoring | None = None
