"""Bad input to the node_labels role fails the run with a message naming the host and the variable,
and writes nothing to any Node of the worker cluster.

Each case runs the node_labels Molecule converge playbook (accelerator_facts + node_labels on the
lab fleet) with one bad per-host value given as a per-host templated extra var, while every other
host gets a valid value that *would* change its Node (a probe label), so that a partial write
would show.  The fleet's Nodes are created first by the scenario's prepare playbook (and the ones
it created are deleted afterwards by its cleanup playbook).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from labctl import clusters

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "roles" / "node_labels" / "molecule" / "default"
FLEET = ["gpu-a100-1", "gpu-a100-2", "gpu-t4-1", "npu-910b-1", "npu-910b-2", "cpu-1"]
PROBE = "{'aicluster-probe': 'yes'}"


def per_host(host: str, bad: str, otherwise: str) -> str:
    """A Jinja template giving ``bad`` on ``host`` and ``otherwise`` elsewhere."""
    return f"{{{{ {bad} if inventory_hostname == '{host}' else {otherwise} }}}}"


# (case id, variable, host, bad value (Jinja), valid value elsewhere (Jinja), expected message parts)
CASES = [
    ("bad-label-key", "node_labels_extra", "gpu-a100-1", "{'bad key': 'x'}", PROBE,
     ["host gpu-a100-1: node_labels_extra: label 'bad key'", "name part 'bad key' must consist of"]),
    ("bad-label-value", "node_labels_gpu_type", "gpu-t4-1", "'T4 16GB'", "none",
     ["host gpu-t4-1: node_labels_gpu_type: value 'T4 16GB' must be empty or consist of"]),
    ("unknown-scheme", "node_labels_schemes", "npu-910b-1", "['cube-studio', 'volcano']",
     "['cube-studio', 'mindcluster', 'nvidia']",
     ["host npu-910b-1: node_labels_schemes: unknown label scheme(s) ['volcano']"]),
    ("bad-org", "node_labels_org", "cpu-1", "'Team A'", "'public'",
     ["host cpu-1: node_labels_org: value 'Team A' must be empty or consist of"]),
    ("unknown-role", "node_labels_roles", "gpu-a100-2", "['train', 'inference']", "['train', 'service']",
     ["host gpu-a100-2: node_labels_roles: unknown cube-studio role(s) ['inference']"]),
    ("not-a-boolean", "node_labels_share", "gpu-a100-1", "'sometimes'", "false",
     ["host gpu-a100-1: node_labels_share: must be a boolean (true/false), got 'sometimes'"]),
    ("duplicate-node", "node_labels_node_name", "gpu-a100-2", "'gpu-a100-1'", "inventory_hostname",
     ["host gpu-a100-2: node_labels_node_name: Node 'gpu-a100-1' is already the Node of host gpu-a100-1"]),
    ("node-missing", "node_labels_node_name", "npu-910b-2", "'npu-910b-9'", "inventory_hostname",
     ["cluster worker: Nodes not found in the cluster, nothing written: npu-910b-9 (host npu-910b-2;"]),
]


def playbook(name: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env.update({
        "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_FORCE_COLOR": "false",
        "ANSIBLE_NOCOLOR": "true",
    })
    return subprocess.run(
        [str(Path(venv_bin) / "ansible-playbook"), "-i", str(ROOT / "inventory" / "lab"), str(SCENARIO / name), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )


@pytest.fixture(scope="module")
def fleet_nodes():
    """The fleet's Nodes exist in the worker cluster (prepare), and are converged once."""
    if not clusters_up():
        pytest.fail("lab cluster worker is not up: run `lab up` (the test command does)")
    prepared = playbook("prepare.yml")
    assert prepared.returncode == 0, prepared.stdout[-3000:]
    try:
        converged = playbook("converge.yml")
        assert converged.returncode == 0, converged.stdout[-3000:]
        yield
    finally:
        cleaned = playbook("cleanup.yml")
        assert cleaned.returncode == 0, cleaned.stdout[-3000:]


def clusters_up() -> bool:
    from labctl import paths

    return paths.kubeconfig_path("worker").is_file()


def node_metadata() -> dict:
    from kubernetes import client as k8s

    api = clusters.api_client("worker")
    try:
        nodes = k8s.CoreV1Api(api).list_node(_request_timeout=10).items
    finally:
        api.close()
    return {
        node.metadata.name: (dict(node.metadata.labels or {}), dict(node.metadata.annotations or {}))
        for node in nodes if node.metadata.name in FLEET
    }


@pytest.mark.parametrize(("case", "variable", "host", "bad", "otherwise", "expected"), CASES,
                         ids=[case[0] for case in CASES])
def test_bad_input_fails_naming_host_and_variable_and_writes_nothing(
        fleet_nodes, case, variable, host, bad, otherwise, expected):
    before = node_metadata()
    assert sorted(before) == sorted(FLEET)
    extra = {variable: per_host(host, bad, otherwise)}
    if variable != "node_labels_extra":
        extra["node_labels_extra"] = f"{{{{ {PROBE} }}}}"  # every Node would change if anything were written
    result = playbook("converge.yml", "-e", json.dumps(extra))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    for part in expected:
        assert part in output, f"{part!r} not in:\n{output[-3000:]}"
    assert "nothing written" in output
    after = node_metadata()
    assert after == before, "a Node was written despite the bad input"
    assert not any("aicluster-probe" in labels for labels, _ in after.values())
