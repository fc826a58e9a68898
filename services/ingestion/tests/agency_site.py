"""A site's settings and one run of an agency source kind, for the agencies' loopback tests."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.object_store import ObjectStore, s3_client
from fedeploy_ingestion.product_copy import AgencyRun, ProductReport
from fedeploy_ingestion.sentinel_plan import CopiedAsset
from fedeploy_ingestion.settings import IngestSettings

from loopback import SeaweedS3


def site_settings(s3: SeaweedS3, bucket: str, **values: Any) -> IngestSettings:
    """Site `site-a` on the SeaweedFS `s3` with `bucket`, 5 MiB parts, and `values`."""
    return IngestSettings(
        site="site-a",
        bucket=bucket,
        s3_endpoint_url=s3.endpoint.endpoint_url,
        s3_region=s3.endpoint.region,
        part_size_mib=5,
        **values,
    )


def run_kind(
    kind: type[AgencyRun],
    config: IngestSettings,
    s3: SeaweedS3,
    catalog_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[ProductReport, ObjectStore]:
    """One run of `kind` into the site's bucket and the catalog at `catalog_url`."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.endpoint.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.endpoint.secret_access_key)
    store = ObjectStore(s3_client(config.s3_endpoint_url, config.s3_region, "auto"), config.bucket)
    return kind(config, store, CatalogClient(catalog_url), Metrics()).run(), store


def stubbed(run: AgencyRun, catalog: Any) -> list[str]:
    """The site side of `run` stubbed: a copy drains its source (`open(0)`), a registration
    keeps the item in `catalog.items` by (collection, item id); the keys copied, in order."""
    copied: list[str] = []

    def copy(key: str, source: Any, **_: Any) -> CopiedAsset:
        chunks, _, _ = source().open(0)
        body = b"".join(chunks)
        copied.append(key)
        return CopiedAsset(key, len(body), hashlib.sha256(body).digest())

    def register(collection: dict[str, Any], item: dict[str, Any]) -> None:
        catalog.items[(collection["id"], item["id"])] = item

    run.sink.copy = copy  # type: ignore[method-assign]
    run.sink.register = register  # type: ignore[method-assign]
    return copied
