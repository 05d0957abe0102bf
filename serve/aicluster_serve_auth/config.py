"""The users and token settings, from the environment the ``auth-config`` Secret gives the pods.

Layout (the seed's, which the role writes)::

    JWT_KEY                      signing key (HS256), at least 32 bytes
    ACCESS_TOKEN_EXPIRE_MINUTES  token lifetime, a positive integer
    USER_LIST                    comma-separated user ids, e.g. "ALICE,BOB"
    <ID>_USERNAME                the login name
    <ID>_HASHED_PASSWORD         the hash (aicluster_serve_auth.passwords format)
    <ID>_ROLE                    the role, e.g. admin, user
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from aicluster_serve_auth import passwords

MIN_KEY_BYTES = 32


class ConfigError(ValueError):
    """The environment does not describe a usable configuration (the message names the variable)."""


@dataclass(frozen=True)
class User:
    username: str
    role: str
    password_hash: str = field(repr=False)


@dataclass(frozen=True)
class AuthConfig:
    key: bytes = field(repr=False)
    lifetime_seconds: int
    users: Mapping[str, User]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuthConfig:
        env = os.environ if environ is None else environ
        key = env.get("JWT_KEY", "")
        if len(key.encode()) < MIN_KEY_BYTES:
            raise ConfigError(f"JWT_KEY must be at least {MIN_KEY_BYTES} bytes")
        minutes = env.get("ACCESS_TOKEN_EXPIRE_MINUTES", "")
        if not minutes.strip().isdigit() or int(minutes) < 1:
            raise ConfigError(f"ACCESS_TOKEN_EXPIRE_MINUTES must be a positive integer, got {minutes!r}")
        users = {}
        for ident in (i.strip() for i in env.get("USER_LIST", "").split(",")):
            if not ident:
                continue
            name = env.get(f"{ident}_USERNAME", "")
            role = env.get(f"{ident}_ROLE", "")
            encoded = env.get(f"{ident}_HASHED_PASSWORD", "")
            if not name or not role:
                raise ConfigError(f"user {ident}: {ident}_USERNAME and {ident}_ROLE are required")
            try:
                passwords.parse(encoded)
            except ValueError as exc:
                raise ConfigError(f"user {ident}: {ident}_HASHED_PASSWORD: {exc}") from None
            if name in users:
                raise ConfigError(f"user name {name!r} is given twice")
            users[name] = User(name, role, encoded)
        return cls(key=key.encode(), lifetime_seconds=int(minutes) * 60, users=users)
