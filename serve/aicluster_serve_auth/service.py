"""The FastAPI side: ``POST /token`` (OAuth2 password form) and the dependencies that protect routes."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm

from aicluster_serve_auth import passwords
from aicluster_serve_auth.config import AuthConfig, User
from aicluster_serve_auth.tokens import TokenError, issue_token, verify_token

# Checked when the user name is unknown, so that a wrong name takes as long as a wrong password.
_DUMMY_HASH = passwords.hash_password("not a password", salt=b"aicluster-dummy!")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


class ServeAuth:
    """Logins and token checks over one :class:`AuthConfig`; ``clock`` is injectable for tests."""

    def __init__(self, config: AuthConfig, clock: Callable[[], float] = time.time, token_path: str = "/token"):  # noqa: S107 - a path
        self.config = config
        self.clock = clock
        self._bearer = OAuth2PasswordBearer(tokenUrl=token_path.lstrip("/"), auto_error=False)
        self.router = APIRouter()
        self.router.add_api_route(token_path, self._login, methods=["POST"])
        self.current_user = self._make_current_user()

    @classmethod
    def from_env(cls, **kwargs) -> ServeAuth:
        return cls(AuthConfig.from_env(), **kwargs)

    def authenticate(self, username: str, password: str) -> User | None:
        user = self.config.users.get(username)
        ok = passwords.verify_password(password, user.password_hash if user else _DUMMY_HASH)
        return user if user and ok else None

    async def _login(self, form: OAuth2PasswordRequestForm = Depends()) -> dict:  # noqa: B008 - FastAPI idiom
        user = self.authenticate(form.username, form.password)
        if user is None:
            raise _unauthorized("Incorrect username or password")
        token = issue_token(user.username, user.role, self.config.key, self.config.lifetime_seconds, self.clock())
        return {"access_token": token, "token_type": "bearer"}

    def user_of(self, token: str | None) -> User:
        """The user a bearer token stands for, still in the configuration with the same role; 401 otherwise."""
        if not token:
            raise _unauthorized("Not authenticated")
        try:
            claims = verify_token(token, self.config.key, self.clock())
        except TokenError as exc:
            raise _unauthorized(str(exc)) from None
        user = self.config.users.get(claims["sub"])
        if user is None or user.role != claims.get("role"):
            raise _unauthorized("user no longer allowed")
        return user

    def _make_current_user(self):
        bearer = self._bearer

        async def current_user(token: str | None = Depends(bearer)) -> User:
            return self.user_of(token)

        return current_user

    def require_roles(self, *roles: str):
        """A dependency that admits only users with one of ``roles`` (403 for the others)."""
        allowed = set(roles)

        async def dependency(user: User = Depends(self.current_user)) -> User:  # noqa: B008 - FastAPI idiom
            if user.role not in allowed:
                raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"role {user.role} may not do this")
            return user

        return dependency
