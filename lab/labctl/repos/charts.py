"""The Helm chart repository the lab serves (lab fixture).

Upstream charts and the lab's chart stand-ins in one repository, the way a site's offline chart mirror
(ChartMuseum, Harbor, a Nexus or Artifactory Helm repository) merges the upstream ones::

    <mirror>/charts/index.yaml
    <mirror>/charts/nvidia-device-plugin-0.18.0.tgz   NVIDIA's real chart, unchanged
    <mirror>/charts/ome-crd-0.1.0.tgz                 OME's real CRD chart, unchanged
    <mirror>/charts/ome-resources-0.1.0.tgz           OME's real controller chart, unchanged
    <mirror>/charts/lws-0.1.0.tgz                     LeaderWorkerSet's real chart, unchanged
    <mirror>/charts/dcgm-exporter-4.8.2.tgz           the lab's stand-in of NVIDIA's dcgm-exporter chart
    <mirror>/charts/kubeocean-0.1.1.tgz               the lab's stand-in of Kubeocean's manager chart
    <mirror>/charts/kubeocean-worker-0.1.1.tgz        the lab's stand-in of Kubeocean's worker chart
    <mirror>/charts/kuberay-operator-1.5.0.tgz        the lab's stand-in of KubeRay's operator chart
    <mirror>/charts/keda-2.21.0.tgz                   the lab's stand-in of KEDA's chart

- the upstream charts (``UPSTREAM_CHARTS``) come from their projects' Go modules, fetched with
  ``go mod download`` through the Go module proxy into the shared module cache (the one the lab's
  Go builds use) and packaged with ``helm package`` as they are (name and version as upstream):

  - ``nvidia-device-plugin`` from ``github.com/NVIDIA/k8s-device-plugin@v0.18.0``
    (``deployments/helm/nvidia-device-plugin``, its node-feature-discovery subchart vendored);
  - ``ome-crd`` and ``ome-resources`` from ``github.com/sgl-project/ome@v0.1.5`` (``charts/``):
    the ome.io CRDs (the "full" schemas), and the controller Deployment ``ome-controller-manager``
    with its RBAC, webhooks, cert-manager Certificate/Issuer, model-agent DaemonSet and the
    ``inferenceservice-config`` ConfigMap (which upstream pins to namespace ``ome``). The checksum
    database has no entry for this module, so its download runs with
    ``GONOSUMDB=github.com/sgl-project/ome`` (the zip still comes from the module proxy);
  - ``lws`` from ``sigs.k8s.io/lws@v0.7.0`` (``charts/lws``): the LeaderWorkerSet CRD (its
    conversion webhook pinned upstream to namespace ``lws-system``), controller Deployment,
    RBAC and webhooks. Upstream's values use image tag ``main``: a site pins ``image.manager.tag``;
- ``dcgm-exporter``: ``chartsrc/dcgm-exporter``, a minimal valid chart with the real chart's name,
  version and value names (DaemonSet with nodeSelector/affinity/tolerations/runtimeClassName, a
  Service, a ServiceMonitor when ``serviceMonitor.enabled`` and the cluster serves
  ``monitoring.coreos.com/v1``);
- ``kubeocean`` and ``kubeocean-worker`` (``chartsrc/kubeocean``, ``chartsrc/kubeocean-worker``): Kubeocean
  (github.com/gocrane/kubeocean) is not served as a Go module, so the lab builds stand-ins of its two
  charts with the real names, version 0.1.1, value names and objects: the manager chart (namespace
  ``kubeocean-system``, the ClusterBinding CRD, Deployment ``kubeocean-manager``, ServiceAccounts and
  ClusterRoles of manager, syncer and proxier, the ConfigMaps ``kubeocean-syncer-template`` and
  ``kubeocean-proxier-template``) and the worker chart (namespace ``kubeocean-worker``, ServiceAccount
  ``kubeocean-syncer`` with its ``kubernetes.io/service-account-token`` Secret, its ClusterRole and Role,
  the ResourceLeasingPolicy CRD). The CRDs are written from the documented fields with their validation.
  Under kwok the pods run nothing; :mod:`labctl.kubeocean_syncer` does the manager's and the syncer's work
  while ``kubeocean-manager`` exists;
- ``kuberay-operator`` 1.5.0 and ``keda`` 2.21.0 (``chartsrc/kuberay-operator``, ``chartsrc/keda``): both
  upstream charts live outside their projects' Go modules (kuberay's ``helm-chart/``, kedacore/charts), so
  the lab writes them with the real names, versions, value names and objects. What upstream's chart takes
  from the project is taken from the project's Go module when the repository is packaged
  (``STAND_IN_MODULE_FILES``): the CRDs of ``config/crd/bases`` (KubeRay's in ``crds/`` as upstream;
  KEDA's as templates behind ``crds.install``) and the operators' RBAC (``config/rbac/role.yaml``). Under
  kwok the pods run nothing; :mod:`labctl.omelab` runs the real ``ray-operator``, ``keda-operator`` and
  ``keda-adapter`` for them.

``helm repo index --url <served URL>`` writes ``index.yaml`` with each archive's sha256 digest.
Builds go to ``~/.cache/ai-cluster-lab/repos/charts/<key>/``, keyed by the definition (the
modules, versions and chart paths, this file, the stand-in charts' files, the served URL, the Helm
version).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from labctl import k8sbin, paths
from labctl.repos.common import (
    DEFAULT_BASE_URL,
    RepoBuildError,
    cache_root,
    definition_key,
    finish_build,
    link_into_mirror,
    require,
    run,
    write_state,
)


@dataclass(frozen=True)
class UpstreamChart:
    """A chart taken unchanged from a Go module: ``<module>@<module_version>/<path>``, expected to
    be chart ``name`` at ``version`` (checked against its Chart.yaml)."""

    name: str
    version: str
    module: str
    module_version: str
    path: str
    no_sumdb: bool = False  # the checksum database has no entry: download with GONOSUMDB=<module>

    @property
    def archive(self) -> str:
        return f"{self.name}-{self.version}.tgz"


DEVICE_PLUGIN_MODULE = "github.com/NVIDIA/k8s-device-plugin"
DEVICE_PLUGIN_VERSION = "v0.18.0"
DEVICE_PLUGIN_CHART_DIR = "deployments/helm/nvidia-device-plugin"
OME_MODULE = "github.com/sgl-project/ome"
OME_VERSION = "v0.1.5"
LWS_MODULE = "sigs.k8s.io/lws"
LWS_VERSION = "v0.7.0"
UPSTREAM_CHARTS = (
    UpstreamChart("nvidia-device-plugin", DEVICE_PLUGIN_VERSION.lstrip("v"), DEVICE_PLUGIN_MODULE,
                  DEVICE_PLUGIN_VERSION, DEVICE_PLUGIN_CHART_DIR),
    UpstreamChart("ome-crd", "0.1.0", OME_MODULE, OME_VERSION, "charts/ome-crd", no_sumdb=True),
    UpstreamChart("ome-resources", "0.1.0", OME_MODULE, OME_VERSION, "charts/ome-resources", no_sumdb=True),
    UpstreamChart("lws", "0.1.0", LWS_MODULE, LWS_VERSION, "charts/lws"),
)
DCGM_SOURCE = Path(__file__).with_name("chartsrc") / "dcgm-exporter"
KUBEOCEAN_SOURCE = Path(__file__).with_name("chartsrc") / "kubeocean"
KUBEOCEAN_WORKER_SOURCE = Path(__file__).with_name("chartsrc") / "kubeocean-worker"
KUBERAY_SOURCE = Path(__file__).with_name("chartsrc") / "kuberay-operator"
KEDA_SOURCE = Path(__file__).with_name("chartsrc") / "keda"
# The lab's own chart stand-ins: chart name -> source directory.
STAND_IN_CHARTS = {"dcgm-exporter": DCGM_SOURCE, "kubeocean": KUBEOCEAN_SOURCE,
                   "kubeocean-worker": KUBEOCEAN_WORKER_SOURCE, "kuberay-operator": KUBERAY_SOURCE,
                   "keda": KEDA_SOURCE}


@dataclass(frozen=True)
class ModuleFiles:
    """Files a stand-in chart takes from an upstream Go module when it is packaged: ``source`` (a file, or
    a directory's ``*.yaml``) of ``<module>@<version>`` copied to ``<chart>/<target>`` (a file, or a
    directory); with ``condition``, each file is wrapped in ``{{- if <condition> }}`` ... ``{{- end }}``;
    ``replace`` pairs are applied to the text (e.g. a namespace the kustomize base hard-codes)."""

    module: str
    version: str
    source: str
    target: str
    condition: str = ""
    replace: tuple[tuple[str, str], ...] = ()

    def copy_into(self, chart_dir: Path, log=print, modules: dict | None = None) -> list[str]:
        """Copy the files; ``modules`` caches module directories across calls ((module, version) -> dir)."""
        modules = {} if modules is None else modules
        key = (self.module, self.version)
        if key not in modules:
            modules[key] = module_dir(self.module, self.version, log)
        root = modules[key]
        source = root / self.source
        files = sorted(source.glob("*.yaml")) if source.is_dir() else [source]
        if not files or not all(f.is_file() for f in files):
            raise RepoBuildError(f"{self.module}@{self.version} has no {self.source}")
        written = []
        for f in files:
            text = f.read_text()
            for old, new in self.replace:
                text = text.replace(old, new)
            if self.condition:
                text = f"{{{{- if {self.condition} }}}}\n{text.rstrip()}\n{{{{- end }}}}\n"
            dest = chart_dir / self.target / f.name if source.is_dir() else chart_dir / self.target
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
            written.append(str(dest.relative_to(chart_dir)))
        return written


KUBERAY_MODULE = "github.com/ray-project/kuberay/ray-operator"
KUBERAY_VERSION = "v1.5.0"
KEDA_MODULE = "github.com/kedacore/keda/v2"
KEDA_VERSION = "v2.21.0"
STAND_IN_MODULE_FILES = {
    "kuberay-operator": (
        ModuleFiles(KUBERAY_MODULE, KUBERAY_VERSION, "config/crd/bases", "crds"),
        ModuleFiles(KUBERAY_MODULE, KUBERAY_VERSION, "config/rbac/role.yaml", "templates/clusterrole.yaml",
                    condition=".Values.rbacEnable"),
    ),
    "keda": (
        ModuleFiles(KEDA_MODULE, KEDA_VERSION, "config/crd/bases", "templates/crds", condition=".Values.crds.install"),
        ModuleFiles(KEDA_MODULE, KEDA_VERSION, "config/rbac/role.yaml", "templates/rbac.yaml",
                    replace=(("namespace: keda", "namespace: {{ .Release.Namespace }}"),)),
    ),
}
MIRROR_PATH = "charts"
MANIFEST = "lab-repo.json"


def helm_binary() -> str:
    """The lab's Helm (built by `lab build`, linked into the venv), else one on PATH."""
    for candidate in (k8sbin.helm_path(), paths.REPO_ROOT / ".venv" / "bin" / "helm"):
        if Path(candidate).is_file():
            return str(candidate)
    found = shutil.which("helm")
    if not found:
        raise RepoBuildError("helm not found: run `lab build` (it builds Helm into the lab cache)")
    return found


def _helm_env(home: Path) -> dict:
    env = dict(os.environ)
    for var, sub in (("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"), ("HELM_DATA_HOME", "data")):
        env[var] = str(home / sub)
    return env


def _source_files(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def definition(base_url: str) -> dict:
    return {
        "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "upstream": [f"{c.module}@{c.module_version}/{c.path} {c.name}-{c.version}" for c in UPSTREAM_CHARTS],
        "dcgm_exporter": _source_files(DCGM_SOURCE),
        "kubeocean": _source_files(KUBEOCEAN_SOURCE),
        "kubeocean_worker": _source_files(KUBEOCEAN_WORKER_SOURCE),
        "kuberay_operator": _source_files(KUBERAY_SOURCE),
        "keda": _source_files(KEDA_SOURCE),
        "module_files": {name: [repr(f) for f in files] for name, files in STAND_IN_MODULE_FILES.items()},
        "base_url": base_url,
        "helm": k8sbin.HELM_VERSION,
    }


def build_dir(base_url: str = DEFAULT_BASE_URL) -> Path:
    return cache_root() / "charts" / definition_key(definition(base_url))


def repo_url(base_url: str = DEFAULT_BASE_URL) -> str:
    return f"{base_url.rstrip('/')}/{MIRROR_PATH}"


def module_dir(module: str, version: str, log=print, no_sumdb: bool = False) -> Path:
    """``go mod download`` one module version into the shared module cache; return its directory."""
    go = require("go", f"install Go >= 1.26 (the lab takes Helm charts from Go modules such as {module})")
    env = dict(os.environ, GOFLAGS="-mod=mod")
    if no_sumdb:  # the checksum database has no entry for it: trust the module proxy's zip
        env["GONOSUMDB"] = ",".join(p for p in (os.environ.get("GONOSUMDB"), module) if p)
    log(f"lab repos: go mod download {module}@{version} ...")
    with tempfile.TemporaryDirectory(prefix="lab-gomod-") as outside_any_module:
        proc = run([go, "mod", "download", "-json", f"{module}@{version}"],
                   "go mod download", env=env, cwd=outside_any_module)
    info = json.loads(proc.stdout)
    if info.get("Error"):
        raise RepoBuildError(f"go mod download {module}@{version}: {info['Error']}")
    return Path(info["Dir"])


def upstream_charts(log=print) -> dict[str, Path]:
    """Download each module of ``UPSTREAM_CHARTS`` once; return {chart name: chart directory}, each
    checked to be the expected chart name and version."""
    dirs: dict[tuple[str, str], Path] = {}
    found = {}
    for chart in UPSTREAM_CHARTS:
        key = (chart.module, chart.module_version)
        if key not in dirs:
            dirs[key] = module_dir(chart.module, chart.module_version, log, no_sumdb=chart.no_sumdb)
        source = dirs[key] / chart.path
        meta = source / "Chart.yaml"
        if not meta.is_file():
            raise RepoBuildError(f"{chart.module}@{chart.module_version} has no chart at {chart.path}")
        loaded = yaml.safe_load(meta.read_text()) or {}
        if (loaded.get("name"), str(loaded.get("version"))) != (chart.name, chart.version):
            raise RepoBuildError(f"{meta} is chart {loaded.get('name')} {loaded.get('version')}, expected "
                                 f"{chart.name} {chart.version}")
        found[chart.name] = source
    return found


def ensure_built(log=print, base_url: str = DEFAULT_BASE_URL) -> Path:
    """Build the chart repository once per definition; return its directory (index.yaml + archives)."""
    final = build_dir(base_url)
    if (final / MANIFEST).is_file():
        return final
    helm = helm_binary()
    sources = upstream_charts(log)
    log("lab repos: packaging the Helm chart repository ("
        + ", ".join(f"{c.name} {c.version}" for c in UPSTREAM_CHARTS)
        + ", stand-ins " + ", ".join(STAND_IN_CHARTS) + ") ...")
    started = time.monotonic()
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    modules: dict = {}
    with tempfile.TemporaryDirectory(prefix="lab-charts-") as work:
        work_dir = Path(work)
        env = _helm_env(work_dir / "helm")
        for name, source in sources.items():
            staged = work_dir / "upstream" / name
            shutil.copytree(source, staged)  # the module cache is read-only
            for p in [staged, *staged.rglob("*")]:
                p.chmod(0o755 if p.is_dir() else 0o644)
            run([helm, "package", staged, "--destination", tmp], f"helm package {name}", env=env)
        for name, source in STAND_IN_CHARTS.items():
            if name in STAND_IN_MODULE_FILES:
                staged = work_dir / "standin" / name
                shutil.copytree(source, staged)
                for files in STAND_IN_MODULE_FILES[name]:
                    files.copy_into(staged, log, modules)
                source = staged
            run([helm, "package", source, "--destination", tmp], f"helm package {name}", env=env)
        run([helm, "repo", "index", tmp, "--url", repo_url(base_url)], "helm repo index", env=env)
    index = yaml.safe_load((tmp / "index.yaml").read_text())
    manifest = {"base_url": base_url, "url": repo_url(base_url),
                "charts": {name: [e["version"] for e in entries] for name, entries in index["entries"].items()},
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(time.monotonic() - started, 1)}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    for p in [tmp, *tmp.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    final.parent.mkdir(parents=True, exist_ok=True)
    finish_build(tmp, final)
    log(f"lab repos: chart repository built in {manifest['build_seconds']} s ({final})")
    return final


def charts_repo_info(base_url: str = DEFAULT_BASE_URL) -> dict:
    """What an inventory needs: the repository URL and, once built, each chart's version and digest."""
    directory = build_dir(base_url)
    info: dict = {"url": repo_url(base_url), "index_url": f"{repo_url(base_url)}/index.yaml",
                  "built": (directory / MANIFEST).is_file(), "charts": {}}
    wanted = {c.name: c.version for c in UPSTREAM_CHARTS}
    for name, source in STAND_IN_CHARTS.items():
        wanted[name] = str(yaml.safe_load((source / "Chart.yaml").read_text())["version"])
    index = yaml.safe_load((directory / "index.yaml").read_text()) if info["built"] else {"entries": {}}
    for name, version in wanted.items():
        entry = next((e for e in index["entries"].get(name, []) if e["version"] == version), {})
        info["charts"][name] = {"version": version, "app_version": entry.get("appVersion"),
                                "url": (entry.get("urls") or [None])[0], "digest": entry.get("digest")}
    return info


def publish(log=print, base_url: str = DEFAULT_BASE_URL, mirror: Path | None = None) -> dict:
    """Build (once), link the repository into the mirror stand-in's root, write ``lab/state/repos/charts.json``."""
    directory = ensure_built(log, base_url)
    link_into_mirror(MIRROR_PATH, directory, mirror)
    info = charts_repo_info(base_url)
    if mirror is None:
        write_state("charts", info)
    return info
