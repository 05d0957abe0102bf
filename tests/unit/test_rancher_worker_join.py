"""roles/rancher_worker/tasks/join.yml on localhost with a stand-in installer (RKE1 flow: the plan's argv runs
as is): the registration token reaches the installer's environment and no process's command line while the
join runs; a failed join is reported with the token masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
JOIN = REPO / "roles/rancher_worker/tasks/join.yml"
TOKEN = "s3cr3t-registration-token-0123456789abcdef"

INSTALLER = """
import json, os, subprocess, sys
token = os.environ.get("CATTLE_TOKEN", "")
processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout.splitlines()
with open(sys.argv[1], "w") as fh:
    json.dump({"argv": sys.argv, "env_token": token,
               "processes_with_token": [p for p in processes if token and token in p]}, fh)
if sys.argv[2] == "fail":
    print(f"[ERROR] rejected the registration token {token}", file=sys.stderr)
    sys.exit(1)
"""


def run_join(tmp_path, outcome):
    installer = tmp_path / "installer.py"
    installer.write_text(INSTALLER)
    report = tmp_path / "report.json"
    play = [{
        "name": "join.yml with a stand-in installer",
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {
            "rancher_worker_flow": "rke1",
            "rancher_url": "https://rancher.invalid",
            "rancher_ca_checksum": "",
            "rancher_worker_http_proxy": "", "rancher_worker_https_proxy": "", "rancher_worker_no_proxy": "",
            "rancher_worker_state": {"join": {"argv": [sys.executable, str(installer), str(report), outcome],
                                              "env": {"CATTLE_TOKEN": TOKEN}}},
        },
        "tasks": [{"name": "Join", "ansible.builtin.include_tasks": str(JOIN)}],
    }]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(config), ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", "-vvv"],
        env=env, capture_output=True, text=True, timeout=180, check=False)
    return result, json.loads(report.read_text()) if report.exists() else None


def test_token_reaches_the_environment_and_no_command_line(tmp_path):
    result, report = run_join(tmp_path, "ok")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert report["env_token"] == TOKEN
    assert not any(TOKEN in arg for arg in report["argv"])
    assert report["processes_with_token"] == []  # not the installer's, not the module's, not the shell's
    assert TOKEN not in output  # not even in -vvv


def test_failed_join_is_reported_with_the_token_masked(tmp_path):
    result, report = run_join(tmp_path, "fail")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert report["env_token"] == TOKEN and report["processes_with_token"] == []
    assert "The registration of localhost failed (rc 1): [ERROR] rejected the registration token ********" in output
    assert TOKEN not in output


@pytest.mark.parametrize("path", [JOIN], ids=["join.yml"])
def test_no_task_passes_the_token_through_environment(path):
    """Ansible's `environment:` puts values on the remote shell's command line (VAR=value prefix)."""
    text = path.read_text()
    for task in yaml.safe_load(text)[0]["block"]:
        assert "CATTLE_TOKEN" not in json.dumps(task.get("environment", "")), task["name"]
