"""Polytope answers that attack the run (issue 36 review): compressed and endless answers to the
POST and the polls, a key with a control character, and requests that share one identity.
A hostile server on loopback drives the real PolytopeRun, its store and catalog mocked."""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

import pytest
from fedeploy_ingestion import polytope_plan, polytope_source
from fedeploy_ingestion.metrics import Metrics
from fedeploy_ingestion.polytope_source import PolytopeRun
from fedeploy_ingestion.settings import IngestSettings
from pydantic import ValidationError

KEY = "destine-key-0123456789"
REQUEST = {"class": "d1", "dataset": "climate-dt", "param": "2t", "date": "20300101"}
# 16 MiB of zeros in about 16 KiB of gzip: far above the 64 KiB an answer may decode to.
BOMB = (lambda c: c.compress(b"\0" * (16 << 20)) + c.flush())(zlib.compressobj(9, 8, 31))


def _server(mode: str) -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, hostile: bool) -> None:
            bomb = hostile and mode.startswith("bomb")
            drip = hostile and mode.startswith("drip")
            self.send_response(status)
            self.send_header("Location", "/api/v1/requests/job1")
            self.send_header("Content-Type", "application/json")
            if bomb:
                self.send_header("Content-Encoding", "gzip")
            if drip:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while not stop.is_set():  # one byte a tenth of a second, for ever
                    try:
                        self.wfile.write(b"1\r\n \r\n")
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(0.1)
                return
            body = BOMB if bomb else b'{"status": "queued"}'
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            seen.append("POST")
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._answer(400 if mode == "bomb_post" else 202, mode.endswith("_post"))

        def do_GET(self) -> None:
            seen.append("GET")
            self._answer(202, mode.endswith("_poll"))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def _run(url: str, **source: Any) -> dict[str, str]:
    settings = IngestSettings(
        site="site-one",
        bucket="b",
        catalog_url="http://catalog.invalid",
        polytope_key=KEY,
        http_timeout_seconds=5,
        polytope_sources=[
            {
                "name": "hostile",
                "url": url,
                "privateHosts": ["127.0.0.1"],
                "pollSeconds": 0.05,
                "requests": [REQUEST],
                **source,
            }
        ],
    )
    catalog, store = mock.MagicMock(), mock.MagicMock()
    catalog.get_item.return_value = None
    store.head.return_value = None
    return PolytopeRun(settings, store, catalog, Metrics()).run().failed


@pytest.mark.parametrize("mode", ["bomb_post", "bomb_poll"])
def test_a_compressed_answer_is_decoded_only_up_to_the_bound(mode: str) -> None:
    server = _server(mode)
    url, seen = next(server)
    try:
        failed = _run(url, maxWaitMinutes=0.2)
    finally:
        server.close()
    (message,) = failed.values()
    assert "more than 65536 bytes once decoded" in message
    assert seen == (["POST"] if mode == "bomb_post" else ["POST", "GET"])  # no poll again


@pytest.mark.parametrize("mode", ["drip_post", "drip_poll"])
def test_an_answer_that_drips_fails_at_its_total_deadline(mode: str, monkeypatch) -> None:
    monkeypatch.setattr(polytope_source, "MAX_ANSWER_SECONDS", 1.0)
    server = _server(mode)
    url, _ = next(server)
    started = time.monotonic()
    try:
        failed = _run(url, maxWaitMinutes=0.02)  # 1.2 s
    finally:
        server.close()
    assert time.monotonic() - started < 10
    (message,) = failed.values()
    assert "the answer did not arrive whole in time" in message


def test_a_key_that_is_not_one_printable_line_is_refused_at_load_never_shown() -> None:
    for key in ("destine-key\nX-Leak: 1", '{\n "user_key": "abc"\n}', "key with\x07bell"):
        with pytest.raises(ValidationError) as raised:
            IngestSettings(polytope_key=key)
        text = str([e["msg"] for e in raised.value.errors(include_input=False)])
        assert "ingest_polytope_key" in text and "abc" not in text and "Leak" not in text
    assert IngestSettings(polytope_key=KEY).polytope_key is not None


def test_the_key_is_scrubbed_from_an_error() -> None:
    import httpx
    from fedeploy_ingestion import download_safety
    from fedeploy_ingestion.polytope_source import PolytopeKey
    from fedeploy_ingestion.settings import PolytopeSource

    source = PolytopeSource(name="destine-dt", url="http://127.0.0.1:9", requests=[REQUEST])
    guard = download_safety.AddressGuard.build(private_hosts=["127.0.0.1"])
    for header in (f"Bearer {KEY}", f"EmailKey someone@example.org:{KEY}"):
        key = PolytopeKey(source, header, httpx.Client(), guard)
        text = key.scrub(f"Illegal header value b'{header}' ({KEY})")
        assert KEY not in text and "***" in text


def _base(**changes: Any) -> dict[str, Any]:
    return {
        "class": "d1",
        "dataset": "climate-dt",
        "param": "2t/tp",
        "date": "20300101/to/20300131",
        "time": "0000/0600",
        **changes,
    }


def test_order_matters_where_it_means_other_data() -> None:
    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return polytope_plan.digest("destination-earth", a) == polytope_plan.digest(
            "destination-earth", b
        )

    finland = _base(area="70.1/19.0/59.5/31.6")
    assert not same(finland, _base(area="70.1/31.6/59.5/19.0"))  # W and E swapped
    assert not same(finland, _base(area="59.5/19.0/70.1/31.6"))  # N and S swapped
    assert not same(_base(grid="0.1/0.25"), _base(grid="0.25/0.1"))
    # sets are still sets, and one request in other spellings is one product
    assert same(_base(param="2t/tp", time="0000/0600"), _base(param=["tp", "2t"], time="0600/0000"))
    assert same(_base(date="20300101"), _base(date="2030-01-01"))
    assert same(_base(param=["2t/tp"]), _base(param="2t/tp"))
    assert same(_base(param="2T/TP"), _base(param="2t/tp"))
    assert same(_base(levelist=1000), _base(levelist=1000.0))
    assert same(_base(area="70.10/19/59.5/31.6"), _base(area=[70.1, 19.0, 59.5, 31.6]))


def test_two_requests_with_one_identity_are_refused_at_load() -> None:
    finland = _base(area="70.1/19.0/59.5/31.6")
    source = {"name": "destine-dt", "requests": [finland, _base(area="70.1/31.6/59.5/19.0")]}
    assert IngestSettings(polytope_sources=[source]).polytope_sources  # two areas: two products
    again = dict(finland, date="2030-01-01/to/2030-01-31", param="TP/2T")
    with pytest.raises(
        ValidationError,
        match=r"destine-dt.requests\[1\] is the same request as "
        r"destine-dt.requests\[0\]",
    ):
        IngestSettings(polytope_sources=[{"name": "destine-dt", "requests": [finland, again]}])
    # the same request to another Polytope server is the same product: refused too
    other = {"name": "other-dt", "url": "https://polytope.example.org", "requests": [finland]}
    with pytest.raises(ValidationError, match=r"other-dt.requests\[0\] is the same request"):
        IngestSettings(polytope_sources=[{"name": "destine-dt", "requests": [finland]}, other])


def test_a_read_cut_midway_is_read_again_from_its_start_and_checked() -> None:
    """The host cuts the first read of a 12 MiB GRIB2 message after 6 MiB and answers a Range
    read with junk: the second read asks no Range, and junk is refused as not GRIB."""
    from fedeploy_ingestion import download_safety
    from fedeploy_ingestion.polytope_source import PolytopeKey, PolytopeResult
    from fedeploy_ingestion.settings import PolytopeSource

    size = 12 << 20
    grib = b"GRIB\0\0\0\x02" + size.to_bytes(8, "big") + b"\0" * (size - 20) + b"7777"
    reads: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            asked = self.headers.get("Range")
            reads.append(asked)
            if asked:
                start = int(asked.split("=")[1].split("-")[0])
                body = (b"NOT GRIB, junk " * size)[: size - start]
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            else:
                body = grib if len(reads) > 1 else grib[: 6 << 20]
                self.send_response(200)
            self.send_header("Content-Length", str(size if not asked else len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        source = PolytopeSource(
            name="hostile", url=url, privateHosts=["127.0.0.1"], requests=[REQUEST]
        )
        guard = download_safety.AddressGuard.build(private_hosts=["127.0.0.1"])
        http = download_safety.guarded_client(guard, 10)
        key = PolytopeKey(source, f"Bearer {KEY}", http, guard)
        result = PolytopeResult(f"{url}/api/v1/downloads/x", http, key, 64 << 20, grib=True)
        chunks, _, _ = result.open(0)
        with pytest.raises(Exception):  # noqa: B017 - cut: the transport's or the framing's
            b"".join(chunks)
        chunks, start, total = result.open(5 << 20)  # what copy_from asks after one 5 MiB part
        assert (start, total) == (0, size)
        assert b"".join(chunks) == grib
        assert reads == [None, None]  # no Range: the junk a resumed read would get is never read
    finally:
        server.shutdown()
        server.server_close()


def _three(url: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": "hostile",
        "url": url,
        "privateHosts": ["127.0.0.1"],
        "pollSeconds": 0.05,
        "requests": [dict(REQUEST, date=f"2030010{day}") for day in (1, 2, 3)],
        **changes,
    }


def _settings(source: dict[str, Any], **changes: Any) -> IngestSettings:
    return IngestSettings(
        site="site-one",
        bucket="b",
        catalog_url="http://catalog.invalid",
        polytope_key=KEY,
        http_timeout_seconds=5,
        polytope_sources=[source],
        **changes,
    )


def _polytope_run(settings: IngestSettings) -> dict[str, str]:
    catalog, store = mock.MagicMock(), mock.MagicMock()
    catalog.get_item.return_value = None
    store.head.return_value = None
    return PolytopeRun(settings, store, catalog, Metrics()).run().failed


def test_requests_are_all_submitted_then_polled_together() -> None:
    server = _server("queued")
    url, seen = next(server)
    started = time.monotonic()
    try:
        failed = _polytope_run(_settings(_three(url, maxWaitMinutes=0.02)))  # 1.2 s each
    finally:
        server.close()
    took = time.monotonic() - started
    assert seen[:3] == ["POST"] * 3 and "POST" not in seen[3:]
    assert len(failed) == 3 and all("(maxWaitMinutes)" in m for m in failed.values())
    assert took < 3.0  # one wait of 1.2 s, not three after each other (3.6 s)


def test_requests_still_queued_at_the_end_of_the_runs_budget_fail() -> None:
    server = _server("queued")
    url, _ = next(server)
    started = time.monotonic()
    try:
        failed = _polytope_run(_settings(_three(url), polytope_run_minutes=0.01))  # 0.6 s
    finally:
        server.close()
    assert time.monotonic() - started < 3.0
    assert len(failed) == 3
    assert all("end of the run's budget (INGEST_POLYTOPE_RUN_MINUTES" in m for m in failed.values())


def test_sigterm_prints_and_pushes_the_outcomes_so_far(monkeypatch, capsys) -> None:
    import os
    import signal

    from fedeploy_ingestion import catalog, cli, outcome

    server = _server("queued")
    url, _ = next(server)
    for name, value in {
        "INGEST_SITE": "site-one",
        "INGEST_BUCKET": "b",
        "INGEST_CATALOG_URL": "http://catalog.invalid",
        "INGEST_POLYTOPE_SOURCES": json.dumps([_three(url, maxWaitMinutes=1)]),
        "INGEST_POLYTOPE_KEY": KEY,
        "INGEST_PUSHGATEWAY_URL": "http://pushgateway.invalid",
    }.items():
        monkeypatch.setenv(name, value)
    store = mock.MagicMock()
    store.head.return_value = None
    monkeypatch.setattr(cli, "_store", lambda settings: store)
    monkeypatch.setattr(
        catalog, "CatalogClient", lambda url: mock.MagicMock(**{"get_item.return_value": None})
    )
    pushed = mock.MagicMock()
    monkeypatch.setattr(outcome, "push_sentinel", pushed)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    try:
        assert cli.main(["sentinel"]) == 1
    finally:
        timer.cancel()
        server.close()
    assert time.monotonic() - started < 10
    report = json.loads(capsys.readouterr().out)
    assert report["polytope"]["failed"]["(run)"] == "stopped by SIGTERM before it finished"
    assert report["polytope"]["found"] == 3
    assert pushed.call_args.args[3:] == (0, 1)  # registered, failed
    assert signal.getsignal(signal.SIGTERM) is not None
