#!/usr/bin/env python3
"""Benchmark the node_labels role on 500 Nodes: first pass (every Node written) and second pass
(converged, no writes).

    .venv/bin/python lab/bench/label_reconcile.py [--nodes 500] [--fleet-play] [--keep]

Creates N kwok Nodes ``bench-lr-NNNN`` in the lab's worker cluster (batched, concurrently;
annotated ``kwok.x-k8s.io/node: fake``; labelled ``bench.aicluster.io/label-reconcile=true`` so
they are recognisable), waits until kwok reports them Ready, writes a throw-away inventory of N
hosts (accelerator facts given as ``node_labels_accelerator``: a mix of 8x A100, 2x T4,
8x Ascend 910B and CPU-only, with per-group roles/org), and runs the real role through
``ansible-playbook`` twice. The default play runs on the control host with
``node_labels_hosts: groups.bench`` (one argument-spec validation); ``--fleet-play`` also times
the play targeting the N hosts themselves (``hosts: bench``, as in site.yml), whose per-host
argument-spec validation is Ansible overhead outside the role's own work.

Prints one JSON object: wall seconds of each ansible-playbook run, the seconds of the module
task alone, and the API writes the module reports. Deletes the Nodes at the end unless --keep.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from labctl import clusters, paths
from labctl.waiting import wait_for

REPO = paths.REPO_ROOT
SELECTOR_KEY = "bench.aicluster.io/label-reconcile"
PREFIX = "bench-lr-"
MODULE_TASK = "Reconcile the labels of every host's Node with one list and one PATCH per changed Node"

PROFILES = [
    ("nvidia_a100", {"present": True, "vendor": "nvidia", "model": "A100", "count": 8, "architecture": "x86_64"},
     {"node_labels_roles": ["train", "notebook", "service"]}),
    ("nvidia_t4", {"present": True, "vendor": "nvidia", "model": "T4", "count": 2, "architecture": "x86_64"},
     {"node_labels_roles": ["service"], "node_labels_vgpu": True}),
    ("ascend", {"present": True, "vendor": "huawei", "model": "Ascend910B", "count": 8, "architecture": "aarch64",
                "accelerator": "huawei-Ascend910"},
     {"node_labels_roles": ["train", "service"], "node_labels_org": "ascend"}),
    ("cpu", {"present": False, "vendor": None, "model": None, "count": 0, "architecture": "x86_64"},
     {"node_labels_roles": ["notebook", "service"], "node_labels_share": True}),
]


def core_api():
    from kubernetes import client as k8s

    api = clusters.api_client("worker")
    return api, k8s.CoreV1Api(api)


def bench_names(count: int) -> list[str]:
    return [f"{PREFIX}{index:04d}" for index in range(count)]


def create_nodes(names: list[str], workers: int = 16) -> None:
    from kubernetes.client.exceptions import ApiException

    api, core = core_api()

    def create(name: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", SELECTOR_KEY: "true"},
            },
        }
        try:
            core.create_node(body, _request_timeout=30)
        except ApiException as exc:
            if exc.status != 409:
                raise

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(create, names))
    finally:
        api.close()


def bench_nodes():
    api, core = core_api()
    try:
        return core.list_node(label_selector=f"{SELECTOR_KEY}=true", _request_timeout=30).items
    finally:
        api.close()


def ready_count() -> int:
    return sum(
        1 for node in bench_nodes()
        if any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))
    )


def delete_nodes(workers: int = 16) -> None:
    from kubernetes.client.exceptions import ApiException

    names = [node.metadata.name for node in bench_nodes()]
    api, core = core_api()

    def delete(name: str) -> None:
        try:
            core.delete_node(name, _request_timeout=30)
        except ApiException as exc:
            if exc.status != 404:
                raise

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(delete, names))
    finally:
        api.close()
    wait_for(lambda: not bench_nodes(), 180, "bench Nodes deleted", interval=1)


def write_inventory(directory: Path, names: list[str]) -> Path:
    groups = {group: {"hosts": {}, "vars": variables} for group, _facts, variables in PROFILES}
    for index, name in enumerate(names):
        group, facts, _variables = PROFILES[index % len(PROFILES)]
        groups[group]["hosts"][name] = {"node_labels_accelerator": facts}
    inventory = {
        "all": {
            "children": {
                "control": {"hosts": {"localhost": {
                    "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                }}},
                "bench": {
                    "children": groups,
                    "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                },
            },
            "vars": {"aicluster_clusters": {"worker": {"kubeconfig": str(paths.kubeconfig_path("worker"))}}},
        }
    }
    path = directory / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def write_playbooks(directory: Path) -> dict[str, Path]:
    control = directory / "control.yml"
    control.write_text(yaml.safe_dump([{
        "name": "Label the bench Nodes from the control host",
        "hosts": "control",
        "gather_facts": False,
        "roles": [{"role": "node_labels", "vars": {"node_labels_hosts": "{{ groups['bench'] }}"}}],
    }]))
    fleet = directory / "fleet.yml"
    fleet.write_text(yaml.safe_dump([{
        "name": "Label the bench Nodes, play on the hosts",
        "hosts": "bench",
        "gather_facts": False,
        "roles": [{"role": "node_labels"}],
    }]))
    return {"control": control, "fleet": fleet}


def run_playbook(inventory: Path, playbook: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json",  # no profile_tasks text in the JSON
        "ANSIBLE_FACT_CACHING": "memory",
    })
    venv_bin = Path(sys.executable).parent
    start = time.monotonic()
    proc = subprocess.run(
        [str(venv_bin / "ansible-playbook"), "-i", str(inventory), str(playbook)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{playbook.name} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    for play in report["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].endswith(MODULE_TASK):
                (result,) = [r for r in task["hosts"].values() if "api_writes" in r]
                duration = task["task"]["duration"]
                return {
                    "seconds": round(seconds, 2),
                    "module_task_seconds": round(_seconds(duration["start"], duration["end"]), 2),
                    "api_writes": result["api_writes"],
                    "nodes_changed": len(result["nodes_changed"]),
                    "changed": result["changed"],
                }
    raise SystemExit(f"no module result in the output of {playbook.name}")


def _seconds(start: str, end: str) -> float:
    from datetime import datetime

    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--fleet-play", action="store_true", help="also time the play that targets the N hosts")
    parser.add_argument("--keep", action="store_true", help="leave the bench Nodes in the cluster")
    args = parser.parse_args()
    names = bench_names(args.nodes)
    result: dict = {"nodes": args.nodes}
    try:
        delete_nodes()  # leftovers of an interrupted run
        start = time.monotonic()
        create_nodes(names)
        wait_for(lambda: ready_count() >= args.nodes, 300, f"{args.nodes} bench Nodes Ready", interval=1)
        result["create_and_ready_seconds"] = round(time.monotonic() - start, 1)
        with tempfile.TemporaryDirectory(prefix="label-reconcile-") as tmp:
            directory = Path(tmp)
            inventory = write_inventory(directory, names)
            books = write_playbooks(directory)
            result["first_pass"] = run_playbook(inventory, books["control"])
            result["second_pass"] = run_playbook(inventory, books["control"])
            if args.fleet_play:
                result["fleet_play_second_pass"] = run_playbook(inventory, books["fleet"])
        managed = sum(1 for node in bench_nodes() if "aicluster.io/managed-labels" in (node.metadata.annotations or {}))
        result["nodes_with_managed_annotation"] = managed
        result["goal_met"] = (
            result["first_pass"]["seconds"] < 10 and result["first_pass"]["api_writes"] == args.nodes
            and result["second_pass"]["api_writes"] == 0 and managed == args.nodes
        )
    finally:
        if not args.keep:
            delete_nodes()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
