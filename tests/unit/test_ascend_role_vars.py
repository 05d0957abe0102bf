"""The ascend_docker_runtime role's derived values (vars/main.yml), rendered by Ansible itself on localhost with
the role defaults (no machine): the installer's scene and scratch file, the daemon.json settings, what the role
records before it creates it, the accounts, and the lab inventory's wiring of the lab's release package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_gpu_role_vars import render

REPO = Path(__file__).resolve().parents[2]
BIN = "/usr/local/Ascend/Ascend-Docker-Runtime/ascend-docker-runtime"
NAMES = ["__ascend_docker_runtime_scene", "__ascend_docker_runtime_sink", "__ascend_docker_runtime_docker_settings",
         "__ascend_docker_runtime_candidates", "__ascend_docker_runtime_accounts", "__ascend_docker_runtime_checksum",
         "__ascend_docker_runtime_package", "__ascend_docker_runtime_binary", "__ascend_docker_runtime_uids"]
URL = "http://10.77.0.1:8380/ascend/mind-cluster/releases/download/v26.1.0/Ascend-docker-runtime_26.1.0_linux-x86_64.run"


def test_rke1_installer_scene_daemon_json_settings_and_accounts(tmp_path):
    got = render(tmp_path, "ascend_docker_runtime", NAMES, {
        "ascend_docker_runtime_flow": "rke1", "ascend_docker_runtime_package_url": URL,
        "ascend_docker_runtime_package_sha256": "SHA256:" + "AB" * 32})
    assert got["__ascend_docker_runtime_scene"] == "docker"
    assert got["__ascend_docker_runtime_sink"] == "/var/lib/aicluster/ascend-docker-runtime/installer/daemon.json"
    assert got["__ascend_docker_runtime_docker_settings"] == [
        {"path": ["runtimes", "ascend"], "value": {"path": BIN, "runtimeArgs": []}},
        {"path": ["default-runtime"], "value": "ascend"}]
    # Docker's flow makes no RKE2 file, so none is recorded
    assert got["__ascend_docker_runtime_candidates"]["files"] == []
    assert got["__ascend_docker_runtime_candidates"]["dirs"] == []
    assert got["__ascend_docker_runtime_checksum"] == "sha256:" + "ab" * 32
    assert got["__ascend_docker_runtime_package"] == (
        "/var/lib/aicluster/ascend-docker-runtime/Ascend-docker-runtime_26.1.0_linux-x86_64.run")
    accounts = got["__ascend_docker_runtime_accounts"]
    assert [(a["user"], int(a["uid"]), a["group"], int(a["gid"]), a["groups"]) for a in accounts] == [
        ("HwHiAiUser", 1000, "HwHiAiUser", 1000, []), ("hwMindX", 9000, "hwMindX", 9000, ["HwHiAiUser"])]
    assert {k: int(v) for k, v in got["__ascend_docker_runtime_uids"].items()} == {"HwHiAiUser": 1000, "hwMindX": 9000}


def test_rke2_records_the_template_and_drop_in_and_a_custom_install_path(tmp_path):
    got = render(tmp_path, "ascend_docker_runtime", NAMES, {
        "ascend_docker_runtime_flow": "rke2", "ascend_docker_runtime_install_path": "/opt/ascend/",
        "ascend_docker_runtime_default_runtime": False})
    assert got["__ascend_docker_runtime_scene"] == "containerd"
    assert got["__ascend_docker_runtime_sink"].endswith("/installer/config.toml")
    assert got["__ascend_docker_runtime_binary"] == "/opt/ascend/Ascend-Docker-Runtime/ascend-docker-runtime"
    assert got["__ascend_docker_runtime_docker_settings"] == [
        {"path": ["runtimes", "ascend"],
         "value": {"path": "/opt/ascend/Ascend-Docker-Runtime/ascend-docker-runtime", "runtimeArgs": []}}]
    candidates = got["__ascend_docker_runtime_candidates"]
    assert candidates["files"] == ["/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl"]
    assert candidates["dirs"] == ["/var/lib/rancher/rke2/agent/etc/containerd"]
    assert candidates["log_dirs"][0] == "/var/log/mindx-dl" and len(candidates["log_dirs"]) == 5
    assert candidates["users"] == ["HwHiAiUser", "hwMindX"]


def test_lab_inventory_reads_the_lab_package(tmp_path):
    """inventory/lab/group_vars/all/npu.yml against a lab state written as `lab up` writes it: the release
    of the stage's MindCluster version (aicluster_mindcluster_version), not the lab's pinned one."""
    inventory = tmp_path / "lab"
    shutil.copytree(REPO / "inventory" / "lab" / "group_vars", inventory / "group_vars")
    (inventory / "hosts.yml").write_text("all:\n  hosts:\n    localhost: {ansible_connection: local}\n")
    state = tmp_path / "state" / "repos"
    state.mkdir(parents=True)
    old = URL.replace("26.1.0", "26.0.1")
    (state / "ascend-docker-runtime.json").write_text(json.dumps({
        "url": URL, "sha256": "cd" * 32, "version": "26.1.0",
        "filename": "Ascend-docker-runtime_26.1.0_linux-x86_64.run",
        "versions": {
            "26.1.0": {"url": URL, "sha256": "cd" * 32, "version": "26.1.0",
                       "filename": "Ascend-docker-runtime_26.1.0_linux-x86_64.run"},
            "26.0.1": {"url": old, "sha256": "ab" * 32, "version": "26.0.1",
                       "filename": "Ascend-docker-runtime_26.0.1_linux-x86_64.run"}}}))
    names = ["ascend_docker_runtime_package_url", "ascend_docker_runtime_package_sha256",
             "ascend_docker_runtime_version", "ascend_docker_runtime_package_filename"]
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible"), "-i", str(inventory), "localhost",
                           "-e", f"aicluster_lab_state={tmp_path / 'state'}", "-m", "debug",
                           "-a", "msg={{ [" + ", ".join(names) + "] }}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    start = proc.stdout.index("{")
    out, _ = json.JSONDecoder().raw_decode(proc.stdout[start:])
    values = out["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert values == [old, "ab" * 32, "26.0.1", "Ascend-docker-runtime_26.0.1_linux-x86_64.run"]
