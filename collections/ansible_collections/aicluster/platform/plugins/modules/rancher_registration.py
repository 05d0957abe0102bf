#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Read a Rancher cluster's registration command and which machines are already members."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rancher_registration
short_description: Read a Rancher cluster's registration command and the fleet's membership, in one pass
version_added: 0.1.0
description:
  - Verifies the Rancher CA against O(ca_checksum) (sha256 of C(<url>/cacerts), Rancher's own trust model) and then
    pins that CA for every API call.
  - Finds the cluster by name, reads its registration token (creating one when the cluster has none) and returns the
    C(nodeCommand) split into what a machine runs without a shell, with the worker flags of each machine appended
    (C(--worker --node-name --label --taints), optional C(--address)/C(--internal-address)).
  - Looks every machine up in Rancher with one node list call (by machine id, then node name or hostname) and reports
    per machine whether it is a member (node in Rancher AND its local agent active, as probed by the caller).
  - The registration token never appears in a join's command line; it is returned in the join's C(env)
    (E(CATTLE_TOKEN)), which Rancher's install script and agent read when C(--token) is absent.
  - Run it once, on the control host, for all machines of the play.
options:
  cluster_name:
    description: Name of the Rancher cluster to join (as shown in Rancher's UI).
    type: str
    required: true
  flow:
    description:
      - C(rke2) for an RKE2/K3s custom cluster (system-agent-install.sh), C(rke1) for an RKE1 cluster
        (C(docker run rancher/rancher-agent)). Must match the cluster's provider.
    type: str
    choices: [rke2, rke1]
    default: rke2
  create_token:
    description: Create a registration token when the cluster has none (reported as changed).
    type: bool
    default: true
  machines:
    description: The machines to look up and plan joins for.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Key of the machine in the result (the inventory hostname).
        type: str
        required: true
      node_name:
        description: Kubernetes Node name to register (C(--node-name)).
        type: str
        required: true
      hostname:
        description: The machine's hostname.
        type: str
      machine_id:
        description: The machine's C(/etc/machine-id); the strongest membership key.
        type: str
      labels:
        description: Labels given at registration (C(--label k=v)).
        type: dict
        default: {}
      taints:
        description: Taints given at registration, C(key[=value]:Effect).
        type: list
        elements: str
        default: []
      address:
        description: C(--address) (IP or interface).
        type: str
      internal_address:
        description: C(--internal-address) (IP or interface).
        type: str
      agent_active:
        description: Whether the machine's Rancher agent is running (probed on the machine by the caller).
        type: bool
        default: false
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
- name: Read the registration command and who is already a member
  aicluster.platform.rancher_registration:
    url: https://rancher.example.com
    api_token: "{{ rancher_api_token }}"
    ca_checksum: "{{ rancher_ca_checksum }}"
    cluster_name: worker
    machines:
      - name: gpu-a100-01
        node_name: gpu-a100-01
        machine_id: 67c6a408964d6838e9622561d9b2e456
        labels: {aicluster.io/pool: inference}
        taints: ["nvidia.com/gpu=present:NoSchedule"]
        agent_active: false
  run_once: true
  delegate_to: localhost
  no_log: true
  register: registration

- name: Give the Rancher connection once for every Rancher module (action group)
  module_defaults:
    group/aicluster.platform.rancher:
      url: https://rancher.example.com
      api_token: "{{ rancher_api_token }}"
      ca_checksum: "{{ rancher_ca_checksum }}"
  block:
    - name: Membership only, no token created
      aicluster.platform.rancher_registration:
        cluster_name: worker
        create_token: false
      run_once: true
      delegate_to: localhost
      no_log: true
      register: registration
"""

RETURN = r"""
cluster_id:
  description: Rancher id of the cluster.
  returned: success
  type: str
  sample: c-m-h6w57e0u
provider:
  description: The cluster's provider (rke2, k3s or rke).
  returned: success
  type: str
ca_checksum:
  description: The checksum that was verified (empty when none was given).
  returned: success
  type: str
registration_token:
  description: The registration token (secret; register the task with no_log).
  returned: when the cluster has one
  type: str
node_command:
  description: Rancher's nodeCommand as the API returns it (secret).
  returned: when the cluster has a token
  type: str
insecure_node_command:
  description: Rancher's insecureNodeCommand (RKE2; use only after the CA checksum matched).
  returned: when the cluster has a token
  type: str
machines:
  description:
    - Per machine name, C(member) (in Rancher and agent active), C(in_rancher), C(agent_active), C(node) (the Rancher
      node), C(problems) (invalid labels/taints/name) and, for machines that are not members, C(join).
    - C(join) is C({script_url, args, env}) for rke2 and C({argv, env}) for rke1. C(args) and C(argv) hold no
      token; C(env) maps E(CATTLE_TOKEN) to the registration token (secret), and the join must run with it in its
      environment.
  returned: success
  type: dict
"""

from ansible_collections.aicluster.platform.plugins.module_utils import rancher_module
from ansible_collections.aicluster.platform.plugins.module_utils.rancher_api import (
    RancherError,
    find_node,
    flow_of,
    join_plan,
    node_summary,
    validate_machine,
)

MACHINE_SPEC = {
    "name": {"type": "str", "required": True},
    "node_name": {"type": "str", "required": True},
    "hostname": {"type": "str"},
    "machine_id": {"type": "str"},
    "labels": {"type": "dict", "default": {}},
    "taints": {"type": "list", "elements": "str", "default": []},
    "address": {"type": "str"},
    "internal_address": {"type": "str"},
    "agent_active": {"type": "bool", "default": False},
}


def plan(client, params, check_mode=False):
    cluster = client.cluster_by_name(params["cluster_name"])
    flow = flow_of(cluster.get("provider") or cluster.get("driver"))
    if flow != params["flow"]:
        want = "rke1" if flow == "rke1" else "rke2"
        raise RancherError(f"cluster {cluster['name']} is an {(cluster.get('provider') or '?').upper()} cluster; "
                           f"set rancher_worker_flow: {want} (flow {params['flow']} was requested)")
    token, missing = client.registration_token(cluster["id"], create=params["create_token"] and not check_mode)
    changed = bool(missing and params["create_token"])
    nodes = client.cluster_nodes(cluster["id"]) if params["machines"] else []
    result = {"changed": changed, "cluster_id": cluster["id"], "provider": cluster.get("provider"),
              "ca_checksum": client.verified_checksum, "machines": {}}
    if token:
        result.update(registration_token=token["token"], node_command=token.get("nodeCommand", ""),
                      insecure_node_command=token.get("insecureNodeCommand", ""))
    for machine in params["machines"]:
        node = find_node(nodes, machine)
        entry = {"in_rancher": node is not None, "agent_active": bool(machine.get("agent_active")),
                 "node": node_summary(node), "problems": validate_machine(machine)}
        entry["member"] = entry["in_rancher"] and entry["agent_active"]
        if not entry["member"] and token and not entry["problems"]:
            entry["join"] = join_plan(token["nodeCommand"], flow, machine)
        result["machines"][machine["name"]] = entry
    return result


def check(params):
    names = [m["name"] for m in params["machines"]]
    if len(names) != len(set(names)):
        return "machines: each name must appear once"
    return None


def main():
    rancher_module.run(
        {
            "cluster_name": {"type": "str", "required": True},
            "flow": {"type": "str", "choices": ["rke2", "rke1"], "default": "rke2"},
            "create_token": {"type": "bool", "default": True},
            "machines": {"type": "list", "elements": "dict", "default": [], "options": MACHINE_SPEC},
        },
        plan,
        check,
    )


if __name__ == "__main__":
    main()
