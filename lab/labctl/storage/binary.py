"""The JuiceFS client built from Go modules, cached outside the repository.

The wrapper module in ``lab/juicefsbin`` (go.mod/go.sum, committed) pins
``github.com/juicedata/juicefs`` and carries the replace directives of JuiceFS's own
go.mod at that tag. Its hash (go.mod + go.sum + build.sh) keys the cache directory
``CACHE_DIR/juicefs/<key>/juicefs``: a change to the pins rebuilds, anything else reuses.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

from labctl import buildlog, paths

MODULE_DIR = paths.LAB_DIR / "juicefsbin"
MODULE_PATH = "github.com/juicedata/juicefs"


class JuiceFSBuildError(RuntimeError):
    """The JuiceFS binary could not be built or found; the message is one line for the user."""


def module_key(module_dir: Path | None = None) -> str:
    """Hash of everything that decides the binary's content."""
    module_dir = module_dir or MODULE_DIR
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "build.sh"):
        digest.update((module_dir / name).read_bytes())
    return digest.hexdigest()[:16]


def version(module_dir: Path | None = None) -> str:
    """The JuiceFS release the wrapper module pins, without the leading v (e.g. ``1.3.1``)."""
    text = ((module_dir or MODULE_DIR) / "go.mod").read_text()
    match = re.search(r"^\s*(?:require\s+)?github\.com/juicedata/juicefs v(\S+)", text, re.M)
    if not match:
        raise JuiceFSBuildError(f"{(module_dir or MODULE_DIR) / 'go.mod'} does not require {MODULE_PATH}")
    return match.group(1)


def binary_path() -> Path:
    return paths.CACHE_DIR / "juicefs" / module_key() / "juicefs"


def is_built() -> bool:
    return binary_path().is_file()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_built(log=print) -> Path:
    """Build the binary once per wrapper-module hash; return its path."""
    target = binary_path()
    if not target.is_file():
        if not shutil.which("go"):
            raise JuiceFSBuildError("Go toolchain not found on PATH: install Go >= 1.26 (the lab builds JuiceFS "
                                    "from modules)")
        if not shutil.which("gcc"):
            raise JuiceFSBuildError("gcc not found: JuiceFS needs cgo (install the Debian package build-essential)")
        log(f"building JuiceFS {version()} from Go modules for /data/k8s on the lab machines (~7 min on 2 cores, "
            f"cold{buildlog.note()}) ...")
        code, path = buildlog.run(["bash", str(MODULE_DIR / "build.sh"), str(target.parent)], "JuiceFS build")
        if code != 0 or not target.is_file():
            raise JuiceFSBuildError(f"JuiceFS build failed (exit {code}); see {buildlog.shown(path)}")
    check_version(target)
    return target


def check_version(binary: Path) -> None:
    out = subprocess.run([str(binary), "version"], capture_output=True, text=True, check=False).stdout.strip()
    if f"version {version()}" not in out:
        raise JuiceFSBuildError(f"{binary} reports {out!r}, expected JuiceFS {version()}")
