"""Verify the rancher_worker Molecule scenario: the agent on every machine, the Node in the cluster."""

from __future__ import annotations

import os

import pytest
import testinfra

LABELS = {"aicluster.io/pool": "inference", "aicluster.io/joined-by": "rancher-worker-molecule",
          "node-role.kubernetes.io/worker": "true", "cattle.io/os": "linux"}
INVENTORY = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "..", "..", "inventory", "lab")


@pytest.fixture(scope="module")
def control():
    return testinfra.get_host("ansible://localhost", ansible_inventory=INVENTORY)


def test_agent_active_and_enabled(host):
    agent = host.service("rancher-system-agent")
    assert agent.is_running
    assert agent.is_enabled


def test_agent_config_private(host):
    config = host.file("/etc/rancher/agent/config")
    assert config.is_file
    assert config.mode == 0o600
    assert config.user == "root"
    assert "CATTLE_ROLE_WORKER=true" in config.content_string


def test_no_join_leftovers(host):
    assert not host.check_output("find /tmp -maxdepth 1 -name '*.rancher-join'")


def test_node_ready_with_registration_labels(host, control):
    name = host.check_output("hostname -s").strip().lower()
    kubeconfig = os.path.join(INVENTORY, "..", "..", "lab", "state", "kubeconfig", "worker.yaml")
    result = control.ansible("kubernetes.core.k8s_info", f"kind=Node name={name} kubeconfig={kubeconfig}",
                             check=False)
    assert len(result["resources"]) == 1, result
    node = result["resources"][0]
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert LABELS.items() <= node["metadata"]["labels"].items()
    assert {"key": "aicluster.io/molecule", "value": "rancher-worker", "effect": "PreferNoSchedule"} in \
        node["spec"]["taints"]
