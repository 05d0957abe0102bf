#!/usr/bin/env python3
"""What the bootstrap chain costs per host, at several fleet sizes, with and without Mitogen.

    .venv/bin/python lab/bench/chain_cost.py [--sizes 1 10 30 50] [--strategies linear mitogen_linear]

For each strategy and size N: a fresh fleet of N machines (drawn from the bench50 profile,
nothing joined, empty fact cache), then
  first    ansible-playbook site.yml                      (bootstrap from zero)
  rerun    the same again                                 (should report changed=0)
  add      lab fleet add + site.yml --limit <new machine> (add-node)
and for each run: wall seconds; controller CPU seconds (user+sys of the ansible-playbook process
tree, from the rusage of waited-for children) per host; remote task executions and remote module
executions per host (callback lab/bench/callback_plugins/remote_exec_count.py: `tasks` counts task
results that ran on the machine; `modules` counts every module shipped to it, e.g. the stat a
template runs; Mitogen replaces the code path that counts `modules`, so only `tasks` is comparable
across strategies). Prints one JSON document; restores the demo fleet at the end unless --keep.
Needs `lab up` (clusters, Rancher stand-in, storage).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labctl import fleet, paths, rancher

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bootstrap_scale import profile_of

REPO = paths.REPO_ROOT
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"


def mitogen_strategy_dir() -> str:
    import ansible_mitogen  # the bench's only use of Mitogen; see README "Mitogen"

    return str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def playbook(strategy: str, *extra: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        count_file = Path(tmp) / "count.json"
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="false",
                   ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
                   ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks,remote_exec_count",
                   REMOTE_EXEC_COUNT_FILE=str(count_file))
        env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
        if strategy != "linear":
            env["ANSIBLE_STRATEGY"] = strategy
            env["ANSIBLE_STRATEGY_PLUGINS"] = mitogen_strategy_dir()
        cpu_before, start = cpu_seconds(), time.monotonic()
        result = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "site.yml", "-i", "inventory/lab",
                                 *extra], cwd=REPO, env=env, capture_output=True, text=True, check=False,
                                stdin=subprocess.DEVNULL)
        seconds, cpu = time.monotonic() - start, cpu_seconds() - cpu_before
        counts = json.loads(count_file.read_text()) if count_file.is_file() else {"per_host": {}}
    recap = {m.group(1): [int(g) for g in m.groups()[1:]] for m in RECAP.finditer(result.stdout)}
    machines = [h for h in recap if h != "localhost"]
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:])
    per_host = [counts["per_host"].get(h, {}) for h in machines]
    n = max(1, len(machines))

    def spread(key: str) -> dict:
        values = [p.get(key, 0) for p in per_host] or [0]
        return {"mean": round(statistics.mean(values), 1), "max": max(values)}

    return {
        "seconds": round(seconds, 1),
        "rc": result.returncode,
        "machines": len(machines),
        "changed": sum(v[1] for h, v in recap.items() if h in machines),
        "failed": sum(v[3] for v in recap.values()),
        "controller_cpu_s_per_host": round(cpu / n, 2),
        "remote_tasks_per_host": spread("tasks"),
        "remote_modules_per_host": spread("modules"),
        "hosts_with_tasks": sorted(recap),
    }


def run_size(strategy: str, size: int) -> dict:
    rancher.forget_nodes()
    fleet.down()
    shutil.rmtree(REPO / ".cache" / "facts", ignore_errors=True)
    fleet.up(str(profile_of(size)))
    first = playbook(strategy)
    rerun = playbook(strategy)
    new = fleet.add(f"cost-new-{size}", "T4", 2)
    add = playbook(strategy, "--limit", new.name)
    rancher.forget_nodes()
    for row in (first, rerun):
        row.pop("hosts_with_tasks")
    add["hosts"] = add.pop("hosts_with_tasks")
    return {"strategy": strategy, "machines": size, "first": first, "rerun": rerun, "add_node": add,
            "rerun_over_first": round(rerun["seconds"] / first["seconds"], 2) if first["seconds"] else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 30, 50])
    parser.add_argument("--strategies", nargs="+", default=["linear", "mitogen_linear"])
    parser.add_argument("--keep", action="store_true", help="leave the last fleet up")
    args = parser.parse_args()
    rows = []
    for strategy in args.strategies:
        for size in args.sizes:
            row = run_size(strategy, size)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps({"rows": rows}, indent=2))
    if not args.keep:
        rancher.forget_nodes()
        fleet.down()
        fleet.up("demo")


if __name__ == "__main__":
    main()
