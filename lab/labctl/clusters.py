"""The lab's two Kubernetes control planes, run by kwokctl's binary runtime.

Each cluster is a real etcd, kube-apiserver, kube-controller-manager and
kube-scheduler with kwok as the kubelet stand-in, all bound to 127.0.0.1 on ports
kwokctl picks free. Kubeconfigs land at ``lab/state/kubeconfig/<name>.yaml``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from labctl import k8sbin, paths, procs
from labctl.waiting import wait_for

CONFIG_FILE = Path(__file__).with_name("clusters.yaml")
READY_TIMEOUT = 180


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


def _kwokctl_config(bindir: Path) -> str:
    """kwokctl configuration pointing at the locally built binaries, loopback only."""
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
    return yaml.safe_dump(
        {"kind": "KwokctlConfiguration", "apiVersion": "config.kwok.x-k8s.io/v1alpha1", "options": options}
    )


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


def _start(spec: ClusterSpec, bindir: Path, known: set[str]) -> str:
    """Start or create one cluster's processes; returns what was done."""
    kubeconfig = paths.kubeconfig_path(spec.name)
    if spec.name in known and kubeconfig.is_file() and _running(spec.name):
        return "already up"
    if not procs.port_free("127.0.0.1", spec.apiserver_port):
        raise ClusterError(
            f"port 127.0.0.1:{spec.apiserver_port} for cluster {spec.name}'s kube-apiserver is in use by another "
            f"process; free it or change apiserver_port in {CONFIG_FILE}")
    if spec.name in known:
        _kwokctl(bindir, "start", "cluster", "--name", spec.name, "--wait", f"{READY_TIMEOUT}s")
        return "started"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as cfg:
        cfg.write(_kwokctl_config(bindir))
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
    paths.KUBECONFIG_DIR.mkdir(parents=True, exist_ok=True)
    paths.KWOK_WORKDIR.mkdir(parents=True, exist_ok=True)
    known = existing_clusters(bindir)
    actions = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        settling = []
        for spec in specs():
            actions[spec.name] = _start(spec, bindir, known)
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


def status() -> list[dict]:
    rows = []
    for spec in specs():
        row = {"cluster": spec.name, "kubeconfig": str(paths.kubeconfig_path(spec.name)), "state": "down"}
        if paths.kubeconfig_path(spec.name).is_file() and _running(spec.name):
            ready, total = nodes_ready(spec.name)
            row.update(state="up", version=server_version(spec.name), nodes=f"{ready}/{total} Ready")
        rows.append(row)
    return rows
