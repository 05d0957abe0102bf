"""The chain rides out an API server restart: the worker cluster's kube-apiserver is restarted
(unreachable ~5 s) while new machines are being bootstrapped; the run must finish with every machine
converged and no failure, because every Kubernetes and Rancher call of the chain retries
connection errors and 5xx/429 answers inside its own timeout.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest
from kubernetes import client as k8s
from labctl import clusters, fleet, paths

pytestmark = pytest.mark.lab
REPO = paths.REPO_ROOT
NEW = ["gpu-t4-fault", "cpu-fault"]
# The restart happens once the run reaches the join: from then on the chain talks to the worker
# API server (Node Ready waits, the label reconcile).
TRIGGER = "TASK [rancher_worker : Join the machine]"


@pytest.fixture
def new_machines():
    fleet.add(NEW[0], "T4", 2)
    fleet.add(NEW[1])
    yield NEW
    subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "inventory/lab",
                    "playbooks/remove_node.yml", "--limit", ",".join(NEW), "-e", "remove_node_confirm=true"],
                   cwd=REPO, capture_output=True, check=False, stdin=subprocess.DEVNULL,
                   env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")))
    for name in NEW:
        fleet.remove(name)


def test_bootstrap_survives_a_worker_apiserver_restart(new_machines):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="false")
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    # The bootstrap stages only: the device and SGLang stages' cluster sides are not what this test is about.
    run = subprocess.Popen([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "inventory/lab", "site.yml",
                            "--limit", ",".join(new_machines), "-e", '{"aicluster_gpu_stage_enabled": false, '
                            '"aicluster_npu_stage_enabled": false, "aicluster_sglang_stage_enabled": false, '
                            '"aicluster_kubeocean_stage_enabled": false, '
                            '"aicluster_inference_stage_enabled": false, '
                            '"aicluster_workspaces_stage_enabled": false}'],
                           cwd=REPO, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    lines: list[str] = []
    restarted = threading.Event()
    outage: dict = {}

    def restart_when_joining():
        deadline = time.monotonic() + 600
        while run.poll() is None and time.monotonic() < deadline:
            if any(TRIGGER in line for line in list(lines)):
                # SIGTERM, SIGKILL after 3 s (a graceful stop waits ~60 s on watches), start, /readyz:
                # the API is unreachable for about 5 s.
                outage.update(clusters.restart_apiserver("worker", stop_timeout=3, log=lambda _msg: None))
                restarted.set()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=restart_when_joining, daemon=True)
    watcher.start()
    for line in run.stdout:
        lines.append(line)
    rc = run.wait(timeout=900)
    watcher.join(timeout=120)
    out = "".join(lines)
    assert restarted.is_set(), "the run never reached the join: " + out[-4000:]
    assert outage["old_pid"] != outage["new_pid"] and outage["total_seconds"] < 30, outage
    assert rc == 0, out[-6000:]
    assert "failed=1" not in out and "unreachable=1" not in out, out[-6000:]

    api = clusters.api_client("worker")
    try:
        nodes = {n.metadata.name: n for n in k8s.CoreV1Api(api).list_node().items}
    finally:
        api.close()
    for name in new_machines:
        assert name in nodes, sorted(nodes)
        assert any(c.type == "Ready" and c.status == "True" for c in nodes[name].status.conditions)
        assert nodes[name].metadata.labels.get("org"), name
    assert nodes[NEW[0]].metadata.labels["gpu-type"] == "T4"
