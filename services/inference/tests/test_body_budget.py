"""Request bodies held at once are bounded for the whole process (INFER_BODY_BUFFER_MIB): the
receive deadline bounds each connection, not their sum, so 100 slow clients each just under
256 MiB held 25 GiB until their deadlines (review arrow28, finding 3). Bytes count as they
arrive (connections that declare a length and send nothing hold nothing: review last28 F2)
and until the request is answered (bodies waiting for a worker thread count: F3). Past the
budget a request is refused 503 with Retry-After and closed; what a body held is given back
however it ends. No model is loaded: every case is decided before one is needed."""

import asyncio
import contextlib

from fedeploy_inference import server as server_module
from fedeploy_inference.arrow_api import ARROW_STREAM
from fedeploy_inference.server import BodyBudget, create_app
from fedeploy_inference.settings import InferenceSettings

from .test_arrow_bounds import _call, _requests, _scope, _stream

MiB = 2**20
SETTINGS = InferenceSettings(bucket="unused", device="cpu", body_buffer_mib=1)


def _busy(answer: dict) -> bool:
    return answer["status"] == 503 and b"INFER_BODY_BUFFER_MIB" in answer["body"]


async def _while_held(app, held: list[bytes], then: list[tuple[dict, list[bytes]]]) -> list[dict]:
    """`then`'s requests while another has sent `held` (an Arrow body) and waits for more."""
    waiting = asyncio.create_task(_call(app, _scope(ARROW_STREAM), held, hold=True))
    await asyncio.sleep(0.05)
    try:
        return [await _call(app, scope, chunks) for scope, chunks in then]
    finally:
        waiting.cancel()  # as uvicorn does when the client goes away
        with contextlib.suppress(asyncio.CancelledError):
            await waiting


def test_a_body_that_would_pass_the_budget_is_refused_503_and_closed():
    app = create_app(SETTINGS, client=object())
    declared = _scope(ARROW_STREAM, {"content-length": str(700_000)})
    chunked_json = _scope("application/json")
    answers = asyncio.run(
        _while_held(
            app,
            [b"x" * 700_000],
            [(declared, [b"x" * 700_000]), (chunked_json, [b" " * 200_000] * 2)],
        )
    )
    assert all(_busy(a) for a in answers), answers
    for answer in answers:
        assert answer["headers"][b"retry-after"] == b"5"
        assert answer["headers"][b"connection"] == b"close"


def test_connections_that_declare_a_length_and_send_nothing_hold_nothing():
    """Four connections each declaring 256 MiB and sending nothing (they would have taken the
    whole 1 GiB budget for minutes): a small request is still read."""
    app = create_app(InferenceSettings(bucket="unused", device="cpu"), client=object())
    idle = _scope(ARROW_STREAM, {"content-length": str(256 * MiB)})
    small = _stream(_requests(2, 24))

    async def main() -> dict:
        waiting = [asyncio.create_task(_call(app, idle, [], hold=True)) for _ in range(4)]
        await asyncio.sleep(0.05)
        try:
            return await _call(app, _scope(ARROW_STREAM), [small])
        finally:
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)

    assert not _busy(asyncio.run(main()))


def test_a_body_counts_until_its_request_is_answered(monkeypatch):
    """A JSON body read whole but waiting for its worker thread still holds its bytes: the
    next body that would pass the budget is refused until the first is answered."""
    release = asyncio.Event()
    real = server_module.run_in_threadpool

    async def slow(function, *args):
        await release.wait()
        return await real(function, *args)

    monkeypatch.setattr(server_module, "run_in_threadpool", slow)
    app = create_app(SETTINGS, client=object())
    body = [b" " * 700_000]
    json = _scope("application/json")

    async def main() -> list[dict]:
        first = asyncio.create_task(_call(app, json, body))
        await asyncio.sleep(0.05)
        try:  # refused at once; before the fix it was read and waited for the thread too
            second = await asyncio.wait_for(_call(app, json, body), 5)
        finally:
            release.set()
        return [second, await first, await _call(app, json, body)]

    second, first, third = asyncio.run(main())
    assert _busy(second)
    assert not _busy(first) and not _busy(third)  # read: refused as JSON, not for room


def test_what_a_body_held_is_given_back_however_it_ended():
    """After a held body is cancelled (the client went away), a refused one, and a read one,
    a body of nearly the whole budget is taken again."""
    app = create_app(SETTINGS, client=object())
    near = _scope(ARROW_STREAM, {"content-length": str(MiB - 10)})
    small = _stream(_requests(2, 24))

    async def main() -> list[dict]:
        refused = await _while_held(app, [b"x" * 700_000], [(near, [b"y" * (MiB - 10)])])
        read = await _call(app, _scope(ARROW_STREAM), [small])
        again = await _call(app, near, [b"y" * (MiB - 10)])
        return [*refused, read, again]

    refused, read, again = asyncio.run(main())
    assert _busy(refused)
    assert not _busy(read) and not _busy(again)  # read, then no model (503 not ready) or 422


def test_a_body_larger_than_the_whole_budget_is_taken_alone():
    budget = BodyBudget(100)
    assert budget.take(250)  # alone: taken
    assert not budget.take(1)
    budget.give(250)
    assert budget.take(60) and not budget.take(41) and budget.take(40)
    app = create_app(SETTINGS, client=object())
    big = _scope(ARROW_STREAM, {"content-length": str(2 * MiB)})
    assert not _busy(asyncio.run(_call(app, big, [b"z" * (2 * MiB)])))


def test_a_body_larger_than_the_budget_is_taken_alone_in_the_chunks_uvicorn_delivers():
    """2 MiB under a 1 MiB budget in 64 KiB chunks, as uvicorn hands them over: read (review
    budget28 F1: each chunk past the limit was refused against the body's own bytes, and every
    retry got the same 503)."""
    app = create_app(SETTINGS, client=object())
    big = _scope(ARROW_STREAM, {"content-length": str(2 * MiB)})
    answer = asyncio.run(_call(app, big, [b"z" * (64 * 1024)] * 32))
    assert not _busy(answer), answer


def test_a_declared_body_that_cannot_fit_is_refused_before_it_is_sent():
    """While another body holds 700 KB of the 1 MiB budget, a body declaring 700,000 bytes is
    refused without one chunk read (review budget28 F3: it was refused after most of it had
    arrived)."""
    app = create_app(SETTINGS, client=object())
    reads = []

    async def counted(scope: dict) -> dict:
        answer: dict = {}

        async def receive():
            reads.append(1)
            return {"type": "http.request", "body": b"x" * 700_000, "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                answer["status"], answer["headers"] = message["status"], dict(message["headers"])
            else:
                answer["body"] = answer.get("body", b"") + message.get("body", b"")

        await app(scope, receive, send)
        return answer

    async def main() -> dict:
        waiting = asyncio.create_task(_call(app, _scope(ARROW_STREAM), [b"x" * 700_000], hold=True))
        await asyncio.sleep(0.05)
        try:
            return await counted(_scope(ARROW_STREAM, {"content-length": str(700_000)}))
        finally:
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiting

    answer = asyncio.run(main())
    assert _busy(answer) and reads == []
