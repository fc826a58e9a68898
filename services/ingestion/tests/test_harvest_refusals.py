"""Review rf2 F1: a member's refused items outlive the run that refused them (unit, loopback HTTP
servers). The cursor moves past a refused item, so the next clean run does not harvest it: the
member's status collection keeps the last refusal (its names, its run's time and count) and
each successful run reports it for the push, until a run refuses anew or an operator removes
it from the status."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import UTC, datetime
from typing import Any

from fedeploy_ingestion.harvest import Harvester
from fedeploy_ingestion.metrics import Metrics

from services.ingestion.tests.test_harvest_hostile import (
    ITEM,
    Server,
    as_json,
    landing,
    member,
    settings_for,
)

STATUS = "fedeploy-site-site-evil"
POINT = {"type": "Point", "coordinates": [11.3, 46.5]}


class Hub:
    """The hub's catalog as the harvest uses it: collections kept by id (POST, 409 when there,
    PUT), items' bulk upserts refusing the ids in `refuse` with stac-fastapi-pgstac's answer."""

    def __init__(self) -> None:
        hub = self
        self.collections: dict[str, dict[str, Any]] = {}
        self.refuse: dict[str, str] = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, document: Any) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> Any:
                return json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))

            def do_GET(self) -> None:  # noqa: N802
                found = hub.collections.get(self.path.rsplit("/", 1)[-1])
                self._answer(200, found) if found else self._answer(404, {"code": "NotFound"})

            def do_POST(self) -> None:  # noqa: N802
                document = self._body()
                if self.path.endswith("/bulk_items"):
                    ids = list(document["items"])
                    errors = [{"id": i, "msg": hub.refuse[i]} for i in ids if i in hub.refuse]
                    received, success = len(ids), len(ids) - len(errors)
                    answer = {"received": received, "success": success, "errors": errors}
                    self._answer(200, answer)
                elif document["id"] in hub.collections:
                    self._answer(409, {"code": "ConflictError"})
                else:
                    hub.collections[document["id"]] = document
                    self._answer(201, document)

            def do_PUT(self) -> None:  # noqa: N802
                document = self._body()
                hub.collections[document["id"]] = document
                self._answer(200, document)

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def status(self) -> dict[str, Any]:
        return dict(self.collections[STATUS]["fedeploy:harvest"])

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def _item(item_id: str, updated: str) -> dict[str, Any]:
    properties = {**ITEM["properties"], "updated": updated}  # type: ignore[dict-item]
    return {**ITEM, "id": item_id, "geometry": POINT, "properties": properties}


def test_a_refusal_is_kept_through_clean_runs_until_refused_anew_or_cleared() -> None:
    served: list[dict[str, Any]] = []

    def route(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/queryables"):
            return as_json({"properties": {"updated": {}}})  # incremental
        if path.startswith("/search"):
            return as_json({"type": "FeatureCollection", "features": served, "links": []})
        if path == "/collections/c":
            return as_json({"id": "c", "type": "Collection", "links": []})
        return as_json(landing(f"{site.url}/search"))

    site, hub = member(route), Hub()

    def run(day: int) -> dict[str, Any]:
        report = Harvester(settings_for(site.url, hub.url), Metrics()).run(
            now=datetime(2024, 6, day, tzinfo=UTC)
        )
        return dict(report.sites["site-evil"])

    reason = "Missing or null `geometry` for Item (site-evil.bad)."
    try:
        served[:] = [_item("good", "2024-06-01T00:00:00Z"), _item("bad", "2024-06-01T00:00:00Z")]
        hub.refuse = {"site-evil.bad": reason}
        first = run(2)
        refusal = {"time": "2024-06-02T00:00:00.000000Z", "count": 1}
        assert first["refused"] == 1
        assert first["last_refused"] == refusal
        assert hub.status()["items_refused"] == {"c/site-evil.bad": reason}
        assert hub.status()["last_refused"] == refusal

        # The member has nothing new; its refused item stays missing from the hub.
        served[:] = []
        second = run(3)
        assert (second["status"], second["items"], "refused" in second) == ("ok", 0, False)
        assert second["last_refused"] == refusal
        status = hub.status()
        assert (status["items_refused_last_run"], status["last_success"]) == (
            0,
            "2024-06-03T00:00:00.000000Z",
        )
        assert status["items_refused"] == {"c/site-evil.bad": reason}
        assert status["last_refused"] == refusal

        # A later run refusing another item replaces the kept names with its own.
        served[:] = [_item("worse", "2024-06-04T00:00:00.000000Z")]
        hub.refuse = {"site-evil.worse": "schema"}
        third = run(4)
        assert third["last_refused"] == {"time": "2024-06-04T00:00:00.000000Z", "count": 1}
        assert hub.status()["items_refused"] == {"c/site-evil.worse": "schema"}

        # An operator who handled it removes both keys from the status (docs/operations.md):
        # the next clean run reports no refusal, so the push clears the alert's time.
        document = hub.collections[STATUS]
        for key in ("last_refused", "items_refused"):
            del document["fedeploy:harvest"][key]
        served[:] = []
        fourth = run(5)
        assert "last_refused" not in fourth
        assert "last_refused" not in hub.status()
        assert "items_refused" not in hub.status()
    finally:
        site.stop()
        hub.stop()


def test_a_failed_run_keeps_the_last_refusal() -> None:
    """A run that misses the member keeps its whole previous status, the refusal included."""
    hub = Hub()
    refusal = {"time": "2024-06-02T00:00:00.000000Z", "count": 3}
    hub.collections[STATUS] = {
        "id": STATUS,
        "fedeploy:harvest": {
            "status": "ok",
            "last_refused": refusal,
            "items_refused": {"c/x": "r"},
        },
    }
    gone = Server(lambda method, path: as_json({"code": "oops"}, 500))
    try:
        report = Harvester(settings_for(gone.url, hub.url), Metrics()).run()
    finally:
        gone.stop()
        hub.stop()
    assert report.sites["site-evil"]["status"] != "ok"
    assert hub.status()["last_refused"] == refusal
    assert hub.status()["items_refused"] == {"c/x": "r"}
