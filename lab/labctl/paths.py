"""Where the lab keeps things.

State (kubeconfigs, kwok work dirs, fleet keys, generated inventory) lives in the
checkout's ignored ``lab/state`` so that several checkouts never share a lab.
Build products (Go binaries, machine images) live in a per-user cache outside the
repository, keyed by their definition, so clean clones reuse them.
"""

from __future__ import annotations

import os
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = LAB_DIR.parent
STATE_DIR = Path(os.environ.get("LAB_STATE_DIR", LAB_DIR / "state"))
_USER_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
CACHE_DIR = Path(os.environ.get("LAB_CACHE_DIR", _USER_CACHE / "ai-cluster-lab"))
K8SBIN_MODULE = LAB_DIR / "k8sbin"
KUBECONFIG_DIR = STATE_DIR / "kubeconfig"
KWOK_WORKDIR = STATE_DIR / "kwok"


def kubeconfig_path(cluster: str) -> Path:
    """Documented location of a lab cluster's kubeconfig: lab/state/kubeconfig/<cluster>.yaml."""
    return KUBECONFIG_DIR / f"{cluster}.yaml"
