"""A small OpenID Connect issuer on loopback: a discovery document, a JWKS, RS256 access tokens.

Enough of a provider for the services that check tokens (stac-auth-proxy, the asset endpoint):
they fetch `<issuer>/.well-known/openid-configuration`, follow its `jwks_uri` and verify
signatures against it. Tokens are minted in-process with pyjwt; the test decides every claim,
so expired, foreign, wrongly signed or wrongly scoped tokens are one argument away.

A browser logs in with the authorization code flow and PKCE (S256), as STAC Browser's
oidc-client-ts does: `/authorize` shows a one-button sign-in page for `login_subject`, then
redirects back with a code; `/token` exchanges it for an access token of `login_audience` with
`login_scope`, and an ID token for the client. Discovery, JWKS and the token endpoint answer any
origin (CORS), as a provider does for single-page applications.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


def _rsa_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class _Grant:
    """An authorization code waiting for its exchange."""

    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    expires: float


class OidcIssuer:
    """Serves discovery, JWKS and a browser login on 127.0.0.1 in a thread; `url` is the public
    issuer URL (set it with `publish` when a TLS proxy fronts it; the plain address otherwise).
    `login_audience` and `login_scope` are what a browser's login gets (set them before)."""

    def __init__(self, kid: str = "loopback-1") -> None:
        self.kid = kid
        self.key = _rsa_key()
        self.url = ""
        self.login_subject = "loopback-user"
        self.login_audience = ""
        self.login_scope = ""
        self.logins: list[str] = []  # client ids that exchanged a code, in order
        self._grants: dict[str, _Grant] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path, _, query = self.path.partition("?")
                if path == "/.well-known/openid-configuration":
                    self._json(200, outer.discovery())
                elif path == "/jwks.json":
                    self._json(200, outer.jwks())
                elif path == "/authorize":
                    self._sign_in_page(parse_qs(query))
                else:
                    self.send_error(404)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if self.path == "/authorize":
                    self._authorize(form)
                elif self.path == "/token":
                    status, body = outer.exchange({k: v[0] for k, v in form.items()})
                    self._json(status, body)
                else:
                    self.send_error(404)

            def do_OPTIONS(self) -> None:  # noqa: N802 - a CORS preflight
                self.send_response(204)
                self._cors()
                self.send_header("Access-Control-Allow-Methods", "GET, POST")
                self.send_header("Access-Control-Allow-Headers", "Content-Type, Authorization")
                self.end_headers()

            def _cors(self) -> None:
                self.send_header("Access-Control-Allow-Origin", "*")

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self._cors()
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _sign_in_page(self, query: dict[str, list[str]]) -> None:
                fields = "".join(
                    f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v[0])}">'
                    for k, v in sorted(query.items())
                )
                page = (
                    "<!doctype html><html><head><title>Loopback issuer: sign in</title></head>"
                    "<body><h1>Loopback issuer</h1>"
                    f"<p>Sign in as <b>{html.escape(outer.login_subject)}</b> "
                    f"(scope: {html.escape(outer.login_scope or 'none')})</p>"
                    f'<form method="post" action="/authorize">{fields}'
                    '<button type="submit" id="sign-in">Sign in</button></form></body></html>'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def _authorize(self, form: dict[str, list[str]]) -> None:
                try:
                    location = outer.authorize({k: v[0] for k, v in form.items()})
                except ValueError as err:
                    self.send_error(400, str(err))
                    return
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self.local_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> OidcIssuer:
        """Start serving; the issuer URL is the plain address until `publish` changes it."""
        self.url = self.url or self.local_url
        self._thread.start()
        return self

    def publish(self, url: str) -> None:
        """Name the public URL (the TLS proxy in front) as the issuer in discovery and tokens."""
        self.url = url.rstrip("/")

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def discovery(self) -> dict[str, Any]:
        """The OpenID discovery document."""
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks.json",
            "token_endpoint": f"{self.url}/token",
            "authorization_endpoint": f"{self.url}/authorize",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
        }

    def authorize(self, request: dict[str, str]) -> str:
        """The redirect after a signed-in authorization request (code flow, PKCE S256 required):
        `redirect_uri` with `code` and `state`. Raises ValueError for anything else."""
        if request.get("response_type") != "code":
            raise ValueError("response_type must be code")
        if request.get("code_challenge_method") != "S256" or not request.get("code_challenge"):
            raise ValueError("PKCE with S256 is required")
        redirect = request.get("redirect_uri", "")
        if urlsplit(redirect).scheme not in ("https", "http") or not request.get("client_id"):
            raise ValueError("client_id and an http(s) redirect_uri are required")
        code = secrets.token_urlsafe(24)
        self._grants[code] = _Grant(
            request["client_id"],
            redirect,
            request["code_challenge"],
            request.get("nonce"),
            time.monotonic() + 60,
        )
        answer = {"code": code, **({"state": request["state"]} if "state" in request else {})}
        return f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(answer)}"

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The token endpoint: (status, body) for an authorization code exchange; each code
        once, within 60 s, from the same client and redirect URI, with its PKCE verifier."""
        grant = self._grants.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or grant.expires < time.monotonic()
            or grant.client_id != form.get("client_id")
            or grant.redirect_uri != form.get("redirect_uri")
            or grant.challenge != challenge
        ):
            return 400, {"error": "invalid_grant"}
        self.logins.append(grant.client_id)
        access = self.token(
            audience=self.login_audience, scope=self.login_scope, subject=self.login_subject
        )
        nonce = {"nonce": grant.nonce} if grant.nonce else {}
        identity = self.token(audience=grant.client_id, subject=self.login_subject, extra=nonce)
        return 200, {
            "access_token": access,
            "id_token": identity,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": f"openid {self.login_scope}".strip(),
        }

    def jwks(self) -> dict[str, Any]:
        """The public signing key as a JWK Set."""
        from jwt.algorithms import RSAAlgorithm

        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return {"keys": [jwk]}

    def token(
        self,
        *,
        audience: str,
        scope: str = "",
        subject: str = "loopback-user",
        lifetime: float | None = 300,
        issuer: str | None = None,
        signing_key: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """An RS256 access token. `lifetime=None` leaves out `exp`; a negative one has expired;
        `issuer` and `signing_key` forge one that this issuer did not make."""
        import jwt

        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url if issuer is None else issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "scope": scope,
        }
        if lifetime is not None:
            claims["exp"] = now + int(lifetime)
        claims.update(extra or {})
        return jwt.encode(
            claims, signing_key or self.key, algorithm="RS256", headers={"kid": self.kid}
        )

    @staticmethod
    def foreign_key() -> Any:
        """An RSA key this issuer does not publish (for wrongly signed tokens)."""
        return _rsa_key()
