"""Device manager stand-in (lab fixture): the pure part (what a Node should carry, the patches that
get it there) and the cache/reconcile logic against a fake API. No cluster needed."""

from __future__ import annotations

import argparse
import json
import textwrap

import pytest
from labctl import devicemanager as dm

T4 = dm.Accelerators("nvidia", "T4", 2, "Tesla T4", 15360)
A100 = dm.Accelerators("nvidia", "A100", 8, "NVIDIA A100-SXM4-40GB", 40960)
NPU = dm.Accelerators("ascend", "910B", 8, "910B3", 65536)
P310 = dm.Accelerators("ascend", "310P", 4, "310P3", 21527)

CM = ("nvidia-device-plugin", "nvdp-nvidia-device-plugin-configs")
TS4 = textwrap.dedent("""\
    version: v1
    flags:
      migStrategy: none
    sharing:
      timeSlicing:
        resources:
        - name: nvidia.com/gpu
          replicas: 4
    """)
PLAIN = "version: v1\nflags:\n  migStrategy: none\n"


def _config_manager(name: str, default: str = "", fallbacks: str = "named,single") -> dict:
    """The chart's config-manager container (daemonset-device-plugin.yml), as the API returns it."""
    env = [{"name": "ONESHOT", "value": "true"}, {"name": "KUBECONFIG", "value": ""},
           {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
           {"name": "NODE_LABEL", "value": "nvidia.com/device-plugin.config"},
           {"name": "CONFIG_FILE_SRCDIR", "value": "/available-configs"},
           {"name": "CONFIG_FILE_DST", "value": "/config/config.yaml"},
           {"name": "FALLBACK_STRATEGIES", "value": fallbacks}]
    if default:
        env.append({"name": "DEFAULT_CONFIG", "value": default})
    else:
        env.append({"name": "DEFAULT_CONFIG"})  # `value: {{ .Values.config.default }}` renders to null
    return {"name": name, "image": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0", "command": ["config-manager"],
            "env": env, "volumeMounts": [{"name": "available-configs", "mountPath": "/available-configs"},
                                         {"name": "config", "mountPath": "/config"}]}


def chart_pod(node: str = "gpu-1", *, gfd: bool = False, configmap: str | None = CM[1], phase: str = "Running",
              name: str | None = None, created: str = "2026-11-30T10:00:00Z", **cm_kwargs) -> dict:
    """A pod of the nvidia-device-plugin chart 0.20.0 (plugin or GFD DaemonSet)."""
    main = "gpu-feature-discovery" if gfd else "nvidia-device-plugin"
    prefix = "gpu-feature-discovery" if gfd else "nvidia-device-plugin"
    containers = [{"name": f"{prefix}-ctr", "command": [main], "image": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0",
                   "env": [{"name": "CONFIG_FILE", "value": "/config/config.yaml"}] if configmap else []}]
    spec: dict = {"nodeName": node, "containers": containers, "volumes": [{"name": "config", "emptyDir": {}}]}
    if configmap:
        spec["initContainers"] = [_config_manager(f"{prefix}-init", **cm_kwargs)]
        containers.insert(0, _config_manager(f"{prefix}-sidecar", **cm_kwargs))
        spec["volumes"].append({"name": "available-configs", "configMap": {"name": configmap}})
    return {"metadata": {"name": name or f"{main}-{node}", "namespace": CM[0], "uid": f"uid-{name or main}-{node}",
                         "creationTimestamp": created,
                         "labels": {"app.kubernetes.io/name": "nvidia-device-plugin",
                                    "app.kubernetes.io/instance": "nvdp"}},
            "spec": spec, "status": {"phase": phase}}


def static_plugin_pod(node: str = "gpu-1") -> dict:
    """deployments/static/nvidia-device-plugin.yml: no config, image entrypoint."""
    return {"metadata": {"name": f"nvidia-device-plugin-daemonset-{node}", "namespace": "kube-system",
                         "uid": f"uid-static-{node}", "labels": {"name": "nvidia-device-plugin-ds"}},
            "spec": {"nodeName": node, "containers": [{"name": "nvidia-device-plugin-ctr",
                                                       "image": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"}]},
            "status": {"phase": "Running"}}


def ascend_pod(node: str = "npu-1") -> dict:
    """MindCluster's ascendplugin-volcano.yaml pod."""
    return {"metadata": {"name": f"ascend-device-plugin-daemonset-{node}", "namespace": "kube-system",
                         "uid": f"uid-ascend-{node}", "labels": {"name": "ascend-device-plugin-ds"}},
            "spec": {"nodeName": node, "containers": [{"name": "device-plugin-01", "command": ["/bin/bash", "-c", "--"],
                                                       "args": ["device-plugin -volcanoType=true"]}]},
            "status": {"phase": "Running"}}


def node(name: str = "gpu-1", labels: dict | None = None, capacity: dict | None = None,
         annotations: dict | None = None) -> dict:
    base = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})},
                         "annotations": dict(annotations or {})},
            "status": {"capacity": {**base, **(capacity or {})}, "allocatable": {**base, **(capacity or {})}}}


CONFIGMAPS = {CM: {"default": PLAIN, "ts4": TS4}}


# ------------------------------------------------------------------ which pods count
def test_selectors():
    assert dm.parse_selector("a=b, c!=d,e,!f,g==h") == [("=", "a", "b"), ("!=", "c", "d"), ("exists", "e", None),
                                                        ("!exists", "f", None), ("=", "g", "h")]
    assert dm.selector_matches("a=b,!f", {"a": "b"}) and not dm.selector_matches("a=b,!f", {"a": "b", "f": ""})
    for bad in ("", "a in (b)"):
        with pytest.raises(ValueError):
            dm.parse_selector(bad)


def test_roles_of_real_pods():
    assert dm.pod_roles(chart_pod()) == {dm.NVIDIA_PLUGIN}
    assert dm.pod_roles(chart_pod(gfd=True)) == {dm.GFD}  # same chart labels, told apart by container
    assert dm.pod_roles(static_plugin_pod()) == {dm.NVIDIA_PLUGIN}
    assert dm.pod_roles(ascend_pod()) == {dm.ASCEND_PLUGIN}
    standalone_gfd = {"metadata": {"labels": {"app.kubernetes.io/name": "gpu-feature-discovery"}},
                      "spec": {"containers": [{"name": "gpu-feature-discovery"}]}}
    assert dm.pod_roles(standalone_gfd) == {dm.GFD}
    other = {"metadata": {"labels": {"app.kubernetes.io/name": "nvidia-device-plugin"}},
             "spec": {"containers": [{"name": "something-else"}]}}
    assert dm.pod_roles(other) == set() and dm.might_play_a_role(other)
    custom = dm.matchers_from(["ascend-device-plugin:app=my-ascend"])
    assert dm.pod_roles(ascend_pod(), custom) == set()
    with pytest.raises(dm.DeviceManagerError, match="ROLE:SELECTOR"):
        dm.matchers_from(["nope:a=b"])


def test_running_means_bound_running_not_terminating():
    assert dm.pod_running(chart_pod())
    assert not dm.pod_running(chart_pod(phase="Pending"))
    terminating = chart_pod()
    terminating["metadata"]["deletionTimestamp"] = "2026-11-30T10:00:00Z"
    assert not dm.pod_running(terminating)


# ------------------------------------------------------------------ the plugin's config
def test_config_source_from_chart_pod():
    src = dm.config_source(chart_pod(default="ts4", fallbacks="named"))
    assert src == dm.ConfigSource(CM[0], CM[1], None, "nvidia.com/device-plugin.config", "ts4", ("named",))
    assert dm.config_source(chart_pod(configmap=None)) is None
    assert dm.config_source(static_plugin_pod()) is None


def test_config_source_from_a_mounted_file():
    pod = static_plugin_pod()
    pod["spec"]["containers"][0].update(args=["--config-file=/etc/nvdp/config.yaml"],
                                        volumeMounts=[{"name": "cfg", "mountPath": "/etc/nvdp"}])
    pod["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "plain-cm"}}]
    assert dm.config_source(pod) == dm.ConfigSource("kube-system", "plain-cm", "config.yaml")
    pod["spec"]["containers"][0].update(args=[], env=[{"name": "CONFIG_FILE", "value": "/etc/nvdp/c.yaml"}],
                                        volumeMounts=[{"name": "cfg", "mountPath": "/etc/nvdp/c.yaml",
                                                       "subPath": "ts"}])
    assert dm.config_source(pod) == dm.ConfigSource("kube-system", "plain-cm", "ts")


@pytest.mark.parametrize(("files", "labels", "default", "fallbacks", "expected"), [
    ({"default": "D", "ts4": "T"}, {}, "", ("named", "single"), "D"),
    ({"default": "D", "ts4": "T"}, {dm.CONFIG_LABEL: "ts4"}, "", ("named", "single"), "T"),
    ({"a": "A", "ts4": "T"}, {}, "ts4", ("named",), "T"),
    ({"only": "O"}, {}, "", ("named", "single"), "O"),
    ({"a": "A", "b": "B"}, {}, "", ("named", "empty"), None),
])
def test_select_config_like_config_manager(files, labels, default, fallbacks, expected):
    src = dm.ConfigSource("ns", "cm", None, dm.CONFIG_LABEL, default, fallbacks)
    assert dm.select_config(src, files, labels) == expected


@pytest.mark.parametrize(("files", "labels", "default", "message"), [
    (None, {}, "", "does not exist"),
    ({}, {}, "", "no configuration files available"),
    ({"default": "D"}, {dm.CONFIG_LABEL: "nope"}, "", "specified config nope does not exist"),
    ({"default": "D"}, {}, "nope", "specified config nope does not exist"),
    ({"a": "A", "b": "B"}, {}, "", "all fallbacks failed"),
])
def test_select_config_failures(files, labels, default, message):
    src = dm.ConfigSource("ns", "cm", None, dm.CONFIG_LABEL, default, ("named", "single"))
    with pytest.raises(dm.PluginConfigError, match=message):
        dm.select_config(src, files, labels)


def test_parse_sharing():
    assert dm.parse_sharing(None) == dm.GpuSharing()
    assert dm.parse_sharing(PLAIN) == dm.GpuSharing()
    ts = dm.parse_sharing(TS4)
    assert (ts.strategy, ts.replicas, ts.resource, ts.renamed, ts.fail_requests_greater_than_one) == \
        ("time-slicing", 4, "nvidia.com/gpu", False, False)
    renamed = dm.parse_sharing(json.dumps({"version": "v1", "sharing": {"timeSlicing": {
        "renameByDefault": True, "failRequestsGreaterThanOne": True,
        "resources": [{"name": "gpu", "replicas": 10, "rename": "ignored"}]}}}))  # short name; rename ignored
    assert (renamed.replicas, renamed.resource, renamed.fail_requests_greater_than_one) == \
        (10, "nvidia.com/gpu.shared", True)
    mps = dm.parse_sharing("sharing:\n  mps:\n    resources: [{name: nvidia.com/gpu, replicas: 2}]\n")
    assert (mps.strategy, mps.replicas, mps.fail_requests_greater_than_one) == ("mps", 2, True)
    other = dm.parse_sharing("sharing:\n  timeSlicing:\n    resources: [{name: nvidia.com/mig-1g.5gb, replicas: 2}]\n")
    assert other == dm.GpuSharing()


@pytest.mark.parametrize(("text", "message"), [
    ("version: v2\n", "unknown version: v2"),
    ("sharing:\n  timeSlicing: {}\n", "no resources specified"),
    ("sharing:\n  timeSlicing:\n    resources: [{name: nvidia.com/gpu, replicas: 1}]\n", "replicas must be >= 2"),
    ("sharing:\n  timeSlicing:\n    resources: [{name: nvidia.com/gpu}]\n", "no replicas specified"),
    ("sharing:\n  timeSlicing:\n    resources: [{replicas: 4}]\n", "no resource name"),
    ("sharing:\n  timeSlicing:\n    renameByDefault: yes please\n    resources: [{name: gpu, replicas: 2}]\n",
     "renameByDefault"),
    ("[1, 2]\n", "expected a mapping"),
])
def test_parse_sharing_refuses_what_the_plugin_refuses(text, message):
    with pytest.raises(dm.PluginConfigError, match=message):
        dm.parse_sharing(text)


def test_gfd_labels():
    assert dm.gfd_labels(A100, dm.GpuSharing()) == {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB", "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.memory": "40960", "nvidia.com/gpu.replicas": "1", "nvidia.com/gpu.sharing-strategy": "none"}
    shared = dm.gfd_labels(T4, dm.GpuSharing("time-slicing", 4))
    assert shared["nvidia.com/gpu.product"] == "Tesla-T4-SHARED" and shared["nvidia.com/gpu.replicas"] == "4"
    assert shared["nvidia.com/gpu.sharing-strategy"] == "time-slicing"
    renamed = dm.gfd_labels(T4, dm.GpuSharing("time-slicing", 4, renamed=True))
    assert renamed["nvidia.com/gpu.product"] == "Tesla-T4"  # renamed resources are not marked -SHARED
    assert dm.sanitise_product("NVIDIA H100 80GB HBM3") == "NVIDIA-H100-80GB-HBM3"


# ------------------------------------------------------------------ desired_node_state
def test_nothing_without_a_plugin_pod_or_without_devices():
    assert dm.desired_node_state(node(), T4, [], CONFIGMAPS) == dm.NodeState()
    assert dm.desired_node_state(node("cpu-1"), None, [chart_pod("cpu-1")], CONFIGMAPS) == dm.NodeState()
    # a pod on another Node, a pod not Running, a terminating one: nothing here
    pending = chart_pod(phase="Pending")
    assert dm.desired_node_state(node(), T4, [chart_pod("gpu-2"), pending], CONFIGMAPS).resources == {}


def test_plugin_advertises_devices_times_replicas():
    state = dm.desired_node_state(node(), T4, [chart_pod()], CONFIGMAPS)
    assert state.resources == {"nvidia.com/gpu": 2} and state.labels == {} and not state.problems
    labelled = node(labels={dm.CONFIG_LABEL: "ts4"})
    state = dm.desired_node_state(labelled, T4, [chart_pod()], CONFIGMAPS)
    assert state.resources == {"nvidia.com/gpu": 8} and state.sharing.strategy == "time-slicing"
    state = dm.desired_node_state(node(), A100, [chart_pod(default="ts4")], CONFIGMAPS)
    assert state.resources == {"nvidia.com/gpu": 32}
    assert dm.desired_node_state(node(), T4, [static_plugin_pod()], {}).resources == {"nvidia.com/gpu": 2}


def test_rename_by_default_advertises_gpu_shared():
    cms = {CM: {"default": "sharing:\n  timeSlicing:\n    renameByDefault: true\n"
                           "    resources: [{name: nvidia.com/gpu, replicas: 3}]\n"}}
    state = dm.desired_node_state(node(), T4, [chart_pod(), chart_pod(gfd=True)], cms)
    assert state.resources == {"nvidia.com/gpu.shared": 6}
    assert state.labels["nvidia.com/gpu.product"] == "Tesla-T4" and state.labels["nvidia.com/gpu.replicas"] == "3"


def test_gfd_labels_only_while_gfd_runs():
    state = dm.desired_node_state(node(labels={dm.CONFIG_LABEL: "ts4"}), T4, [chart_pod(gfd=True)], CONFIGMAPS)
    assert state.resources == {} and state.labels["nvidia.com/gpu.sharing-strategy"] == "time-slicing"
    assert state.labels["nvidia.com/gpu.count"] == "2" and state.labels["nvidia.com/gpu.product"] == "Tesla-T4-SHARED"


def test_config_problems_advertise_nothing():
    state = dm.desired_node_state(node(labels={dm.CONFIG_LABEL: "missing"}), T4, [chart_pod()], CONFIGMAPS)
    assert state.resources == {} and "specified config missing does not exist" in state.problems[0]
    state = dm.desired_node_state(node(), T4, [chart_pod()], {})  # its ConfigMap is not there: pod cannot start
    assert state.resources == {} and "does not exist" in state.problems[0]


def test_newest_plugin_pod_wins():
    old = chart_pod(name="old", created="2026-11-30T09:00:00Z", configmap=None)
    new = chart_pod(name="new", created="2026-11-30T10:00:00Z", default="ts4")
    assert dm.desired_node_state(node(), T4, [new, old], CONFIGMAPS).resources == {"nvidia.com/gpu": 8}


def test_vendor_must_match():
    assert dm.desired_node_state(node("npu-1"), NPU, [chart_pod("npu-1")], CONFIGMAPS).resources == {}
    assert dm.desired_node_state(node("gpu-1"), T4, [ascend_pod("gpu-1")], CONFIGMAPS).resources == {}


def test_ascend_plugin_advertises_npus():
    assert dm.desired_node_state(node("npu-1"), NPU, [ascend_pod()], {}).resources == {"huawei.com/Ascend910": 8}
    assert dm.desired_node_state(node("npu-1"), P310, [ascend_pod()], {}).resources == {"huawei.com/Ascend310P": 4}


# ------------------------------------------------------------------ patches and ownership
def test_patches_add_then_nothing_then_remove():
    n = node()
    desired = dm.desired_node_state(n, T4, [chart_pod(), chart_pod(gfd=True)], CONFIGMAPS)
    patches = dm.plan_node_patches(n, desired)
    assert patches.status == {"status": {"capacity": {"nvidia.com/gpu": "2"}, "allocatable": {"nvidia.com/gpu": "2"}}}
    assert patches.before["metadata"]["labels"]["nvidia.com/gpu.product"] == "Tesla-T4"
    annotation = json.loads(patches.before["metadata"]["annotations"][dm.OWNER_ANNOTATION])
    assert annotation["resources"] == ["nvidia.com/gpu"] and "nvidia.com/gpu.count" in annotation["labels"]
    assert patches.after is None

    applied = _apply(n, patches)
    assert not dm.plan_node_patches(applied, desired)  # idempotent
    assert applied["status"]["capacity"]["cpu"] == "32"  # other resources untouched

    gone = dm.plan_node_patches(applied, dm.NodeState())
    assert gone.status == {"status": {"capacity": {"nvidia.com/gpu": None}, "allocatable": {"nvidia.com/gpu": None}}}
    assert set(gone.before["metadata"]["labels"]) == set(annotation["labels"])
    assert all(v is None for v in gone.before["metadata"]["labels"].values())
    # the annotation keeps covering the resource until the status patch took it away
    assert json.loads(gone.before["metadata"]["annotations"][dm.OWNER_ANNOTATION]) == \
        {"resources": ["nvidia.com/gpu"], "labels": []}
    assert gone.after == {"metadata": {"annotations": {dm.OWNER_ANNOTATION: None}}}
    cleaned = _apply(applied, gone)
    assert cleaned["metadata"]["labels"] == n["metadata"]["labels"]
    assert cleaned["status"] == n["status"] and dm.OWNER_ANNOTATION not in cleaned["metadata"]["annotations"]


def test_only_owned_things_are_removed():
    n = node(capacity={"nvidia.com/gpu": "4"}, labels={"nvidia.com/gpu.present": "true",
                                                      "nvidia.com/gpu.product": "set-by-someone"})
    assert not dm.plan_node_patches(n, dm.NodeState())


def test_rename_switch_moves_the_resource():
    n = _apply(node(), dm.plan_node_patches(node(), dm.NodeState(resources={"nvidia.com/gpu": 2})))
    patches = dm.plan_node_patches(n, dm.NodeState(resources={"nvidia.com/gpu.shared": 6}))
    assert patches.status["status"]["capacity"] == {"nvidia.com/gpu.shared": "6", "nvidia.com/gpu": None}
    assert json.loads(patches.before["metadata"]["annotations"][dm.OWNER_ANNOTATION])["resources"] == \
        ["nvidia.com/gpu", "nvidia.com/gpu.shared"]
    assert json.loads(patches.after["metadata"]["annotations"][dm.OWNER_ANNOTATION])["resources"] == \
        ["nvidia.com/gpu.shared"]


def test_bad_ownership_annotation_is_ignored():
    assert dm.owned(node(annotations={dm.OWNER_ANNOTATION: "{not json"})) == (set(), set())
    assert dm.owned(node(annotations={dm.OWNER_ANNOTATION: "[1]"})) == (set(), set())


def _merge(target: dict, patch: dict) -> dict:
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            out[k] = _merge(out.get(k) or {}, v)
        else:
            out[k] = v
    return out


def _apply(n: dict, patches: dm.NodePatches) -> dict:
    for body in (patches.before, patches.status, patches.after):
        if body:
            n = _merge(n, body)
    return n


# ------------------------------------------------------------------ cache + reconcile against a fake API
class _Resp:
    def __init__(self, obj):
        self.data = json.dumps(obj).encode()


class FakeCore:
    """patch_node / patch_node_status applying merge patches to a dict of Nodes."""

    def __init__(self, nodes: dict[str, dict]):
        self.nodes = nodes
        self.calls: list[tuple[str, str, dict]] = []

    def _patch(self, kind, name, body, **kw):
        assert kw["_content_type"] == "application/merge-patch+json"
        self.calls.append((kind, name, body))
        self.nodes[name] = _merge(self.nodes[name], body)
        return _Resp(self.nodes[name])

    def patch_node(self, name, body, **kw):
        return self._patch("node", name, body, **kw)

    def patch_node_status(self, name, body, **kw):
        return self._patch("status", name, body, **kw)


def _fleet_file(tmp_path, machines):
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"machines": machines}))
    return path


def test_manager_reconciles_from_events(tmp_path):
    fleet = _fleet_file(tmp_path, [{"name": "gpu-1", "vendor": "nvidia", "model": "T4", "count": 2},
                                   {"name": "npu-1", "vendor": "ascend", "model": "910B", "count": 8},
                                   {"name": "cpu-1", "vendor": "none", "count": 0}])
    core = FakeCore({n: node(n) for n in ("gpu-1", "npu-1", "cpu-1")})
    logs: list[str] = []
    m = dm.DeviceManager(core, fleet, log=logs.append)
    assert m.refresh_fleet() and set(m.fleet) == {"gpu-1", "npu-1"} and not m.refresh_fleet()
    m.replace("nodes", [json.loads(json.dumps(v)) for v in core.nodes.values()])
    m.replace("configmaps", [{"metadata": {"namespace": CM[0], "name": CM[1]}, "data": CONFIGMAPS[CM]}])
    assert not m.is_synced()
    m.replace("pods", [])
    m.work(0)
    assert core.calls == []  # nothing runs: nothing to do

    m.event("pods", "ADDED", chart_pod())
    m.event("pods", "ADDED", ascend_pod())
    m.event("pods", "ADDED", {"metadata": {"uid": "x", "name": "web"}, "spec": {"nodeName": "cpu-1"}})
    assert len(m.pods) == 2  # only (possible) plugin pods are cached
    m.work(0)
    assert core.nodes["gpu-1"]["status"]["capacity"]["nvidia.com/gpu"] == "2"
    assert core.nodes["npu-1"]["status"]["allocatable"]["huawei.com/Ascend910"] == "8"
    assert m.advertised == {"gpu-1": {"resources": {"nvidia.com/gpu": 2}, "labels": {}},
                            "npu-1": {"resources": {"huawei.com/Ascend910": 8}, "labels": {}}}

    calls = len(core.calls)
    m.work(0)
    for name in ("gpu-1", "npu-1", "cpu-1"):
        assert not m.reconcile(name)  # converged: no more patches
    assert len(core.calls) == calls

    # the config label on the Node switches to time-slicing; a configmap change is seen too
    relabelled = core.nodes["gpu-1"] = _merge(core.nodes["gpu-1"], {"metadata": {"labels": {dm.CONFIG_LABEL: "ts4"}}})
    m.event("nodes", "MODIFIED", relabelled)
    m.work(0)
    assert core.nodes["gpu-1"]["status"]["capacity"]["nvidia.com/gpu"] == "8"
    m.event("configmaps", "MODIFIED", {"metadata": {"namespace": CM[0], "name": CM[1]},
                                       "data": {"default": PLAIN, "ts4": TS4.replace("replicas: 4", "replicas: 5")}})
    m.work(0)
    assert core.nodes["gpu-1"]["status"]["capacity"]["nvidia.com/gpu"] == "10"

    # something (kwok's node-initialize from a stale copy, a person) takes it away: put back
    clobbered = _merge(core.nodes["gpu-1"], {"status": {"capacity": {"nvidia.com/gpu": None}}})
    core.nodes["gpu-1"] = clobbered
    m.event("nodes", "MODIFIED", clobbered)
    m.work(0)
    assert core.nodes["gpu-1"]["status"]["capacity"]["nvidia.com/gpu"] == "10"

    # a broken config: advertised nothing, logged once
    bad = {"default": PLAIN, "ts4": "version: v9\n"}
    m.event("configmaps", "MODIFIED", {"metadata": {"namespace": CM[0], "name": CM[1]}, "data": bad})
    m.work(0)
    m.mark_all()
    m.work(0)
    assert "nvidia.com/gpu" not in core.nodes["gpu-1"]["status"]["capacity"]
    assert sum("unknown version: v9" in line for line in logs) == 1

    # pods go: what was set goes
    m.event("pods", "DELETED", ascend_pod())
    m.work(0)
    assert "huawei.com/Ascend910" not in core.nodes["npu-1"]["status"]["capacity"]
    assert dm.OWNER_ANNOTATION not in core.nodes["npu-1"]["metadata"]["annotations"]
    assert m.advertised == {}

    # a Node that is deleted is forgotten; a 404 while patching is no error
    m.event("nodes", "DELETED", core.nodes["npu-1"])
    m.work(0)
    assert "npu-1" not in m.nodes


def test_manager_retries_failed_patches(tmp_path):
    fleet = _fleet_file(tmp_path, [{"name": "gpu-1", "vendor": "nvidia", "model": "T4", "count": 2}])
    core = FakeCore({"gpu-1": node()})
    failures = [RuntimeError("connection refused")]
    real = core.patch_node

    def flaky(name, body, **kw):
        if failures:
            raise failures.pop()
        return real(name, body, **kw)

    core.patch_node = flaky
    logs: list[str] = []
    m = dm.DeviceManager(core, fleet, log=logs.append)
    m.refresh_fleet()
    m.stop.wait = lambda t: None  # no real back-off in a unit test
    for kind, items in (("nodes", [node()]), ("configmaps", []), ("pods", [static_plugin_pod()])):
        m.replace(kind, items)
    m.work(0)
    assert any("retrying" in line for line in logs) and "gpu-1" in m._dirty
    m.work(0)
    assert core.nodes["gpu-1"]["status"]["capacity"]["nvidia.com/gpu"] == "2"


def test_load_fleet(tmp_path):
    assert dm.load_fleet(tmp_path / "missing.json") == {}
    (tmp_path / "bad.json").write_text("{")
    assert dm.load_fleet(tmp_path / "bad.json") == {}
    fleet = dm.load_fleet(_fleet_file(tmp_path, [{"name": "a", "vendor": "nvidia", "model": "A100", "count": 8},
                                                 {"name": "b", "vendor": "nvidia", "model": "Z9", "count": 1},
                                                 {"name": "c", "vendor": "none", "model": "", "count": 0}]))
    assert fleet == {"a": A100}


# ------------------------------------------------------------------ process management without a cluster
def test_up_needs_a_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.setattr(dm.paths, "STATE_DIR", tmp_path / "state")
    with pytest.raises(dm.DeviceManagerError, match="no kubeconfig"):
        dm.up("worker", kubeconfig=tmp_path / "none.yaml", fleet_state=tmp_path / "fleet.json")
    with pytest.raises(dm.DeviceManagerError, match="ROLE:SELECTOR"):
        dm.up("worker", kubeconfig=tmp_path / "none.yaml", selectors=["bad"])
    assert [r["running"] for r in dm.status()] == [False]
    dm.down()  # nothing to stop


def test_up_reports_a_process_that_dies(tmp_path, monkeypatch):
    monkeypatch.setattr(dm.paths, "STATE_DIR", tmp_path / "state")
    kubeconfig = tmp_path / "kc.yaml"
    kubeconfig.write_text("not: a kubeconfig\n")
    with pytest.raises(dm.DeviceManagerError, match="exited"):
        dm.up("worker", kubeconfig=kubeconfig, fleet_state=tmp_path / "fleet.json", timeout=20)
    assert not (tmp_path / "state" / "devicemanager" / "worker.pid").exists()


def test_cli_registration():
    parser = argparse.ArgumentParser()
    dm.register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["devicemanager", "up", "--cluster", "manager", "--selector", "gpu-feature-discovery:a=b"])
    assert args.cluster == "manager" and args.selector == ["gpu-feature-discovery:a=b"] and callable(args.func)
    assert parser.parse_args(["devicemanager", "down"]).cluster is None
