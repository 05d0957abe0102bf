#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Move shareable Nodes between resource groups (cube-studio's org label) from the least to the most loaded group,
recording each move where the label role honours it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: resource_group_rebalance
short_description: Move share=true Nodes from the least to the most loaded resource group
version_added: 0.7.0
description:
  - "Resource groups are cube-studio's: a Node belongs to the group of its C(org) label, and C(share=true) marks the
    Nodes that may be lent (the label role, M(aicluster.platform.node_labels), sets both from inventory). Meant to
    run every few minutes (AWX schedule or cron: C(playbooks/rebalance_resource_groups.yml))."
  - Reads the Nodes and the pods once. A group's load is the GPUs (O(gpu_resource)) its active pods request (bound
    to a Node, Pending or Running; a pod is the group's it selects with C(nodeSelector) C(org), or, without one, a
    GPU pod is the group's of its Node; DaemonSet and static pods are nobody's) over the GPUs its Nodes have
    allocatable.
  - Moves at most O(max_moves) Nodes per run, one at a time, from the least loaded group that can give one to the
    most loaded, while their loads differ by more than O(threshold). A group never goes below its O(minimums) of
    GPU Nodes; only C(share=true) GPU Nodes that are not cordoned move; a Node where pods of its group run moves
    only with O(allow_drain) (nothing is evicted - they run to completion; no new pod of the old group is scheduled
    there). A move must narrow the gap between the two groups, so that a run never undoes the last one; with the
    loads unchanged, the next run moves nothing.
  - "Each move is one merge patch of the Node, conditional on the Node's resourceVersion (a Node changed since it
    was read is skipped with a warning - RV(conflicts) - and the next run decides again): the C(org) label, and the
    record C(aicluster.io/resource-group) (the group moved to) and C(aicluster.io/resource-group-base) (the group
    before the first move); both are removed when a Node moves back to its base group."
  - "Which wins, the rebalancer or the inventory (label role): M(aicluster.platform.node_labels) yields to the record
    while the inventory still wants the Node C(share=true) and still gives it the C(org) recorded as its base - so a
    bootstrap run neither undoes a move nor writes anything for it, and C(org) stays in the label role's ownership
    record (C(aicluster.io/managed-labels)). When the inventory changes - the Node no longer shared, or another
    C(org) for it - the inventory wins: the label role sets its C(org) and removes the record. The rebalancer never
    edits C(aicluster.io/managed-labels)."
  - Bad settings fail, listing every problem, before anything is written - a threshold outside 0 to 1, O(max_moves)
    below 0, a minimum above the group's GPU Nodes.
  - In check mode the moves are computed and reported (with C(--diff) the C(org) label and record of each moved Node
    before and after) and nothing is written.
options:
  minimums:
    description: GPU Nodes (with O(gpu_resource) allocatable) each group keeps at least, by group name; others 0.
    type: dict
    default: {}
  threshold:
    description: The load difference (0 to 1) between the most and the least loaded group above which a Node moves.
    type: float
    default: 0.2
  max_moves:
    description: Nodes moved at most per run (0 - report only).
    type: int
    default: 1
  allow_drain:
    description:
      - Also move Nodes where pods of their group run (they run on to completion; nothing is evicted).
    type: bool
    default: false
  gpu_resource:
    description: The GPU's extended resource, read from the Nodes' allocatable and the pods' requests.
    type: str
    default: nvidia.com/gpu
  request_timeout:
    description: Seconds each API call may take, retries of transient faults included.
    type: int
    default: 30
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
requirements:
  - kubernetes (Python library) on the host that runs the module
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
seealso:
  - module: aicluster.platform.node_labels
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Move at most two shareable Nodes to the busiest resource group
  aicluster.platform.resource_group_rebalance:
    kubeconfig: /etc/aicluster/worker.kubeconfig
    minimums: {team-a: 2, team-b: 1}
    threshold: 0.25
    max_moves: 2
  delegate_to: localhost
  run_once: true
  register: rebalance
"""

RETURN = r"""
moves:
  description: The Nodes moved (in check mode - to move), in order.
  returned: success
  type: list
  elements: dict
  sample: [{node: gpu-a100-3, from: team-b, to: team-a, gpus: 8, gpus_in_use: 0, busy: false}]
loads:
  description:
    - C(before) and C(after) the moves, per group - GPU Nodes, C(share=true) GPU Nodes, GPUs allocatable
      (C(gpus)) and requested, load (null without GPUs), minimum.
  returned: success
  type: dict
  sample:
    before: {team-a: {nodes: 2, share_nodes: 1, gpus: 16, gpus_requested: 16, load: 1.0, minimum: 2}}
    after: {team-a: {nodes: 3, share_nodes: 2, gpus: 24, gpus_requested: 16, load: 0.6667, minimum: 2}}
stopped:
  description: Why the run moves no more (balanced, max_moves reached, or why no group could give a Node).
  returned: success
  type: str
  sample: "balanced: the most loaded group team-a (67%) and the least loaded team-b (50%) differ by no more than the
    threshold 0.2"
api_writes:
  description: Node patches that succeeded (0 in check mode).
  returned: always
  type: int
conflicts:
  description: Nodes not moved because they changed since they were read (the next run decides again).
  returned: success
  type: list
  elements: str
problems:
  description: Every problem of the settings, one sentence each (empty on success).
  returned: always
  type: list
  elements: str
  sample: ["threshold must be a load difference from 0 to 1 (e.g. 0.2: ...), got 1.5"]
"""


from ansible_collections.aicluster.platform.plugins.module_utils import k8s_client, plan_problems, resource_groups

try:
    from kubernetes.client.exceptions import ApiException
except ImportError:
    # k8s_client.k8s_module fails the module with kubernetes.core's message before anything here runs.
    pass

MERGE_PATCH = "application/merge-patch+json"
FIELD_MANAGER = "aicluster-resource-groups"
ACTIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"


def read_cluster(api_client, timeout):
    """The Node and pod lists' items (raw JSON): one call each, the pods without the finished ones."""
    api = k8s_client.core_v1_api(api_client)

    nodes = k8s_client.list_items(api_client, "/api/v1/nodes", api.list_node, timeout)
    pods = k8s_client.list_items(api_client, f"/api/v1/pods?fieldSelector={ACTIVE_PODS}",
                                 lambda **kw: api.list_pod_for_all_namespaces(field_selector=ACTIVE_PODS, **kw),
                                 timeout)
    return nodes, pods


def main():
    module = k8s_client.k8s_module(
        argument_spec={
            "minimums": {"type": "dict", "default": {}},
            "threshold": {"type": "float", "default": resource_groups.DEFAULT_THRESHOLD},
            "max_moves": {"type": "int", "default": resource_groups.DEFAULT_MAX_MOVES},
            "allow_drain": {"type": "bool", "default": False},
            "gpu_resource": {"type": "str", "default": resource_groups.DEFAULT_GPU_RESOURCE},
            "request_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["request_timeout"] < 1:
        module.fail_json(msg="request_timeout must be at least 1 second")
    settings = {key: params[key] for key in ("minimums", "threshold", "max_moves", "allow_drain", "gpu_resource")}
    timeout = params["request_timeout"]
    try:
        api_client = k8s_client.connect(module, timeout)
        nodes, pods = read_cluster(api_client, timeout)
    except Exception as exc:  # K8sError (time up), ApiException (401, 403, ...), TLS errors, answers not JSON
        text = str(exc) if isinstance(exc, k8s_client.K8sError) else k8s_client.error_message(exc)
        found = resource_groups.settings_problems(settings)
        also = f"; the settings also have {len(found)} problem(s): {'; '.join(found)}" if found else ""
        module.fail_json(msg=f"cannot read the cluster: {text}{also}", problems=found, changed=False, api_writes=0)
    try:
        result = resource_groups.plan(nodes, pods, settings)
    except resource_groups.ResourceGroupError as exc:
        plan_problems.fail_with_problems(module, exc.problems, "resource group")
    output = {"moves": result["moves"], "loads": result["loads"], "stopped": result["stopped"], "api_writes": 0,
              "conflicts": [], "problems": [], "changed": bool(result["moves"])}
    if module._diff:
        output["diff"] = result["diff"]
    if module.check_mode or not result["moves"]:
        module.exit_json(**output)

    api = k8s_client.core_v1_api(api_client)
    written, conflicts = [], []
    for move in result["moves"]:  # a few Nodes per run: one after the other, in the plan's order
        name = move["node"]
        try:
            k8s_client.call(api_client, "PATCH", f"/api/v1/nodes/{name}", lambda left, name=name: api.patch_node(
                name, result["patches"][name], field_manager=FIELD_MANAGER, _content_type=MERGE_PATCH,
                _request_timeout=left, _preload_content=False), timeout)
        except ApiException as exc:
            if exc.status != 409:
                output.update(api_writes=len(written), changed=bool(written),
                              moves=[m for m in result["moves"] if m["node"] in written])
                module.fail_json(msg=f"moving Node {name} from {move['from']} to {move['to']} failed: "
                                     f"{k8s_client.error_message(exc)}; moved before it: "
                                     f"{', '.join(written) or 'none'}", **output)
            conflicts.append(name)
            module.warn(f"Node {name} changed since it was read and was not moved from {move['from']} to "
                        f"{move['to']}; the next run decides again")
            continue
        except k8s_client.K8sError as exc:
            output.update(api_writes=len(written), changed=bool(written),
                          moves=[m for m in result["moves"] if m["node"] in written])
            module.fail_json(msg=f"moving Node {name} failed: {exc}; moved before it: {', '.join(written) or 'none'}",
                             **output)
        written.append(name)
    output.update(api_writes=len(written), changed=bool(written), conflicts=conflicts,
                  moves=[m for m in result["moves"] if m["node"] in written])
    if conflicts and module._diff:
        output["diff"] = [d for d in result["diff"] if d["before_header"].split("/", 1)[1] in written]
    module.exit_json(**output)


if __name__ == "__main__":
    main()
