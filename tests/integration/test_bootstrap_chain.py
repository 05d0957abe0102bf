"""The whole bootstrap chain on the lab's demo fleet, from bare machines:

bootstrap from zero, re-run with changed=0, add a seventh machine with --limit (no task on
the other six), --check on the converged fleet reports nothing, remove the machine again.

site.yml runs with the device and SGLang stages switched off (their project switches): those stages
have their own tests (test_gpu_stage, test_npu_stage, test_sglang_stage), and the Molecule chain
scenario runs the whole site.yml from a fresh lab, twice.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from kubernetes import client as k8s
from labctl import clusters, fleet, paths, rancher
from labctl.fleet.runtime import container_name

pytestmark = pytest.mark.lab
REPO = paths.REPO_ROOT
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
NEW = "gpu-t4-new"
BOOTSTRAP_ONLY = ["-e", '{"aicluster_gpu_stage_enabled": false, "aicluster_npu_stage_enabled": false, '
                  '"aicluster_sglang_stage_enabled": false, "aicluster_kubeocean_stage_enabled": false, '
                  '"aicluster_inference_stage_enabled": false, "aicluster_workspaces_stage_enabled": false}']


def playbook(*args: str) -> tuple[int, dict[str, dict[str, int]], str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="false")
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    result = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "inventory/lab", *BOOTSTRAP_ONLY,
                             *args],
                            cwd=REPO, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    recap = {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                          "failed": int(m.group(5))} for m in RECAP.finditer(result.stdout)}
    return result.returncode, recap, result.stdout + result.stderr


def on_machine(name: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", "exec", container_name(name), *argv], capture_output=True, text=True,
                          check=False)


def lab_secrets() -> dict[str, str]:
    state = paths.STATE_DIR
    secrets = {"Rancher API token": (state / "rancher" / "api-token").read_text().strip(),
               "storage password": (state / "storage" / "redis-password").read_text().strip()}
    for token in rancher.api_call("GET", "/v3/clusterregistrationtokens").get("data") or []:
        secrets[f"registration token {token['id']}"] = token["token"]
    assert all(len(v) >= 16 for v in secrets.values()), "a lab secret is too short to search for"
    return secrets


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

    # From zero, at -vvv: no secret of the lab (Rancher API token, registration tokens, storage
    # password) appears anywhere in the output, though every join passes a registration token.
    rc, recap, out = playbook("site.yml", "-vvv")
    assert rc == 0, out[-6000:]
    assert set(recap) == names
    for label, secret in lab_secrets().items():
        assert secret not in out, f"the {label} appears in the -vvv output"
    assert all(r["failed"] == 0 and r["unreachable"] == 0 and r["changed"] > 0 for r in recap.values()), recap
    nodes = worker_nodes()
    assert names <= set(nodes)
    for name in names:
        assert ready(nodes[name]), name
        assert nodes[name].metadata.labels.get("org"), name  # labelled by the chain
    assert nodes["gpu-a100-1"].metadata.labels["gpu-type"] == "A100"
    assert nodes["npu-910b-1"].metadata.labels["accelerator"] == "huawei-Ascend910"

    rc, recap, out = playbook("site.yml")
    assert rc == 0, out[-6000:]
    assert {h: r["changed"] for h, r in recap.items()} == dict.fromkeys(names, 0), out[-6000:]

    fleet.add(NEW, "T4", 2)
    labels_before = {n: node.metadata.labels for n, node in worker_nodes().items() if n in names}

    # Dry run of the add-node on a machine that never joined: exit 0, report the storage set-up,
    # the join and the labels to come, change nothing.
    rc, recap, out = playbook("site.yml", "--check", "--diff", "--limit", NEW)
    assert rc == 0, out[-6000:]
    assert set(recap) == {NEW}, sorted(recap)
    assert recap[NEW]["changed"] > 0, out[-6000:]
    assert f"would join {NEW} to worker" in out, out[-6000:]
    assert f"Node {NEW} ({NEW}) does not exist yet" in out and "gpu-type=T4" in out, out[-6000:]
    assert NEW not in worker_nodes()
    assert on_machine(NEW, "findmnt", "-n", "/data/k8s").returncode != 0, "the dry run mounted storage"

    # One stage on the new machine only: storage, and nothing else (no join yet).
    rc, recap, out = playbook("site.yml", "--limit", NEW, "--tags", "storage")
    assert rc == 0, out[-6000:]
    assert set(recap) == {NEW} and recap[NEW]["changed"] > 0, out[-6000:]
    # (a role's argument validation is tagged `always` by Ansible: it is the only task of other roles)
    other = [line for line in out.splitlines() if line.startswith(("TASK [rancher_worker", "TASK [node_labels"))
             and "Validating arguments" not in line]
    assert not other, other
    assert "fuse.juicefs" in on_machine(NEW, "findmnt", "-n", "-o", "FSTYPE", "/data/k8s").stdout
    assert NEW not in worker_nodes()

    rc, recap, out = playbook("site.yml", "--limit", NEW)
    assert rc == 0, out[-6000:]
    assert set(recap) == {NEW}, f"tasks ran on other machines: {sorted(recap)}"
    assert recap[NEW]["changed"] > 0
    nodes = worker_nodes()
    assert ready(nodes[NEW]) and nodes[NEW].metadata.labels["gpu-type"] == "T4"
    # Nothing reached the other six Nodes' labels.
    assert {n: nodes[n].metadata.labels for n in names} == labels_before

    rc, recap, out = playbook("site.yml", "--check", "--diff")
    assert rc == 0, out[-6000:]
    assert all(r["changed"] == 0 for r in recap.values()), out[-6000:]

    # One stage on the whole fleet: a managed label removed by hand comes back with --tags labels,
    # and no other stage runs.
    core = k8s.CoreV1Api(clusters.api_client("worker"))
    core.patch_node("gpu-a100-1", {"metadata": {"labels": {"train": None}}})
    rc, recap, out = playbook("site.yml", "--tags", "labels")
    assert rc == 0, out[-6000:]
    other = [line for line in out.splitlines() if line.startswith(("TASK [data_storage", "TASK [rancher_worker"))
             and "Validating arguments" not in line]
    assert not other, other
    assert "TASK [node_labels" in out, out[-6000:]
    assert worker_nodes()["gpu-a100-1"].metadata.labels.get("train") == "true"

    rc, recap, out = playbook("playbooks/remove_node.yml", "--limit", NEW, "-e", "remove_node_confirm=true")
    assert rc == 0, out[-6000:]
    assert set(recap) <= {NEW, "localhost"}
    assert NEW not in worker_nodes()
    fleet.remove(NEW)
