"""Shared by the rancher_worker integration tests: run the role / removal playbook against the lab."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

from labctl import paths

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
INVENTORY = ROOT / "inventory" / "lab"
RANCHER_DIR = paths.STATE_DIR / "rancher"
# Two machines of the demo fleet; override (comma-separated) to run on machines added with `lab fleet add`.
TEST_HOSTS = os.environ.get("RANCHER_WORKER_TEST_HOSTS", "gpu-t4-1,cpu-1").split(",")

PLAYBOOK = """---
- name: rancher_worker under test
  hosts: lab_fleet
  gather_facts: false
  roles:
    - role: rancher_worker
      vars:
        rancher_worker_labels: {aicluster.io/pool: inference, aicluster.io/joined-by: integration-test}
        rancher_worker_ready_timeout: 90
"""


def env() -> dict:
    e = dict(os.environ)
    e.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="false", ANSIBLE_NOCOLOR="1",
             PATH=f"{BIN}{os.pathsep}{e.get('PATH', '')}")
    return e


def run_playbook(tmp_path: Path, playbook: Path | str, limit: list[str], extra: dict | None = None,
                 stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    if isinstance(playbook, str):
        path = tmp_path / "play.yml"
        path.write_text(playbook)
        playbook = path
    vars_file = tmp_path / "extra-vars.json"
    fd = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(extra or {}, fh)
    cmd = [str(BIN / "ansible-playbook"), str(playbook), "-i", str(INVENTORY), "--limit", ",".join(limit),
           "-e", f"@{vars_file}"]
    return subprocess.run(cmd, cwd=ROOT, env=env(), stdin=stdin, capture_output=True, text=True, timeout=900,
                          check=False)


def recap(output: str) -> dict[str, dict[str, int]]:
    """Per host {ok, changed, failed, ...} from the PLAY RECAP."""
    out = {}
    in_recap = False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if in_recap and ":" in line and "=" in line:
            host, _, rest = line.partition(":")
            out[host.strip()] = {k: int(v) for k, v in (p.split("=") for p in rest.split())}
        elif in_recap and not line.strip():
            in_recap = False
    return out


def rancher() -> dict:
    conn = json.loads((RANCHER_DIR / "connection.json").read_text())
    conn["token"] = (RANCHER_DIR / "api-token").read_text().strip()
    return conn


def rancher_get(path: str):
    conn = rancher()
    req = urllib.request.Request(conn["url"] + path, headers={"Authorization": f"Bearer {conn['token']}"})
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=conn["ca_path"]), timeout=15) as r:
        return json.loads(r.read())


def rancher_nodes(cluster: str = "worker") -> dict[str, dict]:
    cid = rancher()["clusters"][cluster]
    return {n["nodeName"]: n for n in rancher_get(f"/v3/nodes?clusterId={cid}")["data"]}


def on_hosts(hosts: list[str], argv: str) -> subprocess.CompletedProcess:
    """Run a command on lab machines (ansible ad hoc, the inventory's SSH settings); its rc is not checked."""
    cmd = [str(BIN / "ansible"), ",".join(hosts), "-i", str(INVENTORY), "-o", "-m", "ansible.builtin.command",
           "-a", argv]
    return subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120, check=False)


def registration_tokens(cluster: str = "worker") -> list[str]:
    cid = rancher()["clusters"][cluster]
    return [t["token"] for t in rancher_get(f"/v3/clusterregistrationtokens?clusterId={cid}")["data"] if t.get("token")]


def agent_states(hosts: list[str], unit: str = "rancher-system-agent") -> dict[str, str]:
    """`systemctl is-active <unit>` on each host (through Ansible, the inventory's SSH settings)."""
    cmd = [str(BIN / "ansible"), ",".join(hosts), "-i", str(INVENTORY), "-o", "-m", "ansible.builtin.command",
           "-a", f"systemctl is-active {unit}"]
    out = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120, check=False).stdout
    states = {}
    for line in out.splitlines():
        for host in hosts:
            if line.startswith(f"{host} |"):
                states[host] = line.rsplit("(stdout)", 1)[-1].strip().split()[0] if "(stdout)" in line else "?"
    return states


def remove(tmp_path: Path, hosts: list[str], cluster: str = "worker") -> subprocess.CompletedProcess:
    """playbooks/remove_node.yml on the hosts. The fleet's /data/k8s belongs to the data_storage
    role (and its tests), not to these: the storage step is switched off."""
    return run_playbook(tmp_path, ROOT / "playbooks" / "remove_node.yml", hosts,
                        {"remove_node_group": "lab_fleet", "remove_node_confirm": True,
                         "rancher_cluster_name": cluster, "node_removal_storage_units": [],
                         "node_removal_storage_path": ""})
