#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Ensure kubelet extra binds in an RKE1 cluster's configuration through Rancher's API."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rancher_cluster_config
short_description: Ensure kubelet extraBinds in an RKE1 cluster's rancherKubernetesEngineConfig
version_added: 0.1.0
description:
  - Reads the cluster by name and appends the missing entries of O(kubelet_extra_binds) to
    C(rancherKubernetesEngineConfig.services.kubelet.extraBinds), keeping every existing entry and its order.
  - One C(PUT /v3/clusters/<id>) only when something is missing; nothing otherwise. Check mode and diff supported.
  - RKE1's kubelet runs in a container, so a hostPath under a directory the kubelet cannot see (here C(/data/k8s))
    needs the bind (rancher/rancher#14836).
  - Same connection options and CA checksum model as M(aicluster.platform.rancher_registration).
options:
  cluster_name:
    description: Name of the RKE1 cluster.
    type: str
    required: true
  kubelet_extra_binds:
    description: Entries C(host-path:container-path[:options]) that must be present.
    type: list
    elements: str
    required: true
attributes:
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
author:
  - AI cluster platform maintainers (@aicluster)
extends_documentation_fragment:
  - aicluster.platform.rancher
"""

EXAMPLES = r"""
- name: The RKE1 kubelet sees /data/k8s
  aicluster.platform.rancher_cluster_config:
    url: https://rancher.example.com
    api_token: "{{ rancher_api_token }}"
    ca_checksum: "{{ rancher_ca_checksum }}"
    cluster_name: worker-rke1
    kubelet_extra_binds: ["/data/k8s:/data/k8s"]
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
cluster_id:
  description: Rancher id of the cluster.
  returned: success
  type: str
extra_binds:
  description: The kubelet extraBinds after the change (or as they would be, in check mode).
  returned: success
  type: list
  elements: str
added:
  description: Entries that were (or would be) added.
  returned: success
  type: list
  elements: str
"""

from ansible_collections.aicluster.platform.plugins.module_utils import rancher_module
from ansible_collections.aicluster.platform.plugins.module_utils.rancher_api import (
    RancherError,
    extra_binds_change,
    with_extra_binds,
)


def ensure(client, params, check_mode=False):
    cluster = client.cluster_by_name(params["cluster_name"])
    before, after = extra_binds_change(cluster, params["kubelet_extra_binds"])
    added = after[len(before):]
    result = {"changed": bool(added), "cluster_id": cluster["id"], "extra_binds": after, "added": added,
              "diff": {"before": {"extraBinds": before}, "after": {"extraBinds": after},
                       "before_header": f"{cluster['name']} kubelet extraBinds",
                       "after_header": f"{cluster['name']} kubelet extraBinds"}}
    if added and not check_mode:
        updated = client.update_cluster(cluster, {"rancherKubernetesEngineConfig": with_extra_binds(cluster, after)})
        confirmed = extra_binds_change(updated, params["kubelet_extra_binds"])[1]
        missing = [b for b in params["kubelet_extra_binds"] if b not in confirmed]
        if missing:
            raise RancherError(f"Rancher accepted the update of {cluster['name']} but its kubelet extraBinds still "
                               f"lack {', '.join(missing)}")
    return result


def check(params):
    bad = [b for b in params["kubelet_extra_binds"] if ":" not in b or not b.startswith("/")]
    if bad:
        return f"kubelet_extra_binds entries must be '/host/path:/container/path[:options]': {bad}"
    return None


def main():
    rancher_module.run(
        {
            "cluster_name": {"type": "str", "required": True},
            "kubelet_extra_binds": {"type": "list", "elements": "str", "required": True},
        },
        ensure,
        check,
    )


if __name__ == "__main__":
    main()
