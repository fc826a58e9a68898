"""Value sets for the chart tests: one per kind of site, as the site's stack would set them.

Tests that take the `chart_case` argument run once for every (chart, site) pair below; the
`rendered` fixture renders a case with real Helm once per session.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fedeploy.charts import render_chart

CHARTS_DIR = Path(__file__).resolve().parents[2] / "charts"
NAMESPACE = "fedeploy"

_GPU_NODE_SELECTOR = {"fedeploy.io/accelerator": "nvidia"}
_GPU_TOLERATION = {
    "key": "nvidia.com/gpu",
    "operator": "Equal",
    "value": "present",
    "effect": "NoSchedule",
}
_IRSA = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/fedeploy-aws-eu-services"}
# The catalog release "catalog" in namespace "fedeploy" is served at this address.
_CATALOG_URL = f"http://catalog.{NAMESPACE}.svc.cluster.local:8080"
_SOURCES = [
    {
        "name": "s2-alps",
        "collections": ["sentinel-2-l2a"],
        "bbox": [5.9, 45.8, 10.5, 47.8],
        "datetime": "P2D",
        "assets": ["B04", "B08", "SCL"],
        "maxCloudCover": 40,
    },
    {
        "name": "s1-alps",
        "url": "https://stac.dataspace.copernicus.eu/v1",
        "collections": ["sentinel-1-grd"],
        "bbox": [5.9, 45.8, 10.5, 47.8],
        "datetime": "2025-01-01T00:00:00Z/..",
        "assets": ["vv", "vh"],
        # What the site's stack passes for a SAR source, which has no cloud cover.
        "maxCloudCover": None,
        "maxItems": 200,
    },
]

_EXPOSURE = {
    "enabled": True,
    "url": "https://stac.aws-eu.example.org",
    "controllerNamespace": "ingress-nginx",
    "tls": {"certManagerIssuer": "letsencrypt", "certManagerIssuerKind": "ClusterIssuer"},
}
_AUTH_PROXY = {
    "oidc": {"issuer": "https://login.example.org/realms/eofed", "audience": "eofed-catalog"}
}

# site name -> chart -> values
SITES: dict[str, dict[str, dict[str, Any]]] = {
    # AWS: IAM roles for service accounts, regional S3 without static keys, RDS, GPU nodes.
    "aws": {
        "catalog": {
            "site": {"name": "aws-eu", "kind": "aws"},
            "serviceAccount": {"annotations": _IRSA},
            "database": {
                "mode": "external",
                "host": "fedeploy-aws-eu.abc123.eu-central-1.rds.amazonaws.com",
                "existingSecret": "catalog-db",
                "sslMode": "verify-full",
            },
            "networkPolicy": {
                "allowedNamespaces": ["ingress-nginx"],
                "databaseCIDRs": ["10.20.0.0/16"],
            },
        },
        "ingestion": {
            "site": {"name": "aws-eu", "kind": "aws"},
            "serviceAccount": {"annotations": _IRSA},
            "storage": {"endpoint": "", "region": "eu-central-1", "bucket": "fedeploy-aws-eu-data"},
            "catalog": {"url": _CATALOG_URL},
            "sentinel": {"enabled": True, "parallelism": 6, "sources": _SOURCES},
            "stream": {
                "enabled": True,
                "replicas": 3,
                "mqtt": {
                    "host": "mqtt.aws-eu.example.org",
                    "port": 8883,
                    "topics": ["stations/+/obs"],
                },
            },
        },
        "inference": {
            "site": {"name": "aws-eu", "kind": "aws"},
            "serviceAccount": {"annotations": _IRSA},
            "storage": {"region": "eu-central-1", "bucket": "fedeploy-aws-eu-models"},
            "catalog": {"url": _CATALOG_URL},
            "model": {"name": "nowcast", "version": "20261120T101500Z-1a2b3c4d"},
            "gpu": {
                "enabled": True,
                "count": 1,
                "nodeSelector": _GPU_NODE_SELECTOR,
                "tolerations": [_GPU_TOLERATION],
            },
        },
    },
    # Any existing cluster: S3-compatible store with static keys, in-cluster database, CPU only.
    "kubernetes": {
        "catalog": {
            "site": {"name": "eu-cloud", "kind": "kubernetes"},
            "database": {"mode": "internal", "existingSecret": "catalog-db"},
        },
        "ingestion": {
            "site": {"name": "eu-cloud", "kind": "kubernetes"},
            "storage": {
                "endpoint": "https://s3.eu-cloud.example.org:8443",
                "region": "eu-west-1",
                "bucket": "fedeploy-eu-cloud-data",
                "existingSecret": "s3-credentials",
            },
            "catalog": {"url": _CATALOG_URL},
            "sentinel": {
                "enabled": True,
                "sources": _SOURCES[:1],
                "credentialsSecret": "cdse-login",
            },
            "stream": {
                "enabled": True,
                "mqtt": {
                    "host": "broker.eu-cloud.example.org",
                    "topics": ["stations/+/obs", "buoys/+/obs"],
                    "existingSecret": "mqtt-login",
                },
            },
        },
        "inference": {
            "site": {"name": "eu-cloud", "kind": "kubernetes"},
            "storage": {
                "endpoint": "https://s3.eu-cloud.example.org:8443",
                "region": "eu-west-1",
                "bucket": "fedeploy-eu-cloud-models",
                "existingSecret": "s3-credentials",
            },
            "catalog": {"url": _CATALOG_URL},
            "model": {"name": "nowcast"},
            "autoscaling": {
                "minReplicas": 2,
                "maxReplicas": 6,
                "targetCPUUtilizationPercentage": 60,
            },
        },
    },
    # HPC centre: its S3 store, a generated database password, batch runs through the bridge.
    "hpc": {
        "catalog": {"site": {"name": "hpc-centre", "kind": "hpc"}},
        "ingestion": {
            "site": {"name": "hpc-centre", "kind": "hpc"},
            "storage": {
                "endpoint": "http://s3.hpc.example.org:8333",
                "region": "hpc",
                "bucket": "fedeploy-hpc-data",
                "existingSecret": "s3-credentials",
            },
            "catalog": {"url": _CATALOG_URL},
            "stream": {
                "enabled": True,
                "replicas": 1,
                "windowSeconds": 300,
                # A plain broker inside the centre's network, anonymous: TLS off, as asked.
                "mqtt": {"host": "10.1.2.3", "port": 1883, "tls": False, "topics": ["edge/#"]},
            },
        },
        "inference": {
            "site": {"name": "hpc-centre", "kind": "hpc"},
            "storage": {
                "endpoint": "http://s3.hpc.example.org:8333",
                "region": "hpc",
                "bucket": "fedeploy-hpc-models",
                "existingSecret": "s3-credentials",
            },
            "model": {"name": "nowcast", "version": "latest"},
            "autoscaling": {"enabled": False},
            "bridge": {
                "enabled": True,
                "endpoint": "https://bridge.hpc.example.org:6820",
                "existingSecret": "slurm-bridge",
                "partition": "gpu",
            },
            "retrain": {"enabled": True, "gpus": 1, "arguments": ["--epochs", "50"]},
        },
    },
    # A published catalog: Ingress with a cert-manager certificate, the auth proxy in front of
    # the API, the asset route; an ingress controller namespace beside a monitoring one.
    "published": {
        "catalog": {
            "site": {"name": "eu-public", "kind": "kubernetes"},
            "database": {"mode": "internal", "existingSecret": "catalog-db"},
            "networkPolicy": {"allowedNamespaces": ["monitoring"]},
            "exposure": _EXPOSURE,
            "authProxy": _AUTH_PROXY,
            "assets": {
                "enabled": True,
                "storage": {
                    "endpoint": "https://s3.eu-public.example.org",
                    "region": "eu-west-1",
                    "buckets": ["fedeploy-eu-public-data"],
                    "existingSecret": "s3-credentials",
                },
            },
            # Backups to the site's store, proven by the weekly restore drill.
            "backup": {
                "enabled": True,
                "bucket": "fedeploy-eu-public-raw",
                "endpoint": "https://s3.eu-public.example.org",
                "region": "eu-west-1",
                "existingSecret": "catalog-backup-credentials",
                "drill": {"enabled": True, "existingSecret": "catalog-drill-db"},
            },
        },
    },
    # The hub: only the catalog, harvesting every member site's catalog.
    "hub": {
        "catalog": {
            "site": {"name": "hub", "kind": "hub"},
            "database": {"existingSecret": "catalog-db"},
            "federation": {
                "enabled": True,
                "schedule": "*/15 * * * *",
                "sites": [
                    {"name": "aws-eu", "url": "https://stac.aws-eu.example.org"},
                    {"name": "eu-cloud", "url": "https://stac.eu-cloud.example.org:8443/api"},
                    {"name": "hpc-centre", "url": "http://stac.hpc.example.org:8081"},
                ],
            },
            "networkPolicy": {"allowedNamespaces": ["ingress-nginx", "monitoring"]},
        },
    },
}
# The published catalog through Gateway API: an HTTPRoute on a Gateway instead of the Ingress.
SITES["published-gateway"] = {
    "catalog": {
        **SITES["published"]["catalog"],
        "exposure": {
            **_EXPOSURE,
            "mode": "gateway",
            "gateway": {"name": "public", "namespace": "gateway-system", "sectionName": "https"},
            "controllerNamespace": "gateway-system",
        },
    }
}


@dataclass(frozen=True)
class ChartCase:
    """One chart rendered with one site's values."""

    chart: str
    site: str

    @property
    def chart_dir(self) -> Path:
        return CHARTS_DIR / self.chart

    @property
    def values(self) -> dict[str, Any]:
        return copy.deepcopy(SITES[self.site][self.chart])

    @property
    def release(self) -> str:
        return self.chart

    def __str__(self) -> str:
        return f"{self.chart}-{self.site}"


ALL_CASES = [ChartCase(chart, site) for site, charts in SITES.items() for chart in charts]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chart_case" in metafunc.fixturenames:
        metafunc.parametrize("chart_case", ALL_CASES, ids=str)


_RENDERED: dict[ChartCase, list[dict[str, Any]]] = {}


@pytest.fixture
def rendered() -> Callable[..., list[dict[str, Any]]]:
    """Render a case, or a chart for a site, with real Helm once per session; returns copies.

    `rendered(chart_case)` or `rendered("catalog", "hub")`.
    """

    def render(case: ChartCase | str, site: str | None = None) -> list[dict[str, Any]]:
        if isinstance(case, str):
            if site is None:
                raise TypeError("rendered(chart, site): the site is missing")
            case = ChartCase(case, site)
        if case not in _RENDERED:
            _RENDERED[case] = render_chart(case.chart_dir, case.values, case.release, NAMESPACE)
        return copy.deepcopy(_RENDERED[case])

    return render


@pytest.fixture
def site_charts() -> Callable[[str], list[str]]:
    """The charts a site's value set deploys, e.g. site_charts("hub") == ["catalog"]."""
    return lambda site: list(SITES[site])


@pytest.fixture
def site_values() -> Callable[[str, str], dict[str, Any]]:
    """A copy of the values a site's stack gives one chart: site_values("hpc", "inference")."""
    return lambda site, chart: copy.deepcopy(SITES[site][chart])


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` merged into a copy of `base`, the way Helm coalesces values."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@pytest.fixture
def merge() -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    """The deep merge that Helm applies to values, for building variants of a value set."""
    return deep_merge


@pytest.fixture
def charts_dir() -> Path:
    """The repository's charts/ folder."""
    return CHARTS_DIR
