"""The Sentinel copy's settings from the stack file to the service (review copy28 finding 6):
`copy_min_rate_kib_s`, `http_timeout_seconds`, `part_size_mib` and `max_asset_gib` under
`services.ingestion.sentinel`, the chart's `sentinel` values, the CronJob's INGEST_* variables
(only those set: a site without them renders as before) and the service's settings."""

from __future__ import annotations

from typing import Any

import pytest

from fedeploy.charts import ChartValuesError, pod_template, render_chart
from tests.charts.test_agency_sources import spec
from tests.charts.test_agency_sources import values_of as ingestion_chart_values

SOURCE = {
    "name": "cdse",
    "collections": ["sentinel-2-l2a"],
    "assets": ["B04_10m"],
    "bbox": [5, 45, 11, 48],
}
NAMES = (
    "INGEST_COPY_MIN_RATE_KIB_S",
    "INGEST_HTTP_TIMEOUT_SECONDS",
    "INGEST_PART_SIZE_MIB",
    "INGEST_MAX_ASSET_GIB",
)


def values_of(**sentinel: Any) -> dict[str, Any]:
    """The ingestion chart's values of a site with one Sentinel source and `sentinel` set."""
    return ingestion_chart_values(spec(sources=[SOURCE], **sentinel))


def sentinel_env(charts_dir: Any, values: dict[str, Any]) -> dict[str, str | None]:
    manifests = render_chart(charts_dir / "ingestion", values, "ingestion", "fedeploy")
    cronjob = next(m for m in manifests if m["kind"] == "CronJob")
    return {
        e["name"]: e.get("value") for e in pod_template(cronjob)["spec"]["containers"][0]["env"]
    }


def test_the_copy_settings_reach_the_services_settings(
    charts_dir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fedeploy_ingestion.settings import IngestSettings

    values = values_of(
        copy_min_rate_kib_s=0, http_timeout_seconds=30.5, part_size_mib=32, max_asset_gib=200
    )
    env = sentinel_env(charts_dir, values)
    assert [env[name] for name in NAMES] == ["0", "30.5", "32", "200"]  # 0 (no floor) too
    for name in NAMES:
        monkeypatch.setenv(name, str(env[name]))
    settings = IngestSettings()
    assert (settings.copy_min_rate_kib_s, settings.http_timeout_seconds) == (0, 30.5)
    assert (settings.part_size_mib, settings.max_asset_gib) == (32, 200)


def test_unset_copy_settings_render_nothing(charts_dir: Any) -> None:
    values = values_of()
    assert not {"copyMinRateKiBs", "httpTimeoutSeconds", "partSizeMiB", "maxAssetGiB"} & set(
        values["sentinel"]
    )
    env = sentinel_env(charts_dir, values)
    assert not set(NAMES) & set(env)


@pytest.mark.parametrize(
    ("key", "good", "bad"),
    [("partSizeMiB", 5, 4), ("maxAssetGiB", 0.5, 0), ("copyMinRateKiBs", 0, -1)],
)
def test_the_chart_takes_the_copy_settings_the_service_takes(
    charts_dir: Any, key: str, good: float, bad: float
) -> None:
    values = values_of()
    values["sentinel"][key] = good
    assert sentinel_env(charts_dir, values)
    values["sentinel"][key] = bad
    with pytest.raises(ChartValuesError):
        sentinel_env(charts_dir, values)
