"""The asset endpoint's token check against hostile tokens and issuers (review rw33 F1, F2, F3,
F5): whatever a caller sends, or an issuer publishes, is a 401 (a 503 for the issuer's own
failures), never a 500; the endpoint takes what the write path (token guard + stac-auth-proxy
1.3.1) takes: RS256 only, `exp`/`nbf`/`iat` numbers only."""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from fedeploy_ingestion.asset_endpoint import AssetMetrics, AssetSettings, Refused, TokenChecker
from prometheus_client import generate_latest

ISSUER = "https://id.example.eu/realms/eofed"
DISCOVERY = f"{ISSUER}/.well-known/openid-configuration"
JWKS_URI = f"{ISSUER}/protocol/openid-connect/certs"
AUDIENCE = "cat"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_JWK = {
    **jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True),
    "kid": "r1",
    "use": "sig",
    "alg": "RS256",
}
EC_JWK = {
    **jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key(), as_dict=True),
    "kid": "e1",
    "use": "sig",
    "alg": "ES256",
}

_guard_spec = importlib.util.spec_from_file_location(
    "token_guard_rw33", Path(__file__).parents[3] / "charts/catalog/files/token_guard.py"
)
assert _guard_spec is not None and _guard_spec.loader is not None
token_guard = importlib.util.module_from_spec(_guard_spec)
_guard_spec.loader.exec_module(token_guard)


def b64(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + 300, "iat": now, "scope": "stac:read"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def signed(key: Any = RSA_KEY, alg: str = "RS256", kid: str = "r1", **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm=alg, headers={"kid": kid})


class Issuer:
    """The issuer's discovery document and JWKS, served through a patched httpx.get."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.documents: dict[str, Any] = {
            DISCOVERY: {"issuer": ISSUER, "jwks_uri": JWKS_URI},
            JWKS_URI: {"keys": [RSA_JWK, EC_JWK]},
        }
        self.fetched: list[str] = []
        monkeypatch.setattr(httpx, "get", self.get)

    def get(self, url: str, timeout: float) -> httpx.Response:
        self.fetched.append(url)
        request = httpx.Request("GET", url)
        if url not in self.documents:
            return httpx.Response(404, request=request)
        found = self.documents[url]
        body = found if isinstance(found, bytes) else json.dumps(found).encode()
        return httpx.Response(200, content=body, request=request)


class BothClients:
    """The issuer's keys through either lookup (`get_signing_key` by kid, or PyJWKClient's
    `get_signing_key_from_jwt`), so a test runs against the old checker as well."""

    keys = {"r1": jwt.PyJWK(RSA_JWK), "e1": jwt.PyJWK(EC_JWK)}

    def get_signing_key(self, kid: str) -> Any:
        from fedeploy_ingestion.asset_endpoint import UnknownKey

        if kid not in self.keys:
            raise UnknownKey(kid)
        return self.keys[kid]

    def get_signing_key_from_jwt(self, token: str) -> Any:
        kid = jwt.get_unverified_header(token).get("kid")
        if kid not in self.keys:
            raise jwt.PyJWKClientError(str(kid))
        return self.keys[kid]


def settings() -> AssetSettings:
    return AssetSettings(issuer=ISSUER, audience=AUDIENCE, catalog_url="http://catalog:8080")


def status_of(token: str, jwks: Any = None) -> int:
    """The asset endpoint's answer to the token (a 404 lookup after the check passes)."""
    from fedeploy_ingestion.asset_endpoint import create_app

    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    metrics = AssetMetrics()
    app = create_app(settings(), s3=object(), jwks_client=jwks, http=http, metrics=metrics)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/assets/c/i/a", headers={"Authorization": f"Bearer {token}"})
    text = generate_latest(metrics.registry).decode()
    assert 'code="5xx"' not in text or answer.status_code == 503
    return answer.status_code


FORGED = {
    # the reviewer's token: the kid of the issuer's RSA key, alg ES256, no signature to speak of
    "es256-header-rsa-kid": f"{b64({'alg': 'ES256', 'kid': 'r1'})}.{b64({'iss': 'x'})}.AAAA",
    "rs256-header-ec-kid": f"{b64({'alg': 'RS256', 'kid': 'e1'})}.{b64({'iss': 'x'})}.AAAA",
    "ps256-header-rsa-kid": f"{b64({'alg': 'PS256', 'kid': 'r1'})}.{b64({'iss': 'x'})}.AAAA",
    "eddsa-header-rsa-kid": f"{b64({'alg': 'EdDSA', 'kid': 'r1'})}.{b64({'iss': 'x'})}.AAAA",
    "hs256-header-rsa-kid": f"{b64({'alg': 'HS256', 'kid': 'r1'})}.{b64({'iss': 'x'})}.AAAA",
}


@pytest.mark.parametrize("name", sorted(FORGED))
def test_a_header_naming_another_algorithm_than_the_keys_is_a_401_not_a_500(name: str) -> None:
    """Before: `ES256` with the RSA key's kid made PyJWT raise TypeError (500, counted as 5xx:
    an anonymous caller could fire CatalogAssetErrorRatio)."""
    assert status_of(FORGED[name], BothClients()) == 401


def test_es256_is_refused_as_the_write_path_refuses_it() -> None:
    """stac-auth-proxy 1.3.1 verifies RS256 only; before, the asset endpoint took ES256."""
    assert status_of(signed(), BothClients()) == 404  # passed the check
    assert status_of(signed(EC_KEY, "ES256", "e1"), BothClients()) == 401


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", ["string", True, 1e400])
def test_dates_that_are_not_numbers_are_refused_by_both(claim: str, value: Any) -> None:
    """Before: an `exp` given as a numeric string was refused by the token guard and taken by
    the asset endpoint (PyJWT int()s it)."""
    now = int(time.time())
    date = {"exp": now + 300, "nbf": now - 10, "iat": now - 10}[claim]
    found = {"string": str(date)}.get(value, value) if isinstance(value, str) else value
    token = signed(**{claim: found})
    assert status_of(token, BothClients()) == 401
    assert token_guard.token_problem(f"Bearer {token}", ISSUER, time.time()) is not None


@pytest.mark.parametrize(
    "changes",
    [{"iat": 2}, {"iat": 25}, {"nbf": 20}, {"exp": -20}, {"exp": 0.5}],
    ids=["iat+2s", "iat+25s", "nbf+20s", "exp-20s", "exp-float"],
)
def test_a_small_clock_skew_is_allowed(changes: dict[str, float]) -> None:
    """Before: a token from an issuer whose clock is 2 s ahead (iat in the future) was refused."""
    from fedeploy_ingestion.asset_endpoint import CLOCK_LEEWAY_SECONDS

    assert CLOCK_LEEWAY_SECONDS == 30
    now = time.time()
    token = signed(**{k: now + v for k, v in changes.items()})
    assert status_of(token, BothClients()) == 404
    assert token_guard.token_problem(f"Bearer {token}", ISSUER, now) is None


@pytest.mark.parametrize("changes", [{"iat": 40}, {"nbf": 40}, {"exp": -40}])
def test_more_skew_than_the_leeway_is_refused(changes: dict[str, float]) -> None:
    now = time.time()
    assert status_of(signed(**{k: now + v for k, v in changes.items()}), BothClients()) == 401


def test_the_guard_allows_the_same_leeway_on_exp() -> None:
    now = time.time()
    late = f"Bearer {signed(exp=now - 20)}"
    assert token_guard.token_problem(late, ISSUER, now) is None
    assert token_guard.token_problem(late, ISSUER, now + 20) == "the token has expired"


HOSTILE_TOKENS = {
    "huge-kid": f"{b64({'alg': 'RS256', 'kid': 'k' * 100_000})}.{b64(claims())}.AAAA",
    "list-kid": f"{b64({'alg': 'RS256', 'kid': ['r1']})}.{b64(claims())}.AAAA",
    "dict-kid": f"{b64({'alg': 'RS256', 'kid': {'a': 1}})}.{b64(claims())}.AAAA",
    "no-kid": f"{b64({'alg': 'RS256'})}.{b64(claims())}.AAAA",
    "list-alg": f"{b64({'alg': ['RS256'], 'kid': 'r1'})}.{b64(claims())}.AAAA",
    "header-list": f"{b64([1])}.{b64(claims())}.AAAA",
    "header-not-json": f"{b64(b'{')}.{b64(claims())}.AAAA",
    "header-not-base64": f"!!!.{b64(claims())}.AAAA",
    "payload-list": f"{b64({'alg': 'RS256', 'kid': 'r1'})}.{b64([1])}.AAAA",
    "two-parts": f"{b64({'alg': 'RS256', 'kid': 'r1'})}.{b64(claims())}",
    "four-parts": f"{b64({'alg': 'RS256', 'kid': 'r1'})}.{b64(claims())}.AAAA.AAAA",
    "non-ascii": "é.é.é",
    "unknown-kid": signed(kid="nope"),
    "other-key-same-kid": signed(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    "alg-none": f"{b64({'alg': 'none', 'kid': 'r1'})}.{b64(claims())}.",
}


def test_hostile_tokens_against_the_real_key_lookup_are_401s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer = Issuer(monkeypatch)
    checker = TokenChecker(settings())
    assert checker.check(f"Bearer {signed()}")["iss"] == ISSUER
    for name, token in HOSTILE_TOKENS.items():
        with pytest.raises(Refused) as refused:
            checker.check(f"Bearer {token}")
        assert refused.value.status == 401, name
    # one discovery, one JWKS: an unknown kid waits for the cooldown before a second fetch
    assert issuer.fetched == [DISCOVERY, JWKS_URI]


BAD_MEMBERS = [
    {"kty": "XYZ", "kid": "x1"},
    {"kty": "oct", "kid": "h1", "k": "c2VjcmV0"},
    {"kty": "RSA", "kid": "m1", "n": "!!!", "e": "AQAB"},
    {"kty": "RSA", "kid": "m2", "n": 5, "e": "AQAB"},
    {"kty": "RSA", "kid": "m3"},
    {"kty": "RSA", "kid": "m4", "n": RSA_JWK["n"], "e": RSA_JWK["e"], "alg": ["RS256"]},
    {"kty": "RSA", "kid": "m5", "n": RSA_JWK["n"], "e": RSA_JWK["e"], "use": "enc"},
    {"kty": "RSA", "kid": 7, "n": RSA_JWK["n"], "e": RSA_JWK["e"]},
    {"kty": ["RSA"], "kid": "m6"},
    {"kty": "RSA", "kid": "m7", "n": RSA_JWK["n"], "e": RSA_JWK["e"], "alg": "RS512"},
    "not-a-member",
    None,
    [RSA_JWK],
    EC_JWK,
]


def test_a_jwks_with_hostile_members_keeps_its_rs256_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer = Issuer(monkeypatch)
    issuer.documents[JWKS_URI] = {"keys": [*BAD_MEMBERS, RSA_JWK]}
    checker = TokenChecker(settings())
    assert checker.check(f"Bearer {signed()}")["iss"] == ISSUER
    for member in BAD_MEMBERS:
        kid = member.get("kid") if isinstance(member, dict) else None
        if not isinstance(kid, str):
            continue
        forged = f"{b64({'alg': 'RS256', 'kid': kid})}.{b64(claims())}.AAAA"
        with pytest.raises(Refused) as refused:
            checker.check(f"Bearer {forged}")
        assert refused.value.status == 401, member


@pytest.mark.parametrize(
    "jwks",
    [{"keys": BAD_MEMBERS}, {"keys": "r1"}, {"keys": {}}, {}, [RSA_JWK], "x", b"not json", b""],
)
def test_a_jwks_without_an_rs256_key_is_the_issuers_failure_a_503(
    monkeypatch: pytest.MonkeyPatch, jwks: Any
) -> None:
    issuer = Issuer(monkeypatch)
    issuer.documents[JWKS_URI] = jwks
    with pytest.raises(Refused) as refused:
        TokenChecker(settings()).check(f"Bearer {signed()}")
    assert refused.value.status == 503


@pytest.mark.parametrize(
    "jwks_uri",
    [
        "http://id.example.eu/realms/eofed/protocol/openid-connect/certs",
        "file:///etc/passwd",
        "https:///certs",
        None,
        5,
    ],
)
def test_a_jwks_uri_that_is_not_https_is_not_fetched(
    monkeypatch: pytest.MonkeyPatch, jwks_uri: Any
) -> None:
    """stac-auth-proxy forces https (the discovery URL's scheme); before, the asset endpoint
    fetched an http:// jwks_uri as given."""
    issuer = Issuer(monkeypatch)
    issuer.documents[DISCOVERY]["jwks_uri"] = jwks_uri
    with pytest.raises(Refused) as refused:
        TokenChecker(settings()).check(f"Bearer {signed()}")
    assert refused.value.status == 503
    assert issuer.fetched == [DISCOVERY]


def test_a_jwks_uri_on_another_host_is_followed_and_warned_of(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """OpenID Connect Discovery: the keys are where the document says (Google's and Azure AD
    v1's are on another host than their issuer); stac-auth-proxy 1.3.1 fetches the same path
    from the issuer's host instead, which the operator is warned of."""
    other = "https://login.example.com/common/discovery/keys"
    issuer = Issuer(monkeypatch)
    issuer.documents[DISCOVERY]["jwks_uri"] = other
    issuer.documents[other] = issuer.documents.pop(JWKS_URI)
    with caplog.at_level(logging.WARNING, logger="fedeploy_ingestion.asset_endpoint"):
        assert TokenChecker(settings()).check(f"Bearer {signed()}")["iss"] == ISSUER
    assert issuer.fetched == [DISCOVERY, other]
    assert any("stac-auth-proxy" in r.getMessage() for r in caplog.records)


def test_a_discovery_document_naming_another_issuer_is_not_fetched_per_request(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: each bearer request fetched the document again and logged an error (5 requests,
    5 fetches): any anonymous caller could make the endpoint fetch per request."""
    issuer = Issuer(monkeypatch)
    issuer.documents[DISCOVERY]["issuer"] = ISSUER + "/"
    checker = TokenChecker(settings())
    with caplog.at_level(logging.ERROR, logger="fedeploy_ingestion.asset_endpoint"):
        for _ in range(5):
            with pytest.raises(Refused) as refused:
                checker.check(f"Bearer {signed()}")
            assert refused.value.status == 503
    assert issuer.fetched == [DISCOVERY]
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_the_issuers_failures_are_retried_after_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    from fedeploy_ingestion.asset_endpoint import (
        ISSUER_RETRY_SECONDS,
        JWKS_LIFESPAN_SECONDS,
        IssuerKeys,
    )

    issuer = Issuer(monkeypatch)
    now = [1000.0]
    keys = IssuerKeys(ISSUER, DISCOVERY, clock=lambda: now[0])
    checker = TokenChecker(settings(), jwks_client=keys)
    issuer.documents[DISCOVERY]["issuer"] = "https://elsewhere.example"
    for _ in range(3):
        with pytest.raises(Refused):
            checker.check(f"Bearer {signed()}")
    assert issuer.fetched == [DISCOVERY]
    # the provider is fixed: the next request after the retry time is taken
    issuer.documents[DISCOVERY]["issuer"] = ISSUER
    now[0] += ISSUER_RETRY_SECONDS
    assert checker.check(f"Bearer {signed()}")["iss"] == ISSUER
    assert issuer.fetched == [DISCOVERY, DISCOVERY, JWKS_URI]
    # the JWKS goes away: within its lifespan the keys held serve; after it, 503, remembered
    del issuer.documents[JWKS_URI]
    now[0] += 60
    checker.check(f"Bearer {signed()}")
    for _ in range(3):
        forged = f"{b64({'alg': 'RS256', 'kid': 'rotated'})}.{b64(claims())}.AAAA"
        with pytest.raises(Refused) as refused:
            checker.check(f"Bearer {forged}")
        assert refused.value.status == 401
    now[0] += JWKS_LIFESPAN_SECONDS
    for _ in range(3):
        with pytest.raises(Refused) as refused:
            checker.check(f"Bearer {signed()}")
        assert refused.value.status == 503
    assert issuer.fetched.count(JWKS_URI) == 3  # first, the one unknown-kid refresh, lifespan


def test_a_key_rotated_in_is_found_after_the_cooldown(monkeypatch: pytest.MonkeyPatch) -> None:
    from fedeploy_ingestion.asset_endpoint import UNKNOWN_KID_COOLDOWN_SECONDS, IssuerKeys

    issuer = Issuer(monkeypatch)
    now = [1000.0]
    checker = TokenChecker(settings(), jwks_client=IssuerKeys(ISSUER, DISCOVERY, lambda: now[0]))
    checker.check(f"Bearer {signed()}")
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new_jwk = {**jwt.algorithms.RSAAlgorithm.to_jwk(new_key.public_key(), as_dict=True)}
    issuer.documents[JWKS_URI] = {"keys": [RSA_JWK, {**new_jwk, "kid": "r2"}]}
    with pytest.raises(Refused):
        checker.check(f"Bearer {signed(new_key, kid='r2')}")  # within the cooldown
    now[0] += UNKNOWN_KID_COOLDOWN_SECONDS
    assert checker.check(f"Bearer {signed(new_key, kid='r2')}")["iss"] == ISSUER
    # a key removed from the JWKS is no longer taken once the set is fetched again
    issuer.documents[JWKS_URI] = {"keys": [{**new_jwk, "kid": "r2"}]}
    now[0] += 1000
    with pytest.raises(Refused) as refused:
        checker.check(f"Bearer {signed()}")
    assert refused.value.status == 401
