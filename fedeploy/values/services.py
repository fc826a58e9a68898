"""The values each of our charts gets on a site, computed from the site's config and outputs.

Plain functions: they take plain values or Pulumi Inputs and return the values mapping, so they
are tested without the Pulumi runtime and the same mapping feeds `helm.v3.Release`."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from fedeploy.config.services import (
    CatalogBackup,
    CatalogService,
    InferenceService,
    IngestionService,
    Sentinel,
)
from fedeploy.project import project_dir
from fedeploy.values.exposure import assets_values, browser_values, exposure_values, storage_port
from fedeploy.values.wiring import SiteWiring
from fedeploy.values.workload_access import (
    CATALOG_BACKUP_SERVICE_ACCOUNT,
    CATALOG_DRILL_SERVICE_ACCOUNT,
)

CHARTS_DIR = project_dir() / "charts"
SERVICE_ACCOUNTS = {"catalog": "catalog", "ingestion": "ingestion", "inference": "inference"}
CATALOG_PORT = 8080
# The charts whose batch runs push their outcome to a Pushgateway (Sentinel copies, harvests).
PUSHING_CHARTS = ("catalog", "ingestion")
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"


@cache
def chart_metadata(chart: str) -> dict[str, Any]:
    """Chart.yaml of one of our charts."""
    data: dict[str, Any] = yaml.safe_load((CHARTS_DIR / chart / "Chart.yaml").read_text())
    return data


def catalog_url(namespace: str, release: str = "catalog") -> str:
    """The catalog's in-cluster URL (its Service is named after the release)."""
    return f"http://{release}.{namespace}.svc.cluster.local:{CATALOG_PORT}"


def _common(wiring: SiteWiring, service: str) -> dict[str, Any]:
    annotations = (
        {IRSA_ANNOTATION: wiring.role_arns[service]} if service in wiring.role_arns else {}
    )
    values: dict[str, Any] = {
        "site": {"name": wiring.site, "kind": wiring.kind},
        "serviceAccount": {
            "create": True,
            "name": SERVICE_ACCOUNTS[service],
            "annotations": annotations,
        },
    }
    if wiring.monitoring is not None:
        values["monitoring"] = wiring.monitoring.chart_values(
            pushes=service in PUSHING_CHARTS, chart=service
        )
    return values


def _storage(wiring: SiteWiring, bucket: Any, service: str) -> dict[str, Any]:
    return {
        "endpoint": wiring.storage_endpoint,
        "region": wiring.storage_region,
        "bucket": bucket,
        "existingSecret": wiring.secret_for(service),
    }


def catalog_values(
    wiring: SiteWiring,
    spec: CatalogService,
    *,
    database_secret: str,
    database_host: Any = None,
    database_port: Any = 5432,
    database_name: str = "pgstac",
    ssl_mode: str = "require",
    database_ca: Any = None,
    federation_sites: Any = None,
    harvest_schedule: str | None = None,
    database_cidrs: Any = None,
    backup_bucket: Any = None,
    drill_secret: str | None = None,
) -> dict[str, Any]:
    """Values of the catalog chart: its database (with its backups to `backup_bucket`, the
    physical name, where it is internal), and on the hub the harvest of member catalogs."""
    values = _common(wiring, "catalog")
    values["site"]["environment"] = wiring.environment
    if spec.database == "internal":
        values["database"] = {
            "mode": "internal",
            "existingSecret": database_secret,
            "internal": {"persistence": {"size": f"{spec.volume_size_gib}Gi"}},
        }
        if spec.backup.enabled and backup_bucket is not None:
            values["backup"] = backup_values(wiring, spec.backup, backup_bucket, drill_secret)
    else:
        values["database"] = {
            "mode": "external",
            "host": database_host,
            "port": database_port,
            "name": database_name,
            "existingSecret": database_secret,
            "sslMode": ssl_mode,
        }
        if database_ca is not None:
            values["database"]["caCertificate"] = database_ca
        if database_cidrs is not None:
            # The egress policy then admits only the database's network, not any address.
            values["networkPolicy"] = {"databaseCIDRs": database_cidrs}
    # A public URL publishes the catalog: Ingress, TLS and the auth proxy (fedeploy/values/exposure.py).
    values.update(exposure_values(spec))
    values.update(assets_values(spec, wiring))
    values.update(browser_values(spec))
    if federation_sites is not None:
        values["federation"] = {
            "enabled": True,
            "sites": federation_sites,
            "schedule": harvest_schedule or "*/15 * * * *",
        }
    return values


def backup_values(
    wiring: SiteWiring, backup: CatalogBackup, bucket: Any, drill_secret: str | None = None
) -> dict[str, Any]:
    """The catalog chart's `backup` values: barman-cloud to the site's bucket under the prefix,
    with the site's static storage keys or, on aws, the backup identity's own role; the restore
    drill on its schedule where `drill_secret` names its read-only role's Secret, reading the
    backups as an identity of its own (its role on aws, its keys where it has any, else the
    site's)."""
    role = wiring.role_arns.get(CATALOG_BACKUP_SERVICE_ACCOUNT)
    drill_role = wiring.role_arns.get(CATALOG_DRILL_SERVICE_ACCOUNT)
    endpoint = wiring.storage_endpoint
    port = (
        endpoint.apply(storage_port) if hasattr(endpoint, "apply") else storage_port(endpoint or "")
    )
    return {
        "enabled": True,
        "bucket": bucket,
        "prefix": backup.prefix,
        "endpoint": endpoint,
        "region": wiring.storage_region,
        "existingSecret": ""
        if role is not None
        else wiring.secret_for(CATALOG_BACKUP_SERVICE_ACCOUNT),
        "retentionDays": backup.retention_days,
        "baseBackupIntervalHours": backup.base_backup_interval_hours,
        "storePort": port,
        # The store's addresses where the stack file names them; else the chart's 0.0.0.0/0.
        **({"storeCIDRs": list(backup.store_cidrs)} if backup.store_cidrs else {}),
        "serviceAccount": {
            "name": CATALOG_BACKUP_SERVICE_ACCOUNT,
            "annotations": {IRSA_ANNOTATION: role} if role is not None else {},
        },
        "drill": {
            "enabled": backup.drill.enabled and drill_secret is not None,
            "schedule": backup.drill.schedule,
            "existingSecret": drill_secret or "",
            "serviceAccount": {
                "name": CATALOG_DRILL_SERVICE_ACCOUNT,
                "annotations": {IRSA_ANNOTATION: drill_role} if drill_role is not None else {},
            },
            "credentialsSecret": ""
            if drill_role is not None
            else wiring.secret_for(CATALOG_DRILL_SERVICE_ACCOUNT),
        },
    }


def _agency_sources(
    sentinel: Any, eumetsat_secret: str, polytope_secret: str = "", eodag_secret: str = ""
) -> dict[str, Any]:
    """The ECMWF, EUMETSAT, Polytope and EODAG sources as the chart's `sentinel` values (only
    those set, so a site without them renders as before), with their Secrets' names and the
    EODAG sources' image."""
    values: dict[str, Any] = {}
    if sentinel.ecmwf:
        values["ecmwfSources"] = [
            {
                "name": source.name,
                "url": str(source.url).rstrip("/"),
                "model": source.model,
                "resol": source.resol,
                "stream": source.stream,
                "type": source.type,
                "steps": list(source.steps),
                "params": list(source.params),
                "times": list(source.times),
                "datetime": source.datetime,
                "maxProductMiB": source.max_product_mib,
                **({"levtype": source.levtype} if source.levtype else {}),
                **({"levelist": list(source.levelist)} if source.levelist else {}),
                **({"bbox": list(source.bbox)} if source.bbox else {}),
                **({"downloadHosts": list(source.download_hosts)} if source.download_hosts else {}),
            }
            for source in sentinel.ecmwf
        ]
    if sentinel.eumetsat:
        values["eumetsatSources"] = [
            {
                "name": source.name,
                "url": str(source.url).rstrip("/"),
                "collections": list(source.collections),
                "datetime": source.datetime,
                "maxProductMiB": source.max_product_mib,
                **({"bbox": list(source.bbox)} if source.bbox else {}),
                **({"maxItems": source.max_items} if source.max_items else {}),
                **({"downloadHosts": list(source.download_hosts)} if source.download_hosts else {}),
            }
            for source in sentinel.eumetsat
        ]
        values["eumetsatCredentialsSecret"] = eumetsat_secret
    if sentinel.polytope:
        values["polytopeSources"] = [
            {
                "name": source.name,
                "url": str(source.url).rstrip("/"),
                "collection": source.collection,
                "requests": [dict(request) for request in source.requests],
                "maxProductMiB": source.max_product_mib,
                "maxWaitMinutes": source.max_wait_minutes,
                **({"bbox": list(source.bbox)} if source.bbox else {}),
                **({"downloadHosts": list(source.download_hosts)} if source.download_hosts else {}),
            }
            for source in sentinel.polytope
        ]
        values["polytopeCredentialsSecret"] = polytope_secret
    if sentinel.eodag:
        values["eodagSources"] = [
            {
                "name": source.name,
                "provider": source.provider,
                "collections": list(source.collections),
                "datetime": source.datetime,
                "assets": list(source.assets),
                **({"url": str(source.url).rstrip("/")} if source.url else {}),
                **({"bbox": list(source.bbox)} if source.bbox else {}),
                **({"maxItems": source.max_items} if source.max_items else {}),
                **({"tokenUrl": str(source.token_url)} if source.token_url else {}),
                **({"downloadHosts": list(source.download_hosts)} if source.download_hosts else {}),
            }
            for source in sentinel.eodag
        ]
        values["eodagCredentialsSecret"] = eodag_secret
        values["eodagImage"] = image_values(sentinel.eodag_image)
    return values


def _copy_settings(sentinel: Sentinel) -> dict[str, Any]:
    """The copy settings the stack file sets, as the chart's `sentinel` values (only those
    set: a site without them renders as before, with the service's defaults)."""
    chosen = {
        "copyMinRateKiBs": sentinel.copy_min_rate_kib_s,
        "httpTimeoutSeconds": sentinel.http_timeout_seconds,
        "partSizeMiB": sentinel.part_size_mib,
        "maxAssetGiB": sentinel.max_asset_gib,
    }
    return {key: value for key, value in chosen.items() if value is not None}


def image_values(reference: str) -> dict[str, str]:
    """A chart's `image` values of `repository[:tag][@sha256:digest]`."""
    rest, _, digest = reference.partition("@")
    repository, tag = rest, ""
    if ":" in rest.rsplit("/", 1)[-1]:
        repository, tag = rest.rsplit(":", 1)
    return {"repository": repository, "tag": tag, "digest": digest, "pullPolicy": "IfNotPresent"}


def ingestion_values(
    wiring: SiteWiring,
    spec: IngestionService,
    *,
    bucket: Any,
    catalog: str,
    sentinel_secret: str,
    mqtt_secret: str,
    cluster_cidrs: Any = None,
    wis2_secret: str = "",
    eumetsat_secret: str = "",
    polytope_secret: str = "",
    eodag_secret: str = "",
) -> dict[str, Any]:
    """Values of the ingestion chart: Sentinel sources and the edge stream consumer.

    `cluster_cidrs` (the cluster's pod and node ranges): left out of the Sentinel workers'
    egress to the internet and refused by their downloads."""
    values = _common(wiring, "ingestion")
    values["storage"] = _storage(wiring, bucket, "ingestion")
    values["catalog"] = {"url": catalog}
    if cluster_cidrs is not None:
        values["networkPolicy"] = {"clusterCIDRs": cluster_cidrs}
    if spec.sentinel is not None and spec.sentinel.enabled:
        values["sentinel"] = {
            "enabled": True,
            "schedule": spec.sentinel.schedule,
            "parallelism": spec.sentinel.parallelism,
            "credentialsSecret": sentinel_secret,
            "sources": [
                {
                    "name": source.name,
                    "url": str(source.url).rstrip("/"),
                    "collections": list(source.collections),
                    "bbox": list(source.bbox),
                    "datetime": source.datetime,
                    "assets": list(source.assets),
                    "maxCloudCover": source.max_cloud_cover,
                    **(
                        {"downloadHosts": list(source.download_hosts)}
                        if source.download_hosts
                        else {}
                    ),
                }
                for source in spec.sentinel.sources
            ],
            **_agency_sources(spec.sentinel, eumetsat_secret, polytope_secret, eodag_secret),
            **_copy_settings(spec.sentinel),
        }
    else:
        values["sentinel"] = {"enabled": False}
    if spec.stream is not None and spec.stream.enabled:
        values["stream"] = {
            "enabled": True,
            "replicas": spec.stream.replicas,
            "previousReplicas": spec.stream.previous_replicas,
            "windowSeconds": spec.stream.window_seconds,
            "mqtt": {
                "host": spec.stream.mqtt.host,
                "port": spec.stream.mqtt.port,
                "tls": spec.stream.mqtt.tls,
                "caCertificate": spec.stream.mqtt.ca_certificate or "",
                "topics": list(spec.stream.mqtt.topics),
                "existingSecret": mqtt_secret,
            },
        }
        wis2 = spec.stream.wis2
        values["stream"]["wis2"] = (
            {
                "enabled": True,
                "host": wis2.host,
                "port": wis2.port,
                "topics": list(wis2.topics),
                "downloadHosts": list(wis2.download_hosts),
                "existingSecret": wis2_secret,
            }
            if wis2 is not None
            else {"enabled": False}
        )
    else:
        values["stream"] = {"enabled": False}
    return values


def inference_values(
    wiring: SiteWiring,
    spec: InferenceService,
    *,
    bucket: Any,
    catalog: str,
    gpu: bool,
    bridge: dict[str, Any] | None,
) -> dict[str, Any]:
    """Values of the inference chart: the model, GPU placement, autoscaling and the bridge."""
    values = _common(wiring, "inference")
    values["storage"] = _storage(wiring, bucket, "inference")
    values["catalog"] = {"url": catalog}
    values["model"] = {"name": spec.model, "version": spec.version}
    values["gpu"] = {"enabled": gpu}
    if gpu:
        values["gpu"].update(
            {
                "count": 1,
                "nodeSelector": dict(wiring.gpu_node_selector or {}),
                "tolerations": [
                    {
                        "key": wiring.gpu_taint_key or "nvidia.com/gpu",
                        "operator": "Exists",
                        "effect": "NoSchedule",
                    }
                ],
            }
        )
    values["autoscaling"] = {
        "enabled": True,
        "minReplicas": spec.min_replicas,
        "maxReplicas": spec.max_replicas,
    }
    values["bridge"] = (
        {
            "enabled": True,
            "endpoint": bridge["endpoint"],
            "existingSecret": bridge["secret_name"],
            "partition": bridge["partition"],
            "caKey": bridge.get("ca_key", ""),
            # The probe's own ping-only account (site.bridge.probe), where the stack file names one.
            **(
                {"probe": {"existingSecret": bridge["probe_secret"]}}
                if bridge.get("probe_secret")
                else {}
            ),
        }
        if bridge
        else {"enabled": False}
    )
    return values


def wants_gpu(spec: InferenceService, cluster_has_gpu: bool) -> bool:
    """Whether the inference server runs on GPU nodes on this site."""
    return spec.gpu == "on" or (spec.gpu == "auto" and cluster_has_gpu)
