#!/usr/bin/env python3
"""Benchmark the lab fleet: `fleet up` wall time per profile (warm image) and memory of the fleet.

    sudo .venv/bin/python lab/bench/fleet_up.py [--profiles demo,bench50] [--keep]

For each profile: `down`, then time `up` (containers started + every machine answering SSH with
systemd running/degraded), then measure memory, then `down` (unless --keep on the last one).
Memory is reported three ways:
- podman stats: sum of MEM USAGE (cgroup usage minus page cache);
- cgroup rss: sum of total_rss+total_rss_huge+total_shmem-less mapped anon from each container's
  memory cgroup (v1 memory.stat, or v2 anon) -- the memory the machines themselves hold;
- conmon rss: the per-container podman monitor processes on the host.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labctl import fleet
from labctl.fleet import podman

MiB = 1024 * 1024


def _size(text: str) -> float:
    """'10.38MB' / '1.2GB' / '512kB' (podman stats, decimal units) -> bytes."""
    units = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024, "MiB": MiB, "GiB": 1024 * MiB}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * units[suffix]
    return float(text)


def podman_stats_bytes() -> float:
    out = podman.run(["stats", "--no-stream", "--format", "json"], timeout=300).stdout
    rows = [r for r in json.loads(out or "[]") if r.get("name", "").startswith("aicluster-lab-")]
    return sum(_size(r["mem_usage"].split("/")[0].strip()) for r in rows)


def cgroup_rss_bytes() -> float:
    total = 0.0
    for c in podman.ps("aicluster-lab.fleet=1"):
        cid = c["Id"]
        for stat in (Path(f"/sys/fs/cgroup/memory/libpod_parent/libpod-{cid}/memory.stat"),
                     Path(f"/sys/fs/cgroup/machine.slice/libpod-{cid}.scope/memory.stat")):
            if stat.exists():
                vals = dict(line.split() for line in stat.read_text().splitlines())
                total += int(vals.get("total_rss", vals.get("anon", 0))) + int(vals.get("total_shmem", 0))
                break
    return total


def conmon_rss_bytes() -> float:
    out = subprocess.run(["ps", "-C", "conmon", "-o", "rss="], capture_output=True, text=True, check=False).stdout
    return sum(int(x) for x in out.split()) * 1024.0


def bench(profile: str, keep: bool) -> dict:
    fleet.down(log=lambda _m: None)
    t0 = time.monotonic()
    machines = fleet.up(profile, log=lambda _m: None)
    elapsed = time.monotonic() - t0
    t1 = time.monotonic()
    fleet.up(profile, log=lambda _m: None)
    again = time.monotonic() - t1
    result = {
        "profile": profile, "machines": len(machines), "up_seconds": round(elapsed, 1),
        "second_up_seconds": round(again, 2),
        "podman_stats_mib": round(podman_stats_bytes() / MiB), "cgroup_rss_shmem_mib": round(cgroup_rss_bytes() / MiB),
        "conmon_rss_mib": round(conmon_rss_bytes() / MiB),
    }
    if not keep:
        t2 = time.monotonic()
        fleet.down(log=lambda _m: None)
        result["down_seconds"] = round(time.monotonic() - t2, 1)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", default="demo,bench50")
    ap.add_argument("--keep", action="store_true", help="leave the last profile's fleet running")
    args = ap.parse_args()
    t = time.monotonic()
    image = fleet.ensure_image()
    print(f"image {image} ready in {time.monotonic() - t:.1f}s (warm if ~0s)")
    profiles = args.profiles.split(",")
    for i, profile in enumerate(profiles):
        r = bench(profile, keep=args.keep and i == len(profiles) - 1)
        print(f"{r['profile']}: {r['machines']} machines up in {r['up_seconds']}s "
              f"(second up, no-op: {r['second_up_seconds']}s); memory: podman stats {r['podman_stats_mib']} MiB, "
              f"cgroup rss+shmem {r['cgroup_rss_shmem_mib']} MiB, conmon {r['conmon_rss_mib']} MiB"
              + (f"; down in {r['down_seconds']}s" if "down_seconds" in r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
