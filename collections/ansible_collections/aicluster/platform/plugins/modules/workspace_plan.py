#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Plan the users' workspaces: check the users against the cluster and generate each one's Namespace, RoleBinding,
ResourceQuota, LimitRange, PersistentVolumes and claims - only those that differ - and what becomes of the
workspaces of users no longer listed; check the users' jobs (Helm releases of charts/userchart) against their
quota and the cluster's GPU types (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: workspace_plan
short_description: Check the users' workspaces against the cluster and generate the objects that differ
version_added: 0.7.0
description:
  - Turns the inventory's users into workspaces - per user a C(Namespace) named after the user (the name, or its part
    before C(@)), a C(RoleBinding) C(workspace-edit) giving the ClusterRole O(cluster_role) in that namespace to the
    user and their groups (C(User) and C(Group) subjects as the identity provider names them, OIDC or LDAP through
    the API server), a C(ResourceQuota) C(workspace-quota) (CPU, memory, GPUs per resource name, claims count and
    storage), a C(LimitRange) C(workspace-defaults) (container defaults, so that a pod without limits is admitted
    and counted) and four claims C(home), C(gfshome), C(share), C(ssdshare), each bound to its own
    C(PersistentVolume) C(<namespace>-<claim>) (ReadWriteMany, Retain, pre-bound by C(claimRef)) on NFS or under
    O(host_path_root).
  - Checks everything first and fails listing every problem, one sentence each naming the user and the field;
    nothing is generated while there is one. Refused among others - a name that is not a namespace name (capitals,
    C(_)), two users mapping to one namespace, a storage quota below the claims' sizes, fewer than four claims in
    the quota, a default container limit above the quota, a GPU type no Node carries as its O(gpu_type_label)
    label, a namespace that exists and is not a workspace, a volume whose storage would change.
  - Reads the cluster once - Nodes (GPU types), Namespaces, PersistentVolumes, and the workspaces' ResourceQuotas,
    LimitRanges, RoleBindings and claims (label C(aicluster.io/workspace=true)) - and changes nothing (always
    C(changed=false)). Returns only the objects that are missing or differ (RV(apply)), so that a converged run
    applies nothing.
  - A workspace (label C(aicluster.io/workspace=true)) whose user is no longer listed is deleted - its Namespace
    and its PersistentVolumes (RV(delete)) - only with O(remove_data=true); otherwise it is kept and reported
    (RV(kept)). The volumes' files are never deleted (reclaim policy Retain).
  - A claim's size cannot change once it is bound to a pre-made volume (Kubernetes refuses it), so an existing
    claim keeps its size and RV(notes) says so.
  - Also checks the users' jobs (O(jobs)) - Helm releases of the repository's job chart C(charts/userchart), which
    the caller installs in the user's namespace after applying the workspaces (a job of a new workspace is fine) -
    and returns them with their namespace and values (RV(jobs)). Their problems are listed with the users', one
    sentence each naming the job (C(job <user>/<name>)); nothing is returned while there is one.
options:
  users:
    description:
      - The users, one workspace each. A null value means the default; unknown keys are refused.
      - "Keys: C(name) (required; the namespace name - a DNS-1123 label, no capitals or C(_) - optionally followed by
        C(@domain): the namespace is the part before C(@), the RoleBinding names the whole), C(groups) (group names
        as the identity provider gives them), C(quota) (C(cpu), C(memory), C(gpus) - a count of the first of
        O(gpu_resources) or a dict of resource name to count -, C(pvcs), C(storage); over O(default_quota)),
        C(gpu_types) (the GPU types the user may use, each a O(gpu_type_label) label value some Node carries;
        recorded in the namespace annotation C(aicluster.io/gpu-types); null - any), C(storage) (claim sizes over
        those of O(claims), e.g. C({gfshome: 2Ti}))."
    type: list
    elements: dict
    default: []
  remove_data:
    description:
      - Delete the workspaces (Namespace and PersistentVolumes) of users no longer listed. With V(false) they are
        kept and listed in RV(kept).
    type: bool
    default: false
  user_prefix:
    description: The API server's C(--oidc-username-prefix), put before each user's name in the RoleBinding.
    type: str
    default: ""
  group_prefix:
    description: The API server's C(--oidc-groups-prefix), put before each group name in the RoleBinding.
    type: str
    default: ""
  user_domain:
    description:
      - Added as C(@<user_domain>) to the RoleBinding's user names that have no domain (when the API server's
        username claim is an e-mail address); empty - none.
    type: str
    default: ""
  cluster_role:
    description: ClusterRole bound in each workspace.
    type: str
    default: edit
  default_quota:
    description:
      - The quota of users that give none (their C(quota) fields go over it) - C(cpu), C(memory), C(gpus), C(pvcs)
        (at least 4, the claims count), C(storage) (at least the claims' sizes together).
    type: dict
    default: {cpu: "8", memory: 32Gi, gpus: 0, pvcs: 10, storage: 1Ti}
  container_defaults:
    description:
      - The LimitRange's container defaults - C(cpu) and C(memory) (limits), C(request_cpu) and C(request_memory)
        (requests, at most the limits). The limits must fit in every user's quota.
    type: dict
    default: {cpu: "1", memory: 2Gi, request_cpu: 100m, request_memory: 256Mi}
  claims:
    description:
      - The four claims, each C(size), C(path) and C(nfs_server), merged over the defaults field by field.
        C({user}) in a path is the user's namespace (required in the personal claims C(home) and C(gfshome)).
        With C(nfs_server) the volume is NFS C(<nfs_server>:<path>) (the directory must exist on the server);
        without, a hostPath under O(host_path_root) (created on first use).
      - "Defaults: C(home) 20Gi C(/data/k8s/home/{user}), C(gfshome) 200Gi C(/data/k8s/gfshome/{user}),
        C(share) 100Gi C(/data/k8s/share), C(ssdshare) 100Gi C(/data/k8s/ssdshare)."
    type: dict
    default: {}
  host_path_root:
    description: The filesystem every Node shares; hostPath volumes must be under it.
    type: str
    default: /data/k8s
  gpu_type_label:
    description: Node label whose values are the GPU types a user's C(gpu_types) may name.
    type: str
    default: gpu-type
  gpu_resources:
    description:
      - GPU resource names every ResourceQuota limits (C(requests.<name>), 0 unless the user has some); an integer
        C(gpus) counts the first.
    type: list
    elements: str
    default: [nvidia.com/gpu]
  jobs:
    description:
      - Jobs installed from the job chart C(charts/userchart) in listed users' namespaces. A null value means the
        default; unknown keys are refused.
      - "Keys: C(user) (required; the C(name) of a user in O(users)), C(name) (required; the Helm release name, a
        DNS-1123 label of at most 53 characters, unique among the user's jobs), C(values) (a dict of the chart's
        values, default C({}); C(NameSpace) is set to the user's namespace - if given and not empty, it must be
        that), C(state) (V(present), the default, or V(absent))."
      - "A present job whose C(Limits.GPU) is above 0 must name in C(GPU) a GPU type some Node carries as its
        O(gpu_type_label) label and, when the user's C(gpu_types) are limited, one of those; C(Limits.GPU) x
        C(Replicas) must fit in the user's GPU quota (of the first of O(gpu_resources))."
      - "A present job's claims must fit in the user's quota - C(pvcs) at least the 4 workspace claims plus one
        scratch volume per C(Scratch.MountPaths) entry and replica, C(storage) at least the workspace claims' sizes
        plus C(NVMEStorage) per scratch volume: the scratch volumes are generic ephemeral volumes, which count
        against the namespace's quota."
      - "Values left out are the chart's defaults (C(Replicas) 1, C(Limits.GPU) 0, C(GPU) RTX4090D,
        C(NVMEStorage) 100G, C(Scratch.MountPaths) C([/scratch1, /scratch2])). Other type errors in C(values) are
        left to the chart's C(values.schema.json) (checked by C(helm install)); the quota is then not counted,
        nor while the user's own settings have a problem (it is listed already)."
    type: list
    elements: dict
    default: []
extends_documentation_fragment:
  - aicluster.platform.k8s_read
  - kubernetes.core.k8s_auth_options
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Check the users and generate their workspaces
  aicluster.platform.workspace_plan:
    kubeconfig: /etc/aicluster/worker.kubeconfig
    user_domain: iiis.co
    claims:
      home: {nfs_server: nas.example.org, path: "/export/home/{user}"}
    users:
      - name: alice
        groups: [llm-course]
        quota: {cpu: 16, memory: 64Gi, gpus: 2, storage: 2Ti}
        gpu_types: [A100]
        storage: {gfshome: 1Ti}
      - name: bob
  delegate_to: localhost
  run_once: true
  register: workspaces

- name: Apply what differs, server-side
  kubernetes.core.k8s:
    kubeconfig: /etc/aicluster/worker.kubeconfig
    definition: "{{ workspaces.apply }}"
    apply: true
    server_side_apply: {field_manager: aicluster-workspaces, force_conflicts: true}
  when: workspaces.apply | length > 0
  delegate_to: localhost
  run_once: true

- name: Check two jobs of alice with the users
  aicluster.platform.workspace_plan:
    kubeconfig: /etc/aicluster/worker.kubeconfig
    users:
      - name: alice
        quota: {gpus: 4, pvcs: 12, storage: 2Ti}
        gpu_types: [A100]
    jobs:
      - user: alice
        name: train
        values: {BaseName: llama, GPU: A100, Limits: {GPU: 2}, Replicas: 2, Command: [sleep, infinity]}
      - user: alice
        name: old-notebook
        state: absent
  delegate_to: localhost
  run_once: true
  register: jobs_plan

- name: Install or uninstall the jobs (after applying the workspaces)
  kubernetes.core.helm:
    kubeconfig: /etc/aicluster/worker.kubeconfig
    release_name: "{{ item.release }}"
    release_namespace: "{{ item.namespace }}"
    release_state: "{{ item.state }}"
    chart_ref: "{{ playbook_dir }}/../charts/userchart"
    release_values: "{{ item['values'] }}"
  loop: "{{ jobs_plan.jobs }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
apply:
  description:
    - The objects that are missing or differ from the cluster's, in order - per user Namespace, ResourceQuota,
      LimitRange, RoleBinding, PersistentVolumes, PersistentVolumeClaims. Empty when converged.
  returned: success
  type: list
  elements: dict
recreate:
  description:
    - Refs of Released PersistentVolumes of listed users (their claim was deleted), to delete before the apply
      re-creates them (the files stay).
  returned: success
  type: list
  elements: dict
delete:
  description: With O(remove_data), refs of the Namespaces and PersistentVolumes of workspaces whose user is gone.
  returned: success
  type: list
  elements: dict
  sample: [{apiVersion: v1, kind: Namespace, metadata: {name: carol}}]
kept:
  description: Without O(remove_data), the workspaces whose user is gone, kept.
  returned: success
  type: list
  elements: dict
  sample: [{namespace: carol, user: carol, namespace_exists: true, volumes: [carol-gfshome, carol-home]}]
workspaces:
  description:
    - Per namespace, the user, C(state) (V(new), V(changed), V(unchanged), V(kept), V(deleted)), the login and
      groups bound, the quota, GPU types and claims.
  returned: success
  type: dict
notes:
  description: Claims that keep their size (a claim bound to a pre-made volume cannot be resized).
  returned: success
  type: list
  elements: str
gpu_types:
  description: The GPU types the Nodes carry.
  returned: success
  type: list
  elements: str
  sample: [A100, T4]
jobs:
  description:
    - The jobs of O(jobs), in their order, as the caller installs them - C(user), C(namespace) (the user's),
      C(release) (the job's name), C(state) (V(present) or V(absent)) and C(values) (the job's values with
      C(NameSpace) set to the namespace).
  returned: success
  type: list
  elements: dict
  sample:
    - {user: alice, namespace: alice, release: train, state: present,
       values: {GPU: A100, Limits: {GPU: 2}, Replicas: 2, NameSpace: alice}}
counts:
  description: Workspaces, objects generated, to apply, unchanged, to re-create, to delete, kept; jobs.
  returned: success
  type: dict
  sample: {workspaces: 200, objects: 2400, apply: 0, unchanged: 2400, recreate: 0, delete: 0, kept: 1, jobs: 3}
problems:
  description: Every problem found, one sentence each (empty on success).
  returned: always
  type: list
  elements: str
  sample: ["user Alice_B: name 'Alice_B' is not a valid namespace name (no capitals, no '_'): ..."]
"""


from ansible_collections.aicluster.platform.plugins.module_utils import k8s_client, plan_problems, workspaces

try:
    from kubernetes.client import CoreV1Api, RbacAuthorizationV1Api
except ImportError:
    # k8s_client.k8s_module fails the module with kubernetes.core's message before anything here runs.
    pass

SETTINGS = ("remove_data", "user_prefix", "group_prefix", "user_domain", "cluster_role", "default_quota",
            "container_defaults", "claims", "host_path_root", "gpu_type_label", "gpu_resources")


def read_cluster(api_client, timeout):
    """What :func:`workspaces.plan` checks the users against: every Node (for their GPU types), Namespace and
    PersistentVolume, and the workspaces' namespaced objects (label aicluster.io/workspace=true), as raw JSON with
    their kind."""
    core, rbac = CoreV1Api(api_client), RbacAuthorizationV1Api(api_client)
    selector = workspaces.SELECTOR

    def items(path, kind, func):
        api_version = "rbac.authorization.k8s.io/v1" if kind == "RoleBinding" else "v1"
        return [{**item, "apiVersion": api_version, "kind": kind}
                for item in k8s_client.list_items(api_client, path, func, timeout)]

    nodes = items("/api/v1/nodes", "Node", core.list_node)
    cluster = {
        "nodes": nodes,
        "namespaces": items("/api/v1/namespaces", "Namespace", core.list_namespace),
        "persistentvolumes": items("/api/v1/persistentvolumes", "PersistentVolume", core.list_persistent_volume),
        "objects": [],
    }
    for path, kind, func in (
        ("/api/v1/resourcequotas", "ResourceQuota", core.list_resource_quota_for_all_namespaces),
        ("/api/v1/limitranges", "LimitRange", core.list_limit_range_for_all_namespaces),
        ("/apis/rbac.authorization.k8s.io/v1/rolebindings", "RoleBinding",
         rbac.list_role_binding_for_all_namespaces),
        ("/api/v1/persistentvolumeclaims", "PersistentVolumeClaim",
         core.list_persistent_volume_claim_for_all_namespaces),
    ):
        cluster["objects"] += items(f"{path}?labelSelector={selector}", kind,
                                    lambda func=func, **kw: func(label_selector=selector, **kw))
    return cluster


def main():
    module = k8s_client.k8s_module(
        argument_spec={
            "users": {"type": "list", "elements": "dict", "default": []},
            "remove_data": {"type": "bool", "default": False},
            "user_prefix": {"type": "str", "default": ""},
            "group_prefix": {"type": "str", "default": ""},
            "user_domain": {"type": "str", "default": ""},
            "cluster_role": {"type": "str", "default": "edit"},
            "default_quota": {"type": "dict", "default": dict(workspaces.DEFAULT_QUOTA)},
            "container_defaults": {"type": "dict", "default": dict(workspaces.DEFAULT_CONTAINER)},
            "claims": {"type": "dict", "default": {}},
            "host_path_root": {"type": "str", "default": workspaces.DEFAULT_HOST_PATH_ROOT},
            "gpu_type_label": {"type": "str", "default": workspaces.DEFAULT_GPU_TYPE_LABEL},
            "gpu_resources": {"type": "list", "elements": "str", "default": [workspaces.DEFAULT_GPU_RESOURCE]},
            "jobs": {"type": "list", "elements": "dict", "default": []},
            "request_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["request_timeout"] < 1:
        module.fail_json(msg="request_timeout must be at least 1 second")
    settings = {key: params[key] for key in SETTINGS}
    users, jobs = params["users"], params["jobs"]
    try:
        api_client = k8s_client.connect(module, params["request_timeout"])
        cluster = read_cluster(api_client, params["request_timeout"])
    except Exception as exc:  # K8sError (time up), ApiException (401, 403, ...), TLS errors, answers not JSON
        text = str(exc) if isinstance(exc, k8s_client.K8sError) else k8s_client.error_message(exc)
        found = workspaces.problems(users, settings, jobs=jobs)
        also = f"; the settings also have {len(found)} problem(s): {'; '.join(found)}" if found else ""
        module.fail_json(msg=f"cannot read the cluster: {text}{also}", problems=found, changed=False)
    label = settings["gpu_type_label"] if isinstance(settings["gpu_type_label"], str) else ""
    cluster["gpu_types"] = workspaces.gpu_types(cluster.pop("nodes"), label)
    try:
        result = workspaces.plan(users, settings, cluster, jobs)
    except workspaces.WorkspaceError as exc:
        plan_problems.fail_with_problems(module, exc.problems, "workspace")
    module.exit_json(changed=False, problems=[], **result)


if __name__ == "__main__":
    main()
