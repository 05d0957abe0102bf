#!/usr/bin/env python3
"""What each ansible.cfg setting buys: time site.yml on the running lab fleet with the
project's ansible.cfg, then with one setting switched back to Ansible's default at a time.

    .venv/bin/python lab/bench/ansible_cfg.py [--runs 2] [--playbook site.yml]

The fleet should already be bootstrapped, so every run is a converged re-run (changed=0)
and the difference is pure execution overhead. Prints JSON: median seconds per variant.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time

from labctl import paths

REPO = paths.REPO_ROOT
# Each variant turns one tuned setting back to Ansible's default through its environment variable.
VARIANTS = {
    "project ansible.cfg": {},
    "pipelining off (default)": {"ANSIBLE_PIPELINING": "False"},
    "no ControlPersist (default ssh_args)": {"ANSIBLE_SSH_ARGS": ""},
    "forks 5 (default)": {"ANSIBLE_FORKS": "5"},
    "gathering implicit, no fact cache (default)": {"ANSIBLE_GATHERING": "implicit",
                                                    "ANSIBLE_CACHE_PLUGIN": "memory"},
    # Not a default, tried because it is the usual advice: it breaks the chain's run_once batching
    # (the Rancher membership and label reconcile need every host's facts first).
    "strategy free": {"ANSIBLE_STRATEGY": "free"},
}


def run(playbook: str, overrides: dict[str, str]) -> float | None:
    """Seconds for one run; None when the playbook fails under that setting."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), **overrides)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"
    start = time.monotonic()
    result = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), playbook, "-i", "inventory/lab"],
                            cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--playbook", default="site.yml")
    args = parser.parse_args()
    run(args.playbook, {})  # warm the fact cache and the control sockets
    results = {}
    for name, overrides in VARIANTS.items():
        times = [run(args.playbook, overrides) for _ in range(args.runs)]
        results[name] = "fails" if None in times else round(statistics.median(times), 1)
    print(json.dumps({"playbook": args.playbook, "median_seconds": results}, indent=2))


if __name__ == "__main__":
    main()
