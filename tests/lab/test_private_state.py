"""Local lab state (tokens, passwords, kubeconfigs, keys under lab/state) is private: directories
0700, secret files 0600, whatever the umask."""

from __future__ import annotations

import os
import shutil
import stat

import pytest
from labctl import clusters, k8sbin, paths
from labctl.fleet import runtime


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path / "lab" / "state")
    old = os.umask(0o022)
    yield tmp_path / "lab" / "state"
    os.umask(old)


def test_private_dir_makes_the_chain_up_to_the_state_dir_0700_and_nothing_above(state):
    state.parent.mkdir()
    state.mkdir(mode=0o755)
    state.chmod(0o755)  # left by an older lab
    target = paths.private_dir(state / "rancher" / "sub")
    assert target.is_dir()
    assert [_mode(d) for d in (target, target.parent, state)] == [0o700, 0o700, 0o700]
    assert _mode(state.parent) == 0o755


def test_private_dir_outside_the_state_dir_only_touches_itself(state, tmp_path):
    other = tmp_path / "elsewhere" / "logs"
    paths.private_dir(other)
    assert _mode(other) == 0o700 and _mode(other.parent) == 0o755


def test_write_private_is_0600_from_the_start(state):
    paths.private_dir(state)
    target = state / "secret"
    paths.write_private(target, "token\n")
    assert target.read_text() == "token\n" and _mode(target) == 0o600
    assert not list(state.glob(".*.tmp"))


def test_cluster_state_dirs_are_private(state, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "KUBECONFIG_DIR", state / "kubeconfig")
    monkeypatch.setattr(paths, "KWOK_WORKDIR", state / "kwok")
    monkeypatch.setattr(k8sbin, "ensure_built", lambda log: tmp_path)
    monkeypatch.setattr(clusters, "specs", lambda: [])
    clusters.up(log=lambda m: None)
    for d in (state, state / "kubeconfig", state / "kwok"):
        assert _mode(d) == 0o700, d


@pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="ssh-keygen is not installed")
def test_fleet_key_and_its_dir_are_private(state, monkeypatch):
    monkeypatch.setattr(runtime, "SSH_DIR", state / "ssh")
    monkeypatch.setattr(runtime, "KEY_PATH", state / "ssh" / "id_ed25519")
    key = runtime.ensure_ssh_key()
    assert _mode(key) == 0o600 and _mode(key.parent) == 0o700 and _mode(state) == 0o700
    assert _mode(key.parent / "authorized_keys") == 0o600


def test_fleet_state_dir_is_private(state, monkeypatch):
    monkeypatch.setattr(runtime, "FLEET_DIR", state / "fleet")
    monkeypatch.setattr(runtime, "STATE_FILE", state / "fleet" / "fleet.json")
    runtime._save_state("demo", [], "img")
    assert _mode(state / "fleet") == 0o700 and _mode(state) == 0o700
