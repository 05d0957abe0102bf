"""Control-plane binaries built from Go modules, cached outside the repository.

The wrapper module in ``lab/k8sbin`` (go.mod/go.sum, committed) pins Kubernetes,
etcd and kwok. Its hash keys the cache directory, so a change to the pins rebuilds
and anything else reuses the binaries. Helm v3 (for kubernetes.core.helm, which
accepts Helm 3 only in 6.2.0) is built the same way from its own pinned version.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from labctl import buildlog, paths

COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "kwokctl", "etcd")
HELM_VERSION = "v3.22.0"
HELM_MODULE = "helm.sh/helm/v3/cmd/helm"


class BuildError(RuntimeError):
    """A binary could not be built or found; the message is one line for the user."""


def module_key() -> str:
    """Hash of everything that decides the binaries' content."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "build.sh"):
        digest.update((paths.K8SBIN_MODULE / name).read_bytes())
    return digest.hexdigest()[:16]


def kube_version() -> str:
    match = re.search(r"^\s*k8s\.io/kubernetes v(\S+)", (paths.K8SBIN_MODULE / "go.mod").read_text(), re.M)
    if not match:
        raise BuildError("lab/k8sbin/go.mod does not require k8s.io/kubernetes")
    return "v" + match.group(1)


def bin_dir() -> Path:
    return paths.CACHE_DIR / "k8s" / module_key() / "bin"


def helm_path() -> Path:
    return paths.CACHE_DIR / "helm" / HELM_VERSION / "helm"


def is_built() -> bool:
    directory = bin_dir()
    return all((directory / name).is_file() for name in COMPONENTS) and helm_path().is_file()


def _require_go() -> str:
    go = shutil.which("go")
    if not go:
        raise BuildError("Go toolchain not found on PATH: install Go >= 1.26 (the lab builds Kubernetes from modules)")
    return go


def ensure_built(log=print) -> Path:
    """Build the binaries once per wrapper-module hash; return the bin directory.

    One line per component goes to ``log``; Go's output goes to the build log (labctl.buildlog)."""
    directory = bin_dir()
    if not all((directory / name).is_file() for name in COMPONENTS):
        _require_go()
        log(f"building Kubernetes {kube_version()} control plane, etcd and kwok from Go modules for the lab "
            f"clusters (~7 min on 2 cores, cold{buildlog.note()}) ...")
        code, path = buildlog.run(["bash", str(paths.K8SBIN_MODULE / "build.sh"), str(directory)],
                                  "control plane build")
        if code != 0:
            raise BuildError(f"control-plane build failed (exit {code}); see {buildlog.shown(path)}")
    if not helm_path().is_file():
        go = _require_go()
        log(f"building Helm {HELM_VERSION} from Go modules for kubernetes.core.helm (~3 min on 2 cores, "
            f"cold{buildlog.note()}) ...")
        env = dict(os.environ, CGO_ENABLED="0", GOBIN=str(helm_path().parent))
        ldflags = f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"
        code, path = buildlog.run([go, "install", "-trimpath", "-ldflags", ldflags, f"{HELM_MODULE}@{HELM_VERSION}"],
                                  "Helm build", env=env)
        if code != 0:
            raise BuildError(f"Helm build failed (exit {code}); see {buildlog.shown(path)}")
    check_version(directory)
    return directory


def check_version(directory: Path) -> None:
    out = subprocess.run(
        [str(directory / "kube-apiserver"), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if out != f"Kubernetes {kube_version()}":
        raise BuildError(f"{directory / 'kube-apiserver'} reports {out!r}, expected 'Kubernetes {kube_version()}'")
