# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Filters behind the host_preflight role: what keeps a machine from joining."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: host_problems
short_description: List what keeps a machine from joining the cluster
version_added: 0.1.0
description:
  - Checks distribution, Python version, free space on the filesystem holding each path, and clock skew.
  - Free space comes from the aicluster.platform.disk_space module's C(space) result.
  - Returns a list of human-readable problems; empty when the machine is fit.
options:
  _input:
    description: The machine's ansible_facts (needs distribution, python_version, date_time).
    type: dict
    required: true
  space:
    description: The C(space) result of aicluster.platform.disk_space for the paths in O(min_free_gib).
    type: dict
  min_free_gib:
    description: Path to minimum free GiB.
    type: dict
  supported:
    description: Accepted distributions.
    type: list
    elements: str
  min_python:
    description: Oldest accepted Python version.
    type: str
  control_epoch:
    description: The control host's clock (seconds since the epoch) when the facts were read.
    type: float
  max_skew:
    description: Largest tolerated clock difference in seconds.
    type: float
"""

EXAMPLES = r"""
problems: >-
  {{ ansible_facts | aicluster.platform.host_problems(
       space.space, {'/': 10}, ['Debian'], '3.9', now().timestamp(), 30) }}
"""

RETURN = r"""
_value:
  description: Problems, one sentence each.
  type: list
  elements: str
"""

from ansible.module_utils.compat.version import LooseVersion

GIB = 1024**3


def host_problems(facts, space=None, min_free_gib=None, supported=None, min_python="3.9", control_epoch=None,
                  max_skew=30):
    problems = []
    distribution = facts.get("distribution", "unknown")
    if supported and distribution not in supported:
        problems.append(f"unsupported distribution {distribution} (supported: {', '.join(supported)})")
    python = facts.get("python_version", "0")
    if LooseVersion(python) < LooseVersion(str(min_python)):
        problems.append(f"Python {python} is older than {min_python}")
    for path, need in sorted((min_free_gib or {}).items()):
        measured = (space or {}).get(path)
        if measured is None:
            problems.append(f"free space of {path} was not measured")
            continue
        free = measured["free_bytes"] / GIB
        if free < float(need):
            problems.append(f"{path} has {free:.1f} GiB free, needs {float(need):.0f} GiB")
    if control_epoch is not None:
        epoch = float((facts.get("date_time") or {}).get("epoch", 0))
        skew = abs(float(control_epoch) - epoch)
        if skew > float(max_skew):
            problems.append(f"clock is {skew:.0f}s off the control host (max {float(max_skew):g}s): "
                            "start chrony or systemd-timesyncd")
    return problems


class FilterModule:
    def filters(self):
        return {"host_problems": host_problems}
