"""Processes, addresses and ports of the lab's services: one place for the helpers every
lab service (clusters, Rancher stand-in, storage) needs. Read from /proc; no ss/lsof needed."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from labctl.waiting import WaitTimeout, wait_for


def address_is_local(host: str) -> bool:
    """True if ``host`` is an address of this machine (binding it does not fail with EADDRNOTAVAIL)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, 0))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return False
            raise
    return True


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def read_json(path: Path) -> dict:
    """A service's small JSON state file, or {} when it is missing or half-written."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop(pid: int, what: str, timeout: float) -> None:
    """SIGTERM, wait for the process to go, SIGKILL if it does not within ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)

    def gone() -> bool:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return not alive(pid)

    try:
        wait_for(gone, timeout, f"{what} (pid {pid}) to stop")
    except WaitTimeout:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_for(gone, 5, f"{what} (pid {pid}) to die")


def comm(pid: int) -> str:
    """The process's short name (kept by the kernel until it is reaped, unlike its command line)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cmdline(pid: int) -> str:
    """The command line, space-joined; empty for a zombie or a process whose memory is already gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def processes_matching(marker: str) -> list[int]:
    """PIDs whose command line contains ``marker`` (e.g. the lab's kwok work dir)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(proc.name))
    return pids


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _listen_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def port_owners(port: int) -> list[int]:
    """PIDs holding a TCP socket that listens on ``port`` (any address), found through /proc."""
    inodes = _listen_inodes(port)
    if not inodes:
        return []
    owners = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                owners.append(int(proc.name))
                break
    return sorted(owners)


# Started by a short-lived intermediate Python so that the service is nobody's child (like a
# daemon, or what kwokctl's fork-exec leaves once kwokctl exits): no zombie is left with the
# caller when it later exits, whoever stops it.
_SPAWNER = """
import json, os, subprocess, sys
spec = json.loads(sys.argv[1])
with open(spec["log"], "ab") as log:
    proc = subprocess.Popen(spec["argv"], cwd=spec["cwd"], env=spec["env"], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log, start_new_session=True)
print(proc.pid)
"""


def spawn_detached(argv: Sequence[str], cwd: str | Path, log_path: str | Path,
                   env: Mapping[str, str] | None = None) -> int:
    """Start ``argv`` in its own session, detached from the caller, output appended to ``log_path``;
    return its PID."""
    spec = {"argv": [str(a) for a in argv], "cwd": str(cwd), "log": str(log_path),
            "env": dict(os.environ if env is None else env)}
    out = subprocess.run([sys.executable, "-c", _SPAWNER, json.dumps(spec)], capture_output=True, text=True,
                         check=False, timeout=60)
    if out.returncode != 0 or not out.stdout.strip().isdigit():
        reason = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        raise OSError(f"could not start {argv[0]}: {reason}")
    return int(out.stdout.strip())


def listening_ports(pids: set[int] | None = None) -> list[int]:
    """TCP ports in LISTEN, owned by the given pids (matched through socket inodes) or by anyone."""
    inodes = set()
    for pid in pids or ():
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = str(fd.readlink())
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and (pids is None or fields[9] in inodes):
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)
