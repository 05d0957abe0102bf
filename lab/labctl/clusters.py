"""The lab's two Kubernetes control planes, run by kwokctl's binary runtime.

Each cluster is a real etcd, kube-apiserver, kube-controller-manager and
kube-scheduler with kwok as the kubelet stand-in, all bound to 127.0.0.1 on ports
kwokctl picks free. Kubeconfigs land at ``lab/state/kubeconfig/<name>.yaml``.

Scheduler profiles (lab stand-in for Volcano): the kube-scheduler of every lab cluster runs with a
KubeSchedulerConfiguration (``kubescheduler.config.k8s.io/v1``) holding two profiles,
``default-scheduler`` and ``volcano`` (``SCHEDULER_PROFILES``). Volcano is not served as a Go
module, so MindCluster's Volcano cannot run here; a pod with ``schedulerName: volcano`` instead
gets a real scheduling decision from the real kube-scheduler binary: the default plugin set
(resource fit on extended resources such as ``huawei.com/Ascend910``, node selectors and affinity,
taints and tolerations), binding and ``FailedScheduling`` events with the real reasons, reported
by the ``volcano`` profile. What it is not: no gang scheduling (PodGroups, ``minAvailable``: every
pod is placed on its own), no queues, no Volcano CRDs or controllers, no MindCluster plugin (no NPU
topology choice, no ``huawei.com/Ascend910`` pod annotation with chip IDs).

The configuration goes to kwokctl as ``kubeSchedulerConfig`` (a file under
``lab/state/kwok/scheduler/``); kwokctl copies it into the cluster's directory as
``scheduler.yaml``, setting ``clientConnection.kubeconfig`` to the kubeconfig it generates, and runs
kube-scheduler with ``--config`` instead of ``--kubeconfig``. A cluster created before the profiles
existed (its kube-scheduler has ``--kubeconfig`` and no ``--config`` in ``kwok.yaml``) is brought
up to date in place by ``lab up``: the same ``scheduler.yaml`` is written, the recorded
kube-scheduler arguments are switched to ``--config``, and a running kube-scheduler is restarted
with them; etcd, the API server and everything in the cluster stay as they are.

API aggregation (for KEDA's metrics API server, which the HPA reads through the APIService
``v1beta1.external.metrics.k8s.io``): kube-apiserver gets the flags a cluster needs to proxy to an
aggregated API server with no kube-proxy around (``AGGREGATION_ARGS``): ``--enable-aggregator-routing``
(proxy to the Service's endpoint addresses, not its unroutable ClusterIP) and the request-header
authentication of the proxied requests (``--requestheader-*``: kwokctl already passes its admin cert as
``--proxy-client-cert-file``; the cluster CA signs it, and only its CN ``kwok-admin`` may assert a user).
They go to kwokctl as ``componentsPatches`` when a cluster is created. A cluster created before them
runs without; ``lab status`` says so, and ``lab down && lab up`` recreates it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from labctl import k8sbin, paths, procs
from labctl.waiting import WaitTimeout, wait_for

CONFIG_FILE = Path(__file__).with_name("clusters.yaml")
READY_TIMEOUT = 180
APISERVER = "kube-apiserver"
SCHEDULER = "kube-scheduler"
# kube-scheduler profiles of every lab cluster; `volcano` stands in for MindCluster's Volcano (above).
SCHEDULER_PROFILES = ("default-scheduler", "volcano")
SCHEDULER_CONFIG_API = "kubescheduler.config.k8s.io/v1"
SCHEDULER_STOP_TIMEOUT = 30.0
# kube-apiserver shuts down gracefully on SIGTERM, which can take up to a minute (it drains
# long-running requests); after this many seconds it gets SIGKILL.
APISERVER_STOP_TIMEOUT = float(os.environ.get("LAB_APISERVER_STOP_TIMEOUT", "75"))
# How long `lab up` waits for a cluster's kube-apiserver that is still exiting (or still holds
# its port) before it gives up or takes over.
EXIT_WAIT_TIMEOUT = float(os.environ.get("LAB_APISERVER_EXIT_WAIT", "90"))


class ClusterError(RuntimeError):
    """A lab cluster problem, phrased as one line for the user."""


@dataclass
class ClusterSpec:
    name: str
    apiserver_port: int
    purpose: str = ""
    nodes: list[dict] = field(default_factory=list)


def specs() -> list[ClusterSpec]:
    data = yaml.safe_load(CONFIG_FILE.read_text())["clusters"]
    return [ClusterSpec(name=name, **body) for name, body in data.items()]


def _kwokctl_env(bindir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["KWOK_WORKDIR"] = str(paths.KWOK_WORKDIR)
    env["KWOK_RUNTIME"] = "binary"
    # kwokctl waits with the kubectl it finds on PATH; ours matches the server version.
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    return env


def scheduler_config(kubeconfig: str | None = None) -> dict:
    """The lab's KubeSchedulerConfiguration: one profile per name in ``SCHEDULER_PROFILES``, each with
    the default plugins. ``kubeconfig`` fills ``clientConnection.kubeconfig`` (kwokctl sets it itself
    when it copies the file into a cluster it creates)."""
    config: dict = {"apiVersion": SCHEDULER_CONFIG_API, "kind": "KubeSchedulerConfiguration",
                    "profiles": [{"schedulerName": name} for name in SCHEDULER_PROFILES]}
    if kubeconfig:
        config["clientConnection"] = {"kubeconfig": kubeconfig}
    return config


def scheduler_profiles(config: dict | None) -> list[str]:
    """The profile names a KubeSchedulerConfiguration declares (``default-scheduler`` when it has none)."""
    if not isinstance(config, dict):
        return []
    profiles = config.get("profiles") or [{}]
    return [(p or {}).get("schedulerName") or "default-scheduler" for p in profiles if isinstance(p, dict)]


def scheduler_config_source(name: str) -> Path:
    """Where the lab writes the scheduler configuration it hands kwokctl for cluster ``name``."""
    return paths.KWOK_WORKDIR / "scheduler" / f"{name}.yaml"


def write_scheduler_config(name: str) -> Path:
    """Write ``scheduler_config()`` (no clientConnection: kwokctl adds its own) for ``name``; return the path."""
    target = scheduler_config_source(name)
    paths.private_dir(target.parent)
    paths.write_private(target, yaml.safe_dump(scheduler_config(), sort_keys=False))
    return target


PROXY_CLIENT_CN = "kwok-admin"   # the CN of kwokctl's admin cert, which it passes as --proxy-client-cert-file


def aggregation_args(name: str) -> dict[str, str]:
    """kube-apiserver flags (without ``--``) for API aggregation in cluster ``name`` (see the module doc)."""
    return {
        "enable-aggregator-routing": "true",
        "requestheader-client-ca-file": str(paths.KWOK_WORKDIR / "clusters" / name / "pki" / "ca.crt"),
        "requestheader-allowed-names": PROXY_CLIENT_CN,
        "requestheader-username-headers": "X-Remote-User",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
    }


def has_aggregation(name: str) -> bool:
    """Whether the cluster's kube-apiserver runs (as kwok.yaml records it) with ``aggregation_args``."""
    args = {str(a) for a in component(name, APISERVER).get("args") or []}
    return all(f"--{k}={v}" in args for k, v in aggregation_args(name).items())


def _kwokctl_config(bindir: Path, scheduler_config_file: Path | None = None, name: str | None = None) -> str:
    """kwokctl configuration pointing at the locally built binaries, loopback only; with
    ``scheduler_config_file``, kube-scheduler runs with that KubeSchedulerConfiguration; with ``name``,
    kube-apiserver gets that cluster's ``aggregation_args``."""
    options = {
        "runtime": "binary",
        "bindAddress": "127.0.0.1",
        "kubeVersion": k8sbin.kube_version(),
        "kubeApiserverBinary": str(bindir / "kube-apiserver"),
        "kubeControllerManagerBinary": str(bindir / "kube-controller-manager"),
        "kubeSchedulerBinary": str(bindir / "kube-scheduler"),
        "kwokControllerBinary": str(bindir / "kwok"),
        "etcdBinary": str(bindir / "etcd"),
        "kubectlBinary": str(bindir / "kubectl"),
    }
    if scheduler_config_file is not None:
        options["kubeSchedulerConfig"] = str(scheduler_config_file)
    doc: dict = {"kind": "KwokctlConfiguration", "apiVersion": "config.kwok.x-k8s.io/v1alpha1", "options": options}
    if name is not None:
        doc["componentsPatches"] = [{"name": APISERVER, "extraArgs": [
            {"key": k, "value": v} for k, v in aggregation_args(name).items()]}]
    return yaml.safe_dump(doc)


def _kwokctl(bindir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(bindir / "kwokctl"), *args], env=_kwokctl_env(bindir), capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit {result.returncode}"
        raise ClusterError(f"kwokctl {' '.join(args[:3])} failed: {reason}")
    return result


def existing_clusters(bindir: Path) -> set[str]:
    if not (paths.KWOK_WORKDIR / "clusters").is_dir():
        return set()
    return {p.name for p in (paths.KWOK_WORKDIR / "clusters").iterdir() if (p / "kwok.yaml").is_file()}


def api_client(name: str):
    from kubernetes import config

    kubeconfig = paths.kubeconfig_path(name)
    if not kubeconfig.is_file():
        raise ClusterError(f"cluster {name!r} has no kubeconfig at {kubeconfig}: run `lab up`")
    return config.new_client_from_config(config_file=str(kubeconfig))


def raw_get(client, path: str, timeout: float = 5):
    """GET a non-resource path (/readyz, /livez) with the client's TLS and auth settings."""
    headers = {}
    for setting in client.configuration.auth_settings().values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[setting["key"]] = setting["value"]
    return client.rest_client.request("GET", client.configuration.host + path, headers=headers,
                                      _request_timeout=timeout)


def readyz(name: str) -> bool:
    client = api_client(name)
    try:
        return raw_get(client, "/readyz").status == 200
    finally:
        client.close()


def server_version(name: str) -> str:
    from kubernetes import client as k8s

    api = api_client(name)
    try:
        return k8s.VersionApi(api).get_code(_request_timeout=5).git_version
    finally:
        api.close()


def _node_manifest(node: dict) -> dict:
    resources = {"cpu": str(node.get("cpu", "16")), "memory": str(node.get("memory", "64Gi")), "pods": "110"}
    resources.update({k: str(v) for k, v in node.get("extended", {}).items()})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node["name"],
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {"kubernetes.io/hostname": node["name"], "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "type": "kwok"},
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


def _ensure_nodes(spec: ClusterSpec) -> None:
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    api = api_client(spec.name)
    core = k8s.CoreV1Api(api)
    try:
        for node in spec.nodes:
            try:
                core.create_node(_node_manifest(node))
            except ApiException as exc:
                if exc.status != 409:
                    raise
    finally:
        api.close()


def nodes_ready(name: str) -> tuple[int, int]:
    """(ready, total) for the cluster's Nodes."""
    from kubernetes import client as k8s

    api = api_client(name)
    try:
        items = k8s.CoreV1Api(api).list_node(_request_timeout=5).items
    finally:
        api.close()
    ready = sum(
        1 for n in items if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
    )
    return ready, len(items)


def _default_service_account(name: str) -> bool:
    """The controller-manager has run its loops once it has created default/default."""
    from kubernetes import client as k8s

    api = api_client(name)
    try:
        k8s.CoreV1Api(api).read_namespaced_service_account("default", "default", _request_timeout=5)
        return True
    finally:
        api.close()


def _running(name: str) -> bool:
    try:
        return readyz(name)
    except Exception:
        return False


def cluster_dir(name: str) -> Path:
    """kwokctl's directory of one cluster: its kwok.yaml, pids/, logs/, pki, etcd data."""
    return paths.KWOK_WORKDIR / "clusters" / name


def _kwok_config(name: str) -> tuple[Path, list]:
    """The cluster's kwok.yaml and its documents (KwokctlConfiguration, Stages, ...)."""
    config = cluster_dir(name) / "kwok.yaml"
    try:
        docs = list(yaml.safe_load_all(config.read_text()))
    except (OSError, yaml.YAMLError) as exc:
        raise ClusterError(f"cluster {name!r} has no readable kwokctl configuration at {config}: run `lab up`"
                           f" ({exc.__class__.__name__})") from None
    return config, docs


def _kwokctl_doc(docs: list) -> dict | None:
    return next((d for d in docs if isinstance(d, dict) and d.get("kind") == "KwokctlConfiguration"), None)


def component(name: str, component_name: str = APISERVER) -> dict:
    """One component as kwokctl recorded it in the cluster's kwok.yaml: binary, args, workDir, envs."""
    config, docs = _kwok_config(name)
    for comp in (_kwokctl_doc(docs) or {}).get("components") or []:
        if comp.get("name") == component_name:
            return comp
    raise ClusterError(f"cluster {name!r}: no component {component_name!r} in {config}")


def _pid_file(name: str, comp: dict) -> Path:
    """Where kwokctl's fork-exec keeps a component's pid: <workDir>/pids/<binary name>.pid."""
    workdir = Path(comp.get("workDir") or cluster_dir(name))
    return workdir / "pids" / f"{Path(comp['binary']).stem}.pid"


def _is_component(pid: int, binary: str) -> bool:
    """``pid`` is a live (not zombie) process of that binary (the kernel keeps 15 chars of its name)."""
    return procs.alive(pid) and procs.comm(pid) == Path(binary).name[:15]


def component_pid(name: str, component_name: str = APISERVER) -> int | None:
    """PID of a cluster component from kwokctl's pid file, if that process is alive (not a zombie)."""
    comp = component(name, component_name)
    try:
        pid = int(_pid_file(name, comp).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_component(pid, comp["binary"]) else None


def _drop_stale_pid_files(name: str) -> list[str]:
    """Remove pid files naming a process that is gone, a zombie or someone else (pid reused):
    kwokctl takes any pid that answers signal 0 for its running component and would not start it."""
    dropped = []
    for pid_file in sorted((cluster_dir(name) / "pids").glob("*.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid <= 0 or not _is_component(pid, pid_file.stem):
            pid_file.unlink(missing_ok=True)
            dropped.append(pid_file.stem)
    return dropped


def _spawn(name: str, comp: dict) -> tuple[int, Path]:
    """Start a component the way kwokctl's binary runtime does (same binary, args, working dir and env
    from kwok.yaml; own session; output appended to logs/<binary>.log; pid in pids/). Returns (pid, log)."""
    workdir = Path(comp.get("workDir") or cluster_dir(name))
    logfile = workdir / "logs" / f"{Path(comp['binary']).stem}.log"
    env = dict(os.environ)
    env.update({e["name"]: str(e.get("value", "")) for e in comp.get("envs") or []})
    logfile.parent.mkdir(parents=True, exist_ok=True)
    try:
        pid = procs.spawn_detached([comp["binary"], *comp.get("args", [])], workdir, logfile, env)
    except OSError as exc:
        raise ClusterError(f"cluster {name}: {exc}") from None
    pid_file = _pid_file(name, comp)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(pid))
    return pid, logfile


def _arg_value(args: list[str], flag: str) -> str | None:
    prefix = f"{flag}="
    return next((a[len(prefix):] for a in args if a.startswith(prefix)), None)


def recorded_scheduler_profiles(name: str) -> list[str]:
    """The profiles the cluster's kube-scheduler runs with, as kwok.yaml records its arguments
    (``["default-scheduler"]`` when it runs without ``--config``)."""
    args = [str(a) for a in component(name, SCHEDULER).get("args") or []]
    config_file = _arg_value(args, "--config")
    if not config_file:
        return ["default-scheduler"]
    try:
        return scheduler_profiles(yaml.safe_load(Path(config_file).read_text()))
    except (OSError, yaml.YAMLError):
        return []


def _ensure_scheduler_profiles(name: str, log=print) -> bool:
    """Give an existing cluster's kube-scheduler the lab's profiles in place, as kwokctl would have
    at creation: write ``<cluster>/scheduler.yaml`` (``clientConnection.kubeconfig`` = the kubeconfig
    it used), switch its recorded arguments from ``--kubeconfig`` to ``--config`` and stop a running
    one. True when something changed (the caller starts it again); False when it is up to date or the
    cluster records no kube-scheduler."""
    config, docs = _kwok_config(name)
    kwokctl_doc = _kwokctl_doc(docs)
    comp = next((c for c in (kwokctl_doc or {}).get("components") or [] if c.get("name") == SCHEDULER), None)
    if kwokctl_doc is None or comp is None:
        return False
    args = [str(a) for a in comp.get("args") or []]
    current: dict | None = None
    config_file = _arg_value(args, "--config")
    if config_file:
        with contextlib.suppress(OSError, yaml.YAMLError):
            loaded = yaml.safe_load(Path(config_file).read_text())
            current = loaded if isinstance(loaded, dict) else None
        if current is not None and scheduler_profiles(current) == list(SCHEDULER_PROFILES):
            return False
    kubeconfig = ((current or {}).get("clientConnection") or {}).get("kubeconfig") or _arg_value(args, "--kubeconfig")
    if not kubeconfig:
        raise ClusterError(f"cluster {name}: cannot tell which kubeconfig its kube-scheduler uses (neither "
                           f"--kubeconfig nor a readable --config in {config}); `lab down` and `lab up` recreate it")
    target = Path(comp.get("workDir") or cluster_dir(name)) / "scheduler.yaml"  # kwokctl's own name for it
    paths.write_private(target, yaml.safe_dump(scheduler_config(kubeconfig), sort_keys=False))
    comp["args"] = [f"--config={target}", *(a for a in args if not a.startswith(("--kubeconfig=", "--config=")))]
    kwokctl_doc.setdefault("options", {})["kubeSchedulerConfig"] = str(write_scheduler_config(name))
    tmp = config.with_name(f".{config.name}.tmp")
    tmp.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    os.chmod(tmp, config.stat().st_mode & 0o777)
    tmp.replace(config)
    pid = component_pid(name, SCHEDULER)
    if pid is not None:
        log(f"cluster {name}: restarting kube-scheduler (pid {pid}) with profiles {', '.join(SCHEDULER_PROFILES)}")
        procs.stop(pid, f"{name} kube-scheduler", SCHEDULER_STOP_TIMEOUT)
    _pid_file(name, comp).unlink(missing_ok=True)
    log(f"cluster {name}: kube-scheduler configured in place with profiles {', '.join(SCHEDULER_PROFILES)} "
        f"({target})")
    return True


def _scheduler_healthy(comp: dict) -> bool:
    """kube-scheduler answers ``/healthz`` on its secure port (kwokctl allows the path without auth)."""
    import ssl
    import urllib.request

    args = [str(a) for a in comp.get("args") or []]
    port = _arg_value(args, "--secure-port")
    host = _arg_value(args, "--bind-address") or "127.0.0.1"
    if not port:
        return True
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"https://{host}:{port}/healthz", timeout=2, context=context) as resp:
            return resp.status == 200
    except OSError:
        return False


def _await_serving(name: str, what: str, pid: int, logfile: Path, serving, timeout: float, description: str,
                   interval: float = 0.25) -> None:
    """Wait until a component started by pid serves; "exited" ends the wait at once (one that dies at
    start-up never serves) with its log's last line."""
    try:
        outcome = wait_for(lambda: "exited" if not procs.alive(pid) else serving(), timeout, description,
                           interval=interval)
    except WaitTimeout as exc:
        raise ClusterError(f"cluster {name}: {exc} (log: {logfile})") from None
    if outcome == "exited":
        tail = ""
        with contextlib.suppress(OSError):
            tail = (logfile.read_text(errors="replace").strip().splitlines() or [""])[-1]
        raise ClusterError(f"cluster {name}: {what} (pid {pid}) exited: {tail[-200:]} (log: {logfile})")


def start_scheduler(name: str, timeout: float = READY_TIMEOUT, log=print) -> int:
    """Start the cluster's kube-scheduler as kwokctl would (no-op when it runs) and wait for /healthz."""
    comp = component(name, SCHEDULER)
    pid = component_pid(name, SCHEDULER)
    logfile = Path(comp.get("workDir") or cluster_dir(name)) / "logs" / f"{Path(comp['binary']).stem}.log"
    if pid is None:
        pid, logfile = _spawn(name, comp)
        log(f"cluster {name}: kube-scheduler started (pid {pid})")
    _await_serving(name, SCHEDULER, pid, logfile, lambda: _scheduler_healthy(comp), timeout,
                   f"{name} kube-scheduler /healthz", interval=0.5)
    return pid


def _already_up(spec: ClusterSpec, log) -> str:
    """A serving cluster: only its kube-scheduler may need the profiles (a cluster from before them)."""
    if _ensure_scheduler_profiles(spec.name, log):
        start_scheduler(spec.name, log=log)
        return "already up, kube-scheduler reconfigured"
    return "already up"


def _serving(name: str) -> bool:
    return paths.kubeconfig_path(name).is_file() and _running(name)


def _await_apiserver(spec: ClusterSpec, log, timeout: float | None = None) -> bool:
    """A kube-apiserver process that lives but does not serve is starting or exiting: wait (bounded)
    until it serves (True) or is gone (False). One that does neither in time is stopped."""
    timeout = EXIT_WAIT_TIMEOUT if timeout is None else timeout
    try:
        pid = component_pid(spec.name)
    except ClusterError:
        return False
    if pid is None:
        return False
    log(f"cluster {spec.name}: kube-apiserver (pid {pid}) runs but does not serve; waiting up to {timeout:.0f}s "
        "for it to serve or exit")
    try:
        outcome = wait_for(lambda: "serving" if _serving(spec.name) else ("exited" if not procs.alive(pid) else None),
                           timeout, f"{spec.name} kube-apiserver (pid {pid}) to serve or exit", interval=0.5)
    except WaitTimeout:
        log(f"cluster {spec.name}: kube-apiserver (pid {pid}) neither served nor exited in {timeout:.0f}s; stopping it")
        procs.stop(pid, f"{spec.name} kube-apiserver", 15)
        return False
    return outcome == "serving"


def _await_port(spec: ClusterSpec, log, timeout: float | None = None) -> None:
    """Make sure the cluster's API port is free. Held by a lab process (or by one that is exiting,
    its memory already gone): wait for the release, bounded. Held by anything else: one clear error."""
    timeout = EXIT_WAIT_TIMEOUT if timeout is None else timeout
    port = spec.apiserver_port
    if procs.port_free("127.0.0.1", port):
        return
    owners = procs.port_owners(port)
    lab = set(lab_processes())
    foreign = [pid for pid in owners if pid not in lab and procs.cmdline(pid)]
    if foreign:
        who = ", ".join(f"pid {pid} {procs.cmdline(pid)[:60]!r}" for pid in foreign)
        raise ClusterError(
            f"port 127.0.0.1:{port} for cluster {spec.name}'s kube-apiserver is in use by another "
            f"process ({who}); free it or change apiserver_port in {CONFIG_FILE}")
    if not owners:
        # Nobody we can see holds it (a socket of another user's process, a namespace): not ours to wait for.
        raise ClusterError(
            f"port 127.0.0.1:{port} for cluster {spec.name}'s kube-apiserver is in use by another "
            f"process; free it or change apiserver_port in {CONFIG_FILE}")
    log(f"cluster {spec.name}: port {port} is still held by exiting lab process(es) {owners}; "
        f"waiting up to {timeout:.0f}s for its release")
    try:
        wait_for(lambda: procs.port_free("127.0.0.1", port), timeout, f"port {port} to be released", interval=0.2)
    except WaitTimeout:
        raise ClusterError(f"port 127.0.0.1:{port} of cluster {spec.name} is still held by pid(s) "
                           f"{procs.port_owners(port)} after {timeout:.0f}s; run `lab down`") from None


def _start(spec: ClusterSpec, bindir: Path, known: set[str], log=print) -> str:
    """Start or create one cluster's processes; returns what was done."""
    kubeconfig = paths.kubeconfig_path(spec.name)
    if spec.name in known and kubeconfig.is_file() and _running(spec.name):
        return _already_up(spec, log)
    if spec.name in known:
        # Never race a kube-apiserver that is still exiting (a restart, a `lab down` cut short):
        # kwokctl would take it for running, or the new one would find its port taken.
        if _await_apiserver(spec, log):
            return _already_up(spec, log)
        _drop_stale_pid_files(spec.name)
    _await_port(spec, log)
    if spec.name in known:
        _ensure_scheduler_profiles(spec.name, log)  # a cluster from before the profiles: kwokctl starts it so
        _kwokctl(bindir, "start", "cluster", "--name", spec.name, "--wait", f"{READY_TIMEOUT}s")
        return "started"
    scheduler_file = write_scheduler_config(spec.name)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as cfg:
        cfg.write(_kwokctl_config(bindir, scheduler_file, spec.name))
    try:
        _kwokctl(bindir, "create", "cluster", "--name", spec.name, "--config", cfg.name,
                 "--kube-apiserver-port", str(spec.apiserver_port),
                 "--kubeconfig", str(kubeconfig), "--wait", f"{READY_TIMEOUT}s")
    finally:
        os.unlink(cfg.name)
    os.chmod(kubeconfig, 0o600)
    return "created"


def _settle(spec: ClusterSpec, action: str, log) -> None:
    """Wait until the cluster serves, has run its controllers, and its Nodes are Ready."""
    kubeconfig = paths.kubeconfig_path(spec.name)
    wait_for(lambda: readyz(spec.name), READY_TIMEOUT, f"{spec.name} /readyz")
    wait_for(lambda: _default_service_account(spec.name), READY_TIMEOUT, f"{spec.name} controller-manager")
    _ensure_nodes(spec)
    wait_for(lambda: (lambda r, t: r == t)(*nodes_ready(spec.name)), READY_TIMEOUT, f"{spec.name} nodes Ready")
    log(f"cluster {spec.name}: {action}, {server_version(spec.name)}, kubeconfig {kubeconfig}")


def up(log=print) -> dict[str, str]:
    """Bring both clusters up; a no-op for clusters already serving.

    Processes start one cluster at a time: kwokctl picks free ports for etcd, kwok and
    the controllers when it sets a cluster up, and two clusters set up at once can pick
    the same one. Readiness waits, which dominate, run in parallel.
    """
    bindir = k8sbin.ensure_built(log)
    paths.private_dir(paths.KUBECONFIG_DIR)
    paths.private_dir(paths.KWOK_WORKDIR)
    known = existing_clusters(bindir)
    actions = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        settling = []
        for spec in specs():
            actions[spec.name] = _start(spec, bindir, known, log)
            settling.append(pool.submit(_settle, spec, actions[spec.name], log))
        for future in settling:
            future.result()
    return actions


def lab_processes() -> list[int]:
    """PIDs of processes working inside the lab's kwok workdir (every component kwokctl starts)."""
    return procs.processes_matching(str(paths.KWOK_WORKDIR))


def down(log=print) -> None:
    bindir = k8sbin.bin_dir()
    ports = procs.listening_ports(set(lab_processes()))
    if (bindir / "kwokctl").is_file():
        for name in sorted(existing_clusters(bindir)):
            _kwokctl(bindir, "delete", "cluster", "--name", name, check=False)
            log(f"cluster {name}: deleted")
    # Anything kwokctl lost track of (a crashed start, a stale pid file) is ours to end.
    for pid in lab_processes():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not lab_processes(), 30, "lab control-plane processes to exit")
    wait_for(lambda: not set(ports) & set(procs.listening_ports()), 30, f"lab ports {ports} to close")
    shutil.rmtree(paths.KWOK_WORKDIR, ignore_errors=True)
    for spec in specs():
        paths.kubeconfig_path(spec.name).unlink(missing_ok=True)


def _spec(name: str) -> ClusterSpec:
    for spec in specs():
        if spec.name == name:
            return spec
    raise ClusterError(f"no lab cluster {name!r} (clusters: {', '.join(s.name for s in specs())})")


def stop_apiserver(name: str, stop_timeout: float | None = None, log=print) -> dict:
    """Stop a cluster's kube-apiserver and wait until its process has exited and its port is free.

    SIGTERM first (a graceful shutdown drains requests: up to a minute), SIGKILL after
    ``stop_timeout`` seconds. Returns ``{"pid", "exit_seconds"}`` (pid None: it was not running)."""
    spec = _spec(name)
    stop_timeout = APISERVER_STOP_TIMEOUT if stop_timeout is None else stop_timeout
    comp = component(name)
    pid = component_pid(name)
    started = time.monotonic()
    if pid is not None:
        log(f"cluster {name}: stopping kube-apiserver (pid {pid}; SIGTERM, SIGKILL after {stop_timeout:.0f}s)")
        procs.stop(pid, f"{name} kube-apiserver", stop_timeout)
    _pid_file(name, comp).unlink(missing_ok=True)
    _await_port(spec, log)
    return {"pid": pid, "exit_seconds": round(time.monotonic() - started, 2)}


def start_apiserver(name: str, ready_timeout: float = READY_TIMEOUT, log=print) -> dict:
    """Start a cluster's kube-apiserver the way kwokctl's binary runtime does (same binary, args,
    working dir and env from kwok.yaml; own session; output to logs/; pid in pids/) and wait
    for /readyz. A no-op wait when it already runs. Returns ``{"pid", "ready_seconds"}``."""
    spec = _spec(name)
    comp = component(name)
    started = time.monotonic()
    workdir = Path(comp.get("workDir") or cluster_dir(name))
    logfile = workdir / "logs" / f"{Path(comp['binary']).stem}.log"
    pid = component_pid(name)
    if pid is None:
        _await_port(spec, log)
        pid, logfile = _spawn(name, comp)
        log(f"cluster {name}: kube-apiserver started (pid {pid})")

    _await_serving(name, APISERVER, pid, logfile, lambda: readyz(name), ready_timeout, f"{name} /readyz")
    return {"pid": pid, "ready_seconds": round(time.monotonic() - started, 2)}


def restart_apiserver(name: str, down_seconds: float = 0, stop_timeout: float | None = None,
                      ready_timeout: float = READY_TIMEOUT, log=print) -> dict:
    """Restart a cluster's kube-apiserver on purpose: stop it and wait for the old process to exit
    (SIGTERM, SIGKILL after ``stop_timeout``), stay down ``down_seconds``, start it the way kwokctl
    does, wait for /readyz. etcd, the controllers and kwok keep running (they reconnect).

    Returns ``{"cluster", "old_pid", "new_pid", "exit_seconds", "down_seconds", "ready_seconds",
    "total_seconds"}``."""
    if name not in existing_clusters(k8sbin.bin_dir()):
        raise ClusterError(f"cluster {name!r} is not set up: run `lab up`")
    started = time.monotonic()
    stopped = stop_apiserver(name, stop_timeout, log)
    if down_seconds > 0:
        log(f"cluster {name}: kube-apiserver stays down for {down_seconds:g}s")
        time.sleep(down_seconds)  # the caller asked for an outage of this length
    started_again = start_apiserver(name, ready_timeout, log)
    result = {"cluster": name, "old_pid": stopped["pid"], "new_pid": started_again["pid"],
              "exit_seconds": stopped["exit_seconds"], "down_seconds": down_seconds,
              "ready_seconds": started_again["ready_seconds"], "total_seconds": round(time.monotonic() - started, 2)}
    log(f"cluster {name}: kube-apiserver restarted (old pid {result['old_pid']} exited in {result['exit_seconds']}s,"
        f" new pid {result['new_pid']} ready in {result['ready_seconds']}s)")
    return result


def status() -> list[dict]:
    rows = []
    for spec in specs():
        row = {"cluster": spec.name, "kubeconfig": str(paths.kubeconfig_path(spec.name)), "state": "down"}
        if paths.kubeconfig_path(spec.name).is_file() and _running(spec.name):
            ready, total = nodes_ready(spec.name)
            row.update(state="up", version=server_version(spec.name), nodes=f"{ready}/{total} Ready")
            with contextlib.suppress(ClusterError):
                row["scheduler_profiles"] = ",".join(recorded_scheduler_profiles(spec.name))
            with contextlib.suppress(ClusterError):
                # A cluster created before the aggregation flags: `lab down && lab up` recreates it with them.
                row["api_aggregation"] = "yes" if has_aggregation(spec.name) else "no (lab down && lab up)"
        rows.append(row)
    return rows
