"""An ASGI guard in front of stac-auth-proxy: a bearer token must name our issuer and expire.

stac-auth-proxy 1.3.1 checks a token's signature (against the issuer's JWKS), audience and
scopes, but not its `iss`, and accepts a token without `exp`. This guard closes both before the
proxy sees the request: a request that carries a bearer token whose `iss` is not EXPECTED_ISSUER,
or that has no numeric `exp`, or has expired, is answered 401. It reads the claims without
checking the signature, which is safe because the proxy behind it checks the signature of every
token it lets through: a forged claim set is refused there. Requests without a token pass
unchanged, so anonymous reads stay anonymous and anonymous writes are refused by the proxy.

The catalog chart mounts this file into the pinned stac-auth-proxy image and serves
`token_guard:create_app`; the loopback peer runs the very same file.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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
    without trailing slashes; `now` in seconds since the epoch.
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
    if not isinstance(found, str) or found.rstrip("/") != issuer.rstrip("/"):
        return "the token was not issued by this site's issuer"
    expiry = claims.get("exp")
    if isinstance(expiry, bool) or not isinstance(expiry, int | float):
        return "the token has no expiry (exp)"
    if expiry <= now:
        return "the token has expired"
    return None


class TokenGuard:
    """Answers 401 to requests whose bearer token fails `token_problem`; passes the rest."""

    def __init__(self, app: ASGIApp, issuer: str) -> None:
        if not issuer:
            raise ValueError("TokenGuard needs the issuer (EXPECTED_ISSUER) it accepts tokens of")
        self.app = app
        self.issuer = issuer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = None
            for name, value in scope.get("headers", []):
                if name == b"authorization":
                    header = value.decode("latin-1")
                    break
            problem = token_problem(header, self.issuer, time.time())
            if problem is not None:
                body = json.dumps({"detail": problem}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b'Bearer error="invalid_token"'),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def create_app() -> TokenGuard:
    """stac-auth-proxy's app (configured from its environment) behind the guard."""
    from stac_auth_proxy import Settings
    from stac_auth_proxy.app import create_app as proxy_app

    return TokenGuard(proxy_app(Settings()), os.environ.get("EXPECTED_ISSUER", ""))
