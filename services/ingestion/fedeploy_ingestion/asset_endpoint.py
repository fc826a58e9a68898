"""The site's asset endpoint: a token-checked redirect from a registered item's asset to a
short-lived presigned S3 URL. It never proxies the bytes.

GET <root>/assets/<collection>/<item>/<asset>, with `Authorization: Bearer <token>`:
- 401 without a token, or with one that is not valid: signed RS256 (the one algorithm
  stac-auth-proxy 1.3.1 verifies writes with) by a key of the issuer's JWKS whose `kid` the
  token's header names; `iss`, `aud` and `exp` required; `exp`, `nbf` and `iat` JSON numbers
  (RFC 7519 NumericDate, as the catalog's token guard reads `exp`), checked with
  CLOCK_LEEWAY_SECONDS of leeway; `iss` compared exactly with ASSETS_ISSUER, as OpenID Connect
  Core 1.0 section 3.1.3.7 requires, a trailing slash included, as the catalog's token guard
  compares it. Whatever fails to verify, however malformed the token, is a 401, never a 500;
- 503 when the issuer's discovery document or JWKS cannot be used (unreachable, not JSON, naming
  another issuer, a `jwks_uri` that is not https, no RS256 signing key): remembered for
  ISSUER_RETRY_SECONDS, so callers cannot make the endpoint fetch them on every request;
- 403 when the token lacks the read scope;
- 404 when the item is not registered in this site's catalog, has no such asset, or the asset
  is not an `s3://` object in one of this site's buckets under one of ASSETS_KEY_PREFIXES
  (default: `sentinel/` and `observations/`, where the ingestion service writes), with no
  empty, `.` or `..` path segment. Anyone who may register an item (a writer's token) could
  otherwise name any object the endpoint's credentials read, and have it presigned;
- 307 to `generate_presigned_url("get_object")`, valid ASSETS_URL_LIFETIME_SECONDS.

The JWKS is fetched from the discovery document's `jwks_uri` as given (OpenID Connect Discovery
1.0), on whatever host it names; stac-auth-proxy 1.3.1 instead fetches the same path from the
discovery URL's scheme and host, so where the two differ the write path may refuse tokens this
endpoint takes (logged as a warning when the document is read; docs/charts.md).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)


class AssetSettings(BaseSettings):
    """The asset endpoint's settings (environment variables ASSETS_<NAME>)."""

    model_config = SettingsConfigDict(env_prefix="ASSETS_", extra="ignore", frozen=True)

    issuer: str = Field(
        pattern=r"^https?://\S+$",
        description="OIDC issuer, verbatim: tokens must name exactly it in `iss`.",
    )
    audience: str = Field(min_length=1, description="The `aud` every token must carry.")
    read_scope: str = Field("stac:read", min_length=1, description="Scope needed to fetch.")
    catalog_url: str = Field(
        pattern=r"^https?://", description="This site's STAC API (in-cluster), to look items up."
    )
    buckets: list[str] = Field(
        default_factory=list, description="Buckets assets may be in (JSON list); empty: any."
    )
    key_prefixes: list[str] = Field(
        default_factory=lambda: ["sentinel/", "observations/"],
        description="Key prefixes assets may be under (JSON list); empty: any key.",
    )
    url_lifetime_seconds: int = Field(900, ge=60, le=43200, description="Presigned URL lifetime.")
    root_path: str = Field("", description="Path of the public catalog URL, e.g. /stac.")
    s3_endpoint_url: str = Field("", description="S3 endpoint; empty: AWS regional S3.")
    s3_region: str = Field("", description="S3 region.")
    s3_addressing_style: str = Field("auto", description="auto, path or virtual.")
    http_host: str = Field("0.0.0.0", description="Address to listen on.")
    http_port: int = Field(8080, ge=1, le=65535, description="Port to listen on.")
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port of Prometheus's /metrics, apart from the public port; unset: none.",
    )

    @field_validator("root_path")
    @classmethod
    def _root(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError(f"root_path {value!r} must start with '/'")
        return value


class Refused(Exception):
    """A request refused with an HTTP status and a reason that is safe to show the caller."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# The algorithms a token may be signed with: what stac-auth-proxy 1.3.1 verifies writes with
# (RS256 only), so that the asset endpoint takes no token the write path refuses for its algorithm.
ALGORITHMS = ("RS256",)

# Seconds of clock skew allowed on `exp`, `nbf` and `iat` (PyJWT's leeway): a token from an issuer
# whose clock runs a little ahead is not refused as issued in the future.
CLOCK_LEEWAY_SECONDS = 30

# How long the issuer's JWK Set is used before it is fetched again, and the least time between two
# fetches for a `kid` it does not hold (a rotated-in key; a forged kid cannot make it fetch more).
JWKS_LIFESPAN_SECONDS = 300
UNKNOWN_KID_COOLDOWN_SECONDS = 30

# How long a failure to use the issuer's discovery document or JWKS is remembered (every token
# answered 503 meanwhile, without fetching again).
ISSUER_RETRY_SECONDS = 30

# Timeout of each fetch of the discovery document and the JWKS.
FETCH_TIMEOUT_SECONDS = 10

# The longest `kid` a token's header may name (key ids are short; a longer one is refused as is).
MAX_KID_CHARS = 256


class IssuerUnavailable(Exception):
    """The issuer's discovery document or JWKS could not be used (answered 503)."""


class UnknownKey(Exception):
    """The issuer's JWKS holds no RS256 signing key of the token's `kid` (answered 401)."""


def _rs256_key(jwk: Any) -> Any:
    """The PyJWK of a JWKS member that can verify RS256 signatures, else None: an RSA key (kty
    RSA) with a string `kid`, `use` absent or `sig`, `alg` absent or RS256, that PyJWT can load.
    A member of another key type, or a malformed one, is skipped, whatever it holds."""
    import jwt

    if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
        return None
    if not isinstance(jwk.get("kid"), str) or jwk.get("use", "sig") != "sig":
        return None
    if jwk.get("alg", "RS256") != "RS256":
        return None
    try:
        return jwt.PyJWK(jwk, algorithm="RS256")
    except Exception:  # noqa: BLE001 - any member PyJWT cannot load is no key of ours
        return None


def _https(url: Any) -> bool:
    """Whether `url` is an https URL with a host."""
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname)


class IssuerKeys:
    """The issuer's RS256 signing keys: its discovery document is read once (and again after a
    failure, at most every ISSUER_RETRY_SECONDS), its JWKS every JWKS_LIFESPAN_SECONDS, or for an
    unknown `kid` at most every UNKNOWN_KID_COOLDOWN_SECONDS."""

    def __init__(
        self,
        issuer: str,
        discovery_url: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.discovery_url = discovery_url
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._keys: dict[str, Any] | None = None
        self._fetched = 0.0
        self._failed: tuple[float, str] | None = None  # (until, why)

    def get_signing_key(self, kid: str) -> Any:
        """The PyJWK of `kid`; UnknownKey when the JWKS holds none, IssuerUnavailable when the
        issuer's documents cannot be used."""
        with self._lock:
            now = self._clock()
            if self._keys is None or now - self._fetched >= JWKS_LIFESPAN_SECONDS:
                self._refresh(now)
            assert self._keys is not None
            key = self._keys.get(kid)
            if key is None and now - self._fetched >= UNKNOWN_KID_COOLDOWN_SECONDS:
                # On a failure the keys held stay: the token's kid is not among them.
                with contextlib.suppress(IssuerUnavailable):
                    self._refresh(now)
                key = self._keys.get(kid)
        if key is None:
            raise UnknownKey("the issuer's JWKS holds no RS256 key of the token's kid")
        return key

    def jwks_uri(self) -> str:
        """The discovery document's `jwks_uri` (read once); IssuerUnavailable otherwise."""
        with self._lock:
            return self._discovered(self._clock())

    def _refresh(self, now: float) -> None:
        if self._failed is not None and now < self._failed[0]:
            raise IssuerUnavailable(self._failed[1])
        try:
            keys = self._fetch_keys(self._discovered(now))
        except IssuerUnavailable as failure:
            self._remember(now, failure)
            raise
        self._keys, self._fetched, self._failed = keys, now, None

    def _remember(self, now: float, failure: IssuerUnavailable) -> None:
        if self._failed is None or now >= self._failed[0]:
            log.error(
                "the issuer's keys cannot be used",
                extra={"reason": str(failure), "retry_seconds": ISSUER_RETRY_SECONDS},
            )
        self._failed = (now + ISSUER_RETRY_SECONDS, str(failure))

    def _discovered(self, now: float) -> str:
        if self._jwks_uri is not None:
            return self._jwks_uri
        if self._failed is not None and now < self._failed[0]:
            raise IssuerUnavailable(self._failed[1])
        try:
            self._jwks_uri = self._discover()
        except IssuerUnavailable as failure:
            self._remember(now, failure)
            raise
        return self._jwks_uri

    def _discover(self) -> str:
        document = _fetch_json(self.discovery_url, "the discovery document")
        named = document.get("issuer")
        if named != self.issuer:
            # Discovery 1.0 section 4.3: the document's issuer MUST be the configured one; its
            # tokens name that issuer, which the exact `iss` check would refuse one by one.
            raise IssuerUnavailable(
                f"the discovery document {self.discovery_url} names the issuer {named!r}, "
                f"not {self.issuer!r}"
            )
        jwks_uri = document.get("jwks_uri")
        if not _https(jwks_uri):
            raise IssuerUnavailable(
                f"the discovery document {self.discovery_url} names the jwks_uri {jwks_uri!r}, "
                "not an https URL"
            )
        assert isinstance(jwks_uri, str)
        if urlsplit(jwks_uri).netloc != urlsplit(self.discovery_url).netloc:
            log.warning(
                "the issuer's JWKS is on another host than its discovery document: "
                "stac-auth-proxy 1.3.1 fetches its path from the discovery document's host "
                "instead, so writes may be refused while asset requests are taken",
                extra={"jwks_uri": jwks_uri, "discovery_url": self.discovery_url},
            )
        return jwks_uri

    @staticmethod
    def _fetch_keys(jwks_uri: str) -> dict[str, Any]:
        document = _fetch_json(jwks_uri, "the JWKS")
        members = document.get("keys")
        found = [_rs256_key(m) for m in members] if isinstance(members, list) else []
        keys = {k.key_id: k for k in found if k is not None}
        if not keys:
            raise IssuerUnavailable(f"the JWKS {jwks_uri} holds no RS256 signing key with a kid")
        return keys


def _fetch_json(url: str, what: str) -> dict[str, Any]:
    """The JSON object at `url`; IssuerUnavailable when it cannot be fetched or is not one."""
    try:
        answer = httpx.get(url, timeout=FETCH_TIMEOUT_SECONDS)
        answer.raise_for_status()
        document = answer.json()
    except (httpx.HTTPError, ValueError) as error:
        raise IssuerUnavailable(
            f"{what} {url} could not be read ({type(error).__name__})"
        ) from error
    if not isinstance(document, dict):
        raise IssuerUnavailable(f"{what} {url} is not a JSON object")
    return document


def _numeric_date(value: Any) -> bool:
    """Whether a claim is a NumericDate (RFC 7519 section 2): a finite JSON number, not a
    string or a boolean (as the catalog's token guard reads `exp`)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class TokenChecker:
    """Checks bearer tokens against the issuer's JWKS (found through its discovery document)."""

    def __init__(self, settings: AssetSettings, jwks_client: Any = None) -> None:
        self.settings = settings
        self._jwks_client = jwks_client

    @property
    def discovery_url(self) -> str:
        """The issuer's discovery document: the issuer without one trailing slash, then
        `/.well-known/openid-configuration` (OpenID Connect Discovery 1.0, section 4.1)."""
        return f"{self.settings.issuer.removesuffix('/')}/.well-known/openid-configuration"

    @cached_property
    def jwks(self) -> Any:
        """What looks keys up by `kid` (`get_signing_key(kid)` -> PyJWK): IssuerKeys, or the
        client given."""
        if self._jwks_client is not None:
            return self._jwks_client
        return IssuerKeys(self.settings.issuer, self.discovery_url)

    def check(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims; Refused(401) or Refused(403) otherwise, Refused(503) when the
        issuer's keys cannot be had."""
        import jwt

        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Refused(401, "a bearer token is required")
        try:
            kid = self._kid(token)
            key = self.jwks.get_signing_key(kid)
        except IssuerUnavailable as error:
            raise Refused(503, "the issuer's keys cannot be fetched") from error
        except (jwt.PyJWTError, UnknownKey) as error:
            log.info("token refused", extra={"reason": type(error).__name__})
            raise Refused(401, "the token is not valid") from error
        try:
            # The PyJWK itself, so PyJWT checks the header's alg against the key's.
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=CLOCK_LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
            dates = [name for name in ("exp", "nbf", "iat") if name in claims]
            if not all(_numeric_date(claims[name]) for name in dates):
                raise jwt.InvalidTokenError("exp, nbf and iat must be numbers")
        except Exception as error:  # noqa: BLE001 - whatever fails to verify is a 401, never a 500
            log.info("token refused", extra={"reason": type(error).__name__})
            raise Refused(401, "the token is not valid") from error
        if self.settings.read_scope not in str(claims.get("scope", "")).split():
            raise Refused(403, f"the token lacks the scope {self.settings.read_scope}")
        return claims

    @staticmethod
    def _kid(token: str) -> str:
        """The `kid` of a token whose header names RS256; jwt.InvalidTokenError otherwise (before
        the issuer's keys are fetched)."""
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except Exception as error:  # noqa: BLE001 - a header PyJWT cannot read is no token
            raise jwt.DecodeError("the token's header cannot be read") from error
        if header.get("alg") not in ALGORITHMS:
            raise jwt.InvalidAlgorithmError("the token is not signed RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_CHARS:
            raise jwt.InvalidTokenError(f"the token's kid is not a string of 1 to {MAX_KID_CHARS}")
        return kid


def s3_location(
    href: str, buckets: list[str], prefixes: Sequence[str] = ()
) -> tuple[str, str] | None:
    """(bucket, key) of an `s3://bucket/key` href in one of `buckets` (any when empty), its key
    under one of `prefixes` (any when empty) and free of empty, `.` and `..` segments (which a
    client would normalise into another key than the one presigned); None otherwise."""
    parts = urlsplit(href)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        return None
    if parts.query or parts.fragment or (buckets and parts.netloc not in buckets):
        return None
    key = parts.path[1:]
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        return None
    if prefixes and not any(key.startswith(prefix) for prefix in prefixes):
        return None
    return parts.netloc, key


class AssetResolver:
    """Finds a registered item's asset in this site's catalog and presigns it."""

    def __init__(self, settings: AssetSettings, s3: Any, http: httpx.Client | None = None) -> None:
        self.settings = settings
        self.s3 = s3
        self.http = http or httpx.Client(timeout=15)

    def presigned(self, collection: str, item_id: str, asset: str) -> str:
        """The presigned URL of the asset; Refused(404) when it is not a registered asset."""
        path = "/".join(quote(p, safe="") for p in ("collections", collection, "items", item_id))
        try:
            answer = self.http.get(f"{self.settings.catalog_url.rstrip('/')}/{path}")
        except httpx.HTTPError as error:
            raise Refused(503, "the site's catalog did not answer") from error
        if answer.status_code == 404:
            raise Refused(404, "no such item in this site's catalog")
        if answer.status_code != 200:
            raise Refused(503, f"the site's catalog answered {answer.status_code}")
        document = answer.json()
        if document.get("collection") != collection or document.get("id") != item_id:
            raise Refused(404, "no such item in this site's catalog")
        found = (document.get("assets") or {}).get(asset)
        href = found.get("href") if isinstance(found, dict) else None
        location = (
            s3_location(str(href), self.settings.buckets, self.settings.key_prefixes)
            if href
            else None
        )
        if location is None:
            raise Refused(404, "the item has no such asset in this site's storage")
        bucket, key = location
        url: str = self.s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": bucket, "Key": key},
            ExpiresIn=self.settings.url_lifetime_seconds,
        )
        return url


def presigning_client(settings: AssetSettings) -> Any:
    """A boto3 S3 client that presigns with Signature Version 4 (what every region and
    S3-compatible store accepts); credentials from boto3's default chain (the pod's role, or the
    shared credentials file the chart names in AWS_SHARED_CREDENTIALS_FILE)."""
    import boto3
    from botocore.config import Config

    style = settings.s3_addressing_style
    if style == "auto" and settings.s3_endpoint_url:
        style = "path"
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url or None,
        region_name=settings.s3_region or None,
        config=Config(signature_version="s3v4", s3={"addressing_style": style}),
    )


class AssetMetrics:
    """Asset requests by status class and their durations, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ingest_asset_requests",
            "Asset requests answered, by status class (3xx: a presigned URL given).",
            ["code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "ingest_asset_request_duration_seconds",
            "Time to answer an asset request.",
            registry=self.registry,
        )


def create_app(
    settings: AssetSettings | None = None,
    *,
    s3: Any = None,
    jwks_client: Any = None,
    http: httpx.Client | None = None,
    metrics: AssetMetrics | None = None,
) -> Any:
    """The FastAPI application (settings from the environment when not given)."""
    settings = settings or AssetSettings()  # type: ignore[call-arg]
    s3 = s3 or presigning_client(settings)
    tokens = TokenChecker(settings, jwks_client)
    resolver = AssetResolver(settings, s3, http)
    metrics = metrics or AssetMetrics()
    app = FastAPI(title="fedeploy asset endpoint", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.metrics = metrics

    @app.middleware("http")
    async def counted(request: Request, call_next: Any) -> Any:
        if request.url.path == "/healthz":
            return await call_next(request)
        with metrics.duration.time():
            try:
                response = await call_next(request)
            except Exception:
                metrics.requests.labels(code="5xx").inc()
                raise
        metrics.requests.labels(code=f"{response.status_code // 100}xx").inc()
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(settings.root_path + "/assets/{collection}/{item_id}/{asset}")
    def asset(collection: str, item_id: str, asset: str, request: Request) -> Any:
        try:
            tokens.check(request.headers.get("authorization"))
            location = resolver.presigned(collection, item_id, asset)
        except Refused as refused:
            headers = {"WWW-Authenticate": "Bearer"} if refused.status == 401 else {}
            return JSONResponse(
                {"detail": refused.reason}, status_code=refused.status, headers=headers
            )
        return RedirectResponse(location, status_code=307, headers={"Cache-Control": "no-store"})

    return app


def serve() -> None:
    """Serve on ASSETS_HTTP_HOST:ASSETS_HTTP_PORT until SIGTERM (and Prometheus's /metrics on
    ASSETS_METRICS_PORT)."""
    import uvicorn

    settings = AssetSettings()  # type: ignore[call-arg]
    app = create_app(settings)
    if settings.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, settings.http_host, app.state.metrics.registry)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        proxy_headers=True,
        forwarded_allow_ips="*",
        access_log=False,
        log_level="warning",
    )
