"""meta/runtime.yml's action group: module_defaults for group/aicluster.platform.rancher give the Rancher
connection once to every Rancher module (ansible-playbook on localhost against the in-process stand-in)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from labctl.rancher.testing import InProcessStandIn

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "collections/ansible_collections/aicluster/platform/meta/runtime.yml"


def test_runtime_declares_the_rancher_group():
    runtime = yaml.safe_load(RUNTIME.read_text())
    assert runtime["action_groups"]["rancher"] == ["rancher_registration", "rancher_node", "rancher_cluster_config"]


def test_module_defaults_give_the_connection_once(tmp_path):
    with InProcessStandIn(tmp_path / "rancher") as rancher:
        play = [{
            "name": "Rancher modules with the connection from module_defaults",
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {"group/aicluster.platform.rancher": {
                "url": rancher.url, "api_token": rancher.api_token, "ca_checksum": rancher.ca_checksum}},
            "tasks": [
                {"name": "Registration", "aicluster.platform.rancher_registration": {
                    "cluster_name": "worker", "create_token": False}, "register": "reg", "no_log": True},
                {"name": "Cluster config (check mode)", "aicluster.platform.rancher_cluster_config": {
                    "cluster_name": "worker-rke1", "kubelet_extra_binds": ["/data/k8s:/data/k8s"]},
                 "check_mode": True, "register": "binds"},
                {"name": "Node removal (nothing to remove)", "aicluster.platform.rancher_node": {
                    "cluster_name": "worker", "machines": [{"name": "gone", "node_name": "gone"}]},
                 "register": "removed"},
                {"name": "All three reached Rancher", "ansible.builtin.assert": {"that": [
                    f"reg.cluster_id == '{rancher.clusters['worker']}'",
                    f"binds.cluster_id == '{rancher.clusters['worker-rke1']}'",
                    "binds.added == ['/data/k8s:/data/k8s']",
                    "removed.removed == []"]}},
            ],
        }]
        playbook = tmp_path / "play.yml"
        playbook.write_text(yaml.safe_dump(play, sort_keys=False))
        config = tmp_path / "ansible.cfg"
        config.write_text("[defaults]\n")
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"), ANSIBLE_CONFIG=str(config),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
        result = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", "localhost,", "-c", "local",
             "-e", f"ansible_python_interpreter={sys.executable}"],
            env=env, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert rancher.api_token not in result.stdout
