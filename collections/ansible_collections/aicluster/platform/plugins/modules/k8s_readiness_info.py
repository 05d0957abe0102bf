#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Report a cluster's API readiness (/readyz), server version and Node readiness (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_readiness_info
short_description: Report a Kubernetes cluster's readiness, version and Node health
version_added: 0.1.0
description:
  - Reads C(/readyz?verbose) from the API server and lists the checks that fail.
  - Reads the server version (C(/version)) and summarises the Ready condition of every Node in one list call.
  - Never changes anything; safe in check mode.
  - Connection errors and HTTP 5xx/429 answers are retried with exponential back-off for at most
    O(request_timeout) seconds per call; then the module fails naming the URL and the last error.
  - Connection options are those of M(kubernetes.core.k8s_info), through kubernetes.core's client.
options:
  min_version:
    description: Fail unless the server's version is at least this C(major.minor).
    type: str
  require_ready:
    description: Fail when C(/readyz) does not answer C(ok).
    type: bool
    default: true
  require_nodes_ready:
    description: Fail when any Node is not Ready.
    type: bool
    default: false
extends_documentation_fragment:
  - aicluster.platform.k8s_read
  - kubernetes.core.k8s_auth_options
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Check the worker cluster before touching it
  aicluster.platform.k8s_readiness_info:
    kubeconfig: /etc/aicluster/worker.kubeconfig
    min_version: "1.30"
  register: worker_health
"""

RETURN = r"""
version:
  description: Server git version.
  returned: always
  type: str
  sample: v1.36.3
ready:
  description: Whether C(/readyz) answered ok.
  returned: always
  type: bool
failed_checks:
  description: Names of the C(/readyz) checks that failed.
  returned: always
  type: list
  elements: str
nodes:
  description: Node counts and the names of Nodes that are not Ready.
  returned: always
  type: dict
  sample: {total: 6, ready: 6, not_ready: []}
"""

import json
import re

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_client


def parse_readyz(body):
    """Return the names of failed checks in a verbose /readyz body (lines like '[-]etcd failed: ...')."""
    return [m.group(1) for m in re.finditer(r"^\[-\](\S+)", body, re.M)]


def version_tuple(text):
    match = re.match(r"v?(\d+)\.(\d+)", text or "")
    if not match:
        raise ValueError(f"not a Kubernetes version: {text!r}")
    return int(match.group(1)), int(match.group(2))


def summarize_nodes(items):
    not_ready = []
    for node in items:
        conditions = (node.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            not_ready.append(node["metadata"]["name"])
    return {"total": len(items), "ready": len(items) - len(not_ready), "not_ready": sorted(not_ready)}


def _readyz_answer(status, body):
    """A not-ready API server answers /readyz with 500 and the list of its checks: an answer, not a fault."""
    return status == 500 and bool(parse_readyz(body))


def probe(api_client, timeout):
    """Gather version, /readyz and Node readiness through one ApiClient, each call retried on transient faults."""
    def call(path, func):
        return k8s_client.call(api_client, "GET", path, func, timeout)

    text = call("/version", lambda left: k8s_client.get_ok(api_client, "/version", left))[1]
    version = json.loads(text).get("gitVersion", "")
    status, body = call("/readyz?verbose=true",
                        lambda left: k8s_client.get_ok(api_client, "/readyz?verbose=true", left, _readyz_answer))
    core = k8s_client.core_v1_api(api_client)
    response = call("/api/v1/nodes", lambda left: core.list_node(_request_timeout=left, _preload_content=False))
    nodes = json.loads(response.data).get("items") or []
    return {"version": version, "ready": status == 200, "failed_checks": parse_readyz(body),
            "nodes": summarize_nodes(nodes)}


def main():
    module = k8s_client.k8s_module(
        argument_spec={
            "min_version": {"type": "str"},
            "require_ready": {"type": "bool", "default": True},
            "require_nodes_ready": {"type": "bool", "default": False},
            "request_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["min_version"]:
        try:
            minimum = version_tuple(params["min_version"])
        except ValueError as exc:
            module.fail_json(msg=f"min_version: {exc}")
    if params["request_timeout"] < 1:
        module.fail_json(msg="request_timeout must be at least 1 second")

    try:
        api_client = k8s_client.connect(module, params["request_timeout"])
        result = probe(api_client, params["request_timeout"])
    except k8s_client.K8sError as exc:
        module.fail_json(msg=f"cannot read the cluster's state: {exc}")
    except Exception as exc:  # ApiException (401, 403, ...), TLS errors, answers that are not JSON
        module.fail_json(msg=f"cannot read the cluster's state: {k8s_client.error_message(exc)}")

    problems = []
    if params["require_ready"] and not result["ready"]:
        problems.append("API server not ready (failed checks: %s)" % (", ".join(result["failed_checks"]) or "unknown"))
    if params["min_version"] and version_tuple(result["version"]) < minimum:
        problems.append(f"server version {result['version']} is older than the required {params['min_version']}")
    if params["require_nodes_ready"] and result["nodes"]["not_ready"]:
        problems.append("Nodes not Ready: " + ", ".join(result["nodes"]["not_ready"]))
    if problems:
        module.fail_json(msg="; ".join(problems), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
