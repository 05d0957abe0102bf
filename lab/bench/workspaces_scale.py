#!/usr/bin/env python3
"""Workspaces at scale on the running lab: how long playbooks/workspaces.yml takes to create ``--users``
workspaces (namespace, RoleBinding, ResourceQuota, LimitRange, four volumes and four claims each) in the worker
cluster, and the converged re-run, with the API writes counted two ways:

* ``role_writes``: what the role sent (the plan module's counts: objects applied, deleted);
* ``apiserver_writes``: the worker API server's own count of write requests to the kinds of a workspace during the
  run (``apiserver_request_total`` for POST, PUT, PATCH, APPLY, DELETE, from its /metrics), per verb and resource:
  the role's, and the controllers' that follow while the run lasts (quota status, the PV controller binding
  claims, namespace clean-up).

    .venv/bin/python lab/bench/workspaces_scale.py [--users 200]

Needs `lab up` and the lab's Nodes labelled (`ansible-playbook site.yml -i inventory/lab --tags labels`). Deletes
the bench users' workspaces at the end (also timed) and puts the lab inventory's users back. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time

from labctl import clusters, paths

REPO = paths.REPO_ROOT
WRITE_VERBS = ("POST", "PUT", "PATCH", "APPLY", "DELETE")
METRIC = re.compile(r'^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')
WORKSPACE_RESOURCES = ("namespaces", "rolebindings", "resourcequotas", "limitranges", "persistentvolumes",
                       "persistentvolumeclaims")


def playbook(extra: dict) -> dict:
    """Run playbooks/workspaces.yml with the json callback; the plan module's result and the seconds."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    started = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", str(REPO / "inventory" / "lab"), "-e", json.dumps(extra),
                           str(REPO / "playbooks" / "workspaces.yml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=3600, check=False)
    seconds = round(time.monotonic() - started, 1)
    if proc.returncode != 0:
        raise SystemExit(f"workspaces.yml failed (rc {proc.returncode}): {proc.stdout[-3000:]}")
    out, _ = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index("{"):])
    plan = next(r for p in out["plays"] for t in p["tasks"]
                if t["task"]["name"].endswith("Check the users and generate the objects that differ")
                for r in t["hosts"].values())
    return {"seconds": seconds, "counts": plan["counts"]}


def apiserver_writes() -> dict[str, int]:
    """Write requests the worker API server has served since it started, per ``verb resource[/subresource]`` of the
    kinds a workspace has (the role's writes and the controllers' that follow them: quota status, volume binding,
    namespace clean-up); Node leases and other background writes are left out."""
    api = clusters.api_client("worker")
    try:
        text = clusters.raw_get(api, "/metrics", timeout=30).read().decode()
    finally:
        api.close()
    counts: dict[str, int] = {}
    for line in text.splitlines():
        match = METRIC.match(line)
        if not match:
            continue
        labels = dict(LABEL.findall(match["labels"]))
        if labels.get("verb") in WRITE_VERBS and labels.get("resource") in WORKSPACE_RESOURCES:
            key = f"{labels['verb']} {labels['resource']}" + (f"/{labels['subresource']}" if labels.get("subresource")
                                                             else "")
            counts[key] = counts.get(key, 0) + int(float(match["value"]))
    return counts


def measured(extra: dict) -> dict:
    before = apiserver_writes()
    run = playbook(extra)
    after = apiserver_writes()
    counts = run["counts"]
    writes = {key: after[key] - before.get(key, 0) for key in sorted(after) if after[key] != before.get(key, 0)}
    return {"seconds": run["seconds"], "role_writes": counts["apply"] + counts["delete"] + counts["recreate"],
            "objects": counts["objects"], "apiserver_writes": sum(writes.values()), "apiserver_writes_by_kind": writes}


def namespaces_gone(names: set[str], timeout: float) -> float:
    from kubernetes import client as k8s

    started = time.monotonic()
    core = k8s.CoreV1Api(clusters.api_client("worker"))
    while names & {n.metadata.name for n in core.list_namespace().items}:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"namespaces not gone after {timeout} s")
        time.sleep(2)
    return round(time.monotonic() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args()
    users = [{"name": f"bench-user-{i:03d}", "groups": ["bench"]} for i in range(args.users)]
    figures = {"users": args.users}
    figures["create"] = measured({"workspaces_users": users})
    figures["rerun"] = measured({"workspaces_users": users})
    figures["remove"] = measured({"workspaces_users": [], "workspaces_remove_data": True})
    figures["remove"]["namespaces_gone_s"] = namespaces_gone({u["name"] for u in users}, timeout=900)
    playbook({})  # the lab inventory's users, as before
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
