"""k8s_readiness_info and node_labels through kubernetes.core's client factory for real, against a tiny
API server (fake_kube.py): kubeconfig/context/host/api_key handling, raw GETs, retries of transient
faults (on a fake clock: nothing sleeps) and the messages when the time is up."""

from __future__ import annotations

import json
import tempfile

import kubernetes.client
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import retry
from ansible_collections.aicluster.platform.plugins.modules import k8s_readiness_info, node_labels
from ansible_collections.kubernetes.core.plugins.module_utils.k8s import client as k8s_core_client
from fake_clock import FakeTime
from fake_kube import TOKEN, FakeKube, ready_node


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """One module run per process in real life: here each test starts from a fresh process-wide state
    (kubernetes' default configuration, which a loaded kubeconfig leaves behind with a hook that resets
    its host; kubernetes.core's client pool; the discovery cache in the temp dir). The retry helper runs on
    a fake clock."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(kubernetes.client.Configuration, "_default", None)
    monkeypatch.setattr(k8s_core_client, "_pool", {})
    for name in ("K8S_AUTH_KUBECONFIG", "K8S_AUTH_CONTEXT", "K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "KUBECONFIG"):
        monkeypatch.delenv(name, raising=False)
    clock = FakeTime()
    monkeypatch.setattr(retry, "time", clock)
    return clock


@pytest.fixture
def kube():
    nodes = {"gpu-1": ready_node({"kubernetes.io/hostname": "gpu-1"}), "cpu-1": ready_node(ready=False)}
    with FakeKube(nodes) as server:
        yield server


def run(module, args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


def test_readiness_through_kubernetes_core(kube, tmp_path, capsys):
    args = {"kubeconfig": kube.kubeconfig(tmp_path / "config"), "min_version": "1.30"}
    result = run(k8s_readiness_info, args, capsys)
    assert result["_rc"] == 0 and not result["changed"], result
    assert result["version"] == "v1.36.3" and result["ready"] and result["failed_checks"] == []
    assert result["nodes"] == {"total": 2, "ready": 1, "not_ready": ["cpu-1"]}
    assert ("GET", "/readyz?verbose=true") in kube.requests and ("GET", "/version") in kube.requests


def test_readiness_with_host_and_api_key_instead_of_kubeconfig(kube, capsys):
    result = run(k8s_readiness_info, {"host": kube.url, "api_key": TOKEN}, capsys)
    assert result["_rc"] == 0 and result["version"] == "v1.36.3", result


def test_readiness_context_selects_the_cluster(kube, tmp_path, capsys):
    args = {"kubeconfig": kube.kubeconfig(tmp_path / "config"), "context": "other", "request_timeout": 5}
    result = run(k8s_readiness_info, args, capsys)
    assert result["_rc"] == 1
    assert "connecting to http://127.0.0.1:1: no success within" in result["msg"]
    assert "Connection refused" in result["msg"]


def test_not_ready_is_an_answer_not_a_fault(kube, tmp_path, capsys, isolated):
    kube.failed_checks = ["etcd"]
    args = {"kubeconfig": kube.kubeconfig(tmp_path / "config")}
    result = run(k8s_readiness_info, args, capsys)
    assert result["_rc"] == 1 and result["msg"] == "API server not ready (failed checks: etcd)"
    assert isolated.sleeps == []  # a 500 with the checks listed is not retried
    result = run(k8s_readiness_info, {**args, "require_ready": False}, capsys)
    assert result["_rc"] == 0 and not result["ready"] and result["failed_checks"] == ["etcd"]


def test_transient_faults_are_retried(kube, tmp_path, capsys, isolated):
    kube.fail("GET", "/api/v1/nodes", 503, times=2)
    kube.fail("GET", "/readyz", None)  # connection dropped (urllib3 itself retries that once for a GET)
    kube.fail("GET", "/version", 429)
    result = run(k8s_readiness_info, {"kubeconfig": kube.kubeconfig(tmp_path / "config")}, capsys)
    assert result["_rc"] == 0 and result["ready"], result
    assert kube.faults == []
    assert isolated.sleeps == [0.5, 0.5, 1.0]  # /version once; /api/v1/nodes twice, backing off


def test_time_up_names_the_url_and_the_last_error(kube, tmp_path, capsys, isolated):
    kube.fail("GET", "/api/v1/nodes", 503, times=100)
    result = run(k8s_readiness_info, {"kubeconfig": kube.kubeconfig(tmp_path / "config"), "request_timeout": 10},
                 capsys)
    assert result["_rc"] == 1
    assert f"GET {kube.url}/api/v1/nodes: no success within" in result["msg"]
    assert "last error: HTTP 503" in result["msg"] and "injected fault" in result["msg"]
    assert sum(isolated.sleeps) <= 10


def test_unauthorized_is_not_retried(kube, tmp_path, capsys, isolated):
    result = run(k8s_readiness_info, {"kubeconfig": kube.kubeconfig(tmp_path / "config", token="wrong")}, capsys)
    assert result["_rc"] == 1 and "401" in result["msg"], result
    assert isolated.sleeps == []


def test_missing_kubeconfig_is_a_clear_error(tmp_path, capsys):
    result = run(k8s_readiness_info, {"kubeconfig": str(tmp_path / "missing")}, capsys)
    assert result["_rc"] == 1 and "cannot read the cluster's state" in result["msg"], result


def test_node_labels_patches_through_kubernetes_core_with_retries(kube, tmp_path, capsys, isolated):
    kube.fail("PATCH", "/api/v1/nodes/gpu-1", 500)
    args = {"kubeconfig": kube.kubeconfig(tmp_path / "config"),
            "nodes": [{"name": "gpu-1", "labels": {"gpu": "true"}}, {"name": "cpu-1", "labels": {"cpu": "true"}}]}
    result = run(node_labels, args, capsys)
    assert result["_rc"] == 0 and result["api_writes"] == 2, result
    assert kube.nodes["gpu-1"]["metadata"]["labels"] == {"kubernetes.io/hostname": "gpu-1", "gpu": "true"}
    assert kube.nodes["cpu-1"]["metadata"]["annotations"] == {"aicluster.io/managed-labels": "cpu"}
    assert isolated.sleeps == [0.5]
    again = run(node_labels, args, capsys)
    assert again["_rc"] == 0 and not again["changed"] and again["api_writes"] == 0


def test_node_labels_patch_that_keeps_failing_is_reported_per_node(kube, tmp_path, capsys):
    kube.fail("PATCH", "/api/v1/nodes/gpu-1", 503, times=100)
    args = {"kubeconfig": kube.kubeconfig(tmp_path / "config"), "request_timeout": 5,
            "nodes": [{"name": "gpu-1", "labels": {"gpu": "true"}}, {"name": "cpu-1", "labels": {"cpu": "true"}}]}
    result = run(node_labels, args, capsys)
    assert result["_rc"] == 1 and result["api_writes"] == 1 and result["nodes_changed"] == ["cpu-1"]
    assert f"gpu-1: PATCH {kube.url}/api/v1/nodes/gpu-1: no success within" in result["msg"]
    assert "last error: HTTP 503" in result["failed_nodes"]["gpu-1"]


def test_node_labels_list_that_keeps_failing_writes_nothing(kube, tmp_path, capsys):
    kube.fail("GET", "/api/v1/nodes", None, times=100)
    args = {"kubeconfig": kube.kubeconfig(tmp_path / "config"), "request_timeout": 3,
            "nodes": [{"name": "gpu-1", "labels": {"gpu": "true"}}]}
    result = run(node_labels, args, capsys)
    assert result["_rc"] == 1 and result["api_writes"] == 0
    assert result["msg"].startswith(f"cannot list Nodes: GET {kube.url}/api/v1/nodes: no success within")
    assert not [r for r in kube.requests if r[0] == "PATCH"]
