#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Remove machines' nodes from a Rancher cluster (node removal)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rancher_node
short_description: Delete machines' nodes from a Rancher cluster, in one pass
version_added: 0.1.0
description:
  - Looks the machines up with one node list call (by machine id, then node name or hostname) and deletes each
    node that exists through C(DELETE /v3/nodes/<id>). Rancher then removes the Node from the downstream cluster
    and the node's agent stops.
  - Machines without a node in Rancher are reported as absent and not changed. Supports check mode.
  - Same connection options and CA checksum model as M(aicluster.platform.rancher_registration).
options:
  cluster_name:
    description: Name of the Rancher cluster.
    type: str
    required: true
  state:
    description: Only C(absent) (remove) is supported; joining is the registration command's job.
    type: str
    choices: [absent]
    default: absent
  machines:
    description: Machines whose nodes to remove.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Key of the machine in the result (the inventory hostname).
        type: str
        required: true
      node_name:
        description: Kubernetes Node name.
        type: str
        required: true
      hostname:
        description: The machine's hostname.
        type: str
      machine_id:
        description: The machine's C(/etc/machine-id).
        type: str
attributes:
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
author:
  - AI cluster platform maintainers (@aicluster)
extends_documentation_fragment:
  - aicluster.platform.rancher
"""

EXAMPLES = r"""
- name: Delete the nodes from Rancher
  aicluster.platform.rancher_node:
    url: https://rancher.example.com
    api_token: "{{ rancher_api_token }}"
    ca_checksum: "{{ rancher_ca_checksum }}"
    cluster_name: worker
    state: absent
    machines:
      - {name: gpu-a100-01, node_name: gpu-a100-01}
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
cluster_id:
  description: Rancher id of the cluster.
  returned: success
  type: str
removed:
  description: Machine names whose node was deleted (or would be, in check mode).
  returned: success
  type: list
  elements: str
machines:
  description: Per machine name, C(removed) and the C(node) that was found (or null).
  returned: success
  type: dict
"""

from ansible_collections.aicluster.platform.plugins.module_utils import rancher_module
from ansible_collections.aicluster.platform.plugins.module_utils.rancher_api import find_node, node_summary

MACHINE_SPEC = {
    "name": {"type": "str", "required": True},
    "node_name": {"type": "str", "required": True},
    "hostname": {"type": "str"},
    "machine_id": {"type": "str"},
}


def remove(client, params, check_mode=False):
    cluster = client.cluster_by_name(params["cluster_name"])
    nodes = client.cluster_nodes(cluster["id"])
    result = {"changed": False, "cluster_id": cluster["id"], "removed": [], "machines": {}}
    for machine in params["machines"]:
        node = find_node(nodes, machine)
        if node is not None:
            if not check_mode:
                client.delete_node(node["id"])
            nodes = [n for n in nodes if n is not node]
            result["removed"].append(machine["name"])
            result["changed"] = True
        result["machines"][machine["name"]] = {"removed": node is not None, "node": node_summary(node)}
    return result


def main():
    rancher_module.run(
        {
            "cluster_name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["absent"], "default": "absent"},
            "machines": {"type": "list", "elements": "dict", "required": True, "options": MACHINE_SPEC},
        },
        remove,
    )


if __name__ == "__main__":
    main()
