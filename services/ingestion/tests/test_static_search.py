"""The benchmark's upstream (loopback.sentinel_upstream.StaticSearch): the service's own search
reads it as it reads a STAC API, window, collection and pages included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fedeploy_ingestion.settings import Source
from fedeploy_ingestion.stac_client import Paging
from fedeploy_ingestion.upstream import search

from loopback.asset_server import AssetServer
from loopback.sentinel_upstream import COLLECTION, StaticSearch, make_items


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[StaticSearch, AssetServer]]:
    assets = AssetServer(tmp_path / "assets").start()
    static = StaticSearch().start()
    try:
        yield static, assets
    finally:
        static.stop()
        assets.stop()


def test_the_service_search_reads_a_window_over_pages(
    upstream: tuple[StaticSearch, AssetServer],
) -> None:
    static, assets = upstream
    items = make_items(assets, 25, {"B04": 16}, start=datetime(2024, 6, 1, 10, 30, tzinfo=UTC))
    other = {**items[3], "id": "elsewhere", "collection": "sentinel-1-grd"}
    static.add([*items, other])
    source = Source.model_validate(
        {
            "name": "upstream",
            "url": static.url,
            "privateHosts": ["127.0.0.1"],
            "collections": [COLLECTION],
            "assets": ["B04"],
        }
    )
    paging = Paging("source upstream", 10)
    window = "2024-06-03T00:00:00Z/2024-06-14T23:59:59Z"  # days 3 to 14: 12 items
    found = list(search(source, window, {}, paging=paging))
    assert [i["id"] for i in found] == [i["id"] for i in items[2:14]]
    assert paging.pages == 2 and paging.matched == 12 and paging.shortfall() is None
    assert ("POST", "/search") in static.requests
    assert found[0]["assets"]["B04"]["href"].startswith(assets.url)
