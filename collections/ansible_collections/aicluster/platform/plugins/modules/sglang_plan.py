#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Plan SGLang inference applications on Ascend NPUs: validate models, runtimes and applications, and
generate the OME objects MindCluster schedules (control host, no cluster)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sglang_plan
short_description: Validate SGLang applications and generate their OME objects for MindCluster (no cluster)
version_added: 0.4.0
description:
  - Turns the inventory's models, runtimes and applications into OME v1beta1 objects, in apply order
    (ClusterBaseModel, ClusterServingRuntime, then one InferenceService per application), for prefill/decode
    disaggregated SGLang on Ascend NPUs scheduled by Huawei MindCluster (Volcano).
  - Checks everything first and fails listing every problem, one sentence each naming the model, runtime or
    application and the field; nothing is generated while there is one.
  - MindCluster's settings (its SGLang guide's table of ClusterServingRuntime fields) are generated on every
    prefill (OME engine) and decode (OME decoder) pod, in Deployment mode on the component, in LeaderWorkerSet
    mode on its leader and worker - C(schedulerName=volcano), node selector C(accelerator-type) (and
    C(host-arch)), C(huawei.com/Ascend910) requests = limits = the server's chips, C(ASCEND_VISIBLE_DEVICES)
    from the pod annotation C(huawei.com/Ascend910), the driver directory C(/usr/local/Ascend/driver) from
    the host, labels C(fault-scheduling), C(pod-rescheduling=on) and C(fault-retry-times), annotation
    C(sp-block) (SuperPoD only).
  - The runtime's component C(labels)/C(annotations) carry them, because OME copies a component's labels and
    annotations to its Deployment or LeaderWorkerSet and their pod templates (it never reads the runtime's own
    metadata). In Deployment mode each InferenceService's C(engine)/C(decoder) annotations carry
    C(huawei.com/schedule_minAvailable) = that component's instance count, which OME merges over the runtime's.
  - Every object carries the label C(app.kubernetes.io/managed-by=aicluster); an application's objects also
    C(aicluster.io/sglang-app=<name>) (OME copies the InferenceService's labels to its workloads and pods).
  - Runs on the control host and talks to no cluster; changes nothing (always C(changed=false)).
options:
  models:
    description:
      - Models, each becoming a ClusterBaseModel of the same name (a DNS-1123 label).
      - "Keys: C(name); C(format) (e.g. V(safetensors)); C(architecture) (e.g. V(LlamaForCausalLM));
        C(parameter_size) (optional, e.g. V(1B), V(7.5B)); C(path) (absolute, without C(..), under
        O(model_root); OME mounts it from the node at the same path and passes it as C(MODEL_PATH));
        C(framework) (default V(transformers), as OME requires one); C(storage_uri) (optional, default C(local://<path>))."
    type: list
    elements: dict
    default: []
  runtimes:
    description:
      - Runtimes, each becoming a ClusterServingRuntime of the same name (a DNS-1123 label).
      - "Keys: C(name); C(accelerator_type) (V(module-910b-8) Atlas 800I A2, 8 chips; V(module-a3-16) Atlas 800I
        A3, 16; V(module-a3-16-super-pod) Atlas 900 A3 SuperPoD, 16); C(mode) (V(deployment): an instance is
        one pod on one server; V(leaderworkerset): an instance spans C(nodes_per_instance) servers, a leader and
        workers); C(nodes_per_instance) (1 in deployment mode, at least 2 - the default - with
        leaderworkerset); C(chips_per_pod) (optional; must equal the server's chips); C(host_arch) (optional,
        V(huawei-arm) or V(huawei-x86)); C(fault_scheduling) (V(grace), V(force) - the default - or V(off));
        C(pod_rescheduling) (default V(true): label C(pod-rescheduling=on); V(false) only with
        C(fault_scheduling=off)); C(fault_retry_times) (optional positive integer); C(sp_block) (optional,
        SuperPoD only: a multiple of 16 that divides an instance's chips)."
      - "C(images) (C(engine) required, C(decoder) defaults to it, C(router) needed by applications with a router
        unless they name one); C(model_formats) (list of C(format), C(architecture), C(framework) - default
        V(transformers): the models the runtime serves, matched as OME's runtime selector does); C(server_port)
        (default 8080, the SGLang servers' port and the router's service discovery port); C(router_port) (default 8080);
        C(dist_init_port) (default 5757, leaderworkerset); C(tp_size) (default chips_per_pod x
        nodes_per_instance); C(engine_args), C(decoder_args), C(router_args) (extra arguments appended to the
        generated C(sglang.launch_server) / C(sglang_router.launch_router) commands); C(env) (name -> value for
        the SGLang containers); C(resources) (C(requests)/C(limits) of the SGLang containers besides the chips);
        C(router_resources) (default limits C(cpu=1), C(memory=2Gi)); C(router_on_npu_nodes) (default V(false):
        the router, which needs no NPU, is kept off Nodes labelled C(accelerator-type))."
    type: list
    elements: dict
    default: []
  applications:
    description:
      - Applications, each becoming an InferenceService of the same name in its namespace.
      - "Keys: C(name) (a DNS-1035 label, short enough for the names OME and LeaderWorkerSet derive from it; the
        failure says how short); C(namespace) (default V(default)); C(model) and C(runtime) (names above; the
        model must match one of the runtime's C(model_formats)); C(prefill) and C(decode) (instances of each,
        at least 1); C(router) (router replicas, default 1; 0 deploys no router); C(images) (optional
        C(engine)/C(decoder)/C(router) overrides of the runtime's images; the decoder's defaults to the
        engine's); C(min_available) (optional, deployment mode only, C(prefill)/C(decode) equal to the counts:
        the value is generated anyway; refused with a leaderworkerset runtime); C(state) (V(present) - the
        default - or V(absent): only its name and namespace are checked, and its InferenceService is listed in
        RV(absent)); a null value means the default, for every key of a model, runtime or application."
    type: list
    elements: dict
    default: []
  model_root:
    description: Directory every model's C(path) must be under (the nodes' data directory).
    type: str
    default: /data/k8s
  only:
    description:
      - Narrow the result to these applications (names, or C(namespace/name) when a name is in several
        namespaces) and the models and runtimes they use - one application deployed, previewed or deleted by name.
      - Everything is still checked; a name that matches no application is a problem.
    type: list
    elements: str
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Plan the SGLang applications
  aicluster.platform.sglang_plan:
    model_root: /data/k8s
    models:
      - name: llama-3-2-1b-instruct
        format: safetensors
        architecture: LlamaForCausalLM
        parameter_size: 1B
        path: /data/k8s/models/llama-3-2-1b-instruct
    runtimes:
      - name: srt-a2-pd
        accelerator_type: module-910b-8
        mode: deployment
        fault_scheduling: force
        fault_retry_times: 3
        images:
          engine: registry.example/sglang:v0.5.5-cann8.2-910b
          router: registry.example/sgl-router:v0.2.4
        model_formats:
          - {format: safetensors, architecture: LlamaForCausalLM}
      - name: srt-superpod-lws
        accelerator_type: module-a3-16-super-pod
        mode: leaderworkerset
        nodes_per_instance: 2
        sp_block: 32
        images:
          engine: registry.example/sglang:v0.5.5-cann8.2-a3
          router: registry.example/sgl-router:v0.2.4
        model_formats:
          - {format: safetensors, architecture: LlamaForCausalLM}
    applications:
      - name: chat
        namespace: inference
        model: llama-3-2-1b-instruct
        runtime: srt-a2-pd
        prefill: 2
        decode: 1
      - name: old-chat
        namespace: inference
        state: absent
  delegate_to: localhost
  run_once: true
  register: sglang

- name: Apply them server-side (OME CRDs are large)
  kubernetes.core.k8s:
    definition: "{{ item }}"
    apply: true
    server_side_apply: {field_manager: aicluster}
  loop: "{{ sglang.objects }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
objects:
  description: The objects to apply, in order - ClusterBaseModels, ClusterServingRuntimes, then the InferenceService
    of each present application.
  returned: success
  type: list
  elements: dict
applications:
  description: Per application (C(namespace/name), absent ones too), the refs (apiVersion, kind, metadata name and
    namespace) of its objects.
  returned: success
  type: dict
  sample: {inference/chat: [{apiVersion: ome.io/v1beta1, kind: InferenceService,
                              metadata: {name: chat, namespace: inference}}]}
absent:
  description: Refs of the objects of the applications with C(state=absent), to delete.
  returned: success
  type: list
  elements: dict
absent_selectors:
  description:
    - The workloads and pods of the applications with C(state=absent), by OME's label
      C(ome.io/inferenceservice=<name>) (Deployments, LeaderWorkerSets, Pods), in the form of
      M(aicluster.platform.k8s_objects_gone)'s O(aicluster.platform.k8s_objects_gone#module:selectors).
  returned: success
  type: list
  elements: dict
  sample: [{api_version: v1, kind: Pod, namespace: inference, label_selector: ome.io/inferenceservice=old-chat}]
namespaces:
  description: Namespaces the present applications live in (they must exist before their objects are applied).
  returned: success
  type: list
  elements: str
  sample: [inference]
problems:
  description: Every problem found, one sentence each (empty on success).
  returned: always
  type: list
  elements: str
  sample: ["runtime srt-a3: sp_block 24 is not a multiple of the node's 16 chips"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aicluster.platform.plugins.module_utils import plan_problems, sglang


def main():
    module = AnsibleModule(
        argument_spec={
            "models": {"type": "list", "elements": "dict", "default": []},
            "runtimes": {"type": "list", "elements": "dict", "default": []},
            "applications": {"type": "list", "elements": "dict", "default": []},
            "model_root": {"type": "str", "default": sglang.DEFAULT_MODEL_ROOT},
            "only": {"type": "list", "elements": "str"},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = sglang.plan(params["models"], params["runtimes"], params["applications"], params["model_root"],
                             params["only"])
    except sglang.SGLangError as exc:
        plan_problems.fail_with_problems(module, exc.problems, "SGLang")
    module.exit_json(changed=False, problems=[], **result)


if __name__ == "__main__":
    main()
