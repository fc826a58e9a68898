"""The built ingestion image run as the hub catalog chart's harvest CronJob runs it (the example
hub's rendered manifests): it copies a member site's items into the hub's catalog."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from loopback import PostgresServer, StacApiServer
from loopback.asset_server import AssetServer
from loopback.sentinel_upstream import load, make_items
from tests.images.chart_run import chart_command, container_of, podman_run_args
from tests.images.conftest import podman

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _ids(url: str) -> list[str]:
    answer = httpx.post(f"{url}/search", json={"limit": 1000}, timeout=30)
    answer.raise_for_status()
    return sorted(feature["id"] for feature in answer.json()["features"])


def test_harvest_copies_a_member_sites_items_into_the_hub(
    images, manifests, postgres: PostgresServer, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    assets = AssetServer(tmp_path / "files").start()
    member = StacApiServer(postgres.create_database(f"member_{suffix}"), tmp_path / "m").start()
    hub = StacApiServer(postgres.create_database(f"hub_{suffix}"), tmp_path / "hub").start()
    items = make_items(assets, 3, {"B04": 1024})
    load(member.url, items)
    chart = container_of(manifests("catalog", "hub"), "CronJob", "catalog-harvest")
    env = {
        "HARVEST_SOURCES": json.dumps([{"name": "member", "url": member.url}]),
        "HARVEST_TARGET_URL": hub.url,
    }
    try:
        assert _ids(hub.url) == []
        done = podman("run", "--rm", *podman_run_args(chart, env),
                      *chart_command(chart, images["ingestion"]), timeout=240)  # fmt: skip
        report = json.loads(done.stdout)
        assert report["sites"]["member"]["items"] == len(items), report
        # The hub names each copy after its site: ids stay unique across the federation.
        assert _ids(hub.url) == sorted(f"member.{item['id']}" for item in items)
    finally:
        hub.stop()
        member.stop()
        assets.stop()
