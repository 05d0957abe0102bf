"""Tests of the node_labels module's main() against a fake CoreV1Api that counts API calls (the client
factory and retries for real: test_k8s_modules_fake_server.py)."""

import copy
import json
import threading
from types import SimpleNamespace

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import k8s_client
from ansible_collections.aicluster.platform.plugins.modules import node_labels as module

ANN = "aicluster.io/managed-labels"
FAKE_API_CLIENT = SimpleNamespace(configuration=SimpleNamespace(host="https://fake.example:6443"))


class FakeCoreV1Api:
    """In-memory Nodes; patch_node applies a JSON merge patch to metadata labels/annotations."""

    def __init__(self, nodes, fail_on=()):
        self.nodes = copy.deepcopy(nodes)
        self.list_calls = 0
        self.patches = []
        self.fail_on = set(fail_on)
        self._lock = threading.Lock()

    def list_node(self, **kwargs):
        with self._lock:
            self.list_calls += 1
            assert kwargs.get("_preload_content") is False, "the module reads raw JSON"
            items = [
                {"metadata": {"name": name, "labels": meta.get("labels") or None,
                              "annotations": meta.get("annotations") or None}}
                for name, meta in sorted(self.nodes.items())
            ]
        return SimpleNamespace(data=json.dumps({"items": copy.deepcopy(items)}).encode())

    def patch_node(self, name, body, **kwargs):
        with self._lock:
            self.patches.append((name, copy.deepcopy(body), kwargs))
            if name in self.fail_on:
                raise RuntimeError(f"simulated failure for {name}")
            meta = self.nodes[name]
            for section in ("labels", "annotations"):
                for key, value in body["metadata"].get(section, {}).items():
                    target = meta.setdefault(section, {})
                    if value is None:
                        target.pop(key, None)
                    else:
                        target[key] = value
        return SimpleNamespace(metadata=SimpleNamespace(name=name))


@pytest.fixture
def cluster(monkeypatch):
    state = {}

    def install(nodes, **kwargs):
        api = FakeCoreV1Api(nodes, **kwargs)
        state["api"] = api
        monkeypatch.setattr(k8s_client, "connect", lambda module, timeout: FAKE_API_CLIENT)
        monkeypatch.setattr(k8s_client, "core_v1_api", lambda api_client: api)
        return api

    return install


def run(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


BASE_NODES = {
    "gpu-1": {"labels": {"kubernetes.io/hostname": "gpu-1"}},
    "gpu-2": {"labels": {"kubernetes.io/hostname": "gpu-2", "team": "ml"}},
    "cpu-1": {"labels": {"kubernetes.io/hostname": "cpu-1"}},
}

GPU_LABELS = {"cpu": "true", "gpu": "true", "gpu-type": "A100", "train": "true", "org": "public"}
CPU_LABELS = {"cpu": "true", "train": "true", "org": "public"}


def desired_nodes():
    return [
        {"name": "gpu-1", "host": "gpu-1.lab", "labels": dict(GPU_LABELS)},
        {"name": "gpu-2", "labels": dict(GPU_LABELS)},
        {"name": "cpu-1", "labels": dict(CPU_LABELS)},
    ]


def test_first_run_writes_once_per_node_then_converges(cluster, capsys):
    api = cluster(BASE_NODES)
    result = run({"kubeconfig": "/tmp/kc", "nodes": desired_nodes()}, capsys)
    assert result["_rc"] == 0
    assert result["changed"] is True
    assert result["api_writes"] == 3
    assert result["nodes_changed"] == ["cpu-1", "gpu-1", "gpu-2"]
    assert api.list_calls == 1
    assert sorted(name for name, _, _ in api.patches) == ["cpu-1", "gpu-1", "gpu-2"]
    _, body, kwargs = next(p for p in api.patches if p[0] == "cpu-1")
    assert body == {"metadata": {"labels": CPU_LABELS, "annotations": {ANN: "cpu,org,train"}}}
    assert kwargs["_content_type"] == "application/merge-patch+json"
    assert api.nodes["gpu-2"]["labels"]["team"] == "ml"  # hand-added label untouched

    # second run: converged, zero writes
    api.patches.clear()
    result = run({"kubeconfig": "/tmp/kc", "nodes": desired_nodes()}, capsys)
    assert result["changed"] is False
    assert result["api_writes"] == 0
    assert result["nodes_changed"] == []
    assert api.patches == []
    assert api.list_calls == 2
    assert all(plan["patch"] is None for plan in result["plans"].values())


def test_one_write_per_changed_node_only(cluster, capsys):
    converged = {
        "gpu-1": {"labels": dict(GPU_LABELS), "annotations": {ANN: "cpu,gpu,gpu-type,org,train"}},
        "gpu-2": {"labels": dict(GPU_LABELS), "annotations": {ANN: "cpu,gpu,gpu-type,org,train"}},
        "cpu-1": {"labels": dict(CPU_LABELS, rdma="true"), "annotations": {ANN: "cpu,org,rdma,train"}},
    }
    api = cluster(converged)
    result = run({"nodes": desired_nodes()}, capsys)
    assert result["changed"] is True
    assert result["api_writes"] == 1
    assert result["nodes_changed"] == ["cpu-1"]
    assert [(name, body) for name, body, _ in api.patches] == [
        ("cpu-1", {"metadata": {"labels": {"rdma": None}, "annotations": {ANN: "cpu,org,train"}}}),
    ]
    assert result["plans"]["cpu-1"]["removed"] == ["rdma"]
    assert "rdma" not in api.nodes["cpu-1"]["labels"]


def test_check_mode_writes_nothing_and_reports_diff(cluster, capsys):
    api = cluster(BASE_NODES)
    args = {"nodes": desired_nodes(), "_ansible_check_mode": True, "_ansible_diff": True}
    result = run(args, capsys)
    assert result["changed"] is True
    assert result["api_writes"] == 0
    assert result["nodes_changed"] == ["cpu-1", "gpu-1", "gpu-2"]
    assert api.patches == []
    assert len(result["diff"]) == 3
    first = result["diff"][0]
    assert first["before_header"] == first["after_header"] == "node/cpu-1"
    assert first["before"]["labels"] == {"kubernetes.io/hostname": "cpu-1"}
    assert first["after"]["labels"]["train"] == "true"
    assert first["after"]["managed"] == ["cpu", "org", "train"]


def test_invalid_key_fails_before_any_api_call(cluster, capsys):
    api = cluster(BASE_NODES)
    nodes = desired_nodes()
    nodes[1]["labels"]["bad key"] = "true"
    nodes[2]["labels"]["gpu-type"] = "A100 SXM"
    result = run({"nodes": nodes}, capsys)
    assert result["_rc"] == 1
    assert result["failed"] is True
    assert result["api_writes"] == 0
    assert api.patches == []
    assert api.list_calls == 0
    assert "node gpu-2: label 'bad key'" in result["msg"]
    assert "node cpu-1: label 'gpu-type'" in result["msg"]
    assert len(result["errors"]) == 2


def test_invalid_error_names_inventory_host(cluster, capsys):
    cluster(BASE_NODES)
    nodes = desired_nodes()
    nodes[0]["labels"]["-x"] = "true"
    result = run({"nodes": nodes}, capsys)
    assert "host gpu-1.lab (node gpu-1): label '-x'" in result["msg"]


def test_strict_rejects_non_string_values_lenient_coerces(cluster, capsys):
    api = cluster(BASE_NODES)
    nodes = [{"name": "cpu-1", "labels": {"cpu": True, "count": 8}}]
    result = run({"nodes": nodes, "strict": True}, capsys)
    assert result["failed"] is True
    assert "value must be a string, got bool" in result["msg"]
    assert api.patches == []
    result = run({"nodes": nodes}, capsys)
    assert result["changed"] is True
    assert api.patches[0][1]["metadata"]["labels"] == {"cpu": "true", "count": "8"}


def test_missing_node_fails_by_default_without_writes(cluster, capsys):
    api = cluster(BASE_NODES)
    nodes = [*desired_nodes(), {"name": "gone-1", "labels": {"cpu": "true"}}, {"name": "gone-2"}]
    result = run({"nodes": nodes}, capsys)
    assert result["failed"] is True
    assert result["missing_nodes"] == ["gone-1", "gone-2"]
    assert "gone-1, gone-2" in result["msg"]
    assert api.patches == []


def test_missing_node_skip(cluster, capsys):
    api = cluster(BASE_NODES)
    nodes = [*desired_nodes(), {"name": "gone-1", "labels": {"cpu": "true"}}]
    result = run({"nodes": nodes, "missing": "skip"}, capsys)
    assert result["changed"] is True
    assert result["missing_nodes"] == ["gone-1"]
    assert result["api_writes"] == 3
    assert "gone-1" not in result["plans"]
    assert len(api.patches) == 3


def test_duplicate_node_entry_rejected(cluster, capsys):
    api = cluster(BASE_NODES)
    result = run({"nodes": [{"name": "cpu-1"}, {"name": "cpu-1", "labels": {"a": "b"}}]}, capsys)
    assert result["failed"] is True
    assert "listed more than once" in result["msg"]
    assert api.list_calls == 0


def test_patch_failure_reports_node_and_counts_successes(cluster, capsys):
    api = cluster(BASE_NODES, fail_on={"gpu-2"})
    result = run({"nodes": desired_nodes(), "workers": 2}, capsys)
    assert result["failed"] is True
    assert result["api_writes"] == 2
    assert result["changed"] is True
    assert result["nodes_changed"] == ["cpu-1", "gpu-1"]
    assert "gpu-2: simulated failure for gpu-2" in result["msg"]
    assert len(api.patches) == 3


def test_removing_everything_clears_annotation(cluster, capsys):
    api = cluster({"cpu-1": {"labels": {"cpu": "true", "hand": "made"}, "annotations": {ANN: "cpu", "other": "x"}}})
    result = run({"nodes": [{"name": "cpu-1", "labels": {}}]}, capsys)
    assert result["api_writes"] == 1
    assert api.nodes["cpu-1"] == {"labels": {"hand": "made"}, "annotations": {"other": "x"}}


def test_client_error_is_reported(monkeypatch, capsys):
    def boom(module, timeout):
        raise k8s_client.K8sError("cannot set up the Kubernetes client: Invalid kube-config file. "
                                  "No configuration found.")

    monkeypatch.setattr(k8s_client, "connect", boom)
    result = run({"kubeconfig": "/nope", "nodes": desired_nodes()}, capsys)
    assert result["failed"] is True and result["api_writes"] == 0
    assert result["msg"] == ("cannot list Nodes: cannot set up the Kubernetes client: Invalid kube-config file. "
                             "No configuration found.")
