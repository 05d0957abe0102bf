#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Report a cluster's API readiness (/readyz), server version and Node readiness."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_readiness
short_description: Report a Kubernetes cluster's readiness, version and Node health
version_added: 0.1.0
description:
  - Reads C(/readyz?verbose) from the API server and lists the checks that fail.
  - Reads the server version and summarises the Ready condition of every Node in one list call.
  - Never changes anything; safe in check mode.
options:
  kubeconfig:
    description: Path to a kubeconfig file. Falls back to E(K8S_AUTH_KUBECONFIG), E(KUBECONFIG), then in-cluster config.
    type: path
  context:
    description: Context in the kubeconfig to use.
    type: str
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
author:
  - AI cluster platform maintainers
"""

EXAMPLES = r"""
- name: Check the worker cluster before touching it
  aicluster.platform.k8s_readiness:
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

import re

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.aicluster.platform.plugins.module_utils.k8s_client import (
    K8S_AUTH_ARGSPEC,
    K8S_IMPORT_ERROR,
    load_api_client,
    raw_get,
)


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


def probe(api_client):
    """Gather version, /readyz and Node readiness through one ApiClient."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    version = client.VersionApi(api_client).get_code().git_version
    try:
        status, body = raw_get(api_client, "/readyz?verbose=true")
        ready = status == 200
    except ApiException as exc:
        body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
        ready = False
    nodes = api_client.sanitize_for_serialization(client.CoreV1Api(api_client).list_node().items)
    return {"version": version, "ready": ready, "failed_checks": parse_readyz(body), "nodes": summarize_nodes(nodes)}


def main():
    argument_spec = dict(
        K8S_AUTH_ARGSPEC,
        min_version={"type": "str"},
        require_ready={"type": "bool", "default": True},
        require_nodes_ready={"type": "bool", "default": False},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if K8S_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=K8S_IMPORT_ERROR)
    params = module.params
    if params["min_version"]:
        try:
            minimum = version_tuple(params["min_version"])
        except ValueError as exc:
            module.fail_json(msg=f"min_version: {exc}")

    try:
        api_client = load_api_client(params["kubeconfig"], params["context"])
        result = probe(api_client)
    except Exception as exc:  # the client raises many types; all mean "cannot reach the cluster"
        module.fail_json(msg=f"cannot read cluster state from {params['kubeconfig'] or 'default config'}: {exc}")

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
