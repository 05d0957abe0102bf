"""The machines after the ascend_docker_runtime role (testinfra, ansible backend, lab inventory).

Ascend machines: MindCluster's accounts with their ids (HwHiAiUser 1000:1000, hwMindX 9000:9000 in
HwHiAiUser's group), the log directories with the owners and modes of MindCluster's guide, the Ascend Docker
Runtime installed at the lab's pinned version by its own installer. npu-910b-1 (RKE2): the runtime in RKE2's
containerd template and RKE2's default-runtime drop-in. npu-910b-2 (the scenario's RKE1 machine): daemon.json
keeps the keys the site had (prepare.yml) and has the ascend runtime as the default; its restore record is
private. Other machines: untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[5]
STATE = REPO / "lab" / "state" / "repos" / "ascend-docker-runtime.json"
LAB = json.loads(STATE.read_text()) if STATE.is_file() else {}
VERSION = LAB.get("version", "26.1.0")
INSTALL = "/usr/local/Ascend/Ascend-Docker-Runtime"
RUNTIME = f"{INSTALL}/ascend-docker-runtime"
STATE_DIR = "/var/lib/aicluster/ascend-docker-runtime"
TEMPLATE = "/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl"
DROPIN = "/etc/rancher/rke2/config.yaml.d/90-aicluster-ascend-docker-runtime.yaml"
LOG_DIRS = {"/var/log/mindx-dl": 0o755, "/var/log/mindx-dl/devicePlugin": 0o750,
            "/var/log/mindx-dl/npu-exporter": 0o750, "/var/log/mindx-dl/noded": 0o750,
            "/var/log/mindx-dl/container-manager": 0o750}
RKE1 = "npu-910b-2"


@pytest.fixture
def is_ascend(host):
    return "ascend_nodes" in host.ansible.get_variables().get("group_names", [])


def install_info(host):
    text = host.file(f"{INSTALL}/ascend_docker_runtime_install.info").content_string
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_mindcluster_accounts_have_their_ids(host, is_ascend):
    driver, mindx = host.user("HwHiAiUser"), host.user("hwMindX")
    if not is_ascend:
        assert not driver.exists and not mindx.exists
        return
    assert (driver.uid, driver.gid, driver.group) == (1000, 1000, "HwHiAiUser")
    assert driver.home == "/home/HwHiAiUser" and driver.shell == "/bin/bash"
    assert host.group("HwHiAiUser").gid == 1000
    assert (mindx.uid, mindx.gid, mindx.group) == (9000, 9000, "hwMindX")
    assert "HwHiAiUser" in mindx.groups and mindx.shell == "/usr/sbin/nologin"
    assert host.group("hwMindX").gid == 9000


def test_log_directories_have_the_guide_s_owners_and_modes(host, is_ascend):
    for path, mode in LOG_DIRS.items():
        directory = host.file(path)
        if not is_ascend:
            assert not directory.exists, path
            continue
        assert directory.is_directory, path
        assert (directory.user, directory.group, directory.mode) == ("root", "root", mode), path


def test_runtime_installed_at_the_pinned_version_by_its_installer(host, is_ascend):
    if not is_ascend:
        assert not host.file(INSTALL).exists
        return
    info = install_info(host)
    assert info["version"] == f"v{VERSION}"
    assert info["install-scene"] == ("docker" if host.backend.get_hostname() == RKE1 else "containerd")
    # the installer's own edit went to the role's scratch file, never to the real configuration
    assert info["config-file-path"].startswith(f"{STATE_DIR}/installer/")
    runtime = host.file(RUNTIME)
    assert runtime.is_file and runtime.user == "root" and runtime.mode == 0o550
    assert host.file("/etc/ascend-docker-runtime.d/base.list").is_file
    assert host.file(f"{INSTALL}/script/uninstall.sh").is_file


def test_rke2_containerd_template_and_default_runtime(host, is_ascend):
    if not is_ascend or host.backend.get_hostname() == RKE1:
        pytest.skip("only npu-910b-1 plays an RKE2 machine in this scenario")
    template = host.file(TEMPLATE).content_string
    assert template.index('{{ template "base" . }}') < template.index("# BEGIN aicluster ascend_docker_runtime")
    assert '.containerd.runtimes."ascend"]' in template
    assert '  runtime_type = "io.containerd.runc.v2"' in template
    assert f'  BinaryName = "{RUNTIME}"' in template
    assert "  SystemdCgroup = {{ .SystemdCgroup }}" in template
    assert "default-runtime: ascend" in host.file(DROPIN).content_string.splitlines()


def test_daemon_json_keeps_the_site_key_and_has_the_ascend_runtime(host):
    if host.backend.get_hostname() != RKE1:
        pytest.skip("only npu-910b-2 plays an RKE1 machine in this scenario")
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["log-driver"] == "json-file"
    assert config["log-opts"] == {"max-size": "10m"}
    assert config["runtimes"]["ascend"] == {"path": RUNTIME, "runtimeArgs": []}
    assert config["default-runtime"] == "ascend"
    record = host.file(f"{STATE_DIR}/daemon.json.record")
    assert record.mode == 0o600 and record.user == "root"
    assert not host.file(TEMPLATE).exists


def test_the_role_s_record_is_private(host, is_ascend):
    state, record = host.file(STATE_DIR), host.file(f"{STATE_DIR}/created.json")
    if not is_ascend:
        assert not state.exists
        return
    assert state.mode == 0o700 and record.mode == 0o600 and record.user == "root"
    created = json.loads(record.content_string)
    assert created["runtime"] is True
    assert {"HwHiAiUser", "hwMindX"} <= set(created["users"])
    assert "/var/log/mindx-dl" in created["log_dirs"]
