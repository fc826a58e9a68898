"""A small OpenID Connect issuer on loopback: a discovery document, a JWKS, RS256 access tokens.

Enough of a provider for the services that check tokens (stac-auth-proxy, the asset endpoint):
they fetch `<issuer>/.well-known/openid-configuration`, follow its `jwks_uri` and verify
signatures against it. Tokens are minted in-process with pyjwt; the test decides every claim,
so expired, foreign, wrongly signed or wrongly scoped tokens are one argument away.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _rsa_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class OidcIssuer:
    """Serves discovery and JWKS on 127.0.0.1 in a thread; `url` is the public issuer URL
    (set it with `publish` when a TLS proxy fronts it; the plain address otherwise)."""

    def __init__(self, kid: str = "loopback-1") -> None:
        self.kid = kid
        self.key = _rsa_key()
        self.url = ""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/.well-known/openid-configuration":
                    body = outer.discovery()
                elif self.path == "/jwks.json":
                    body = outer.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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
