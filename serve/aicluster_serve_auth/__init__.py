"""Logins and bearer tokens for a Ray Serve (FastAPI) application: ``POST /token`` with a form login gives
a signed JWT, and every protected route checks it (signature, expiry, that the user still exists and
still has the role). Users come from the environment the ``auth-config`` Secret gives the Serve pods
(``envFrom``), in the layout the project's role writes; passwords are checked against hashes in the format
of :mod:`aicluster_serve_auth.passwords`.

    from fastapi import Depends, FastAPI
    from aicluster_serve_auth import ServeAuth

    auth = ServeAuth.from_env()
    app = FastAPI()
    app.include_router(auth.router)

    @app.post("/v1/chat/completions")
    async def chat(body: dict, user=Depends(auth.current_user)): ...
"""

from aicluster_serve_auth.config import AuthConfig, ConfigError, User
from aicluster_serve_auth.service import ServeAuth
from aicluster_serve_auth.tokens import TokenError, issue_token, verify_token

__all__ = ["AuthConfig", "ConfigError", "ServeAuth", "TokenError", "User", "issue_token", "verify_token"]
