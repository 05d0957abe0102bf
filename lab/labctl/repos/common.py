"""What the lab's package and chart repositories share: the cache, the mirror tree, tool runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from labctl import paths
from labctl.storage import FLEET_HOST_ADDRESS, MIRROR_PORT
from labctl.storage import state_dir as storage_state_dir

# The site-mirror stand-in (labctl.storage.mirror) listens here; repos are laid out under its root.
DEFAULT_BASE_URL = f"http://{FLEET_HOST_ADDRESS}:{MIRROR_PORT}"


class RepoBuildError(RuntimeError):
    """A lab repository could not be built or published; the message is one line for the user."""


def cache_root() -> Path:
    """``~/.cache/ai-cluster-lab/repos``: built repositories, each keyed by its definition."""
    return Path(paths.CACHE_DIR) / "repos"


def mirror_root() -> Path:
    """The directory the mirror stand-in serves (``lab/state/storage/mirror``, as labctl.storage lays it out)."""
    return storage_state_dir() / "mirror"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def definition_key(definition: Mapping) -> str:
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]


def require(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise RepoBuildError(f"{tool} not found on PATH: {hint}")
    return found


def run(cmd: Sequence[str | os.PathLike], what: str, env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """Run a build tool; on failure raise one line naming the step, plus the tool's last words."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, env=dict(env) if env is not None else None,
                          cwd=cwd, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()[-3:]
        raise RepoBuildError(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}")
    return proc


def finish_build(tmp: Path, final: Path) -> None:
    """Move a completed build into place; a concurrent build that finished first wins."""
    try:
        tmp.rename(final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def link_into_mirror(relative: str, target: Path, root: Path | None = None) -> Path:
    """Point ``<mirror root>/<relative>`` at a built tree (a symlink the mirror follows)."""
    if root is None:
        paths.private_dir(storage_state_dir())  # lab state stays 0700, as labctl.storage keeps it
    link = (root or mirror_root()) / relative
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() == target.resolve():
        return link
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)
    return link


def write_state(name: str, data: Mapping) -> Path:
    """``lab/state/repos/<name>.json``: what the lab inventory reads (as for storage/connection.json)."""
    directory = paths.private_dir(Path(paths.STATE_DIR) / "repos")
    target = directory / f"{name}.json"
    tmp = directory / f".{name}.json.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(target)
    return target
