"""rancher_worker's RKE1 flow against the lab: docker run rancher/rancher-agent (the lab's docker
shim) on one machine, kubelet extraBinds in the cluster, Node Ready, idempotent re-run, removal."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s
from labctl import clusters
from rancher_worker_helpers import (
    PLAYBOOK,
    TEST_HOSTS,
    agent_states,
    rancher,
    rancher_get,
    rancher_nodes,
    recap,
    run_playbook,
)
from rancher_worker_helpers import remove as remove_nodes

pytestmark = pytest.mark.lab
HOST = TEST_HOSTS[-1]
RKE1 = {"rancher_worker_flow": "rke1", "rancher_cluster_name": "worker-rke1"}


@pytest.fixture(scope="module")
def core():
    api = clusters.api_client("worker")
    yield k8s.CoreV1Api(api)
    api.close()


def test_rke1_join_rerun_and_remove(tmp_path, core):
    for cluster in ("worker", "worker-rke1"):
        assert remove_nodes(tmp_path, [HOST], cluster).returncode == 0
    first = run_playbook(tmp_path, PLAYBOOK, [HOST], RKE1)
    assert first.returncode == 0, first.stdout[-3000:]
    assert recap(first.stdout)[HOST]["changed"] > 0
    assert HOST in rancher_nodes("worker-rke1")
    assert agent_states([HOST], "rancher-agent")[HOST] == "active"
    node = core.read_node(HOST)
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    assert node.metadata.labels["aicluster.io/joined-by"] == "integration-test"
    cid = rancher()["clusters"]["worker-rke1"]
    binds = rancher_get(f"/v3/clusters/{cid}")["rancherKubernetesEngineConfig"]["services"]["kubelet"]["extraBinds"]
    assert binds.count("/data/k8s:/data/k8s") == 1

    second = run_playbook(tmp_path, PLAYBOOK, [HOST], RKE1)
    assert second.returncode == 0 and recap(second.stdout)[HOST]["changed"] == 0, second.stdout[-3000:]

    removed = remove_nodes(tmp_path, [HOST], "worker-rke1")
    assert removed.returncode == 0, removed.stdout[-3000:]
    assert HOST not in rancher_nodes("worker-rke1")
    assert agent_states([HOST], "rancher-agent")[HOST] != "active"
    assert HOST not in [n.metadata.name for n in core.list_node().items]
