"""Lab control-plane launcher: configuration, cache keys and error reporting (no cluster needed)."""

from __future__ import annotations

import socket

import pytest
import yaml
from labctl import cli, clusters, k8sbin, paths


def test_both_clusters_declared_with_distinct_ports():
    specs = {s.name: s for s in clusters.specs()}
    assert set(specs) == {"worker", "manager"}
    assert specs["worker"].apiserver_port != specs["manager"].apiserver_port


def test_kwokctl_config_is_loopback_binary_runtime_with_local_binaries(tmp_path):
    config = yaml.safe_load(clusters._kwokctl_config(tmp_path))
    options = config["options"]
    assert options["runtime"] == "binary"
    assert options["bindAddress"] == "127.0.0.1"
    assert options["kubeVersion"] == k8sbin.kube_version()
    for key in ("kubeApiserverBinary", "kubeControllerManagerBinary", "kubeSchedulerBinary",
                "kwokControllerBinary", "etcdBinary", "kubectlBinary"):
        assert options[key].startswith(str(tmp_path)), key  # never a download URL


def test_a_created_cluster_gets_the_api_aggregation_flags_of_its_own_ca(tmp_path):
    config = yaml.safe_load(clusters._kwokctl_config(tmp_path, name="worker"))
    (patch,) = config["componentsPatches"]
    assert patch["name"] == "kube-apiserver"
    args = {a["key"]: a["value"] for a in patch["extraArgs"]}
    assert args["enable-aggregator-routing"] == "true"
    assert args["requestheader-client-ca-file"].endswith("/clusters/worker/pki/ca.crt")
    assert args["requestheader-allowed-names"] == "kwok-admin"
    assert "componentsPatches" not in yaml.safe_load(clusters._kwokctl_config(tmp_path))


def test_kube_version_comes_from_the_wrapper_module():
    assert k8sbin.kube_version().startswith("v1.36.")


def test_cache_key_follows_the_module_definition(tmp_path, monkeypatch):
    for name in ("go.mod", "go.sum", "build.sh"):
        (tmp_path / name).write_text((paths.K8SBIN_MODULE / name).read_text())
    monkeypatch.setattr(paths, "K8SBIN_MODULE", tmp_path)
    before = k8sbin.module_key()
    assert k8sbin.module_key() == before
    (tmp_path / "go.sum").write_text((tmp_path / "go.sum").read_text() + "example.invalid/x v1.0.0 h1:x=\n")
    assert k8sbin.module_key() != before


def test_busy_apiserver_port_is_one_clear_error(monkeypatch, tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        spec = clusters.ClusterSpec(name="worker", apiserver_port=port)
        monkeypatch.setattr(clusters, "specs", lambda: [spec])
        monkeypatch.setattr(k8sbin, "ensure_built", lambda log: tmp_path)
        monkeypatch.setattr(paths, "KWOK_WORKDIR", tmp_path / "kwok")
        monkeypatch.setattr(paths, "KUBECONFIG_DIR", tmp_path / "kc")
        assert cli.main(["up"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"port 127.0.0.1:{port}" in err[0] and "in use" in err[0]


def test_missing_go_is_one_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(k8sbin, "bin_dir", lambda: tmp_path / "absent")
    monkeypatch.setattr(k8sbin.shutil, "which", lambda name: None)
    assert cli.main(["build"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and "Go toolchain not found" in err[0]


def test_node_manifest_is_kwok_managed_with_given_capacity():
    node = clusters._node_manifest({"name": "n1", "cpu": "8", "memory": "32Gi", "extended": {"nvidia.com/gpu": 8}})
    assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    assert node["status"]["capacity"] == {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": "8"}
    assert "taints" not in node.get("spec", {})


@pytest.mark.parametrize("argv", [["up"], ["down"], ["status"], ["build"]])
def test_cli_parses(argv):
    assert cli.parser().parse_args(argv).func
