"""The machines after the nvidia_container_toolkit role (testinfra, ansible backend, lab inventory).

NVIDIA machines: the four packages from the lab repository at the pinned version (held), the signed
source, the runtime binary. gpu-t4-1 (the scenario's RKE1 machine): daemon.json keeps the key the site
had (prepare.yml) and has the nvidia runtime, its restore record is private. Other machines: untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[5]
APT_STATE = REPO / "lab" / "state" / "repos" / "nvidia-apt.json"
APT = json.loads(APT_STATE.read_text()) if APT_STATE.is_file() else {}
PACKAGES = ["nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
            "libnvidia-container1"]
SOURCE = "/etc/apt/sources.list.d/nvidia-container-toolkit.list"
RECORD = "/var/lib/aicluster/nvidia-container-toolkit/daemon.json.record"


@pytest.fixture
def is_nvidia(host):
    return "nvidia_nodes" in host.ansible.get_variables().get("group_names", [])


def test_packages_at_the_pinned_version_and_held(host, is_nvidia):
    for name in PACKAGES:
        package = host.package(name)
        if not is_nvidia:
            assert not package.is_installed, name
            continue
        assert package.is_installed, name
        assert package.version == APT["version"], (name, package.version)
        assert host.check_output("dpkg-query -W -f='${db:Status-Want}' %s", name) == "hold", name


def test_source_is_the_signed_lab_repository(host, is_nvidia):
    source = host.file(SOURCE)
    if not is_nvidia:
        assert not source.exists
        return
    assert source.mode == 0o644 and source.user == "root"
    assert f"deb [signed-by={APT['keyring_path']}] {APT['url']} /" in source.content_string
    assert host.file(APT["keyring_path"]).sha256sum == APT["key_sha256"]


def test_runtime_binary_answers_with_the_pinned_release(host, is_nvidia):
    if not is_nvidia:
        pytest.skip("not an NVIDIA machine")
    out = host.check_output("nvidia-ctk --version")
    assert APT["version"].rsplit("-", 1)[0] in out
    assert host.file("/usr/bin/nvidia-container-runtime").is_file


def test_daemon_json_keeps_the_site_key_and_has_the_nvidia_runtime(host):
    if host.backend.get_hostname() != "gpu-t4-1":
        pytest.skip("only gpu-t4-1 plays an RKE1 machine in this scenario")
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["log-driver"] == "json-file"
    assert config["log-opts"] == {"max-size": "10m"}
    assert config["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime", "args": []}
    assert "default-runtime" not in config
    record = host.file(RECORD)
    assert record.mode == 0o600 and record.user == "root"
