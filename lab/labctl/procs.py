"""Processes, addresses and ports of the lab's services: one place for the helpers every
lab service (clusters, Rancher stand-in, storage) needs. Read from /proc; no ss/lsof needed."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
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
