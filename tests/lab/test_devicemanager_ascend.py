"""Device manager stand-in, Ascend side: the contract the cluster-side Ascend roles rely on (no cluster).

A pod is MindCluster's Ascend Device Plugin when it carries the label ``name=ascend-device-plugin-ds``
(every MindCluster manifest labels its plugin pods so: the unified ``ascendplugin[-volcano].yaml`` of
v26.1.0, the per-chip files up to v26.0.1, the Helm chart's subchart), in any namespace, whatever its
containers are called. While such a pod is Running (bound, phase Running, not terminating) on a Node
whose lab machine (Node name = machine name in the fleet state) has Ascend NPUs, the Node's capacity
and allocatable carry ``huawei.com/Ascend910`` (910/910B/910A3) or ``huawei.com/Ascend310P`` = chips;
when the pod goes, so does the resource. Labels are never touched (``accelerator`` and the other
MindCluster labels stay the node_labels role's).
"""

from __future__ import annotations

import copy
import json

import pytest
from labctl import devicemanager as dm

NPU_910B = dm.Accelerators("ascend", "910B", 8, "910B3", 65536)
NPU_310P = dm.Accelerators("ascend", "310P", 4, "310P3", 21527)
GPU_A100 = dm.Accelerators("nvidia", "A100", 8, "NVIDIA A100-SXM4-40GB", 40960)

DEMO_FLEET = [
    {"name": "gpu-a100-1", "vendor": "nvidia", "model": "A100", "count": 8},
    {"name": "npu-910b-1", "vendor": "ascend", "model": "910B", "count": 8},
    {"name": "npu-910b-2", "vendor": "ascend", "model": "910B", "count": 8},
    {"name": "cpu-1", "vendor": "none", "model": "", "count": 0},
]


def _pod(name: str, node: str, labels: dict, containers: list[dict], *, namespace: str = "kube-system",
         phase: str = "Running", init: list[dict] | None = None, deleting: bool = False) -> dict:
    meta = {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}", "labels": labels,
            "creationTimestamp": "2026-12-01T10:00:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-01T11:00:00Z"
    spec = {"nodeName": node, "containers": containers}
    if init:
        spec["initContainers"] = init
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def unified_volcano_pod(node: str, **kw) -> dict:
    """A pod of v26.1.0's DaemonSet ascend-device-plugin-daemonset (ascendplugin-volcano.yaml)."""
    return _pod(f"ascend-device-plugin-daemonset-{node}", node, {"name": "ascend-device-plugin-ds"},
                [{"name": "device-plugin-01", "image": "ascend-k8sdeviceplugin:v26.1.0",
                  "command": ["/bin/bash", "-c", "--"],
                  "args": ["device-plugin -volcanoType=true -presetVirtualDevice=true "
                           "-logFile=/var/log/mindx-dl/devicePlugin/devicePlugin.log -logLevel=0"]}],
                init=[{"name": "init-log-setup", "image": "ascend-k8sdeviceplugin:v26.1.0",
                       "command": ["sh", "-c", "mkdir -p /var/log/mindx-dl/devicePlugin"]}], **kw)


def per_chip_910_pod(node: str) -> dict:
    """A pod of v26.0.1's device-plugin-volcano-v26.0.1.yaml (DaemonSet ascend-device-plugin-daemonset-910)."""
    return _pod(f"ascend-device-plugin-daemonset-910-{node}", node, {"name": "ascend-device-plugin-ds"},
                [{"name": "device-plugin-01", "image": "ascend-k8sdeviceplugin:v26.0.1",
                  "command": ["/bin/bash", "-c", "--"],
                  "args": ["device-plugin -useAscendDocker=true -volcanoType=true -presetVirtualDevice=true"]}])


def lab_role_pod(node: str) -> dict:
    """What a project role may render: its own names and namespace, the same pod label."""
    return _pod(f"npu-plugin-{node}", node, {"name": "ascend-device-plugin-ds", "app.kubernetes.io/managed-by": "x"},
                [{"name": "plugin", "image": "registry.example/ascend-k8sdeviceplugin:v26.1.0"}],
                namespace="mindx-dl")


def other_mindcluster_pods(node: str) -> list[dict]:
    return [_pod(f"noded-{node}", node, {"app": "noded"}, [{"name": "noded", "image": "noded:v26.1.0"}],
                 namespace="mindx-dl"),
            _pod(f"npu-exporter-{node}", node, {"app": "npu-exporter"},
                 [{"name": "npu-exporter", "image": "npu-exporter:v26.1.0"}], namespace="npu-exporter"),
            _pod("clusterd-0", node, {"app": "clusterd"}, [{"name": "clusterd", "image": "clusterd:v26.1.0"}],
                 namespace="mindx-dl"),
            _pod("volcano-scheduler-0", node, {"app": "volcano-scheduler"},
                 [{"name": "volcano-scheduler", "image": "volcanosh/vc-scheduler:v1.12.0"}],
                 namespace="volcano-system")]


def node(name: str, labels: dict | None = None) -> dict:
    base = {"cpu": "192", "memory": "1536Gi", "pods": "110"}
    return {"metadata": {"name": name, "annotations": {},
                         "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "status": {"capacity": dict(base), "allocatable": dict(base)}}


MINDCLUSTER_LABELS = {"accelerator": "huawei-Ascend910", "workerselector": "dls-worker-node",
                      "host-arch": "huawei-x86", "accelerator-type": "module-910b-8",
                      "node-role.kubernetes.io/worker": "worker"}


# ----------------------------------------------------------------------------- which pods count
@pytest.mark.parametrize("make", [unified_volcano_pod, per_chip_910_pod, lab_role_pod])
def test_every_mindcluster_plugin_pod_shape_is_recognised(make):
    assert dm.pod_roles(make("npu-910b-1")) == {dm.ASCEND_PLUGIN}
    assert dm.might_play_a_role(make("npu-910b-1"))


def test_other_mindcluster_components_are_not_device_plugins():
    for pod in other_mindcluster_pods("npu-910b-1"):
        assert dm.pod_roles(pod) == set(), pod["metadata"]["name"]
        assert not dm.might_play_a_role(pod)


def test_the_selector_can_be_replaced_for_the_ascend_role_only():
    custom = dm.matchers_from(["ascend-device-plugin:app=my-npu-plugin"])
    mine = _pod("mine", "npu-910b-1", {"app": "my-npu-plugin"}, [{"name": "c", "image": "x"}])
    assert dm.pod_roles(mine, custom) == {dm.ASCEND_PLUGIN}
    assert dm.pod_roles(unified_volcano_pod("npu-910b-1"), custom) == set()
    with pytest.raises(dm.DeviceManagerError):
        dm.matchers_from(["ascend-device-plugin:"])


# ----------------------------------------------------------------------------- what a Node carries
def test_910b_node_gets_one_ascend910_per_chip():
    state = dm.desired_node_state(node("npu-910b-1", MINDCLUSTER_LABELS), NPU_910B,
                                  [unified_volcano_pod("npu-910b-1")], {})
    assert state.resources == {"huawei.com/Ascend910": 8} and state.labels == {} and not state.problems


def test_310p_node_gets_ascend310p():
    state = dm.desired_node_state(node("npu-310p-1"), NPU_310P, [per_chip_910_pod("npu-310p-1")], {})
    assert state.resources == {"huawei.com/Ascend310P": 4}


@pytest.mark.parametrize("pod", [
    unified_volcano_pod("npu-910b-1", phase="Pending"),
    unified_volcano_pod("npu-910b-1", deleting=True),
    unified_volcano_pod("npu-910b-2"),            # on another Node
    {**unified_volcano_pod("npu-910b-1"), "spec": {"containers": []}},   # not bound yet
])
def test_only_a_running_bound_plugin_pod_on_that_node_counts(pod):
    assert dm.desired_node_state(node("npu-910b-1"), NPU_910B, [pod], {}).resources == {}


def test_no_ascend_resource_without_npus():
    pods = [unified_volcano_pod("gpu-a100-1"), unified_volcano_pod("cpu-1")]
    assert dm.desired_node_state(node("gpu-a100-1"), GPU_A100, pods, {}).resources == {}
    assert dm.desired_node_state(node("cpu-1"), None, pods, {}).resources == {}


def test_patches_add_then_remove_only_the_resource():
    before = node("npu-910b-1", MINDCLUSTER_LABELS)
    desired = dm.desired_node_state(before, NPU_910B, [unified_volcano_pod("npu-910b-1")], {})
    patches = dm.plan_node_patches(before, desired)
    assert patches.status == {"status": {"capacity": {"huawei.com/Ascend910": "8"},
                                         "allocatable": {"huawei.com/Ascend910": "8"}}}
    assert "labels" not in (patches.before or {}).get("metadata", {})
    after = _apply(before, patches)
    assert json.loads(after["metadata"]["annotations"][dm.OWNER_ANNOTATION]) == {
        "resources": ["huawei.com/Ascend910"], "labels": []}
    assert not dm.plan_node_patches(after, desired)  # converged
    gone = dm.plan_node_patches(after, dm.desired_node_state(after, NPU_910B, [], {}))
    removed = _apply(after, gone)
    assert "huawei.com/Ascend910" not in removed["status"]["capacity"]
    assert "huawei.com/Ascend910" not in removed["status"]["allocatable"]
    assert dm.OWNER_ANNOTATION not in removed["metadata"]["annotations"]
    assert removed["metadata"]["labels"] == before["metadata"]["labels"]  # MindCluster labels untouched


def _merge(target, patch):
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def _apply(obj: dict, patches) -> dict:
    out = copy.deepcopy(obj)
    for body in (patches.before, patches.status, patches.after):
        if body:
            out = _merge(out, body)
    return out


# ----------------------------------------------------------------------------- the demo fleet end to end
class _Resp:
    def __init__(self, obj):
        self.data = json.dumps(obj).encode()


class FakeCore:
    def __init__(self, nodes: dict[str, dict]):
        self.nodes = nodes
        self.calls: list[tuple[str, str, dict]] = []

    def _patch(self, kind, name, body, **kw):
        self.calls.append((kind, name, body))
        self.nodes[name] = _merge(self.nodes[name], body)
        return _Resp(self.nodes[name])

    def patch_node(self, name, body, **kw):
        return self._patch("node", name, body, **kw)

    def patch_node_status(self, name, body, **kw):
        return self._patch("status", name, body, **kw)


def test_demo_fleet_daemonset_rollout_and_removal(tmp_path):
    fleet = tmp_path / "fleet.json"
    fleet.write_text(json.dumps({"profile": "demo", "machines": DEMO_FLEET}))
    names = [m["name"] for m in DEMO_FLEET]
    core = FakeCore({n: node(n, MINDCLUSTER_LABELS if n.startswith("npu") else None) for n in names})
    m = dm.DeviceManager(core, fleet, log=lambda line: None)
    m.refresh_fleet()
    m.replace("nodes", [copy.deepcopy(v) for v in core.nodes.values()])
    m.replace("configmaps", [])
    m.replace("pods", [])
    # the DaemonSet (nodeSelector accelerator=huawei-Ascend910) runs on the two 910B Nodes; MindCluster's
    # other components run around them
    pods = [unified_volcano_pod("npu-910b-1"), unified_volcano_pod("npu-910b-2"),
            *other_mindcluster_pods("npu-910b-1"), *other_mindcluster_pods("cpu-1")]
    for pod in pods:
        m.event("pods", "ADDED", pod)
    assert len(m.pods) == 2
    m.work(0)
    for n in ("npu-910b-1", "npu-910b-2"):
        assert core.nodes[n]["status"]["capacity"]["huawei.com/Ascend910"] == "8"
        assert core.nodes[n]["status"]["allocatable"]["huawei.com/Ascend910"] == "8"
        assert core.nodes[n]["metadata"]["labels"] == node(n, MINDCLUSTER_LABELS)["metadata"]["labels"]
    for n in ("gpu-a100-1", "cpu-1"):
        assert core.nodes[n] == node(n)
    assert m.advertised == {n: {"resources": {"huawei.com/Ascend910": 8}, "labels": {}}
                            for n in ("npu-910b-1", "npu-910b-2")}
    # a rolling update: the old pod terminates while the new one starts; capacity stays
    old = unified_volcano_pod("npu-910b-1", deleting=True)
    new = copy.deepcopy(unified_volcano_pod("npu-910b-1", phase="Pending"))
    new["metadata"].update(name="ascend-device-plugin-daemonset-new", uid="uid-new")
    m.event("pods", "MODIFIED", old)
    m.event("pods", "ADDED", new)
    m.work(0)
    assert "huawei.com/Ascend910" not in core.nodes["npu-910b-1"]["status"]["capacity"]  # no plugin registered
    new["status"]["phase"] = "Running"
    m.event("pods", "DELETED", old)
    m.event("pods", "MODIFIED", new)
    m.work(0)
    assert core.nodes["npu-910b-1"]["status"]["capacity"]["huawei.com/Ascend910"] == "8"
    # removal of the DaemonSet: no capacity left anywhere, no ownership annotation left
    m.event("pods", "DELETED", new)
    m.event("pods", "DELETED", unified_volcano_pod("npu-910b-2"))
    m.work(0)
    for n in names:
        assert "huawei.com/Ascend910" not in core.nodes[n]["status"]["capacity"]
        assert dm.OWNER_ANNOTATION not in core.nodes[n]["metadata"]["annotations"]
    assert m.advertised == {}
