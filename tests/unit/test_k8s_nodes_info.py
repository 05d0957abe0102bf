"""k8s_nodes_info: the batched wait for joined machines' Nodes, through kubernetes.core's client against
the fake API server (fake_kube.py), on a fake clock: nothing sleeps."""

from __future__ import annotations

import json
import tempfile

import kubernetes.client
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import retry
from ansible_collections.aicluster.platform.plugins.modules import k8s_nodes_info
from ansible_collections.kubernetes.core.plugins.module_utils.k8s import client as k8s_core_client
from fake_clock import FakeTime
from fake_kube import FakeKube, ready_node


@pytest.fixture(autouse=True)
def clock(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(kubernetes.client.Configuration, "_default", None)
    monkeypatch.setattr(k8s_core_client, "_pool", {})
    for name in ("K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    fake = FakeTime()
    monkeypatch.setattr(retry, "time", fake)
    monkeypatch.setattr(k8s_nodes_info, "time", fake)
    return fake


@pytest.fixture
def kube():
    with FakeKube({"gpu-1": ready_node(), "cpu-1": ready_node(ready=False)}) as server:
        yield server


def run(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        k8s_nodes_info.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


def test_reports_without_waiting(kube, tmp_path, capsys):
    result = run({"kubeconfig": kube.kubeconfig(tmp_path / "c"), "names": ["gpu-1", "cpu-1", "new-1"]}, capsys)
    assert result["_rc"] == 0 and result["changed"] is False
    assert result["nodes"] == {"gpu-1": {"exists": True, "ready": True}, "cpu-1": {"exists": True, "ready": False},
                               "new-1": {"exists": False, "ready": False}}
    assert result["not_ready"] == ["cpu-1", "new-1"] and result["polls"] == 1


def test_waits_with_one_list_call_per_poll_until_every_node_is_ready(kube, tmp_path, capsys, clock):
    def progress():
        if len(clock.sleeps) == 1:
            kube.nodes["new-1"] = ready_node(ready=False)
        if len(clock.sleeps) == 2:
            kube.nodes["new-1"] = ready_node()
            kube.nodes["cpu-1"] = ready_node()
    clock.on_sleep = progress
    result = run({"kubeconfig": kube.kubeconfig(tmp_path / "c"), "names": ["gpu-1", "cpu-1", "new-1"],
                  "wait": True, "wait_sleep": 3}, capsys)
    assert result["_rc"] == 0, result
    assert result["not_ready"] == [] and result["polls"] == 3
    assert clock.sleeps == [3, 3]
    assert [r for r in kube.requests if r[1].startswith("/api/v1/nodes")] == [("GET", "/api/v1/nodes")] * 3


def test_rides_out_an_api_server_restart(kube, tmp_path, capsys, clock):
    kube.fail("GET", "/api/v1/nodes", None, times=2)   # connection dropped: the server is restarting
    kube.fail("GET", "/api/v1/nodes", 503, times=3)    # then up but not serving yet
    result = run({"kubeconfig": kube.kubeconfig(tmp_path / "c"), "names": ["gpu-1"], "wait": True}, capsys)
    assert result["_rc"] == 0, result
    assert kube.faults == []


def test_time_up_names_the_nodes(kube, tmp_path, capsys, clock):
    result = run({"kubeconfig": kube.kubeconfig(tmp_path / "c"), "names": ["gpu-1", "cpu-1", "new-1"],
                  "wait": True, "wait_timeout": 20, "wait_sleep": 5}, capsys)
    assert result["_rc"] == 1
    assert result["msg"] == "Nodes not Ready within 20s (no Node yet: new-1; not Ready: cpu-1)"
    assert sum(clock.sleeps) <= 20


def test_api_down_for_the_whole_wait_names_the_url(kube, tmp_path, capsys, clock):
    result = run({"kubeconfig": kube.kubeconfig(tmp_path / "c"), "names": ["gpu-1"], "wait": True,
                  "wait_timeout": 10}, capsys)
    assert result["_rc"] == 0  # set-up works; now make the list fail for good
    kube.fail("GET", "/api/v1/nodes", 503, times=1000)
    result = run({"kubeconfig": kube.kubeconfig(tmp_path / "c"), "names": ["gpu-1"], "wait": True,
                  "wait_timeout": 10}, capsys)
    assert result["_rc"] == 1
    assert f"GET {kube.url}/api/v1/nodes" in result["msg"] and "HTTP 503" in result["msg"]


@pytest.mark.parametrize("key", ["wait_timeout", "wait_sleep", "request_timeout"])
def test_bad_timeouts_are_refused(kube, tmp_path, capsys, key):
    result = run({"kubeconfig": kube.kubeconfig(tmp_path / "c"), "names": ["gpu-1"], key: 0}, capsys)
    assert result["_rc"] == 1 and result["msg"] == f"{key} must be at least 1 second"
    assert kube.requests == []
