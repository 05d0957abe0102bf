#!/usr/bin/env python3
"""SGLang stage figures on the running lab: resident memory of the real OME and LeaderWorkerSet controllers
the lab runs (and of its stand-in process), and how long an InferenceService takes from being applied to all
its pods Running (from the API's timestamps: the InferenceService's creation to the last pod's Ready
condition, 1 s resolution), then from deletion to nothing left.

    .venv/bin/python lab/bench/sglang_serving.py [--runs 3]

Needs `lab up` and the stage converged (`ansible-playbook site.yml -i inventory/lab`, or `--tags npu,sglang`)
and the lab inventory's model directory on the shared filesystem (created here when missing). Each run
deploys the application `bench` (Deployment mode: 1 prefill, 1 decode, 1 router) with
playbooks/sglang_app.yml without waiting, then polls the API until all its pods are Running; then deletes
it by name and polls until no pod is left. Prints one JSON object (medians and every run).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import time

from labctl import clusters, omelab, paths
from labctl.fleet.runtime import container_name
from labctl.procs import rss_bytes

REPO = paths.REPO_ROOT
APP = {"name": "bench", "namespace": "inference", "model": "llama-3-2-1b-instruct", "runtime": "srt-910b-pd",
       "prefill": 1, "decode": 1, "router": 1}
SELECTOR = "ome.io/inferenceservice=bench"


def playbook(extra: dict) -> float:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="false",
               PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    started = time.monotonic()
    subprocess.run(["ansible-playbook", "-i", str(REPO / "inventory" / "lab"), "-e", json.dumps(extra),
                    str(REPO / "playbooks" / "sglang_app.yml")], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL, timeout=600)
    return time.monotonic() - started


def poll(check, timeout=300.0) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"timed out after {timeout:.0f}s")
        time.sleep(0.2)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(clusters.api_client("worker"))

    def pods():
        return core.list_namespaced_pod("inference", label_selector=SELECTOR).items

    subprocess.run(["podman", "exec", container_name("npu-910b-1"), "mkdir", "-p",
                    "/data/k8s/models/llama-3-2-1b-instruct"], check=True)
    runs = []
    for _ in range(args.runs):
        apply_s = playbook({"sglang_serving_application": APP, "sglang_serving_wait": False})
        poll(lambda: len(pods()) == 3 and all(p.status.phase == "Running" for p in pods()))
        # The playbook outlasts the controllers: time it from the API's own clock (1 s resolution), the
        # InferenceService's creation to the last pod's Ready condition.
        created = k8s.CustomObjectsApi(clusters.api_client("worker")).get_namespaced_custom_object(
            "ome.io", "v1beta1", "inference", "inferenceservices", "bench")["metadata"]["creationTimestamp"]
        ready = max(c.last_transition_time for p in pods() for c in p.status.conditions if c.type == "Ready")
        running_s = (ready - datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()
        delete_s = playbook({"app": "inference/bench", "state": "absent", "sglang_serving_wait": False})
        gone_s = poll(lambda: not pods())
        runs.append({"apply_playbook_s": round(apply_s, 1), "applied_to_all_pods_running_s": round(running_s, 1),
                     "delete_playbook_s": round(delete_s, 1), "deleted_to_no_pod_s": round(gone_s, 1)})
    rss = {}
    for row in omelab.status():
        pids = {"omelab": row.get("pid")} | {n: c.get("pid") for n, c in (row.get("controllers") or {}).items()}
        rss.update({f"{n}_rss_mib": round(rss_bytes([p]) / 2**20, 1) for n, p in pids.items() if p})
    medians = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    print(json.dumps({"median": medians, "runs": runs, "rss": rss}, indent=2))


if __name__ == "__main__":
    main()
