"""The site's asset endpoint: a token-checked redirect from a registered item's asset to a
short-lived presigned S3 URL. It never proxies the bytes.

GET <root>/assets/<collection>/<item>/<asset>, with `Authorization: Bearer <token>`:
- 401 without a token, or with one that is not valid (signature against the issuer's JWKS,
  `iss`, `aud` and `exp` all required and checked; `iss` compared exactly with ASSETS_ISSUER, as
  OpenID Connect Core 1.0 section 3.1.3.7 requires, a trailing slash included, as the catalog's
  token guard compares it);
- 403 when the token lacks the read scope;
- 404 when the item is not registered in this site's catalog, has no such asset, or the asset
  is not an `s3://` object in one of this site's buckets under one of ASSETS_KEY_PREFIXES
  (default: `sentinel/` and `observations/`, where the ingestion service writes), with no
  empty, `.` or `..` path segment. Anyone who may register an item (a writer's token) could
  otherwise name any object the endpoint's credentials read, and have it presigned;
- 307 to `generate_presigned_url("get_object")`, valid ASSETS_URL_LIFETIME_SECONDS.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
        import jwt

        if self._jwks_client is not None:
            return self._jwks_client
        answer = httpx.get(self.discovery_url, timeout=10)
        answer.raise_for_status()
        document = answer.json()
        named = document.get("issuer") if isinstance(document, dict) else None
        if named != self.settings.issuer:
            # Discovery 1.0 section 4.3: the document's issuer MUST be the configured one; its
            # tokens name that issuer, which the exact `iss` check would refuse one by one.
            log.error(
                "the discovery document names another issuer",
                extra={
                    "url": self.discovery_url,
                    "names": named,
                    "configured": self.settings.issuer,
                },
            )
            raise ValueError(f"the discovery document names the issuer {named!r}")
        return jwt.PyJWKClient(document["jwks_uri"], cache_keys=True, lifespan=300)

    def check(self, authorization: str | None) -> dict[str, Any]:
        """The token's claims; Refused(401) or Refused(403) otherwise."""
        import jwt

        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused(401, "a bearer token is required")
        try:
            key = self.jwks.get_signing_key_from_jwt(token.strip())
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                key.key,
                algorithms=["RS256", "ES256"],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                options={"require": ["exp", "iss", "aud"]},
            )
        except (jwt.PyJWTError, httpx.HTTPError, KeyError, ValueError) as error:
            log.info("token refused", extra={"reason": type(error).__name__})
            raise Refused(401, "the token is not valid") from error
        if self.settings.read_scope not in str(claims.get("scope", "")).split():
            raise Refused(403, f"the token lacks the scope {self.settings.read_scope}")
        return claims


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
