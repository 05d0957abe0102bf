# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Ray Serve on KubeRay (v1.5, ``ray.io/v1``), the pure part: the inventory's settings, every problem they have,
and the RayService they become. No Ansible, no API calls: the module (ray_serve_plan) reads the Nodes and hands
them in.

What is generated, from the seed (KubeRay chart values + Serve application JSON + ``auth-config`` Secret):

* ``spec.serveConfigV2``: the Serve config as the YAML text KubeRay passes to the Ray dashboard - one application
  (``name``, ``import_path``, ``route_prefix``, ``runtime_env`` with ``working_dir`` and ``env_vars`` MODEL_ID,
  TENSOR_PARALLELISM, PIPELINE_PARALLELISM, MODEL_NAME) and one deployment. Ray 2.42's ``ServeApplicationSchema``
  has no ``autoscaling_config`` (the seed's application-level one is ignored by Ray), so it is generated where
  Ray reads it, on the deployment, without ``num_replicas`` (Ray refuses both). The seed's
  ``deployment_ready_timeout_s`` is kept on the deployment as the seed has it (Ray 2.42 ignores unknown deployment
  keys); the role uses it as the bound of its wait for the RayService to be Ready.
* ``spec.rayClusterConfig``: ``rayVersion``, a head group (``rayStartParams`` dashboard-host 0.0.0.0 and
  num-cpus 0: the head runs no replicas) and one worker group per enabled inventory group; every pod mounts the
  model cache claim at the cache mount (``HF_HOME`` points there) and takes the login Secret with ``envFrom``;
  GPU workers get the GPU resource as requests and limits, the node selector ``<gpu type label>=<gpu_type>``, the
  runtime class and the group's tolerations.

Every function returns problems as sentences naming the setting (never a password), or :func:`plan` raises
:class:`RayServeError` with all of them before anything is generated.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_names, plan_problems

RAY_API = "ray.io/v1"
KIND = "RayService"
# KubeRay: a RayCluster name is at most 53 characters (its "-serve-svc" Service stays a DNS label) and the
# RayService's cluster is "<name>-xxxxx", so a RayService name is at most 47 (MaxRayServiceNameLength).
MAX_NAME_LENGTH = 47

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "aicluster"
APP_LABEL = "aicluster.io/ray-serve"
AUTH_CHECKSUM_ANNOTATION = "aicluster.io/auth-config-checksum"
# KubeRay labels the RayClusters of a RayService with these (rayservice_controller.go).
ORIGIN_NAME_LABEL = "ray.io/originated-from-cr-name"
ORIGIN_CRD_LABEL = "ray.io/originated-from-crd"

CACHE_VOLUME = "model-cache"
HEAD_CONTAINER = "ray-head"
WORKER_CONTAINER = "ray-worker"
HEAD_RAY_START_PARAMS = {"dashboard-host": "0.0.0.0", "num-cpus": "0"}  # noqa: S104 - the dashboard's address
# aicluster.platform.serve_auth_secret refuses shorter passwords, whatever the inventory's minimum says.
PASSWORD_FLOOR = 8
# The runtime env variables the application's settings generate (the seed's serve.py reads them).
GENERATED_ENV = ("MODEL_ID", "TENSOR_PARALLELISM", "PIPELINE_PARALLELISM", "MODEL_NAME")

APPLICATION_DEFAULTS = {
    "name": "Dolphin3.0",
    "import_path": "serve:model",
    "route_prefix": "/",
    "working_dir": "file:///home/ray/serve.zip",
    "deployment": "VLLMDeployment",
    "model_id": "Valdemardi/Dolphin3.0-R1-Mistral-24B-AWQ",
    "model_name": "Dolphin3.0",
    "tensor_parallelism": 1,
    "pipeline_parallelism": 2,
    "min_replicas": 1,
    "max_replicas": 1,
    "target_ongoing_requests": 2.0,
    "deployment_ready_timeout_s": 1200,
    "env": {},
}
HEAD_DEFAULTS = {"cpu": "4", "memory": "8Gi", "node_selector": {}, "tolerations": []}
WORKER_DEFAULTS = {"enabled": True, "replicas": 1, "min_replicas": None, "max_replicas": None, "gpus": 1,
                   "gpu_type": "", "cpu": "8", "memory": "24Gi", "node_selector": {}, "tolerations": []}
DEFAULTS = {
    "namespace": "llm",
    "image_pull_policy": "IfNotPresent",
    "image_pull_secrets": [],
    "ray_version": "2.42.0",
    "cache_claim": "model-cache",
    "cache_mount": "/data/model-cache",
    "gpu_resource": "nvidia.com/gpu",
    "gpu_type_label": "gpu-type",
    "runtime_class": "nvidia",
    "auth_secret": "auth-config",
    "auth_users": [],
    "auth_password_min_length": 12,
}
PULL_POLICIES = ("IfNotPresent", "Always", "Never")
TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")
TOLERATION_OPERATORS = ("Exists", "Equal")

QUANTITY_RE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
RAY_VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RayServeError(plan_problems.PlanError):
    """Problems that stop the plan before any object is generated."""


# ----------------------------------------------------------------------------------- small checks
is_int = plan_problems.is_int


_show = plan_problems.show


def _count(where, field, value, minimum):
    if not is_int(value):
        return [f"{where}{field} must be an integer, got {_show(value)}"]
    if value < minimum:
        return [f"{where}{field} must be at least {minimum}, got {value}"]
    return []


def _text(where, field, value):
    if not isinstance(value, str) or not value.strip():
        return [f"{where}{field} must be a non-empty string, got {_show(value)}"]
    return []


def _quantity(where, field, value):
    text = str(value) if is_int(value) or isinstance(value, float) else value
    if not isinstance(text, str) or not QUANTITY_RE.match(text):
        return [f"{where}{field} must be a Kubernetes quantity such as 8, 500m or 24Gi, got {_show(value)}"]
    return []


def _node_selector(where, selector):
    if not isinstance(selector, dict):
        return [f"{where}node_selector must be a dict of labels, got {_show(selector)}"]
    return [f"{where}node_selector {key}: {message}" for key, message in
            k8s_names.validate_labels({str(k): v if isinstance(v, str) else str(v) for k, v in selector.items()})]


def _tolerations(where, tolerations):
    if not isinstance(tolerations, list):
        return [f"{where}tolerations must be a list, got {_show(tolerations)}"]
    found = []
    for index, toleration in enumerate(tolerations):
        at = f"{where}tolerations[{index}]"
        if not isinstance(toleration, dict):
            found.append(f"{at} must be a dict, got {_show(toleration)}")
            continue
        unknown = sorted(str(k) for k in toleration if k not in TOLERATION_KEYS)
        if unknown:
            found.append(f"{at}: unknown field {', '.join(unknown)} (known: {', '.join(TOLERATION_KEYS)})")
        operator = toleration.get("operator", "Equal")
        if operator not in TOLERATION_OPERATORS:
            found.append(f"{at}: operator must be Exists or Equal, got {_show(operator)}")
        effect = toleration.get("effect", "")
        if effect not in ("", *k8s_names.TAINT_EFFECTS):
            found.append(f"{at}: effect must be one of {', '.join(k8s_names.TAINT_EFFECTS)} (or empty: all), "
                         f"got {_show(effect)}")
        if operator == "Exists" and toleration.get("value"):
            found.append(f"{at}: a toleration with operator Exists takes no value")
        if "key" in toleration and toleration["key"] != "":
            found += [f"{at}: key {p}" for p in k8s_names.validate_label_key(toleration["key"])]
        elif operator != "Exists":
            found.append(f"{at}: without a key the operator must be Exists")
    return found


def image_problems(image):
    """The image must be pinned: a tag other than ``latest``, or a digest."""
    if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
        return [f"image must be an image reference without spaces, got {_show(image)}"]
    if "@sha256:" in image:
        return []
    last = image.rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else ""
    if not tag:
        return [f"image {image} must be pinned to a release tag or a digest (it names no tag, which means latest)"]
    if tag == "latest":
        return [f"image {image} must be pinned to a release tag or a digest, not latest (a moving tag: two pods "
                "could run different code)"]
    return []


def import_path_problems(where, path):
    """Ray Serve's rules for an import path: ``module:attribute`` (one colon) or ``module.attribute``."""
    if not isinstance(path, str) or not path or any(c.isspace() for c in path):
        return [f"{where}import_path must be module:attribute (e.g. serve:model), got {_show(path)}"]
    sep = ":" if ":" in path else "."
    if path.count(":") > 1 or path.startswith(sep) or path.endswith(sep) or sep not in path:
        return [f"{where}import_path {path!r} must be module:attribute or module.attribute (e.g. serve:model)"]
    return []


def route_prefix_problems(where, prefix):
    """Ray Serve's rules for a route prefix: starts with ``/``, no trailing ``/`` (unless ``/``), no braces."""
    if not isinstance(prefix, str) or not prefix.startswith("/") or (len(prefix) > 1 and prefix.endswith("/")) \
            or "{" in prefix or "}" in prefix:
        return [f"{where}route_prefix must start with / and not end with / (unless it is /), without braces, "
                f"got {_show(prefix)}"]
    return []


# ----------------------------------------------------------------------------------- defaults
def _with_defaults(item, defaults):
    """``item`` (a dict) over ``defaults``; null values mean the default."""
    merged = copy.deepcopy(defaults)
    if isinstance(item, dict):
        merged.update({k: copy.deepcopy(v) for k, v in item.items() if v is not None})
    return merged


def normalized(settings):
    """The settings with every default filled in (null means the default, as in the inventory)."""
    result = _with_defaults(settings, DEFAULTS)
    result["application"] = _with_defaults(settings.get("application"), APPLICATION_DEFAULTS)
    result["head"] = _with_defaults(settings.get("head"), HEAD_DEFAULTS)
    groups = settings.get("worker_groups")
    if isinstance(groups, list):
        result["worker_groups"] = [_with_defaults(g, WORKER_DEFAULTS) if isinstance(g, dict) else g for g in groups]
        for group in result["worker_groups"]:
            if isinstance(group, dict):
                for bound in ("min_replicas", "max_replicas"):
                    if group[bound] is None:
                        group[bound] = group["replicas"]
    return result


# ----------------------------------------------------------------------------------- the cluster's GPUs
def gpu_inventory(nodes, gpu_type_label, gpu_resource):
    """``{gpu type: the largest allocatable count of gpu_resource on a Node with that type}`` from a Node list's
    items, and under the key None the largest on any Node."""
    found = {None: 0}
    for node in nodes or []:
        labels = (node.get("metadata") or {}).get("labels") or {}
        allocatable = str(((node.get("status") or {}).get("allocatable") or {}).get(gpu_resource, "0"))
        count = int(allocatable) if allocatable.isdigit() else 0
        gpu_type = labels.get(gpu_type_label)
        if gpu_type:
            found[gpu_type] = max(found.get(gpu_type, 0), count)
        found[None] = max(found[None], count)
    return found


# ----------------------------------------------------------------------------------- problems
def settings_problems(s):
    """Problems of everything but the worker groups and the users (``s``: normalized settings)."""
    found = []
    name = s.get("name")
    if not isinstance(name, str) or not name:
        found.append("name is required (the RayService's name, e.g. llm-serve)")
    else:
        found += [f"name: {p}" for p in k8s_names.validate_dns1123_label(name, "name")]
        if not found and not name[0].isalpha():
            found.append(f"name {name!r} must start with a letter (KubeRay wants a DNS-1035 label)")
        if len(name) > MAX_NAME_LENGTH:
            found.append(f"name {name!r} has {len(name)} characters; KubeRay allows at most {MAX_NAME_LENGTH} for "
                         "a RayService (its RayCluster adds 6, its Services more)")
    found += [f"namespace: {p}" for p in k8s_names.validate_dns1123_label(s["namespace"], "namespace")]
    found += image_problems(s.get("image"))
    if s["image_pull_policy"] not in PULL_POLICIES:
        found.append(f"image_pull_policy must be one of {', '.join(PULL_POLICIES)}, "
                     f"got {_show(s['image_pull_policy'])}")
    if not isinstance(s["image_pull_secrets"], list):
        found.append(f"image_pull_secrets must be a list of Secret names, got {_show(s['image_pull_secrets'])}")
    else:
        for secret in s["image_pull_secrets"]:
            found += [f"image_pull_secrets: {p}" for p in k8s_names.validate_dns1123_subdomain(secret, "name")]
    if not isinstance(s["ray_version"], str) or not RAY_VERSION_RE.match(s["ray_version"]):
        found.append(f"ray_version must be the image's Ray version, e.g. 2.42.0, got {_show(s['ray_version'])}")
    found += [f"cache_claim: {p}" for p in k8s_names.validate_dns1123_subdomain(s["cache_claim"], "cache_claim")]
    mount = s["cache_mount"]
    if not isinstance(mount, str) or not mount.startswith("/") or ".." in mount.split("/") or mount == "/":
        found.append(f"cache_mount must be an absolute directory without '..', got {_show(mount)}")
    found += [f"auth_secret: {p}" for p in k8s_names.validate_dns1123_subdomain(s["auth_secret"], "auth_secret")]
    found += [f"gpu_resource: {p}" for p in k8s_names.validate_label_key(s["gpu_resource"])]
    found += [f"gpu_type_label: {p}" for p in k8s_names.validate_label_key(s["gpu_type_label"])]
    if s["runtime_class"]:
        found += [f"runtime_class: {p}" for p in k8s_names.validate_dns1123_subdomain(s["runtime_class"],
                                                                                      "runtime_class")]
    found += application_problems(s["application"])
    head = s["head"]
    found += _quantity("head: ", "cpu", head["cpu"]) + _quantity("head: ", "memory", head["memory"])
    found += _node_selector("head: ", head["node_selector"]) + _tolerations("head: ", head["tolerations"])
    return found


def application_problems(app):
    """Problems of the Serve application (normalized)."""
    where = "application: "
    found = []
    for field in ("name", "deployment", "model_id", "model_name"):
        found += _text(where, field, app[field])
    found += import_path_problems(where, app["import_path"])
    found += route_prefix_problems(where, app["route_prefix"])
    if not isinstance(app["working_dir"], str):
        found.append(f"{where}working_dir must be a URI such as file:///home/ray/serve.zip (or empty), "
                     f"got {_show(app['working_dir'])}")
    found += _count(where, "tensor_parallelism", app["tensor_parallelism"], 1)
    found += _count(where, "pipeline_parallelism", app["pipeline_parallelism"], 1)
    found += _count(where, "min_replicas", app["min_replicas"], 0)
    found += _count(where, "max_replicas", app["max_replicas"], 1)
    if is_int(app["min_replicas"]) and is_int(app["max_replicas"]) and app["min_replicas"] > app["max_replicas"]:
        found.append(f"{where}min_replicas {app['min_replicas']} is more than max_replicas {app['max_replicas']}")
    target = app["target_ongoing_requests"]
    if isinstance(target, bool) or not isinstance(target, (int, float)) or target <= 0:
        found.append(f"{where}target_ongoing_requests must be a positive number, got {_show(target)}")
    found += _count(where, "deployment_ready_timeout_s", app["deployment_ready_timeout_s"], 1)
    env = app["env"]
    if not isinstance(env, dict):
        found.append(f"{where}env must be a dict of variable names and values, got {_show(env)}")
    else:
        for key in env:
            if not isinstance(key, str) or not ENV_NAME_RE.match(key):
                found.append(f"{where}env: {_show(key)} is not a variable name")
            elif key in GENERATED_ENV:
                found.append(f"{where}env: {key} is generated from the application's settings (use them instead)")
    return found


def worker_group_problems(s, inventory=None):
    """Problems of the worker groups; with ``inventory`` (:func:`gpu_inventory`) also whether the cluster has the
    enabled groups' GPU types and enough GPUs on one Node."""
    groups = s.get("worker_groups")
    if not isinstance(groups, list):
        return [f"worker_groups must be a list, got {_show(groups)}"]
    found, names = [], {}
    label, resource = s["gpu_type_label"], s["gpu_resource"]
    for index, group in enumerate(groups):
        if not isinstance(group, dict):
            found.append(f"worker_groups[{index}] must be a dict, got {_show(group)}")
            continue
        name = group.get("name")
        if not isinstance(name, str) or not name:
            found.append(f"worker_groups[{index}]: name is required")
            continue
        where = f"worker group {name}: "
        names[name] = names.get(name, 0) + 1
        found += [f"{where}{p}" for p in k8s_names.validate_dns1123_label(name, "name")]
        unknown = sorted(str(k) for k in group if k not in ("name", *WORKER_DEFAULTS))
        if unknown:
            found.append(f"{where}unknown field {', '.join(unknown)} (known: name, {', '.join(WORKER_DEFAULTS)})")
        if not isinstance(group["enabled"], bool):
            found.append(f"{where}enabled must be true or false, got {_show(group['enabled'])}")
        counts = [_count(where, f, group[f], 0) for f in ("replicas", "min_replicas", "max_replicas", "gpus")]
        found += [p for c in counts for p in c]
        if not any(counts[:3]) and not group["min_replicas"] <= group["replicas"] <= group["max_replicas"]:
            found.append(f"{where}replicas {group['replicas']} must be between min_replicas "
                         f"{group['min_replicas']} and max_replicas {group['max_replicas']}")
        found += _quantity(where, "cpu", group["cpu"]) + _quantity(where, "memory", group["memory"])
        found += _node_selector(where, group["node_selector"]) + _tolerations(where, group["tolerations"])
        gpu_type = group["gpu_type"]
        if not isinstance(gpu_type, str):
            found.append(f"{where}gpu_type must be a string (a value of the Nodes' {label} label), "
                         f"got {_show(gpu_type)}")
            continue
        if gpu_type:
            found += [f"{where}gpu_type: {p}" for p in k8s_names.validate_label_value(gpu_type)]
            selected = group["node_selector"].get(label) if isinstance(group["node_selector"], dict) else None
            if selected is not None and str(selected) != gpu_type:
                found.append(f"{where}node_selector {label}={selected} contradicts gpu_type {gpu_type}")
        if inventory is not None and group["enabled"] is True and is_int(group["gpus"]) and group["gpus"] > 0:
            found += _capacity_problems(where, gpu_type, group["gpus"], inventory, label, resource)
    found += [f"worker group {n} is defined {c} times" for n, c in names.items() if c > 1]
    enabled = [g for g in groups if isinstance(g, dict) and g.get("enabled") is True]
    if not any(is_int(g.get("gpus")) and g["gpus"] > 0 and is_int(g.get("replicas")) and g["replicas"] > 0
               for g in enabled):
        found.append("worker_groups: at least one enabled group must have gpus and replicas (the application runs "
                     "on GPU workers)")
    return found


def _capacity_problems(where, gpu_type, gpus, inventory, label, resource):
    types = sorted(t for t in inventory if t is not None)
    if gpu_type and gpu_type not in inventory:
        have = f"the Nodes have {', '.join(types)}" if types else f"no Node has a {label} label"
        return [f"{where}gpu_type {gpu_type} is not the {label} label of any Node ({have})"]
    largest = inventory[gpu_type or None]
    if gpus > largest:
        nodes = f"Nodes with {label}={gpu_type}" if gpu_type else "Nodes"
        return [f"{where}gpus {gpus} is more than any Node has: the {nodes} have at most {largest} {resource} "
                "allocatable"]
    return []


def capacity_problems(s):
    """The application's GPUs per Serve replica (tensor x pipeline parallelism) times its minimum replicas must fit
    in the GPUs of the enabled worker groups (KubeRay's autoscaler is off: the groups' replicas are all there is)."""
    app, groups = s["application"], s.get("worker_groups")
    counts = ("tensor_parallelism", "pipeline_parallelism", "min_replicas")
    if not isinstance(groups, list) or not all(is_int(app[f]) for f in counts):
        return []
    per_replica = app["tensor_parallelism"] * app["pipeline_parallelism"]
    total = sum(g["replicas"] * g["gpus"] for g in groups if isinstance(g, dict) and g.get("enabled") is True
                and is_int(g.get("replicas")) and is_int(g.get("gpus")))
    needed = per_replica * max(app["min_replicas"], 1)
    if total and needed > total:
        return [f"application: tensor_parallelism x pipeline_parallelism = {per_replica} GPUs per replica, "
                f"{needed} for min_replicas {max(app['min_replicas'], 1)}, but the enabled worker groups have "
                f"{total}"]
    return []


def user_problems(users, min_length):
    """Problems of the login users: name, role, and a password of at least ``min_length`` characters - named by
    user, never quoting a password."""
    found = []
    if not is_int(min_length) or min_length < PASSWORD_FLOOR:
        found.append(f"auth_password_min_length must be an integer of at least {PASSWORD_FLOOR} "
                     f"(aicluster.platform.serve_auth_secret's minimum), got {_show(min_length)}")
        min_length = PASSWORD_FLOOR
    if not isinstance(users, list):
        return [*found, "auth_users must be a list of {name, password, role}"]
    if not users:
        found.append("auth_users is empty: nobody could log in (POST /token); list at least one user with a "
                     "password from the vaulted inventory")
    seen = {}
    for index, user in enumerate(users):
        if not isinstance(user, dict):
            found.append(f"auth_users[{index}] must be a dict with name, password and role")
            continue
        name = user.get("name")
        if not isinstance(name, str) or not name.strip():
            found.append(f"auth_users[{index}]: name is required")
            continue
        seen[name] = seen.get(name, 0) + 1
        where = f"user {name}: "
        password = user.get("password")
        if password is None or password == "":
            found.append(f"{where}no password (give one from the vaulted inventory)")
        elif not isinstance(password, str):
            found.append(f"{where}the password must be a string (quote it in the inventory)")
        elif len(password) < min_length:
            found.append(f"{where}the password is shorter than {min_length} characters (auth_password_min_length)")
        found += _text(where, "role", user.get("role"))
    found += [f"user {n} is listed {c} times" for n, c in seen.items() if c > 1]
    return found


def problems(settings, nodes=None):
    """Every problem of the settings (with ``nodes``, a Node list's items, also against the cluster's GPUs)."""
    if not isinstance(settings, dict):
        return ["the settings must be a dict"]
    s = normalized(settings)
    found = settings_problems(s)
    inventory = gpu_inventory(nodes, s["gpu_type_label"], s["gpu_resource"]) if nodes is not None else None
    found += worker_group_problems(s, inventory)
    if not found:
        found += capacity_problems(s)
    found += user_problems(s["auth_users"], s["auth_password_min_length"])
    return found


# ----------------------------------------------------------------------------------- generation
def yaml_text(value, indent=0):
    """Block-style YAML of plain data (dicts, lists, strings, numbers, booleans); strings are double-quoted JSON
    strings, which YAML reads as the same text. Deterministic: keys keep their order."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            label = key if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key) else json.dumps(key)
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{label}:\n{yaml_text(item, indent + 2)}")
            else:
                lines.append(f"{pad}{label}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = yaml_text(item, indent + 2)
                lines.append(f"{pad}- {nested[indent + 2:]}")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(value)}")
    return "\n".join(lines)


def _scalar(value):
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    return json.dumps(str(value))


def _number(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value


def serve_config(app):
    """The Serve config (``serveConfigV2`` as data): one application, one deployment (normalized ``app``)."""
    env_vars = {"MODEL_ID": app["model_id"], "TENSOR_PARALLELISM": str(app["tensor_parallelism"]),
                "PIPELINE_PARALLELISM": str(app["pipeline_parallelism"]), "MODEL_NAME": app["model_name"]}
    env_vars.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in app["env"].items()})
    runtime_env = {"working_dir": app["working_dir"]} if app["working_dir"] else {}
    runtime_env["env_vars"] = env_vars
    return {"applications": [{
        "name": app["name"],
        "import_path": app["import_path"],
        "route_prefix": app["route_prefix"],
        "runtime_env": runtime_env,
        "deployments": [{
            "name": app["deployment"],
            "autoscaling_config": {
                "min_replicas": app["min_replicas"],
                "initial_replicas": app["min_replicas"],
                "max_replicas": app["max_replicas"],
                "target_ongoing_requests": _number(app["target_ongoing_requests"]),
            },
            "deployment_ready_timeout_s": app["deployment_ready_timeout_s"],
        }],
    }]}


def _quantity_text(value):
    return str(value)


def _pod_template(s, container_name, cpu, memory, node_selector, tolerations, gpus=0, annotations=None):
    resources = {"cpu": _quantity_text(cpu), "memory": _quantity_text(memory)}
    if gpus:
        resources[s["gpu_resource"]] = str(gpus)
    container = {
        "name": container_name,
        "image": s["image"],
        "imagePullPolicy": s["image_pull_policy"],
        "env": [{"name": "HF_HOME", "value": s["cache_mount"]}],
        "envFrom": [{"secretRef": {"name": s["auth_secret"]}}],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": s["cache_mount"]}],
    }
    spec = {"containers": [container],
            "volumes": [{"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": s["cache_claim"]}}]}
    if node_selector:
        spec["nodeSelector"] = {str(k): str(v) for k, v in node_selector.items()}
    if tolerations:
        spec["tolerations"] = copy.deepcopy(tolerations)
    if gpus and s["runtime_class"]:
        spec["runtimeClassName"] = s["runtime_class"]
    if s["image_pull_secrets"]:
        spec["imagePullSecrets"] = [{"name": name} for name in s["image_pull_secrets"]]
    metadata = {"labels": {APP_LABEL: s["name"], MANAGED_BY_LABEL: MANAGED_BY}}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"metadata": metadata, "spec": spec}


def worker_group_spec(s, group, annotations=None):
    """One ``workerGroupSpecs`` entry (normalized ``group``)."""
    selector = dict(group["node_selector"])
    if group["gpu_type"] and group["gpus"]:
        selector[s["gpu_type_label"]] = group["gpu_type"]
    return {
        "groupName": group["name"],
        "replicas": group["replicas"],
        "minReplicas": group["min_replicas"],
        "maxReplicas": group["max_replicas"],
        "rayStartParams": {},
        "template": _pod_template(s, WORKER_CONTAINER, group["cpu"], group["memory"], selector,
                                  group["tolerations"], gpus=group["gpus"], annotations=annotations),
    }


def ray_service(settings, auth_checksum=None):
    """The RayService of (valid) settings. ``auth_checksum`` (of the login Secret's data) goes on every pod template,
    so that a changed Secret brings up a new RayCluster whose pods read it (``envFrom`` is read at start only)."""
    s = normalized(settings)
    annotations = {AUTH_CHECKSUM_ANNOTATION: auth_checksum} if auth_checksum else None
    head = s["head"]
    return {
        "apiVersion": RAY_API,
        "kind": KIND,
        "metadata": {"name": s["name"], "namespace": s["namespace"],
                     "labels": {MANAGED_BY_LABEL: MANAGED_BY, APP_LABEL: s["name"]}},
        "spec": {
            "serveConfigV2": yaml_text(serve_config(s["application"])) + "\n",
            "rayClusterConfig": {
                "rayVersion": s["ray_version"],
                "headGroupSpec": {
                    "rayStartParams": dict(HEAD_RAY_START_PARAMS),
                    "template": _pod_template(s, HEAD_CONTAINER, head["cpu"], head["memory"], head["node_selector"],
                                              head["tolerations"], annotations=annotations),
                },
                "workerGroupSpecs": [worker_group_spec(s, g, annotations) for g in s["worker_groups"]
                                     if g["enabled"]],
            },
        },
    }


def auth_checksum(secret_data):
    """sha256 of a Secret's ``data`` (base64 values as stored), the same for the same content."""
    return hashlib.sha256(json.dumps(secret_data or {}, sort_keys=True).encode()).hexdigest()


def removal(name, namespace, auth_secret):
    """What ``state: absent`` deletes and waits for: the RayService (KubeRay's RayClusters and their pods follow
    it), then the login Secret; the RayClusters and pods as selectors for the wait. The model cache stays."""
    return {
        "objects": [{"apiVersion": RAY_API, "kind": KIND, "metadata": {"name": name, "namespace": namespace}}],
        "selectors": [
            {"api_version": RAY_API, "kind": "RayCluster", "namespace": namespace,
             "label_selector": f"{ORIGIN_NAME_LABEL}={name},{ORIGIN_CRD_LABEL}={KIND}"},
            {"api_version": "v1", "kind": "Pod", "namespace": namespace, "label_selector": f"{APP_LABEL}={name}"},
        ],
        "secret": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": auth_secret, "namespace": namespace}},
    }


def plan(settings, nodes=None, checksum=None):
    """Everything the role needs, or RayServeError with every problem: the RayService, the removal refs, the worker
    pods to expect, the users (names and roles only) and the cluster's GPU types."""
    found = problems(settings, nodes)
    if found:
        raise RayServeError(found)
    s = normalized(settings)
    inventory = gpu_inventory(nodes, s["gpu_type_label"], s["gpu_resource"]) if nodes is not None else {}
    enabled = [g for g in s["worker_groups"] if g["enabled"]]
    return {
        "ray_service": ray_service(s, checksum),
        "removal": removal(s["name"], s["namespace"], s["auth_secret"]),
        "worker_pods": sum(g["replicas"] for g in enabled),
        "worker_groups": [g["name"] for g in enabled],
        "users": [{"name": u["name"], "role": u["role"]} for u in s["auth_users"]],
        "gpu_types": {t: n for t, n in sorted(inventory.items(), key=lambda i: str(i[0])) if t is not None},
        "pod_selector": f"{APP_LABEL}={s['name']}",
    }
