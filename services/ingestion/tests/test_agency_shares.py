"""The agencies' sources share the run's time as the Sentinel sources do: each ECMWF, EUMETSAT,
EODAG and Polytope source gets an equal share of what is left of INGEST_RUN_DEADLINE_SECONDS
(from the run's start, less its margin) among itself and the sources after it. A stalled
upstream's product fails at its source's share, naming it; the source takes no more products
(`<source>:budget`) and the next source copies its own, well before the run's deadline. The
upstreams are loopback stand-ins made to stall (test_direct_body.ScriptedHost); the site side
is stubbed (the copy drains the product's stream; register keeps the item)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from fedeploy_ingestion import cli, sentinel
from fedeploy_ingestion.ecmwf_open_data import EcmwfRun
from fedeploy_ingestion.eodag_source import EodagRun
from fedeploy_ingestion.eumetsat import EumetsatRun
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.polytope_source import PolytopeRun
from fedeploy_ingestion.product_copy import AgencyRun, ProductReport, run_share
from fedeploy_ingestion.settings import IngestSettings

from loopback.ecmwf_open_data import OpenDataServer, publish
from loopback.eumetsat_data_store import DataStoreServer
from services.ingestion.tests.agency_site import stubbed
from services.ingestion.tests.test_direct_body import ScriptedHost, headers
from services.ingestion.tests.test_ecmwf_hostile import RUN, _Catalog, _source, _Store
from services.ingestion.tests.test_polytope_hostile import _polytope_run, _server, _settings, _three

pytestmark = pytest.mark.timeout(60)
KEY, SECRET = "consumer-key-7", "consumer-secret"
SEVIRI = "EO:EUM:DAT:MSG:HRSEVIRI"
DAY = datetime(2026, 12, 5, tzinfo=UTC)
# 6 s less its margin (0.6 s) between two sources: 2.7 s for the first.
DEADLINE = 6.0


def drip(pieces: int = 60) -> list[bytes | float]:
    """A byte every 0.5 s: every read comes within the read timeout, the rate floor's window
    (60 s) never ends, and the copy's deadline is 10 minutes away."""
    return [p for _ in range(pieces) for p in (0.5, b"x")]


def assert_cut_at_share(text: str) -> None:
    """`text` says the copy ended at source slow's share, a half of the run's 5.4 s."""
    assert text.startswith(
        "source slow: its share of the run's time (1/2 of what was left of "
        "INGEST_RUN_DEADLINE_SECONDS=6 s less 0.6 s to register): not done within "
    ), text
    within = re.search(r"within (\d+(?:\.\d+)?) s$", text)
    # 2.7 s, less what the run took before the source began (Polytope's: its submissions)
    assert within and 2.2 <= float(within.group(1)) <= 2.7, text


def assert_slow_cut_fast_copied(
    run: AgencyRun, copied: list[str], **now: datetime
) -> ProductReport:
    """`run` over sources `slow` and `fast` (two products each; `slow`'s stall) ends well
    before the run's 5.4 s: `slow`'s first product cut at its share, its second not tried,
    `fast`'s two copied. The run's report."""
    began = time.monotonic()
    report = run.run(**now)
    assert time.monotonic() - began < 4.5
    cut = [
        text
        for name, text in report.failed.items()
        if not name.endswith(":budget") and not text.startswith("ready but not copied")
    ]
    assert len(cut) == 1, report.failed
    assert_cut_at_share(cut[0])
    assert "spent after 1 products" in report.failed["slow:budget"]
    assert len(copied) == 2
    return report


def config(**values: Any) -> IngestSettings:
    return IngestSettings(
        site="site-a",
        bucket="b",
        s3_endpoint_url="http://127.0.0.1:1",
        s3_region="us-east-1",
        eumetsat_consumer_key=KEY,
        eumetsat_consumer_secret=SECRET,
        **values,
    )


@pytest.fixture
def open_data(tmp_path: Path):
    """Two open-data servers of one tree (the run of 5 December 00 UTC, step 0): `slow`'s
    sends the GRIB2 file's bytes one every 0.5 s (its requests redirected to a dripping
    host), `fast`'s serves them at once."""
    root = tmp_path / "open-data"
    relative, entries = publish(root, RUN, 0, ["2t", "msl", "10u"])
    first = next(e for e in entries if e["param"] == "2t")
    start, end = first["_offset"], first["_offset"] + first["_length"] - 1
    size = (root / relative).stat().st_size
    answer = (
        f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{end}/{size}\r\n"
        f"Content-Length: {end - start + 1}\r\n\r\n"
    ).encode()
    dripping = ScriptedHost([answer, *drip()])
    slow, fast = OpenDataServer(root).start(), OpenDataServer(root).start()
    slow.redirect(relative, f"http://127.0.0.1:{dripping.port}/data.grib2")
    yield slow, fast
    for server in (slow, fast):
        server.stop()
    dripping.stop()


def ecmwf_sources(slow: str, fast: str) -> list[dict[str, Any]]:
    # `slow` also asks for step 6 (not published): the product it would try after its share.
    return [
        _source("slow", slow, steps=[0, 6], params=["2t"]),
        _source("fast", fast, params=["msl"]),
    ]


def test_a_dripping_ecmwf_product_ends_at_its_sources_share_and_the_next_source_copies(
    open_data: tuple[OpenDataServer, OpenDataServer],
) -> None:
    slow, fast = open_data
    catalog = _Catalog()
    settings = config(
        ecmwf_sources=ecmwf_sources(slow.base, fast.base), run_deadline_seconds=DEADLINE
    )
    run = EcmwfRun(settings, _Store(), catalog, Metrics())  # type: ignore[arg-type]
    copied = stubbed(run, catalog)
    began = time.monotonic()
    report = run.run(now=datetime(2026, 12, 5, 6, tzinfo=UTC))
    elapsed = time.monotonic() - began
    assert elapsed < 4.5  # slow's share (2.7 s), then fast's copy; the run's time is 5.4 s
    cut = [text for name, text in report.failed.items() if not name.endswith(":budget")]
    assert len(cut) == 1, report.failed
    assert_cut_at_share(cut[0])
    assert "left for the next run" in report.failed["slow:budget"]  # step 6 not tried
    assert not report.unpublished
    assert len(copied) == 1 and "-0h-msl/" in copied[0]  # fast's product


def test_an_ecmwf_host_that_never_answers_ends_at_its_sources_share(tmp_path: Path) -> None:
    silent = ScriptedHost([30.0])  # accepts, reads the request, answers nothing
    root = tmp_path / "open-data"
    publish(root, RUN, 0, ["2t", "msl"])
    fast = OpenDataServer(root).start()
    try:
        catalog = _Catalog()
        sources = ecmwf_sources(f"http://127.0.0.1:{silent.port}", fast.base)
        run = EcmwfRun(
            config(ecmwf_sources=sources, run_deadline_seconds=DEADLINE),
            _Store(),
            catalog,
            Metrics(),  # type: ignore[arg-type]
        )
        copied = stubbed(run, catalog)
        began = time.monotonic()
        report = run.run(now=datetime(2026, 12, 5, 6, tzinfo=UTC))
        assert time.monotonic() - began < 4.5  # the read timeout is 60 s
    finally:
        fast.stop()
        silent.stop()
    cut = [text for name, text in report.failed.items() if not name.endswith(":budget")]
    assert len(cut) == 1 and "source slow: its share of the run's time" in cut[0], cut
    assert "slow:budget" in report.failed
    assert len(copied) == 1


@pytest.fixture
def data_stores(tmp_path: Path):
    """Two Data Store stand-ins with two products of 5 December: `slow`'s downloads are
    answered by a host that sends the headers, then a byte every 0.5 s."""
    dripping = ScriptedHost([headers(64 * 1024), *drip()])
    servers = []
    for name in ("slow", "fast"):
        server = DataStoreServer(tmp_path / name, KEY, SECRET).start()
        for hour in (0, 6):
            moment = DAY + timedelta(hours=hour)
            product = f"MSG4-SEVI-MSG15-0100-NA-{moment:%Y%m%d%H%M%S}.000000000Z-NA"
            server.add(SEVIRI, product, moment)
            if name == "slow":
                server.redirect(
                    server.download_path(SEVIRI, product),
                    f"http://127.0.0.1:{dripping.port}/product.zip",
                )
        servers.append(server)
    yield servers
    for server in servers:
        server.stop()
    dripping.stop()


def eumetsat_source(name: str, server: DataStoreServer) -> dict[str, Any]:
    return {
        "name": name,
        "url": server.endpoints(),
        "privateHosts": ["127.0.0.1"],
        "collections": [SEVIRI],
        "datetime": "2026-12-05T00:00:00Z/2026-12-06T00:00:00Z",
    }


def test_a_dripping_eumetsat_download_ends_at_its_sources_share_and_the_next_source_copies(
    data_stores: list[DataStoreServer],
) -> None:
    slow, fast = data_stores
    catalog = _Catalog()
    settings = config(
        eumetsat_sources=[eumetsat_source("slow", slow), eumetsat_source("fast", fast)],
        run_deadline_seconds=DEADLINE,
    )
    run = EumetsatRun(settings, _Store(), catalog, Metrics())  # type: ignore[arg-type]
    copied = stubbed(run, catalog)
    assert_slow_cut_fast_copied(run, copied, now=DAY + timedelta(days=1))


def test_the_shares_count_from_the_runs_start_across_the_agencies(
    open_data: tuple[OpenDataServer, OpenDataServer], data_stores: list[DataStoreServer]
) -> None:
    # One ECMWF source that drips, then one EUMETSAT source: the ECMWF one gets half of the
    # run's time from its start (2.7 s), the EUMETSAT one copies in what is left.
    slow = open_data[0]
    fast = data_stores[1]
    catalog = _Catalog()
    settings = config(
        ecmwf_sources=[_source("slow", slow.base, params=["2t"])],
        eumetsat_sources=[eumetsat_source("fast", fast)],
        run_deadline_seconds=DEADLINE,
    )
    started = time.monotonic()
    time.sleep(0.6)  # the Sentinel sources' time, say: counted in the split
    ecmwf = EcmwfRun(settings, _Store(), catalog, Metrics(), started=started)  # type: ignore[arg-type]
    stubbed(ecmwf, catalog)
    report = ecmwf.run(now=datetime(2026, 12, 5, 6, tzinfo=UTC))
    assert 2.9 < time.monotonic() - started < 4.0  # (5.4 - 0.6) / 2 = 2.4 s after the sleep
    (text,) = report.failed.values()
    within = re.search(r"not done within (\d+(?:\.\d+)?) s$", text)
    assert within and 2.0 <= float(within.group(1)) <= 2.4, text
    eumetsat = EumetsatRun(settings, _Store(), catalog, Metrics(), started=started)  # type: ignore[arg-type]
    copied = stubbed(eumetsat, catalog)
    assert not eumetsat.run(now=DAY + timedelta(days=1)).failed
    assert len(copied) == 2 and time.monotonic() - started < 5.4


def test_each_agency_source_gets_an_equal_share_of_what_is_left() -> None:
    settings = config(
        sources=[{"name": "sen2", "collections": ["c"], "assets": ["a"]}],
        ecmwf_sources=[_source("ifs", "https://data.example.org")],
        eodag_sources=[
            {"name": "cdse", "provider": "cop_dataspace", "collections": ["c"], "assets": ["a"]}
        ],
        run_deadline_seconds=1000.0,
    )
    now = time.monotonic()
    shares = [
        run_share(settings, now, kind, 0, name)
        for kind, name in (("sentinel", "sen2"), ("ecmwf", "ifs"), ("eodag", "cdse"))
    ]
    assert [round(s.seconds) if s else None for s in shares] == [300, 450, 900]
    assert run_share(config(run_deadline_seconds=None), now, "ecmwf", 0, "ifs") is None


def test_an_eodag_source_stops_at_its_share(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = config(
        eodag_sources=[
            {"name": n, "provider": "cop_dataspace", "collections": ["c"], "assets": ["B04"]}
            for n in ("slow", "fast")
        ],
        run_deadline_seconds=2.0,
    )
    run = EodagRun(settings, None, None, Metrics())  # type: ignore[arg-type]
    monkeypatch.setattr("fedeploy_ingestion.eodag_source.gateway", lambda: None)
    searched: list[str] = []

    def eodag_source(dag: Any, source: Any, now: Any) -> None:
        searched.append(source.name)
        while source.name == "slow" and not run._spent(source, 1):
            assert run._budget is not None
            time.sleep(0.01)  # a stalled copy, which its share ends

    run._eodag_source = eodag_source  # type: ignore[method-assign]
    began = time.monotonic()
    report = run.run()
    # (2 - 0.2) / 2 = 0.9 s, with 2.5 s of slack for shared cores (without a share: never)
    assert 0.8 < time.monotonic() - began < 3.4
    assert searched == ["slow", "fast"] and list(report.failed) == ["slow:budget"]
    assert report.failed["slow:budget"].startswith("source slow: its share of the run's time")


def test_the_cli_gives_every_run_the_same_start(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    for name, value in {
        "INGEST_SITE": "site-a",
        "INGEST_BUCKET": "b",
        "INGEST_CATALOG_URL": "http://catalog.invalid",
        "INGEST_S3_REGION": "eu-west-1",
        "INGEST_SOURCES": '[{"name": "sen2", "collections": ["c"], "assets": ["a"]}]',
    }.items():
        monkeypatch.setenv(name, value)
    starts: list[float | None] = []

    class Recorded:
        def __init__(self, *args: Any, started: float | None = None) -> None:
            starts.append(started)
            self.report = sentinel.SentinelReport()

        def run(self) -> None:
            time.sleep(0.05)

    monkeypatch.setattr(sentinel, "SentinelRun", Recorded)
    monkeypatch.setattr(cli, "_agency_runs", lambda settings: {"ecmwf": Recorded})
    monkeypatch.setattr(cli, "_store", lambda settings: None)
    assert cli.main(["sentinel"]) == cli.EXIT_OK
    assert len(starts) == 2 and starts[0] == starts[1] and starts[0] is not None


def grib(size: int = 4096) -> bytes:
    """One GRIB edition 2 message of `size` bytes (what GribFraming passes)."""
    return b"GRIB\0\0\0\x02" + size.to_bytes(8, "big") + b"\0" * (size - 20) + b"7777"


@pytest.fixture
def polytopes() -> Iterator[list[str]]:
    """Two Polytope stand-ins that answer a request with 303 to its result at once: `slow`'s
    result sends its headers, then a byte every 0.5 s; `fast`'s comes whole."""
    urls, servers, stop = [], [], threading.Event()
    for dripping in (True, False):

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            drips = dripping

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(303)
                self.send_header("Location", "/api/v1/downloads/result")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                body = grib()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for start in range(0, len(body), 1 if self.drips else len(body)):
                    if stop.is_set():
                        return
                    try:
                        self.wfile.write(body[start : start + (1 if self.drips else len(body))])
                        self.wfile.flush()
                    except (OSError, ValueError):  # closed: the client gave up
                        return
                    if self.drips:
                        time.sleep(0.5)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        urls.append(f"http://127.0.0.1:{server.server_address[1]}")
    yield urls
    stop.set()
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_dripping_polytope_result_ends_at_its_sources_share_and_the_next_source_copies(
    polytopes: list[str],
) -> None:
    request = {"class": "d1", "dataset": "climate-dt", "param": "2t", "date": "20300101"}
    settings = config(
        polytope_key="destine-key-0123456789",
        polytope_sources=[
            {
                "name": name,
                "url": url,
                "privateHosts": ["127.0.0.1"],
                "requests": [
                    dict(request, param=param),
                    dict(request, param=param, date="20300102"),
                ],
            }
            for name, url, param in zip(("slow", "fast"), polytopes, ("2t", "msl"), strict=True)
        ],
        run_deadline_seconds=DEADLINE,
    )
    store = mock.MagicMock()
    store.head.return_value = None
    catalog = _Catalog()
    run = PolytopeRun(settings, store, catalog, Metrics())  # type: ignore[arg-type]
    copied = stubbed(run, catalog)
    report = assert_slow_cut_fast_copied(run, copied)
    # slow's second result was ready too: named, not silently left (review agency29 F2)
    ready = [
        text
        for text in report.failed.values()
        if text.startswith("ready but not copied: source slow's share of the run's time passed")
    ]
    assert len(ready) == 1, report.failed


def test_polytope_submissions_whose_answers_drip_end_at_the_runs_time() -> None:
    # Each POST's answer drips (a byte every 0.1 s, 60 s allowed an answer): the first ends
    # at the run's time less its margin (2.7 s), the other two are not sent.
    server = _server("drip_post")
    url, seen = next(server)
    started = time.monotonic()
    try:
        failed = _polytope_run(_settings(_three(url), run_deadline_seconds=3.0))
    finally:
        server.close()
    assert time.monotonic() - started < 4.5  # three answers of 60 s before
    assert seen == ["POST"] and len(failed) == 3
    first, *others = failed.values()
    assert "the answer did not arrive whole in time" in first
    assert all(
        text.startswith(
            "not submitted: the run's budget (INGEST_POLYTOPE_RUN_MINUTES 300, cut "
            "to what INGEST_RUN_DEADLINE_SECONDS=3 s leaves after its margin) has passed"
        )
        for text in others
    ), others


def _submitted_against(pieces: list[bytes | float]) -> tuple[float, dict[str, str]]:
    """(seconds taken, failures) of a Polytope run (three requests, run's time 3 s) whose host
    answers the first POST with `pieces` (test_direct_body.ScriptedHost)."""
    host = ScriptedHost(pieces)
    started = time.monotonic()
    try:
        failed = _polytope_run(
            _settings(_three(f"http://127.0.0.1:{host.port}"), run_deadline_seconds=3.0)
        )
    finally:
        host.stop()
    return time.monotonic() - started, failed


@pytest.mark.parametrize(
    "pieces",
    [
        # the status line and headers a byte every 0.2 s, each read well within the read
        # timeout (58 s before: each byte restarted it)
        [
            p
            for byte in b"HTTP/1.1 202 Accepted\r\nLocation: /api/v1/requests/1\r\nX-Pad: "
            + b"a" * 200
            for p in (0.2, bytes([byte]))
        ],
        [60.0],  # no answer at all (the read timeout, 5 s, before)
    ],
    ids=["headers-drip", "never-answers"],
)
def test_a_polytope_post_whose_headers_do_not_arrive_ends_at_the_runs_time(
    pieces: list[bytes | float],
) -> None:
    took, failed = _submitted_against(pieces)
    assert took < 4.5, failed
    first, *others = failed.values()
    assert ": the answer: not done within " in first, first
    assert len(others) == 2 and all(text.startswith("not submitted: ") for text in others)


@pytest.mark.parametrize(
    "limits",
    [{"run_deadline_seconds": 6.0}, {"polytope_run_minutes": 0.1}],
    ids=["run-deadline", "polytope-minutes"],
)
def test_a_ready_polytope_result_is_copied_while_another_request_stays_queued(
    limits: dict[str, float],
) -> None:
    # Before, the polls took the whole run's time and the ready result was then cut (or not
    # read at all, and not named) at the end of it (review agency29 F2).
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, location: str | None = None) -> None:
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if b"20300101" in body:  # ready at once
                self._send(303, b"", "/api/v1/downloads/result")
            else:  # queued for ever
                self._send(202, b'{"status": "queued"}', "/api/v1/requests/2")

        def do_GET(self) -> None:
            if self.path.startswith("/api/v1/downloads/"):
                self._send(200, grib())
            else:
                self._send(202, b'{"status": "queued"}', "/api/v1/requests/2")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    request = {"class": "d1", "dataset": "climate-dt", "param": "2t", "date": "20300101"}
    settings = config(
        polytope_key="destine-key-0123456789",
        polytope_sources=[
            {
                "name": "pol",
                "url": f"http://127.0.0.1:{server.server_address[1]}",
                "privateHosts": ["127.0.0.1"],
                "pollSeconds": 0.2,
                "requests": [request, dict(request, date="20300102")],
            }
        ],
        **limits,
    )
    store = mock.MagicMock()
    store.head.return_value = None
    catalog = _Catalog()
    run = PolytopeRun(settings, store, catalog, Metrics())  # type: ignore[arg-type]
    copied = stubbed(run, catalog)
    try:
        report = run.run()
    finally:
        server.shutdown()
        server.server_close()
    assert len(copied) == 1, report.failed
    (text,) = report.failed.values()  # the queued one, at the end of the run's time
    assert text.startswith("the request is still queued at the end of the run's budget"), text
