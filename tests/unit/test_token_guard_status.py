"""The hub's harvest-status collections (`fedeploy-site-*`) are written only by its harvester:
the catalog's token guard answers 403 to any write or delete naming one (in its path, however
spelt, or in its JSON body), whatever the token's audience and write scope, unless the token
carries the status write scope the chart was given (none by default: the hub's harvester writes
in-cluster, past the proxy). Reads pass, so `fedeploy verify` keeps reading them."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "token_guard_status", ROOT / "charts/catalog/files/token_guard.py"
)
assert _spec is not None and _spec.loader is not None
token_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(token_guard)

ISSUER = "https://login.eofed.example.eu/realms/eofed"
HARVEST_SCOPE = "stac:harvest:eu-hub"


def _bearer(audience: str, scope: str) -> str:
    # Made once at collection: valid for a day, so a long suite run (CI's takes half an hour
    # between collection and these tests) does not turn every refusal into "token expired".
    claims = {"iss": ISSUER, "exp": time.time() + 86400, "aud": audience, "scope": scope}
    segment = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"Bearer e30.{segment}.sig"


MEMBER = _bearer("eofed-catalog-ewc-bologna", "stac:write:ewc-bologna")
HUB_WRITER = _bearer("eofed-catalog-eu-hub", "stac:write:eu-hub")
HARVESTER = _bearer("eofed-catalog-eu-hub", f"stac:write:eu-hub {HARVEST_SCOPE}")


def _call(
    guard: Any,
    method: str,
    path: str,
    token: str | None,
    body: Any = None,
    raw: bytes | None = None,
) -> tuple[int, list[bytes]]:
    """(status, body the proxy behind received; [] when it was not called) of `body` as JSON,
    or of the bytes `raw`."""
    seen: list[bytes] = []

    async def proxy(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    guard.app = proxy
    if raw is None:
        raw = json.dumps(body).encode() if body is not None else b""
    # The body in two parts, as a server may hand it over.
    parts = [
        {"type": "http.request", "body": raw[:5], "more_body": True},
        {"type": "http.request", "body": raw[5:], "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        return parts.pop(0) if parts else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"authorization", token.encode())] if token else []
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    asyncio.run(guard(scope, receive, send))
    return int(sent[0]["status"]), seen


def _guard(reserved_scope: str = "") -> Any:
    async def unused(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("replaced per call")

    return token_guard.TokenGuard(unused, ISSUER, reserved_scope=reserved_scope)


# Every way a write can name a status collection: method, path, body.
STATUS_WRITES = [
    ("PUT", "/collections/fedeploy-site-ewc-bologna", {"id": "fedeploy-site-ewc-bologna"}),
    ("PATCH", "/collections/fedeploy-site-ewc-bologna", {"description": "ok"}),
    ("DELETE", "/collections/fedeploy-site-ewc-bologna", None),
    ("POST", "/collections/fedeploy-site-ewc-bologna/items", {"id": "x"}),
    ("DELETE", "/collections/fedeploy-site-ewc-bologna/items/x", None),
    ("POST", "/collections/fedeploy-site-ewc-bologna/bulk_items", {"items": {}}),
    ("POST", "/collections", {"id": "fedeploy-site-ewc-bologna", "type": "Collection"}),
    ("POST", "/collections/", {"id": "fedeploy-site-new"}),
    ("PUT", "/collections/sentinel-2", {"id": "fedeploy-site-ewc-bologna"}),
    ("POST", "/collections/c/items", {"type": "Feature", "collection": "fedeploy-site-a"}),
    (
        "POST",
        "/collections/c/items",
        {"type": "FeatureCollection", "features": [{"collection": "fedeploy-site-a"}]},
    ),
    ("POST", "/collections/c/bulk_items", {"items": {"x": {"collection": "fedeploy-site-a"}}}),
    ("DELETE", "//collections//fedeploy-site-a/", None),
    ("DELETE", "/collections/./fedeploy-site-a", None),
    ("DELETE", "/collections/other/../fedeploy-site-a", None),
    ("DELETE", "/collections/fedeploy%2Dsite-a", None),
    ("DELETE", "/collections/fedeploy%252Dsite-a", None),
    ("DELETE", "/collections/FEDEPLOY-SITE-a", None),
    ("DELETE", "/catalog/collections/fedeploy-site-a", None),  # behind a ROOT_PATH
    ("delete", "/collections/fedeploy-site-a", None),
]


@pytest.mark.parametrize(("method", "path", "body"), STATUS_WRITES)
@pytest.mark.parametrize("token", [MEMBER, HUB_WRITER, None], ids=["member", "hub-writer", "none"])
def test_no_writer_but_the_harvester_writes_or_deletes_a_status_collection(
    method: str, path: str, body: Any, token: str | None
) -> None:
    refused = 401 if token is None else 403  # no token: refused before the body is read
    status, seen = _call(_guard(), method, path, token, body)
    assert (status, seen) == (refused, [])
    # With the harvester's scope configured, a member's token is still refused.
    status, seen = _call(_guard(HARVEST_SCOPE), method, path, token, body)
    assert (status, seen) == (refused, [])


@pytest.mark.parametrize(("method", "path", "body"), STATUS_WRITES)
def test_the_harvesters_token_writes_them_and_the_proxy_gets_the_whole_body(
    method: str, path: str, body: Any
) -> None:
    status, seen = _call(_guard(HARVEST_SCOPE), method, path, HARVESTER, body)
    assert status == 200
    assert b"".join(seen) == (json.dumps(body).encode() if body is not None else b"")


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_status_collections_stay_readable_by_anyone(method: str) -> None:
    for token in (None, MEMBER):
        status, _ = _call(_guard(), method, "/collections/fedeploy-site-ewc-bologna", token)
        assert status == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/collections/sentinel-2/items", {"id": "s2", "collection": "sentinel-2"}),
        ("DELETE", "/collections/sentinel-2/items/fedeploy-site-x", None),  # an item id
        ("POST", "/collections", {"id": "my-fedeploy-site-notes"}),
        ("POST", "/search", {"collections": ["fedeploy-site-a"]}),
    ],
)
def test_other_writes_pass_to_the_proxy_unchanged(method: str, path: str, body: Any) -> None:
    status, seen = _call(_guard(), method, path, MEMBER, body)
    assert status == 200
    assert b"".join(seen) == (json.dumps(body).encode() if body is not None else b"")


def test_the_refusal_says_why_and_names_the_collection() -> None:
    sent: list[dict[str, Any]] = []

    async def proxy(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the proxy must not be called")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    guard = token_guard.TokenGuard(proxy, ISSUER)
    scope = {
        "type": "http",
        "method": "DELETE",
        "path": "/collections/fedeploy-site-ovh-gra",
        "headers": [(b"authorization", MEMBER.encode())],
    }
    asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 403
    detail = json.loads(sent[1]["body"])["detail"]
    assert "fedeploy-site-ovh-gra" in detail and "harvester" in detail
    assert token_guard.token_scopes(HARVESTER) == {"stac:write:eu-hub", HARVEST_SCOPE}
    assert token_guard.token_scopes(None) == set() == token_guard.token_scopes("Basic eA==")


def _proxy_env(**oidc: str) -> dict[str, str]:
    from fedeploy.charts import render_chart

    manifests = render_chart(
        ROOT / "charts/catalog",
        {
            "site": {"name": "eu-hub", "kind": "hub"},
            "database": {"existingSecret": "db"},
            "exposure": {
                "enabled": True,
                "url": "https://catalog.eofed.example.eu",
                "controllerNamespace": "ingress-nginx",
                "tls": {"certManagerIssuer": "letsencrypt"},
            },
            "authProxy": {
                "oidc": {
                    "issuer": ISSUER,
                    "audience": "eofed-catalog-eu-hub",
                    "writeScope": "stac:write:eu-hub",
                    **oidc,
                }
            },
        },
        "catalog",
        "fedeploy",
    )
    (proxy,) = [
        m
        for m in manifests
        if m["kind"] == "Deployment" and m["metadata"]["name"].endswith("-auth-proxy")
    ]
    env = proxy["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e["value"] for e in env}


def test_the_chart_passes_the_status_scope_only_when_given() -> None:
    # Default: no token writes the status collections through the proxy.
    assert "RESERVED_WRITE_SCOPE" not in _proxy_env()
    assert _proxy_env(statusWriteScope=HARVEST_SCOPE)["RESERVED_WRITE_SCOPE"] == HARVEST_SCOPE


# RFC 6902 JSON Patches (a list body) that would move a write elsewhere: stac-fastapi-pgstac's
# patch_collection applies the patch and pgstac's update_collection writes the row the result's
# `id` names, so a patch of an ordinary collection that replaces its id rewrote a status
# collection (review of issue 27, finding 1).
RENAMING_PATCHES = [
    [{"op": "replace", "path": "/id", "value": "fedeploy-site-a"}],
    [{"op": "add", "path": "/id", "value": "fedeploy-site-a"}],
    [{"op": "replace", "path": "/ID", "value": "fedeploy-site-a"}],
    [{"op": "replace", "path": "/id/", "value": "fedeploy-site-a"}],
    [{"op": "replace", "path": "", "value": {"id": "fedeploy-site-a", "type": "Collection"}}],
    [{"op": "copy", "from": "/title", "path": "/id"}],
    [{"op": "move", "from": "/id", "path": "/title"}],
    # stac-fastapi reads `from_` as `from` (second review of issue 27, finding 5).
    [{"op": "move", "from_": "/id", "path": "/title"}],
    [{"op": "copy", "from_": "/ID/", "path": "/title"}],
    [{"op": "replace", "path": "/collection", "value": "fedeploy-site-a"}],
    [{"op": "remove", "path": "/Collection"}],
    [{"op": "test", "path": "/description", "value": "x"}, {"op": "remove", "path": "/id"}],
]
# List bodies the guard cannot read as a JSON Patch.
UNCLASSIFIED_LISTS = [
    [1],
    [{"op": "replace"}],
    [{"op": "replace", "path": ["id"], "value": "x"}],
    [{"op": "move", "path": "/title", "from": 3}],
    [{"op": "move", "path": "/title", "from_": ["id"]}],
    [{"path": "/title", "value": "x"}],
    [{"type": "Feature", "id": "x", "collection": "fedeploy-site-a"}],
]


@pytest.mark.parametrize("body", RENAMING_PATCHES + UNCLASSIFIED_LISTS)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/collections/sentinel-2"),
        ("PATCH", "/collections/sentinel-2/items/s2"),
        ("PUT", "/collections/sentinel-2"),
        ("POST", "/collections/sentinel-2/items"),
        ("PATCH", "/catalog/Collections/sentinel-2"),
    ],
)
@pytest.mark.parametrize(
    "token", [MEMBER, HUB_WRITER, HARVESTER], ids=["member", "hub", "harvester"]
)
def test_a_json_patch_never_changes_an_id_or_collection_and_an_unread_list_is_refused(
    body: Any, method: str, path: str, token: str
) -> None:
    status, seen = _call(_guard(HARVEST_SCOPE), method, path, token, body)
    assert (status, seen) == (403, [])


def test_a_json_patch_of_other_members_passes_with_its_body() -> None:
    body = [
        {"op": "replace", "path": "/description", "value": "Sentinel-2 L2A"},
        {"op": "add", "path": "/properties/id", "value": "kept"},
        {"op": "copy", "from": "/title", "path": "/summaries/title"},
        {"op": "replace", "path": "/keywords/0", "value": "id"},
    ]
    status, seen = _call(_guard(), "PATCH", "/collections/sentinel-2", MEMBER, body)
    assert status == 200 and b"".join(seen) == json.dumps(body).encode()
    assert token_guard.patch_problem({"id": "x"}) is None  # a merge patch: reserved_collection's
    problem = token_guard.patch_problem([{"op": "replace", "path": "/id", "value": "x"}])
    assert problem is not None and "'/id'" in problem


def _stream(
    guard: Any,
    method: str,
    path: str,
    chunks: int,
    size: int,
    length: int | None = None,
    token: str | None = MEMBER,
) -> tuple[list[dict[str, Any]], int, list[int]]:
    """Send `chunks` body parts of `size` bytes with `token` (None: anonymous): (what the client
    got, parts the guard or proxy read, parts read when the proxy was called; [] when it was
    not)."""
    read = 0
    at_proxy: list[int] = []

    async def proxy(scope: Any, receive: Any, send: Any) -> None:
        at_proxy.append(read)
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b"x" * size, "more_body": read < chunks}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    guard.app = proxy
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    headers += [(b"authorization", token.encode())] if token else []
    scope = {"type": "http", "method": method, "path": path, "headers": headers}
    asyncio.run(guard(scope, receive, send))
    return sent, read, at_proxy


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/search"), ("POST", "/catalog/search"), ("PUT", "/other")]
)
def test_a_body_that_names_no_collection_streams_to_the_proxy_unread(
    method: str, path: str
) -> None:
    # Review of issue 27, finding 5: an anonymous 200 MiB POST /search was read whole first.
    for token in (None, MEMBER):
        sent, read, at_proxy = _stream(_guard(), method, path, 200, 1 << 20, token=token)
        assert at_proxy == [0] and read == 200 and sent[0]["status"] == 200


@pytest.mark.parametrize("token", [None, "Basic dXNlcjpwYXNz", "Bearer "])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_write_to_the_collections_without_a_bearer_token_is_401_before_its_body_is_read(
    token: str | None, method: str
) -> None:
    # Second review of issue 27, finding 1: an anonymous 16 MiB body was read and parsed.
    sent, read, at_proxy = _stream(
        _guard(), method, "/collections/anything", 16, 1 << 20, token=token
    )
    assert (sent[0]["status"], read, at_proxy) == (401, 0, [])


def _peak_bytes(guard: Any, body: bytes) -> tuple[int, int]:
    """(status, tracemalloc's peak in bytes) of a member's write of `body` through `guard`."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        status, _ = _call(guard, "POST", "/collections/c/items", MEMBER, raw=body)
        return status, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "unit", [b"{},", b"[],", b"1.5,", b'"k":{},'], ids=["dicts", "lists", "floats", "keys"]
)
def test_a_writes_parse_holds_a_bounded_amount_of_memory(unit: bytes) -> None:
    # Second review of issue 27, finding 1: 1 MiB of `[{},{},...]` parsed into 26 MiB.
    guard = _guard()
    cap = token_guard.MAX_WRITE_BODY
    first, last = (b"{", b"}") if unit.startswith(b'"') else (b"[", b"]")
    # The most such values at the cap: refused before it is parsed.
    body = first + unit * ((cap - 2) // len(unit) - 1) + unit.rstrip(b",") + last
    status, peak = _peak_bytes(guard, body)
    assert status == 413 and peak < 4 * cap  # the body's bytes and their copies, no more
    # The most such values the guard parses: a few MiB at most.
    counted = sum(unit.count(c) for c in (b"{", b"[", b":", b","))
    n = (guard.max_values - 1) // counted
    body = first + unit * (n - 1) + unit.rstrip(b",") + last
    status, peak = _peak_bytes(guard, body)
    assert status != 413 and peak < 16 << 20


def test_a_write_to_the_collections_over_the_cap_is_413_and_read_no_further() -> None:
    guard = token_guard.TokenGuard(_guard().app, ISSUER, max_body=3 << 20)
    sent, read, at_proxy = _stream(guard, "POST", "/collections/c/items", chunks=200, size=1 << 20)
    assert (sent[0]["status"], read, at_proxy) == (413, 4, [])
    assert str(3 << 20) in json.loads(sent[1]["body"])["detail"]
    # A declared length over the cap is refused before a byte is read.
    sent, read, _ = _stream(guard, "PUT", "/collections/c", chunks=1, size=10, length=4 << 20)
    assert (sent[0]["status"], read) == (413, 0)
    # Up to the cap, the whole body reaches the proxy.
    sent, read, at_proxy = _stream(
        guard, "POST", "/collections/c/bulk_items", chunks=3, size=1 << 20
    )
    assert (sent[0]["status"], read, at_proxy) == (200, 3, [3])


def test_the_chart_sets_the_guards_body_cap() -> None:
    env = _proxy_env()
    assert env["GUARD_MAX_BODY_BYTES"] == str(token_guard.MAX_WRITE_BODY) == str(1 << 20)
    assert env["GUARD_MAX_BODY_VALUES"] == str(token_guard.MAX_WRITE_VALUES)
