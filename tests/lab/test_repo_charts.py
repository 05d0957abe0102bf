"""The lab's Helm chart repository: NVIDIA's real device-plugin chart (from its Go module) and the
dcgm-exporter stand-in, packaged, indexed, rendered with the values a role sets, and served.

Offline except ``go mod download`` of github.com/NVIDIA/k8s-device-plugin@v0.18.0 through the Go
module proxy (a no-op once the shared module cache holds it).
"""

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from labctl import paths
from labctl.repos import charts, common

pytestmark = pytest.mark.skipif(not shutil.which("go"), reason="needs the Go toolchain (go mod download)")

NAMESPACE = "nvidia-device-plugin"
TIME_SLICING = """\
version: v1
flags:
  migStrategy: none
sharing:
  timeSlicing:
    resources:
      - name: nvidia.com/gpu
        replicas: 4
"""
# What the device-plugin role would set: GPU nodes by label, the nvidia RuntimeClass, MIG strategy,
# GFD, and an embedded time-slicing config selected by default.
ROLE_VALUES = {
    "nodeSelector": {"nvidia.com/gpu.present": "true"},
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}]}}},
    "runtimeClassName": "nvidia",
    "migStrategy": "single",
    "gfd": {"enabled": True},
    "config": {"default": "time-slicing-4", "map": {"time-slicing-4": TIME_SLICING}},
}


@pytest.fixture(scope="module")
def helm():
    try:
        return charts.helm_binary()
    except common.RepoBuildError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory):
    home = tmp_path_factory.mktemp("helm")
    return dict(os.environ, HELM_CACHE_HOME=str(home / "c"), HELM_CONFIG_HOME=str(home / "cf"),
                HELM_DATA_HOME=str(home / "d"))


@pytest.fixture(scope="module")
def repo(helm, lab_dirs):
    messages = []
    started = time.monotonic()
    directory = charts.ensure_built(log=messages.append)
    return {"dir": directory, "messages": messages, "seconds": time.monotonic() - started,
            "index": yaml.safe_load((directory / "index.yaml").read_text())}


def helm_run(helm, env, *args, check=True):
    proc = subprocess.run([helm, *map(str, args)], capture_output=True, text=True, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {args} -> {proc.returncode}\n{proc.stderr}")
    return proc


def render(helm, env, chart, *args, values=None, tmp_path=None):
    extra = []
    if values is not None:
        vf = tmp_path / "values.yaml"
        vf.write_text(yaml.safe_dump(values))
        extra = ["-f", vf]
    out = helm_run(helm, env, "template", "rel", chart, *args, *extra).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_index_lists_both_charts_with_digests(repo):
    assert any("go mod download" in m for m in repo["messages"])
    entries = repo["index"]["entries"]
    assert sorted(entries) == ["dcgm-exporter", "nvidia-device-plugin"]
    for name, version in (("nvidia-device-plugin", "0.18.0"), ("dcgm-exporter", "4.8.2")):
        (entry,) = entries[name]
        archive = repo["dir"] / f"{name}-{version}.tgz"
        assert entry["version"] == version
        assert entry["digest"] == hashlib.sha256(archive.read_bytes()).hexdigest()
        assert entry["urls"] == [f"http://10.77.0.1:8380/charts/{name}-{version}.tgz"]
    info = charts.charts_repo_info()
    assert info["built"] and info["url"] == "http://10.77.0.1:8380/charts"
    assert info["charts"]["nvidia-device-plugin"]["digest"] == entries["nvidia-device-plugin"][0]["digest"]
    assert info["charts"]["dcgm-exporter"]["app_version"] == "4.8.2"


def test_cached_by_definition(repo, monkeypatch):
    monkeypatch.setattr(charts, "device_plugin_chart", lambda log: pytest.fail("a warm build must not run go"))
    again = []
    assert charts.ensure_built(log=again.append) == repo["dir"] and not again
    assert charts.build_dir("http://192.0.2.1:8380") != repo["dir"]


def test_device_plugin_chart_is_upstreams(repo, helm, helm_env):
    meta = yaml.safe_load(helm_run(helm, helm_env, "show", "chart",
                                   repo["dir"] / "nvidia-device-plugin-0.18.0.tgz").stdout)
    assert (meta["name"], meta["version"], meta["appVersion"]) == ("nvidia-device-plugin", "0.18.0", "0.18.0")
    assert meta["dependencies"][0]["alias"] == "nfd" and meta["dependencies"][0]["version"] == "0.17.3"


def test_device_plugin_renders_with_role_values(repo, helm, helm_env, tmp_path):
    chart = repo["dir"] / "nvidia-device-plugin-0.18.0.tgz"
    docs = render(helm, helm_env, chart, "--namespace", NAMESPACE, values=ROLE_VALUES, tmp_path=tmp_path)
    daemonsets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "DaemonSet"}
    plugin = next(d for n, d in daemonsets.items() if "device-plugin" in n and "mps" not in n)
    gfd = next(d for n, d in daemonsets.items() if "gpu-feature-discovery" in n)
    assert any("node-feature-discovery" in n or "nfd" in n for n in daemonsets)  # GFD brings NFD
    for ds in (plugin, gfd):
        spec = ds["spec"]["template"]["spec"]
        assert ds["metadata"]["namespace"] == NAMESPACE
        assert spec["runtimeClassName"] == "nvidia"
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert spec["affinity"] == ROLE_VALUES["affinity"]
    containers = {c["name"]: c for c in plugin["spec"]["template"]["spec"]["containers"]}
    sidecar = containers["nvidia-device-plugin-sidecar"]  # per-node config selection by label
    assert sidecar["command"] == ["config-manager"]
    assert {"name": "NODE_LABEL", "value": "nvidia.com/device-plugin.config"} in sidecar["env"]
    env = {e["name"]: e.get("value") for c in containers.values() for e in c.get("env", [])}
    assert env["MIG_STRATEGY"] == "single"
    configmaps = [d for d in docs if d["kind"] == "ConfigMap" and "time-slicing-4" in d.get("data", {})]
    assert len(configmaps) == 1
    assert yaml.safe_load(configmaps[0]["data"]["time-slicing-4"])["sharing"]["timeSlicing"]["resources"][0] == {
        "name": "nvidia.com/gpu", "replicas": 4}
    refused = helm_run(helm, helm_env, "template", "rel", chart, check=False)
    assert refused.returncode != 0 and "default" in refused.stderr  # the chart's own namespace guard


def test_dcgm_exporter_stand_in(repo, helm, helm_env, tmp_path):
    assert "1 chart(s) linted, 0 chart(s) failed" in helm_run(helm, helm_env, "lint", charts.DCGM_SOURCE).stdout
    chart = repo["dir"] / "dcgm-exporter-4.8.2.tgz"
    values = {"nodeSelector": {"nvidia.com/gpu.present": "true"}, "runtimeClassName": "nvidia",
              "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
              "affinity": ROLE_VALUES["affinity"], "serviceMonitor": {"enabled": True, "interval": "30s"}}
    kinds = lambda docs: sorted(d["kind"] for d in docs)  # noqa: E731
    plain = render(helm, helm_env, chart, "-n", "gpu-monitoring", values=values, tmp_path=tmp_path)
    assert kinds(plain) == ["ConfigMap", "DaemonSet", "Service", "ServiceAccount"]  # no Prometheus Operator API
    with_api = render(helm, helm_env, chart, "-n", "gpu-monitoring", "--api-versions", "monitoring.coreos.com/v1",
                      values=values, tmp_path=tmp_path)
    assert kinds(with_api) == ["ConfigMap", "DaemonSet", "Service", "ServiceAccount", "ServiceMonitor"]
    monitor = next(d for d in with_api if d["kind"] == "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    values["serviceMonitor"]["enabled"] = False
    off = render(helm, helm_env, chart, "-n", "gpu-monitoring", "--api-versions", "monitoring.coreos.com/v1",
                 values=values, tmp_path=tmp_path)
    assert "ServiceMonitor" not in kinds(off)
    ds = next(d for d in plain if d["kind"] == "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"} and spec["runtimeClassName"] == "nvidia"
    assert spec["affinity"] == ROLE_VALUES["affinity"] and spec["tolerations"] == values["tolerations"]
    assert spec["containers"][0]["ports"] == [{"name": "metrics", "containerPort": 9400}]
    assert spec["containers"][0]["image"] == "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless"
    svc = next(d for d in plain if d["kind"] == "Service")
    assert svc["spec"]["selector"] == ds["spec"]["selector"]["matchLabels"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_by_the_mirror_stand_in(repo, helm, helm_env, tmp_path):
    root, state = tmp_path / "mirror", tmp_path / "mirror-state"
    root.mkdir()
    state.mkdir()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    info = charts.publish(log=lambda m: None, base_url=base, mirror=root)  # an index with this URL
    assert (root / "charts").is_symlink() and info["url"] == f"{base}/charts"
    proc = subprocess.Popen([sys.executable, "-m", "labctl.storage.mirror", "--root", str(root), "--port", str(port),
                             "--bind", "127.0.0.1", "--state-dir", str(state)],
                            env=dict(os.environ, PYTHONPATH=str(paths.LAB_DIR)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (state / "mirror.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "mirror stand-in did not start"
            time.sleep(0.05)
        dest = tmp_path / "pulled"
        dest.mkdir()
        for name, version in (("nvidia-device-plugin", "0.18.0"), ("dcgm-exporter", "4.8.2")):
            helm_run(helm, helm_env, "pull", name, "--repo", info["url"], "--version", version, "--destination", dest)
            pulled = Path(dest / f"{name}-{version}.tgz")
            assert hashlib.sha256(pulled.read_bytes()).hexdigest() == info["charts"][name]["digest"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_go_missing_is_one_clear_line(lab_dirs, monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path)  # nothing built here
    real_which = shutil.which
    monkeypatch.setattr(common.shutil, "which", lambda name, *a, **k: None if name == "go" else real_which(name))
    with pytest.raises(common.RepoBuildError, match="go not found on PATH"):
        charts.ensure_built(log=lambda m: None)
