#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Plan a Ray Serve application on KubeRay: check the settings, the login users and the cluster's GPUs, and render the
RayService (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ray_serve_plan
short_description: Check a Ray Serve application's settings against the cluster and render its KubeRay RayService
version_added: 0.6.0
description:
  - Turns the settings of one Ray Serve application (the role C(ray_serve)) into a KubeRay C(ray.io/v1) RayService -
    C(serveConfigV2) (the Serve config as YAML text) and C(rayClusterConfig) (a head group and the enabled worker
    groups, every pod with the model cache claim mounted and the login Secret as C(envFrom)).
  - Checks everything first and fails listing every problem, one sentence each naming the setting, the worker group or
    the user; nothing is rendered while there is one. Refused among others - a user without a password, a password
    shorter than O(auth_password_min_length), a C(gpu_type) that is not the O(gpu_type_label) label of any Node, more
    C(gpus) per worker than any Node of that type has allocatable, no enabled GPU worker group, an image that is not
    pinned (no tag, or C(latest)), a RayService name KubeRay refuses (not a DNS-1035 label, over 47 characters).
  - Passwords are never part of a message or of the result (the users come back as names and roles).
  - Reads the cluster and changes nothing - the Nodes (one list call, for their GPU types and allocatable
    GPUs), the model cache claim (it must exist; in check mode a missing claim is only a warning) and the login Secret,
    whose data's sha256 goes on every pod template as the annotation C(aicluster.io/auth-config-checksum), so that a
    changed Secret brings up a new RayCluster whose pods read it (environment from C(envFrom) is read when a container
    starts). The Secret's content is never returned.
  - With O(state=absent) only the name, namespace and Secret name are checked and nothing is read; RV(removal) says what
    to delete and wait for.
options:
  state:
    description: V(present) checks and renders; V(absent) only returns RV(removal).
    type: str
    choices: [present, absent]
    default: present
  name:
    description: Name of the RayService (a DNS-1035 label of at most 47 characters, as KubeRay requires).
    type: str
    required: true
  namespace:
    description: Namespace of the RayService, the model cache claim and the login Secret.
    type: str
    default: llm
  image:
    description: The Serve image (Ray, vLLM, the application and the package C(aicluster_serve_auth)), pinned to a tag
      other than C(latest) or to a digest. Required with O(state=present).
    type: str
  image_pull_policy:
    description: Pull policy of the Ray containers.
    type: str
    choices: [IfNotPresent, Always, Never]
    default: IfNotPresent
  image_pull_secrets:
    description: Names of Secrets to pull the image with (e.g. a private registry's C(regcred)).
    type: list
    elements: str
    default: []
  ray_version:
    description: The image's Ray version (C(rayClusterConfig.rayVersion)).
    type: str
    default: "2.42.0"
  cache_claim:
    description: The model cache PersistentVolumeClaim (role C(model_cache)) mounted into every pod.
    type: str
    default: model-cache
  cache_mount:
    description: Where the model cache is mounted in the pods (also C(HF_HOME)).
    type: str
    default: /data/model-cache
  application:
    description: The Serve application (C(serveConfigV2)); a null value means the default.
    type: dict
    suboptions:
      name:
        description: Application name (shown by Ray and in the RayService's status).
        type: str
        default: Dolphin3.0
      import_path:
        description: C(module:attribute) of the application in the working directory.
        type: str
        default: serve:model
      route_prefix:
        description: HTTP route prefix (C(/) or C(/path) without a trailing C(/)).
        type: str
        default: /
      working_dir:
        description: The runtime env's C(working_dir) (a zip in the image, or a remote URI); empty - none.
        type: str
        default: file:///home/ray/serve.zip
      deployment:
        description: Name of the deployment the autoscaling settings apply to (the seed's C(VLLMDeployment)).
        type: str
        default: VLLMDeployment
      model_id:
        description: C(MODEL_ID) - the model (Hugging Face id or a path under the model cache).
        type: str
        default: Valdemardi/Dolphin3.0-R1-Mistral-24B-AWQ
      model_name:
        description: C(MODEL_NAME) - the model's name in the API's answers.
        type: str
        default: Dolphin3.0
      tensor_parallelism:
        description: C(TENSOR_PARALLELISM).
        type: int
        default: 1
      pipeline_parallelism:
        description: C(PIPELINE_PARALLELISM).
        type: int
        default: 2
      min_replicas:
        description: The deployment's C(autoscaling_config.min_replicas) (and C(initial_replicas)).
        type: int
        default: 1
      max_replicas:
        description: The deployment's C(autoscaling_config.max_replicas).
        type: int
        default: 1
      target_ongoing_requests:
        description: The deployment's C(autoscaling_config.target_ongoing_requests).
        type: float
        default: 2.0
      deployment_ready_timeout_s:
        description: The seed's deployment ready timeout, kept on the deployment; the role waits this long for Ready.
        type: int
        default: 1200
      env:
        description: More runtime env variables of the application (besides the four generated ones).
        type: dict
        default: {}
  head:
    description: The head group's pod.
    type: dict
    suboptions:
      cpu:
        description: CPU of the head container (requests = limits).
        type: raw
        default: "4"
      memory:
        description: Memory of the head container (requests = limits).
        type: raw
        default: 8Gi
      node_selector:
        description: Node labels the head pod requires.
        type: dict
        default: {}
      tolerations:
        description: Tolerations of the head pod (Kubernetes form).
        type: list
        elements: dict
        default: []
  worker_groups:
    description:
      - Worker groups; the disabled ones are left out of the RayService. At least one enabled group needs GPUs.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The group's name (C(groupName), a DNS-1123 label).
        type: str
      enabled:
        description: Whether the group is part of the RayService.
        type: bool
        default: true
      replicas:
        description: Worker pods of the group.
        type: int
        default: 1
      min_replicas:
        description: C(minReplicas) (default - O(worker_groups[].replicas)).
        type: int
      max_replicas:
        description: C(maxReplicas) (default - O(worker_groups[].replicas)).
        type: int
      gpus:
        description: GPUs per worker pod (O(gpu_resource) requests = limits); 0 for a CPU group.
        type: int
        default: 1
      gpu_type:
        description: The O(gpu_type_label) label value of the Nodes the workers must run on (e.g. V(A100)); empty - any
          Node with the GPUs.
        type: str
        default: ""
      cpu:
        description: CPU per worker (requests = limits).
        type: raw
        default: "8"
      memory:
        description: Memory per worker (requests = limits).
        type: raw
        default: 24Gi
      node_selector:
        description: More Node labels the workers require.
        type: dict
        default: {}
      tolerations:
        description: Tolerations of the worker pods (Kubernetes form).
        type: list
        elements: dict
        default: []
  gpu_resource:
    description: The GPU extended resource.
    type: str
    default: nvidia.com/gpu
  gpu_type_label:
    description: The Node label naming the GPU model (role C(node_labels) sets C(gpu-type)).
    type: str
    default: gpu-type
  runtime_class:
    description: RuntimeClass of the GPU workers (role C(nvidia_device_plugin) creates C(nvidia)); empty - none.
    type: str
    default: nvidia
  auth_secret:
    description: The login Secret the pods take with C(envFrom) (written by M(aicluster.platform.serve_auth_secret)).
    type: str
    default: auth-config
  auth_users:
    description: The login users, checked here (only the names and roles are returned).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Login name.
        type: str
      password:
        description: Password (from the vaulted inventory).
        type: str
      role:
        description: Role, e.g. V(admin), V(user).
        type: str
  auth_password_min_length:
    description: Shortest password accepted (at least 8, the Secret module's own minimum).
    type: int
    default: 12
extends_documentation_fragment:
  - aicluster.platform.k8s_read
  - kubernetes.core.k8s_auth_options
seealso:
  - module: aicluster.platform.serve_auth_secret
  - module: aicluster.platform.k8s_objects_gone
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Check the Ray Serve settings and render the RayService
  aicluster.platform.ray_serve_plan:
    kubeconfig: /etc/aicluster/kubeconfig/worker.yaml
    name: llm-serve
    namespace: llm
    image: registry.example.internal/vllm-0.6.5-ray-2.42.0-py310-cu121-serve:1.1.2
    application:
      name: Dolphin3.0
      model_id: Valdemardi/Dolphin3.0-R1-Mistral-24B-AWQ
      model_name: Dolphin3.0
      tensor_parallelism: 1
      pipeline_parallelism: 2
    worker_groups:
      - {name: a100, replicas: 2, gpus: 1, gpu_type: A100}
      - {name: t4, enabled: false, replicas: 1, gpus: 1, gpu_type: T4}
    auth_users: "{{ ray_serve_auth_users }}"  # vaulted passwords
  delegate_to: localhost
  run_once: true
  register: ray_serve

- name: Apply it
  kubernetes.core.k8s:
    definition: "{{ ray_serve.ray_service }}"
    apply: true
    server_side_apply: {field_manager: aicluster-ray-serve}
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
ray_service:
  description: The RayService to apply (server-side).
  returned: success and O(state=present)
  type: dict
removal:
  description:
    - What O(state=absent) deletes and waits for - C(objects) (the RayService), C(selectors) (its RayClusters by
      KubeRay's C(ray.io/originated-from-cr-name) label, its pods by C(aicluster.io/ray-serve)), in the form of
      M(aicluster.platform.k8s_objects_gone)'s options, and C(secret) (the login Secret's reference).
  returned: success
  type: dict
worker_pods:
  description: Worker pods the enabled groups make.
  returned: success and O(state=present)
  type: int
  sample: 2
worker_groups:
  description: Names of the enabled worker groups.
  returned: success and O(state=present)
  type: list
  elements: str
users:
  description: The login users, names and roles only.
  returned: success and O(state=present)
  type: list
  elements: dict
  sample: [{name: alice, role: admin}, {name: bob, role: user}]
gpu_types:
  description: The Nodes' GPU types and the most GPUs allocatable on one Node of each.
  returned: success and O(state=present)
  type: dict
  sample: {A100: 8, T4: 2}
pod_selector:
  description: Label selector of every pod of the RayService.
  returned: success
  type: str
  sample: aicluster.io/ray-serve=llm-serve
auth_checksum:
  description: sha256 of the login Secret's data (empty when there is no Secret yet).
  returned: success and O(state=present)
  type: str
problems:
  description: Every problem found, one sentence each (empty on success).
  returned: always
  type: list
  elements: str
  sample: ["worker group a100: gpus 16 is more than any Node has: the Nodes with gpu-type=A100 have at most 8 ..."]
"""

import json

from ansible_collections.aicluster.platform.plugins.module_utils import (
    k8s_client,
    k8s_names,
    k8s_secrets,
    plan_problems,
    ray_serve,
)

try:
    from kubernetes.client.exceptions import ApiException
except ImportError:
    # k8s_client.k8s_module fails the module with kubernetes.core's message before anything here runs.
    pass

SETTINGS = ("name", "namespace", "image", "image_pull_policy", "image_pull_secrets", "ray_version", "cache_claim",
            "cache_mount", "application", "head", "worker_groups", "gpu_resource", "gpu_type_label", "runtime_class",
            "auth_secret", "auth_users", "auth_password_min_length")
WHAT = "Ray Serve"


def absent_problems(params):
    found = [f"name: {p}" for p in k8s_names.validate_dns1123_label(params["name"], "name")]
    found += [f"namespace: {p}" for p in k8s_names.validate_dns1123_label(params["namespace"], "namespace")]
    found += [f"auth_secret: {p}" for p in k8s_names.validate_dns1123_subdomain(params["auth_secret"], "auth_secret")]
    return found


def read_cluster(module, params):
    """``(Node list items, whether the claim exists, the login Secret's data or None)``."""
    timeout = params["request_timeout"]
    namespace = params["namespace"]
    api = k8s_client.connect(module, timeout)
    core = k8s_client.core_v1_api(api)
    response = k8s_client.call(api, "GET", "/api/v1/nodes",
                               lambda t: core.list_node(_request_timeout=t, _preload_content=False), timeout)
    nodes = json.loads(response.data).get("items") or []
    claim = params["cache_claim"]
    try:
        k8s_client.call(api, "GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}",
                        lambda t: core.read_namespaced_persistent_volume_claim(
                            claim, namespace, _request_timeout=t, _preload_content=False), timeout)
        claim_exists = True
    except ApiException as exc:
        if exc.status != 404:
            raise
        claim_exists = False
    secret = k8s_secrets.read(api, namespace, params["auth_secret"], timeout)
    return nodes, claim_exists, (secret.get("data") or {}) if secret is not None else None


def main():
    user_options = {
        "name": {"type": "str"},
        "password": {"type": "str", "no_log": True},
        "role": {"type": "str"},
    }
    module = k8s_client.k8s_module(
        argument_spec={
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "name": {"type": "str", "required": True},
            "namespace": {"type": "str", "default": "llm"},
            "image": {"type": "str"},
            "image_pull_policy": {"type": "str", "choices": list(ray_serve.PULL_POLICIES), "default": "IfNotPresent"},
            "image_pull_secrets": {"type": "list", "elements": "str", "default": [], "no_log": False},
            "ray_version": {"type": "str", "default": "2.42.0"},
            "cache_claim": {"type": "str", "default": "model-cache"},
            "cache_mount": {"type": "str", "default": "/data/model-cache"},
            "application": {"type": "dict", "apply_defaults": True, "options": {
                "name": {"type": "str", "default": "Dolphin3.0"},
                "import_path": {"type": "str", "default": "serve:model"},
                "route_prefix": {"type": "str", "default": "/"},
                "working_dir": {"type": "str", "default": "file:///home/ray/serve.zip"},
                "deployment": {"type": "str", "default": "VLLMDeployment"},
                "model_id": {"type": "str", "default": "Valdemardi/Dolphin3.0-R1-Mistral-24B-AWQ"},
                "model_name": {"type": "str", "default": "Dolphin3.0"},
                "tensor_parallelism": {"type": "int", "default": 1},
                "pipeline_parallelism": {"type": "int", "default": 2},
                "min_replicas": {"type": "int", "default": 1},
                "max_replicas": {"type": "int", "default": 1},
                "target_ongoing_requests": {"type": "float", "default": 2.0},
                "deployment_ready_timeout_s": {"type": "int", "default": 1200},
                "env": {"type": "dict", "default": {}},
            }},
            "head": {"type": "dict", "apply_defaults": True, "options": {
                "cpu": {"type": "raw", "default": "4"},
                "memory": {"type": "raw", "default": "8Gi"},
                "node_selector": {"type": "dict", "default": {}},
                "tolerations": {"type": "list", "elements": "dict", "default": []},
            }},
            "worker_groups": {"type": "list", "elements": "dict", "default": [], "options": {
                "name": {"type": "str"},
                "enabled": {"type": "bool", "default": True},
                "replicas": {"type": "int", "default": 1},
                "min_replicas": {"type": "int"},
                "max_replicas": {"type": "int"},
                "gpus": {"type": "int", "default": 1},
                "gpu_type": {"type": "str", "default": ""},
                "cpu": {"type": "raw", "default": "8"},
                "memory": {"type": "raw", "default": "24Gi"},
                "node_selector": {"type": "dict", "default": {}},
                "tolerations": {"type": "list", "elements": "dict", "default": []},
            }},
            "gpu_resource": {"type": "str", "default": "nvidia.com/gpu"},
            "gpu_type_label": {"type": "str", "default": "gpu-type"},
            "runtime_class": {"type": "str", "default": "nvidia"},
            "auth_secret": {"type": "str", "default": "auth-config", "no_log": False},
            # Only the passwords are secret: names and roles show in messages and results.
            "auth_users": {"type": "list", "elements": "dict", "default": [], "options": user_options},
            "auth_password_min_length": {"type": "int", "default": 12, "no_log": False},
            "request_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["state"] == "absent":
        found = absent_problems(params)
        if found:
            plan_problems.fail_with_problems(module, found, WHAT)
        module.exit_json(changed=False, problems=[], removal=ray_serve.removal(
            params["name"], params["namespace"], params["auth_secret"]),
            pod_selector=f"{ray_serve.APP_LABEL}={params['name']}")
    settings = {key: params[key] for key in SETTINGS}
    # What can be checked without the cluster is checked first: bad input is named even when the cluster cannot be read.
    offline = ray_serve.problems(settings)
    try:
        nodes, claim_exists, secret_data = read_cluster(module, params)
    except Exception as exc:  # K8sError, ApiException (401, 403, ...), TLS errors
        error = str(exc) if isinstance(exc, k8s_client.K8sError) else k8s_client.error_message(exc)
        plan_problems.fail_with_problems(module, [*offline, f"cannot read the cluster: {error}"], WHAT)
    found = ray_serve.problems(settings, nodes)
    claim = f"{params['namespace']}/{params['cache_claim']}"
    if not claim_exists:
        message = f"the model cache claim {claim} does not exist (role model_cache makes it)"
        if module.check_mode:
            module.warn(f"{message}; a real run would stop here")
        else:
            found.append(message)
    if found:
        plan_problems.fail_with_problems(module, found, WHAT)
    checksum = ray_serve.auth_checksum(secret_data) if secret_data is not None else ""
    result = ray_serve.plan(settings, nodes, checksum or None)
    module.exit_json(changed=False, problems=[], auth_checksum=checksum, **result)


if __name__ == "__main__":
    main()
