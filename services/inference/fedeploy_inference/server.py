"""The HTTP server: health, readiness, metrics and typed prediction endpoints on one model."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import pyarrow as pa
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from fedeploy_inference import __version__
from fedeploy_inference.api_schema import (
    BatchRequest,
    BatchResponse,
    PredictionRequest,
    PredictionResponse,
)
from fedeploy_inference.arrow_api import (
    ARROW_STREAM,
    MAX_BODY_BYTES,
    ArrowBatch,
    ArrowRejected,
    answer_stream,
    check_stream,
    parse_request,
)
from fedeploy_inference.device import resolve_device
from fedeploy_inference.model_watcher import ModelWatcher
from fedeploy_inference.predictor import (
    RequestArrays,
    RequestRejected,
    forecast_arrays,
    predict_requests,
)
from fedeploy_inference.registry import LoadedModel
from fedeploy_inference.s3 import s3_client
from fedeploy_inference.service_metrics import ServiceMetrics
from fedeploy_inference.settings import InferenceSettings

_M = TypeVar("_M", bound=BaseModel)
# Answers are plain lists and dicts: written by pydantic's serializer, no model per lead.
_ANSWER = TypeAdapter(Any)


def to_json(answer: Any) -> bytes:
    """An answer's JSON bytes (datetimes and floats as the response models wrote them)."""
    return _ANSWER.dump_json(answer)


class _Rejected(Exception):
    """Answered as a 422 in FastAPI's own shape, so clients parse one error format."""

    def __init__(self, loc: list[str | int], message: str, reason: str = "invalid") -> None:
        self.loc, self.message, self.reason = loc, message, reason


BATCH_PATH = "/v1/predict/batch"
# Arrow bodies whose headers declare at most these bytes, rows and messages are answered on the
# event loop (512 requests of a day's hourly observations, 1.2 MB and 12,288 rows, are about
# 5 ms of work on one core), one such body per turn of the loop (_InlineTurn); others in a
# worker thread, so that health checks and other requests are answered while a big batch is
# read and forecast. The hand-off costs about 0.1 ms of wall time a call.
INLINE_BODY_BYTES = 2 * 2**20
INLINE_ROWS = 2**14
INLINE_MESSAGES = 64
# The most bytes a JSON body may have (413 past it): 1024 requests (INFER_MAX_BATCH's default)
# of 12 days of hourly observations each, at about 220 bytes an observation (floats at full
# precision); a day each (the model's context) is 5.4 MB.
MAX_JSON_BODY_BYTES = 64 * 2**20
# A body must arrive within this many seconds plus its length at settings.body_receive_rate.
BODY_GRACE_SECONDS = 10.0
# Sent with answers given before a body is read whole: the client's connection is closed,
# so the server neither reads nor buffers the rest.
_CLOSE = {"connection": "close"}


class _InlineTurn:
    """At most one Arrow body answered on the event loop per turn of the loop: the first takes
    the turn, which a callback on the loop's next turn (after it has polled its sockets) gives
    back; bodies ready in the same turn go to worker threads. So a health check waits behind
    one inline body at most, not behind every body that arrived with it."""

    def __init__(self) -> None:
        self.taken = False

    def take(self) -> bool:
        """Takes the turn; False where this turn's is taken."""
        if self.taken:
            return False
        self.taken = True
        asyncio.get_running_loop().call_soon(self._give_back)
        return True

    def _give_back(self) -> None:
        self.taken = False


class BodyBudget:
    """Bytes of request bodies held at once, all connections together: each chunk is taken as
    it arrives and the body's bytes are given back once its request is answered or refused
    (so an idle connection holds nothing, and bodies waiting for a worker thread still
    count). Nothing waits: past the limit the request is refused (503); a body larger than the
    whole limit is taken when nothing else is held."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int, own: int = 0) -> bool:
        """Holds `size` more bytes for a body already holding `own`; False (nothing held)
        where they do not fit and other bodies hold some (a body alone always fits)."""
        if self.used > own and self.used + size > self.limit:
            return False
        self.used += size
        return True

    def fits(self, size: int) -> bool:
        """Whether a body of `size` bytes would fit now (nothing is held by asking)."""
        return not self.used or self.used + size <= self.limit

    def give(self, size: int) -> None:
        """Gives back bytes `take` held."""
        self.used -= size


class InferenceApp(FastAPI):
    """The service's app: FastAPI, except that an Arrow request to BATCH_PATH goes straight to
    `arrow_batch`, a plain ASGI handler, past routing, dependencies and middleware (the route
    hands such requests to it too, where a root path keeps them from being recognised here)."""

    arrow_batch: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.arrow_batch is not None
            and scope["type"] == "http"
            and scope["path"] == BATCH_PATH
            and scope["method"] == "POST"
            and _arrow_content(scope["headers"])
        ):
            await self.arrow_batch(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class _Handled(Response):
    """A route's answer that is another ASGI app's: it reads the request's body itself."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__()
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def create_app(settings: InferenceSettings, client: Any | None = None) -> InferenceApp:
    """The app for these settings; the model loads in the background once it starts."""
    metrics = ServiceMetrics()
    watcher = ModelWatcher(
        client if client is not None else s3_client(settings),
        settings.bucket,
        settings.model_name,
        settings.model_version,
        resolve_device(settings.device),
        metrics,
        settings.poll_seconds,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        watcher.start()
        try:
            yield
        finally:
            watcher.stop()

    app = InferenceApp(
        title="fedeploy inference",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.watcher = watcher
    app.state.metrics = metrics
    inline_turn = _InlineTurn()
    body_budget = BodyBudget(settings.body_buffer_mib * 2**20)

    @app.exception_handler(_Rejected)
    async def _rejected(_: Request, exc: _Rejected) -> JSONResponse:
        metrics.rejected.labels(reason=exc.reason).inc()
        detail = [{"loc": exc.loc, "msg": exc.message, "type": "value_error"}]
        return JSONResponse(status_code=422, content={"detail": detail})

    def _model() -> LoadedModel:
        current = watcher.current
        if current is None:
            metrics.rejected.labels(reason="not_ready").inc()
            raise HTTPException(503, detail=f"not ready: {watcher.last_error}")
        return current

    # Each endpoint's latency histogram child, made at its first answer (so /metrics shows an
    # endpoint only once it has answered): `labels` takes a lock and validates its arguments at
    # every call, about 10 us of a 1.5 ms Arrow call.
    latency: dict[str, Any] = {}

    def _count(endpoint: str, forecasts: int, seconds: float) -> None:
        """Counts an answered call: its batch size, its forecasts and its latency."""
        metrics.batch_size.observe(forecasts)
        metrics.predictions.inc(forecasts)
        child = latency.get(endpoint)
        if child is None:
            child = latency[endpoint] = metrics.latency.labels(endpoint=endpoint)
        child.observe(seconds)

    def _answer(endpoint: str, requests: list[PredictionRequest]) -> list[dict[str, Any]]:
        started = time.perf_counter()
        loaded = _model()
        try:
            answers = predict_requests(loaded, requests, settings.observed_history_hours)
        except RequestRejected as error:
            index, field = error.loc
            loc: list[str | int] = (
                ["body", field] if endpoint == "predict" else ["body", "requests", index, field]
            )
            raise _Rejected(loc, str(error)) from None
        except Exception:
            # Answered 500 by the framework; counted so the error-ratio alert sees it.
            metrics.rejected.labels(reason="error").inc()
            raise
        _count(endpoint, len(requests), time.perf_counter() - started)
        return answers

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Ready only once a model is loaded."""
        current = watcher.current
        if current is None:
            return JSONResponse(
                status_code=503, content={"status": "not ready", "reason": watcher.last_error}
            )
        return JSONResponse({"status": "ready", "model": current.name, "version": current.version})

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        """Prometheus exposition."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/model")
    def model_info() -> dict[str, Any]:
        """The served version's manifest (names, shapes, files and their digests)."""
        return _model().manifest

    @app.post(
        "/v1/predict",
        responses={200: {"model": PredictionResponse}},
        openapi_extra=_body(PredictionRequest),
    )
    async def predict(request: Request) -> Response:
        """One station's forecast."""
        async with _received(request.headers, request.receive, MAX_JSON_BODY_BYTES) as body:
            if body is None:
                return Response(status_code=400)  # the client went away: never sent

            def answer() -> bytes:
                return to_json(_answer("predict", [_parsed(PredictionRequest, body)])[0])

            return Response(await run_in_threadpool(answer), media_type="application/json")

    def _arrow_rejected(exc: ArrowRejected) -> JSONResponse:
        metrics.rejected.labels(reason="invalid").inc()
        detail = [{"loc": exc.loc, "msg": str(exc), "type": "value_error"}]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.post(
        "/v1/predict/batch",
        responses={
            200: {
                "model": BatchResponse,
                "content": {ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}}},
                "description": "JSON (BatchResponse) by default; an Arrow IPC stream of one row "
                "per station and lead when the request is Arrow or Accept names "
                f"{ARROW_STREAM} (see the README's HTTP API)",
            },
            406: {"description": f"an Arrow request whose Accept excludes {ARROW_STREAM}"},
            408: {"description": "a body not received in time (settings.body_receive_rate)"},
            413: {
                "description": f"an Arrow body over {MAX_BODY_BYTES} bytes, a JSON body over "
                f"{MAX_JSON_BODY_BYTES}"
            },
        },
        openapi_extra=_body(BatchRequest, arrow=True),
    )
    async def predict_batch(request: Request) -> Response:
        """Several forecasts in one model call; JSON, or Arrow IPC streams for batch clients."""
        if _media(request.headers.get("content-type", "")) == ARROW_STREAM:
            return _Handled(arrow_batch)
        async with _received(request.headers, request.receive, MAX_JSON_BODY_BYTES) as body:
            if body is None:
                return Response(status_code=400)  # the client went away: never sent
            if ARROW_STREAM in request.headers.get("accept", ""):
                answer = await run_in_threadpool(_json_to_arrow, body)
                return Response(answer, media_type=ARROW_STREAM)
            return Response(await run_in_threadpool(_batch, body), media_type="application/json")

    async def arrow_batch(scope: Scope, receive: Receive, send: Send) -> None:
        """An Arrow request to the batch endpoint, answered as an Arrow stream: 406 where Accept
        excludes it, 408 where the body is late, 413 past MAX_BODY_BYTES (these three close the
        connection), 422 (FastAPI's shape) for a refused table (a compressed one too), 503
        before a model is loaded. A body whose headers declare a small table is answered on
        the event loop, one a turn (a worker thread's hand-off costs about as much as reading
        64 requests); others in a worker thread."""
        headers = Headers(scope=scope)
        accept = headers.get("accept", "")
        try:
            if not (ARROW_STREAM in accept or _allows_arrow(accept)):
                raise HTTPException(
                    406, detail=f"an Arrow request is answered as {ARROW_STREAM}", headers=_CLOSE
                )
            async with _received(headers, receive, MAX_BODY_BYTES) as body:
                if body is None:
                    return  # the client went away
                if _inline(body):
                    answer, count = _arrow_batch(body, checked=True)
                else:
                    answer, count = await run_in_threadpool(_arrow_batch, body)
        except HTTPException as error:
            await JSONResponse(
                {"detail": error.detail}, status_code=error.status_code, headers=error.headers
            )(scope, receive, send)
            return
        except ArrowRejected as error:
            await _arrow_rejected(error)(scope, receive, send)
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-length", str(len(answer)).encode()),
                        (b"content-type", _ARROW_BYTES),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": answer})
        finally:
            _count("predict_batch", *count)  # once the answer is on its way, not before

    app.arrow_batch = arrow_batch

    def _inline(body: bytes) -> bool:
        """Whether an Arrow body is answered on the event loop: at most INLINE_BODY_BYTES, and
        its headers (walked here, at most INLINE_MESSAGES of them, refused here if bad)
        declare at most INLINE_ROWS rows; and no other body had this turn of the loop."""
        if len(body) > INLINE_BODY_BYTES or inline_turn.taken:
            return False
        declared = check_stream(body, settings.max_batch, stop_after=INLINE_MESSAGES)
        return declared is not None and declared.rows <= INLINE_ROWS and inline_turn.take()

    @asynccontextmanager
    async def _received(
        headers: Headers, receive: Receive, cap: int
    ) -> AsyncIterator[bytes | None]:
        """The body (`_bounded_body`), its bytes held in the body budget as they arrive and
        until the block that reads and answers it ends, however it ends."""
        held = [0]
        try:
            yield await _bounded_body(headers, receive, cap, held)
        finally:
            body_budget.give(held[0])

    async def _bounded_body(
        headers: Headers, receive: Receive, cap: int, held: list[int]
    ) -> bytes | None:
        """The body, refused (413) past `cap` bytes: by its Content-Length before reading, or as
        soon as a chunked body passes it; 408 where it has not arrived within
        BODY_GRACE_SECONDS plus its length (else `cap`) at settings.body_receive_rate; None if
        the client disconnects first. Both refusals close the connection."""
        declared = headers.get("content-length")
        length = int(declared) if declared is not None and declared.isdigit() else None
        if length is not None and length > cap:
            metrics.rejected.labels(reason="too_large").inc()
            raise HTTPException(413, detail=f"body over {cap} bytes", headers=_CLOSE)
        seconds = BODY_GRACE_SECONDS + (cap if length is None else length) / (
            settings.body_receive_rate
        )
        if length is not None and not body_budget.fits(length):
            _refuse_busy()  # refused before it is sent, not after most of it arrived
        chunks, size = [], 0
        try:
            async with asyncio.timeout(seconds):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > cap:
                        metrics.rejected.labels(reason="too_large").inc()
                        raise HTTPException(413, detail=f"body over {cap} bytes", headers=_CLOSE)
                    if not body_budget.take(len(chunk), held[0]):
                        _refuse_busy()
                    held[0] += len(chunk)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        except TimeoutError:
            metrics.rejected.labels(reason="timeout").inc()
            raise HTTPException(
                408,
                detail=f"the body was not received within {seconds:.0f} s ({size} bytes "
                f"arrived); a body is waited for {BODY_GRACE_SECONDS:.0f} s plus its length at "
                f"{settings.body_receive_rate:.0f} bytes/s (INFER_BODY_RECEIVE_RATE)",
                headers=_CLOSE,
            ) from None

    def _refuse_busy() -> NoReturn:
        """503 with Retry-After, the connection closed: other bodies hold the budget."""
        metrics.rejected.labels(reason="busy").inc()
        raise HTTPException(
            503,
            detail=f"the server holds {body_budget.used} bytes of request bodies being received "
            "or answered, "
            f"at most {body_budget.limit} (INFER_BODY_BUFFER_MIB): try again shortly",
            headers={**_CLOSE, "retry-after": "5"},
        )

    def _arrow_answer(batch: ArrowBatch, located: Any) -> tuple[bytes, tuple[int, float]]:
        """The answer's bytes, and what `_count` takes for it: the forecasts and the seconds
        they took (counted by the caller, the Arrow route's once its answer is sent)."""
        started = time.perf_counter()
        loaded = _model()
        try:
            forecast, observed = forecast_arrays(
                loaded, batch.arrays, settings.observed_history_hours
            )
        except RequestRejected as error:
            raise located(error) from None
        except Exception:
            metrics.rejected.labels(reason="error").inc()
            raise
        answer = answer_stream(batch, forecast, observed, (loaded.name, loaded.version))
        return answer, (len(batch.arrays), time.perf_counter() - started)

    def _arrow_batch(body: bytes, checked: bool = False) -> tuple[bytes, tuple[int, float]]:
        batch = parse_request(body, settings.max_batch, checked)
        return _arrow_answer(batch, batch.rejected)

    def _json_to_arrow(body: bytes) -> bytes:
        requests = _checked_batch(body).requests
        arrays = RequestArrays.from_requests(requests)
        batch = ArrowBatch(arrays, pa.array([r.station for r in requests], pa.string()), None)

        def located(error: RequestRejected) -> _Rejected:
            index, field = error.loc
            return _Rejected(["body", "requests", index, field], str(error))

        answer, count = _arrow_answer(batch, located)
        _count("predict_batch", *count)
        return answer

    def _checked_batch(body: bytes) -> BatchRequest:
        batch = _parsed(BatchRequest, body)
        if len(batch.requests) > settings.max_batch:
            metrics.rejected.labels(reason="too_large").inc()
            raise _Rejected(
                ["body", "requests"],
                f"{len(batch.requests)} requests given; at most {settings.max_batch} allowed "
                "(INFER_MAX_BATCH)",
                reason="too_large",
            )
        return batch

    def _batch(body: bytes) -> bytes:
        batch = _checked_batch(body)
        return to_json({"predictions": _answer("predict_batch", batch.requests)})

    return app


def uvicorn_config(app: ASGIApp, host: str, port: int, log_level: str) -> uvicorn.Config:
    """uvicorn's settings for `fedeploy-infer serve`: "auto" runs httptools' HTTP parser and
    uvloop's event loop where they are installed (the lock installs both on Linux), h11 and
    asyncio's loop where not (uvloop has no Windows build)."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http="auto", loop="auto")


def serving_stack(config: uvicorn.Config) -> tuple[str, str]:
    """The HTTP protocol and event loop a config runs, e.g. ("HttpToolsProtocol", "uvloop")."""
    if not config.loaded:
        config.load()
    factory = config.get_loop_factory()
    loop = (
        "uvloop" if factory is not None and factory.__module__.startswith("uvloop") else "asyncio"
    )
    return config.http_protocol_class.__name__, loop


def serve(app: ASGIApp, host: str, port: int, log_level: str) -> None:
    """Serve the app until a signal stops it, logging the HTTP protocol and event loop it runs."""
    config = uvicorn_config(app, host, port, log_level)
    protocol, loop = serving_stack(config)
    logging.getLogger("uvicorn.error").info("HTTP protocol %s, event loop %s", protocol, loop)
    uvicorn.Server(config).run()


def _parsed(model: type[_M], body: bytes) -> _M:
    """The request body validated straight from its bytes (no dict in between); errors in
    FastAPI's own 422 shape, located under "body"."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(
            [_bounded_error(e) for e in error.errors(include_url=False)], body=body
        ) from None


# The most of a refused value a 422 repeats: a refused list of a million values is not sent
# back whole (a 5 MB request made a 4 MB answer).
ECHO_LIMIT = 200


def _bounded_error(error: Any) -> dict[str, Any]:
    """One validation error located under "body", its `input` kept only where it is a scalar
    whose text is at most ECHO_LIMIT characters (lists, objects and long strings are left out)."""
    bounded = {**error, "loc": ("body", *error["loc"])}
    value = bounded.get("input")
    if isinstance(value, (dict, list, tuple)) or len(str(value)) > ECHO_LIMIT:
        bounded.pop("input", None)
    return bounded


_ARROW_BYTES = ARROW_STREAM.encode()


def _arrow_content(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether an ASGI scope's raw headers give an Arrow Content-Type (the first one counts)."""
    for name, value in headers:
        if name == b"content-type":
            return _media(value.decode("latin-1")) == ARROW_STREAM
    return False


def _media(content_type: str) -> str:
    """A Content-Type's media type, lower case, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def _allows_arrow(accept: str) -> bool:
    """Whether an Accept header admits an Arrow answer: absent, or naming it or */*."""
    if not accept.strip():
        return True
    return any(_media(part) in (ARROW_STREAM, "*/*", "application/*") for part in accept.split(","))


def _body(model: type[BaseModel], arrow: bool = False) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint that validates its raw bytes itself: the model's
    JSON schema with its definitions written in place (a `#/$defs/...` reference would point
    at the root of the OpenAPI document)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": inline(schema)},
                **(
                    {
                        ARROW_STREAM: {
                            "schema": {
                                "type": "string",
                                "format": "binary",
                                "description": "An Arrow IPC stream, one row per observation "
                                "(columns: fedeploy_inference.arrow_api, the README's HTTP API)",
                            }
                        }
                    }
                    if arrow
                    else {}
                ),
            },
        }
    }
