"""The service user's token: what SLURM's auth/jwt checks, and when it rotates."""

from __future__ import annotations

import jwt
import pytest

from fedeploy.bridge.tokens import mint_token, token_window

KEY = "k" * 64


@pytest.mark.parametrize("lifetime", [2, 24, 168, 8760])
def test_a_token_always_has_at_least_half_its_lifetime_ahead(lifetime):
    for now in range(1_700_000_000, 1_700_000_000 + lifetime * 3600 * 2, 977):
        issued, expires = token_window(now, lifetime)
        assert issued <= now < expires
        assert expires - now > lifetime * 3600 // 2
        assert expires - issued == lifetime * 3600


def test_deployments_within_half_a_lifetime_mint_the_same_token():
    start = 1_700_000_000 - 1_700_000_000 % (84 * 3600)
    first = mint_token(KEY, "fedeploy", now=start + 10, lifetime_hours=168)
    assert mint_token(KEY, "fedeploy", now=start + 84 * 3600 - 1, lifetime_hours=168) == first
    assert mint_token(KEY, "fedeploy", now=start + 84 * 3600, lifetime_hours=168) != first


def test_the_token_carries_slurms_claims_and_verifies_with_the_key():
    token = mint_token(KEY, "fedeploy", now=1_700_000_000, lifetime_hours=24)
    claims = jwt.decode(token, KEY, algorithms=["HS256"], options={"verify_exp": False})
    assert set(claims) == {"sun", "iat", "exp"} and claims["sun"] == "fedeploy"
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "x" * 64, algorithms=["HS256"], options={"verify_exp": False})


def test_a_lifetime_under_two_hours_is_refused():
    with pytest.raises(ValueError, match="at least 2 hours"):
        token_window(0, 1)
