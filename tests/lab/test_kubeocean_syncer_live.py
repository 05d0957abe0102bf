"""The Kubeocean stand-in against two real control planes: two PRIVATE kwokctl clusters (kwokctl's binary
runtime with the lab's cached binaries, work dirs under /tmp, free ports, with kube-controller-manager:
its token controller fills the syncer's ServiceAccount token Secret, its Deployment controllers run the
charts' Deployments), never the lab's clusters. Skipped when the binaries are not built.

The whole path of the issue's "Show" list, the way the installation scripts do it (§3 of the reference):
the worker chart with ``helm``, the syncer's token turned into a kubeconfig (``hack/kubeconfig.sh``), the
policy; the manager chart, the kubeconfig Secret and the ClusterBinding. Then: a Secret with a wrong
token fails the binding (``Unauthorized`` in its status) and unbinds cleanly; vnodes appear for exactly
the lent Nodes with GPU capacity per the limits (50% of 8 GPUs = 4, less what a worker pod requests);
the manager's real kube-scheduler places a pod tolerating the vnode taint on a vnode and refuses one
asking for more GPUs than lent; moving the lab clock out of the window taints the vnodes (NoExecute:
the pod is reclaimed) and back in removes the taint; unbind removes every vnode, the syncer and proxier
and both finalizers; uninstall leaves no Kubeocean object in either cluster. The timings are printed
as JSON (run with ``-s`` to see them).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from labctl import clusters, k8sbin, paths, procs
from labctl import kubeocean_syncer as ko
from labctl.repos import charts
from labctl.waiting import wait_for

pytestmark = pytest.mark.slow

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kwokctl", "kubectl")
WORKER, MANAGER = "kolive-worker", "kolive-manager"
WAIT = 90
BINDING, CLUSTER_ID = "example-cluster", "cls-example"
GPU = "nvidia.com/gpu"
# examples/resourceleasingpolicy_sample.yaml with a 50% GPU limit and a GPU-node selector
POLICY = {"apiVersion": "cloud.tencent.com/v1beta1", "kind": "ResourceLeasingPolicy",
          "metadata": {"name": "example-policy"},
          "spec": {"cluster": BINDING, "forceReclaim": True,
                   "nodeSelector": {"nodeSelectorTerms": [{"matchExpressions": [
                       {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}]},
                   "timeWindows": [{"start": "18:00", "end": "08:00",
                                    "days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]},
                                   {"start": "00:00", "end": "23:59", "days": ["saturday", "SUNDAY"]}],
                   "resourceLimits": [{"resource": "cpu", "quantity": "96", "percent": 90},
                                      {"resource": "memory", "percent": 95},
                                      {"resource": GPU, "percent": 50}]}}
# worker Nodes: two lent GPU nodes, a GPU node kept for inference (binding selector), a CPU node (policy selector)
WORKER_NODES = [("gpu-1", {"kubeocean.io/role": "worker", "nvidia.com/gpu.present": "true"}, "8"),
                ("gpu-2", {"kubeocean.io/role": "worker", "nvidia.com/gpu.present": "true"}, "8"),
                ("gpu-infer", {"kubeocean.io/role": "infer", "nvidia.com/gpu.present": "true"}, "8"),
                ("cpu-1", {"kubeocean.io/role": "worker"}, None)]
LENT = {f"vnode-{CLUSTER_ID}-gpu-1", f"vnode-{CLUSTER_ID}-gpu-2"}
IN_WINDOW = "2026-12-06T23:30"      # a Sunday night
OUT_OF_WINDOW = "2026-12-09T12:00"  # a Wednesday noon


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(argv, env, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True, check=False,
                          timeout=timeout)


class Cluster:
    """One private cluster: its kubeconfig and clients."""

    def __init__(self, name: str, kubeconfig: Path) -> None:
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config

        self.name, self.kubeconfig = name, kubeconfig
        self.api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        self.core = k8s.CoreV1Api(self.api)
        self.apps = k8s.AppsV1Api(self.api)
        self.custom = k8s.CustomObjectsApi(self.api)
        self.ext = k8s.ApiextensionsV1Api(self.api)
        self.rbac = k8s.RbacAuthorizationV1Api(self.api)
        self.sched = k8s.SchedulingV1Api(self.api)

    def get(self, path: str) -> dict | None:
        try:
            return ko.api_request(self.api, "GET", path)
        except Exception as exc:
            if ko.status_of(exc) == 404:
                return None
            raise

    def nodes(self) -> dict[str, dict]:
        return {n["metadata"]["name"]: n for n in ko.api_request(self.api, "GET", "/api/v1/nodes")["items"]}


def _node(name: str, labels: dict, gpus: str | None) -> dict:
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    if gpus:
        resources[GPU] = gpus
    return {"metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"kubernetes.io/hostname": name, "type": "kwok", **labels}},
            "status": {"capacity": resources, "allocatable": resources}}


@pytest.fixture(scope="module")
def lab():
    bindir = k8sbin.bin_dir()
    missing = [b for b in BINARIES if not (bindir / b).is_file()]
    if missing:
        pytest.skip(f"lab binaries not built ({', '.join(missing)} missing in {bindir}): `lab build`")
    try:
        helm = charts.helm_binary()
    except Exception as exc:
        pytest.skip(str(exc))
    work = Path(tempfile.mkdtemp(prefix="ko-live-"))
    env = clusters._kwokctl_env(bindir)
    env["KWOK_WORKDIR"] = str(work / "kwok")
    (work / "kwokctl.yaml").write_text(clusters._kwokctl_config(bindir))
    helm_env = dict(os.environ, HELM_CACHE_HOME=str(work / "helm/c"), HELM_CONFIG_HOME=str(work / "helm/cf"),
                    HELM_DATA_HOME=str(work / "helm/d"))
    mp = pytest.MonkeyPatch()
    made: dict[str, Cluster] = {}
    try:
        for name in (WORKER, MANAGER):   # one at a time: kwokctl picks its components' ports when it sets up
            kubeconfig = work / f"{name}.yaml"
            created = _run([bindir / "kwokctl", "create", "cluster", "--name", name, "--config", work / "kwokctl.yaml",
                            "--kube-apiserver-port", _free_port(), "--kubeconfig", kubeconfig, "--wait", "120s"], env)
            assert created.returncode == 0, created.stderr[-2000:]
            made[name] = Cluster(name, kubeconfig)
        mp.setattr(paths, "STATE_DIR", work / "state")
        worker, manager = made[WORKER], made[MANAGER]
        for name, labels, gpus in WORKER_NODES:
            worker.core.create_node(_node(name, labels, gpus))
        manager.core.create_node(_node("manager-cpu-1", {}, None))
        for c in (worker, manager):
            wait_for(lambda c=c: all(any(x.type == "Ready" and x.status == "True" for x in n.status.conditions or [])
                                     for n in c.core.list_node().items), WAIT, f"{c.name}: Nodes Ready")
            wait_for(lambda c=c: c.core.read_namespaced_service_account("default", "default"), WAIT,
                     f"{c.name}: the controller-manager (default ServiceAccount)")
        yield {"worker": worker, "manager": manager, "work": work, "helm": helm, "helm_env": helm_env}
    finally:
        with contextlib.suppress(Exception):
            ko.down()
        mp.undo()
        for c in made.values():
            with contextlib.suppress(Exception):
                c.api.close()
        for name in (MANAGER, WORKER):
            _run([bindir / "kwokctl", "delete", "cluster", "--name", name], env, timeout=120)
        for pid in procs.processes_matching(str(work)):  # anything of ours kwokctl lost track of
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not procs.processes_matching(str(work)), 30, "the private clusters' processes to exit")
        shutil.rmtree(work, ignore_errors=True)


def _helm(lab, cluster: Cluster, *args) -> str:
    proc = _run([lab["helm"], *args, "--kubeconfig", cluster.kubeconfig], lab["helm_env"])
    assert proc.returncode == 0, f"helm {args}: {proc.stderr[-2000:]}"
    return proc.stdout


def _syncer_kubeconfig(worker: Cluster) -> str:
    """What hack/kubeconfig.sh writes: the current context's server, the SA token, namespace kubeocean-worker."""
    secret = wait_for(lambda: (lambda s: s if (s.data or {}).get("token") else None)(
        worker.core.read_namespaced_secret("kubeocean-syncer", "kubeocean-worker")), WAIT,
        "the token controller to fill Secret kubeocean-worker/kubeocean-syncer")
    server = yaml.safe_load(worker.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "kubeocean-syncer",
        "clusters": [{"name": "worker", "cluster": {"server": server,
                                                    "certificate-authority-data": secret.data["ca.crt"]}}],
        "users": [{"name": "kubeocean-syncer", "user": {"token": base64.b64decode(secret.data["token"]).decode()}}],
        "contexts": [{"name": "kubeocean-syncer", "context": {"cluster": "worker", "user": "kubeocean-syncer",
                                                             "namespace": "kubeocean-worker"}}]})


def _kubeconfig_secret(manager: Cluster, name: str, kubeconfig: str) -> None:
    body = {"metadata": {"name": name, "namespace": "kubeocean-system"},
            "data": {"kubeconfig": base64.b64encode(kubeconfig.encode()).decode()}}
    manager.core.create_namespaced_secret("kubeocean-system", body)


def _binding(name: str, cluster_id: str, secret: str) -> dict:
    return {"apiVersion": "cloud.tencent.com/v1beta1", "kind": "ClusterBinding", "metadata": {"name": name},
            "spec": {"clusterID": cluster_id, "mountNamespace": "kubeocean-worker",
                     "nodeSelector": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubeocean.io/role", "operator": "In", "values": ["worker"]}]}]},
                     "secretRef": {"name": secret, "namespace": "kubeocean-system"}}}


def _vnodes(manager: Cluster) -> dict[str, dict]:
    return {n: v for n, v in manager.nodes().items()
            if (v["metadata"].get("labels") or {}).get(ko.LABEL_MANAGED_BY) == ko.MANAGED_BY_VALUE}


def _ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions") or [])


def _phase(manager: Cluster, name: str) -> tuple[str | None, str | None]:
    b = manager.get(f"{ko.BINDINGS_PATH}/{name}") or {}
    cond = next((c for c in (b.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})
    return (b.get("status") or {}).get("phase"), cond.get("reason")


def _row() -> dict:
    return next(r for r in ko.status() if r["cluster"] == MANAGER)


def _log(lab) -> str:
    return ko.STANDIN.files(MANAGER)["log"].read_text(errors="replace")


def _wait(lab, condition, what, timeout=WAIT):
    try:
        return wait_for(condition, timeout, what, interval=0.2)
    except Exception:
        pytest.fail(f"{what}: timed out; stand-in log tail:\n" + "\n".join(_log(lab).splitlines()[-25:]))


def _gpu_pod(name: str, gpus: int, tolerate: bool = True) -> dict:
    spec = {"containers": [{"name": "train", "image": "registry.invalid/verl:1",
                            "resources": {"limits": {GPU: str(gpus)}, "requests": {GPU: str(gpus)}}}]}
    if tolerate:
        spec["tolerations"] = [{"key": "kubeocean.io/vnode", "operator": "Exists"}]
    return {"metadata": {"name": name}, "spec": spec}


def test_kubeocean_end_to_end(lab):
    worker, manager = lab["worker"], lab["manager"]
    timings: dict[str, float] = {}
    # --- worker side (install-worker.sh): chart, SA-token kubeconfig, policy
    _helm(lab, worker, "upgrade", "--install", "kubeocean-worker", charts.KUBEOCEAN_WORKER_SOURCE, "--wait",
          "--timeout", "120s")
    kubeconfig = _syncer_kubeconfig(worker)
    worker.custom.create_cluster_custom_object("cloud.tencent.com", "v1beta1", "resourceleasingpolicies", POLICY)
    bad_days = json.loads(json.dumps(POLICY))
    bad_days["metadata"]["name"] = "refused"
    bad_days["spec"]["timeWindows"][0]["days"] = ["Funday"]
    with pytest.raises(Exception, match=r"Funday|days"):   # the CRD validates the day names
        worker.custom.create_cluster_custom_object("cloud.tencent.com", "v1beta1", "resourceleasingpolicies", bad_days)

    # --- manager side (install-manager.sh): chart; the stand-in runs while kubeocean-manager exists
    _helm(lab, manager, "upgrade", "--install", "kubeocean", charts.KUBEOCEAN_SOURCE)
    ko.set_clock(IN_WINDOW, frozen=True)
    row = ko.up(MANAGER, kubeconfig=manager.kubeconfig, timezone="UTC")
    assert row["running"] and row["synced"]
    _wait(lab, lambda: _row()["manager"] == "kubeocean-system/kubeocean-manager", "the stand-in to see "
          "Deployment kubeocean-manager")

    # a Secret with a wrong token: the binding fails with the worker's answer, and unbinds cleanly
    wrong = yaml.safe_load(kubeconfig)
    wrong["users"][0]["user"]["token"] = "not-a-token"
    _kubeconfig_secret(manager, "broken-kubeconfig", yaml.safe_dump(wrong))
    manager.custom.create_cluster_custom_object("cloud.tencent.com", "v1beta1", "clusterbindings",
                                                _binding("broken", "cls-broken", "broken-kubeconfig"))
    _wait(lab, lambda: _phase(manager, "broken") == ("Failed", "Unauthorized"), "binding broken: Failed/Unauthorized")
    assert not _vnodes(manager)
    manager.custom.delete_cluster_custom_object("cloud.tencent.com", "v1beta1", "clusterbindings", "broken")
    _wait(lab, lambda: manager.get(f"{ko.BINDINGS_PATH}/broken") is None, "binding broken to go")
    assert manager.get("/apis/apps/v1/namespaces/kubeocean-system/deployments/kubeocean-syncer-cls-broken") is None
    invalid = _binding("invalid", "Not_Valid", "x")
    with pytest.raises(Exception, match="clusterID"):     # the CRD's pattern
        manager.custom.create_cluster_custom_object("cloud.tencent.com", "v1beta1", "clusterbindings", invalid)

    # --- bind: vnodes for exactly the lent Nodes, GPU capacity per the limits
    _kubeconfig_secret(manager, f"{BINDING}-kubeconfig", kubeconfig)
    started = time.monotonic()
    manager.custom.create_cluster_custom_object("cloud.tencent.com", "v1beta1", "clusterbindings",
                                                _binding(BINDING, CLUSTER_ID, f"{BINDING}-kubeconfig"))
    _wait(lab, lambda: set(_vnodes(manager)) == LENT and all(
        v["status"].get("capacity", {}).get(GPU) == "4" for v in _vnodes(manager).values()), "both vnodes with 4 GPUs")
    timings["bind_to_all_vnodes_s"] = round(time.monotonic() - started, 2)
    _wait(lab, lambda: all(_ready(v) for v in _vnodes(manager).values()), "kwok to make the vnodes Ready")
    timings["bind_to_vnodes_ready_s"] = round(time.monotonic() - started, 2)
    assert _phase(manager, BINDING) == ("Ready", "Synced")
    b = manager.get(f"{ko.BINDINGS_PATH}/{BINDING}")
    assert set(b["metadata"]["finalizers"]) == {ko.MANAGER_FINALIZER, ko.SYNCER_FINALIZER}
    for d in ("kubeocean-syncer-cls-example", "kubeocean-proxier-cls-example"):
        assert manager.get(f"/apis/apps/v1/namespaces/kubeocean-system/deployments/{d}") is not None
    vnode = _vnodes(manager)[f"vnode-{CLUSTER_ID}-gpu-1"]
    labels, status = vnode["metadata"]["labels"], vnode["status"]
    assert labels["kubeocean.io/cluster-binding"] == BINDING
    assert labels["kubeocean.io/physical-cluster-id"] == CLUSTER_ID
    assert labels["kubeocean.io/physical-node-name"] == "gpu-1"
    assert labels["node.kubernetes.io/instance-type"] == "vnode"
    assert labels["kubeocean.io/role"] == "worker" and labels["kubernetes.io/hostname"] == f"vnode-{CLUSTER_ID}-gpu-1"
    assert labels["kubeocean.io/physical-node-uid"] == worker.nodes()["gpu-1"]["metadata"]["uid"]
    assert status["capacity"] == status["allocatable"]
    assert ko.parse_quantity(status["capacity"]["cpu"]) == ko.parse_quantity("28800m")   # min(96, 90% of 32)
    assert [(t["key"], t["effect"]) for t in vnode["spec"]["taints"] if t["key"].startswith("kubeocean.io/")] == [
        ("kubeocean.io/vnode", "NoSchedule")]
    assert ko.VNODE_FINALIZER in vnode["metadata"]["finalizers"]
    _wait(lab, lambda: ko.POLICY_FINALIZER in (worker.get(f"{ko.POLICIES_PATH}/example-policy")["metadata"].get(
        "finalizers") or []), "the policy's finalizer")
    _wait(lab, lambda: (worker.custom.get_cluster_custom_object(
        "cloud.tencent.com", "v1beta1", "resourceleasingpolicies", "example-policy").get("status") or {}).get("phase")
        == "Active", "policy status Active")

    # a non-Kubeocean pod on gpu-1 takes 2 GPUs: 6 free, 50% lent = 3
    worker.core.create_namespaced_pod("default", {"metadata": {"name": "infer"}, "spec": {
        "nodeName": "gpu-1", "containers": [{"name": "vllm", "image": "registry.invalid/vllm:1",
                                             "resources": {"requests": {GPU: "2"}, "limits": {GPU: "2"}}}]}})
    _wait(lab, lambda: _vnodes(manager)[f"vnode-{CLUSTER_ID}-gpu-1"]["status"]["capacity"].get(GPU) == "3",
          "vnode gpu-1 capacity to follow the worker pod (3 GPUs)")

    # --- the manager's real scheduler: a pod tolerating the vnode taint lands on a vnode; more than lent: refused
    manager.core.create_namespaced_pod("default", _gpu_pod("train", 4))
    manager.core.create_namespaced_pod("default", _gpu_pod("too-big", 5))
    manager.core.create_namespaced_pod("default", _gpu_pod("intolerant", 1, tolerate=False))

    def running_on_vnode(name):
        p = manager.core.read_namespaced_pod(name, "default")
        return p.spec.node_name in LENT and p.status.phase == "Running" and p.spec.node_name

    placed = _wait(lab, lambda: running_on_vnode("train"), "pod train to run on a vnode")
    assert placed == f"vnode-{CLUSTER_ID}-gpu-2"          # gpu-1 lends 3 now

    def refused(name):
        p = manager.core.read_namespaced_pod(name, "default")
        cond = next((c for c in p.status.conditions or [] if c.type == "PodScheduled"), None)
        return cond.message if cond is not None and cond.status == "False" else None

    assert f"Insufficient {GPU}" in _wait(lab, lambda: refused("too-big"), "the scheduler to refuse 5 GPUs")
    assert "untolerated taint" in _wait(lab, lambda: refused("intolerant"), "the vnode taint to keep a pod off")

    # --- the lab clock leaves the window: out-of-time-windows taint (NoExecute: force reclaim)
    started = time.monotonic()
    ko.set_clock(OUT_OF_WINDOW, frozen=True)

    def tainted(effect):
        vnodes = _vnodes(manager)
        return len(vnodes) == 2 and all(any(t["key"] == ko.TAINT_OUT_OF_WINDOWS and t["effect"] == effect
                                            for t in v["spec"].get("taints", [])) for v in vnodes.values())

    _wait(lab, lambda: tainted("NoExecute"), "the out-of-time-windows taint on both vnodes")
    timings["clock_out_of_window_to_taints_s"] = round(time.monotonic() - started, 2)
    _wait(lab, lambda: not [p for p in manager.core.list_namespaced_pod("default").items if p.metadata.name == "train"],
          "pod train to be reclaimed")
    timings["clock_out_of_window_to_pod_reclaimed_s"] = round(time.monotonic() - started, 2)
    _wait(lab, lambda: (worker.custom.get_cluster_custom_object(
        "cloud.tencent.com", "v1beta1", "resourceleasingpolicies", "example-policy").get("status") or {}).get("phase")
        == "Inactive", "policy status Inactive")
    ko.set_clock(IN_WINDOW, frozen=True)
    _wait(lab, lambda: not any(t["key"] == ko.TAINT_OUT_OF_WINDOWS for v in _vnodes(manager).values()
                               for t in v["spec"].get("taints", [])), "the taint to go back in the window")

    # --- unbind: every vnode goes, then the syncer's and the manager's finalizers
    for name in ("too-big", "intolerant"):
        manager.core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    manager.core.create_namespaced_pod("default", _gpu_pod("train-again", 2))
    _wait(lab, lambda: running_on_vnode("train-again"), "pod train-again to run on a vnode")
    started = time.monotonic()
    manager.custom.delete_cluster_custom_object("cloud.tencent.com", "v1beta1", "clusterbindings", BINDING)
    _wait(lab, lambda: not _vnodes(manager), "every vnode to go")
    timings["unbind_to_zero_vnodes_s"] = round(time.monotonic() - started, 2)
    _wait(lab, lambda: manager.get(f"{ko.BINDINGS_PATH}/{BINDING}") is None, "the binding to go")
    timings["unbind_to_binding_gone_s"] = round(time.monotonic() - started, 2)
    assert not [p for p in manager.core.list_namespaced_pod("default").items if p.metadata.name == "train-again"]
    for d in ("kubeocean-syncer-cls-example", "kubeocean-proxier-cls-example"):
        assert manager.get(f"/apis/apps/v1/namespaces/kubeocean-system/deployments/{d}") is None
    assert manager.get("/api/v1/namespaces/kubeocean-system/services/kubeocean-proxier-cls-example-svc") is None
    log = _log(lab)
    assert "finalizer kubeocean.io/clusterbinding-syncer released" in log
    assert "finalizer kubeocean.io/clusterbinding-manager released" in log

    # --- uninstall: manager first (uninstall-manager.sh), then worker (uninstall-worker.sh)
    manager.core.delete_namespaced_secret(f"{BINDING}-kubeconfig", "kubeocean-system")
    manager.core.delete_namespaced_secret("broken-kubeconfig", "kubeocean-system")
    _helm(lab, manager, "uninstall", "kubeocean", "--timeout", "120s")
    _wait(lab, lambda: _row()["manager"] is None, "the stand-in to go idle")
    worker.custom.delete_cluster_custom_object("cloud.tencent.com", "v1beta1", "resourceleasingpolicies",
                                               "example-policy")
    # the policy's finalizer stays behind a removed binding: uninstall-worker.sh patches it away
    ko.api_request(worker.api, "PATCH", f"{ko.POLICIES_PATH}/example-policy", body={"metadata": {"finalizers": None}},
                   content_type=ko.MERGE_PATCH)
    _wait(lab, lambda: worker.get(f"{ko.POLICIES_PATH}/example-policy") is None, "the policy to go")
    _helm(lab, worker, "uninstall", "kubeocean-worker", "--timeout", "120s")

    def leftovers(c: Cluster) -> list[str]:
        found = [n.metadata.name for n in c.ext.list_custom_resource_definition().items if n.spec.group ==
                 "cloud.tencent.com"]
        found += [n.metadata.name for n in c.core.list_namespace().items if n.metadata.name.startswith("kubeocean")]
        found += [n.metadata.name for n in c.rbac.list_cluster_role().items if n.metadata.name.startswith("kubeocean")]
        found += [n.metadata.name for n in c.rbac.list_cluster_role_binding().items
                  if n.metadata.name.startswith("kubeocean")]
        found += [n.metadata.name for n in c.sched.list_priority_class().items
                  if n.metadata.name.startswith("kubeocean")]
        found += [n for n, v in c.nodes().items() if (v["metadata"].get("labels") or {}).get(ko.LABEL_MANAGED_BY)]
        found += [f"{d.metadata.namespace}/{d.metadata.name}" for d in c.apps.list_deployment_for_all_namespaces().items
                  if "kubeocean" in d.metadata.name]
        return found

    _wait(lab, lambda: not leftovers(manager) and not leftovers(worker), "no Kubeocean object in either cluster",
          timeout=120)
    print("\nkubeocean live timings: " + json.dumps(timings))
    pid = _row()["pid"]
    ko.down(MANAGER)
    assert not procs.alive(pid) and ko.STANDIN.our_pid(MANAGER) is None
    assert not any(r["running"] for r in ko.status())
