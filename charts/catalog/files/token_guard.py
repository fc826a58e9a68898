"""An ASGI guard in front of stac-auth-proxy: a bearer token must name our issuer and expire.

stac-auth-proxy 1.3.1 checks a token's signature (against the issuer's JWKS), audience and
scopes, but not its `iss`, and accepts a token without `exp`. This guard closes both before the
proxy sees the request: a request that carries a bearer token whose `iss` is not EXPECTED_ISSUER
(compared exactly, as OpenID Connect Core 1.0 section 3.1.3.7 requires: a trailing slash counts),
or that has no numeric `exp`, or has expired (CLOCK_LEEWAY_SECONDS ago), or whose `nbf` or `iat`
is there but not a number, is answered 401. It reads the claims without
checking the signature, which is safe because the proxy behind it checks the signature of every
token it lets through: a forged claim set is refused there. Requests without a token pass
unchanged, so anonymous reads stay anonymous and anonymous writes are refused by the proxy;
a write to the collections or items without a bearer token is answered 401 here, before its
body is read.

The guard also keeps the harvest-status collections (`fedeploy-site-<member>`, which
`fedeploy verify` reads on the hub to let a wave pass) to their one writer, the hub's harvester,
which writes them in-cluster, not through this proxy: a write (any method but GET, HEAD and
OPTIONS) that names such a collection, in its path or in its JSON body, is answered 403 unless
the token carries RESERVED_WRITE_SCOPE (unset: no token does). A member writer's token, whatever
its audience and scope, never writes or deletes them. A JSON Patch (a list body) written to a
collection or item may not touch `id` or `collection` (pgstac writes the row the patched
content's `id` names, so a renaming patch of another collection would land on a status
collection), and a list body that is not a JSON Patch is refused: 403, whatever the token.
Only the body of a token-bearing write to the collections or items is read before the proxy,
at most GUARD_MAX_BODY_BYTES of it (1 MiB unset; a larger one is answered 413), and parsed only
when it holds at most GUARD_MAX_BODY_VALUES JSON values (131072 unset, counted as its `{`, `[`,
`:` and `,` bytes; more: 413), which bounds the parse's memory; every other body, an anonymous
POST /search's included, streams through unread.

The guard also counts every request it answers or passes on, by method and status class, with
its duration: the catalog's request metrics (the STAC API image serves none), in Prometheus's
text format on a port of their own (GUARD_METRICS_PORT), which only the cluster's Prometheus may
reach; the public port never serves them.

The catalog chart mounts this file into the pinned stac-auth-proxy image and serves
`token_guard:create_app`; the loopback peer runs the very same file.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeGuard
from urllib.parse import unquote

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(segment.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None


def token_problem(authorization: str | None, issuer: str, now: float) -> str | None:
    """Why a request's Authorization header is refused, or None to pass it to the proxy.

    `authorization` is the raw header (None when absent); `issuer` the expected `iss`, compared
    exactly (OpenID Connect Core 1.0 section 3.1.3.7; the asset endpoint compares the same way),
    so `https://id.example.eu/` and `https://id.example.eu` are two issuers; `now` in seconds
    since the epoch. `exp` must be a finite number, not over CLOCK_LEEWAY_SECONDS past;
    `nbf` and `iat`, where present, numbers (RFC 7519 NumericDate: a numeric string is refused,
    as the asset endpoint refuses it).
    """
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None  # not a bearer token: the proxy refuses it where a token is needed
    claims = _claims(token.strip())
    if claims is None:
        return "the bearer token is not a JWT"
    found = claims.get("iss")
    if not isinstance(found, str) or found != issuer:
        return "the token was not issued by this site's issuer"
    expiry = claims.get("exp")
    if not _numeric_date(expiry):
        return "the token has no expiry (exp)"
    if expiry <= now - CLOCK_LEEWAY_SECONDS:
        return "the token has expired"
    for name in ("nbf", "iat"):
        if name in claims and not _numeric_date(claims[name]):
            return f"the token's {name} is not a number"
    return None


# Seconds of clock skew allowed on `exp` (the asset endpoint's CLOCK_LEEWAY_SECONDS, on `exp`,
# `nbf` and `iat`). stac-auth-proxy 1.3.1 behind the guard allows none.
CLOCK_LEEWAY_SECONDS = 30


def _numeric_date(value: Any) -> TypeGuard[int | float]:
    """Whether a claim is a NumericDate (RFC 7519 section 2): a finite JSON number, not a string
    or a boolean (the asset endpoint reads `exp`, `nbf` and `iat` the same way)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# The most bytes of a write's body the guard reads to inspect it (GUARD_MAX_BODY_BYTES; the
# chart's authProxy.maxWriteBodyBytes).
MAX_WRITE_BODY = 1024 * 1024

# The most JSON values a write's body may open before the guard parses it, counted as the body's
# `{`, `[` and `,` bytes (an upper bound, strings included): what bounds the parse's memory, as a
# value costs up to ~100 bytes in Python whatever its few bytes on the wire.
MAX_WRITE_VALUES = 128 * 1024

# The hub's harvest-status collections (fedeploy_ingestion.federation.SITE_COLLECTION_PREFIX).
RESERVED_PREFIX = "fedeploy-site-"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _segments(path: str) -> list[str]:
    """The path's segments, percent-decoded until stable, without empty or `.` segments and
    with `..` applied: the collection a request can reach, however the path is spelt."""
    for _ in range(3):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


def _names_collections(path: str) -> bool:
    """Whether the path, however spelt, reaches the collections or items (a segment
    `collections`)."""
    return any(p.casefold() == "collections" for p in _segments(path))


def _body_ids(body: Any) -> list[str]:
    """Collection ids a write body names: its `id` and `collection`, and those of the features
    of an ItemCollection or the items of a bulk request."""
    if not isinstance(body, dict):
        return []
    found = [body.get("id"), body.get("collection")]
    members = body.get("features")
    if isinstance(members, list):
        found += [f.get("collection") for f in members if isinstance(f, dict)]
    items = body.get("items")
    if isinstance(items, dict):
        found += [i.get("collection") for i in items.values() if isinstance(i, dict)]
    return [f for f in found if isinstance(f, str)]


def _pointer_tokens(pointer: str) -> list[str]:
    """A JSON Pointer's (RFC 6901) reference tokens, unescaped (`~1` is `/`, `~0` is `~`) and
    case-folded; [] for the whole document ("")."""
    if pointer == "":
        return []
    return [t.replace("~1", "/").replace("~0", "~").casefold() for t in pointer.split("/")[1:]]


# Members of a collection or item a JSON Patch may not touch: they name where the write lands
# (pgstac's update_collection writes the row its content's `id` names).
_IDENTITY_MEMBERS = frozenset({"id", "collection"})

# The keys an operation's source pointer may come in: stac-fastapi's PatchMoveCopy takes `from`
# and, as its Python name (populate_by_name), `from_`.
_FROM_KEYS = ("from", "from_")


def patch_problem(body: Any) -> str | None:
    """Why a JSON body that is a list (an RFC 6902 JSON Patch) may not be written to a collection
    or item, or None for another body or a patch that leaves `id` and `collection` alone.

    Refused: an operation that is not an object with a string `op` and `path` (or whose `from`,
    or `from_`, which stac-fastapi reads as `from`, is not a string), and one whose `path`,
    `from` or `from_` is the whole document or starts at `id` or `collection`, however spelt
    (`~0`/`~1` escapes, a trailing slash, another case).
    """
    if not isinstance(body, list):
        return None
    for n, op in enumerate(body):
        if not (
            isinstance(op, dict)
            and isinstance(op.get("op"), str)
            and isinstance(op.get("path"), str)
            and all(isinstance(op.get(key, ""), str) for key in _FROM_KEYS)
        ):
            return f"operation {n} of the JSON Patch is not an object with a string op and path"
        for key in ("path", *_FROM_KEYS):
            if key not in op:
                continue
            tokens = _pointer_tokens(op[key])
            if not tokens or tokens[0] in _IDENTITY_MEMBERS:
                return (
                    f"operation {n} of the JSON Patch ({key} {op[key]!r}) would change the id "
                    "or collection of what it patches: write it under its own id instead"
                )
    return None


def reserved_collection(
    method: str, path: str, body: Any, prefix: str = RESERVED_PREFIX
) -> str | None:
    """The reserved collection (id starting with `prefix`, compared case-insensitively) a write
    names, in its path after `/collections/` or in its JSON `body`; None for a read or another
    collection."""
    if not prefix or method.upper() in _SAFE:
        return None
    parts = _segments(path)
    folded = prefix.casefold()
    named = [parts[i + 1] for i, p in enumerate(parts[:-1]) if p.casefold() == "collections"]
    if _names_collections(path):
        named += _body_ids(body)
    return next((n for n in named if n.casefold().startswith(folded)), None)


def token_scopes(authorization: str | None) -> set[str]:
    """The scopes of a bearer token (`scope`, space-separated, or `scp`, a list); empty for no
    token or no JWT. Read without checking the signature: the proxy checks it behind us."""
    if authorization is None:
        return set()
    scheme, _, token = authorization.strip().partition(" ")
    claims = _claims(token.strip()) if scheme.lower() == "bearer" else None
    if claims is None:
        return set()
    scopes = claims.get("scope")
    found = set(scopes.split()) if isinstance(scopes, str) else set()
    listed = claims.get("scp")
    if isinstance(listed, list):
        found |= {s for s in listed if isinstance(s, str)}
    return found


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class RequestMetrics:
    """Requests by method and status class (2xx ... 5xx) and their durations, as
    `fedeploy_catalog_requests_total` and `fedeploy_catalog_request_duration_seconds`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}
        self._buckets = [0] * len(_BUCKETS)
        self._count = 0
        self._sum = 0.0

    def observe(self, method: str, status: int, seconds: float) -> None:
        """Count one request; an unknown method is counted as OTHER."""
        key = (method if method in _METHODS else "OTHER", f"{status // 100}xx")
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            for n, bound in enumerate(_BUCKETS):
                if seconds <= bound:
                    self._buckets[n] += 1
            self._count += 1
            self._sum += seconds

    def exposition(self) -> bytes:
        """Prometheus's text format (version 0.0.4)."""
        with self._lock:
            lines = [
                "# HELP fedeploy_catalog_requests_total Requests to the catalog, by method and "
                "status class.",
                "# TYPE fedeploy_catalog_requests_total counter",
                *(
                    f'fedeploy_catalog_requests_total{{method="{m}",code="{c}"}} {n}'
                    for (m, c), n in sorted(self._requests.items())
                ),
                "# HELP fedeploy_catalog_request_duration_seconds Time to answer a request.",
                "# TYPE fedeploy_catalog_request_duration_seconds histogram",
                *(
                    f'fedeploy_catalog_request_duration_seconds_bucket{{le="{b}"}} {n}'
                    for b, n in zip(_BUCKETS, self._buckets, strict=True)
                ),
                f'fedeploy_catalog_request_duration_seconds_bucket{{le="+Inf"}} {self._count}',
                f"fedeploy_catalog_request_duration_seconds_count {self._count}",
                f"fedeploy_catalog_request_duration_seconds_sum {self._sum}",
            ]
        return ("\n".join(lines) + "\n").encode()


def serve_metrics(metrics: RequestMetrics, port: int, host: str = "0.0.0.0") -> Any:  # noqa: S104
    """Serve `GET /metrics` on its own port in a daemon thread; returns the server."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            found = self.path == "/metrics"
            body = metrics.exposition() if found else b"not found\n"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every few seconds would drown the proxy's logs

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
    return server


class TokenGuard:
    """Answers 401 to requests whose bearer token fails `token_problem`; passes the rest; counts
    every request in `metrics`."""

    def __init__(
        self,
        app: ASGIApp,
        issuer: str,
        metrics: RequestMetrics | None = None,
        reserved_scope: str = "",
        reserved_prefix: str = RESERVED_PREFIX,
        max_body: int = MAX_WRITE_BODY,
        max_values: int = MAX_WRITE_VALUES,
    ) -> None:
        if not issuer:
            raise ValueError("TokenGuard needs the issuer (EXPECTED_ISSUER) it accepts tokens of")
        self.app = app
        self.issuer = issuer
        self.metrics = metrics or RequestMetrics()
        # The one scope that may write the reserved collections through the proxy ("": none).
        self.reserved_scope = reserved_scope
        self.reserved_prefix = reserved_prefix
        # The most bytes of a write's body it reads to inspect; a larger one is answered 413.
        self.max_body = max_body
        # The most JSON values (`_value_bound`) such a body may hold before it is parsed; more: 413.
        self.max_values = max_values

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before it starts a response

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._guarded(scope, receive, counted)
        finally:
            self.metrics.observe(scope.get("method", ""), status, time.perf_counter() - started)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        problem = token_problem(header, self.issuer, time.time())
        if problem is not None:
            await _refuse(send, 401, problem, b'Bearer error="invalid_token"')
            return
        method = str(scope.get("method", "GET"))
        path = str(scope.get("path", ""))
        # Only a write to the collections or items is read here (capped); every other body,
        # a public POST /search included, streams to the proxy as it comes.
        if method.upper() not in _SAFE and _names_collections(path):
            if not _is_bearer(header):
                # The proxy refuses it too: refuse it before a byte of its body is read.
                await _refuse(
                    send, 401, "a write to the collections or items needs a bearer token", b"Bearer"
                )
                return
            read = await _read_body(receive, self.max_body, _content_length(scope))
            if read is None:
                await _refuse(
                    send,
                    413,
                    f"a write to the collections or items may carry at most {self.max_body} "
                    "bytes through this endpoint",
                    b"Bearer",
                )
                return
            refusal = self._write_refusal(method, path, _joined(read), header)
            if refusal is not None:
                await _refuse(send, *refusal)
                return
            receive = _replay(read, receive)
        await self.app(scope, receive, send)

    def _write_refusal(
        self, method: str, path: str, raw: bytes, header: str | None
    ) -> tuple[int, str, bytes] | None:
        """(status, detail, challenge) refusing a write to the collections or items whose body
        is `raw`, or None to pass it on. The parsed body lives only in this call, so a write
        passed on holds its bytes, not their Python objects, while the proxy handles it."""
        values = _value_bound(raw)
        if values > self.max_values:
            return (
                413,
                f"a write to the collections or items may hold at most {self.max_values} JSON "
                f"values through this endpoint (counted as its {{, [, : and , bytes: {values})",
                b"Bearer",
            )
        body = _json(raw)
        patched = patch_problem(body)
        if patched is not None:
            return 403, patched, b'Bearer error="insufficient_scope"'
        reserved = reserved_collection(method, path, body, self.reserved_prefix)
        if reserved is not None and (
            not self.reserved_scope or self.reserved_scope not in token_scopes(header)
        ):
            return (
                403,
                f"collection {reserved} is a harvest status of the hub: only the hub's "
                "harvester writes it",
                b'Bearer error="insufficient_scope"',
            )
        return None


async def _refuse(send: Send, status: int, detail: str, challenge: bytes) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", challenge),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _is_bearer(authorization: str | None) -> bool:
    """Whether an Authorization header carries a bearer token (any content)."""
    if authorization is None:
        return False
    scheme, _, token = authorization.strip().partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def _content_length(scope: Scope) -> int | None:
    """The request's Content-Length, or None when absent or not a number."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_body(
    receive: Receive, limit: int, declared: int | None = None
) -> list[Message] | None:
    """Every message of the request body, or None as soon as the body (or its `declared`
    Content-Length) is over `limit` bytes."""
    if declared is not None and declared > limit:
        return None
    chunks: list[Message] = []
    size = 0
    while True:
        message = await receive()
        chunks.append(message)
        size += len(message.get("body", b"")) if message["type"] == "http.request" else 0
        if size > limit:
            return None
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    return chunks


def _joined(chunks: list[Message]) -> bytes:
    """The body the request messages carry."""
    return b"".join(m.get("body", b"") for m in chunks if m["type"] == "http.request")


def _value_bound(raw: bytes) -> int:
    """An upper bound of the JSON values (and object keys) parsing `raw` builds: one more than
    its `{`, `[`, `:` and `,` bytes, strings included; counted in C, without parsing."""
    return 1 + sum(raw.count(c) for c in (b"{", b"[", b":", b","))


def _json(raw: bytes) -> Any:
    """The body as JSON, or None when it is empty or not JSON."""
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeError):
        return None


def _replay(chunks: list[Message], upstream: Receive) -> Receive:
    """A receive that hands the app the body already read, then the server's own (which waits
    for the client's disconnect)."""
    pending = list(chunks)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await upstream()

    return receive


def create_app() -> TokenGuard:
    """stac-auth-proxy's app (configured from its environment) behind the guard."""
    from stac_auth_proxy import Settings
    from stac_auth_proxy.app import create_app as proxy_app

    guard = TokenGuard(
        proxy_app(Settings()),
        os.environ.get("EXPECTED_ISSUER", ""),
        reserved_scope=os.environ.get("RESERVED_WRITE_SCOPE", ""),
        max_body=int(os.environ.get("GUARD_MAX_BODY_BYTES") or MAX_WRITE_BODY),
        max_values=int(os.environ.get("GUARD_MAX_BODY_VALUES") or MAX_WRITE_VALUES),
    )
    port = os.environ.get("GUARD_METRICS_PORT")
    if port:
        serve_metrics(guard.metrics, int(port), os.environ.get("GUARD_METRICS_HOST", "0.0.0.0"))  # noqa: S104
    return guard
