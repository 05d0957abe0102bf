#!/usr/bin/env python3
"""Benchmark the lab control plane: warm `lab up` seconds for both clusters, their RSS at
rest, and that `lab down` leaves zero processes and listening ports.

    .venv/bin/python lab/bench/controlplane.py [--settle 20]

Prints one JSON object. The binaries must already be built (`lab build`); the lab is
taken down first so that the figure is a real start, and left down at the end.
"""

from __future__ import annotations

import argparse
import json
import time

from labctl import clusters, k8sbin
from labctl.procs import listening_ports, rss_bytes
from labctl.waiting import wait_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settle", type=float, default=20, help="seconds at rest before reading RSS")
    args = parser.parse_args()
    quiet = lambda _msg: None  # noqa: E731
    if not k8sbin.is_built():
        raise SystemExit("build first: lab build")
    clusters.down(log=quiet)

    start = time.monotonic()
    clusters.up(log=quiet)
    up_seconds = time.monotonic() - start
    pids = clusters.lab_processes()
    ports_up = listening_ports(set(pids))
    # "At rest": after the settle period the control loops are idle; read RSS then.
    rest_until = time.monotonic() + args.settle
    wait_for(lambda: time.monotonic() >= rest_until, args.settle + 5, "settle period", interval=1)
    rss = rss_bytes(clusters.lab_processes())

    start = time.monotonic()
    clusters.down(log=quiet)
    down_seconds = time.monotonic() - start
    print(json.dumps({
        "warm_up_seconds_both_clusters": round(up_seconds, 1),
        "processes_when_up": len(pids),
        "listening_ports_when_up": len(ports_up),
        "rss_mib_at_rest_both_clusters": round(rss / 2**20),
        "down_seconds": round(down_seconds, 1),
        "processes_after_down": len(clusters.lab_processes()),
        "lab_ports_still_listening_after_down": sorted(set(ports_up) & set(listening_ports())),
    }, indent=2))


if __name__ == "__main__":
    main()
