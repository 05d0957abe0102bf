"""The GPU stage (playbooks/gpu.yml, issue 10) against the lab: first run, converged re-run, --check,
the bad-input table of both roles, Docker's daemon.json on an RKE1 machine, and the removal.

Needs `lab up` (the toolkit's apt repository and the chart repository on the lab mirror, the
device-manager + GFD stand-in for `worker`) on the demo fleet. The module fixture converges site.yml
(the machines joined, their Nodes labelled, whatever state earlier tests left), removes the stage, then
runs the stage alone twice from there, timed: a first install and a converged re-run (the figures are
printed as JSON).

Tests run in file order and share the lab: the removal test comes last and leaves the stage removed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from stage_runner import (
    adhoc,
    assert_refused,
    changed_tasks,
    failures,
    install_stage_twice,
    playbook,
    shell,
    task_ran,
    total_changed,
    wait_for,
)

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / "lab" / "state" / "repos"
GPU_NODES = {"gpu-a100-1": 8, "gpu-a100-2": 8, "gpu-t4-1": 2}
OTHER_NODES = ["npu-910b-1", "npu-910b-2", "cpu-1"]
HOST = "gpu-a100-1"
RKE1_HOST = "gpu-t4-1"
NAMESPACE = "nvidia-device-plugin"
GPU = "nvidia.com/gpu"
ABSENT = {"nvidia_device_plugin_state": "absent", "nvidia_container_toolkit_state": "absent"}


def core():
    from kubernetes import client as k8s
    from labctl import clusters

    return k8s.CoreV1Api(clusters.api_client("worker"))


def capacity() -> dict[str, str]:
    return {n.metadata.name: (n.status.capacity or {}).get(GPU, "0") for n in core().list_node().items}


def release_revisions(name: str) -> int:
    """How many revisions Helm has stored for a release (its Secrets): unchanged means nothing installed."""
    secrets = core().list_namespaced_secret(NAMESPACE, label_selector=f"owner=helm,name={name}").items
    return len(secrets)


@pytest.fixture(scope="module")
def figures():
    if not (STATE / "nvidia-apt.json").is_file() or not (STATE / "charts.json").is_file():
        pytest.fail("the lab's device-support fixtures are not published: run `lab up`")
    return install_stage_twice("gpu", ABSENT)


# ------------------------------------------------------------------ converged stage


def test_first_run_succeeds_and_gpus_are_advertised(figures):
    first = figures["first"]
    assert first["_rc"] == 0, failures(first)
    assert total_changed(first) > 0
    caps = wait_for(lambda: (c := capacity()) and all(c.get(n) == str(v) for n, v in GPU_NODES.items()) and c)
    assert caps, f"GPU capacity not advertised: {capacity()}"
    assert all(caps.get(n, "0") == "0" for n in OTHER_NODES), caps


def test_device_plugin_pods_only_on_gpu_nodes(figures):
    pods = core().list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/name=nvidia-device-plugin").items
    plugin = sorted(p.spec.node_name for p in pods
                    if any(c.name == "nvidia-device-plugin-ctr" for c in p.spec.containers))
    assert plugin == sorted(GPU_NODES), plugin


def test_second_run_changes_nothing(figures):
    second = figures["second"]
    assert second["_rc"] == 0, failures(second)
    assert total_changed(second) == 0, changed_tasks(second)


def test_check_mode_changes_nothing_and_reports_nothing(figures):
    before = release_revisions("nvdp")
    out = playbook("site.yml", None, "--tags", "gpu", "--check", "--diff")
    assert out["_rc"] == 0, failures(out)
    assert total_changed(out) == 0, changed_tasks(out)
    assert release_revisions("nvdp") == before


def test_toolkit_packages_at_the_pinned_version(figures):
    pinned = json.loads((STATE / "nvidia-apt.json").read_text())["version"]
    out = shell(HOST, "dpkg-query -W -f=${Version} nvidia-container-toolkit")
    assert out.strip() == pinned


# ------------------------------------------------------------------ bad input: machine side


def toolkit(extra: dict, *args: str, limit: str = HOST) -> dict:
    return playbook("playbooks/gpu.yml", extra, "--tags", "nvidia_container_toolkit", "--limit", limit, *args)


def test_driver_missing_is_refused(figures):
    out = toolkit({"nvidia_container_toolkit_nvidia_smi": "/nonexistent/nvidia-smi"})
    assert_refused(out, "the NVIDIA driver is missing or not working", HOST)
    assert_refused(out, "install the NVIDIA driver >= 535.54.03 first", HOST)


def test_driver_too_old_is_refused(figures):
    out = toolkit({"nvidia_container_toolkit_driver_min_version": "999.0"})
    assert_refused(out, "is older than nvidia_container_toolkit_driver_min_version 999.0", HOST)


def test_repository_key_with_the_wrong_checksum_is_refused(figures):
    keyring = json.loads((STATE / "nvidia-apt.json").read_text())["keyring_path"]
    before = shell(HOST, f"sha256sum {keyring}")
    out = toolkit({"nvidia_container_toolkit_key_checksum": "sha256:" + "0" * 64})
    assert_refused(out, "did not match", HOST)
    assert shell(HOST, f"sha256sum {keyring}") == before


def test_malformed_key_checksum_is_refused(figures):
    out = toolkit({"nvidia_container_toolkit_key_checksum": "deadbeef"})
    assert_refused(out, "nvidia_container_toolkit_key_checksum must be 'sha256:<64 hex digits>'", HOST)


# ------------------------------------------------------------------ bad input: cluster side


def device_plugin(extra: dict, *args: str) -> dict:
    return playbook("playbooks/gpu.yml", extra, "--tags", "nvidia_device_plugin", "--limit", HOST, *args)


@pytest.mark.parametrize(("extra", "message"), [
    ({"nvidia_device_plugin_time_slicing_replicas": 1},
     "config default.sharing.timeSlicing.resources[0]: number of replicas must be >= 2 (got 1)"),
    ({"nvidia_device_plugin_mig_strategy": "full"},
     "value of nvidia_device_plugin_mig_strategy must be one of: none, single, mixed, got: full"),
    ({"nvidia_device_plugin_configs": {"a100": {"version": "v1", "flags": {"migStrategy": "full"}}}},
     "config a100.flags.migStrategy: unknown MIG strategy: full"),
    ({"nvidia_device_plugin_chart_version": "9.9.9"},
     "chart nvidia-device-plugin version 9.9.9 is not in the repository"),
    ({"nvidia_device_plugin_dcgm_exporter_chart_version": "0.0.1"},
     "chart dcgm-exporter version 0.0.1 is not in the repository"),
], ids=["replicas-1", "mig-strategy", "mig-strategy-in-config", "plugin-chart-version", "dcgm-chart-version"])
def test_cluster_side_bad_input_is_refused_before_anything_is_installed(figures, extra, message):
    before = {name: release_revisions(name) for name in ("nvdp", "dcgm-exporter")}
    out = device_plugin(extra)
    assert_refused(out, message, HOST)
    assert {name: release_revisions(name) for name in ("nvdp", "dcgm-exporter")} == before


# ------------------------------------------------------------------ RKE1: daemon.json


SITE_DAEMON_JSON = {"log-driver": "json-file", "log-opts": {"max-size": "10m"}}


def daemon_json(host: str = RKE1_HOST) -> dict:
    return json.loads(shell(host, "cat /etc/docker/daemon.json"))


def test_rke1_daemon_json_merged_docker_restarted_only_on_change_and_restored(figures):
    mkdir = adhoc(RKE1_HOST, "ansible.builtin.file", "path=/etc/docker state=directory mode=0755")
    assert mkdir.returncode == 0, mkdir.stdout
    copy = adhoc(RKE1_HOST, "ansible.builtin.copy",
                 f"dest=/etc/docker/daemon.json mode=0644 content='{json.dumps(SITE_DAEMON_JSON)}'")
    assert copy.returncode == 0, copy.stdout
    rke1 = {"nvidia_container_toolkit_flow": "rke1"}

    first = toolkit(rke1, limit=RKE1_HOST)
    assert first["_rc"] == 0, failures(first)
    merged = daemon_json()
    assert merged["log-driver"] == "json-file" and merged["log-opts"] == {"max-size": "10m"}
    assert merged["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime", "args": []}
    assert task_ran(first, "Restart Docker") or "Restart Docker" in json.dumps(first["plays"])

    again = toolkit(rke1, limit=RKE1_HOST)
    assert again["_rc"] == 0 and total_changed(again) == 0, changed_tasks(again)
    assert "Restart Docker" not in json.dumps(again["plays"])

    check = toolkit({**rke1, "nvidia_container_toolkit_docker_default_runtime": True}, "--check", "--diff",
                    limit=RKE1_HOST)
    assert check["_rc"] == 0 and total_changed(check) == 1, changed_tasks(check)
    assert "default-runtime" not in daemon_json()

    gone = toolkit({**rke1, "nvidia_container_toolkit_state": "absent",
                    "nvidia_container_toolkit_remove_packages": False}, limit=RKE1_HOST)
    assert gone["_rc"] == 0, failures(gone)
    assert daemon_json() == SITE_DAEMON_JSON

    back = toolkit({}, limit=RKE1_HOST)  # the lab machine is rke2 again, as the rest of the stage
    assert back["_rc"] == 0, failures(back)


# ------------------------------------------------------------------ removal (last: leaves the stage removed)


def test_removal_takes_capacity_pods_and_runtime_class_away(figures):
    out = playbook("playbooks/gpu.yml", ABSENT)
    assert out["_rc"] == 0, failures(out)
    caps = wait_for(lambda: (c := capacity()) and all(c.get(n, "0") == "0" for n in GPU_NODES) and c)
    assert caps, f"GPU capacity still advertised after the removal: {capacity()}"
    from kubernetes import client as k8s
    from labctl import clusters

    node_api = k8s.NodeV1Api(clusters.api_client("worker"))
    assert [rc.metadata.name for rc in node_api.list_runtime_class().items if rc.metadata.name == "nvidia"] == []
    status = adhoc(HOST, "ansible.builtin.command", "dpkg-query -W -f=${db:Status-Abbrev} nvidia-container-toolkit")
    assert not re.search(r">>\s*ii", status.stdout), status.stdout  # removed ("rc") or never there (rc 1)
    again = playbook("playbooks/gpu.yml", ABSENT)
    assert again["_rc"] == 0 and total_changed(again) == 0, changed_tasks(again)
