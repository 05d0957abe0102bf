"""Lab storage backend: Redis + mirror stand-in as detached processes, idempotent up, clean down, CLI."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from labctl import paths, storage
from labctl.storage import binary

pytestmark = pytest.mark.skipif(not shutil.which("redis-server") and not Path("/usr/bin/redis-server").exists(),
                                reason="redis-server is not installed (lab/apt-packages.txt)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab_state(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path / "state")
    yield tmp_path / "state"
    storage.down()


@pytest.fixture
def fake_juicefs(tmp_path):
    path = tmp_path / "cache" / "juicefs"
    path.parent.mkdir()
    path.write_bytes(b"\x7fELF not really juicefs\n")
    return path


def _up(fake_juicefs, redis_port, mirror_port):
    return storage.up(fleet_address="127.0.0.1", redis_port=redis_port, mirror_port=mirror_port,
                      juicefs=fake_juicefs)


def test_up_is_idempotent_and_down_leaves_nothing(lab_state, fake_juicefs):
    rport, mport = _free_port(), _free_port()
    info = _up(fake_juicefs, rport, mport)
    d = lab_state / "storage"
    password = (d / "redis-password").read_text().strip()
    assert len(password) >= 32
    assert info["meta_url"] == f"redis://127.0.0.1:{rport}/1" and info["bucket_url"] == f"redis://127.0.0.1:{rport}/2"
    assert info["storage"] == "redis" and info["password_path"] == str(d / "redis-password")
    assert password not in json.dumps(info)
    for name in ("redis-password", "redis.conf"):
        assert (d / name).stat().st_mode & 0o777 == 0o600, name
    assert d.stat().st_mode & 0o777 == 0o700
    assert storage.redis_ping("127.0.0.1", rport, password)
    assert not storage.redis_ping("127.0.0.1", rport, "wrong")
    # the mirror serves the binary and its checksum, and nothing else
    sha = hashlib.sha256(fake_juicefs.read_bytes()).hexdigest()
    assert info["juicefs_sha256"] == sha
    with urllib.request.urlopen(info["juicefs_url"], timeout=5) as resp:
        assert resp.read() == fake_juicefs.read_bytes()
    with urllib.request.urlopen(info["juicefs_sha256_url"], timeout=5) as resp:
        assert resp.read().decode() == f"{sha}  juicefs\n"
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{mport}/juicefs/", timeout=5)
    assert json.loads((d / "connection.json").read_text()) == info

    st = storage.status()
    assert st["running"] and st["redis"]["port"] == rport and st["mirror"]["port"] == mport
    pids = (st["redis"]["pid"], st["mirror"]["pid"])
    again = _up(fake_juicefs, rport, mport)
    assert (again["redis"]["pid"], again["mirror"]["pid"]) == pids
    assert (d / "redis-password").read_text().strip() == password

    storage.down()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    for port in (rport, mport):
        assert storage.port_free("127.0.0.1", port)
    assert storage.status()["running"] is False
    storage.down()  # a second down is a no-op


def test_data_survives_down_and_up(lab_state, fake_juicefs):
    rport = _free_port()
    _up(fake_juicefs, rport, _free_port())
    password = (lab_state / "storage" / "redis-password").read_text().strip()
    with socket.create_connection(("127.0.0.1", rport), timeout=5) as s:
        s.sendall(f"AUTH {password}\r\nSELECT 1\r\nSET k v\r\nSAVE\r\n".encode())
        reply = b""
        while reply.count(b"\r\n") < 4:
            reply += s.recv(256)
    storage.down()
    _up(fake_juicefs, rport, _free_port())
    with socket.create_connection(("127.0.0.1", rport), timeout=5) as s:
        s.sendall(f"AUTH {password}\r\nSELECT 1\r\nGET k\r\n".encode())
        reply = b""
        while b"$1\r\nv\r\n" not in reply and len(reply) < 100:
            chunk = s.recv(256)
            if not chunk:
                break
            reply += chunk
    assert b"$1\r\nv\r\n" in reply


def test_missing_bridge_is_one_clear_error(lab_state, fake_juicefs):
    with pytest.raises(storage.StorageLabError, match=r"fleet bridge 10\.255\.255\.254 is not on this host: run `lab "
                                                      r"fleet up` first"):
        storage.up(fleet_address="10.255.255.254", juicefs=fake_juicefs)
    assert not (lab_state / "storage").exists()


def test_port_in_use_is_one_clear_error(lab_state, fake_juicefs):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(storage.StorageLabError, match=rf"port {port} on 127\.0\.0\.1 \(redis\) is already in use"):
            _up(fake_juicefs, port, _free_port())
    assert storage.status()["redis"]["running"] is False


def test_purge_removes_state(lab_state, fake_juicefs):
    _up(fake_juicefs, _free_port(), _free_port())
    storage.down(purge=True)
    assert not (lab_state / "storage").exists()


def test_cli_registration():
    top = argparse.ArgumentParser()
    storage.register_cli(top.add_subparsers(dest="command"))
    for words in (["storage", "up"], ["storage", "down", "--purge"], ["storage", "status"], ["storage", "build"]):
        assert callable(top.parse_args(words).func)


def test_binary_cache_key_and_version(tmp_path, monkeypatch):
    assert binary.version() == "1.3.1"
    key = binary.module_key()
    assert len(key) == 16
    module = tmp_path / "mod"
    shutil.copytree(binary.MODULE_DIR, module)
    assert binary.module_key(module) == key
    (module / "build.sh").write_text((module / "build.sh").read_text() + "\n# changed\n")
    assert binary.module_key(module) != key
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "cache")
    assert binary.binary_path() == tmp_path / "cache" / "juicefs" / key / "juicefs"
    assert not binary.is_built()
