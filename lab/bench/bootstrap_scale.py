#!/usr/bin/env python3
"""Time the bootstrap chain (site.yml) on lab fleets of several sizes, in one run.

    .venv/bin/python lab/bench/bootstrap_scale.py [--sizes 1 10 50] [--keep]

For each size N: a fresh fleet of N machines (an even mix drawn from the bench50 profile,
nothing joined), then
  first    ansible-playbook site.yml                      (bootstrap from zero)
  rerun    the same again                                 (should report changed=0)
  add      lab fleet add + site.yml --limit <new machine> (add-node)
Prints one JSON document with seconds and the PLAY RECAP totals; restores the demo fleet
at the end unless --keep. Needs `lab up` (clusters, Rancher stand-in, storage).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from labctl import fleet, paths, rancher

REPO = paths.REPO_ROOT
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def profile_of(size: int, source: str = "bench50") -> Path:
    machines = yaml.safe_load((paths.LAB_DIR / "labctl" / "fleet" / "profiles" / f"{source}.yaml").read_text())
    pool = machines["machines"]
    step = max(1, len(pool) // size)
    chosen = (pool[::step])[:size]
    profile = dict(machines, name=f"scale{size}", machines=chosen)
    path = Path(tempfile.gettempdir()) / f"aicluster-scale{size}.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path


def playbook(*extra: str) -> dict:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="false")
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    start = time.monotonic()
    result = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "site.yml", "-i", "inventory/lab",
                             *extra], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    hosts = {m.group(1): [int(g) for g in m.groups()[1:]] for m in RECAP.finditer(result.stdout)}
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:])
    return {
        "seconds": round(seconds, 1),
        "rc": result.returncode,
        "hosts": len(hosts),
        "changed": sum(v[1] for v in hosts.values()),
        "failed": sum(v[3] for v in hosts.values()),
        "unreachable": sum(v[2] for v in hosts.values()),
        "hosts_with_tasks": sorted(hosts),
    }


def run_size(size: int) -> dict:
    rancher.forget_nodes()
    fleet.down()
    fleet.up(str(profile_of(size)))
    first = playbook()
    rerun = playbook()
    new = fleet.add(f"scale-new-{size}", "T4", 2)
    add = playbook("--limit", new.name)
    rancher.forget_nodes()
    first.pop("hosts_with_tasks")
    rerun.pop("hosts_with_tasks")
    add["hosts"] = add.pop("hosts_with_tasks")  # add-node must touch the new machine (and the control host) only
    return {"machines": size, "first": first, "rerun": rerun, "add_node": add}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--keep", action="store_true", help="leave the last fleet up")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        row = run_size(size)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    base = rows[0]["first"]["seconds"]
    summary = {
        "rows": rows,
        "ratios": {
            f"first_{r['machines']}_over_first_{rows[0]['machines']}": round(r["first"]["seconds"] / base, 2)
            for r in rows
        } | {f"rerun_over_first_{r['machines']}": round(r["rerun"]["seconds"] / r["first"]["seconds"], 2) for r in rows}
          | {f"add_{r['machines']}_over_first_{rows[0]['machines']}": round(r["add_node"]["seconds"] / base, 2)
             for r in rows},
    }
    print(json.dumps(summary, indent=2))
    if not args.keep:
        rancher.forget_nodes()
        fleet.down()
        fleet.up("demo")


if __name__ == "__main__":
    main()
