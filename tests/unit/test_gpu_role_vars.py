"""The GPU stage roles' derived values (vars/main.yml), rendered by Ansible itself on localhost with the
role defaults (no machine, no cluster): the apt source line, the pins, the daemon.json settings, the
device plugin chart's values with a validated config.map, and the refusal of bad time-slicing input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"


def render(tmp_path: Path, role: str, names: list[str], extra: dict) -> dict:
    """Each of ``names`` as Ansible templates it with the role's defaults and vars plus ``extra``."""
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars_files": [str(REPO / "roles" / role / "defaults" / "main.yml"),
                            str(REPO / "roles" / role / "vars" / "main.yml")],
             "tasks": [{"name": name, "ansible.builtin.debug": {"var": name}} for name in names]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "-e", json.dumps(extra),
                           str(tmp_path / "play.yml")], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert "{" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    start = 0 if proc.stdout.startswith("{") else proc.stdout.index("\n{\n") + 1
    out, _ = json.JSONDecoder().raw_decode(proc.stdout[start:])
    values = {}
    for task in out["plays"][0]["tasks"]:
        result = task["hosts"]["localhost"]
        values[task["task"]["name"]] = result.get(task["task"]["name"], result.get("msg"))
    return values


def test_toolkit_source_pins_and_docker_settings(tmp_path):
    got = render(tmp_path, "nvidia_container_toolkit",
                 ["__nvidia_container_toolkit_apt_source", "__nvidia_container_toolkit_pins",
                  "__nvidia_container_toolkit_docker_settings"],
                 {"nvidia_container_toolkit_version": "1.20.0-1",
                  "nvidia_container_toolkit_package_versions": {"libnvidia-container1": "1.20.0-2"},
                  "nvidia_container_toolkit_docker_default_runtime": True,
                  "nvidia_container_toolkit_apt_keyring": "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg",
                  "nvidia_container_toolkit_repo_base_url": "http://10.77.0.1:8380/nvidia/libnvidia-container"})
    assert got["__nvidia_container_toolkit_apt_source"].splitlines()[1] == (
        "deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] "
        "http://10.77.0.1:8380/nvidia/libnvidia-container/stable/deb/$(ARCH) /")
    assert got["__nvidia_container_toolkit_pins"] == {
        "nvidia-container-toolkit": "1.20.0-1", "nvidia-container-toolkit-base": "1.20.0-1",
        "libnvidia-container-tools": "1.20.0-1", "libnvidia-container1": "1.20.0-2"}
    assert got["__nvidia_container_toolkit_docker_settings"] == [
        {"path": ["runtimes", "nvidia"], "value": {"path": "nvidia-container-runtime", "args": []}},
        {"path": ["default-runtime"], "value": "nvidia"}]


def test_device_plugin_chart_values(tmp_path):
    ts4 = {"version": "v1", "sharing": {"timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}}
    got = render(tmp_path, "nvidia_device_plugin",
                 ["__nvidia_device_plugin_values", "__nvidia_device_plugin_config_problems"],
                 {"nvidia_device_plugin_time_slicing_replicas": 2, "nvidia_device_plugin_configs": {"ts4": ts4},
                  "nvidia_device_plugin_image_registry": "registry.example/nvidia",
                  "nvidia_device_plugin_servicemonitor_crd": {"resources": []}})
    values = got["__nvidia_device_plugin_values"]
    assert got["__nvidia_device_plugin_config_problems"] == []
    assert values["runtimeClassName"] == "nvidia" and values["migStrategy"] == "none"
    assert values["gfd"] == {"enabled": True} and values["nfd"] == {"enabled": True}
    assert values["image"] == {"repository": "registry.example/nvidia/k8s-device-plugin"}
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}]
    assert values["config"]["default"] == "default"
    assert yaml.safe_load(values["config"]["map"]["ts4"]) == ts4
    default = yaml.safe_load(values["config"]["map"]["default"])
    assert default["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 2}]


@pytest.mark.parametrize(("extra", "problem"), [
    ({"nvidia_device_plugin_time_slicing_replicas": 1}, "number of replicas must be >= 2 (got 1)"),
    ({"nvidia_device_plugin_configs": {"x": {"flags": {"migStrategy": "all"}}}}, "unknown MIG strategy: all"),
    ({"nvidia_device_plugin_default_config": "Bad Name!"}, "must be a label value"),
])
def test_device_plugin_config_problems(tmp_path, extra, problem):
    got = render(tmp_path, "nvidia_device_plugin", ["__nvidia_device_plugin_config_problems"], extra)
    assert any(problem in p for p in got["__nvidia_device_plugin_config_problems"]), got
