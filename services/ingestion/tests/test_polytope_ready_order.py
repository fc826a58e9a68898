"""Polytope results copied as soon as they are ready, whatever order they become ready in
(review poly29): each source's share of the run's time is an equal part of what is left among
the Polytope sources that still have results to copy, charged only while its own copies run, so
a later source's slow copy never takes an earlier source's time and a source's share does not
pass while its requests wait in Polytope's queue. A scripted Polytope stand-in per source."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

import pytest
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.polytope_source import PolytopeRun

from services.ingestion.tests.agency_site import stubbed
from services.ingestion.tests.test_agency_shares import config, grib
from services.ingestion.tests.test_ecmwf_hostile import _Catalog

pytestmark = pytest.mark.timeout(60)
REQ = {"class": "d1", "dataset": "climate-dt", "param": "2t"}


def server(plan: dict[str, dict[str, Any]], events: list):
    """plan[date] = {post: 303|202|int, ready_after: s after POST (202), result: ok|drip|500}."""
    t0 = time.monotonic()
    posted: dict[str, float] = {}
    stop = threading.Event()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _send(self, status, body=b"", location=None):
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            date = re.search(r"20\d{6}", body).group(0)
            p = plan[date]
            posted[date] = time.monotonic()
            events.append(("POST", date, round(time.monotonic() - t0, 2)))
            if p.get("post", 202) == 303:
                self._send(303, b"", f"/api/v1/downloads/{date}")
            elif p.get("post", 202) == 202:
                self._send(202, b'{"status": "queued"}', f"/api/v1/requests/{date}")
            else:
                self._send(p["post"], b'{"message": "nope"}')

        def do_GET(self):
            date = self.path.rsplit("/", 1)[1]
            p = plan[date]
            if "/downloads/" in self.path:
                events.append(("GET", date, round(time.monotonic() - t0, 2)))
                r = p.get("result", "ok")
                if r == "500":
                    return self._send(500, b"boom")
                body = grib()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                step = 1 if r == "drip" else len(body)
                for s in range(0, len(body), step):
                    if stop.is_set():
                        return
                    try:
                        self.wfile.write(body[s : s + step])
                        self.wfile.flush()
                    except OSError:
                        return
                    if r == "drip":
                        time.sleep(0.5)
                return
            events.append(("POLL", date, round(time.monotonic() - t0, 2)))
            poll = p.get("poll")
            if poll is not None:
                return self._send(poll, b"not json{")
            if time.monotonic() - posted[date] >= p.get("ready_after", 1e9):
                self._send(303, b"", f"/api/v1/downloads/{date}")
            else:
                self._send(202, b'{"status": "queued"}', f"/api/v1/requests/{date}")

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    def close():
        stop.set()
        srv.shutdown()
        srv.server_close()

    return f"http://127.0.0.1:{srv.server_address[1]}", close


def run_sources(sources: list[tuple[str, dict[str, dict]]], **limits):
    events: list = []
    closers, entries = [], []
    for name, plan in sources:
        url, close = server(plan, events)
        closers.append(close)
        entries.append(
            {
                "name": name,
                "url": url,
                "privateHosts": ["127.0.0.1"],
                "pollSeconds": 0.2,
                "requests": [dict(REQ, date=d) for d in plan],
            }
        )
    settings = config(polytope_key="destine-key-0123456789", polytope_sources=entries, **limits)
    store = mock.MagicMock()
    store.head.return_value = None
    catalog = _Catalog()
    run = PolytopeRun(settings, store, catalog, Metrics())  # type: ignore[arg-type]
    copied = stubbed(run, catalog)
    started = time.monotonic()
    try:
        report = run.run()
    finally:
        for c in closers:
            c()
    took = time.monotonic() - started
    return report, copied, took, events


def test_a_later_source_ready_first_does_not_take_the_earlier_sources_time():
    # source a (index 0): one request queued, ready 0.3 s after its POST, result fine.
    # source b (index 1): one request ready at once, its result drips.
    # Before 60316e6: a polled ready at ~0.4 s, a copied first (1/2 share), b cut at its share.
    report, copied, took, _ = run_sources(
        [
            ("aaa", {"20300101": {"post": 202, "ready_after": 0.3}}),
            ("bbb", {"20300201": {"post": 303, "result": "drip"}}),
        ],
        run_deadline_seconds=6.0,
    )
    assert any("20300101" in k for k in copied), report.failed


def test_a_later_sources_slow_copy_does_not_run_on_an_earlier_sources_share():
    # a: one ready at once (fine), one ready 1 s after POST (fine). b (index 1): ready after 0.3 s, drips.
    report, copied, took, _ = run_sources(
        [
            ("aaa", {"20300101": {"post": 303}, "20300102": {"post": 202, "ready_after": 1.0}}),
            ("bbb", {"20300201": {"post": 202, "ready_after": 0.3, "result": "drip"}}),
        ],
        run_deadline_seconds=6.0,
    )
    assert sum("2030010" in k for k in copied) == 2, report.failed


def test_results_ready_in_any_order_are_copied_once_and_failures_fail_alone():
    # mixed: ready in reverse order; one result 500; one poll answers 500 (malformed body); one POST 400.
    report, copied, took, events = run_sources(
        [
            (
                "aaa",
                {
                    "20300101": {"post": 202, "ready_after": 1.2},
                    "20300102": {"post": 202, "ready_after": 0.6, "result": "500"},
                    "20300103": {"post": 202, "ready_after": 0.2},
                    "20300104": {"post": 202, "poll": 500},
                    "20300105": {"post": 400},
                    "20300106": {"post": 303},
                },
            )
        ],
        run_deadline_seconds=20.0,
    )
    assert len(copied) == len(set(copied)) == 3, (copied, report.failed)
    assert set(report.failed) == {
        n for n in report.failed if any(d in n for d in ("20300102", "20300104", "20300105"))
    }
    assert len(report.failed) == 3, report.failed
    gets = [e for e in events if e[0] == "GET"]
    assert len([g for g in gets if g[1] != "20300102"]) == 3, gets


def test_without_a_run_deadline_the_polytope_minutes_still_end_the_polls():
    report, copied, took, _ = run_sources(
        [
            (
                "aaa",
                {
                    "20300101": {"post": 202, "ready_after": 0.5},
                    "20300102": {"post": 303},
                    "20300103": {"post": 202},
                },
            ),
            ("bbb", {"20300201": {"post": 202, "ready_after": 0.3}}),
        ],
        polytope_run_minutes=0.05,
    )
    assert len(copied) == 3, report.failed
    (text,) = report.failed.values()
    assert "still queued" in text


def test_a_sources_share_does_not_pass_while_its_requests_wait_in_the_queue():
    # aaa (index 0): one result ready at once, one ready 3.5 s after its POST (both fast).
    # bbb (index 1): one ready at once (fast). Run 6 s (5.4 s to copy). Nothing is slow.
    # 60316e6 counted aaa's share (2.6 s) on the clock from its first copy at ~0.2 s: it passed
    # while the second request was queued, and that result was left.
    report, copied, took, _ = run_sources(
        [
            ("aaa", {"20300101": {"post": 303}, "20300102": {"post": 202, "ready_after": 3.5}}),
            ("bbb", {"20300201": {"post": 303}}),
        ],
        run_deadline_seconds=6.0,
    )
    assert len(copied) == 3, report.failed
