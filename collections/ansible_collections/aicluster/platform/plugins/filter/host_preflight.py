# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Filters behind the host_preflight role: what keeps a machine from joining (documented in host_problems.yml)."""

from __future__ import annotations

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
