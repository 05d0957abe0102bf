"""The Serve image's login package (serve/aicluster_serve_auth) over HTTP through FastAPI's test client, and the
password hash format it shares with the role (module_utils/serve_auth_passwords): a correct password gets a
token that opens the API route, a wrong one 401, an expired token 401, a user removed from the configuration
can neither log in nor use an earlier token, roles are enforced."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from aicluster_serve_auth import AuthConfig, ConfigError, ServeAuth, passwords
from ansible_collections.aicluster.platform.plugins.module_utils import serve_auth_passwords
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

KEY = "k" * 40
ALICE = passwords.hash_password("wonderland")
BOB = passwords.hash_password("builder")


def env(users=(("ALICE", "alice", ALICE, "admin"), ("BOB", "bob", BOB, "user")), minutes="60", key=KEY) -> dict:
    data = {"JWT_KEY": key, "ACCESS_TOKEN_EXPIRE_MINUTES": minutes, "USER_LIST": ",".join(u[0] for u in users)}
    for ident, name, encoded, role in users:
        data |= {f"{ident}_USERNAME": name, f"{ident}_HASHED_PASSWORD": encoded, f"{ident}_ROLE": role}
    return data


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def client(environ: dict, clock: Clock) -> TestClient:
    auth = ServeAuth(AuthConfig.from_env(environ), clock=clock)
    app = FastAPI()
    app.include_router(auth.router)

    @app.post("/v1/chat/completions")
    async def chat(body: dict, user=Depends(auth.current_user)):  # noqa: B008
        return {"model": "qwen", "user": user.username}

    @app.delete("/admin/cache")
    async def purge(user=Depends(auth.require_roles("admin"))):  # noqa: B008
        return {"purged": True}

    return TestClient(app)


def login(http: TestClient, username: str, password: str):
    return http.post("/token", data={"username": username, "password": password})


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def clock():
    return Clock()


def test_the_right_password_gets_a_token_that_opens_the_api(clock):
    http = client(env(), clock)
    answer = login(http, "alice", "wonderland")
    assert answer.status_code == 200 and answer.json()["token_type"] == "bearer"
    reply = http.post("/v1/chat/completions", json={"messages": []}, headers=bearer(answer.json()["access_token"]))
    assert reply.status_code == 200 and reply.json()["user"] == "alice"


def test_a_wrong_password_or_unknown_user_gets_401(clock):
    http = client(env(), clock)
    for name, password in (("alice", "wonderlan"), ("mallory", "wonderland"), ("alice", "")):
        answer = login(http, name, password)
        assert answer.status_code in (401, 422), (name, answer.status_code)
    assert login(http, "alice", "nope").status_code == 401
    assert login(http, "alice", "nope").headers["WWW-Authenticate"] == "Bearer"


def test_no_token_or_a_forged_token_gets_401(clock):
    http = client(env(), clock)
    assert http.post("/v1/chat/completions", json={}).status_code == 401
    token = login(http, "bob", "builder").json()["access_token"]
    head, payload, signature = token.split(".")
    claims = base64.urlsafe_b64decode(payload + "==").replace(b'"user"', b'"admin"')
    forged = ".".join([head, base64.urlsafe_b64encode(claims).decode().rstrip("="), signature])
    assert http.delete("/admin/cache", headers=bearer(forged)).status_code == 401
    other = client(env(key="o" * 40), clock)
    assert other.post("/v1/chat/completions", json={}, headers=bearer(token)).status_code == 401


def test_an_expired_token_gets_401(clock):
    http = client(env(minutes="1"), clock)
    token = login(http, "alice", "wonderland").json()["access_token"]
    clock.now += 59
    assert http.post("/v1/chat/completions", json={}, headers=bearer(token)).status_code == 200
    clock.now += 1
    answer = http.post("/v1/chat/completions", json={}, headers=bearer(token))
    assert answer.status_code == 401 and answer.json()["detail"] == "token expired"


def test_a_user_removed_from_the_configuration_can_no_longer_log_in_nor_use_a_token(clock):
    before = client(env(), clock)
    token = login(before, "bob", "builder").json()["access_token"]
    after = client(env(users=(("ALICE", "alice", ALICE, "admin"),)), clock)  # the Secret after a re-run
    assert login(after, "bob", "builder").status_code == 401
    assert after.post("/v1/chat/completions", json={}, headers=bearer(token)).status_code == 401


def test_roles_are_enforced(clock):
    http = client(env(), clock)
    bob = login(http, "bob", "builder").json()["access_token"]
    alice = login(http, "alice", "wonderland").json()["access_token"]
    assert http.delete("/admin/cache", headers=bearer(bob)).status_code == 403
    assert http.delete("/admin/cache", headers=bearer(alice)).status_code == 200
    demoted = client(env(users=(("ALICE", "alice", ALICE, "user"),)), clock)
    assert demoted.delete("/admin/cache", headers=bearer(alice)).status_code == 401


# ------------------------------------------------------------------ the hash format


def test_the_package_ships_the_collections_hash_module():
    assert passwords.hash_password.__code__.co_filename.endswith("serve_auth_passwords.py") or (
        passwords.__file__ and open(passwords.__file__).read() == open(serve_auth_passwords.__file__).read())


def test_hashes_are_pbkdf2_sha256_with_600000_iterations_and_a_random_salt():
    encoded = serve_auth_passwords.hash_password("s3cret")
    algorithm, iterations, salt, digest = encoded.split("$")
    assert (algorithm, iterations) == ("pbkdf2_sha256", "600000")
    raw_salt = base64.urlsafe_b64decode(salt + "==")
    assert len(raw_salt) == 16
    assert base64.urlsafe_b64decode(digest + "==") == hashlib.pbkdf2_hmac("sha256", b"s3cret", raw_salt, 600000, 32)
    assert serve_auth_passwords.hash_password("s3cret") != encoded
    assert serve_auth_passwords.verify_password("s3cret", encoded)
    assert not serve_auth_passwords.verify_password("s3cre", encoded)


def test_scrypt_hashes_are_accepted():
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(b"pw", salt=salt, n=2**14, r=8, p=1, dklen=32)
    encoded = "scrypt$n=16384,r=8,p=1$" + base64.urlsafe_b64encode(salt).decode().rstrip("=") + "$" + \
        base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert serve_auth_passwords.verify_password("pw", encoded)
    assert not serve_auth_passwords.verify_password("px", encoded)


@pytest.mark.parametrize(("encoded", "problem"), [
    ("fakehashedhash", "four '$'-separated parts"),
    ("sha256$1$c2FsdHNhbHQ$" + "A" * 43, "unknown password hash algorithm 'sha256'"),
    ("pbkdf2_sha256$1000$c2FsdHNhbHQ$" + "A" * 43, "at least 600000 iterations"),
    ("scrypt$n=1000,r=8,p=1$c2FsdHNhbHQ$" + "A" * 43, "power of two"),
])
def test_weak_or_unknown_hashes_are_refused(encoded, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        serve_auth_passwords.parse(encoded)
    assert not serve_auth_passwords.verify_password("x", encoded)
    with pytest.raises(ConfigError, match="ALICE_HASHED_PASSWORD"):
        AuthConfig.from_env(env(users=(("ALICE", "alice", encoded, "admin"),)))


def test_too_few_iterations_cannot_be_made():
    with pytest.raises(ValueError, match="at least 600000"):
        serve_auth_passwords.hash_password("pw", iterations=100000)


@pytest.mark.parametrize(("change", "problem"), [
    ({"JWT_KEY": "short"}, "JWT_KEY must be at least 32 bytes"),
    ({"ACCESS_TOKEN_EXPIRE_MINUTES": "0"}, "ACCESS_TOKEN_EXPIRE_MINUTES must be a positive integer"),
    ({"ALICE_ROLE": ""}, "ALICE_USERNAME and ALICE_ROLE are required"),
])
def test_bad_configuration_is_refused(change, problem):
    with pytest.raises(ConfigError, match=problem):
        AuthConfig.from_env(env() | change)
