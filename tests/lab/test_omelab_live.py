"""The OME/LWS stand-in with the REAL ome-manager and lws-controller against a private cluster of its
own (kwokctl's binary runtime with the lab's cached binaries, kube-controller-manager included, a
work dir under /tmp, its own free ports), never the lab's clusters. Skipped when the control plane
or the two controllers (:mod:`labctl.controllers`) are not built.

What it shows: OME's real charts (``ome-resources``, ``charts/lws``) rendered with Helm and applied as
they are; the cert-manager stand-in issues the chart's Certificate (Ready only after its Secret) and
injects its CA; the real ome-manager starts out of cluster once its ConfigMap, CRDs and cert exist,
its webhooks are reached through the URL rewrite (a ClusterServingRuntime and an InferenceService go
through its validators and defaulter); an InferenceService with engine, decoder and router becomes
three Deployments and Services; the model-agent stand-in labels the Node whose machine has the model
directory so the engine pods are scheduled there; the real lws-controller's webhooks default a
LeaderWorkerSet and label its pods, and it creates the leader and worker StatefulSets; a killed
controller is started again; deleting the controller's Deployment stops it and gives the webhooks
their Service back. Timings and the controllers' resident memory are printed (``-s`` to see them).
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
import time
from pathlib import Path

import pytest
import yaml
from labctl import clusters, k8sbin, omelab, paths, procs
from labctl.waiting import wait_for

pytestmark = pytest.mark.slow

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kwokctl", "kubectl")
NAME = "omelive"
WAIT = 90
OME_MODULE = Path.home() / "go/pkg/mod/github.com/sgl-project/ome@v0.1.5"
LWS_MODULE = Path.home() / "go/pkg/mod/sigs.k8s.io/lws@v0.7.0"
HELM = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "helm"
MODEL = "llama-3-2-1b-instruct"
MODEL_PATH = f"/data/k8s/models/meta/{MODEL}"
ISVC_NS = "llama"
NODES = ("gpu-1", "gpu-2")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _controller_binaries() -> dict[str, Path]:
    try:
        from labctl import controllers
    except ImportError:
        return {}
    found = {}
    for name in ("ome-manager", "lws-controller"):
        with contextlib.suppress(Exception):
            path = Path(controllers.binary(name))
            if path.is_file():
                found[name] = path
    return found


def _kubectl(ctx: dict, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
    out = subprocess.run([str(ctx["bindir"] / "kubectl"), "--kubeconfig", str(ctx["kubeconfig"]), *args],
                         input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    assert out.returncode == 0, f"kubectl {' '.join(args[:3])}: {out.stderr[-2000:]}"
    return out.stdout


def _apply(ctx: dict, docs) -> None:
    _kubectl(ctx, "apply", "--server-side", "--force-conflicts", "--field-manager=test", "-f", "-",
             stdin=yaml.safe_dump_all([d for d in docs if d]))


def _get(ctx: dict, *what: str, ns: str | None = None) -> dict | None:
    args = ["get", *what, "-o", "json", "--ignore-not-found"]
    if ns:
        args += ["-n", ns]
    out = _kubectl(ctx, *args)
    return json.loads(out) if out.strip() else None


def _render(chart: Path, release: str, ns: str) -> list[dict]:
    out = subprocess.run([str(HELM), "template", release, str(chart), "-n", ns], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def cluster():
    bindir = k8sbin.bin_dir()
    missing = [b for b in BINARIES if not (bindir / b).is_file()]
    if missing:
        pytest.skip(f"lab binaries not built ({', '.join(missing)} missing in {bindir}): `lab build`")
    binaries = _controller_binaries()
    if len(binaries) < 2:
        pytest.skip("ome-manager / lws-controller not built (labctl.controllers)")
    if not (HELM.is_file() and OME_MODULE.is_dir() and LWS_MODULE.is_dir()):
        pytest.skip("helm or the OME v0.1.5 / LWS v0.7.0 modules are not available")
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    work = Path(tempfile.mkdtemp(prefix="omelab-live-"))
    env = clusters._kwokctl_env(bindir)
    env["KWOK_WORKDIR"] = str(work / "kwok")
    (work / "kwokctl.yaml").write_text(clusters._kwokctl_config(bindir))
    kubeconfig = work / "kubeconfig.yaml"
    api = None
    mp = pytest.MonkeyPatch()
    try:
        created = subprocess.run([str(bindir / "kwokctl"), "create", "cluster", "--name", NAME, "--config",
                                  str(work / "kwokctl.yaml"), "--kube-apiserver-port", str(_free_port()),
                                  "--kubeconfig", str(kubeconfig), "--wait", "120s"],
                                 env=env, capture_output=True, text=True, timeout=240, check=False)
        assert created.returncode == 0, created.stderr[-2000:]
        mp.setattr(paths, "STATE_DIR", work / "state")
        api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        core = k8s.CoreV1Api(api)
        resources = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"}
        for node in NODES:
            core.create_node({"metadata": {"name": node, "annotations": {"kwok.x-k8s.io/node": "fake"},
                                           "labels": {"kubernetes.io/hostname": node}},
                              "status": {"capacity": resources, "allocatable": resources}})
        wait_for(lambda: all(any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
                             for n in core.list_node().items), WAIT, "kwok to make the Nodes Ready")
        for node in NODES:
            core.patch_node(node, {"spec": {"taints": None}})
        machines = work / "machines"
        for node in NODES:
            (machines / node / "data" / "k8s" / "models").mkdir(parents=True)
        yield {"core": core, "api": api, "kubeconfig": kubeconfig, "work": work, "bindir": bindir,
               "machines": machines, "binaries": binaries}
    finally:
        with contextlib.suppress(Exception):
            omelab.down()
        mp.undo()
        if api is not None:
            api.close()
        subprocess.run([str(bindir / "kwokctl"), "delete", "cluster", "--name", NAME], env=env, capture_output=True,
                       timeout=120, check=False)
        for pid in procs.processes_matching(str(work)):  # anything of ours kwokctl lost track of
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not procs.processes_matching(str(work)), 30, "the private cluster's processes to exit")
        shutil.rmtree(work, ignore_errors=True)


def _controller(name: str) -> dict:
    row = next(r for r in omelab.status() if r["cluster"] == "live")
    return row["controllers"].get(name) or {}


def _wait_ready(name: str, ctx: dict) -> dict:
    def ready() -> dict | None:
        c = _controller(name)
        return c if c.get("ready") else None

    try:
        return wait_for(ready, WAIT, f"{name} to run with its webhooks answering")
    except Exception:
        log = omelab._files("live")["work"].parent / "live" / f"{name}.log"
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.is_file() else []
        stand_in = omelab._files("live")["log"].read_text(errors="replace").splitlines()[-15:]
        pytest.fail(f"{name}: {_controller(name)}\n{name} log: {tail}\nstand-in log: {stand_in}")


def _restart_apiserver(ctx: dict) -> None:
    """Kill the private cluster's kube-apiserver (no graceful drain) and start it again the way kwokctl ran
    it (as clusters.start_apiserver does for the lab); wait until it answers."""
    cluster_dir = ctx["work"] / "kwok" / "clusters" / NAME
    doc = next(d for d in yaml.safe_load_all((cluster_dir / "kwok.yaml").read_text())
               if d.get("kind") == "KwokctlConfiguration")
    component = next(c for c in doc["components"] if c["name"] == "kube-apiserver")
    port = int(next(a.split("=", 1)[1] for a in component["args"] if a.startswith("--secure-port=")))
    pid_file = cluster_dir / "pids" / "kube-apiserver.pid"
    old = int(pid_file.read_text().strip())
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not procs.alive(old) and procs.port_free("127.0.0.1", port), 30,
             f"the killed kube-apiserver to go and free port {port}")
    env = dict(os.environ)
    env.update({e["name"]: str(e.get("value", "")) for e in component.get("envs") or []})
    for _ in range(2):  # a start that loses a race for its port exits at once: once more
        pid = procs.spawn_detached([component["binary"], *component.get("args", [])], component["workDir"],
                                   cluster_dir / "logs" / "kube-apiserver.log", env)
        pid_file.write_text(str(pid))
        outcome = wait_for(lambda pid=pid: "exited" if not procs.alive(pid) else
                           (ctx["core"].list_node(_request_timeout=5).items and "up"), WAIT, "kube-apiserver again")
        if outcome == "up":
            return
    pytest.fail("the restarted kube-apiserver exited")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _routed(ctx: dict, kind: str, name: str, port: int) -> bool:
    config = _get(ctx, kind, name) or {}
    return bool(config.get("webhooks")) and all(
        (w["clientConfig"].get("url") or "").startswith(f"https://127.0.0.1:{port}/") for w in config["webhooks"])


def test_real_ome_and_lws_controllers_out_of_cluster(cluster):
    ctx = cluster
    timings: dict[str, float] = {}
    assert omelab.install_cert_manager_crds(kubeconfig=ctx["kubeconfig"]) == [
        "certificates.cert-manager.io", "issuers.cert-manager.io", "clusterissuers.cert-manager.io"]

    # the stand-in runs before anything of OME or LWS is installed (as after `lab up`)
    t_up = time.monotonic()
    row = omelab.up("live", kubeconfig=ctx["kubeconfig"], machines_dir=ctx["machines"], binaries=ctx["binaries"])
    assert row["running"] and row["synced"]
    assert "/apis/ome.io/v1beta1/clusterbasemodels" in row["apis_not_served"]
    assert row["controllers"]["ome-manager"]["waiting"] == "no Deployment ome-controller-manager"
    pid = row["pid"]
    timings["up() until synced"] = time.monotonic() - t_up

    crds = [yaml.safe_load(p.read_text()) for p in sorted((OME_MODULE / "config/crd/minimal").glob("ome.io_*.yaml"))]
    _apply(ctx, crds)
    for ns in ("ome", "lws-system", ISVC_NS):
        _kubectl(ctx, "create", "namespace", ns)
    ome_docs, lws_docs = _render(OME_MODULE / "charts/ome-resources", "ome", "ome"), \
        _render(LWS_MODULE / "charts/lws", "lws", "lws-system")
    _apply(ctx, [d for d in lws_docs if d["kind"] == "CustomResourceDefinition"])
    _apply(ctx, [d for d in lws_docs if d["kind"] != "CustomResourceDefinition"])
    config = [d for d in ome_docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "inferenceservice-config"]
    _apply(ctx, [d for d in ome_docs if d not in config])
    # a kubelet would keep the pod in ContainerCreating: the stand-in waits for what ome-manager needs
    wait_for(lambda: _controller("ome-manager").get("waiting") == "ConfigMap ome/inferenceservice-config does not "
             "exist", WAIT, "ome-manager to wait for its ConfigMap")
    t_config = time.monotonic()
    _apply(ctx, config)

    # --- cert-manager: the chart's Certificate is issued, Ready only with its Secret; the CA is injected
    def issued() -> dict | None:
        cert = _get(ctx, "certificates.cert-manager.io", "serving-cert", ns="ome") or {}
        ready = omelab.ready_condition(cert)
        return cert if ready and ready["status"] == "True" else None

    cert = wait_for(issued, WAIT, "Certificate ome/serving-cert to be Ready")
    secret = _get(ctx, "secret", "ome-webhook-server-cert", ns="ome")
    assert secret["type"] == "kubernetes.io/tls" and set(secret["data"]) >= {"tls.crt", "tls.key", "ca.crt"}
    import base64

    info = omelab.inspect_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    assert info.dns_names == ("ome-webhook-server-service.ome.svc",)
    assert {"127.0.0.1", "10.77.0.1"} <= set(info.ip_addresses)
    assert cert["status"]["revision"] == 1 and cert["status"]["notAfter"]
    issuer = _get(ctx, "issuers.cert-manager.io", "selfsigned-issuer", ns="ome")
    assert omelab.ready_condition(issuer)["status"] == "True"

    # --- the real ome-manager, out of cluster, reached through the rewritten webhooks
    ome = _wait_ready("ome-manager", ctx)
    timings["ConfigMap created -> ome-manager serving its webhooks"] = time.monotonic() - t_config
    port = ome["port"]
    wait_for(lambda: _routed(ctx, "validatingwebhookconfiguration", "inferenceservice.ome.io", port)
             and _routed(ctx, "mutatingwebhookconfiguration", "inferenceservice.ome.io", port)
             and _routed(ctx, "validatingwebhookconfiguration", "clusterservingruntime.ome.io", port),
             WAIT, "OME's webhooks to be routed to the process")
    mutating = _get(ctx, "mutatingwebhookconfiguration", "inferenceservice.ome.io")
    assert [w["clientConfig"]["url"] for w in mutating["webhooks"]] == [
        f"https://127.0.0.1:{port}/mutate-ome-io-v1beta1-inferenceservice", f"https://127.0.0.1:{port}/mutate-pods"]
    assert {w["clientConfig"]["caBundle"] for w in mutating["webhooks"]} == {secret["data"]["ca.crt"]}

    # --- the model agent stand-in: the model directory is on gpu-1's machine only
    (ctx["machines"] / "gpu-1" / MODEL_PATH.lstrip("/")).mkdir(parents=True)
    model = yaml.safe_load((OME_MODULE / "config/models/meta/Llama-3.2-1B-Instruct.yaml").read_text())
    model["spec"]["storage"]["path"] = MODEL_PATH
    model["spec"].update({"modelFormat": {"name": "safetensors", "version": "1.0.0"},
                          "modelFramework": {"name": "transformers", "version": "4.43.0"},
                          "modelArchitecture": "LlamaForCausalLM", "modelParameterSize": "1.24B"})
    runtime = yaml.safe_load((OME_MODULE / "config/runtimes/srt/meta/llama-3-2-1b-instruct-pd-rt.yaml").read_text())
    isvc = {"apiVersion": "ome.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": MODEL, "namespace": ISVC_NS},
            "spec": {"model": {"name": MODEL}, "runtime": {"name": runtime["metadata"]["name"]},
                     "engine": {"minReplicas": 1, "maxReplicas": 1}, "decoder": {"minReplicas": 1, "maxReplicas": 1},
                     "router": {"minReplicas": 1, "maxReplicas": 1}}}
    label = omelab.cluster_base_model_label(MODEL)
    _apply(ctx, [model, runtime])     # the ClusterServingRuntime goes through OME's validating webhook

    def labelled() -> bool:
        labels = {n: (_get(ctx, "node", n)["metadata"].get("labels") or {}) for n in NODES}
        return labels["gpu-1"].get(label) == "Ready" and label not in labels["gpu-2"]

    wait_for(labelled, WAIT, f"{label}=Ready on gpu-1 only (model-agent pods Running there)")
    t_isvc = time.monotonic()
    _apply(ctx, [isvc])               # defaulter + validator webhooks of the real ome-manager
    names = [f"{MODEL}-{c}" for c in ("engine", "decoder", "router")]

    def workloads() -> bool:
        deployments = _get(ctx, "deployments", ns=ISVC_NS)["items"]
        services = _get(ctx, "services", ns=ISVC_NS)["items"]
        have = {d["metadata"]["name"] for d in deployments}
        return set(names) <= have and set(names) <= {s["metadata"]["name"] for s in services}

    wait_for(workloads, WAIT, f"InferenceService {MODEL} to become Deployments + Services {names}")
    timings["InferenceService -> 3 Deployments + Services"] = time.monotonic() - t_isvc
    engine = _get(ctx, "deployment", f"{MODEL}-engine", ns=ISVC_NS)
    assert engine["spec"]["template"]["spec"]["nodeSelector"][label] == "Ready"

    def engine_pod_on_gpu_1() -> bool:
        pods = _get(ctx, "pods", "-l", f"ome.io/inferenceservice={MODEL}", ns=ISVC_NS)["items"]
        return any(p["spec"].get("nodeName") == "gpu-1" and p["status"].get("phase") == "Running"
                   and p["metadata"]["name"].startswith(f"{MODEL}-engine") for p in pods)

    wait_for(engine_pod_on_gpu_1, WAIT, "an engine pod (through OME's pod mutator) Running on the labelled gpu-1")
    timings["InferenceService -> engine pod Running on gpu-1"] = time.monotonic() - t_isvc

    def model_ready() -> bool:
        status = (_get(ctx, "clusterbasemodel", MODEL) or {}).get("status") or {}
        return "gpu-1" in (status.get("nodesReady") or [])

    wait_for(model_ready, WAIT, "ClusterBaseModel status nodesReady [gpu-1] (from the node status ConfigMap)")

    # --- the real lws-controller: webhooks default a LeaderWorkerSet, label its pods; StatefulSets
    lws = _wait_ready("lws-controller", ctx)
    wait_for(lambda: _routed(ctx, "mutatingwebhookconfiguration", "lws-mutating-webhook-configuration", lws["port"])
             and _routed(ctx, "validatingwebhookconfiguration", "lws-validating-webhook-configuration", lws["port"]),
             WAIT, "LWS's webhooks to be routed to the process")
    conversion = _get(ctx, "crd", omelab.LWS_CRD)["spec"]["conversion"]["webhook"]["clientConfig"]
    assert conversion["url"] == f"https://127.0.0.1:{lws['port']}/convert" and "service" not in conversion
    lws_secret = _get(ctx, "secret", "lws-webhook-server-cert", ns="lws-system")
    assert set(lws_secret["data"]) >= {"tls.crt", "tls.key", "ca.crt"}     # what its cert-controller would write
    _apply(ctx, [{"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
                  "metadata": {"name": "demo", "namespace": "default"},
                  "spec": {"replicas": 1, "leaderWorkerTemplate": {
                      "size": 2, "workerTemplate": {"spec": {"containers": [
                          {"name": "w", "image": "registry.invalid/worker:1"}]}}}}}])
    lws_obj = _get(ctx, "leaderworkerset", "demo", ns="default")
    assert lws_obj["spec"]["networkConfig"]["subdomainPolicy"] == "Shared"             # webhook defaulting
    assert lws_obj["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"]["partition"] == 0
    wait_for(lambda: _get(ctx, "statefulset", "demo", ns="default"), WAIT, "the leader StatefulSet demo")
    wait_for(lambda: (((_get(ctx, "pod", "demo-0", ns="default") or {}).get("metadata") or {}).get("labels") or {})
             .get("leaderworkerset.sigs.k8s.io/group-index") == "0", WAIT, "the pod webhook to label leader demo-0")
    wait_for(lambda: _get(ctx, "statefulset", "demo-0", ns="default"), WAIT, "the worker StatefulSet demo-0")

    # --- idle resident memory of the two real controllers (and the stand-in's CPU meanwhile)
    cpu_before = _cpu_seconds(pid)
    time.sleep(10)
    timings["stand-in CPU seconds in 10 s idle"] = _cpu_seconds(pid) - cpu_before
    rss = {name: procs.rss_bytes([_controller(name)["pid"]]) for name in ("ome-manager", "lws-controller")}
    rss["stand-in (python)"] = procs.rss_bytes([pid])
    work = omelab._files("live")["work"]
    for private in (work / "ome-manager.log", work / "lws-controller.log", omelab._files("live")["log"],
                    work / "ome-manager" / "tmp" / "k8s-webhook-server" / "serving-certs" / "tls.key",
                    work / "lws-controller" / "config.yaml", omelab.state_dir() / "ca.key"):
        assert private.stat().st_mode & 0o777 == 0o600, private
    assert (work / "ome-manager" / "tmp" / "k8s-webhook-server").stat().st_mode & 0o777 == 0o700

    # --- a controller that dies is started again (back-off 1 s), and routed again
    t_kill = time.monotonic()
    os.kill(ome["pid"], signal.SIGKILL)
    again = wait_for(lambda: (lambda c: c if c.get("ready") and c["pid"] != ome["pid"] else None)(
        _controller("ome-manager")), WAIT, "ome-manager to be started again")
    timings["ome-manager killed -> running and ready again"] = time.monotonic() - t_kill
    assert again["restarts"] == 1 and again["last_exit"].startswith("exit -9")
    wait_for(lambda: _routed(ctx, "validatingwebhookconfiguration", "inferenceservice.ome.io", again["port"]), WAIT,
             "OME's webhooks to be routed to the new process")

    # --- its Deployment goes: the process stops and the webhooks get their Service back
    _kubectl(ctx, "delete", "deployment", "ome-controller-manager", "-n", "ome")

    def unrouted() -> bool:
        config = _get(ctx, "validatingwebhookconfiguration", "inferenceservice.ome.io")
        return all("service" in w["clientConfig"] and "url" not in w["clientConfig"] for w in config["webhooks"])

    wait_for(lambda: not _controller("ome-manager").get("running") and unrouted(), WAIT,
             "ome-manager to stop and OME's webhooks to name their Service again")
    assert not procs.alive(again["pid"])
    config = _get(ctx, "validatingwebhookconfiguration", "inferenceservice.ome.io")
    assert omelab.ROUTED_ANNOTATION not in (config["metadata"].get("annotations") or {})

    # --- kube-apiserver restarts: the stand-in lists again and carries on
    _restart_apiserver(ctx)

    # --- the model directory goes: so does the label
    (ctx["machines"] / "gpu-1" / MODEL_PATH.lstrip("/")).rmdir()
    wait_for(lambda: label not in (_get(ctx, "node", "gpu-1")["metadata"].get("labels") or {}), WAIT,
             "the model label to go from gpu-1")

    log = omelab._files("live")["log"].read_text()
    assert "retrying in" in log or "listing again" in log, log[-2000:]      # it did see the outage
    lws_pid = _controller("lws-controller")["pid"]
    assert omelab.up("live", kubeconfig=ctx["kubeconfig"])["pid"] == pid      # no-op while it runs
    omelab.down("live")
    assert not procs.alive(pid) and not procs.alive(lws_pid)
    assert not omelab._children_of(omelab._files("live")["work"])
    print("\ntimings (s):", json.dumps({k: round(v, 1) for k, v in timings.items()}))
    print("idle RSS (MiB):", json.dumps({k: round(v / 2**20, 1) for k, v in rss.items()}))
