"""Device manager stand-in against a real kube-apiserver, kube-scheduler and kwok: a private cluster
of its own (kwokctl's binary runtime with the lab's cached binaries, a work dir under /tmp, its own
free ports, no controller-manager), never the lab's clusters. Skipped when the binaries are not built.

What it shows: the stand-in advertises ``nvidia.com/gpu`` / ``huawei.com/Ascend910`` while the
plugin pods run (time-slicing from the plugin's ConfigMap and the Node's config label), the
scheduler places pods on that capacity and reports ``Insufficient nvidia.com/gpu`` beyond it, kwok's
heartbeats and its node-initialize stage leave the patched capacity alone, the stand-in survives a
kube-apiserver restart, and everything it set goes when the pods go.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml
from labctl import clusters, devicemanager, k8sbin, paths, procs
from labctl.waiting import wait_for

pytestmark = pytest.mark.slow

BINARIES = ("etcd", "kube-apiserver", "kube-scheduler", "kwok", "kwokctl", "kubectl")
NAME = "dmlive"
WAIT = 60
PLUGIN_NS = "nvidia-device-plugin"
CONFIGMAP = "nvdp-nvidia-device-plugin-configs"
FLEET = [{"name": "gpu-1", "vendor": "nvidia", "model": "T4", "count": 2},
         {"name": "npu-1", "vendor": "ascend", "model": "910B", "count": 4},
         {"name": "cpu-1", "vendor": "none", "model": "", "count": 0}]
TS4 = textwrap.dedent("""\
    version: v1
    sharing:
      timeSlicing:
        resources:
        - name: nvidia.com/gpu
          replicas: 4
    """)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kwokctl(bindir: Path, env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(bindir / "kwokctl"), *args], env=env, capture_output=True, text=True, check=False,
                          timeout=timeout)


def _fast_heartbeats(cluster_dir: Path) -> None:
    """kwok's node heartbeat every ~1 s instead of every 10 min (its stage's delay), so the test sees
    several: rewrite the stage in the cluster's kwok.yaml and restart kwok-controller as kwokctl ran it."""
    config = cluster_dir / "kwok.yaml"
    docs = list(yaml.safe_load_all(config.read_text()))
    component = None
    for doc in docs:
        if doc.get("kind") == "Stage" and doc["metadata"]["name"] == "node-heartbeat-with-lease":
            doc["spec"]["delay"] = {"durationMilliseconds": 1000, "jitterDurationMilliseconds": 1500}
        if doc.get("kind") == "KwokctlConfiguration":
            component = next(c for c in doc["components"] if c["name"] == "kwok-controller")
    config.write_text(yaml.safe_dump_all(docs))
    pid_file = cluster_dir / "pids" / "kwok-controller.pid"
    procs.stop(int(pid_file.read_text().strip()), "kwok-controller", 15)
    env = dict(os.environ)
    env.update({e["name"]: str(e.get("value", "")) for e in component.get("envs") or []})
    pid = procs.spawn_detached([component["binary"], *component.get("args", [])], component["workDir"],
                               cluster_dir / "logs" / "kwok-controller.log", env)
    pid_file.write_text(str(pid))


@pytest.fixture(scope="module")
def cluster():
    bindir = k8sbin.bin_dir()
    missing = [b for b in BINARIES if not (bindir / b).is_file()]
    if missing:
        pytest.skip(f"lab binaries not built ({', '.join(missing)} missing in {bindir}): `lab build`")
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    work = Path(tempfile.mkdtemp(prefix="dm-live-"))
    env = clusters._kwokctl_env(bindir)
    env["KWOK_WORKDIR"] = str(work / "kwok")
    options = yaml.safe_load(clusters._kwokctl_config(bindir))
    options["options"]["disableKubeControllerManager"] = True  # not needed here: lighter
    (work / "kwokctl.yaml").write_text(yaml.safe_dump(options))
    kubeconfig = work / "kubeconfig.yaml"
    api = None
    mp = pytest.MonkeyPatch()
    try:
        created = _kwokctl(bindir, env, "create", "cluster", "--name", NAME, "--config", str(work / "kwokctl.yaml"),
                           "--kube-apiserver-port", str(_free_port()), "--kubeconfig", str(kubeconfig),
                           "--wait", "120s")
        assert created.returncode == 0, created.stderr[-2000:]
        _fast_heartbeats(work / "kwok" / "clusters" / NAME)
        mp.setattr(paths, "STATE_DIR", work / "state")
        api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        core = k8s.CoreV1Api(api)
        # No controller-manager: create what it would (the namespaces' default ServiceAccounts).
        core.create_namespace({"metadata": {"name": PLUGIN_NS}})
        for ns in ("default", "kube-system", PLUGIN_NS):
            wait_for(lambda ns=ns: core.create_namespaced_service_account(ns, {"metadata": {"name": "default"}}),
                     30, f"ServiceAccount {ns}/default")
        (work / "fleet.json").write_text(json.dumps({"machines": FLEET}))
        for machine in FLEET:
            resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
            core.create_node({"metadata": {"name": machine["name"], "annotations": {"kwok.x-k8s.io/node": "fake"},
                                           "labels": {"kubernetes.io/hostname": machine["name"]}},
                              "status": {"capacity": resources, "allocatable": resources}})
        wait_for(lambda: all(_ready(n) for n in core.list_node().items), WAIT, "kwok to make the Nodes Ready")
        for machine in FLEET:  # the controller-manager's node lifecycle controller would lift this once Ready
            core.patch_node(machine["name"], {"spec": {"taints": None}})
        yield {"core": core, "kubeconfig": kubeconfig, "work": work}
    finally:
        with contextlib.suppress(Exception):
            devicemanager.down()
        mp.undo()
        if api is not None:
            api.close()
        _kwokctl(bindir, env, "delete", "cluster", "--name", NAME, timeout=120)
        for pid in procs.processes_matching(str(work)):  # anything of ours kwokctl lost track of
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not procs.processes_matching(str(work)), 30, "the private cluster's processes to exit")
        shutil.rmtree(work, ignore_errors=True)


def _restart_apiserver(core, work: Path) -> None:
    """Kill the private cluster's kube-apiserver (SIGKILL: no graceful drain), start it again the way
    kwokctl ran it (as clusters.start_apiserver does for the lab) and wait until it answers."""
    cluster_dir = work / "kwok" / "clusters" / NAME
    doc = next(d for d in yaml.safe_load_all((cluster_dir / "kwok.yaml").read_text())
               if d.get("kind") == "KwokctlConfiguration")
    component = next(c for c in doc["components"] if c["name"] == "kube-apiserver")
    port = int(next(a.split("=", 1)[1] for a in component["args"] if a.startswith("--secure-port=")))
    pid_file = cluster_dir / "pids" / "kube-apiserver.pid"
    log = cluster_dir / "logs" / "kube-apiserver.log"
    old = int(pid_file.read_text().strip())
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not procs.alive(old) and procs.port_free("127.0.0.1", port), 30,
             f"the killed kube-apiserver to go and free port {port}")
    env = dict(os.environ)
    env.update({e["name"]: str(e.get("value", "")) for e in component.get("envs") or []})
    for _ in range(2):  # a start that loses a race for its port exits at once: once more
        pid = procs.spawn_detached([component["binary"], *component.get("args", [])], component["workDir"], log, env)
        pid_file.write_text(str(pid))
        outcome = wait_for(lambda pid=pid: "exited" if not procs.alive(pid) else
                           (core.list_node(_request_timeout=5).items and "up"), WAIT, "the restarted kube-apiserver")
        if outcome == "up":
            return
    pytest.fail(f"the restarted kube-apiserver exited: {log.read_text(errors='replace').splitlines()[-5:]}")


def _ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def _node(core, name: str) -> dict:
    return json.loads(core.read_node(name, _preload_content=False).data)


def _config_manager(name: str) -> dict:
    return {"name": name, "image": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0", "command": ["config-manager"],
            "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "NODE_LABEL", "value": "nvidia.com/device-plugin.config"},
                    {"name": "CONFIG_FILE_SRCDIR", "value": "/available-configs"},
                    {"name": "CONFIG_FILE_DST", "value": "/config/config.yaml"},
                    {"name": "DEFAULT_CONFIG", "value": ""},
                    {"name": "FALLBACK_STRATEGIES", "value": "named,single"}],
            "volumeMounts": [{"name": "available-configs", "mountPath": "/available-configs"},
                             {"name": "config", "mountPath": "/config"}]}


def _chart_pod(name: str, main: str, node: str) -> dict:
    """A pod as the nvidia-device-plugin chart's DaemonSets make it (with a config map), bound to ``node``."""
    return {"metadata": {"name": name, "labels": {"app.kubernetes.io/name": "nvidia-device-plugin",
                                                  "app.kubernetes.io/instance": "nvdp"}},
            "spec": {"nodeName": node, "tolerations": [{"operator": "Exists"}],
                     "initContainers": [_config_manager(f"{main}-init")],
                     "containers": [_config_manager(f"{main}-sidecar"),
                                    {"name": f"{main}-ctr", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.20.0",
                                     "command": [main], "env": [{"name": "CONFIG_FILE",
                                                                 "value": "/config/config.yaml"}]}],
                     "volumes": [{"name": "available-configs", "configMap": {"name": CONFIGMAP}},
                                 {"name": "config", "emptyDir": {}}]}}


def _runs_on(core, work: Path, pod: str, node: str) -> None:
    """Wait for the scheduler to bind ``pod`` to ``node`` and kwok to run it; say what happened if not."""
    def running() -> bool:
        p = core.read_namespaced_pod(pod, "default")
        return p.spec.node_name == node and p.status.phase == "Running"

    try:
        wait_for(running, WAIT, f"pod {pod} to run on {node}")
    except Exception:
        p = core.read_namespaced_pod(pod, "default")
        logs = work / "kwok" / "clusters" / NAME / "logs"
        tails = {f.name: f.read_text(errors="replace").splitlines()[-5:] for f in logs.glob("kube-scheduler*.log")}
        pytest.fail(f"pod {pod}: node {p.spec.node_name!r}, phase {p.status.phase}, "
                    f"conditions {[(c.type, c.status, c.message) for c in p.status.conditions or []]}; {tails}")


def _workload(name: str, resource: str, amount: int) -> dict:
    return {"metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "registry.invalid/infer:1",
                                     "resources": {"limits": {resource: str(amount)}}}]}}


def _capacity(core, name: str) -> tuple[dict, dict]:
    status = _node(core, name)["status"]
    return status.get("capacity") or {}, status.get("allocatable") or {}


def _advertises(core, name: str, resource: str, amount: str | None) -> bool:
    capacity, allocatable = _capacity(core, name)
    return capacity.get(resource) == amount and allocatable.get(resource) == amount


def _heartbeat(core, name: str) -> str:
    return next(c["lastHeartbeatTime"] for c in _node(core, name)["status"]["conditions"] if c["type"] == "Ready")


def _log_lines(node: str) -> int:
    log = devicemanager._files("live")["log"]
    return sum(1 for line in log.read_text().splitlines() if f" node {node}:" in line)


def test_device_manager_against_a_real_scheduler_and_kwok(cluster):
    core, kubeconfig, work = cluster["core"], cluster["kubeconfig"], cluster["work"]
    row = devicemanager.up("live", kubeconfig=kubeconfig, fleet_state=work / "fleet.json")
    assert row["running"] and row["synced"]
    pid = row["pid"]

    # --- NVIDIA: the chart's plugin + GFD pods on gpu-1, its config map with a time-slicing config
    core.create_namespaced_config_map(PLUGIN_NS, {"metadata": {"name": CONFIGMAP},
                                                  "data": {"default": "version: v1\n", "ts4": TS4}})
    core.create_namespaced_pod(PLUGIN_NS, _chart_pod("nvdp-plugin-gpu-1", "nvidia-device-plugin", "gpu-1"))
    core.create_namespaced_pod(PLUGIN_NS, _chart_pod("nvdp-gfd-gpu-1", "gpu-feature-discovery", "gpu-1"))
    core.create_namespaced_pod("kube-system", _chart_pod("nvdp-plugin-cpu-1", "nvidia-device-plugin", "cpu-1"))
    wait_for(lambda: _advertises(core, "gpu-1", "nvidia.com/gpu", "2"), WAIT, "nvidia.com/gpu=2 on gpu-1")
    labels = _node(core, "gpu-1")["metadata"]["labels"]
    assert {k: v for k, v in labels.items() if k.startswith("nvidia.com/")} == {
        "nvidia.com/gpu.product": "Tesla-T4", "nvidia.com/gpu.count": "2", "nvidia.com/gpu.memory": "15360",
        "nvidia.com/gpu.replicas": "1", "nvidia.com/gpu.sharing-strategy": "none"}

    # the Node's config label picks the time-slicing config: 2 GPUs x 4 replicas
    core.patch_node("gpu-1", {"metadata": {"labels": {"nvidia.com/device-plugin.config": "ts4"}}})
    wait_for(lambda: _advertises(core, "gpu-1", "nvidia.com/gpu", "8"), WAIT, "nvidia.com/gpu=8 on gpu-1")
    wait_for(lambda: _node(core, "gpu-1")["metadata"]["labels"].get("nvidia.com/gpu.sharing-strategy")
             == "time-slicing", WAIT, "GFD sharing label")
    labels = _node(core, "gpu-1")["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "Tesla-T4-SHARED" and labels["nvidia.com/gpu.replicas"] == "4"
    assert "nvidia.com/gpu" not in _capacity(core, "cpu-1")[0]  # a plugin pod on a machine without GPUs: nothing

    # --- the real scheduler sees it
    core.create_namespaced_pod("default", _workload("wants-one-gpu", "nvidia.com/gpu", 1))
    core.create_namespaced_pod("default", _workload("wants-too-many", "nvidia.com/gpu", 100))
    _runs_on(core, work, "wants-one-gpu", "gpu-1")

    def unschedulable() -> str | None:
        pod = core.read_namespaced_pod("wants-too-many", "default")
        cond = next((c for c in pod.status.conditions or [] if c.type == "PodScheduled"), None)
        return cond.message if cond is not None and cond.status == "False" else None

    message = wait_for(unschedulable, WAIT, "the scheduler to refuse the 100-GPU pod")
    assert "Insufficient nvidia.com/gpu" in message
    assert core.read_namespaced_pod("wants-too-many", "default").status.phase == "Pending"

    # --- Ascend
    core.create_namespaced_pod("kube-system", {
        "metadata": {"name": "ascend-device-plugin-npu-1", "labels": {"name": "ascend-device-plugin-ds"}},
        "spec": {"nodeName": "npu-1", "containers": [{"name": "device-plugin-01", "image": "ascend-k8sdeviceplugin:v1",
                                                      "command": ["/bin/bash", "-c", "--"],
                                                      "args": ["device-plugin -volcanoType=true"]}]}})
    wait_for(lambda: _advertises(core, "npu-1", "huawei.com/Ascend910", "4"), WAIT, "huawei.com/Ascend910=4 on npu-1")
    core.create_namespaced_pod("default", _workload("wants-two-npus", "huawei.com/Ascend910", 2))
    _runs_on(core, work, "wants-two-npus", "npu-1")

    # --- kwok leaves the patched capacity alone: several heartbeats (every ~1 s here), and a
    # re-initialisation (its node-initialize stage runs again for a Node that is not Ready)
    patches_so_far = _log_lines("gpu-1")
    seen = {_heartbeat(core, "gpu-1")}
    for _ in range(3):
        seen.add(wait_for(lambda: (lambda h: h if h not in seen else None)(_heartbeat(core, "gpu-1")), 30,
                          "a kwok heartbeat of gpu-1"))
        assert _advertises(core, "gpu-1", "nvidia.com/gpu", "8")
    now = _heartbeat(core, "gpu-1")
    core.patch_node_status("gpu-1", {"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "LabTest", "message": "re-initialise",
         "lastHeartbeatTime": now, "lastTransitionTime": now}]}})
    wait_for(lambda: _ready(core.read_node("gpu-1")), WAIT, "kwok to make gpu-1 Ready again")
    assert _advertises(core, "gpu-1", "nvidia.com/gpu", "8")
    assert _log_lines("gpu-1") == patches_so_far, "the stand-in had to put the capacity back: kwok removed it"

    # --- the API server goes away and comes back: the stand-in lists again and carries on
    _restart_apiserver(core, work)

    # --- pods go: what the stand-in set goes, and only that
    core.delete_namespaced_pod("nvdp-plugin-gpu-1", PLUGIN_NS, grace_period_seconds=0)
    wait_for(lambda: _advertises(core, "gpu-1", "nvidia.com/gpu", None), WAIT, "nvidia.com/gpu to go from gpu-1")
    assert _node(core, "gpu-1")["metadata"]["labels"]["nvidia.com/gpu.count"] == "2"  # GFD still runs
    core.delete_namespaced_pod("nvdp-gfd-gpu-1", PLUGIN_NS, grace_period_seconds=0)
    wait_for(lambda: not any(k.startswith("nvidia.com/gpu.") for k in _node(core, "gpu-1")["metadata"]["labels"]),
             WAIT, "the GFD labels to go from gpu-1")
    meta = _node(core, "gpu-1")["metadata"]
    assert meta["labels"]["nvidia.com/device-plugin.config"] == "ts4"  # not the stand-in's
    assert devicemanager.OWNER_ANNOTATION not in (meta.get("annotations") or {})
    assert _capacity(core, "gpu-1")[0] == {"cpu": "32", "memory": "256Gi", "pods": "110"}
    core.delete_namespaced_pod("ascend-device-plugin-npu-1", "kube-system", grace_period_seconds=0)
    wait_for(lambda: _advertises(core, "npu-1", "huawei.com/Ascend910", None), WAIT, "the NPUs to go from npu-1")

    log = devicemanager._files("live")["log"].read_text()
    assert "retrying in" in log or "listing again" in log, log[-2000:]  # it did see the outage
    assert devicemanager.up("live", kubeconfig=kubeconfig, fleet_state=work / "fleet.json")["pid"] == pid  # no-op
    devicemanager.down("live")
    assert not procs.alive(pid)
    assert devicemanager.status()[0]["running"] is False
