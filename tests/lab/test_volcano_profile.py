"""The lab clusters' `volcano` kube-scheduler profile (lab stand-in for MindCluster's Volcano).

Unit part (no cluster): the KubeSchedulerConfiguration the lab generates, how it reaches kwokctl,
its validation by the real kube-scheduler binary (``--write-config-to``, no API server needed;
skipped when the lab binaries are not built), and the in-place update of a cluster created before
the profiles existed (a fake kwok.yaml and a fake kube-scheduler process).

Live part (``slow``): private clusters of their own (kwokctl's binary runtime with the lab's cached
binaries, work dirs under /tmp, free ports, no controller-manager), never the lab's: one created the
way ``lab up`` creates clusters, one created the old way and brought up to date in place. In both a
pod with ``schedulerName: volcano`` asking for 8 ``huawei.com/Ascend910`` is bound to the Node that
has them, and one asking for 9 stays Pending with the scheduler's reason, reported by ``volcano``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml
from labctl import clusters, k8sbin, paths, procs
from labctl.waiting import wait_for

PROFILES = ["default-scheduler", "volcano"]


@pytest.fixture
def lab_state(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STATE_DIR", tmp_path / "state")
    monkeypatch.setattr(paths, "KWOK_WORKDIR", tmp_path / "state" / "kwok")
    monkeypatch.setattr(paths, "KUBECONFIG_DIR", tmp_path / "state" / "kubeconfig")
    return tmp_path


# ----------------------------------------------------------------------------- the configuration
def test_scheduler_config_has_the_default_and_the_volcano_profile():
    config = clusters.scheduler_config()
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert config["kind"] == "KubeSchedulerConfiguration"
    assert [p["schedulerName"] for p in config["profiles"]] == PROFILES
    assert clusters.scheduler_profiles(config) == PROFILES
    # kwokctl sets clientConnection.kubeconfig itself when it copies the file into a cluster
    assert "clientConnection" not in config
    assert clusters.scheduler_config("/x/kubeconfig.yaml")["clientConnection"] == {"kubeconfig": "/x/kubeconfig.yaml"}
    # default plugins only: no plugin configuration that a Volcano-named profile could get wrong
    assert all(set(p) == {"schedulerName"} for p in config["profiles"])


def test_scheduler_profiles_reads_what_kube_scheduler_would_run():
    assert clusters.scheduler_profiles({"kind": "KubeSchedulerConfiguration"}) == ["default-scheduler"]
    assert clusters.scheduler_profiles({"profiles": [{"schedulerName": "volcano"}]}) == ["volcano"]
    assert clusters.scheduler_profiles(None) == []


def test_kwokctl_config_hands_kwokctl_the_scheduler_configuration(lab_state):
    source = clusters.write_scheduler_config("worker")
    assert source == paths.KWOK_WORKDIR / "scheduler" / "worker.yaml"
    assert source.stat().st_mode & 0o777 == 0o600
    assert paths.KWOK_WORKDIR.stat().st_mode & 0o777 == 0o700
    assert yaml.safe_load(source.read_text()) == clusters.scheduler_config()
    options = yaml.safe_load(clusters._kwokctl_config(lab_state / "bin", source))["options"]
    assert options["kubeSchedulerConfig"] == str(source) and Path(options["kubeSchedulerConfig"]).is_absolute()
    assert options["kubeSchedulerBinary"] == str(lab_state / "bin" / "kube-scheduler")
    # without a file (e.g. the device-manager live test's private cluster): kwokctl's plain scheduler
    assert "kubeSchedulerConfig" not in yaml.safe_load(clusters._kwokctl_config(lab_state / "bin"))["options"]


def test_lab_up_creates_clusters_with_the_profiles(lab_state, monkeypatch):
    calls = []

    def fake_kwokctl(bindir, *args, check=True):
        config = Path(args[args.index("--config") + 1])
        calls.append(yaml.safe_load(config.read_text()))
        kubeconfig = Path(args[args.index("--kubeconfig") + 1])
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        kubeconfig.write_text("fake")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(clusters, "_kwokctl", fake_kwokctl)
    monkeypatch.setattr(clusters, "_await_port", lambda spec, log: None)
    spec = clusters.ClusterSpec(name="worker", apiserver_port=1)
    assert clusters._start(spec, lab_state / "bin", set(), log=lambda m: None) == "created"
    source = Path(calls[0]["options"]["kubeSchedulerConfig"])
    assert clusters.scheduler_profiles(yaml.safe_load(source.read_text())) == PROFILES


KUBECONFIG = textwrap.dedent("""\
    apiVersion: v1
    kind: Config
    clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
    users: [{name: u, user: {token: lab}}]
    contexts: [{name: c, context: {cluster: c, user: u}}]
    current-context: c
    """)


def test_the_real_kube_scheduler_accepts_the_configuration(tmp_path):
    binary = k8sbin.bin_dir() / "kube-scheduler"
    if not binary.is_file():
        pytest.skip(f"lab binaries not built ({binary} missing): `lab build`")
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    config = tmp_path / "scheduler.yaml"
    # what kwokctl writes into the cluster: ours plus clientConnection.kubeconfig
    config.write_text(yaml.safe_dump(clusters.scheduler_config(str(tmp_path / "kubeconfig"))))
    out = tmp_path / "effective.yaml"
    proc = subprocess.run([str(binary), f"--config={config}", f"--write-config-to={out}", "--secure-port=0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    effective = yaml.safe_load(out.read_text())
    assert [p["schedulerName"] for p in effective["profiles"]] == PROFILES
    plugins = [p["plugins"] for p in effective["profiles"]]
    assert plugins[0] == plugins[1]  # the volcano profile decides exactly like the default one
    assert "NodeResourcesFit" in {e["name"] for e in plugins[1]["multiPoint"]["enabled"]}
    # and it is the real validation: two profiles with one name are refused
    bad = clusters.scheduler_config(str(tmp_path / "kubeconfig"))
    bad["profiles"][1]["schedulerName"] = "default-scheduler"
    config.write_text(yaml.safe_dump(bad))
    proc = subprocess.run([str(binary), f"--config={config}", f"--write-config-to={out}", "--secure-port=0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and "Duplicate value" in proc.stderr


# ----------------------------------------------------------------------------- an existing cluster
FAKE_SCHEDULER = textwrap.dedent("""\
    #!{python}
    # kube-scheduler stand-in: lives until SIGTERM.
    import signal, sys, time
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    print("fake kube-scheduler", sys.argv[1:], flush=True)
    while True:
        time.sleep(1)
""")


def _old_cluster(root: Path, name: str = "worker", config_arg: str | None = None) -> dict:
    """kwok.yaml of a cluster kwokctl created without kubeSchedulerConfig (kube-scheduler on --kubeconfig)."""
    cdir = paths.KWOK_WORKDIR / "clusters" / name
    (cdir / "pids").mkdir(parents=True)
    (cdir / "logs").mkdir()
    bindir = root / "bin"
    bindir.mkdir(exist_ok=True)
    binary = bindir / "kube-scheduler"
    binary.write_text(FAKE_SCHEDULER.format(python=sys.executable))
    binary.chmod(0o755)
    kubeconfig = str(cdir / "kubeconfig.yaml")
    first = config_arg or f"--kubeconfig={kubeconfig}"
    docs = [
        {"kind": "KwokctlConfiguration", "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
         "options": {"runtime": "binary", "kubeSchedulerBinary": str(binary)},
         "components": [
             {"name": "kube-apiserver", "binary": str(bindir / "kube-apiserver"), "workDir": str(cdir),
              "args": ["--secure-port=1"]},
             {"name": "kube-controller-manager", "binary": str(bindir / "kube-controller-manager"),
              "workDir": str(cdir), "args": [f"--kubeconfig={kubeconfig}"]},
             {"name": "kube-scheduler", "binary": str(binary), "workDir": str(cdir),
              "args": [first, "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                       "--bind-address=127.0.0.1", "--secure-port=1"],
              "envs": [{"name": "LAB_FAKE", "value": "1"}]}]},
        {"kind": "Stage", "apiVersion": "kwok.x-k8s.io/v1alpha1", "metadata": {"name": "node-initialize"},
         "spec": {"resourceRef": {"apiGroup": "v1", "kind": "Node"}, "selector": {"matchExpressions": [
             {"key": ".status.phase", "operator": "NotIn", "values": ["Running"]}]}}},
    ]
    (cdir / "kwok.yaml").write_text(yaml.safe_dump_all(docs))
    return {"dir": cdir, "kubeconfig": kubeconfig, "binary": binary}


def _recorded(cdir: Path) -> tuple[dict, list]:
    docs = list(yaml.safe_load_all((cdir / "kwok.yaml").read_text()))
    return docs[0], docs


def test_an_old_cluster_is_given_the_profiles_in_place(lab_state):
    c = _old_cluster(lab_state)
    messages = []
    assert clusters.recorded_scheduler_profiles("worker") == ["default-scheduler"]
    assert clusters._ensure_scheduler_profiles("worker", messages.append) is True
    doc, docs = _recorded(c["dir"])
    scheduler = next(x for x in doc["components"] if x["name"] == "kube-scheduler")
    target = c["dir"] / "scheduler.yaml"  # where kwokctl itself keeps it
    assert scheduler["args"][0] == f"--config={target}"
    assert not any(a.startswith("--kubeconfig=") for a in scheduler["args"])
    assert scheduler["args"][1:] == ["--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
                                     "--bind-address=127.0.0.1", "--secure-port=1"]
    assert scheduler["envs"] == [{"name": "LAB_FAKE", "value": "1"}]
    written = yaml.safe_load(target.read_text())
    assert written == clusters.scheduler_config(c["kubeconfig"])  # the kubeconfig it used before
    assert target.stat().st_mode & 0o777 == 0o600
    assert doc["options"]["kubeSchedulerConfig"] == str(clusters.scheduler_config_source("worker"))
    # nothing else in kwok.yaml changed: other components, stages
    controller = next(x for x in doc["components"] if x["name"] == "kube-controller-manager")
    assert controller["args"] == [f"--kubeconfig={c['kubeconfig']}"]
    assert docs[1]["kind"] == "Stage" and docs[1]["spec"]["selector"]["matchExpressions"][0]["values"] == ["Running"]
    assert clusters.recorded_scheduler_profiles("worker") == PROFILES
    assert any("configured in place" in m for m in messages)
    # once is enough
    assert clusters._ensure_scheduler_profiles("worker", messages.append) is False


def test_a_config_without_the_volcano_profile_is_replaced_keeping_its_kubeconfig(lab_state):
    old_config = lab_state / "old-scheduler.yaml"
    old_config.write_text(yaml.safe_dump({"apiVersion": "kubescheduler.config.k8s.io/v1",
                                          "kind": "KubeSchedulerConfiguration",
                                          "clientConnection": {"kubeconfig": "/somewhere/kubeconfig.yaml"}}))
    c = _old_cluster(lab_state, config_arg=f"--config={old_config}")
    assert clusters._ensure_scheduler_profiles("worker", lambda m: None) is True
    written = yaml.safe_load((c["dir"] / "scheduler.yaml").read_text())
    assert written["clientConnection"] == {"kubeconfig": "/somewhere/kubeconfig.yaml"}
    assert clusters.scheduler_profiles(written) == PROFILES


def test_clusters_without_a_recorded_scheduler_are_left_alone(lab_state):
    cdir = paths.KWOK_WORKDIR / "clusters" / "worker"
    cdir.mkdir(parents=True)
    text = yaml.safe_dump({"kind": "KwokctlConfiguration", "components": [
        {"name": "kube-apiserver", "binary": "/x/kube-apiserver", "args": []}]})
    (cdir / "kwok.yaml").write_text(text)
    assert clusters._ensure_scheduler_profiles("worker", lambda m: None) is False
    assert (cdir / "kwok.yaml").read_text() == text


def test_a_scheduler_without_kubeconfig_is_one_clear_error(lab_state):
    _old_cluster(lab_state, config_arg="--v=2")
    with pytest.raises(clusters.ClusterError, match="cannot tell which kubeconfig"):
        clusters._ensure_scheduler_profiles("worker", lambda m: None)


def test_a_running_old_scheduler_is_restarted_with_the_profiles(lab_state, monkeypatch):
    c = _old_cluster(lab_state)
    comp = clusters.component("worker", "kube-scheduler")
    old, _ = clusters._spawn("worker", comp)
    try:
        wait_for(lambda: procs.comm(old) == "kube-scheduler", 10, "the fake kube-scheduler to start")
        assert clusters.component_pid("worker", "kube-scheduler") == old
        monkeypatch.setattr(clusters, "_scheduler_healthy", lambda comp: True)
        spec = clusters.ClusterSpec(name="worker", apiserver_port=1)
        action = clusters._already_up(spec, log=lambda m: None)
        assert action == "already up, kube-scheduler reconfigured"
        assert not procs.alive(old)
        new = clusters.component_pid("worker", "kube-scheduler")
        assert new is not None and new != old
        cmdline = Path(f"/proc/{new}/cmdline").read_bytes().split(b"\0")
        assert f"--config={c['dir'] / 'scheduler.yaml'}".encode() in cmdline
        assert not any(a.startswith(b"--kubeconfig=") for a in cmdline)
        assert str(paths.KWOK_WORKDIR).encode() in b" ".join(cmdline)  # `lab down` finds it (lab_processes)
        # the next `lab up` changes nothing
        assert clusters._already_up(spec, log=lambda m: None) == "already up"
        assert clusters.component_pid("worker", "kube-scheduler") == new
    finally:
        for pid in procs.processes_matching(str(c["dir"])):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_stopped_old_cluster_is_updated_before_kwokctl_starts_it(lab_state, monkeypatch):
    c = _old_cluster(lab_state)
    seen = []

    def fake_kwokctl(bindir, *args, check=True):
        seen.append((args, clusters.recorded_scheduler_profiles("worker")))
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(clusters, "_kwokctl", fake_kwokctl)
    monkeypatch.setattr(clusters, "_await_port", lambda spec, log: None)
    spec = clusters.ClusterSpec(name="worker", apiserver_port=1)
    assert clusters._start(spec, lab_state / "bin", {"worker"}, log=lambda m: None) == "started"
    assert seen == [(("start", "cluster", "--name", "worker", "--wait", f"{clusters.READY_TIMEOUT}s"), PROFILES)]
    assert (c["dir"] / "scheduler.yaml").is_file()


# ----------------------------------------------------------------------------- live (private clusters)
BINARIES = ("etcd", "kube-apiserver", "kube-scheduler", "kwok", "kwokctl", "kubectl")
WAIT = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _private_cluster(name: str, with_profiles: bool):
    """A private kwokctl cluster (never the lab's); ``with_profiles``: created the way `lab up` creates
    clusters now, else the way it did before the profiles existed. Yields (core API, work dir, env)."""
    bindir = k8sbin.bin_dir()
    missing = [b for b in BINARIES if not (bindir / b).is_file()]
    if missing:
        pytest.skip(f"lab binaries not built ({', '.join(missing)} missing in {bindir}): `lab build`")
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    work = Path(tempfile.mkdtemp(prefix=f"volcano-{name}-"))
    mp = pytest.MonkeyPatch()
    mp.setattr(paths, "STATE_DIR", work / "state")
    mp.setattr(paths, "KWOK_WORKDIR", work / "state" / "kwok")
    env = clusters._kwokctl_env(bindir)
    env["KWOK_WORKDIR"] = str(paths.KWOK_WORKDIR)
    source = clusters.write_scheduler_config(name) if with_profiles else None
    options = yaml.safe_load(clusters._kwokctl_config(bindir, source))
    options["options"]["disableKubeControllerManager"] = True  # lighter; not needed to schedule
    (work / "kwokctl.yaml").write_text(yaml.safe_dump(options))
    kubeconfig = work / "kubeconfig.yaml"
    api = None
    try:
        created = subprocess.run([str(bindir / "kwokctl"), "create", "cluster", "--name", name, "--config",
                                  str(work / "kwokctl.yaml"), "--kube-apiserver-port", str(_free_port()),
                                  "--kubeconfig", str(kubeconfig), "--wait", "120s"],
                                 env=env, capture_output=True, text=True, timeout=240, check=False)
        assert created.returncode == 0, created.stderr[-2000:]
        api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        core = k8s.CoreV1Api(api)
        wait_for(lambda: core.create_namespaced_service_account("default", {"metadata": {"name": "default"}}),
                 30, "ServiceAccount default/default")
        yield core, work
    finally:
        if api is not None:
            api.close()
        subprocess.run([str(bindir / "kwokctl"), "delete", "cluster", "--name", name], env=env,
                       capture_output=True, timeout=120, check=False)
        for pid in procs.processes_matching(str(work)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not procs.processes_matching(str(work)), 30, "the private cluster's processes to exit")
        mp.undo()
        shutil.rmtree(work, ignore_errors=True)


def _npu_nodes(core) -> None:
    resources = {"cpu": "192", "memory": "1536Gi", "pods": "110", "huawei.com/Ascend910": "8"}
    plain = {"cpu": "32", "memory": "128Gi", "pods": "110"}
    for node, capacity in (("npu-1", resources), ("cpu-1", plain)):
        core.create_node({"metadata": {"name": node, "annotations": {"kwok.x-k8s.io/node": "fake"},
                                       "labels": {"kubernetes.io/hostname": node,
                                                  "accelerator": "huawei-Ascend910"} if node == "npu-1"
                                       else {"kubernetes.io/hostname": node}},
                          "status": {"capacity": capacity, "allocatable": capacity}})
    wait_for(lambda: all(any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
                         for n in core.list_node().items), WAIT, "kwok to make the Nodes Ready")
    for node in ("npu-1", "cpu-1"):  # the node lifecycle controller (not running here) would lift these
        core.patch_node(node, {"spec": {"taints": None}})


def _npu_pod(name: str, amount: int) -> dict:
    return {"metadata": {"name": name},
            "spec": {"schedulerName": "volcano",
                     "containers": [{"name": "main", "image": "registry.invalid/infer:1",
                                     "resources": {"limits": {"huawei.com/Ascend910": str(amount)}}}]}}


def _volcano_decides(core, work: Path) -> None:
    _npu_nodes(core)
    core.create_namespaced_pod("default", _npu_pod("eight-npus", 8))
    core.create_namespaced_pod("default", _npu_pod("nine-npus", 9))

    def bound() -> bool:
        return core.read_namespaced_pod("eight-npus", "default").spec.node_name == "npu-1"

    try:
        wait_for(bound, WAIT, "the volcano profile to bind eight-npus to npu-1")
    except Exception:
        logs = sorted((work / "state" / "kwok" / "clusters").glob("*/logs/kube-scheduler.log"))
        pytest.fail(f"eight-npus not bound: {[f.read_text(errors='replace').splitlines()[-8:] for f in logs]}")

    def refused():
        events = core.list_namespaced_event("default", field_selector="involvedObject.name=nine-npus").items
        return next((e for e in events if e.reason == "FailedScheduling"), None)

    event = wait_for(refused, WAIT, "a FailedScheduling event for nine-npus")
    assert "Insufficient huawei.com/Ascend910" in event.message
    assert "volcano" in {event.reporting_component, (event.source.component if event.source else None)}
    assert core.read_namespaced_pod("nine-npus", "default").spec.node_name is None
    def unscheduled():  # the status update may trail the event
        conditions = core.read_namespaced_pod("nine-npus", "default").status.conditions or []
        return next((c for c in conditions if c.type == "PodScheduled"), None)

    condition = wait_for(unscheduled, WAIT, "nine-npus' PodScheduled condition")
    assert condition.status == "False" and condition.reason == "Unschedulable"


@pytest.mark.slow
def test_live_a_new_cluster_schedules_volcano_pods():
    with _private_cluster("volnew", with_profiles=True) as (core, work):
        assert clusters.recorded_scheduler_profiles("volnew") == PROFILES
        _volcano_decides(core, work)


@pytest.mark.slow
def test_live_an_old_cluster_gets_the_profile_in_place_and_schedules_volcano_pods():
    with _private_cluster("volold", with_profiles=False) as (core, work):
        assert clusters.recorded_scheduler_profiles("volold") == ["default-scheduler"]
        old = clusters.component_pid("volold", "kube-scheduler")
        assert old is not None
        spec = clusters.ClusterSpec(name="volold", apiserver_port=0)
        messages = []
        assert clusters._already_up(spec, messages.append) == "already up, kube-scheduler reconfigured"
        assert not procs.alive(old) and clusters.recorded_scheduler_profiles("volold") == PROFILES
        _volcano_decides(core, work)
