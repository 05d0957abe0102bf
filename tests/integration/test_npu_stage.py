"""The NPU stage (playbooks/npu.yml, issue 11) against the lab: first run, converged re-run, --check, where
MindCluster's pods run, NPU capacity, the `volcano` scheduler profile placing NPU pods, the bad-input table
of both roles, and the removal.

Needs `lab up` (the Ascend Docker Runtime package on the lab mirror, the device-manager stand-in for
`worker`, the `volcano` profile of the lab's kube-scheduler) on the demo fleet. The module fixture
converges site.yml (whatever state earlier tests left), removes the stage, then runs the stage alone twice
from there, timed: a first install and a converged re-run (the figures are printed as JSON).

Tests run in file order and share the lab: the removal test comes last and leaves the stage removed.
"""

from __future__ import annotations

import json
import uuid
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
    total_changed,
    wait_for,
)

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / "lab" / "state" / "repos" / "ascend-docker-runtime.json"
NPU_NODES = {"npu-910b-1": 8, "npu-910b-2": 8}
MANAGEMENT_NODE = "cpu-1"
HOST = "npu-910b-1"
NPU = "huawei.com/Ascend910"
ABSENT = {"mindcluster_state": "absent", "ascend_docker_runtime_state": "absent"}
RUNTIME_INSTALL_DIR = "/usr/local/Ascend/Ascend-Docker-Runtime"


def api():
    from labctl import clusters

    return clusters.api_client("worker")


def core():
    from kubernetes import client as k8s

    return k8s.CoreV1Api(api())


def capacity() -> dict[str, str]:
    return {n.metadata.name: (n.status.capacity or {}).get(NPU, "0") for n in core().list_node().items}


def pods_on(namespace: str, selector: str) -> list[str]:
    return sorted(p.spec.node_name or "" for p in core().list_namespaced_pod(namespace, label_selector=selector).items
                  if p.status.phase == "Running")


def managed_objects() -> list[str]:
    """Every namespaced workload and namespace the role labels as its own (what removal must take away)."""
    from kubernetes import client as k8s

    selector = "app.kubernetes.io/managed-by=aicluster-mindcluster"
    apps = k8s.AppsV1Api(api())
    found = [f"Namespace/{n.metadata.name}" for n in core().list_namespace(label_selector=selector).items
             if n.status.phase != "Terminating"]
    found += [f"DaemonSet/{d.metadata.name}" for d in apps.list_daemon_set_for_all_namespaces(
        label_selector=selector).items]
    found += [f"Deployment/{d.metadata.name}" for d in apps.list_deployment_for_all_namespaces(
        label_selector=selector).items]
    found += [f"ServiceAccount/{s.metadata.name}" for s in core().list_service_account_for_all_namespaces(
        label_selector=selector).items]
    return found


@pytest.fixture(scope="module")
def figures():
    if not STATE.is_file():
        pytest.fail("the lab's Ascend Docker Runtime package is not published: run `lab up`")
    return install_stage_twice("npu", ABSENT)


# ------------------------------------------------------------------ converged stage


def test_first_run_succeeds_and_npus_are_advertised(figures):
    first = figures["first"]
    assert first["_rc"] == 0, failures(first)
    assert total_changed(first) > 0
    caps = wait_for(lambda: (c := capacity()) and all(c.get(n) == str(v) for n, v in NPU_NODES.items()) and c)
    assert caps, f"NPU capacity not advertised: {capacity()}"
    assert all(v == "0" for n, v in caps.items() if n not in NPU_NODES), caps


def test_node_agents_only_on_the_910b_nodes_and_clusterd_on_the_management_node(figures):
    assert pods_on("kube-system", "name=ascend-device-plugin-ds") == sorted(NPU_NODES)
    assert pods_on("mindx-dl", "app=noded") == sorted(NPU_NODES)
    assert pods_on("npu-exporter", "app=npu-exporter") == sorted(NPU_NODES)
    assert pods_on("mindx-dl", "app=clusterd") == [MANAGEMENT_NODE]


def test_second_run_changes_nothing(figures):
    second = figures["second"]
    assert second["_rc"] == 0, failures(second)
    assert total_changed(second) == 0, changed_tasks(second)


def test_check_mode_changes_nothing(figures):
    out = playbook("site.yml", None, "--tags", "npu", "--check", "--diff")
    assert out["_rc"] == 0, failures(out)
    assert total_changed(out) == 0, changed_tasks(out)


def test_runtime_installed_at_the_stage_version(figures):
    info = shell(HOST, f"cat {RUNTIME_INSTALL_DIR}/ascend_docker_runtime_install.info")
    assert "version=v26.0.1" in info, info


def _npu_pod(namespace: str, name: str, npus: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"schedulerName": "volcano",
                     "containers": [{"name": "train", "image": "ascendhub.huawei.com/public-ascendhub/mindspore:2.3",
                                     "resources": {"limits": {NPU: str(npus)}}}]}}


def test_volcano_profile_places_an_eight_npu_pod_and_leaves_nine_pending(figures):
    namespace = f"npu-test-{uuid.uuid4().hex[:6]}"
    core().create_namespace({"metadata": {"name": namespace}})
    try:
        core().create_namespaced_pod(namespace, _npu_pod(namespace, "eight", 8))
        core().create_namespaced_pod(namespace, _npu_pod(namespace, "nine", 9))
        placed = wait_for(lambda: core().read_namespaced_pod("eight", namespace).spec.node_name)
        assert placed in NPU_NODES

        def unschedulable():
            pod = core().read_namespaced_pod("nine", namespace)
            return next((c for c in pod.status.conditions or []
                         if c.type == "PodScheduled" and c.reason == "Unschedulable"), None)

        condition = wait_for(unschedulable)
        assert condition is not None and f"Insufficient {NPU}" in condition.message, condition
        events = core().list_namespaced_event(namespace, field_selector="involvedObject.name=nine").items
        assert any(e.reason == "FailedScheduling" and (e.reporting_component == "volcano" or
                   (e.source and e.source.component == "volcano")) for e in events), \
            [(e.reason, e.reporting_component, e.source and e.source.component) for e in events]
    finally:
        core().delete_namespace(namespace)


# ------------------------------------------------------------------ bad input


def runtime(extra: dict, *args: str) -> dict:
    return playbook("playbooks/npu.yml", extra, "--tags", "ascend_docker_runtime", "--limit", HOST, *args)


def test_driver_missing_is_refused(figures):
    out = runtime({"ascend_docker_runtime_npu_smi": "/nonexistent/npu-smi"})
    assert_refused(out, "the Ascend driver is missing, not working or too old", HOST)


def test_package_checksum_mismatch_is_refused(figures):
    # A different release than the installed one, so the role would install it if the checksum passed.
    other = json.loads(STATE.read_text())["versions"]["26.1.0"]
    out = runtime({"ascend_docker_runtime_version": "26.1.0", "ascend_docker_runtime_package_url": other["url"],
                   "ascend_docker_runtime_package_filename": other["filename"],
                   "ascend_docker_runtime_package_sha256": "0" * 64})
    assert_refused(out, "did not match", HOST)
    assert "version=v26.0.1" in shell(HOST, f"cat {RUNTIME_INSTALL_DIR}/ascend_docker_runtime_install.info")


def test_a_uid_taken_by_another_user_is_refused(figures):
    # A new account (hwMindX exists since the first run) whose uid is Debian's daemon's.
    out = runtime({"ascend_docker_runtime_mindx_user": "mindx2", "ascend_docker_runtime_mindx_uid": 1})
    assert_refused(out, "uid 1 wanted for user mindx2 is taken by user daemon", HOST)


def mindcluster(extra: dict) -> dict:
    return playbook("playbooks/npu.yml", extra, "--tags", "mindcluster", "--limit", HOST)


def test_unknown_component_is_refused(figures):
    before = managed_objects()
    out = mindcluster({"mindcluster_components": ["ascend-device-plugin", "hccl-controller"]})
    assert_refused(out, "unknown MindCluster component(s) hccl-controller", HOST)
    assert managed_objects() == before


def test_release_directory_missing_a_components_yaml_is_refused(figures, tmp_path):
    release = tmp_path / "mindcluster-release"
    release.mkdir()
    (release / "noded-v26.0.1.yaml").write_text("apiVersion: v1\nkind: ServiceAccount\n"
                                                "metadata: {name: noded, namespace: mindx-dl}\n")
    before = managed_objects()
    out = mindcluster({"mindcluster_release_dir": str(release), "mindcluster_components": ["noded", "clusterd"]})
    assert_refused(out, "has no clusterd-v26.0.1.yaml (component clusterd)", HOST)
    assert managed_objects() == before


# ------------------------------------------------------------------ removal (last: leaves the stage removed)


def test_removal_leaves_no_object_no_capacity_and_no_runtime(figures):
    out = playbook("playbooks/npu.yml", ABSENT)
    assert out["_rc"] == 0, failures(out)
    caps = wait_for(lambda: (c := capacity()) and all(c.get(n, "0") == "0" for n in NPU_NODES) and c)
    assert caps, f"NPU capacity still advertised after the removal: {capacity()}"
    assert wait_for(lambda: not managed_objects(), timeout=180), managed_objects()
    gone = adhoc(HOST, "ansible.builtin.stat", f"path={RUNTIME_INSTALL_DIR}")
    assert '"exists": false' in gone.stdout, gone.stdout
    again = playbook("playbooks/npu.yml", ABSENT)
    assert again["_rc"] == 0 and total_changed(again) == 0, changed_tasks(again)
