"""`lab summary`: what `make site` left behind, in one screen.

The clusters and their kubeconfigs, each fleet machine with its Node in the worker cluster
(Ready, and the scheduling labels the roles set), and the next commands to try. ``collect``
reads the live lab; ``render`` is pure (unit-tested with fake data).
"""

from __future__ import annotations

import os
from pathlib import Path

from labctl import paths

# Labels worth a glance, in this order; others (kubernetes.io/*, Rancher's) are left out.
KEY_LABELS = ("gpu-type", "accelerator", "accelerator-type", "nvidia.com/gpu.present", "cpu", "gpu", "vgpu",
              "rdma", "train", "notebook", "service", "org", "share")
INVENTORY = "inventory/lab"


def _rel(path: str) -> str:
    """A path relative to the checkout when it lies inside it (shorter lines)."""
    try:
        return os.path.relpath(path, paths.REPO_ROOT) if Path(path).is_relative_to(paths.REPO_ROOT) else path
    except ValueError:
        return path


def node_rows(items) -> dict[str, dict]:
    """Nodes (kubernetes client V1Node objects) by name: Ready and labels."""
    rows = {}
    for node in items:
        conditions = (node.status.conditions if node.status else None) or []
        ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
        rows[node.metadata.name] = {"ready": ready, "labels": dict(node.metadata.labels or {})}
    return rows


def collect() -> dict:
    """Read the live lab: cluster status, fleet machines, the worker cluster's Nodes."""
    from labctl import clusters, fleet

    data: dict = {"clusters": clusters.status(), "machines": [], "nodes": {}, "errors": []}
    try:
        data["machines"] = fleet.status()
    except Exception as exc:
        data["errors"].append(f"fleet: {exc}")
    if any(c["cluster"] == "worker" and c["state"] == "up" for c in data["clusters"]):
        from kubernetes import client as k8s

        try:
            api = clusters.api_client("worker")
            try:
                data["nodes"] = node_rows(k8s.CoreV1Api(api).list_node(_request_timeout=10).items)
            finally:
                api.close()
        except Exception as exc:
            data["errors"].append(f"worker Nodes: {exc}")
    return data


def label_summary(labels: dict[str, str]) -> str:
    """Key labels: ``k=v`` for values, the bare key for ``true``; '-' when none is set."""
    valued = [f"{k}={labels[k]}" for k in KEY_LABELS if k in labels and labels[k] != "true"]
    flags = [k for k in KEY_LABELS if labels.get(k) == "true"]
    return " ".join(valued + flags) or "-"


def render(data: dict, inventory: str = INVENTORY) -> list[str]:
    """The summary as lines (no trailing newlines); short: ~20 lines for the demo fleet."""
    lines = ["clusters:"]
    for c in data.get("clusters", []):
        detail = "  ".join(x for x in (c.get("version", ""), c.get("nodes", "")) if x)
        lines.append(f"  {c['cluster']:<8} {c['state']:<4} {detail:<22} kubeconfig {_rel(c['kubeconfig'])}")
    machines = data.get("machines", [])
    nodes = dict(data.get("nodes", {}))
    if machines:
        width = max(len(m["name"]) for m in machines)
        lines.append(f"machines ({len(machines)}) and their Nodes in worker (label=true shown as the bare label):")
        for m in machines:
            node = nodes.pop(m["name"], None)
            if node is None:
                where = "no Node"
                labels = ""
            else:
                where = "Ready" if node["ready"] else "NotReady"
                labels = label_summary(node["labels"])
            state = "" if m.get("state") == "running" else f" [{m.get('state')}]"
            lines.append(f"  {m['name']:<{width}} {m.get('address', ''):<11} {m.get('accelerators', ''):<8} "
                         f"{where:<8} {labels}{state}".rstrip())
    else:
        lines.append("machines: none (lab up --clusters-only, or the fleet is down)")
    if nodes:
        lines.append(f"  other Nodes in worker: {len(nodes)} ({', '.join(sorted(nodes)[:4])}"
                     f"{', ...' if len(nodes) > 4 else ''})")
    for error in data.get("errors", []):
        lines.append(f"  ! {error}")
    example = next((m["name"] for m in machines if m.get("accelerators", "-") != "-"), None) or \
        (machines[0]["name"] if machines else "gpu-a100-1")
    lines += [
        "next:",
        f"  ansible-playbook site.yml -i {inventory} --check --diff     # what would change: nothing",
        f"  ansible-playbook site.yml -i {inventory} --limit {example} --tags storage   # one machine, one part",
        "  lab fleet add gpu-new-1 --model T4 --count 2 && "
        f"ansible-playbook site.yml -i {inventory} --limit gpu-new-1",
        "  make test      # lint, unit, integration against the lab, Molecule",
        "  lab status, lab down    # what runs; stop it all, nothing left behind",
    ]
    return lines
