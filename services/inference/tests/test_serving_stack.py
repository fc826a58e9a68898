"""`fedeploy-infer serve`'s uvicorn: httptools' parser and uvloop's event loop where installed,
h11 and asyncio's loop where not (and it still answers); and the event loop keeps answering
health checks while a big Arrow batch is forecast."""

import asyncio
import http.client
import importlib
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
import uvicorn
import uvicorn.protocols.http.auto
from fastapi.testclient import TestClient
from fedeploy_inference import server as server_module
from fedeploy_inference.arrow_api import ARROW_STREAM, table_from_requests, to_stream
from fedeploy_inference.registry import publish
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.server import (
    INLINE_BODY_BYTES,
    create_app,
    serving_stack,
    uvicorn_config,
)

from tests.samples import DATA, request_for

ORIGIN = datetime(2026, 2, 20, 12, tzinfo=UTC)


def _answered_by(listening, config: uvicorn.Config) -> int:
    """Runs the server of `config` in a thread, GETs / once, stops it; the answer's status."""
    with listening(config) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/")
        status = connection.getresponse().status
        connection.close()
        return status


def _probe(loops: list[str]):
    """An ASGI app that notes the module of the event loop it runs on."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        loops.append(type(asyncio.get_running_loop()).__module__)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def test_serve_runs_httptools_and_uvloop_where_installed(listening):
    pytest.importorskip("httptools")
    pytest.importorskip("uvloop")
    loops: list[str] = []
    config = uvicorn_config(_probe(loops), "127.0.0.1", 0, "warning")
    assert serving_stack(config) == ("HttpToolsProtocol", "uvloop")
    assert _answered_by(listening, config) == 200
    assert loops[0].startswith("uvloop")


def test_serve_falls_back_to_h11_and_asyncio_where_they_are_not_installed(monkeypatch, listening):
    monkeypatch.setitem(sys.modules, "httptools", None)  # import fails, as where not installed
    monkeypatch.setitem(sys.modules, "uvloop", None)
    importlib.reload(uvicorn.protocols.http.auto)
    try:
        loops: list[str] = []
        config = uvicorn_config(_probe(loops), "127.0.0.1", 0, "warning")
        assert serving_stack(config) == ("H11Protocol", "asyncio")
        assert _answered_by(listening, config) == 200
        assert loops[0].startswith("asyncio")
    finally:
        monkeypatch.undo()
        importlib.reload(uvicorn.protocols.http.auto)


def test_health_checks_are_answered_while_a_big_arrow_batch_is_forecast(
    settings, trained, small_data, monkeypatch
):
    """A body over INLINE_BODY_BYTES is read and forecast in a worker thread: with its forecast
    held, /healthz is still answered; the batch is answered once released."""
    pair = [
        request_for(small_data.series, "syn-000", ORIGIN),
        request_for(small_data.series, "syn-001", ORIGIN),
    ]
    one = len(to_stream(table_from_requests(pair)))
    # Alternating stations: each request a run of its own.
    big = to_stream(table_from_requests(pair * (2 * INLINE_BODY_BYTES // one + 1)))
    assert len(big) > INLINE_BODY_BYTES
    entered, release = threading.Event(), threading.Event()
    real = server_module.forecast_arrays

    def held(*args, **kwargs):
        entered.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(server_module, "forecast_arrays", held)
    publish(s3_client(settings), settings.bucket, settings.model_name, trained, DATA)
    with TestClient(create_app(settings.model_copy(update={"max_batch": 4096}))) as client:
        for _ in range(300):
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        answers: dict[str, int] = {}
        batch = threading.Thread(
            target=lambda: answers.update(
                batch=client.post(
                    "/v1/predict/batch", content=big, headers={"content-type": ARROW_STREAM}
                ).status_code
            )
        )
        batch.start()
        try:
            assert entered.wait(30), "the batch never reached the model"
            health = threading.Thread(
                target=lambda: answers.update(health=client.get("/healthz").status_code)
            )
            health.start()
            health.join(10)
            assert answers.get("health") == 200, "no health answer while the batch was held"
            assert "batch" not in answers
        finally:
            release.set()
            batch.join(60)
    assert answers["batch"] == 200
