#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Reconcile the labels this project manages on every Node, in one run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_labels
short_description: Reconcile managed labels on many Kubernetes Nodes at once
version_added: 0.1.0
description:
  - Run once from the control host for all Nodes (C(run_once) and C(delegate_to=localhost)).
  - Validates every label key and value of every Node first; one invalid label fails the task
    before anything is written to any Node.
  - Lists the Nodes with one API call, computes a JSON merge patch per Node and patches only the
    Nodes that differ (one write per such Node, none when converged). Patches run in a small
    thread pool.
  - Ownership is recorded on each Node in the annotation O(annotation_key) (comma-separated,
    sorted label keys). Labels that were managed before and are no longer wanted are removed;
    labels outside that set are never touched. A wanted label that already has the wanted value
    (set by hand) is adopted without a label write.
  - "Resource groups: on a Node the resource group rebalancer (M(aicluster.platform.resource_group_rebalance)) moved,
    the C(org) label follows the rebalancer's record (annotations C(aicluster.io/resource-group) and
    C(aicluster.io/resource-group-base)) while the wanted labels still have C(share=true) and the C(org) the Node had
    before its first move; otherwise the wanted C(org) wins and the record is removed (RV(plans) says which)."
  - Connection errors and HTTP 5xx/429 answers are retried with exponential back-off for at most
    O(request_timeout) seconds per call; then the module fails naming the URL and the last error.
  - Connection options are those of M(kubernetes.core.k8s_info), through kubernetes.core's client.
options:
  nodes:
    description: The wanted labels, one entry per Node.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Node name (C(metadata.name)).
        type: str
        required: true
      host:
        description: Inventory host the entry belongs to; only used in messages.
        type: str
      labels:
        description:
          - Every label this project wants on the Node. Managed labels missing here are removed.
          - Values must be strings unless O(strict=false).
        type: dict
        default: {}
  annotation_key:
    description: Annotation holding the managed label keys.
    type: str
    default: aicluster.io/managed-labels
  missing:
    description: What to do when a listed Node does not exist.
    type: str
    choices: [fail, skip]
    default: fail
  strict:
    description:
      - With V(true), label values must be strings.
      - With V(false), booleans become V(true)/V(false) and numbers their decimal text before validation.
    type: bool
    default: false
  workers:
    description: Maximum number of concurrent PATCH requests.
    type: int
    default: 4
  request_timeout:
    description: Seconds each API request may take, retries of transient faults included.
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
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Reconcile node labels for the whole cluster
  aicluster.platform.node_labels:
    kubeconfig: /etc/aicluster/worker.kubeconfig
    nodes: >-
      {{ groups['k8s_nodes'] | map('extract', hostvars)
         | map(attribute='aicluster_node_label_entry') | list }}
  run_once: true
  delegate_to: localhost

- name: Explicit entries
  aicluster.platform.node_labels:
    nodes:
      - name: gpu-1
        host: gpu-1.lab
        labels:
          cpu: "true"
          gpu: "true"
          gpu-type: A100
          train: "true"
          org: public
          nvidia.com/gpu.present: "true"
      - name: npu-1
        labels:
          workerselector: dls-worker-node
          node-role.kubernetes.io/worker: worker
          accelerator: huawei-Ascend910
          accelerator-type: module-910b-8
          host-arch: huawei-arm
    missing: skip
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
nodes_changed:
  description: Names of the Nodes that were (or in check mode would be) patched.
  returned: always
  type: list
  elements: str
  sample: [gpu-1]
api_writes:
  description: Number of PATCH requests that succeeded (0 in check mode).
  returned: always
  type: int
  sample: 1
missing_nodes:
  description: Listed Nodes that do not exist (only with O(missing=skip); otherwise the task fails).
  returned: always
  type: list
  elements: str
plans:
  description:
    - Per Node name, the merge patch (null when converged) and what it sets, removes and adopts.
    - C(resource_group), on Nodes with the rebalancer's record only, says whether its C(org) or the wanted one won.
  returned: always
  type: dict
  sample:
    gpu-1:
      patch: {metadata: {labels: {gpu-type: A100}, annotations: {aicluster.io/managed-labels: "cpu,gpu,gpu-type"}}}
      set: {gpu-type: A100}
      removed: []
      adopted: [cpu]
"""

import concurrent.futures
import json

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_client, k8s_names
from ansible_collections.aicluster.platform.plugins.module_utils import node_labels as logic

MERGE_PATCH = "application/merge-patch+json"
FIELD_MANAGER = "aicluster-node-labels"


def _who(entry):
    host = entry.get("host")
    if host and host != entry["name"]:
        return f"host {host} (node {entry['name']})"
    return f"node {entry['name']}"


def prepare(entries, strict, annotation_key):
    """Coerce and validate every entry; returns (desired_by_node, problems)."""
    problems = []
    for message in k8s_names.validate_label_key(annotation_key):
        problems.append(f"annotation_key {annotation_key!r}: {message}")
    desired = {}
    for entry in entries:
        name = entry["name"]
        if name in desired:
            problems.append(f"{_who(entry)}: listed more than once")
            continue
        labels = entry.get("labels") or {}
        if not strict:
            labels = {key: logic.coerce_label_value(value) for key, value in labels.items()}
        for key, message in k8s_names.validate_labels(labels):
            problems.append(f"{_who(entry)}: label {key!r}: {message}")
        desired[name] = labels
    return desired, problems


def _node_meta(node):
    metadata = node.metadata if not isinstance(node, dict) else node.get("metadata", {})
    if isinstance(metadata, dict):
        return metadata.get("name"), metadata.get("labels") or {}, metadata.get("annotations") or {}
    return metadata.name, metadata.labels or {}, metadata.annotations or {}


def main():
    module = k8s_client.k8s_module(
        argument_spec={
            "nodes": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "host": {"type": "str"},
                    "labels": {"type": "dict", "default": {}},
                },
            },
            "annotation_key": {"type": "str", "default": logic.MANAGED_ANNOTATION, "no_log": False},
            "missing": {"type": "str", "choices": ["fail", "skip"], "default": "fail"},
            "strict": {"type": "bool", "default": False},
            "workers": {"type": "int", "default": 4},
            "request_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    annotation_key = params["annotation_key"]
    entries = params["nodes"]
    if params["workers"] < 1:
        module.fail_json(msg="workers must be at least 1")
    if params["request_timeout"] < 1:
        module.fail_json(msg="request_timeout must be at least 1 second")

    # 1. Validate everything before touching the API.
    desired, problems = prepare(entries, params["strict"], annotation_key)
    if problems:
        module.fail_json(
            msg=f"{len(problems)} invalid label(s), nothing written: " + "; ".join(problems),
            errors=problems,
            changed=False,
            api_writes=0,
        )

    # 2. One read for all Nodes.
    timeout = params["request_timeout"]
    try:
        api_client = k8s_client.connect(module, timeout)
        api = k8s_client.core_v1_api(api_client)
        # Raw JSON, not 500 V1Node models: building the models costs more than the request.
        response = k8s_client.call(api_client, "GET", "/api/v1/nodes",
                                   lambda left: api.list_node(_request_timeout=left, _preload_content=False), timeout)
        node_list = json.loads(response.data)
    except k8s_client.K8sError as exc:
        module.fail_json(msg=f"cannot list Nodes: {exc}", api_writes=0)
    except Exception as exc:  # ApiException (401, 403, ...), TLS errors, answers that are not JSON
        module.fail_json(msg=f"cannot list Nodes: {k8s_client.error_message(exc)}", api_writes=0)

    existing = {}
    for node in node_list.get("items") or []:
        name, labels, annotations = _node_meta(node)
        existing[name] = (labels, annotations)

    missing = sorted(name for name in desired if name not in existing)
    if missing and params["missing"] == "fail":
        module.fail_json(
            msg="Nodes not found in the cluster, nothing written: " + ", ".join(missing),
            missing_nodes=missing,
            changed=False,
            api_writes=0,
        )

    # 3. Plans.
    plans = {}
    to_patch = {}
    diffs = []
    for name in sorted(desired):
        if name not in existing:
            continue
        labels, annotations = existing[name]
        # A share=true Node the resource group rebalancer moved keeps its org while the inventory's is unchanged;
        # otherwise the inventory wins and the rebalancer's record goes (module_utils node_labels).
        wanted, record_changes, record_note = logic.resource_group_override(desired[name], annotations)
        patch, diff = logic.plan(labels, annotations, wanted, annotation_key, annotation_changes=record_changes)
        plans[name] = {"patch": patch, "set": diff["set"], "removed": diff["removed"], "adopted": diff["adopted"]}
        if record_note:
            plans[name]["resource_group"] = record_note
        if patch is not None:
            to_patch[name] = patch
            diffs.append({
                "before_header": f"node/{name}",
                "after_header": f"node/{name}",
                "before": diff["before"],
                "after": diff["after"],
            })

    result = {
        "changed": bool(to_patch),
        "nodes_changed": sorted(to_patch),
        "api_writes": 0,
        "missing_nodes": missing,
        "plans": plans,
    }
    if module._diff:
        result["diff"] = diffs
    if module.check_mode or not to_patch:
        module.exit_json(**result)

    # 4. Writes: one PATCH per Node that differs.
    def write(name):
        k8s_client.call(api_client, "PATCH", f"/api/v1/nodes/{name}", lambda left: api.patch_node(
            name,
            to_patch[name],
            field_manager=FIELD_MANAGER,
            _content_type=MERGE_PATCH,
            _request_timeout=left,
            _preload_content=False,  # the answer is not needed; skip decoding it
        ), timeout)
        return name

    failures = {}
    written = []
    workers = min(params["workers"], len(to_patch))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(write, name): name for name in sorted(to_patch)}
        for future in concurrent.futures.as_completed(futures):
            name = futures[future]
            try:
                future.result()
                written.append(name)
            except Exception as exc:  # report every Node's error, not only the first
                failures[name] = str(exc) if isinstance(exc, k8s_client.K8sError) else k8s_client.error_message(exc)

    result["api_writes"] = len(written)
    result["nodes_changed"] = sorted(written)
    result["changed"] = bool(written)
    if failures:
        result["failed_nodes"] = failures
        module.fail_json(
            msg="patching failed for " + "; ".join(f"{name}: {error}" for name, error in sorted(failures.items())),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
