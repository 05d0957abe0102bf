"""The whole bootstrap chain on the lab's demo fleet, from bare machines:

bootstrap from zero, re-run with changed=0, add a seventh machine with --limit (no task on
the other six), --check on the converged fleet reports nothing, remove the machine again.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from kubernetes import client as k8s
from labctl import clusters, fleet, paths, rancher

pytestmark = pytest.mark.lab
REPO = paths.REPO_ROOT
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
NEW = "gpu-t4-new"


def playbook(*args: str) -> tuple[int, dict[str, dict[str, int]], str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="false")
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    result = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "inventory/lab", *args],
                            cwd=REPO, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    recap = {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                          "failed": int(m.group(5))} for m in RECAP.finditer(result.stdout)}
    return result.returncode, recap, result.stdout[-6000:]


def worker_nodes() -> dict[str, k8s.V1Node]:
    api = clusters.api_client("worker")
    try:
        return {n.metadata.name: n for n in k8s.CoreV1Api(api).list_node().items}
    finally:
        api.close()


def ready(node: k8s.V1Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


@pytest.fixture(scope="module")
def bare_fleet():
    """The demo fleet as fresh machines that were never joined."""
    rancher.forget_nodes()
    fleet.down()
    machines = fleet.up("demo")
    yield [m.name for m in machines]
    if NEW in [m["name"] for m in fleet.status()]:
        fleet.remove(NEW)


def test_bootstrap_from_zero_then_idempotent_then_add_and_remove_a_node(bare_fleet):
    names = set(bare_fleet)

    rc, recap, out = playbook("site.yml")
    assert rc == 0, out
    assert set(recap) == names
    assert all(r["failed"] == 0 and r["unreachable"] == 0 and r["changed"] > 0 for r in recap.values()), recap
    nodes = worker_nodes()
    assert names <= set(nodes)
    for name in names:
        assert ready(nodes[name]), name
        assert nodes[name].metadata.labels.get("org"), name  # labelled by the chain
    assert nodes["gpu-a100-1"].metadata.labels["gpu-type"] == "A100"
    assert nodes["npu-910b-1"].metadata.labels["accelerator"] == "huawei-Ascend910"

    rc, recap, out = playbook("site.yml")
    assert rc == 0, out
    assert {h: r["changed"] for h, r in recap.items()} == dict.fromkeys(names, 0), out

    fleet.add(NEW, "T4", 2)
    labels_before = {n: node.metadata.labels for n, node in worker_nodes().items() if n in names}
    rc, recap, out = playbook("site.yml", "--limit", NEW)
    assert rc == 0, out
    assert set(recap) == {NEW}, f"tasks ran on other machines: {sorted(recap)}"
    assert recap[NEW]["changed"] > 0
    nodes = worker_nodes()
    assert ready(nodes[NEW]) and nodes[NEW].metadata.labels["gpu-type"] == "T4"
    # Nothing reached the other six Nodes' labels.
    assert {n: nodes[n].metadata.labels for n in names} == labels_before

    rc, recap, out = playbook("site.yml", "--check", "--diff")
    assert rc == 0, out
    assert all(r["changed"] == 0 for r in recap.values()), out

    rc, recap, out = playbook("playbooks/remove_node.yml", "--limit", NEW, "-e", "remove_node_confirm=true")
    assert rc == 0, out
    assert set(recap) <= {NEW, "localhost"}
    assert NEW not in worker_nodes()
    fleet.remove(NEW)
