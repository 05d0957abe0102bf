#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Read named Nodes' readiness with one list call, optionally waiting until every one is Ready (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_nodes_info
short_description: Report (and wait for) the Ready condition of named Nodes, with one list call per poll
version_added: 0.2.0
description:
  - Lists the cluster's Nodes once per poll and reports, for each name in O(names), whether the Node exists and
    is Ready.
  - With O(wait=true) it polls until every named Node is Ready or O(wait_timeout) seconds have passed, then
    fails naming the Nodes that are missing or not Ready. One call covers every machine of a play, so waiting
    for 50 joins costs one list call per poll, not 50.
  - Connection errors and HTTP 5xx/429 answers (an API server restarting, a load balancer without a backend)
    are retried with exponential back-off inside the wait; when the time is up the module names the URL and
    the last error.
  - Never changes anything; safe in check mode.
  - Connection options are those of M(kubernetes.core.k8s_info), through kubernetes.core's client.
options:
  names:
    description: Node names to report on.
    type: list
    elements: str
    required: true
  wait:
    description: Wait until every named Node exists and is Ready.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for every named Node, retries of transient faults included.
    type: int
    default: 300
  wait_sleep:
    description: Seconds between two polls while some Node is not Ready yet.
    type: int
    default: 2
  request_timeout:
    description: Seconds the first connection and each list call may take when O(wait=false).
    type: int
    default: 30
extends_documentation_fragment:
  - aicluster.platform.k8s_read
  - kubernetes.core.k8s_auth_options
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Wait for the Nodes of the machines that joined in this run
  aicluster.platform.k8s_nodes_info:
    kubeconfig: /etc/aicluster/worker.kubeconfig
    names: [gpu-a100-01, gpu-a100-02]
    wait: true
    wait_timeout: 300
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
nodes:
  description: Per requested name, whether the Node exists and whether its Ready condition is C(True).
  returned: always
  type: dict
  sample: {gpu-a100-01: {exists: true, ready: true}, gpu-a100-02: {exists: false, ready: false}}
not_ready:
  description: Requested Nodes that are missing or not Ready (empty when all are Ready).
  returned: always
  type: list
  elements: str
  sample: [gpu-a100-02]
polls:
  description: How many list calls were made.
  returned: always
  type: int
  sample: 3
"""

import json
import time

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_client


def readiness(items, names):
    """``{name: {exists, ready}}`` for the requested names, from a Node list's items."""
    found = {}
    for item in items:
        conditions = (item.get("status") or {}).get("conditions") or []
        found[(item.get("metadata") or {}).get("name")] = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return {name: {"exists": name in found, "ready": found.get(name, False)} for name in names}


def not_ready(state):
    return sorted(name for name, s in state.items() if not s["ready"])


def describe(state):
    missing = [n for n in not_ready(state) if not state[n]["exists"]]
    waiting = [n for n in not_ready(state) if state[n]["exists"]]
    parts = []
    if missing:
        parts.append("no Node yet: " + ", ".join(missing))
    if waiting:
        parts.append("not Ready: " + ", ".join(waiting))
    return "; ".join(parts)


def poll_until_ready(list_nodes, names, wait, timeout, sleep, clock=None):
    """Poll ``list_nodes(left)`` until every name is Ready (or once, without ``wait``).

    ``list_nodes`` retries transient faults within the ``left`` seconds it is given. Returns
    ``(state, polls, timed_out)``.
    """
    return k8s_client.poll_until(lambda left: readiness(list_nodes(left), names), lambda state: not not_ready(state),
                                 wait, timeout, sleep, clock or time)


def main():
    module = k8s_client.k8s_module(
        argument_spec={
            "names": {"type": "list", "elements": "str", "required": True},
            "wait": {"type": "bool", "default": False},
            "wait_timeout": {"type": "int", "default": 300},
            "wait_sleep": {"type": "int", "default": 2},
            "request_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    for key in ("wait_timeout", "request_timeout", "wait_sleep"):
        if params[key] < 1:
            module.fail_json(msg=f"{key} must be at least 1 second")
    names = sorted(set(params["names"]))
    if not names:
        module.exit_json(changed=False, nodes={}, not_ready=[], polls=0)
    timeout = params["wait_timeout"] if params["wait"] else params["request_timeout"]
    try:
        api_client = k8s_client.connect(module, timeout)
        core = k8s_client.core_v1_api(api_client)

        def list_nodes(left):
            response = k8s_client.call(api_client, "GET", "/api/v1/nodes",
                                       lambda t: core.list_node(_request_timeout=t, _preload_content=False), left)
            return json.loads(response.data).get("items") or []

        state, polls, timed_out = poll_until_ready(list_nodes, names, params["wait"], timeout, params["wait_sleep"])
    except k8s_client.K8sError as exc:
        module.fail_json(msg=f"cannot read the Nodes: {exc}")
    except Exception as exc:  # ApiException (401, 403, ...), TLS errors, answers that are not JSON
        module.fail_json(msg=f"cannot read the Nodes: {k8s_client.error_message(exc)}")
    result = {"changed": False, "nodes": state, "not_ready": not_ready(state), "polls": polls}
    if timed_out:
        module.fail_json(msg=f"Nodes not Ready within {params['wait_timeout']}s ({describe(state)})", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
