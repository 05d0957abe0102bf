"""Rancher stand-in lifecycle: up/down/status as a detached process, CLI registration."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import ssl
import urllib.request
from pathlib import Path

import pytest
from labctl import paths, rancher
from labctl.rancher.server import address_is_local


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab_state(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path / "state")
    yield tmp_path / "state"
    rancher.down()


def _get(url: str, ca: str, token: str | None = None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=5) as resp:
        return resp.status, resp.read()


def test_up_status_down(lab_state, tmp_path):
    port = _free_port()
    info = rancher.up(tmp_path / "no-cluster.yaml", bind_hosts=("127.0.0.1",), port=port)
    assert info["url"] == f"https://127.0.0.1:{port}"
    assert re.fullmatch(r"token-[a-z0-9]{5}:[a-z0-9]{54}", info["api_token"])
    assert set(info["clusters"]) == {"worker", "worker-rke1"}
    d = lab_state / "rancher"
    for name in ("api-token", "ca-key.pem", "server-key.pem", "state.json"):
        assert (d / name).stat().st_mode & 0o777 == 0o600, name
    assert _get(f"{info['url']}/ping", info["ca_path"]) == (200, b"pong")
    _, body = _get(f"{info['url']}/v3/clusters?name=worker", info["ca_path"], info["api_token"])
    assert json.loads(body)["data"][0]["id"] == info["clusters"]["worker"]
    st = rancher.status()
    assert st["running"] and st["pid"] and st["bound"] == ["127.0.0.1"]
    pid = st["pid"]
    again = rancher.up(tmp_path / "no-cluster.yaml", bind_hosts=("127.0.0.1",), port=port)  # no-op
    assert rancher.status()["pid"] == pid and again["clusters"] == info["clusters"]
    conn = json.loads((d / "connection.json").read_text())
    assert conn["url"] == info["url"] and "api_token" not in conn
    rancher.down()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))  # nothing listens any more
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # and the port can be bound again
    assert rancher.status()["running"] is False
    # ids stable across restarts
    port2 = _free_port()
    info2 = rancher.up(tmp_path / "no-cluster.yaml", bind_hosts=("127.0.0.1",), port=port2)
    assert info2["clusters"] == info["clusters"] and info2["api_token"] == info["api_token"]


def test_port_in_use_is_one_clear_error(lab_state, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(rancher.RancherLabError, match=rf"port {port} on 127.0.0.1 is already in use"):
            rancher.up(tmp_path / "x.yaml", bind_hosts=("127.0.0.1",), port=port)
    assert rancher.status()["running"] is False


def test_missing_bind_address_is_reported_not_fatal(lab_state, tmp_path):
    absent = "198.51.100.77"  # TEST-NET-2: stands for the fleet bridge before the fleet network exists
    if address_is_local(absent):
        pytest.skip(f"{absent} exists on this host")
    messages = []
    info = rancher.up(tmp_path / "x.yaml", bind_hosts=("127.0.0.1", absent), port=_free_port(), log=messages.append)
    assert info["bound"] == ["127.0.0.1"] and info["waiting_for_address"] == [absent]
    assert any(f"{absent} is not an address on this host yet" in m for m in messages)
    assert _get(f"https://127.0.0.1:{rancher.status()['port']}/ping", info["ca_path"]) == (200, b"pong")


def test_register_cli():
    top = argparse.ArgumentParser()
    sub = top.add_subparsers(dest="command", required=True)
    rancher.register_cli(sub)
    args = top.parse_args(["rancher", "up", "--port", "9443", "--bind", "127.0.0.1"])
    assert args.port == 9443 and args.bind == ["127.0.0.1"] and callable(args.func)
    assert args.worker_kubeconfig == paths.kubeconfig_path("worker")
    for cmd in ("down", "status"):
        assert callable(top.parse_args(["rancher", cmd]).func)


def test_cli_status_prints_json(lab_state, capsys):
    top = argparse.ArgumentParser()
    rancher.register_cli(top.add_subparsers(dest="command"))
    args = top.parse_args(["rancher", "status"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["running"] is False
    assert os.environ.get("LAB_AGENT_ROOT") is None
