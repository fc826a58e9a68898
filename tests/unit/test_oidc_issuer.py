"""The OIDC issuer of a published catalog, kept byte for byte (review sweep33 F2, F9).

OpenID Connect compares the issuer exactly (Core 1.0 section 3.1.3.7: `iss` MUST exactly match;
Discovery 1.0 section 4.3: the discovery document's `issuer` MUST be the URL it was fetched
under). Auth0's and Azure AD v1's issuers end in `/`, Keycloak's do not. The stack file's issuer
reaches the chart, the token guard and the asset endpoint unchanged, and both compare it exactly;
its discovery document is under it without one trailing slash (Discovery 1.0 section 4.1).
"""

from __future__ import annotations

import copy
import importlib.util
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fedeploy_ingestion.asset_endpoint import (
    AssetSettings,
    IssuerUnavailable,
    Refused,
    TokenChecker,
)

from fedeploy.errors import StackConfigError
from fedeploy.offline.engine import plan_stack
from fedeploy.plan.run import check_planned
from tests.builders import example_site
from tests.conftest import ROOT, STACKS

_spec = importlib.util.spec_from_file_location(
    "token_guard_oidc", ROOT / "charts/catalog/files/token_guard.py"
)
assert _spec is not None and _spec.loader is not None
token_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(token_guard)

AUTH0 = "https://eofed.eu.auth0.com/"
AZURE_V1 = "https://sts.windows.net/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b/"
KEYCLOAK = "https://login.eofed.example.eu/realms/eofed"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
AUDIENCE = "eofed-catalog"
ISSUER_KEY = "site.services.catalog.exposure.oidc.issuer"
AUDIENCE_KEY = "site.services.catalog.exposure.oidc.audience"


def _site(**oidc: Any) -> dict[str, Any]:
    site = copy.deepcopy(example_site("cf-waw"))
    site["services"]["catalog"]["exposure"]["oidc"].update(oidc)
    return site


def _env(manifests: list[dict[str, Any]], suffix: str) -> dict[str, str]:
    (deployment,) = [
        m for m in manifests if m["kind"] == "Deployment" and m["metadata"]["name"].endswith(suffix)
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


@pytest.mark.parametrize(
    "issuer",
    [
        AUTH0,
        AZURE_V1,
        KEYCLOAK,
        "https://Login.Example.EU:443/realms/eofed/",
        "https://id.example.eu",
    ],
)
def test_the_stack_files_issuer_reaches_every_consumer_byte_for_byte(issuer: str) -> None:
    """Before: `https://eofed.eu.auth0.com/` became `https://eofed.eu.auth0.com` (the host was
    also lower-cased and `:443` dropped), so the asset endpoint refused every Auth0 token."""
    site = _site(issuer=issuer)
    plan = plan_stack(STACKS / "Pulumi.cf-waw.yaml", config_override={"fedeploy:site": site})
    rendered, findings = check_planned(plan, None)
    assert [f for f in findings if f.enforcement == "mandatory"] == []
    (catalog,) = [r for r in rendered if r.name == "catalog"]
    assert catalog.values["authProxy"]["oidc"]["issuer"] == issuer
    proxy = _env(catalog.manifests, "-auth-proxy")
    assert proxy["EXPECTED_ISSUER"] == issuer
    base = issuer[:-1] if issuer.endswith("/") else issuer
    assert proxy["OIDC_DISCOVERY_URL"] == f"{base}/.well-known/openid-configuration"
    assert "//.well-known" not in proxy["OIDC_DISCOVERY_URL"]
    assert _env(catalog.manifests, "-assets")["ASSETS_ISSUER"] == issuer


@pytest.mark.parametrize(
    ("issuer", "words"),
    [
        ("https://login.eofed.example.eu/eo fed", ["holds whitespace"]),
        ("https://login.eofed.example.eu/eofed\n", ["holds whitespace"]),
        ("http://login.eofed.example.eu/realms/eofed", ["is not an https URL"]),
        ("HTTPS://login.eofed.example.eu/", ["in capitals"]),
        ("https://login.eofed.example.eu/realms/eofed?x=1", ["query or fragment"]),
        ("https://login.eofed.example.eu/realms/eofed#top", ["query or fragment"]),
        ("https://login.eofed.example.eu:0/realms/eofed", ["port '0'"]),
        ("https://login.eofed.example.eu:65536/", ["port '65536'"]),
        ("https://[2001:db8::1]/", ["IPv6"]),
        ("https://lögin.example.eu/", ["non-ASCII host", "xn--"]),
        ("https://login_eofed.example.eu/", ["neither a DNS name"]),
        ("https://10.0.0.256/", ["neither a DNS name"]),
        ("https://login.eofed.example.eu/" + "r" * 2018, ["2049 characters long", "2048"]),
    ],
)
def test_an_issuer_the_consumers_cannot_take_verbatim_is_refused_at_its_key(
    issuer: str, words: list[str]
) -> None:
    """Before: the space was percent-encoded, a 2049-2083 character issuer failed only the chart's
    schema (maxLength 2048), the rest was rewritten or planned through to the charts."""
    with pytest.raises(StackConfigError) as raised:
        plan_stack(
            STACKS / "Pulumi.cf-waw.yaml", config_override={"fedeploy:site": _site(issuer=issuer)}
        )
    (issue,) = raised.value.issues
    assert issue.path == ISSUER_KEY
    for word in ["an https URL", *words]:
        assert word in str(issue), str(issue)


def test_an_issuer_at_the_longest_the_chart_takes_is_accepted() -> None:
    issuer = "https://login.eofed.example.eu/" + "r" * 2017
    assert len(issuer) == 2048
    plan_stack(
        STACKS / "Pulumi.cf-waw.yaml", config_override={"fedeploy:site": _site(issuer=issuer)}
    )


def test_an_issuer_with_a_password_is_refused_without_echoing_it() -> None:
    with pytest.raises(StackConfigError) as raised:
        plan_stack(
            STACKS / "Pulumi.cf-waw.yaml",
            config_override={"fedeploy:site": _site(issuer="https://u:hunter2@id.example.eu/")},
        )
    (issue,) = raised.value.issues
    assert issue.path == ISSUER_KEY
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize("audience", ["eofed,catalog", "eofed, catalog", "eofed catalog", "[x"])
def test_an_audience_the_proxy_would_split_is_refused_at_its_key(audience: str) -> None:
    """stac-auth-proxy reads ALLOWED_JWT_AUDIENCES as a comma list (a leading [ as JSON), the
    asset endpoint as one value. Before: a comma passed the stack file and failed the chart's
    schema, quoting the chart's key; a leading [ planned clean and the proxy would not start."""
    with pytest.raises(StackConfigError) as raised:
        plan_stack(
            STACKS / "Pulumi.cf-waw.yaml",
            config_override={"fedeploy:site": _site(audience=audience)},
        )
    (issue,) = raised.value.issues
    assert issue.path == AUDIENCE_KEY
    assert "one audience" in str(issue) and "commas" in str(issue)


class _Jwks:
    """The issuer's JWKS, as the asset endpoint's IssuerKeys answers (one key, kid k1)."""

    def get_signing_key(self, kid: str) -> Any:
        assert kid == "k1"
        return jwt.PyJWK(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True))


def _token(iss: str) -> str:
    claims = {"iss": iss, "aud": AUDIENCE, "exp": int(time.time()) + 300, "scope": "stac:read"}
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "k1"})


def _asset_endpoint_takes(configured: str, token: str) -> bool:
    settings = AssetSettings.model_construct(
        issuer=configured, audience=AUDIENCE, read_scope="stac:read"
    )
    try:
        TokenChecker(settings, jwks_client=_Jwks()).check(f"Bearer {token}")
    except Refused as refused:
        assert refused.status == 401, refused.reason
        return False
    return True


def _token_guard_takes(configured: str, token: str) -> bool:
    return token_guard.token_problem(f"Bearer {token}", configured, time.time()) is None


@pytest.mark.parametrize("configured", [AUTH0, AZURE_V1, KEYCLOAK, KEYCLOAK + "/"])
def test_the_asset_endpoint_and_the_token_guard_take_exactly_the_same_tokens(
    configured: str,
) -> None:
    """A real RS256 token whose `iss` is the configured issuer is taken by both; one that differs
    by the trailing slash is refused by both. Before: an Auth0 token (iss ending in /) wrote
    through the token guard (slashes stripped on both sides) but the asset endpoint compared it
    with the stripped issuer and answered 401 (InvalidIssuerError)."""
    same = _token(configured)
    assert _asset_endpoint_takes(configured, same)
    assert _token_guard_takes(configured, same)
    other = configured[:-1] if configured.endswith("/") else configured + "/"
    for token in (_token(other), _token(configured.upper())):
        assert not _asset_endpoint_takes(configured, token)
        assert not _token_guard_takes(configured, token)


class _Answer:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def raise_for_status(self) -> None:
        pass

    def json(self) -> dict[str, Any]:
        return self.document


@pytest.mark.parametrize(
    ("issuer", "discovery"),
    [
        (AUTH0, "https://eofed.eu.auth0.com/.well-known/openid-configuration"),
        (AZURE_V1, AZURE_V1 + ".well-known/openid-configuration"),
        (KEYCLOAK, KEYCLOAK + "/.well-known/openid-configuration"),
    ],
)
def test_the_asset_endpoint_finds_the_discovery_document_for_either_form(
    issuer: str, discovery: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Discovery 1.0 section 4.1: one trailing slash removed before the well-known path; 4.3: the
    document must name the issuer it was fetched for, else no key is trusted."""
    import httpx

    fetched: list[str] = []
    named = {"issuer": issuer, "jwks_uri": f"{issuer.rstrip('/')}/keys"}

    def get(url: str, timeout: float) -> _Answer:
        fetched.append(url)
        return _Answer(named)

    monkeypatch.setattr(httpx, "get", get)
    settings = AssetSettings.model_construct(
        issuer=issuer, audience=AUDIENCE, read_scope="stac:read"
    )
    checker = TokenChecker(settings)
    assert checker.jwks.jwks_uri() == named["jwks_uri"]
    assert fetched == [discovery]
    # A document naming another issuer (here: without or with the slash) is not trusted: no key
    # of it is fetched, and every token is refused (503: the issuer's keys cannot be had).
    named["issuer"] = issuer[:-1] if issuer.endswith("/") else issuer + "/"
    with pytest.raises(IssuerUnavailable, match="names the issuer"):
        TokenChecker(settings).jwks.jwks_uri()
    with pytest.raises(Refused) as refused:
        TokenChecker(settings).check(f"Bearer {_token(issuer)}")
    assert refused.value.status == 503
