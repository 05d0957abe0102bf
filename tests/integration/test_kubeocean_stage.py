"""The Kubeocean stage (playbooks/kubeocean.yml, issue 13) against the lab: the lab's chart repository serves
stand-ins of Kubeocean's two charts, the lab's Kubeocean stand-in (lab/labctl/kubeocean_syncer.py) does the
manager's and syncer's work while the manager chart is installed, the worker's API server is reached through the
lab's intranet endpoint (lab/labctl/apiendpoint.py), and the manager cluster's real kube-scheduler places pods on
the virtual Nodes (kwok runs them).

Story, in file order (the tests share the lab):
  1. the stage converges with the lab clock inside the policy's window (Monday 23:00): vnodes for exactly the two
     lent A100 machines, with half their GPUs; re-run changed=0; the syncer's token is in no output;
  2. a pod tolerating the vnode taint is placed on a vnode by the manager's scheduler, one asking more GPUs than
     lent is not; the lab clock moved out of the window (Monday 12:00) taints the vnodes NoExecute;
  3. --check --diff of an edited window shows the policy change and applies nothing; every bad input is refused
     before anything is applied;
  4. uninstalling is refused while bound; unbind removes every vnode, the pod on it, the binding, its Secret and
     policies (timed); bind again (timed); uninstall leaves no Kubeocean object in either cluster.

Needs `lab up`; the fixture converges bootstrap (labels) and the GPU stage (GPU capacity) first.
Figures (printed as JSON): stage first run / re-run, bind -> all vnodes, unbind -> no vnode.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
import yaml
from stage_runner import changed_tasks, ensure_bootstrap, failures, playbook, total_changed, wait_for

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
API = ("cloud.tencent.com", "v1beta1")
GPU = "nvidia.com/gpu"
LENT = {"gpu-a100-1", "gpu-a100-2"}
VNODES = {f"vnode-lab-inference-{node}" for node in LENT}
IN_WINDOW = "2026-12-07T23:00"   # a Monday night: inside 18:00-08:00 on weekdays
OUT_OF_WINDOW = "2026-12-07T12:00"
UNBIND = {"kubeocean_lending_state": "absent"}
REMOVE = {"kubeocean_state": "absent"}
POD_NAMESPACE = "default"


def lab_bindings() -> list[dict]:
    data = yaml.safe_load((REPO / "inventory/lab/group_vars/all/kubeocean.yml").read_text())
    return data["kubeocean_lending_bindings"]


def client(cluster: str):
    from labctl import clusters

    return clusters.api_client(cluster)


def core(cluster: str = "manager"):
    from kubernetes import client as k8s

    return k8s.CoreV1Api(client(cluster))


def custom(cluster: str):
    from kubernetes import client as k8s

    return k8s.CustomObjectsApi(client(cluster))


def vnodes() -> dict:
    return {n.metadata.name: n for n in core().list_node(label_selector="kubeocean.io/cluster-binding").items}


def bindings() -> list[str]:
    items = custom("manager").list_cluster_custom_object(*API, "clusterbindings")["items"]
    return [b["metadata"]["name"] for b in items]


def policies() -> dict:
    items = custom("worker").list_cluster_custom_object(*API, "resourceleasingpolicies")["items"]
    return {p["metadata"]["name"]: p for p in items}


def set_clock(when: str) -> None:
    from labctl import kubeocean_syncer

    kubeocean_syncer.set_clock(when)


def stage_run(extra: dict | None = None, *args: str) -> dict:
    return playbook("site.yml", extra, "--tags", "kubeocean", *args)


def refused(out: dict, message: str) -> None:
    assert out["_rc"] != 0, "bad input was accepted"
    assert any(message in m for m in failures(out)), f"expected {message!r} in {failures(out)}"
    assert total_changed(out) == 0, changed_tasks(out)


def gpu_pod(name: str, gpus: int, tolerate_window: bool = False) -> dict:
    tolerations = [{"key": "kubeocean.io/vnode", "operator": "Exists", "effect": "NoSchedule"}]
    if tolerate_window:
        tolerations.append({"key": "kubeocean.io/out-of-time-windows", "operator": "Exists"})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": POD_NAMESPACE, "labels": {"app": "kubeocean-test"}},
            "spec": {"nodeSelector": {"type": "virtual-kubelet"}, "tolerations": tolerations,
                     "containers": [{"name": "train", "image": "lab.invalid/train:lab",
                                     "resources": {"limits": {GPU: str(gpus)}}}]}}


def delete_test_pods() -> None:
    api = core()
    for pod in api.list_namespaced_pod(POD_NAMESPACE, label_selector="app=kubeocean-test").items:
        api.delete_namespaced_pod(pod.metadata.name, POD_NAMESPACE, grace_period_seconds=0)
    wait_for(lambda: not api.list_namespaced_pod(POD_NAMESPACE, label_selector="app=kubeocean-test").items, 60)


@pytest.fixture(scope="module")
def stage():
    ensure_bootstrap()
    converged = playbook("playbooks/gpu.yml")
    assert converged["_rc"] == 0, failures(converged)
    removed = playbook("playbooks/kubeocean.yml", REMOVE)
    assert removed["_rc"] == 0, failures(removed)
    set_clock(IN_WINDOW)
    first = stage_run()
    second = stage_run()
    figures = {"kubeocean_stage_first_run_s": first["_seconds"], "kubeocean_stage_rerun_s": second["_seconds"]}
    print(json.dumps(figures))
    yield {"first": first, "second": second, "figures": figures}
    from labctl import kubeocean_syncer

    kubeocean_syncer.reset_clock()


# ------------------------------------------------------------------ the stage


def test_only_the_lent_machines_carry_the_kubeocean_label(stage):
    labelled = {n.metadata.name for n in core("worker").list_node(label_selector="kubeocean.io/role=worker").items}
    assert labelled == LENT


def test_vnodes_appear_for_exactly_the_lent_nodes_with_half_their_gpus(stage):
    assert stage["first"]["_rc"] == 0, failures(stage["first"])
    found = vnodes()
    assert set(found) == VNODES
    for name, node in found.items():
        physical = core("worker").read_node(node.metadata.labels["kubeocean.io/physical-node-name"])
        assert physical.status.allocatable[GPU] == "8"
        assert node.status.capacity[GPU] == "4" and node.status.allocatable[GPU] == "4", name
        assert node.metadata.labels["kubeocean.io/cluster-binding"] == "inference"
        assert not [t for t in node.spec.taints if t.key == "kubeocean.io/out-of-time-windows"], name
    status = custom("manager").get_cluster_custom_object(*API, "clusterbindings", "inference")["status"]
    assert status["phase"] == "Ready"


def test_rerun_changes_nothing(stage):
    assert stage["second"]["_rc"] == 0, failures(stage["second"])
    assert total_changed(stage["second"]) == 0, changed_tasks(stage["second"])


def test_the_syncer_token_is_in_no_output_and_the_secret_holds_the_kubeconfig(stage):
    import base64

    token = base64.b64decode(core("worker").read_namespaced_secret("kubeocean-syncer", "kubeocean-worker")
                             .data["token"]).decode()
    assert token and token not in json.dumps(stage["first"]) and token not in json.dumps(stage["second"])
    secret = core().read_namespaced_secret("inference-kubeconfig", "kubeocean-system")
    kubeconfig = yaml.safe_load(base64.b64decode(secret.data["kubeconfig"]))
    assert kubeconfig["users"][0]["user"]["token"] == token
    from labctl import apiendpoint

    assert kubeconfig["clusters"][0]["cluster"]["server"] == apiendpoint.url("worker")


# ------------------------------------------------------------------ scheduling and time windows


def test_the_manager_scheduler_places_a_tolerating_pod_on_a_vnode(stage):
    api = core()
    delete_test_pods()
    api.create_namespaced_pod(POD_NAMESPACE, gpu_pod("lent-four", 4))
    api.create_namespaced_pod(POD_NAMESPACE, gpu_pod("lent-five", 5))
    placed = wait_for(lambda: api.read_namespaced_pod("lent-four", POD_NAMESPACE).spec.node_name, 60)
    assert placed in VNODES
    assert wait_for(lambda: api.read_namespaced_pod("lent-four", POD_NAMESPACE).status.phase == "Running", 60)

    def unschedulable():
        pod = api.read_namespaced_pod("lent-five", POD_NAMESPACE)
        return any(c.reason == "Unschedulable" for c in pod.status.conditions or [])

    assert wait_for(unschedulable, 60), "a pod asking more GPUs than a vnode lends was placed"
    assert api.read_namespaced_pod("lent-five", POD_NAMESPACE).spec.node_name is None


def test_out_of_the_window_the_vnodes_are_tainted_no_execute_and_lent_pods_reclaimed(stage):
    api = core()
    assert api.read_namespaced_pod("lent-four", POD_NAMESPACE).spec.node_name in VNODES
    set_clock(OUT_OF_WINDOW)
    try:
        def tainted():
            found = vnodes()
            return len(found) == 2 and all(
                any(t.key == "kubeocean.io/out-of-time-windows" and t.effect == "NoExecute" for t in n.spec.taints)
                for n in found.values())

        assert wait_for(tainted, 30), {n: v.spec.taints for n, v in vnodes().items()}
        policy = policies()["inference-nights"]
        assert policy["status"]["phase"] == "Inactive"
        # A pod that does not tolerate the NoExecute taint goes (Kubernetes' taint eviction, or Kubeocean's
        # force reclaim after the graceful period).
        assert wait_for(lambda: not [p for p in api.list_namespaced_pod(POD_NAMESPACE).items
                                     if p.metadata.name == "lent-four"], 90)
    finally:
        set_clock(IN_WINDOW)
    assert wait_for(lambda: not any(t.key == "kubeocean.io/out-of-time-windows"
                                    for n in vnodes().values() for t in n.spec.taints), 30)


# ------------------------------------------------------------------ dry run and bad input


def test_check_diff_shows_the_policy_change_and_applies_nothing(stage):
    edited = copy.deepcopy(lab_bindings())
    edited[0]["policies"][0]["time_windows"][0]["start"] = "19:30"
    out = stage_run({"kubeocean_lending_bindings": edited}, "--check", "--diff")
    assert out["_rc"] == 0, failures(out)
    changed = changed_tasks(out)
    assert any(t.endswith("Apply each binding's leasing policies to its worker cluster") for t in changed), changed
    assert "19:30" in json.dumps(out)
    assert policies()["inference-nights"]["spec"]["timeWindows"][0]["start"] == "18:00"


def _with_policy(**change) -> list[dict]:
    edited = copy.deepcopy(lab_bindings())
    edited[0]["policies"][0].update(change)
    return edited


def _with_binding(**change) -> list[dict]:
    edited = copy.deepcopy(lab_bindings())
    edited[0].update(change)
    return edited


BAD = [
    ({"kubeocean_lending_bindings": _with_binding(cluster_id="Lab-Inference")}, "cluster_id"),
    ({"kubeocean_lending_bindings": _with_binding(cluster_id="lab-inference-cluster-west-1")},
     "has 28 characters, Kubeocean allows at most 24"),
    ({"kubeocean_lending_bindings": _with_policy(time_windows=[{"start": "25:00", "end": "08:00"}])}, "25:00"),
    ({"kubeocean_lending_bindings": _with_policy(time_windows=[{"start": "18:00", "end": "18:00"}])}, "start"),
    ({"kubeocean_lending_bindings": _with_policy(time_windows=[{"start": "18:00", "end": "08:00",
                                                                 "days": ["Funday"]}])},
     "'Funday' is not a day name"),
    ({"kubeocean_lending_bindings": _with_policy(resource_limits=[{"resource": GPU, "percent": 150}])},
     "percent 150 is over 100"),
    ({"kubeocean_lending_policies": [{"name": "stray", "cluster": "training"}]}, "cluster 'training' is not bound"),
    ({"kubeocean_lending_policies": [{"name": "stray", "cluster": "lab-inference"}]},
     "is the cluster_id of binding inference"),
    ({"kubeocean_lending_bindings": _with_binding(server="https://127.0.0.1:36443")}, "is a loopback address"),
    ({"kubeocean_lending_bindings": _with_binding(server="https://10.77.0.1:1")}, "the manager cannot reach"),
    ({"kubeocean_lending_time_zone": "Asia/Shanghai"}, "Asia/Shanghai"),
    ({"kubeocean_image_tag": "latest"}, "kubeocean_image_tag must pin a release"),
    ({"kubeocean_manager_cluster": "nosuch"}, 'kubeocean_manager_cluster "nosuch" is not a key of aicluster_clusters'),
    ({"kubeocean_chart_version": "9.9.9"}, "chart kubeocean version 9.9.9 is not in the repository"),
]


@pytest.mark.parametrize(("extra", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_input_is_refused_before_anything_is_applied(stage, extra, message):
    before = (json.dumps(policies(), sort_keys=True, default=str), bindings())
    # The role the setting belongs to, alone.
    tag = "kubeocean_lending" if next(iter(extra)).startswith("kubeocean_lending") else "kubeocean_install"
    refused(playbook("playbooks/kubeocean.yml", extra, "--tags", tag), message)
    after = (json.dumps(policies(), sort_keys=True, default=str), bindings())
    assert before[1] == after[1]
    assert {k: v["spec"] for k, v in json.loads(before[0]).items()} == {
        k: v["spec"] for k, v in json.loads(after[0]).items()}


# ------------------------------------------------------------------ unbind and uninstall


def test_uninstall_is_refused_while_clusters_are_bound(stage):
    out = playbook("site.yml", REMOVE, "--tags", "kubeocean_install")
    refused(out, "ClusterBindings still exist in manager (inference)")
    assert set(vnodes()) == VNODES


def test_unbind_removes_every_vnode_the_pods_on_them_and_the_binding(stage):
    api = core()
    api.create_namespaced_pod(POD_NAMESPACE, gpu_pod("lent-again", 2))
    assert wait_for(lambda: api.read_namespaced_pod("lent-again", POD_NAMESPACE).spec.node_name, 60) in VNODES
    started = time.monotonic()
    out = playbook("playbooks/kubeocean.yml", UNBIND)
    assert out["_rc"] == 0, failures(out)
    stage["figures"]["kubeocean_unbind_to_no_vnode_s"] = round(time.monotonic() - started, 1)
    assert vnodes() == {}
    assert bindings() == []
    assert policies() == {}
    assert not [s for s in core().list_namespaced_secret("kubeocean-system").items
                if s.metadata.name == "inference-kubeconfig"]
    # The pod on a vnode was deleted with it; the one never placed waits.
    assert [p.metadata.name for p in api.list_namespaced_pod(POD_NAMESPACE, label_selector="app=kubeocean-test").items
            if p.spec.node_name] == []
    # Kubeocean itself stays installed.
    assert core().read_namespace("kubeocean-system")
    again = playbook("playbooks/kubeocean.yml", UNBIND)
    assert again["_rc"] == 0 and total_changed(again) == 0, changed_tasks(again)
    delete_test_pods()


def test_bind_again_then_uninstall_leaves_no_kubeocean_object(stage):
    started = time.monotonic()
    out = stage_run()
    assert out["_rc"] == 0, failures(out)
    assert wait_for(lambda: set(vnodes()) == VNODES, 30)
    stage["figures"]["kubeocean_bind_to_all_vnodes_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(stage["figures"]))

    removed = playbook("playbooks/kubeocean.yml", REMOVE)
    assert removed["_rc"] == 0, failures(removed)
    from kubernetes import client as k8s

    for cluster, namespace in (("manager", "kubeocean-system"), ("worker", "kubeocean-worker")):
        crds = [c.metadata.name for c in k8s.ApiextensionsV1Api(client(cluster)).list_custom_resource_definition().items
                if c.spec.group == "cloud.tencent.com"]
        assert crds == [], cluster
        assert namespace not in {n.metadata.name for n in core(cluster).list_namespace().items}
        releases = [s.metadata.name for s in core(cluster).list_namespaced_secret(
            "default", label_selector="owner=helm").items if "kubeocean" in s.metadata.name]
        assert releases == [], cluster
    assert vnodes() == {}
    again = playbook("playbooks/kubeocean.yml", REMOVE)
    assert again["_rc"] == 0 and total_changed(again) == 0, changed_tasks(again)
