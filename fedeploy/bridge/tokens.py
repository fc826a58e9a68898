"""The service user's token: an HS256 JWT as SLURM's auth/jwt accepts it (claims sun, iat, exp)."""

from __future__ import annotations

import jwt

HOUR = 3600


def token_window(now: float, lifetime_hours: int) -> tuple[int, int]:
    """(iat, exp) of the token to issue at `now`.

    The issue time is floored to a multiple of half the lifetime, so every deployment
    within the same half-lifetime mints the very same token (nothing changes), and the
    first deployment after it mints a new one with at least half its lifetime ahead.
    """
    if lifetime_hours < 2:
        raise ValueError(f"token lifetime must be at least 2 hours, got {lifetime_hours}")
    rotation = lifetime_hours * HOUR // 2
    issued = int(now) // rotation * rotation
    return issued, issued + lifetime_hours * HOUR


def mint_token(key: str | bytes, user: str, *, now: float, lifetime_hours: int) -> str:
    """A token for `user` signed with the bridge's key (the bytes of the key file)."""
    issued, expires = token_window(now, lifetime_hours)
    secret = key.encode() if isinstance(key, str) else key
    return jwt.encode({"sun": user, "iat": issued, "exp": expires}, secret, algorithm="HS256")
