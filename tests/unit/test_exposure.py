"""Exposure of a site's catalog: the stack file's rules, the token guard's checks, the report."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from fedeploy.config.services import CatalogService

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "token_guard", ROOT / "charts/catalog/files/token_guard.py"
)
assert _spec is not None and _spec.loader is not None
token_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(token_guard)

ISSUER = "https://id.example.eu/realms/eofed"
EXPOSURE = {
    "controller_namespace": "ingress-nginx",
    "tls": {"cert_manager_issuer": "letsencrypt"},
    "oidc": {"issuer": ISSUER, "audience": "eofed-catalog"},
}


@pytest.mark.parametrize(
    ("catalog", "words"),
    [
        ({"url": "https://c.example.eu"}, ["url https://c.example.eu/ is public", "exposure"]),
        ({"exposure": EXPOSURE}, ["`exposure` needs an https `url`", "None"]),
        (
            {"url": "http://c.example.eu", "exposure": EXPOSURE},
            ["https `url`", "http://c.example.eu"],
        ),
        (
            {"url": "https://c.example.eu", "exposure": {**EXPOSURE, "tls": {}}},
            ["exactly one of `cert_manager_issuer`", "`secret`"],
        ),
        (
            {
                "url": "https://c.example.eu",
                "exposure": {**EXPOSURE, "tls": {"cert_manager_issuer": "le", "secret": "s"}},
            },
            ["exactly one"],
        ),
        (
            {
                "url": "https://c.example.eu",
                "exposure": {
                    **EXPOSURE,
                    "oidc": {"issuer": "http://id.example.eu", "audience": "a"},
                },
            },
            ["an https URL", "this one is not an https URL"],
        ),
        (
            {
                "url": "https://c.example.eu",
                "exposure": {**EXPOSURE, "oidc": {**EXPOSURE["oidc"], "write_scope": "a b"}},
            },
            ["write_scope"],
        ),
    ],
)
def test_bad_exposure_is_refused_with_a_message_naming_the_fix(catalog, words):
    with pytest.raises(ValidationError) as raised:
        CatalogService.model_validate(catalog)
    for word in words:
        assert word in str(raised.value)


def test_exposure_defaults_are_the_documented_ones():
    spec = CatalogService.model_validate({"url": "https://c.example.eu", "exposure": EXPOSURE})
    assert spec.exposure is not None
    assert spec.exposure.oidc.write_scope == "stac:write"
    assert spec.exposure.oidc.read_scope == "stac:read"
    assert spec.exposure.asset_url_lifetime_seconds == 900
    assert spec.exposure.ingress_class == "nginx"


def _jwt(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (None, None),
        ("Basic dXNlcjpwYXNz", None),  # not a bearer token: the proxy decides
        (f"Bearer {_jwt({'iss': ISSUER, 'exp': NOW + 60})}", None),
        # Exactly the issuer (OIDC Core 3.1.3.7): a trailing slash makes another issuer.
        (f"Bearer {_jwt({'iss': ISSUER + '/', 'exp': NOW + 60})}", "not issued by"),
        (f"bearer {_jwt({'iss': ISSUER, 'exp': NOW + 60})}", None),
        (f"Bearer {_jwt({'iss': 'https://evil.example', 'exp': NOW + 60})}", "not issued by"),
        (f"Bearer {_jwt({'exp': NOW + 60})}", "not issued by"),
        (f"Bearer {_jwt({'iss': ISSUER})}", "no expiry"),
        (f"Bearer {_jwt({'iss': ISSUER, 'exp': 'tomorrow'})}", "no expiry"),
        (f"Bearer {_jwt({'iss': ISSUER, 'exp': True})}", "no expiry"),
        # expired beyond the clock-skew leeway (30 s, as the asset endpoint allows)
        (f"Bearer {_jwt({'iss': ISSUER, 'exp': NOW - 31})}", "expired"),
        (f"Bearer {_jwt({'iss': ISSUER, 'exp': NOW - 29})}", None),
        ("Bearer not-a-jwt", "not a JWT"),
        ("Bearer a.!!!.c", "not a JWT"),
        ("Bearer a.W10.c", "not a JWT"),  # a JSON list, not claims
    ],
)
def test_token_guard_refuses_tokens_without_our_issuer_or_an_expiry(header, problem):
    found = token_guard.token_problem(header, ISSUER, NOW)
    if problem is None:
        assert found is None
    else:
        assert problem in found


def test_token_guard_answers_401_and_never_calls_the_proxy_for_a_bad_token():
    calls: list[dict] = []

    async def proxy(scope, receive, send):
        calls.append(scope)

    guard = token_guard.TokenGuard(proxy, ISSUER)
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    bad = _jwt({"iss": ISSUER, "exp": time.time() - 60})
    scope = {"type": "http", "headers": [(b"authorization", f"Bearer {bad}".encode())]}
    asyncio.run(guard(scope, receive, send))
    assert calls == [] and sent[0]["status"] == 401
    assert json.loads(sent[1]["body"]) == {"detail": "the token has expired"}
    good = _jwt({"iss": ISSUER, "exp": time.time() + 60})
    asyncio.run(
        guard(
            {"type": "http", "headers": [(b"authorization", f"Bearer {good}".encode())]},
            receive,
            send,
        )
    )
    asyncio.run(guard({"type": "lifespan"}, receive, send))
    assert len(calls) == 2
    with pytest.raises(ValueError, match="issuer"):
        token_guard.TokenGuard(proxy, "")


def test_plan_report_shows_each_sites_public_url_write_access_and_issuer(example_report):
    from fedeploy.plan.formats import as_text

    text = as_text(example_report)
    # Each site's own write scope (stac:write:<site>): one writer's token writes one catalog.
    # And what publishes it: an Ingress of a class, or an HTTPRoute on a Gateway (ovh-gra).
    nginx = "Ingress class nginx (from namespace ingress-nginx)"
    gateway = (
        "HTTPRoute on Gateway gateway-system/public (listener https) "
        "(from namespace gateway-system)"
    )
    for host, site, through in (
        ("catalog.eofed.example.eu", "eu-hub", nginx),
        ("catalog.gra.eofed.example.eu", "ovh-gra", gateway),
        ("catalog.kajaani.eofed.example.eu", "hpc-kajaani", nginx),
    ):
        assert (
            f"exposure: public at https://{host} through {through}; reads anonymous; writes: "
            f"token with scope stac:write:{site} from issuer "
            "https://login.eofed.example.eu/realms/eofed"
        ) in text
    sites = example_report.to_dict()["sites"]
    assert all(s["services"]["catalog"]["exposure"]["public_url"] for s in sites.values())
