"""Signed access tokens (JWT, HS256): ``sub`` the user name, ``role``, ``iat`` and ``exp``."""

from __future__ import annotations

import jwt

ALGORITHM = "HS256"


class TokenError(ValueError):
    """The token is not one this service signed, or it expired (the message says which, never the token)."""


def issue_token(username: str, role: str, key: bytes, lifetime_seconds: int, now: float) -> str:
    issued = int(now)
    claims = {"sub": username, "role": role, "iat": issued, "exp": issued + int(lifetime_seconds)}
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify_token(token: str, key: bytes, now: float) -> dict:
    """The claims of a valid token; TokenError otherwise. Expiry is checked against ``now`` (no leeway)."""
    try:
        # Times are checked here against ``now``, not by PyJWT against the wall clock.
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], options={
            "require": ["exp", "iat", "sub"], "verify_exp": False, "verify_iat": False, "verify_nbf": False})
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"invalid token ({type(exc).__name__})") from None
    if not isinstance(claims.get("exp"), int) or now >= claims["exp"]:
        raise TokenError("token expired")
    if not isinstance(claims.get("iat"), int) or claims["iat"] > now + 60:
        raise TokenError("token issued in the future")
    return claims
