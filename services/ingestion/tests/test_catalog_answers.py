"""Review rere33 F5 and F6: what a catalog answers is bounded in kind, size and time.

F5: an answer to a search by ids that is not a page of the items asked (an id that is a list
or an object, a count of 5000 digits, JSON nested 100,000 deep) is SearchRefused, as
CatalogClient.find promises, so a Sentinel run stops searching for the run (it raised
TypeError, ValueError or RecursionError: 3 searches and 6 GETs for 6 items, not 1 search).

F6: the per-item GET (the fallback once a search is refused, and the older per-item path) read
its answer whole, however large (a 100 MiB answer took the process to 350 MiB), and however
slowly it came (one byte every 0.5 s held it 190 s): an item's answer is now read up to
MAX_ITEM_ANSWER_BYTES, and every answer must have come whole within the client's
`answer_seconds`. Loopback servers of this file's own.
"""

from __future__ import annotations

import contextlib
import gc
import http.server
import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fedeploy_ingestion import catalog as catalog_module
from fedeploy_ingestion.catalog import CatalogClient, SearchRefused
from fedeploy_ingestion.errors import CatalogError

from services.ingestion.tests.test_sentinel_lookup import (
    LookupCatalog,
    fingerprint_of,
    holding,
    lookup_run,
    search_client,
)

# --- F5: what is not a page of the items asked is SearchRefused --------------------------


def _item(**fields: Any) -> str:
    return json.dumps({"collection": "c", "properties": {}, **fields})


NOT_A_PAGE = {
    "an id that is a list": '{"features": [' + _item(id=["a"]) + "]}",
    "an id that is an object": '{"features": [' + _item(id={"a": 1}) + "]}",
    "an id that is a number": '{"features": [' + _item(id=1) + "]}",
    "a count of 5000 digits": '{"features": [], "numberMatched": ' + "9" * 5000 + "}",
    "a context count of 5000 digits": '{"features": [], "context": {"matched": '
    + "9" * 5000
    + "}}",
    "nested 100,000 deep": "[" * 100_000 + "]" * 100_000,
    "a feature nested 100,000 deep": '{"features": [' + "[" * 100_000 + "]" * 100_000 + "]}",
    "properties nested 100,000 deep": '{"features": [{"id": "a", "properties": '
    + '{"p": ' * 100_000
    + "1"
    + "}" * 100_000
    + "}]}",
    "not UTF-8": '{"features": [{"id": "\udcff"}]}',
    "a list": "[]",
    "features that are an object": '{"features": {}}',
}


@pytest.mark.parametrize("body", list(NOT_A_PAGE.values()), ids=list(NOT_A_PAGE))
def test_an_answer_that_is_not_a_page_is_a_refusal_whatever_it_holds(body: str) -> None:
    content = body.encode("utf-8", "surrogateescape")  # "not UTF-8": a lone 0xff byte
    client = search_client(
        lambda request: httpx.Response(
            200, content=content, headers={"content-type": "application/json"}
        )
    )
    with pytest.raises(SearchRefused, match="POST http://catalog.test/search"):
        client.find("c", ["a", "b"], ["fp"])


class OddAnswers(LookupCatalog):
    """A site catalog whose searches answer an item whose id is a list."""

    def _answer(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/search":
            self.requests.append((request.method, request.url.path))
            return httpx.Response(200, json={"features": [{"id": ["x"], "properties": {}}]})
        return super()._answer(request)


def test_a_run_searches_once_when_an_answer_is_not_a_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Six items in pages of two: one search, then each item asked by GET (3 searches and 6
    GETs before)."""
    catalog = OddAnswers()
    names = [f"item-{n}" for n in range(6)]
    for name in names[:3]:
        holding(catalog, name, fingerprint_of(name))
    run, copied = lookup_run(monkeypatch, names, catalog, page_size=2)
    report = run.run()
    assert report.failed == {} and report.skipped == 3 and sorted(copied) == names[3:]
    assert (catalog.searches(), catalog.gets()) == (1, 6)


# --- F6: an answer's size and time are bounded -------------------------------------------

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


class Loopback:
    """A loopback HTTP/1.1 server; `answer(handler)` writes each answer. `sent`: the body
    bytes it has written."""

    def __init__(self, answer: Handler) -> None:
        server = self
        self.sent = 0

        class Request(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with contextlib.suppress(OSError):  # the client let go
                    answer(self)
                self.close_connection = True

            do_GET = do_POST = do_PUT = _any  # noqa: N815

        self.server = server
        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Request)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def loopback() -> Iterator[Callable[[Handler], Loopback]]:
    started: list[Loopback] = []

    def start(answer: Handler) -> Loopback:
        started.append(Loopback(answer))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def _headers(handler: http.server.BaseHTTPRequestHandler, length: int | None = None) -> None:
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    if length is None:
        handler.send_header("transfer-encoding", "chunked")
    else:
        handler.send_header("content-length", str(length))
    handler.end_headers()


def _chunk(handler: http.server.BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


HUGE = 48 * 1024 * 1024


def huge_item(server: list[Loopback]) -> Handler:
    """An item of HUGE bytes, announced (content-length) and written 64 KiB at a time."""
    piece = b" " * (64 * 1024)

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        head = b'{"id": "a", "collection": "c", "properties": {}, "pad": "'
        _headers(handler, HUGE)
        handler.wfile.write(head)
        written = len(head)
        while written < HUGE - 2:
            data = piece[: HUGE - 2 - written]
            handler.wfile.write(data)
            written += len(data)
            server[0].sent = written
        handler.wfile.write(b'"}')

    return answer


def _peak(call: Callable[[], Any]) -> tuple[int, BaseException | None]:
    gc.collect()
    tracemalloc.start()
    try:
        try:
            call()
        except Exception as error:  # noqa: BLE001 - returned to the test
            return tracemalloc.get_traced_memory()[1], error
        return tracemalloc.get_traced_memory()[1], None
    finally:
        tracemalloc.stop()


def test_an_items_answer_is_read_up_to_its_bound(
    loopback: Callable[[Handler], Loopback],
) -> None:
    """A GET of one item answered with 48 MiB: refused once MAX_ITEM_ANSWER_BYTES (32 MiB, the
    largest item a page of the copy or the harvest holds, review rw33 F4) came, the process's
    memory not much above that bound (it was read whole before)."""
    server: list[Loopback] = []
    server.append(loopback(huge_item(server)))
    client = CatalogClient(server[0].url, timeout=10)
    peak, error = _peak(lambda: client.get_item("c", "a"))
    assert isinstance(error, CatalogError), error
    assert "more than" in str(error) and "/collections/c/items/a" in str(error)
    bound = getattr(catalog_module, "MAX_ITEM_ANSWER_BYTES", 0)
    assert 0 < bound <= 32 * 1024 * 1024 < HUGE
    assert peak < bound + 8 * 1024 * 1024, peak


def test_an_items_write_answer_is_read_up_to_its_bound(
    loopback: Callable[[Handler], Loopback],
) -> None:
    """Where the catalog has no bulk endpoint (405), each item is POSTed: of its answer (the
    item echoed) only MAX_WRITE_ECHO_BYTES are read, the status says it was stored (review rw33
    F4: an echo over the item bound failed the write of a stored item)."""
    server: list[Loopback] = []
    huge = huge_item(server)

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        if handler.path.endswith("/bulk_items"):
            body = b'{"code": "MethodNotAllowed"}'
            handler.send_response(405)
            # the server closes each connection: the POST must not race it on this one
            handler.send_header("connection", "close")
            handler.send_header("content-length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        else:
            huge(handler)

    server.append(loopback(answer))
    client = CatalogClient(server[0].url, timeout=10)
    item = {"id": "a", "collection": "c", "type": "Feature", "properties": {}}
    peak, error = _peak(lambda: client.upsert_items("c", [item]))
    assert error is None, error
    assert peak < 8 * 1024 * 1024, peak


def trickle(server: list[Loopback], lasting: float, head: bytes) -> Handler:
    """An answer whose body comes a byte every 0.1 s, for `lasting` seconds, then ends."""

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        _headers(handler)
        _chunk(handler, head)
        ends = time.monotonic() + lasting
        while time.monotonic() < ends:
            time.sleep(0.1)
            _chunk(handler, b" ")
            server[0].sent += 1
        _chunk(handler, b"}" if head.startswith(b"{") else b"")
        handler.wfile.write(b"0\r\n\r\n")

    return answer


ITEM_HEAD = b'{"id": "a", "collection": "c", "properties": {}'


def test_a_trickling_items_answer_is_refused_at_the_whole_answer_deadline(
    loopback: Callable[[Handler], Loopback],
) -> None:
    """Each byte comes well within the read timeout (10 s): only the whole-answer deadline
    (1 s here) ends it. It came whole after 6 s before (a hostile one never ends)."""
    server: list[Loopback] = []
    server.append(loopback(trickle(server, 6.0, ITEM_HEAD)))
    client = CatalogClient(server[0].url, timeout=10, answer_seconds=1.0)
    began = time.monotonic()
    with pytest.raises(CatalogError, match=r"within 1 s"):
        client.get_item("c", "a")
    assert time.monotonic() - began < 3.0


def test_a_trickling_search_answer_is_a_refusal(
    loopback: Callable[[Handler], Loopback],
) -> None:
    """A search answered by a trickle is refused for the run (its items are asked by GET)."""
    server: list[Loopback] = []
    server.append(loopback(trickle(server, 6.0, b'{"features": []')))
    client = CatalogClient(server[0].url, timeout=10, answer_seconds=1.0)
    began = time.monotonic()
    with pytest.raises(SearchRefused, match=r"within 1 s"):
        client.find("c", ["a"], ["fp"])
    assert time.monotonic() - began < 3.0


def test_headers_that_do_not_come_are_bounded_by_the_deadline_too(
    loopback: Callable[[Handler], Loopback],
) -> None:
    """A catalog that holds its headers back longer than the deadline: the read timeout is
    cut to the deadline (10 s read timeout, 1 s deadline)."""

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        time.sleep(6.0)
        _headers(handler, len(ITEM_HEAD) + 1)
        handler.wfile.write(ITEM_HEAD + b"}")

    client = CatalogClient(loopback(answer).url, timeout=10, answer_seconds=1.0)
    began = time.monotonic()
    with pytest.raises(CatalogError):
        client.get_item("c", "a")
    assert time.monotonic() - began < 3.0


def test_the_deadline_is_twice_the_read_timeout_unless_given() -> None:
    assert CatalogClient("http://catalog.test", timeout=30).answer_seconds == 60
    http = httpx.Client(timeout=httpx.Timeout(5, read=45))
    assert CatalogClient("http://catalog.test", http=http).answer_seconds == 90
    assert CatalogClient("http://catalog.test", http=httpx.Client(timeout=None)).answer_seconds > 0


def test_an_answer_in_time_is_read_whole(loopback: Callable[[Handler], Loopback]) -> None:
    server: list[Loopback] = []
    server.append(loopback(trickle(server, 0.5, ITEM_HEAD)))
    client = CatalogClient(server[0].url, timeout=10, answer_seconds=5.0)
    assert client.get_item("c", "a") == {"id": "a", "collection": "c", "properties": {}}
