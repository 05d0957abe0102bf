#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Plan Kubeocean cluster bindings and resource leasing policies: validate the inventory and generate the
ClusterBindings and ResourceLeasingPolicies (control host, no cluster)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kubeocean_plan
short_description: Validate Kubeocean bindings and leasing policies and generate their objects (no cluster)
version_added: 0.4.0
description:
  - Turns the inventory's Kubeocean bindings (one per worker cluster lent to the manager cluster) and resource
    leasing policies into C(cloud.tencent.com/v1beta1) objects - a C(ClusterBinding) per binding, for the manager
    cluster, and a C(ResourceLeasingPolicy) per policy, for the binding's worker cluster - in apply order.
  - Checks everything first and fails listing every problem, one sentence each naming the binding or policy and
    the field; nothing is generated while there is one. Refused among others - a C(cluster_id) with capitals or
    over 24 characters, a time that is not C("HH:MM") (C(25:00), or C(18:00) unquoted, which YAML reads as a
    number), a window whose start equals its end, an unknown day name, a percent over 100, a fractional quantity
    of an extended resource such as C(nvidia.com/gpu), a policy naming a cluster that is not bound (or naming a
    binding's C(cluster_id) instead of its name), a worker address the manager cannot reach (loopback, in-cluster
    service names, not C(https://)), two bindings of one C(cluster_id) or one server, two policies of a binding
    that select the same Nodes (Kubeocean applies only the earliest-created policy to a Node).
  - "Time zone: Kubeocean evaluates the windows in the manager cluster's Nodes' local time (its manager and syncer
    mount the host's C(/etc/localtime)). Kubernetes does not publish a Node's time zone (no label, annotation or
    status field, and Kubeocean adds none), so the module takes it explicitly (O(time_zone), required when a
    policy has time windows, checked against the IANA database) and compares it with what the role finds on the
    manager hosts themselves (O(observed_time_zones)); a different clock is refused. Different names of the same
    clock (C(UTC) and C(Etc/UTC)) are accepted."
  - Every object carries the label C(app.kubernetes.io/managed-by=aicluster-kubeocean); each policy also
    C(aicluster.io/kubeocean-binding=<binding name>), and, when it has time windows, the annotation
    C(aicluster.io/kubeocean-time-zone=<time_zone>) that records the zone its windows were written for; each
    ClusterBinding the annotation C(aicluster.io/kubeocean-worker-cluster=<worker_cluster>), so that an unbind
    finds its worker cluster after the binding left the inventory.
  - C(timeWindows), C(resourceLimits) and C(forceReclaim) are always generated, also empty or false, so that
    applying a policy again clears what was removed from inventory (apply server-side, as in the example).
  - Runs on the control host and talks to no cluster; changes nothing (always C(changed=false)).
options:
  bindings:
    description:
      - Bindings, one per worker cluster; each becomes a C(ClusterBinding) of the same name in the manager cluster.
      - "Keys: C(name) (a DNS-1123 label: the ClusterBinding's name, which the policies' C(cluster) must equal and
        Kubeocean puts on every vnode as the label C(kubeocean.io/cluster-binding)); C(cluster_id) (Kubeocean's
        C(clusterID): lower-case letters, digits and C(-), at most 24 characters, unique; it names the vnodes
        C(vnode-<cluster_id>-<node>) and the binding's syncer and proxier; immutable once applied); C(server)
        (the worker API server's C(https://) address as the manager cluster's pods reach it, written into the
        kubeconfig by M(aicluster.platform.kubeocean_worker_kubeconfig)); C(node_selector) (required: the worker
        Nodes that become vnodes, as labels - C({kubeocean.io/role: worker}), a value or a list of values per
        key, every key required - or as a Kubernetes NodeSelector with C(nodeSelectorTerms));
        C(mount_namespace) (default V(kubeocean-worker), where the worker runs the lent pods); C(secret_name)
        (default C(<name>-kubeconfig): the kubeconfig Secret in O(system_namespace)); C(worker_cluster) (default
        V(worker): the inventory's name of the worker cluster, one of O(clusters) when that is given - the
        cluster the role applies the binding's policies to and reads the syncer's token from)."
      - "Optional, generated only when given (Kubeocean's defaults otherwise): C(service_namespaces) (list of
        namespaces), C(disable_node_default_taint) (V(true) drops the C(kubeocean.io/vnode:NoSchedule) taint),
        C(pod_priority_class_name) (default in Kubeocean C(kubeocean-default), value -10000),
        C(running_daemonset_by_default), C(direct_scheduling)."
      - C(policies) - the binding's leasing policies, in the form of O(policies) without C(cluster) (they lend
        this binding's worker; a C(cluster) given anyway must be the binding's name). This is the recommended
        form - the policy cannot name the wrong binding.
      - A null value means the default, for every key of a binding or policy.
    type: list
    elements: dict
    default: []
  policies:
    description:
      - Leasing policies kept apart from the bindings (e.g. when the worker's owner maintains them); each becomes a
        C(ResourceLeasingPolicy) in the worker cluster of the binding its C(cluster) names. They come after the
        nested ones of the same binding.
      - "Keys: C(name) (a DNS-1123 subdomain, unique per binding); C(cluster) (required here: the binding's
        C(name), not its C(cluster_id) - Kubeocean matches C(spec.cluster) to the ClusterBinding's name);
        C(node_selector) (optional, same forms as the binding's; ANDed with it; omitted - every Node of the
        binding); C(time_windows) (list of C(start) and C(end) as quoted C(\"HH:MM\") - an end before the start
        crosses midnight - and C(days), day names C(Monday) to C(Sunday) in any case, omitted - every day; no
        windows - lent at all times); C(resource_limits) (list of C(resource), e.g. V(cpu), V(memory),
        V(nvidia.com/gpu), with C(quantity) (a Kubernetes quantity, whole units for extended resources) and/or
        C(percent) (0 to 100) - the smaller wins; resources not listed are lent in full); C(force_reclaim)
        (V(true) - outside the windows the vnode's taint is C(NoExecute) and the lent pods are deleted;
        default V(false) - C(NoSchedule) only); C(graceful_period) (seconds before that deletion, only with
        C(force_reclaim))."
      - Where a Node matches several policies, Kubeocean applies only the earliest-created one.
    type: list
    elements: dict
    default: []
  time_zone:
    description:
      - IANA name of the time zone of the manager cluster's Nodes, in which Kubeocean evaluates the time windows
        (e.g. V(Asia/Shanghai), V(UTC)). Required when a policy has time windows.
    type: str
  observed_time_zones:
    description:
      - What the manager Nodes say their time zone is, Node (or host) name -> IANA name or the target of their
        C(/etc/localtime) link (e.g. C(/usr/share/zoneinfo/Asia/Shanghai), as C(readlink -f /etc/localtime) or
        C(timedatectl show -p Timezone --value) print); empty values are skipped.
      - Each must be the clock of O(time_zone); an abbreviation such as C(CST) cannot be compared and is refused.
    type: dict
    default: {}
  clusters:
    description:
      - The inventory's cluster names (the keys of C(aicluster_clusters)); a binding's C(worker_cluster) must be one.
        Not checked when not given.
    type: list
    elements: str
  system_namespace:
    description: The manager's namespace (chart C(kubeocean)), where the ClusterBindings' kubeconfig Secrets live.
    type: str
    default: kubeocean-system
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
seealso:
  - module: aicluster.platform.kubeocean_worker_kubeconfig
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Plan the Kubeocean bindings
  aicluster.platform.kubeocean_plan:
    time_zone: Asia/Shanghai
    observed_time_zones: "{{ manager_time_zones }}"  # e.g. from timedatectl on the manager hosts
    bindings:
      - name: gpu-west
        cluster_id: cls-gpu-west
        server: https://10.20.0.10:6443
        node_selector: {kubeocean.io/role: worker}
        policies:
          - name: gpu-west-nights
            force_reclaim: true
            graceful_period: 300
            time_windows:
              - {start: "18:00", end: "08:00", days: [Monday, Tuesday, Wednesday, Thursday, Friday]}
              - {start: "00:00", end: "23:59", days: [Saturday, Sunday]}
            resource_limits:
              - {resource: cpu, quantity: "96", percent: 90}
              - {resource: memory, percent: 95}
              - {resource: nvidia.com/gpu, quantity: "4"}
  delegate_to: localhost
  run_once: true
  register: kubeocean

- name: Apply each binding's leasing policies to its worker cluster
  kubernetes.core.k8s:
    kubeconfig: "{{ worker_kubeconfigs[item.0.name] }}"
    definition: "{{ item.1 }}"
    apply: true
    server_side_apply: {field_manager: aicluster-kubeocean}
  loop: "{{ kubeocean.bindings | subelements('worker_objects') }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
bindings:
  description:
    - Per binding, in inventory order, what to do in this order - apply C(worker_objects) (its
      ResourceLeasingPolicies) to its worker cluster; write the kubeconfig Secret C(secret) into the manager
      cluster (M(aicluster.platform.kubeocean_worker_kubeconfig) with C(server)); apply C(manager_objects)
      (its ClusterBinding) to the manager cluster.
  returned: success
  type: list
  elements: dict
  sample:
    - name: gpu-west
      cluster_id: cls-gpu-west
      server: https://10.20.0.10:6443
      worker_cluster: worker
      secret: {namespace: kubeocean-system, name: gpu-west-kubeconfig}
      worker_objects: [{apiVersion: cloud.tencent.com/v1beta1, kind: ResourceLeasingPolicy}]
      manager_objects: [{apiVersion: cloud.tencent.com/v1beta1, kind: ClusterBinding}]
objects:
  description:
    - All objects in apply order - every binding's ResourceLeasingPolicies (for the worker cluster its
      C(spec.cluster) names), then the ClusterBindings (for the manager cluster, each after its Secret).
  returned: success
  type: list
  elements: dict
time_zone:
  description: The time zone the windows are written for (null when not given).
  returned: success
  type: str
  sample: Asia/Shanghai
problems:
  description: Every problem found, one sentence each (empty on success).
  returned: always
  type: list
  elements: str
  sample: ["binding gpu-west: cluster_id cls-gpu-west-datacenter-one has 28 characters, Kubeocean allows at most 24"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aicluster.platform.plugins.module_utils import kubeocean, plan_problems


def main():
    module = AnsibleModule(
        argument_spec={
            "bindings": {"type": "list", "elements": "dict", "default": []},
            "policies": {"type": "list", "elements": "dict", "default": []},
            "time_zone": {"type": "str"},
            "observed_time_zones": {"type": "dict", "default": {}},
            "system_namespace": {"type": "str", "default": kubeocean.SYSTEM_NAMESPACE},
            "clusters": {"type": "list", "elements": "str"},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = kubeocean.plan(params["bindings"], params["policies"], params["time_zone"],
                                params["observed_time_zones"], params["system_namespace"], params["clusters"])
    except kubeocean.KubeoceanError as exc:
        plan_problems.fail_with_problems(module, exc.problems, "Kubeocean")
    module.exit_json(changed=False, problems=[], **result)


if __name__ == "__main__":
    main()
