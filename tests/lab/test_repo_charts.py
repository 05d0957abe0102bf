"""The lab's Helm chart repository: the real upstream charts from their Go modules (NVIDIA's device
plugin, OME's ome-crd and ome-resources, LeaderWorkerSet's lws) and the stand-ins (dcgm-exporter,
Kubeocean's kubeocean and kubeocean-worker), packaged, indexed, rendered (with the values a role sets,
or the charts' defaults), and served.

Offline except ``go mod download`` of github.com/NVIDIA/k8s-device-plugin@v0.18.0,
github.com/sgl-project/ome@v0.1.5 and sigs.k8s.io/lws@v0.7.0 through the Go module proxy (a no-op
once the shared module cache holds them).
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
# Every chart the repository serves: (name, version), upstream's names and versions unchanged.
CHARTS = [("dcgm-exporter", "4.8.2"), ("keda", "2.21.0"), ("kubeocean", "0.1.1"), ("kubeocean-worker", "0.1.1"),
          ("kuberay-operator", "1.5.0"), ("lws", "0.1.0"), ("nvidia-device-plugin", "0.18.0"), ("ome-crd", "0.1.0"),
          ("ome-resources", "0.1.0")]
OME_CRDS = ["acceleratorclasses", "basemodels", "benchmarkjobs", "clusterbasemodels", "clusterservingruntimes",
            "finetunedweights", "inferenceservices", "servingruntimes"]
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


def test_index_lists_every_chart_with_digests(repo):
    downloads = [m for m in repo["messages"] if "go mod download" in m]
    # one per module: OME's two charts share one download; KubeRay's and KEDA's stand-ins take their CRDs and
    # RBAC from their modules
    assert len(downloads) == 5
    assert any("github.com/sgl-project/ome@v0.1.5" in m for m in downloads)
    entries = repo["index"]["entries"]
    assert sorted(entries) == [name for name, _ in CHARTS]
    for name, version in CHARTS:
        (entry,) = entries[name]
        archive = repo["dir"] / f"{name}-{version}.tgz"
        assert entry["version"] == version
        assert entry["digest"] == hashlib.sha256(archive.read_bytes()).hexdigest()
        assert entry["urls"] == [f"http://10.77.0.1:8380/charts/{name}-{version}.tgz"]
    info = charts.charts_repo_info()
    assert info["built"] and info["url"] == "http://10.77.0.1:8380/charts"
    assert info["charts"]["nvidia-device-plugin"]["digest"] == entries["nvidia-device-plugin"][0]["digest"]
    assert info["charts"]["dcgm-exporter"]["app_version"] == "4.8.2"
    assert {name: (c["version"], c["digest"]) for name, c in info["charts"].items()} == {
        name: (version, entries[name][0]["digest"]) for name, version in CHARTS}
    assert info["charts"]["lws"]["app_version"] == "v0.7.0"


def test_kuberay_and_keda_stand_ins_carry_their_modules_crds_and_rbac(repo, helm, helm_env):
    crds = helm_run(helm, helm_env, "show", "crds", repo["dir"] / "kuberay-operator-1.5.0.tgz").stdout
    assert sorted(d["metadata"]["name"] for d in yaml.safe_load_all(crds) if d) == [
        "rayclusters.ray.io", "rayjobs.ray.io", "rayservices.ray.io"]
    docs = render(helm, helm_env, repo["dir"] / "kuberay-operator-1.5.0.tgz", "-n", "kuberay-system")
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} >= {("ClusterRole", "kuberay-operator"),
                                                                  ("Deployment", "kuberay-operator")}
    docs = render(helm, helm_env, repo["dir"] / "keda-2.21.0.tgz", "-n", "keda")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("CustomResourceDefinition", "scaledjobs.keda.sh") in kinds
    assert ("APIService", "v1beta1.external.metrics.k8s.io") in kinds
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "keda-operator")
    assert role["metadata"]["namespace"] == "keda"
    without = render(helm, helm_env, repo["dir"] / "keda-2.21.0.tgz", "-n", "keda", "--set", "crds.install=false")
    assert not [d for d in without if d["kind"] == "CustomResourceDefinition"]


def test_cached_by_definition(repo, monkeypatch):
    monkeypatch.setattr(charts, "module_dir", lambda *a, **k: pytest.fail("a warm build must not run go"))
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


@pytest.mark.parametrize("name,version,module", [
    ("ome-crd", "0.1.0", "github.com/sgl-project/ome@v0.1.5"),
    ("ome-resources", "0.1.0", "github.com/sgl-project/ome@v0.1.5"),
    ("lws", "0.1.0", "sigs.k8s.io/lws@v0.7.0")])
def test_ome_and_lws_charts_are_upstreams(repo, helm, helm_env, name, version, module):
    archive = repo["dir"] / f"{name}-{version}.tgz"
    meta = yaml.safe_load(helm_run(helm, helm_env, "show", "chart", archive).stdout)
    assert (meta["name"], meta["version"]) == (name, version)
    chart = next(c for c in charts.UPSTREAM_CHARTS if c.name == name)
    assert (f"{chart.module}@{chart.module_version}", chart.archive) == (module, archive.name)
    upstream = charts.module_dir(chart.module, chart.module_version, log=lambda m: None,
                                 no_sumdb=chart.no_sumdb) / chart.path
    assert meta == yaml.safe_load((upstream / "Chart.yaml").read_text())  # unchanged


def test_ome_crd_renders_the_ome_crds(repo, helm, helm_env):
    docs = render(helm, helm_env, repo["dir"] / "ome-crd-0.1.0.tgz", "--namespace", "ome")
    assert sorted(d["metadata"]["name"] for d in docs) == [f"{n}.ome.io" for n in OME_CRDS]
    assert {d["kind"] for d in docs} == {"CustomResourceDefinition"}
    isvc = next(d for d in docs if d["metadata"]["name"] == "inferenceservices.ome.io")
    assert [v["name"] for v in isvc["spec"]["versions"] if v["storage"]] == ["v1beta1"]


def test_ome_resources_renders_the_controller_with_defaults(repo, helm, helm_env):
    docs = render(helm, helm_env, repo["dir"] / "ome-resources-0.1.0.tgz", "--namespace", "ome-lab")
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    manager = by_kind["Deployment"]["ome-controller-manager"]
    assert manager["metadata"]["namespace"] == "ome-lab"
    (container,) = [c for c in manager["spec"]["template"]["spec"]["containers"] if c["name"] == "manager"]
    assert container["image"].endswith("/ome-manager:v0.1.4")  # upstream's values pin v0.1.4 even at v0.1.5
    assert "--webhook" in container["args"] and "--leader-elect" in container["args"]
    assert "ome-model-agent-daemonset" in by_kind["DaemonSet"]
    assert by_kind["ConfigMap"]["inferenceservice-config"]["metadata"]["namespace"] == "ome"  # upstream pins it
    assert {"Certificate", "Issuer", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
            "ClusterRole"} <= set(by_kind)


def test_lws_renders_the_controller_and_the_crd_with_defaults(repo, helm, helm_env):
    docs = render(helm, helm_env, repo["dir"] / "lws-0.1.0.tgz", "--namespace", "lws-system")
    (crd,) = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert crd["metadata"]["name"] == "leaderworkersets.leaderworkerset.x-k8s.io"
    assert [v["name"] for v in crd["spec"]["versions"]] == ["v1"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["metadata"]["name"] == "rel-lws-controller-manager"
    assert deployment["metadata"]["namespace"] == "lws-system"
    images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    assert images == ["registry.k8s.io/lws/lws:main"]  # upstream's default: a site pins image.manager.tag
    assert {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} <= {d["kind"] for d in docs}


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


def _by_kind(docs: list[dict]) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for d in docs:
        out.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    return out


def _release(helm, env, name, chart, *args) -> list[dict]:
    """``helm template`` with the release name the installation scripts use."""
    return [d for d in yaml.safe_load_all(helm_run(helm, env, "template", name, chart, *args).stdout) if d]


def _schema(crd: dict) -> dict:
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1beta1", True, True)
    assert version["subresources"] == {"status": {}}
    return version["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("name", ["kubeocean", "kubeocean-worker"])
def test_kubeocean_stand_ins_lint_and_are_indexed(repo, helm, helm_env, name):
    source = charts.STAND_IN_CHARTS[name]
    assert "1 chart(s) linted, 0 chart(s) failed" in helm_run(helm, helm_env, "lint", source).stdout
    meta = yaml.safe_load(helm_run(helm, helm_env, "show", "chart", repo["dir"] / f"{name}-0.1.1.tgz").stdout)
    assert (meta["name"], meta["version"], meta["appVersion"]) == (name, "0.1.1", "0.1.1")


def test_kubeocean_manager_chart_renders_crd_deployment_rbac_templates(repo, helm, helm_env):
    # install-manager.sh: `helm upgrade --install kubeocean charts/kubeocean` (no -n: objects in kubeocean-system)
    docs = _release(helm, helm_env, "kubeocean", repo["dir"] / "kubeocean-0.1.1.tgz")
    kinds = _by_kind(docs)
    assert set(kinds["Namespace"]) == {"kubeocean-system"}
    crd = kinds["CustomResourceDefinition"]["clusterbindings.cloud.tencent.com"]
    assert (crd["spec"]["group"], crd["spec"]["scope"], crd["spec"]["names"]["shortNames"]) == (
        "cloud.tencent.com", "Cluster", ["cb"])
    schema = _schema(crd)
    spec = schema["properties"]["spec"]
    assert spec["required"] == ["clusterID", "secretRef"]
    cluster_id = spec["properties"]["clusterID"]
    assert (cluster_id["maxLength"], cluster_id["pattern"]) == (24, "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    assert cluster_id["x-kubernetes-validations"] == [{"rule": "self == oldSelf", "message": "clusterID is immutable"}]
    assert {"nodeSelector", "mountNamespace", "serviceNamespaces", "disableNodeDefaultTaint", "podPriorityClassName",
            "runningDaemonsetByDefault", "directScheduling", "secretRef"} <= set(spec["properties"])
    operators = spec["properties"]["nodeSelector"]["properties"]["nodeSelectorTerms"]["items"]["properties"][
        "matchExpressions"]["items"]["properties"]["operator"]["enum"]
    assert operators == ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    assert schema["properties"]["status"]["properties"]["phase"]["enum"] == ["Pending", "Ready", "Failed"]
    deployment = kinds["Deployment"]["kubeocean-manager"]
    assert deployment["metadata"]["namespace"] == "kubeocean-system" and deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "ccr.ccs.tencentyun.com/tkeimages/kubeocean-manager:v0.1.1"
    assert "--leader-elect=true" in pod["containers"][0]["args"]
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "node.kubernetes.io/instance-type", "operator": "NotIn", "values": ["vnode"]}]}]
    assert {"name": "tz-config", "hostPath": {"path": "/etc/localtime"}} in pod["volumes"]
    assert set(kinds["ServiceAccount"]) == set(kinds["ClusterRole"]) == set(kinds["ClusterRoleBinding"]) == {
        "kubeocean-manager", "kubeocean-syncer", "kubeocean-proxier"}
    templates = kinds["ConfigMap"]
    assert set(templates) == {"kubeocean-syncer-template", "kubeocean-proxier-template"}
    assert "name: \"{{.DeploymentName}}\"" in templates["kubeocean-syncer-template"]["data"]["deployment.yaml"]
    assert "service.yaml" in templates["kubeocean-proxier-template"]["data"]
    off = _release(helm, helm_env, "kubeocean", repo["dir"] / "kubeocean-0.1.1.tgz", "--set", "crd.enabled=false")
    assert "CustomResourceDefinition" not in _by_kind(off)


def test_kubeocean_worker_chart_renders_crd_sa_token_rbac(repo, helm, helm_env):
    docs = _release(helm, helm_env, "kubeocean-worker", repo["dir"] / "kubeocean-worker-0.1.1.tgz")
    kinds = _by_kind(docs)
    assert set(kinds["Namespace"]) == {"kubeocean-worker"}
    assert "Deployment" not in kinds and "DaemonSet" not in kinds          # RBAC and CRD only
    assert kinds["ServiceAccount"]["kubeocean-syncer"]["metadata"]["namespace"] == "kubeocean-worker"
    secret = kinds["Secret"]["kubeocean-syncer"]
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "kubeocean-syncer"}
    rules = kinds["ClusterRole"]["kubeocean-syncer"]["rules"]
    assert any("resourceleasingpolicies" in r["resources"] and "create" in r["verbs"] for r in rules)
    assert any(r["resources"] == ["nodes"] and {"list", "watch", "patch"} <= set(r["verbs"]) for r in rules)
    assert any("priorityclasses" in r["resources"] for r in rules)
    assert kinds["Role"]["kubeocean-syncer"]["metadata"]["namespace"] == "kubeocean-worker"
    assert kinds["RoleBinding"]["kubeocean-syncer"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "kubeocean-syncer", "namespace": "kubeocean-worker"}]
    crd = kinds["CustomResourceDefinition"]["resourceleasingpolicies.cloud.tencent.com"]
    assert (crd["spec"]["scope"], crd["spec"]["names"]["shortNames"]) == ("Cluster", ["rlp"])
    assert [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]] == [
        "Cluster", "Phase", "Active", "Age"]
    spec = _schema(crd)["properties"]["spec"]
    assert spec["required"] == ["cluster"]
    window = spec["properties"]["timeWindows"]["items"]
    assert window["required"] == ["start", "end"]
    assert window["properties"]["start"]["pattern"] == "^([01][0-9]|2[0-3]):[0-5][0-9]$"
    assert "(?i:monday|" in window["properties"]["days"]["items"]["pattern"]
    limit = spec["properties"]["resourceLimits"]["items"]
    assert limit["required"] == ["resource"]
    assert limit["properties"]["quantity"]["x-kubernetes-int-or-string"] is True
    assert (limit["properties"]["percent"]["minimum"], limit["properties"]["percent"]["maximum"]) == (0, 100)
    assert {"forceReclaim", "gracefulReclaimPeriodSeconds", "nodeSelector"} <= set(spec["properties"])
    assert _schema(crd)["properties"]["status"]["properties"]["phase"]["enum"] == [
        "Pending", "Active", "Inactive", "Failed"]


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
        for name, version in CHARTS:
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
