# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Pure logic behind the host_facts module: what the host_preflight role checks, read in one pass.

The fact names are those of ``ansible.builtin.setup`` (``hostname``, ``nodename``, ``machine_id``,
``python_version``, ...), so roles that test for them (``ansible_facts['machine_id'] is defined``)
do not gather again. No Ansible imports: the module wraps these functions and the unit tests call
them directly with fakes.
"""

from __future__ import annotations

import os
import platform

MACHINE_ID_FILES = ("/var/lib/dbus/machine-id", "/etc/machine-id")


def measure(path, statvfs=os.statvfs, exists=os.path.exists):
    """Free and total bytes of the filesystem holding ``path``, or its nearest existing parent."""
    probe = path
    while not exists(probe):
        parent = os.path.dirname(probe) or "/"
        if parent == probe:
            break
        probe = parent
    stats = statvfs(probe)
    return {"measured": probe, "free_bytes": stats.f_bavail * stats.f_frsize,
            "total_bytes": stats.f_blocks * stats.f_frsize}


def read_machine_id(files=MACHINE_ID_FILES, read=None):
    """The first line of the first non-empty machine-id file (setup's order), or None."""
    read = read or _read_text
    for name in files:
        content = read(name)
        if content and content.strip():
            return content.strip().splitlines()[0]
    return None


def _read_text(name):
    try:
        with open(name) as fh:
            return fh.read()
    except OSError:
        return None


def platform_facts(node=None, python_version=None, machine=None, system=None, kernel=None, machine_id=None):
    """The platform facts setup's ``min`` subset publishes and the chain reads (same names, same values)."""
    node = platform.node() if node is None else node
    machine = platform.machine() if machine is None else machine
    facts = {
        "hostname": node.split(".")[0],
        "nodename": node,
        "python_version": platform.python_version() if python_version is None else python_version,
        "system": platform.system() if system is None else system,
        "kernel": platform.release() if kernel is None else kernel,
        "machine": machine,
        "architecture": machine,
    }
    if machine_id:
        facts["machine_id"] = machine_id
    return facts


def bad_paths(paths):
    """The paths that are not absolute (statvfs of a relative path measures the wrong place)."""
    return [p for p in paths if not os.path.isabs(p)]
