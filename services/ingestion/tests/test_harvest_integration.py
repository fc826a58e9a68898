"""The federated catalog: two sites' catalogs harvested into a hub, all real pgstac."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.cli import EXIT_SITES_MISSING, main
from fedeploy_ingestion.federated_search import federated_search
from fedeploy_ingestion.federation import status_collection_id
from fedeploy_ingestion.harvest import Harvester
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.observation import Observation
from fedeploy_ingestion.observation_item import observations_collection, window_item
from fedeploy_ingestion.settings import HarvestSettings
from fedeploy_ingestion.windowing import OBSERVATIONS_COLLECTION, window_of

pytestmark = pytest.mark.integration

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def add_windows(url: str, site: str, station: str, hours: list[int]) -> list[str]:
    """Register one observation window per hour offset; each item's `updated` is that hour."""
    catalog = CatalogClient(url)
    catalog.ensure_collection(observations_collection())
    items = []
    for hour in hours:
        moment = T0 + timedelta(hours=hour)
        window = window_of(station, moment, 600)
        rows = [Observation(station, moment, {"air_temperature": 20.0}, 11.3, 46.5)]
        items.append(
            window_item(
                window,
                rows,
                bucket=f"{site}-data",
                site=site,
                size=100,
                sha256=hashlib.sha256(b"x").digest(),
                now=moment,
            )
        )
    catalog.upsert_items(OBSERVATIONS_COLLECTION, items)
    return [i["id"] for i in items]


def hub_ids(url: str) -> list[str]:
    answer = httpx.post(f"{url}/search", json={"limit": 1000}, timeout=30)
    answer.raise_for_status()
    return sorted(f["id"] for f in answer.json()["features"])


@pytest.mark.slow
def test_the_hub_finds_both_sites_items_and_names_a_missing_site(
    catalogs, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site_a, site_b, hub = (catalogs.start(n) for n in ("site-a", "site-b", "hub"))
    a_ids = add_windows(site_a.url, "site-a", "bz-01", [0, 1, 2])
    b_ids = add_windows(site_b.url, "site-b", "tn-07", [0, 5])
    sources = [{"name": "site-a", "url": site_a.url}, {"name": "site-b", "url": site_b.url}]
    settings = HarvestSettings(sources=sources, target_url=hub.url, overlap_seconds=300)

    first = Harvester(settings, Metrics()).run()
    assert first.missing == []
    assert first.sites["site-a"] == {"status": "ok", "mode": "initial", "items": 3}
    expected = sorted([f"site-a.{i}" for i in a_ids] + [f"site-b.{i}" for i in b_ids])
    assert hub_ids(hub.url) == expected

    found = federated_search(hub.url, {"collections": [OBSERVATIONS_COLLECTION]})
    assert not found.partial
    by_id = {item["id"]: item for item in found.items}
    assert sorted(by_id) == expected
    for site, url, ids in (("site-a", site_a.url, a_ids), ("site-b", site_b.url, b_ids)):
        for item_id in ids:
            item = by_id[f"{site}.{item_id}"]
            assert item["properties"]["fedeploy:site"] == site
            canonical = [link["href"] for link in item["links"] if link["rel"] == "canonical"]
            assert canonical and canonical[0].startswith(url)
            assert httpx.get(canonical[0]).json()["id"] == item_id  # the link leads home

    # Site B goes down; site A gets a new window.
    site_b.stop()
    a_new = add_windows(site_a.url, "site-a", "bz-01", [3])
    for name, value in {
        "HARVEST_SOURCES": json.dumps(sources),
        "HARVEST_TARGET_URL": hub.url,
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["harvest"]) == EXIT_SITES_MISSING
    printed = json.loads(capsys.readouterr().out)
    assert printed["missing"] == ["site-b"]
    assert printed["sites"]["site-b"]["status"] == "unreachable"
    assert printed["sites"]["site-a"]["mode"] == "incremental"
    # Only the newest window before it (within the overlap) and the new one were read again.
    assert printed["sites"]["site-a"]["items"] == 2

    partial = federated_search(hub.url, {"collections": [OBSERVATIONS_COLLECTION]})
    assert partial.missing == ["site-b"]
    assert partial.sites["site-b"]["status"] == "unreachable"
    assert "error" in partial.sites["site-b"]
    assert f"site-a.{a_new[0]}" in {item["id"] for item in partial.items}
    assert {f"site-b.{i}" for i in b_ids} <= {item["id"] for item in partial.items}

    # Site B is back: everything is harvested, and harvesting again adds nothing.
    catalogs.restart(site_b)
    again = Harvester(settings, Metrics()).run()
    assert again.missing == []
    assert hub_ids(hub.url) == sorted(expected + [f"site-a.{a_new[0]}"])
    Harvester(settings, Metrics()).run()
    assert hub_ids(hub.url) == sorted(expected + [f"site-a.{a_new[0]}"])
    assert not federated_search(hub.url, {"collections": [OBSERVATIONS_COLLECTION]}).partial


def test_a_site_without_the_updated_queryable_is_harvested_in_full(catalogs, postgres) -> None:
    site, hub = catalogs.start("site-c"), catalogs.start("hub")
    database = site.dsn.rsplit("/", 1)[1]
    postgres.execute(
        database, "SET search_path TO pgstac, public; DELETE FROM queryables WHERE name = 'updated'"
    )
    ids = add_windows(site.url, "site-c", "ao-02", [0, 1])
    settings = HarvestSettings(sources=[{"name": "site-c", "url": site.url}], target_url=hub.url)
    for _ in range(2):
        report = Harvester(settings, Metrics()).run()
        assert report.sites["site-c"] == {"status": "ok", "mode": "full", "items": 2}
    assert hub_ids(hub.url) == sorted(f"site-c.{i}" for i in ids)


class HostileSite:
    """A member catalog on loopback that answers 200 with HTML, or pages forever.

    `mode="html"`: every path is an HTML page. `mode="loop"`: a STAC API whose search page 2
    links `next` to itself.
    """

    def __init__(self, mode: str, item: dict[str, Any]) -> None:
        import http.server
        import threading

        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                site.requests += 1
                self._answer(site.route(self.path))

            def do_POST(self) -> None:  # noqa: N802
                site.requests += 1
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self._answer(site.route(self.path))

            def _answer(self, body: Any) -> None:
                text = body if isinstance(body, str) else json.dumps(body)
                data = text.encode()
                self.send_response(200)
                kind = "text/html" if isinstance(body, str) else "application/json"
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.mode, self.item, self.requests = mode, item, 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def route(self, path: str) -> Any:
        if self.mode == "html":
            return "<!doctype html><html><body>Maintenance</body></html>"
        if path.startswith("/queryables"):
            return {"properties": {}}
        if path.startswith("/collections/"):
            return {**observations_collection(), "links": []}
        if path.startswith("/search"):
            following = {"rel": "next", "href": f"{self.url}/search?token=page2", "method": "GET"}
            return {"type": "FeatureCollection", "features": [self.item], "links": [following]}
        return {
            "type": "Catalog",
            "id": "loop",
            "description": "pages forever",
            "stac_version": "1.1.0",
            "conformsTo": [
                "https://api.stacspec.org/v1.0.0/core",
                "https://api.stacspec.org/v1.0.0/item-search",
            ],
            "links": [{"rel": "search", "href": f"{self.url}/search", "method": "POST"}],
        }

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_site_answering_html_or_paging_forever_fails_alone(
    catalogs, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An HTML body (JSONDecodeError) once stopped the harvest of every remaining site."""
    good, hub = catalogs.start("site-a"), catalogs.start("hub")
    ids = add_windows(good.url, "site-a", "bz-01", [0, 1])
    moment = T0 + timedelta(hours=7)
    item = window_item(
        window_of("tn-07", moment, 600),
        [Observation("tn-07", moment, {"air_temperature": 20.0}, 11.1, 46.1)],
        bucket="loop-data",
        site="site-loop",
        size=100,
        sha256=hashlib.sha256(b"x").digest(),
        now=moment,
    )
    html, loop = HostileSite("html", item), HostileSite("loop", item)
    try:
        sources = [
            {"name": "site-html", "url": html.url},
            {"name": "site-loop", "url": loop.url},
            {"name": "site-a", "url": good.url},
        ]
        monkeypatch.setenv("HARVEST_SOURCES", json.dumps(sources))
        monkeypatch.setenv("HARVEST_TARGET_URL", hub.url)
        assert main(["harvest"]) == EXIT_SITES_MISSING
    finally:
        html.stop()
        loop.stop()
    printed = json.loads(capsys.readouterr().out)
    assert printed["missing"] == ["site-html", "site-loop"]
    assert printed["sites"]["site-a"] == {"status": "ok", "mode": "initial", "items": 2}
    assert printed["sites"]["site-html"]["status"] == "failed"
    assert "JSONDecodeError" in printed["sites"]["site-html"]["error"]
    assert printed["sites"]["site-loop"]["status"] == "failed"
    assert "paginator loops" in printed["sites"]["site-loop"]["error"]
    assert loop.requests < 10
    assert f"site-a.{ids[0]}" in hub_ids(hub.url)
    statuses = CatalogClient(hub.url)
    for name in ("site-html", "site-loop"):
        status = statuses.get_collection(status_collection_id(name))
        assert status is not None, name
        assert status["fedeploy:harvest"]["status"] == "failed"
        assert status["fedeploy:harvest"]["error"] == printed["sites"][name]["error"]
