#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Plan vLLM services on NVIDIA GPUs: check the services against the cluster's Nodes and generate their
Deployments, Services and KEDA ScaledObjects, and what to delete (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vllm_serving_plan
short_description: Check vLLM services against the cluster and generate their Deployments, Services and ScaledObjects
version_added: 0.6.0
description:
  - Turns the inventory's vLLM services (one model each, served by C(vllm serve) with vLLM's OpenAI-compatible API
    on port 8000) into a C(Deployment), a C(Service) and, for a service with a day window, a KEDA
    C(keda.sh/v1alpha1) C(ScaledObject) with a cron trigger - the night count as the minimum, the day count
    between C(day_start) and C(day_end) of the service in O(time_zone).
  - Checks everything first and fails listing every problem, one sentence each naming the service and the field;
    nothing is generated while there is one. Refused among others - a window whose end is its start, a night count
    above the day count, more GPUs per replica than any Node of the GPU type has allocatable, a GPU type that no
    Node carries as its O(gpu_type_label) label, an image that is not pinned (no tag, or C(latest)), a time zone
    that is not an IANA name, a day window when KEDA is not installed, a RuntimeClass or model cache claim that
    does not exist.
  - Reads the cluster once - the Nodes (their O(gpu_type_label) label and allocatable O(gpu_resource)), this role's
    Deployments, Services and ScaledObjects in O(namespace) (labels C(app.kubernetes.io/name=vllm),
    C(app.kubernetes.io/managed-by=aicluster)), the RuntimeClass and the claim - and changes nothing (always
    C(changed=false)).
  - "What exists decides what to delete: every object of this role in the namespace that the plan does not have -
    services with C(state=absent) or no longer listed, the ScaledObject of a service that lost its window, and with
    O(state=absent) all of them (RV(delete)). The model cache claim is never among them."
  - "A windowed Deployment carries no C(spec.replicas): the HPA that KEDA makes owns them. A Deployment created
    windowed, or becoming windowed while O(field_manager) owns its replicas, is handed over instead - applied once
    with its replicas, then the replicas alone under a second field manager (C(<field_manager>-replicas-handover))
    that never applies again (RV(handover)), then again without replicas (RV(handover_objects)) - so that dropping
    the field never resets it to 1 (Kubernetes' server-side apply, \"Transferring ownership\")."
options:
  services:
    description:
      - The vLLM services; each becomes a Deployment and a Service (and a ScaledObject when it has a day window) of
        its name in O(namespace). A null value means the default; unknown keys are refused.
      - "Keys: C(name) (a DNS-1035 label, unique); C(model) (a Hugging Face model id such as
        V(Qwen/Qwen2.5-0.5B-Instruct), or a path in the model cache); C(gpus) (GPUs per replica, default 1, also
        C(--tensor-parallel-size)); C(gpu_type) (the O(gpu_type_label) label value of the Nodes to run on, e.g.
        V(A100)); C(dtype) (V(auto) - the default -, V(half), V(float16), V(bfloat16), V(float), V(float32));
        C(max_model_len) (optional); C(gpu_memory_utilization) (above 0, at most 1, default 0.9); C(image)
        (optional, replaces O(image)); C(extra_args) (more arguments of C(vllm serve); not those generated from the
        keys, nor C(--host) or C(--port)); C(state) (V(present) - the default - or V(absent): only C(name) is
        checked and its objects are deleted)."
      - "Fixed size: C(replicas) (default 1, 0 allowed). Day and night instead, all four together: C(day_start) and
        C(day_end) (quoted C(\"HH:MM\") in O(time_zone); an end before the start crosses midnight; never equal),
        C(day_replicas) (at least 1) and C(night_replicas) (at least 0, at most C(day_replicas))."
    type: list
    elements: dict
    default: []
  state:
    description:
      - V(present) plans the services; V(absent) plans the deletion of every object of this role in O(namespace)
        (the services are then not checked).
    type: str
    choices: [present, absent]
    default: present
  namespace:
    description: Namespace of the services (and of the model cache claim).
    type: str
    default: llm
  time_zone:
    description:
      - IANA name of the time zone the day windows are written in (e.g. V(Europe/Berlin), V(UTC)), given to KEDA's
        cron trigger. Required when a service has a day window.
    type: str
  image:
    description: vLLM's image for every service that names none; pinned (a tag other than C(latest), or a digest).
    type: str
    default: vllm/vllm-openai:v0.11.0
  runtime_class:
    description: RuntimeClass of the pods (must exist); empty - none (NVIDIA is the container runtime's default).
    type: str
    default: nvidia
  gpu_resource:
    description: Extended resource of a GPU, requested per replica and read from the Nodes' allocatable.
    type: str
    default: nvidia.com/gpu
  gpu_type_label:
    description: Node label whose value is the GPU type (the node selector of the pods).
    type: str
    default: gpu-type
  cache_claim:
    description: PersistentVolumeClaim of the model cache in O(namespace), mounted at O(cache_mount); must exist.
    type: str
    default: model-cache
  cache_mount:
    description: Where the model cache is mounted in the container; C(HF_HOME) is its C(huggingface) directory.
    type: str
    default: /data/model-cache
  scale_down_stabilization_seconds:
    description:
      - Seconds the HPA waits before scaling down (the ScaledObject's C(stabilizationWindowSeconds) of
        C(advanced.horizontalPodAutoscalerConfig.behavior.scaleDown)), and KEDA's C(cooldownPeriod) before scaling to
        zero; 0 to 3600.
    type: int
    default: 300
  startup_timeout:
    description: Seconds a replica may take to load its model before the startup probe gives up (at least 10).
    type: int
    default: 1800
  field_manager:
    description: The server-side apply field manager the objects are applied with (whose replicas are handed over).
    type: str
    default: aicluster-vllm-serving
extends_documentation_fragment:
  - aicluster.platform.k8s_read
  - kubernetes.core.k8s_auth_options
seealso:
  - module: aicluster.platform.k8s_objects_gone
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Check the vLLM services and generate their objects
  aicluster.platform.vllm_serving_plan:
    kubeconfig: /etc/aicluster/worker.kubeconfig
    namespace: llm
    time_zone: Europe/Berlin
    services:
      - name: qwen-0-5b
        model: Qwen/Qwen2.5-0.5B-Instruct
        gpu_type: A100
        gpus: 1
        max_model_len: 4096
        day_start: "08:00"
        day_end: "18:00"
        day_replicas: 2
        night_replicas: 1
      - name: old-model
        state: absent
  delegate_to: localhost
  run_once: true
  register: vllm

- name: Apply them server-side
  kubernetes.core.k8s:
    kubeconfig: /etc/aicluster/worker.kubeconfig
    definition: "{{ vllm.objects }}"
    apply: true
    server_side_apply: {field_manager: aicluster-vllm-serving, force_conflicts: true}
  when: vllm.objects | length > 0
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
objects:
  description: The objects to apply, in order - per present service its Deployment, Service and (with a day window)
    ScaledObject.
  returned: success
  type: list
  elements: dict
handover:
  description: Deployments whose replicas are handed over, as C(spec.replicas) alone, to apply (after RV(objects))
    with the field manager C(<field_manager>-replicas-handover); a conflict means the HPA owns them already.
  returned: success
  type: list
  elements: dict
handover_objects:
  description: The same Deployments without C(spec.replicas), to apply after RV(handover) with O(field_manager).
  returned: success
  type: list
  elements: dict
handover_field_manager:
  description: The field manager of RV(handover).
  returned: success
  type: str
  sample: aicluster-vllm-serving-replicas-handover
delete:
  description: Refs of this role's existing objects the plan no longer has, to delete (ScaledObjects first).
  returned: success
  type: list
  elements: dict
  sample: [{apiVersion: keda.sh/v1alpha1, kind: ScaledObject, metadata: {name: old-model, namespace: llm}}]
gone:
  description: What to wait for after the deletion - RV(delete) and the HPAs KEDA made for the ScaledObjects.
  returned: success
  type: list
  elements: dict
gone_selectors:
  description:
    - The pods of the services whose Deployment is deleted, in the form of
      M(aicluster.platform.k8s_objects_gone)'s O(aicluster.platform.k8s_objects_gone#module:selectors).
  returned: success
  type: list
  elements: dict
  sample: [{api_version: v1, kind: Pod, namespace: llm,
            label_selector: "app.kubernetes.io/name=vllm,app.kubernetes.io/instance=old-model"}]
wait:
  description: Per present service, the replicas that must be available - the night count, or the fixed count.
  returned: success
  type: list
  elements: dict
  sample: [{name: qwen-0-5b, namespace: llm, minimum: 1}]
services:
  description: A summary per service (present ones with their GPU type, GPUs, window and counts; absent ones).
  returned: success
  type: dict
  sample: {qwen-0-5b: {state: present, gpu_type: A100, gpus: 1, day: 08:00-18:00 Europe/Berlin, day_replicas: 2,
                       night_replicas: 1}}
gpu_types:
  description: The GPU types the Nodes carry, each with the most O(gpu_resource) one Node of it has allocatable.
  returned: success
  type: dict
  sample: {A100: 8, T4: 2}
problems:
  description: Every problem found, one sentence each (empty on success).
  returned: always
  type: list
  elements: str
  sample: ["service qwen-0-5b: night_replicas 3 is above day_replicas 2: ..."]
"""

import json

from ansible_collections.aicluster.platform.plugins.module_utils import (
    k8s_client,
    k8s_names,
    plan_problems,
    vllm_serving,
)

try:
    from kubernetes.client import AppsV1Api, CoreV1Api, CustomObjectsApi, NodeV1Api
    from kubernetes.client.exceptions import ApiException
except ImportError:
    # k8s_client.k8s_module fails the module with kubernetes.core's message before anything here runs.
    pass

SETTINGS = ("state", "namespace", "time_zone", "image", "runtime_class", "gpu_resource", "gpu_type_label",
            "cache_claim", "cache_mount", "scale_down_stabilization_seconds", "startup_timeout", "field_manager")


def read_cluster(api_client, settings, present, timeout):
    """``(cluster facts, existing objects)``: what :func:`vllm_serving.plan` checks the services against and
    deletes from. Nodes, RuntimeClass and claim only when services are to be present."""
    namespace = settings["namespace"]
    core, apps = CoreV1Api(api_client), AppsV1Api(api_client)
    custom, node_api = CustomObjectsApi(api_client), NodeV1Api(api_client)

    def get(path, func):
        """The JSON answer of a GET or LIST; None for a 404."""
        try:
            response = k8s_client.call(api_client, "GET", path,
                                       lambda t: func(_request_timeout=t, _preload_content=False), timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return json.loads(response.data)

    selector = vllm_serving.SELECTOR
    existing, keda = [], False
    for api_version, kind, path, func in (
        (vllm_serving.DEPLOYMENT_API, "Deployment", f"/apis/apps/v1/namespaces/{namespace}/deployments",
         lambda **kw: apps.list_namespaced_deployment(namespace, label_selector=selector, **kw)),
        (vllm_serving.SERVICE_API, "Service", f"/api/v1/namespaces/{namespace}/services",
         lambda **kw: core.list_namespaced_service(namespace, label_selector=selector, **kw)),
        (vllm_serving.KEDA_API, "ScaledObject", f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects",
         lambda **kw: custom.list_namespaced_custom_object("keda.sh", "v1alpha1", namespace, "scaledobjects",
                                                           label_selector=selector, **kw)),
    ):
        answer = get(f"{path}?labelSelector={selector}", func)
        if kind == "ScaledObject":
            keda = answer is not None
        for item in (answer or {}).get("items") or []:
            existing.append({**item, "apiVersion": api_version, "kind": kind})
    cluster = {"keda": keda}
    if present:
        nodes = get("/api/v1/nodes", core.list_node) or {}
        cluster["gpu_types"] = vllm_serving.gpu_types(nodes.get("items") or [], settings["gpu_type_label"],
                                                      settings["gpu_resource"])
        claim = get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{settings['cache_claim']}",
                    lambda **kw: core.read_namespaced_persistent_volume_claim(settings["cache_claim"], namespace,
                                                                              **kw))
        cluster["claim"] = None if claim is None else ((claim.get("status") or {}).get("phase") or "Pending")
        if settings["runtime_class"]:
            runtime_class = get(f"/apis/node.k8s.io/v1/runtimeclasses/{settings['runtime_class']}",
                                lambda **kw: node_api.read_runtime_class(settings["runtime_class"], **kw))
            cluster["runtime_class"] = runtime_class is not None
    return cluster, existing


def main():
    module = k8s_client.k8s_module(
        argument_spec={
            "services": {"type": "list", "elements": "dict", "default": []},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "namespace": {"type": "str", "default": vllm_serving.DEFAULT_NAMESPACE},
            "time_zone": {"type": "str"},
            "image": {"type": "str", "default": vllm_serving.DEFAULT_IMAGE},
            "runtime_class": {"type": "str", "default": vllm_serving.DEFAULT_RUNTIME_CLASS},
            "gpu_resource": {"type": "str", "default": vllm_serving.DEFAULT_GPU_RESOURCE},
            "gpu_type_label": {"type": "str", "default": vllm_serving.DEFAULT_GPU_TYPE_LABEL},
            "cache_claim": {"type": "str", "default": vllm_serving.DEFAULT_CACHE_CLAIM},
            "cache_mount": {"type": "str", "default": vllm_serving.DEFAULT_CACHE_MOUNT},
            "scale_down_stabilization_seconds": {"type": "int", "default": vllm_serving.DEFAULT_STABILIZATION},
            "startup_timeout": {"type": "int", "default": vllm_serving.DEFAULT_STARTUP_TIMEOUT},
            "field_manager": {"type": "str", "default": vllm_serving.DEFAULT_FIELD_MANAGER},
            "request_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["request_timeout"] < 1:
        module.fail_json(msg="request_timeout must be at least 1 second")
    settings = vllm_serving.settings_defaults({key: params[key] for key in SETTINGS})
    services = params["services"]
    namespace_problems = k8s_names.validate_dns1123_label(settings["namespace"], "namespace")
    if namespace_problems:  # nothing to read the cluster with
        plan_problems.fail_with_problems(module, [f"namespace: {p}" for p in namespace_problems], "vLLM serving")
    present = settings["state"] == "present" and any(
        isinstance(s, dict) and vllm_serving.service_defaults(s).get("state") == "present" for s in services)
    try:
        api_client = k8s_client.connect(module, params["request_timeout"])
        cluster, existing = read_cluster(api_client, settings, present, params["request_timeout"])
    except Exception as exc:  # K8sError (time up), ApiException (401, 403, ...), TLS errors, answers not JSON
        text = str(exc) if isinstance(exc, k8s_client.K8sError) else k8s_client.error_message(exc)
        found = vllm_serving.problems(services, settings)
        also = f"; the settings also have {len(found)} problem(s): {'; '.join(found)}" if found else ""
        module.fail_json(msg=f"cannot read the cluster: {text}{also}", problems=found, changed=False)
    try:
        result = vllm_serving.plan(services, settings, cluster, existing)
    except vllm_serving.VLLMServingError as exc:
        plan_problems.fail_with_problems(module, exc.problems, "vLLM serving")
    module.exit_json(changed=False, problems=[],
                     handover_field_manager=settings["field_manager"] + vllm_serving.HANDOVER_SUFFIX, **result)


if __name__ == "__main__":
    main()
