#!/usr/bin/env python3
"""Kubeocean figures on the running lab: how long binding takes until every lent Node is a virtual Node of the
manager cluster, and unbinding until none is left, each measured two ways:

* ``play_s``: the whole play (playbooks/kubeocean.yml with the lending role only: bind, or unbind), wall clock,
  until the API shows the expected vnodes (bind) or none (unbind);
* ``api_s`` (bind only): from the ClusterBinding's creation to the last vnode's creation, from the API's
  timestamps (1 s resolution): what the syncer (the lab's stand-in) takes once the binding exists.

    .venv/bin/python lab/bench/kubeocean_lending.py [--runs 3]

Needs `lab up`, the lab inventory's lent machines labelled and with GPUs (`ansible-playbook site.yml -i
inventory/lab --tags labels,gpu`), and Kubeocean installed (`--tags kubeocean`). Sets the lab clock inside
the lab policy's window, runs unbind then bind ``--runs`` times, resets the clock. Prints one JSON object
(medians and every run).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import time

from labctl import clusters, kubeocean_syncer, paths

REPO = paths.REPO_ROOT
IN_WINDOW = "2026-12-07T23:00"  # Monday night: inside the lab policy's weekday window


def playbook(extra: dict) -> None:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="false",
               PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    subprocess.run(["ansible-playbook", "-i", str(REPO / "inventory" / "lab"), "-e", json.dumps(extra),
                    "--tags", "kubeocean_lending", str(REPO / "playbooks" / "kubeocean.yml")],
                   cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, timeout=600)


def vnodes(core) -> list:
    return core.list_node(label_selector="kubeocean.io/cluster-binding").items


def lent() -> int:
    from kubernetes import client as k8s

    worker = k8s.CoreV1Api(clusters.api_client("worker"))
    return len(worker.list_node(label_selector="kubeocean.io/role=worker").items)


def poll(check, timeout=300.0) -> None:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"timed out after {timeout:.0f}s")
        time.sleep(0.1)


def created(obj) -> datetime.datetime:
    return obj.metadata.creation_timestamp if hasattr(obj, "metadata") else datetime.datetime.fromisoformat(
        obj["metadata"]["creationTimestamp"].replace("Z", "+00:00"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(clusters.api_client("manager"))
    custom = k8s.CustomObjectsApi(clusters.api_client("manager"))
    expected = lent()
    if not expected:
        raise SystemExit("no worker Node is labelled kubeocean.io/role=worker: run --tags labels first")
    kubeocean_syncer.set_clock(IN_WINDOW)
    runs = []
    try:
        for _ in range(args.runs):
            started = time.monotonic()
            playbook({"kubeocean_lending_state": "absent"})
            poll(lambda: not vnodes(core))
            unbind = time.monotonic() - started
            started = time.monotonic()
            playbook({})
            poll(lambda: len(vnodes(core)) == expected)
            bind = time.monotonic() - started
            bindings = custom.list_cluster_custom_object("cloud.tencent.com", "v1beta1", "clusterbindings")["items"]
            first = min(created(b) for b in bindings)
            api = (max(created(n) for n in vnodes(core)) - first).total_seconds()
            runs.append({"bind_play_s": round(bind, 1), "bind_api_s": api, "unbind_play_s": round(unbind, 1)})
    finally:
        kubeocean_syncer.reset_clock()
    summary = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(json.dumps({"vnodes": expected, "median": summary, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
