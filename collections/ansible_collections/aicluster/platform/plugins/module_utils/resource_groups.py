# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Resource groups (cube-studio's ``org`` Node label) and the rebalancing of shareable Nodes between them - the
pure part: the loads of the groups from the Nodes and pods as the API lists them, the problems of the settings,
and the moves. No Ansible, no API calls.

- A group's Nodes are the Nodes labelled ``org=<group>``; its capacity, the GPUs (``gpu_resource``) they have
  allocatable. ``share=true`` marks the Nodes that may move (the label role sets both from inventory).
- A group's pods are the active pods (bound to a Node, phase Pending or Running) that select it
  (``nodeSelector: {org: <group>}``, as cube-studio's pods do), and the GPU pods without such a selector, counted to
  the group of the Node they run on. DaemonSet and static pods are nobody's. A pod's GPUs are what the scheduler
  counts: the sum over its containers, or its largest init container when that is more.
- Load = GPUs its pods request / GPUs its Nodes allocate (no capacity: 0 without requests, else infinite).

Each run moves at most ``max_moves`` Nodes, one at a time: the most loaded group receives a Node from the least
loaded group that can give one, as long as their loads differ by more than ``threshold``. A group gives only
GPU Nodes with ``share=true``, not cordoned, while it has more GPU Nodes than its minimum, and only a Node where
none of its own pods run unless ``allow_drain`` (no pod is evicted: those already there run on to completion,
and new ones of the group are no longer scheduled there). Among a group's Nodes: those without its pods first,
then the fewest GPUs in use, then the one that leaves the two loads closest, then by name. A move must narrow the
gap between the two groups, so that a Node never comes straight back; with the loads unchanged, the next run
moves nothing.

The move is recorded on the Node for the label role (module_utils ``node_labels``,
:func:`node_labels.resource_group_override`): annotation ``aicluster.io/resource-group`` (the group the rebalancer
chose) and ``aicluster.io/resource-group-base`` (the group the Node had before its first move, the inventory's
value), both removed when a Node moves back to its base group.
"""

from __future__ import annotations

import math
import re

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_names, plan_problems
from ansible_collections.aicluster.platform.plugins.module_utils.node_labels import (
    GROUP_LABEL,
    RESOURCE_GROUP_ANNOTATION,
    RESOURCE_GROUP_BASE_ANNOTATION,
    SHARE_LABEL,
    TRUE,
)

DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_THRESHOLD = 0.2
DEFAULT_MAX_MOVES = 1
ACTIVE_PHASES = ("Pending", "Running")
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"  # static pods


class ResourceGroupError(plan_problems.PlanError):
    """Problems that stop the plan before any move (``problems``: one sentence each)."""


is_int = plan_problems.is_int


_show = plan_problems.show


def parse_count(quantity):
    """Whole units of an extended resource as the API reports it (``"8"``); 0 when unreadable."""
    if is_int(quantity):
        return max(quantity, 0)
    if isinstance(quantity, str) and re.match(r"^[0-9]+$", quantity.strip()):
        return int(quantity.strip())
    return 0


def settings_defaults(settings):
    result = {"minimums": {}, "threshold": DEFAULT_THRESHOLD, "max_moves": DEFAULT_MAX_MOVES, "allow_drain": False,
              "gpu_resource": DEFAULT_GPU_RESOURCE}
    result.update({k: v for k, v in (settings or {}).items() if v is not None})
    return result


# ----------------------------------------------------------------------------------- the cluster
def nodes_of(node_items, gpu_resource=DEFAULT_GPU_RESOURCE):
    """``{name: {group, share, gpus, cordoned, resource_version, labels, annotations}}`` from a Node list's items."""
    nodes = {}
    for item in node_items or []:
        meta = item.get("metadata") or {}
        labels = meta.get("labels") or {}
        allocatable = ((item.get("status") or {}).get("allocatable") or {}).get(gpu_resource)
        group = labels.get(GROUP_LABEL)
        nodes[meta.get("name")] = {
            "group": group if isinstance(group, str) and group else None,
            "share": labels.get(SHARE_LABEL) == TRUE,
            "gpus": parse_count(allocatable),
            "cordoned": bool((item.get("spec") or {}).get("unschedulable")),
            "resource_version": meta.get("resourceVersion"),
            "labels": dict(labels),
            "annotations": dict(meta.get("annotations") or {}),
        }
    return nodes


def _container_gpus(container, resource):
    resources = container.get("resources") or {}
    requested = (resources.get("requests") or {}).get(resource)
    if requested is None:  # an extended resource's request defaults to its limit
        requested = (resources.get("limits") or {}).get(resource)
    return parse_count(requested)


def pod_gpus(pod, resource=DEFAULT_GPU_RESOURCE):
    """The GPUs the scheduler counts for a pod: its containers together, or its largest init container."""
    spec = pod.get("spec") or {}
    main = sum(_container_gpus(c, resource) for c in spec.get("containers") or [])
    init = max([_container_gpus(c, resource) for c in spec.get("initContainers") or []] or [0])
    return max(main, init)


def pods_of(pod_items, nodes, gpu_resource=DEFAULT_GPU_RESOURCE):
    """The active pods of the groups: ``[{name, namespace, node, group, gpus}]`` (see the module doc for which pods
    are whose)."""
    pods = []
    for item in pod_items or []:
        meta = item.get("metadata") or {}
        spec = item.get("spec") or {}
        node = spec.get("nodeName")
        if not node or (item.get("status") or {}).get("phase") not in ACTIVE_PHASES:
            continue
        if any(ref.get("kind") == "DaemonSet" for ref in meta.get("ownerReferences") or []) \
                or MIRROR_ANNOTATION in (meta.get("annotations") or {}):
            continue
        gpus = pod_gpus(item, gpu_resource)
        group = (spec.get("nodeSelector") or {}).get(GROUP_LABEL)
        if not group and gpus:
            group = (nodes.get(node) or {}).get("group")
        if not group:
            continue
        pods.append({"name": meta.get("name"), "namespace": meta.get("namespace"), "node": node, "group": group,
                     "gpus": gpus})
    return pods


def load(requested, allocatable):
    if allocatable:
        return requested / allocatable
    return 0.0 if not requested else math.inf


def loads(nodes, pods, assignment, minimums):
    """Per group: GPU Nodes, share=true GPU Nodes, GPUs allocatable and requested, load, minimum - with the Nodes
    in the groups of ``assignment`` ({node: group})."""
    groups = {g for g in assignment.values() if g} | set(minimums) | {p["group"] for p in pods}
    result = {g: {"nodes": 0, "share_nodes": 0, "gpus": 0, "gpus_requested": 0, "minimum": minimums.get(g, 0)}
              for g in groups}
    for name, group in assignment.items():
        node = nodes[name]
        if group and node["gpus"] > 0:
            result[group]["nodes"] += 1
            result[group]["share_nodes"] += int(node["share"])
            result[group]["gpus"] += node["gpus"]
    for pod in pods:
        result[pod["group"]]["gpus_requested"] += pod["gpus"]
    for entry in result.values():
        entry["load"] = load(entry["gpus_requested"], entry["gpus"])
    return result


def report(group_loads):
    """The loads for output: sorted by group, load rounded to 4 places (None for a group without GPUs)."""
    return {g: {**entry, "load": None if math.isinf(entry["load"]) or not entry["gpus"] else round(entry["load"], 4)}
            for g, entry in sorted(group_loads.items())}


# ----------------------------------------------------------------------------------- problems
def settings_problems(settings):
    s = settings_defaults(settings)
    found = []
    threshold = s["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1 \
            or math.isnan(threshold):
        found.append(f"threshold must be a load difference from 0 to 1 (e.g. 0.2: move when the most and the least "
                     f"loaded group differ by more than 20 points), got {_show(threshold)}")
    if not is_int(s["max_moves"]) or s["max_moves"] < 0:
        found.append(f"max_moves must be a whole number of at least 0 (0: report only), got {_show(s['max_moves'])}")
    if not isinstance(s["allow_drain"], bool):
        found.append(f"allow_drain must be true or false, got {_show(s['allow_drain'])}")
    resource = s["gpu_resource"]
    if not isinstance(resource, str) or "/" not in resource or k8s_names.validate_label_key(resource):
        found.append(f"gpu_resource must be an extended resource name such as {DEFAULT_GPU_RESOURCE}, "
                     f"got {_show(resource)}")
    minimums = s["minimums"]
    if not isinstance(minimums, dict):
        found.append(f"minimums must be a dict of group: GPU Nodes it keeps, got {_show(minimums)}")
        return found
    for group, minimum in minimums.items():
        errors = k8s_names.validate_label_value(group) if isinstance(group, str) and group else ["must not be empty"]
        if errors:
            found.append(f"minimums: group {_show(group)} is not an {GROUP_LABEL} label value: {'; '.join(errors)}")
        if not is_int(minimum) or minimum < 0:
            found.append(f"minimums: group {group}: the minimum must be a whole number of GPU Nodes, at least 0, "
                         f"got {_show(minimum)}")
    return found


def problems(node_items, settings):
    """Every problem of the settings, and of the minimums against the Nodes (a minimum above the group's GPU Nodes
    could never be kept)."""
    found = settings_problems(settings)
    s = settings_defaults(settings)
    resource = s["gpu_resource"]
    if not isinstance(s["minimums"], dict) or not isinstance(resource, str) or k8s_names.validate_label_key(resource):
        return found
    nodes = nodes_of(node_items, resource)
    for group, minimum in sorted(s["minimums"].items(), key=lambda item: str(item[0])):
        if not is_int(minimum) or not isinstance(group, str) or k8s_names.validate_label_value(group):
            continue  # said above
        count = sum(1 for node in nodes.values() if node["group"] == group and node["gpus"] > 0)
        if minimum > count:
            nodes_text = f"{count} GPU Node{'' if count == 1 else 's'}"
            found.append(f"minimums: group {group}: the minimum {minimum} is above its {nodes_text} ({GROUP_LABEL}="
                         f"{group} with {s['gpu_resource']} allocatable): it could never be kept")
    return found


# ----------------------------------------------------------------------------------- the moves
def node_patch(node, target):
    """The merge patch that moves a Node to ``target``: its ``org`` label and the record the label role honours
    (base = the group before the first move; both annotations go when the Node is back in its base group). Carries
    the Node's resourceVersion: a Node changed since it was read is not patched (HTTP 409)."""
    annotations = node["annotations"]
    base = annotations.get(RESOURCE_GROUP_BASE_ANNOTATION) or node["group"]
    if target == base:
        changes = {key: None for key in (RESOURCE_GROUP_ANNOTATION, RESOURCE_GROUP_BASE_ANNOTATION)
                   if key in annotations}
    else:
        changes = {RESOURCE_GROUP_ANNOTATION: target, RESOURCE_GROUP_BASE_ANNOTATION: base}
    metadata = {"labels": {GROUP_LABEL: target}}
    if changes:
        metadata["annotations"] = changes
    if node.get("resource_version"):
        metadata["resourceVersion"] = node["resource_version"]
    return {"metadata": metadata}


def _after(node, patch):
    """The Node's org label and record after ``patch``, for the diff."""
    annotations = dict(node["annotations"])
    for key, value in (patch["metadata"].get("annotations") or {}).items():
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
    return _shown(patch["metadata"]["labels"][GROUP_LABEL], annotations)


def _shown(group, annotations):
    return {"labels": {GROUP_LABEL: group},
            "annotations": {key: annotations[key] for key in (RESOURCE_GROUP_ANNOTATION, RESOURCE_GROUP_BASE_ANNOTATION)
                            if key in annotations}}


def plan(node_items, pod_items, settings=None):
    """Check everything, then the moves of this run.

    Returns ``moves`` (``[{node, from, to, gpus, gpus_in_use, busy}]`` in order), ``patches`` ({node: merge patch}),
    ``diff`` (per moved Node its ``org`` label and record before and after), ``loads`` (``before`` and ``after``
    per group, :func:`report`), ``stopped`` (why the run moves no more). Raises :class:`ResourceGroupError`."""
    found = problems(node_items, settings)
    if found:
        raise ResourceGroupError(found)
    s = settings_defaults(settings)
    minimums = s["minimums"]
    nodes = nodes_of(node_items, s["gpu_resource"])
    pods = pods_of(pod_items, nodes, s["gpu_resource"])
    in_use = {name: 0 for name in nodes}
    own = {name: [] for name in nodes}  # the pods of the Node's own group on it
    for pod in pods:
        if pod["node"] in nodes:
            in_use[pod["node"]] += pod["gpus"]
            if pod["group"] == nodes[pod["node"]]["group"]:
                own[pod["node"]].append(f"{pod['namespace']}/{pod['name']}")
    assignment = {name: node["group"] for name, node in nodes.items()}
    before = loads(nodes, pods, assignment, minimums)
    moves, moved, stopped = [], set(), None
    while stopped is None:
        current = loads(nodes, pods, assignment, minimums)
        if len(current) < 2:
            stopped = "fewer than two resource groups: nothing to balance"
            break
        if len(moves) >= s["max_moves"]:
            stopped = (f"max_moves {s['max_moves']} reached" if s["max_moves"] else "max_moves is 0: report only")
            break
        receiver = min(current, key=lambda g: (-current[g]["load"], g))
        top = current[receiver]["load"]
        donors = sorted((g for g in current if g != receiver), key=lambda g: (current[g]["load"], g))
        reasons, choice = [], None
        for donor in donors:
            gap = top - current[donor]["load"]
            if not gap > s["threshold"]:
                break
            choice, reason = _pick(donor, receiver, current, nodes, assignment, in_use, own, moved, s)
            if choice:
                break
            reasons.append(f"{donor}: {reason}")
        if choice is None:
            least = donors[0]
            if not top - current[least]["load"] > s["threshold"]:
                stopped = (f"balanced: the most loaded group {receiver} ({_pct(top)}) and the least loaded "
                           f"{least} ({_pct(current[least]['load'])}) differ by no more than the threshold "
                           f"{s['threshold']}")
            else:
                stopped = f"no Node can move to {receiver} ({_pct(top)}): " + "; ".join(reasons)
            break
        donor, name = choice
        assignment[name] = receiver
        moved.add(name)
        moves.append({"node": name, "from": donor, "to": receiver, "gpus": nodes[name]["gpus"],
                      "gpus_in_use": in_use[name], "busy": bool(own[name])})
    after = loads(nodes, pods, assignment, minimums)
    patches, diff = {}, []
    for move in moves:
        node = nodes[move["node"]]
        patch = node_patch(node, move["to"])
        patches[move["node"]] = patch
        diff.append({"before_header": f"node/{move['node']}", "after_header": f"node/{move['node']}",
                     "before": _shown(node["group"], node["annotations"]), "after": _after(node, patch)})
    return {"moves": moves, "patches": patches, "diff": diff, "stopped": stopped,
            "loads": {"before": report(before), "after": report(after)}}


def _pct(value):
    return "no GPUs" if math.isinf(value) else f"{value:.0%}"


def _pick(donor, receiver, current, nodes, assignment, in_use, own, moved, s):
    """``((donor, node), None)`` for the Node ``donor`` gives ``receiver``, else ``(None, why not)``."""
    entry = current[donor]
    if not entry["nodes"]:
        return None, "no GPU Node"
    if entry["nodes"] <= entry["minimum"]:
        return None, f"at its minimum of {entry['minimum']} GPU Node{'' if entry['minimum'] == 1 else 's'}"
    members = sorted(n for n, g in assignment.items() if g == donor and nodes[n]["gpus"] > 0 and n not in moved)
    shared = [n for n in members if nodes[n]["share"] and not nodes[n]["cordoned"]]
    if not shared:
        return None, f"no {SHARE_LABEL}={TRUE} GPU Node that is not cordoned"
    free = [n for n in shared if not own[n] or s["allow_drain"]]
    if not free:
        return None, f"its {SHARE_LABEL}={TRUE} Nodes run its pods ({', '.join(shared)}; allow_drain is false)"
    gap = current[receiver]["load"] - entry["load"]
    options = []
    for name in free:
        gpus = nodes[name]["gpus"]
        new_receiver = load(current[receiver]["gpus_requested"], current[receiver]["gpus"] + gpus)
        new_donor = load(entry["gpus_requested"], entry["gpus"] - gpus)
        new_gap = abs(new_receiver - new_donor)
        if new_gap < gap:
            options.append((bool(own[name]), in_use[name], new_gap, name))
    if not options:
        return None, "no move would narrow the gap (each of its Nodes would leave it more loaded than " \
                     f"{receiver} by more)"
    return (donor, min(options)[3]), None
