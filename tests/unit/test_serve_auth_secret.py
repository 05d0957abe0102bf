"""The serve_auth_secret module against a fake API server: the Secret the Serve package reads, the signing key kept
across runs (rotated only when asked), hashes kept while they match, users removed, nothing secret in the output,
check mode and diff, and bad input refused before any request."""

from __future__ import annotations

import base64
import json

import pytest
from aicluster_serve_auth import AuthConfig, ServeAuth
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.modules import serve_auth_secret as module_under_test
from fake_kube import FakeKube

NAMESPACE = "llm"
SECRET = (NAMESPACE, "auth-config")
ALICE = {"name": "alice", "password": "wonderland-7", "role": "admin"}
BOB = {"name": "bob", "password": "builder-1234", "role": "user"}


@pytest.fixture
def kube():
    with FakeKube(namespaces={NAMESPACE}) as server:
        yield server


def run(kube, tmp_path, capsys, check=False, diff=False, **more):
    args = {"kubeconfig": kube.kubeconfig(tmp_path / "kubeconfig.json"), "namespace": NAMESPACE,
            "users": [ALICE, BOB], **more}
    if check:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module_under_test.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    result["_rc"], result["_out"] = exit_info.value.code, out
    return result


def stored(kube) -> dict:
    return {k: base64.b64decode(v).decode() for k, v in kube.secrets[SECRET]["data"].items()}


def writes(kube):
    return [r for r in kube.requests if r[0] in ("POST", "PATCH", "PUT", "DELETE")]


def assert_nothing_secret_in(result, kube):
    out = result["_out"]
    for value in (ALICE["password"], BOB["password"]):
        assert value not in out
    if SECRET in kube.secrets:
        for key, value in stored(kube).items():
            if key.endswith("_HASHED_PASSWORD") or key == "JWT_KEY":
                assert value not in out and base64.b64encode(value.encode()).decode() not in out


def test_creates_the_secret_the_serve_package_reads(kube, tmp_path, capsys):
    result = run(kube, tmp_path, capsys)
    assert result["_rc"] == 0, result["msg"]
    assert result["action"] == "created" and result["key"] == "created"
    data = stored(kube)
    assert data["USER_LIST"] == "ALICE,BOB" and data["ALICE_ROLE"] == "admin" and data["BOB_USERNAME"] == "bob"
    assert data["ALICE_HASHED_PASSWORD"].startswith("pbkdf2_sha256$600000$")
    auth = ServeAuth(AuthConfig.from_env(data))
    assert auth.authenticate("alice", ALICE["password"]).role == "admin"
    assert auth.authenticate("alice", BOB["password"]) is None
    assert_nothing_secret_in(result, kube)


def test_a_rerun_changes_nothing_and_keeps_the_key(kube, tmp_path, capsys):
    run(kube, tmp_path, capsys)
    before = stored(kube)
    writes_before = len(writes(kube))
    again = run(kube, tmp_path, capsys)
    assert again["changed"] is False and again["action"] == "unchanged" and again["key"] == "kept"
    assert [u["password"] for u in again["users"]] == ["kept", "kept"]
    assert stored(kube) == before and len(writes(kube)) == writes_before


def test_a_changed_password_is_hashed_again_and_a_removed_user_goes(kube, tmp_path, capsys):
    run(kube, tmp_path, capsys)
    key = stored(kube)["JWT_KEY"]
    result = run(kube, tmp_path, capsys, users=[dict(ALICE, password="new-password-1")])
    assert result["changed"] is True and result["removed_users"] == ["bob"]
    data = stored(kube)
    assert data["JWT_KEY"] == key and data["USER_LIST"] == "ALICE"
    assert not [k for k in data if k.startswith("BOB_")]
    auth = ServeAuth(AuthConfig.from_env(data))
    assert auth.authenticate("alice", "new-password-1") and not auth.authenticate("bob", BOB["password"])
    assert_nothing_secret_in(result, kube)


def test_rotate_key_makes_a_new_key(kube, tmp_path, capsys):
    run(kube, tmp_path, capsys)
    key = stored(kube)["JWT_KEY"]
    result = run(kube, tmp_path, capsys, rotate_key=True)
    assert result["key"] == "rotated" and stored(kube)["JWT_KEY"] != key and len(stored(kube)["JWT_KEY"]) >= 32


def test_a_weak_hash_left_by_hand_is_replaced(kube, tmp_path, capsys):
    run(kube, tmp_path, capsys)
    kube.secrets[SECRET]["data"]["BOB_HASHED_PASSWORD"] = base64.b64encode(b"fakehashedhash").decode()
    result = run(kube, tmp_path, capsys)
    assert result["changed"] is True and [u["password"] for u in result["users"]] == ["kept", "hashed"]
    assert stored(kube)["BOB_HASHED_PASSWORD"].startswith("pbkdf2_sha256$")


def test_check_mode_and_diff_write_nothing_and_hide_values(kube, tmp_path, capsys):
    result = run(kube, tmp_path, capsys, check=True, diff=True)
    assert result["changed"] is True and writes(kube) == []
    after = result["diff"]["after"]["data"]
    assert set(after) >= {"JWT_KEY", "USER_LIST", "ALICE_HASHED_PASSWORD"}
    assert all(v.startswith("<hidden>") for v in after.values())


@pytest.mark.parametrize(("users", "more", "problem"), [
    ([dict(ALICE, password="short")], {}, "user alice: password must be a string of at least 8 characters"),
    ([dict(ALICE, name="Jo Ann")], {}, "users[0]: name must be letters, digits"),
    ([ALICE, dict(BOB, name="ALICE")], {}, "user ALICE: its variables (ALICE_*) would be those of user alice"),
    ([dict(ALICE, group="ops")], {}, "Unsupported parameters"),
    ([ALICE], {"token_lifetime_minutes": 0}, "token_lifetime_minutes must be at least 1"),
    ([ALICE], {"extra_data": {"JWT_KEY": "a-key-from-elsewhere"}},
     "extra_data: JWT_KEY is one of the keys the module writes"),
])
def test_bad_input_is_refused_before_any_request(kube, tmp_path, capsys, users, more, problem):
    result = run(kube, tmp_path, capsys, users=users, **more)
    assert result["_rc"] == 1 and problem in result["msg"], result["msg"]
    assert kube.requests == []
    assert "short" not in result["_out"] and ALICE["password"] not in result["_out"]


def test_a_missing_namespace_is_named(tmp_path, capsys):
    with FakeKube(namespaces={"other"}) as kube:
        result = run(kube, tmp_path, capsys)
    assert result["_rc"] == 1 and "namespace llm does not exist" in result["msg"]
