"""The asset endpoint's decisions and the hub's https alternates, without network peers."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from fedeploy_ingestion.asset_alternates import ALTERNATE_ASSETS, with_https_alternates
from fedeploy_ingestion.asset_endpoint import (
    CLOCK_LEEWAY_SECONDS,
    AssetSettings,
    UnknownKey,
    create_app,
    s3_location,
)

ISSUER = "https://id.example.eu/realms/eofed"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def item(assets: dict[str, Any]) -> dict[str, Any]:
    return {"id": "site-a.s1", "collection": "c", "assets": assets, "properties": {}}


def test_s3_assets_gain_an_https_alternate_and_keep_their_href():
    hub = item(
        {
            "data": {"href": "s3://raw/a b/x.tif"},
            "meta": {"href": "https://elsewhere.example/x.xml"},
            "old": {"href": "s3://raw/y", "alternate": {"local": {"href": "file:///y"}}},
        }
    )
    out = with_https_alternates(hub, "https://c.site.eu/stac/", "c/1", "s 1")
    assert out["assets"]["data"]["href"] == "s3://raw/a b/x.tif"
    assert (
        out["assets"]["data"]["alternate"]["https"]["href"]
        == "https://c.site.eu/stac/assets/c%2F1/s%201/data"
    )
    assert "alternate" not in out["assets"]["meta"]
    assert set(out["assets"]["old"]["alternate"]) == {"local", "https"}
    assert out["stac_extensions"] == [ALTERNATE_ASSETS]
    again = with_https_alternates(out, "https://c.site.eu/stac", "c/1", "s 1")
    assert again["stac_extensions"] == [ALTERNATE_ASSETS]


def test_a_site_without_an_https_url_gets_no_alternates():
    hub = item({"data": {"href": "s3://raw/x"}})
    out = with_https_alternates(hub, "http://catalog.fedeploy.svc.cluster.local:8080", "c", "s1")
    assert "alternate" not in out["assets"]["data"] and "stac_extensions" not in out


@pytest.mark.parametrize(
    ("href", "buckets", "expected"),
    [
        ("s3://raw/a/b.tif", ["raw"], ("raw", "a/b.tif")),
        ("s3://raw/a/b.tif", [], ("raw", "a/b.tif")),
        ("s3://other/a.tif", ["raw"], None),
        ("s3://raw/", ["raw"], None),
        ("https://raw/a.tif", ["raw"], None),
        ("s3:///a.tif", [], None),
        ("s3://raw/a//b.tif", [], None),
        ("s3://raw/./b.tif", [], None),
        ("s3://raw/a/b.tif#x", [], None),
    ],
)
def test_only_s3_objects_of_the_sites_buckets_are_presigned(href, buckets, expected):
    assert s3_location(href, buckets) == expected


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("s3://raw/sentinel/c/i/B04.jp2", ("raw", "sentinel/c/i/B04.jp2")),
        ("s3://raw/observations/w.parquet", ("raw", "observations/w.parquet")),
        ("s3://raw/sentinelx/a", None),
        ("s3://raw/models/m.bin", None),
        ("s3://raw/sentinel/../models/m.bin", None),
    ],
)
def test_only_keys_under_the_prefixes_are_presigned(href, expected):
    assert s3_location(href, [], ["sentinel/", "observations/"]) == expected


class Jwks:
    """What the issuer's keys answer, for the one key (kid k1)."""

    def get_signing_key(self, kid: str) -> Any:
        if kid != "k1":
            raise UnknownKey(kid)
        return jwt.PyJWK.from_dict(
            {**jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True), "alg": "RS256"}
        )


class Presigner:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, int]] = []

    def generate_presigned_url(self, method: str, Params: dict, ExpiresIn: int) -> str:  # noqa: N803
        self.calls.append((method, Params, ExpiresIn))
        return f"https://s3.example/{Params['Bucket']}/{Params['Key']}?sig=x"


ASSETS = {
    "data": {"href": "s3://raw/sentinel/k.tif"},
    # registered by whoever holds a write token: objects the endpoint must not presign
    "models": {"href": "s3://raw/models/weights.bin"},
    "dotted": {"href": "s3://raw/sentinel/../models/weights.bin"},
    "other-bucket": {"href": "s3://private/sentinel/k.tif"},
    "queried": {"href": "s3://raw/sentinel/k.tif?versionId=1"},
    "http": {"href": "https://evil.example/sentinel/k.tif"},
}


def catalog(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/collections/c/items/s1":
        return httpx.Response(
            200,
            json={"id": "s1", "collection": "c", "assets": ASSETS},
        )
    return httpx.Response(404, json={"detail": "not found"})


def token(**claims: Any) -> dict[str, str]:
    body = {"iss": ISSUER, "aud": "cat", "exp": int(time.time()) + 60, "scope": "stac:read"}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    signed = jwt.encode(body, KEY, algorithm="RS256", headers={"kid": "k1"})
    return {"Authorization": f"Bearer {signed}"}


@pytest.fixture
def client_and_s3():
    settings = AssetSettings(
        issuer=ISSUER,
        audience="cat",
        catalog_url="http://catalog:8080",
        buckets=["raw"],
        url_lifetime_seconds=600,
        root_path="/stac/",
    )
    s3 = Presigner()
    http = httpx.Client(transport=httpx.MockTransport(catalog), base_url="http://catalog:8080")
    app = create_app(settings, s3=s3, jwks_client=Jwks(), http=http)
    return TestClient(app), s3


def test_a_valid_read_token_gets_a_307_to_a_presigned_url_with_the_configured_lifetime(
    client_and_s3,
):
    client, s3 = client_and_s3
    answer = client.get("/stac/assets/c/s1/data", headers=token(), follow_redirects=False)
    assert answer.status_code == 307
    assert answer.headers["location"] == "https://s3.example/raw/sentinel/k.tif?sig=x"
    assert s3.calls == [("get_object", {"Bucket": "raw", "Key": "sentinel/k.tif"}, 600)]


@pytest.mark.parametrize("asset", ["models", "dotted", "other-bucket", "queried", "http"])
def test_a_registered_asset_outside_the_ingestion_prefixes_is_not_presigned(client_and_s3, asset):
    client, s3 = client_and_s3
    answer = client.get(f"/stac/assets/c/s1/{asset}", headers=token(), follow_redirects=False)
    assert answer.status_code == 404
    assert s3.calls == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (lambda: {}, 401),
        (lambda: {"Authorization": "Basic dTpw"}, 401),
        (lambda: token(exp=int(time.time()) - CLOCK_LEEWAY_SECONDS - 5), 401),
        (lambda: token(exp=None), 401),
        (lambda: token(iss="https://evil.example"), 401),
        (lambda: token(aud="other"), 401),
        (lambda: token(scope="stac:write"), 403),
    ],
)
def test_callers_without_a_valid_read_token_are_refused_before_any_lookup(
    client_and_s3, headers, status
):
    client, s3 = client_and_s3
    answer = client.get("/stac/assets/c/s1/data", headers=headers(), follow_redirects=False)
    assert answer.status_code == status
    assert s3.calls == []


@pytest.mark.parametrize("path", ["/stac/assets/c/s1/nope", "/stac/assets/c/s9/data"])
def test_unregistered_assets_are_not_found(client_and_s3, path):
    client, s3 = client_and_s3
    assert client.get(path, headers=token(), follow_redirects=False).status_code == 404
    assert s3.calls == []


def forged(header: dict[str, Any], secret: bytes | None) -> dict[str, str]:
    """A token with the given header, valid claims, signed with HMAC-SHA256 over `secret`
    (None: no signature)."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = {"iss": ISSUER, "aud": "cat", "exp": int(time.time()) + 60, "scope": "stac:read"}
    signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    mac = b"" if secret is None else hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return {"Authorization": f"Bearer {signing}.{b64(mac)}"}


PUBLIC_PEM = KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    "headers",
    [
        lambda: forged({"alg": "none", "typ": "JWT"}, None),
        lambda: forged(
            {"alg": "HS256", "typ": "JWT"}, PUBLIC_PEM
        ),  # the public key as an HMAC secret
        lambda: {
            "Authorization": "Bearer "
            + jwt.encode(
                {"iss": ISSUER, "aud": "cat", "exp": int(time.time()) + 60, "scope": "stac:read"},
                OTHER_KEY,
                algorithm="RS256",
                headers={"kid": "k1"},
            )
        },
        lambda: token(nbf=int(time.time()) + 600),
        lambda: token(iss=ISSUER + "/"),
        lambda: token(aud=None),
        lambda: token(iss=None),
    ],
    ids=[
        "alg-none",
        "hs256-public-key",
        "other-key",
        "not-yet-valid",
        "iss-slash",
        "no-aud",
        "no-iss",
    ],
)
def test_forged_and_malformed_tokens_are_refused(client_and_s3, headers):
    client, s3 = client_and_s3
    answer = client.get("/stac/assets/c/s1/data", headers=headers(), follow_redirects=False)
    assert answer.status_code == 401
    assert s3.calls == []


def test_the_presigned_lifetime_is_bounded():
    base = {"issuer": ISSUER, "audience": "cat", "catalog_url": "http://catalog:8080"}
    for seconds in (0, 59, 43201, 7 * 86400):
        with pytest.raises(ValueError):
            AssetSettings(**base, url_lifetime_seconds=seconds)
    assert AssetSettings(**base).url_lifetime_seconds == 900


def test_requests_are_counted_by_status_class_for_prometheus(client_and_s3):
    # The catalog chart's PodMonitor scrapes these on ASSETS_METRICS_PORT (docs/charts.md).
    from prometheus_client import generate_latest

    client, _ = client_and_s3
    client.get("/stac/assets/c/s1/data", headers=token(), follow_redirects=False)
    client.get("/stac/assets/c/s1/data", follow_redirects=False)
    client.get("/stac/assets/c/s9/data", headers=token(), follow_redirects=False)
    client.get("/healthz")
    text = generate_latest(client.app.state.metrics.registry).decode()
    assert 'ingest_asset_requests_total{code="3xx"} 1.0' in text
    assert 'ingest_asset_requests_total{code="4xx"} 2.0' in text
    assert "ingest_asset_request_duration_seconds_count 3.0" in text
