"""Thin wrapper around the podman CLI (rootful, Debian bookworm podman 4.3, cgroup v1)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence

from .errors import FleetError

# Lab-machine facts (reference k8s-lab.md §9): crun refuses cgroup v1 hybrid mode, and the
# hosts lack CAP_SYS_RESOURCE so podman's default rlimits fail: runc + explicit ulimits.
RUNTIME = "runc"
ULIMITS = ("nofile=4096:8192", "nproc=4096:8192")


def podman_bin() -> str:
    path = shutil.which("podman")
    if not path:
        raise FleetError("podman is not installed (apt-get install $(cat lab/apt-packages.txt))")
    return path


def run(args: Sequence[str], *, check: bool = True, input_bytes: bytes | None = None,
        timeout: float | None = 300) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS``; on failure raise FleetError with podman's last stderr line."""
    cmd = [podman_bin(), *args]
    try:
        proc = subprocess.run(cmd, input=input_bytes.decode() if input_bytes is not None else None,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise FleetError(f"podman {args[0]} timed out after {timeout:.0f}s") from exc
    if check and proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise FleetError(f"podman {' '.join(args[:2])} failed: {msg}")
    return proc


def ok(args: Sequence[str]) -> bool:
    """True when ``podman ARGS`` exits 0 (e.g. ``image exists``, ``network exists``)."""
    return run(args, check=False).returncode == 0


def ps(label: str) -> list[dict]:
    """All containers (any state) carrying ``label`` (``key=value``)."""
    out = run(["ps", "-a", "--filter", f"label={label}", "--format", "json"]).stdout
    return json.loads(out or "[]")
