"""A compromised member site cannot steer the hub's harvester off its own origin (unit, loopback
HTTP servers only): its landing page and `next` links name the next request's URL, method, body
and headers, and its redirects are followed with the method and body."""

from __future__ import annotations

import gzip
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from fedeploy_ingestion.catalog import CatalogClient
from fedeploy_ingestion.harvest import (
    MAX_PAGE_BYTES,
    MAX_REASON_CHARS,
    Harvester,
    HostileAnswer,
    MemberOrigin,
    SiteUnreachable,
)
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.settings import HarvestSettings

Route = Callable[[str, str], tuple[int, dict[str, str], bytes]]


class Server:
    """A loopback HTTP server answering `route(method, path)`; it records every request."""

    def __init__(self, route: Route) -> None:
        server = self
        self.requests: list[tuple[str, str]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                server.requests.append((self.command, self.path))
                status, headers, body = route(self.command, self.path)
                self.send_response(status)
                for name, value in headers.items():
                    if value != "(none)":  # "(none)": no such header (the body ends at close)
                        self.send_header(name, value)
                if "content-length" not in headers:
                    self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = do_PUT = _any  # noqa: N815

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def as_json(document: Any, status: int = 200) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(document).encode()


def landing(search_href: str) -> dict[str, Any]:
    return {
        "type": "Catalog",
        "id": "member",
        "description": "a compromised member",
        "stac_version": "1.1.0",
        "conformsTo": [
            "https://api.stacspec.org/v1.0.0/core",
            "https://api.stacspec.org/v1.0.0/item-search",
        ],
        "links": [
            {"rel": "search", "href": search_href, "method": "POST", "type": "application/geo+json"}
        ],
    }


ITEM = {
    "type": "Feature",
    "stac_version": "1.1.0",
    "id": "x",
    "collection": "c",
    "geometry": None,
    "properties": {"datetime": "2024-06-01T00:00:00Z"},
    "assets": {},
    "links": [],
}


@pytest.fixture
def victim() -> Iterator[Server]:
    """Stands for the hub's in-cluster catalog (no authentication): it must see no request."""
    server = Server(lambda method, path: as_json({"ok": True}))
    yield server
    server.stop()


def member(route: Route) -> Server:
    return Server(route)


def settings_for(url: str, hub: str = "http://127.0.0.1:9") -> HarvestSettings:
    return HarvestSettings(
        sources=[{"name": "site-evil", "url": url}], target_url=hub, http_timeout_seconds=5
    )


def harvest_site(url: str) -> Any:
    """One site's harvest (the hub is never reached: the site fails first)."""
    settings = settings_for(url)
    return Harvester(settings, Metrics())._site(settings.sources[0], None)


def pages(url: str) -> Iterator[list[Any]]:
    """The search pages the harvester reads from the member at `url`."""
    settings = settings_for(url)
    return Harvester(settings, Metrics())._pages(settings.sources[0], {"limit": 1})


@pytest.mark.parametrize(
    "next_link",
    [
        # POST the member's JSON to the hub's transactions API
        lambda victim: {
            "rel": "next",
            "href": f"{victim}/collections",
            "method": "POST",
            "body": {"id": "planted", "type": "Collection"},
        },
        lambda victim: {"rel": "next", "href": f"{victim}/collections/c", "method": "GET"},
    ],
    ids=["post-to-hub", "get-elsewhere"],
)
def test_a_next_link_off_the_members_origin_fails_the_site(
    victim: Server, next_link: Callable[[str], dict[str, Any]]
) -> None:
    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/queryables"):
            return as_json({"properties": {}})
        if path.startswith("/search"):
            page = {"type": "FeatureCollection", "features": [ITEM], "links": []}
            page["links"] = [next_link(victim.url)]
            return as_json(page)
        return as_json(landing(f"{site.url}/search"))

    site = member(route)
    try:
        with pytest.raises(HostileAnswer, match="leaves the site's origin"):
            list(pages(site.url))
    finally:
        site.stop()
    assert victim.requests == []


def test_a_landing_page_whose_search_link_points_elsewhere_fails_the_site(victim: Server) -> None:
    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/queryables"):
            return as_json({"properties": {}})
        return as_json(landing(f"{victim.url}/collections/c/items"))

    site = member(route)
    try:
        with pytest.raises(HostileAnswer, match="leaves the site's origin"):
            harvest_site(site.url)
    finally:
        site.stop()
    assert victim.requests == []


def test_a_delete_next_link_on_the_members_own_origin_is_refused() -> None:
    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/queryables"):
            return as_json({"properties": {}})
        if path.startswith("/search"):
            following = {"rel": "next", "href": f"{site.url}/collections/c", "method": "DELETE"}
            return as_json({"type": "FeatureCollection", "features": [ITEM], "links": [following]})
        return as_json(landing(f"{site.url}/search"))

    site = member(route)
    try:
        with pytest.raises(HostileAnswer, match="'DELETE' request"):
            list(pages(site.url))
    finally:
        site.stop()
    assert ("DELETE", "/collections/c") not in site.requests


def test_a_redirect_off_the_members_origin_is_not_followed(victim: Server) -> None:
    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/queryables"):
            return as_json({"properties": {}})
        if path.startswith("/search"):  # 307 keeps the POST and its body
            return 307, {"location": f"{victim.url}/collections"}, b""
        return as_json(landing(f"{site.url}/search"))

    site = member(route)
    try:
        with pytest.raises(HostileAnswer, match="redirect to"):
            harvest_site(site.url)
    finally:
        site.stop()
    assert victim.requests == []


@pytest.mark.parametrize("length", ["declared", "(none)"])
def test_an_oversized_page_is_refused_before_it_is_read_whole(length: str) -> None:
    body = b"[" + b" " * (3 * 1024 * 1024) + b"]"
    headers = {"content-type": "application/json"}
    if length == "(none)":
        headers["content-length"] = "(none)"  # read until the member closes: the bounded read

    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/search"):
            return 200, headers, body
        return as_json(landing(f"{site.url}/search"))

    site = member(route)
    try:
        origin = MemberOrigin("site-evil", site.url, max_bytes=1024 * 1024)
        session = requests.Session()
        session.hooks["response"].append(origin.hook)
        with pytest.raises(HostileAnswer, match="over 1048576"):
            session.post(f"{site.url}/search", json={})
        assert session.get(f"{site.url}/").json()["id"] == "member"  # small answers pass
    finally:
        site.stop()


def test_the_harvester_bounds_its_pages() -> None:
    """The bound is wired into the harvester's own requests (not only MemberOrigin)."""

    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/search"):
            return (
                200,
                {"content-type": "application/json", "content-length": "(none)"},
                (b"[" + b" " * (MAX_PAGE_BYTES + 1) + b"]"),
            )
        return as_json(landing(f"{site.url}/search"))

    site = member(route)
    try:
        with pytest.raises(HostileAnswer, match=f"over {MAX_PAGE_BYTES}"):
            list(pages(site.url))
    finally:
        site.stop()


def test_a_huge_error_page_is_cut_in_the_public_status() -> None:
    def hub_route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if method == "GET":
            return as_json({"code": "NotFound"}, 404)
        return as_json({}, 201)

    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/queryables"):
            return as_json({"properties": {}})
        if path.startswith("/search"):
            return 400, {"content-type": "text/plain"}, b"E" * 200_000
        return as_json(landing(f"{site.url}/search"))

    site, hub = member(route), Server(hub_route)
    try:
        settings = HarvestSettings(
            sources=[{"name": "site-evil", "url": site.url}],
            target_url=hub.url,
            http_timeout_seconds=5,
        )
        report = Harvester(settings, Metrics()).run()
    finally:
        site.stop()
        hub.stop()
    error = report.sites["site-evil"]["error"]
    assert report.sites["site-evil"]["status"] == "failed"
    assert "answered 400" in error
    assert len(error) <= MAX_REASON_CHARS + len("... (cut)") < 200_000


def test_a_member_cannot_name_the_collection_created_in_the_hub() -> None:
    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        return as_json({"id": "fedeploy-site-site-b", "type": "Collection", "links": []})

    def hub_route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        return as_json({"code": "NotFound"}, 404) if method == "GET" else as_json({}, 201)

    site, hub = member(route), Server(hub_route)
    try:
        settings = settings_for(site.url, hub.url)
        harvester = Harvester(settings, Metrics())
        with pytest.raises(HostileAnswer, match="asked for collection 'c'"):
            harvester._ensure_hub_collection(CatalogClient(site.url), settings.sources[0], "c")
    finally:
        site.stop()
        hub.stop()
    assert [m for m, _ in hub.requests] == ["GET"]  # looked up, nothing created


def test_a_decompression_bomb_from_a_member_is_cut_at_the_bound() -> None:
    """64 MiB of zeros in 64 KiB of gzip: read decoded, it once went whole into memory."""
    bomb = gzip.compress(b"0" * (2 * MAX_PAGE_BYTES), compresslevel=9)
    small = gzip.compress(json.dumps({"properties": {"updated": {}}}).encode())

    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        headers = {"content-type": "application/json", "content-encoding": "gzip"}
        return 200, headers, bomb if path.startswith("/queryables") else small

    site = member(route)
    try:
        with pytest.raises(SiteUnreachable, match=f"more than {MAX_PAGE_BYTES} bytes"):
            harvest_site(site.url)
        # a small compressed answer is decoded once, as without the bound
        bounded = CatalogClient(site.url, max_bytes=1024)
        assert bounded.get_collection("c") == {"properties": {"updated": {}}}
    finally:
        site.stop()


def test_a_member_cannot_put_items_in_the_hubs_status_collections() -> None:
    planted = {**ITEM, "collection": "fedeploy-site-site-b"}

    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/queryables"):
            return as_json({"properties": {}})
        if path.startswith("/search"):
            return as_json({"type": "FeatureCollection", "features": [planted], "links": []})
        return as_json(landing(f"{site.url}/search"))

    hub = Server(lambda method, path: as_json({"id": "fedeploy-site-site-b"}))
    site = member(route)
    try:
        settings = settings_for(site.url, hub.url)
        with pytest.raises(HostileAnswer, match="is the hub's"):
            Harvester(settings, Metrics())._site(settings.sources[0], None)
    finally:
        site.stop()
        hub.stop()
    assert [m for m, _ in hub.requests if m != "GET"] == []


def test_an_item_the_hub_refuses_fails_alone_and_the_member_is_harvested() -> None:
    """A member publishing one item the hub's catalog refuses (stac-fastapi-pgstac: 200 with
    `errors`) keeps its place in the federation: its other items are harvested, the site is
    `ok`, and the refused item is counted and named with the catalog's reason."""
    point = {"type": "Point", "coordinates": [11.3, 46.5]}
    features = [
        {**ITEM, "id": "good-1", "geometry": point},
        {**ITEM, "id": "bad"},  # null geometry: pgstac refuses it
        {**ITEM, "id": "good-2", "geometry": point},
    ]
    reason = "Missing or null `geometry` for Item (site-evil.bad). Geometry is required in pgstac."

    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/queryables"):
            return as_json({"properties": {}})
        if path.startswith("/search"):
            return as_json({"type": "FeatureCollection", "features": features, "links": []})
        if path == "/collections/c":
            return as_json({"id": "c", "type": "Collection", "links": []})
        return as_json(landing(f"{site.url}/search"))

    def hub_route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if method == "GET":
            return as_json({"code": "NotFound"}, 404)
        if path == "/collections/c/bulk_items":  # as stac-fastapi-pgstac 7.2 answers
            errors = [{"id": "site-evil.bad", "msg": reason}]
            return as_json({"received": 3, "success": 2, "skipped": 0, "errors": errors})
        return as_json({}, 201)

    site, hub = member(route), Server(hub_route)
    try:
        metrics = Metrics()
        harvester = Harvester(settings_for(site.url, hub.url), metrics)
        recorded: list[dict[str, Any]] = []
        put_collection = harvester.hub.put_collection

        def recording(collection: dict[str, Any]) -> None:
            recorded.append(collection)
            put_collection(collection)

        harvester.hub.put_collection = recording  # type: ignore[method-assign]
        report = harvester.run()
    finally:
        site.stop()
        hub.stop()
    assert report.missing == []
    result = dict(report.sites["site-evil"])
    last_refused = result.pop("last_refused")
    assert result == {
        "status": "ok",
        "mode": "full",
        "items": 2,
        "refused": 1,
        "refused_items": {"c/site-evil.bad": reason},
    }
    assert metrics.items_written.labels("harvest")._value.get() == 2
    assert metrics.sites_unreachable.labels("site-evil")._value.get() == 0
    assert ("POST", "/collections/c/bulk_items") in hub.requests
    status = recorded[-1]["fedeploy:harvest"]
    assert (status["status"], status["items_last_run"], status["items_refused_last_run"]) == (
        "ok",
        2,
        1,
    )
    assert status["items_refused"] == {"c/site-evil.bad": reason}
    # Kept through later clean runs (test_harvest_refusals.py); this run's time and count.
    assert status["last_refused"] == last_refused == {"time": status["last_success"], "count": 1}
    assert "bulk_items" not in json.dumps(status)  # the hub's in-cluster URL is not published


def test_one_id_refused_in_two_collections_counts_twice() -> None:
    """Review RF F1: a member's item id refused in two collections is two refusals, each named
    with its collection and its own reason (keyed by id alone, the second overwrote the first
    and the report said 1)."""
    features = [{**ITEM, "id": "bad", "collection": name} for name in ("c", "d")]

    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/queryables"):
            return as_json({"properties": {}})
        if path.startswith("/search"):
            return as_json({"type": "FeatureCollection", "features": features, "links": []})
        if path in ("/collections/c", "/collections/d"):
            name = path.rsplit("/", 1)[1]
            return as_json({"id": name, "type": "Collection", "links": []})
        return as_json(landing(f"{site.url}/search"))

    def hub_route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if method == "GET":
            return as_json({"code": "NotFound"}, 404)
        if path.endswith("/bulk_items"):
            name = path.split("/")[2]
            errors = [{"id": "site-evil.bad", "msg": f"refused in {name}"}]
            return as_json({"received": 1, "success": 0, "skipped": 0, "errors": errors})
        return as_json({}, 201)

    site, hub = member(route), Server(hub_route)
    try:
        report = Harvester(settings_for(site.url, hub.url), Metrics()).run()
    finally:
        site.stop()
        hub.stop()
    result = report.sites["site-evil"]
    assert (result["status"], result["items"], result["refused"]) == ("ok", 0, 2)
    assert result["refused_items"] == {
        "c/site-evil.bad": "refused in c",
        "d/site-evil.bad": "refused in d",
    }
