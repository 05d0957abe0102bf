"""Verify the chain scenario: every machine is a storage-backed, joined, labelled worker.

Machine checks run on each machine of lab_fleet over SSH (testinfra); cluster checks read the
worker cluster's API from the control host through kubernetes.core.k8s_info.
"""

from __future__ import annotations

import os

import pytest
import testinfra

ROOT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
INVENTORY = os.path.join(ROOT, "inventory", "lab")
KUBECONFIG = os.path.join(ROOT, "lab", "state", "kubeconfig", "worker.yaml")


@pytest.fixture(scope="module")
def control():
    return testinfra.get_host("ansible://localhost", ansible_inventory=INVENTORY)


@pytest.fixture(scope="module")
def nodes(control):
    result = control.ansible("kubernetes.core.k8s_info", f"kind=Node kubeconfig={KUBECONFIG}", check=False)
    return {n["metadata"]["name"]: n for n in result["resources"]}


def node_name(host):
    return host.check_output("hostname -s").strip().lower()


def test_data_path_is_the_shared_juicefs_volume(host):
    mount = host.mount_point("/data/k8s")
    assert mount.exists
    assert mount.filesystem == "fuse.juicefs"
    assert mount.device == "JuiceFS:aicluster-lab"
    assert host.file("/data/k8s/kubeflow/global").is_directory


def test_secrets_only_in_private_files(host):
    env = host.file("/etc/juicefs/juicefs-data-k8s.env")
    if env.exists:
        assert env.mode == 0o600
    # No secret on any process command line (the mount reads META_PASSWORD from its environment).
    assert "META_PASSWORD" not in host.check_output("ps -eo args")


def test_rancher_agent_active(host):
    agent = host.service("rancher-system-agent")
    assert agent.is_running
    assert agent.is_enabled


def test_node_ready_and_labelled_for_its_accelerator(host, nodes):
    name = node_name(host)
    assert name in nodes, sorted(nodes)
    node = nodes[name]
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    labels = node["metadata"]["labels"]
    managed = node["metadata"]["annotations"]["aicluster.io/managed-labels"].split(",")
    assert "gpu" in managed or "cpu" in managed or "accelerator" in managed, managed
    gpus = host.run("nvidia-smi -L").stdout.count("GPU ") if host.exists("nvidia-smi") else 0
    npus = host.file("/dev/davinci0").exists
    if gpus:
        assert labels["gpu"] == "true"
        assert labels["nvidia.com/gpu.present"] == "true"
        assert labels["gpu-type"]
    elif npus:
        assert labels["accelerator"] == "huawei-Ascend910"
        assert labels["node-role.kubernetes.io/worker"] == "worker"
    else:
        assert labels["cpu"] == "true"
        assert "gpu-type" not in labels


@pytest.fixture(scope="module")
def vnodes(control):
    """The manager cluster's virtual Nodes (Kubeocean stage), by the physical Node they stand for."""
    kubeconfig = os.path.join(ROOT, "lab", "state", "kubeconfig", "manager.yaml")
    result = control.ansible("kubernetes.core.k8s_info",
                             f"kind=Node kubeconfig={kubeconfig} label_selectors=kubeocean.io/cluster-binding",
                             check=False)
    return {n["metadata"]["labels"]["kubeocean.io/physical-node-name"]: n for n in result["resources"]}


def test_only_lent_machines_are_virtual_nodes_of_the_manager_with_half_their_gpus(host, nodes, vnodes):
    name = node_name(host)
    lent = nodes[name]["metadata"]["labels"].get("kubeocean.io/role") == "worker"
    assert (name in vnodes) == lent, sorted(vnodes)
    if lent:
        physical = int(nodes[name]["status"]["allocatable"]["nvidia.com/gpu"])
        assert int(vnodes[name]["status"]["allocatable"]["nvidia.com/gpu"]) == physical // 2
