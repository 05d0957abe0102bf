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
LOG_DIR_NAME = "logs"


def private_dir(path: Path) -> Path:
    """Create ``path`` (parents too) 0700, and make every directory from it up to the lab's state
    directory 0700: lab state holds tokens, passwords, kubeconfigs and keys."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = Path(STATE_DIR).absolute()
    for d in (path.absolute(), *path.absolute().parents):
        if d != path.absolute() and d != state and state not in d.parents:
            break
        if d.stat().st_mode & 0o777 != 0o700:
            d.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the first byte (atomically replaced)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def kubeconfig_path(cluster: str) -> Path:
    """Documented location of a lab cluster's kubeconfig: lab/state/kubeconfig/<cluster>.yaml."""
    return KUBECONFIG_DIR / f"{cluster}.yaml"
