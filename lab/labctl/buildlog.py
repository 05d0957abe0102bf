"""Where the lab's builds put their tool output (Go, debootstrap), so the terminal shows one line
per component and the flood goes to a file.

``scripts/setup.sh`` sets ``LAB_BUILD_LOG`` to its own log (``lab/state/logs/setup-<time>.log``);
a build started by `lab up` or `lab build` alone writes ``lab/state/logs/build-<time>.log``. Both
are created 0600 in a 0700 directory (git-ignored, with the rest of ``lab/state``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from labctl import paths

ENV = "LAB_BUILD_LOG"
TAIL_LINES = 30
_own_log: Path | None = None


def log_dir() -> Path:
    return paths.STATE_DIR / paths.LOG_DIR_NAME


def log_path() -> Path:
    """The log file builds append to: ``$LAB_BUILD_LOG`` if set, else one per `lab` process."""
    global _own_log
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
    else:
        if _own_log is None:
            _own_log = log_dir() / f"build-{time.strftime('%Y%m%d-%H%M%S')}.log"
        path = _own_log
    paths.private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    return path


def shown(path: Path) -> str:
    """The log path as the user types it: relative to the checkout when inside it."""
    try:
        return str(path.resolve().relative_to(paths.REPO_ROOT))
    except ValueError:
        return str(path)


def note() -> str:
    """``; output: <log>`` for a progress line, or nothing under set-up (which printed its log once)."""
    return "" if os.environ.get(ENV) else f"; output: {shown(log_path())}"


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        return path.read_text(errors="replace").rstrip("\n").splitlines()[-lines:]
    except OSError:
        return []


def run(cmd: Sequence[str], what: str, env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None) -> tuple[int, Path]:
    """Run a build command with its output appended to the build log; return (exit code, log path).

    On failure, when the log is our own (not set-up's, which shows the tail itself), the last
    lines of the log go to stderr so the cause is on screen."""
    path = log_path()
    with open(path, "a") as fh:
        fh.write(f"\n== {time.strftime('%Y-%m-%d %H:%M:%S')} {what}: {' '.join(str(c) for c in cmd)}\n")
        fh.flush()
        started = time.monotonic()
        code = subprocess.run([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env=dict(env) if env is not None else None, cwd=cwd, check=False).returncode
        took = int(time.monotonic() - started)
        fh.write(f"== {what}: exit {code} after {took // 60}m{took % 60:02d}s\n")
    if code != 0 and not os.environ.get(ENV):
        print(f"--- last {TAIL_LINES} lines of {shown(path)}:", file=sys.stderr)
        for line in tail(path):
            print(f"  {line}", file=sys.stderr)
    return code, path
