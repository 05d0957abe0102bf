# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""vLLM's OpenAI-compatible server on NVIDIA GPUs, one Deployment + Service per model, scaled by day and night
through a KEDA ScaledObject with a cron trigger - the pure part: the inventory's services and settings, every
problem they have (against what the cluster's Nodes offer, when that is given), the objects they become, and
what to delete. No Ansible, no API calls.

The objects, per service ``<name>`` (labels ``app.kubernetes.io/name=vllm``, ``app.kubernetes.io/instance=<name>``,
``app.kubernetes.io/managed-by=aicluster``):

- Deployment ``<name>``: container ``vllm`` running ``vllm serve <model>`` (the command is set, so images whose
  entrypoint is not ``vllm serve`` work too) on port 8000, ``--tensor-parallel-size`` = the GPUs per replica,
  ``<gpu resource>: <gpus>`` as limits, node selector ``gpu-type: <gpu_type>``, the RuntimeClass, ``HF_HOME`` in
  the model cache (the claim mounted at the cache mount), ``/dev/shm`` in memory, startup, readiness and liveness
  probes on vLLM's ``GET /health``.
- Service ``<name>``: ClusterIP, port 8000 named ``http``.
- With a day window, ScaledObject ``<name>`` (``keda.sh/v1alpha1``): ``minReplicaCount`` = the night count,
  ``maxReplicaCount`` = the day count, one cron trigger (time zone, ``start``/``end`` as ``"M H * * *"``,
  ``desiredReplicas`` = the day count), the HPA's scale-down stabilization window.

Replicas and server-side apply: a windowed Deployment carries no ``spec.replicas`` (the HPA that KEDA makes owns
them; applying a value would fight it). Dropping the field from an apply whose field manager owns it would reset
it to the default of 1, so a Deployment that is created windowed, or that becomes windowed while this role's
field manager owns its replicas, is handed over the way Kubernetes documents it ("Transferring ownership"):
applied once with its replicas (the night count when new, the current count otherwise), then the replicas alone
under a second field manager that never applies again (:func:`handover_object`), then the Deployment again
without replicas. From then on the HPA takes the field over whenever it scales.

Every function returns problems as sentences naming the service and the field, or raises
:class:`VLLMServingError` with all of them, before anything is generated.
"""

from __future__ import annotations

import copy
import math
import re

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_names, plan_problems

try:
    import zoneinfo
except ImportError:  # Python < 3.9: every time zone is then reported as unknown
    zoneinfo = None

NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
APP_NAME = "vllm"
MANAGED_BY = "aicluster"
SELECTOR = f"{NAME_LABEL}={APP_NAME},{MANAGED_BY_LABEL}={MANAGED_BY}"  # this role's objects in the namespace

CONTAINER = "vllm"
PORT = 8000
PORT_NAME = "http"
HEALTH_PATH = "/health"
CACHE_VOLUME = "model-cache"
SHM_VOLUME = "dshm"
HF_HOME_DIR = "huggingface"
PROBE_PERIOD = 10  # seconds between two startup / readiness probes

DEPLOYMENT_API = "apps/v1"
SERVICE_API = "v1"
KEDA_API = "keda.sh/v1alpha1"
HPA_API = "autoscaling/v2"
KEDA_HPA_PREFIX = "keda-hpa-"  # KEDA's name of the HPA it makes for a ScaledObject (unless the object names one)

DEFAULT_NAMESPACE = "llm"
DEFAULT_IMAGE = "vllm/vllm-openai:v0.11.0"
DEFAULT_RUNTIME_CLASS = "nvidia"
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_GPU_TYPE_LABEL = "gpu-type"
DEFAULT_CACHE_CLAIM = "model-cache"
DEFAULT_CACHE_MOUNT = "/data/model-cache"
DEFAULT_STABILIZATION = 300
DEFAULT_STARTUP_TIMEOUT = 1800
DEFAULT_FIELD_MANAGER = "aicluster-vllm-serving"
HANDOVER_SUFFIX = "-replicas-handover"
HPA_STABILIZATION_MAX = 3600  # the HPA API's limit of stabilizationWindowSeconds

DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")  # vllm serve --dtype
STATES = ("present", "absent")
WINDOW_FIELDS = ("day_start", "day_end", "day_replicas", "night_replicas")
SERVICE_FIELDS = ("name", "model", "gpus", "gpu_type", "dtype", "max_model_len", "gpu_memory_utilization",
                  "replicas", *WINDOW_FIELDS, "state", "image", "extra_args")
SERVICE_DEFAULTS = {"gpus": 1, "dtype": "auto", "gpu_memory_utilization": 0.9, "state": "present"}
# Arguments the role generates from fields (or fixes, like the port the probes and the Service use).
GENERATED_ARGS = {
    "--model": "model", "--host": "the role (0.0.0.0)", "--port": f"the role ({PORT}, the probes' and the Service's)",
    "--dtype": "dtype", "--max-model-len": "max_model_len", "--gpu-memory-utilization": "gpu_memory_utilization",
    "--tensor-parallel-size": "gpus", "-tp": "gpus",
}
HHMM_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class VLLMServingError(plan_problems.PlanError):
    """Problems that stop the plan before any object is generated."""


# ----------------------------------------------------------------------------------- small checks
is_int = plan_problems.is_int


_show = plan_problems.show


def _without_nulls(item):
    """The dict without its null fields: inventory that templates a setting to null means the default."""
    return {k: v for k, v in item.items() if v is not None} if isinstance(item, dict) else item


def _count_problems(where, field, value, minimum):
    if not is_int(value):
        return [f"{where}: {field} must be an integer, got {_show(value)}"]
    if value < minimum:
        return [f"{where}: {field} must be at least {minimum}, got {value}"]
    return []


def hhmm(value):
    """``(text, problem)`` of a time of day written ``"HH:MM"`` (24 hours, two digits each)."""
    if is_int(value):
        # YAML 1.1 (Ansible's loader) reads an unquoted 18:30 as the base-60 number 1110.
        hint = f"{value // 60:02d}:{value % 60:02d}" if 0 <= value < 24 * 60 else None
        quoted = f" (YAML reads an unquoted time as a base-60 number: quote it, \"{hint}\")" if hint else ""
        return None, f"must be a quoted \"HH:MM\" time, got {value}{quoted}"
    if not isinstance(value, str):
        return None, f"must be a quoted \"HH:MM\" time, got {_show(value)}"
    if not HHMM_RE.match(value):
        return None, f"{value!r} is not a time of day as \"HH:MM\" (00:00 to 23:59, two digits each)"
    return value, None


def cron(time_of_day):
    """The daily cron expression (minute hour, every day) of an ``"HH:MM"`` time: ``"08:30"`` -> ``"30 8 * * *"``."""
    hour, minute = time_of_day.split(":")
    return f"{int(minute)} {int(hour)} * * *"


def image_problems(where, field, image):
    """An image reference must pin what it runs: a tag other than ``latest``, or a digest."""
    if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
        return [f"{where}{field} must be an image reference without spaces, got {_show(image)}"]
    if "@" in image:
        digest = image.split("@", 1)[1]
        if not re.match(r"^sha256:[0-9a-f]{64}$", digest):
            return [f"{where}{field} {image}: the digest must be sha256:<64 hex digits>"]
        return []
    last = image.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else None
    if tag is None or tag == "":
        return [f"{where}{field} {image} has no tag, so it would pull latest: pin a release "
                f"(e.g. {DEFAULT_IMAGE}) or a digest"]
    if tag == "latest":
        return [f"{where}{field} {image} is not pinned: latest moves with every release; pin one "
                f"(e.g. {DEFAULT_IMAGE}) or a digest"]
    return []


def load_zone(name):
    """``(ZoneInfo, problem)`` for an IANA time zone name."""
    if zoneinfo is None:
        return None, "cannot be checked: this Python has no zoneinfo module"
    if not isinstance(name, str) or not name.strip():
        return None, f"must be an IANA time zone name such as Europe/Berlin or UTC, got {_show(name)}"
    try:
        return zoneinfo.ZoneInfo(name), None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        if not zoneinfo.available_timezones():
            return None, f"{name!r} cannot be checked: the control host has no time zone database (install tzdata)"
        return None, f"{name!r} is not an IANA time zone name (e.g. Asia/Shanghai, Europe/Berlin, UTC)"


def parse_count(quantity):
    """Whole units of an extended resource quantity as a Node reports it (``"8"``); 0 when unreadable."""
    if is_int(quantity):
        return max(quantity, 0)
    if isinstance(quantity, str) and re.match(r"^[0-9]+$", quantity.strip()):
        return int(quantity.strip())
    return 0


# ----------------------------------------------------------------------------------- the cluster
def gpu_types(nodes, label=DEFAULT_GPU_TYPE_LABEL, resource=DEFAULT_GPU_RESOURCE):
    """``{gpu type: the most of the resource one Node of that type has allocatable}`` from a Node list's items:
    what a replica of that type can ask for at most."""
    found = {}
    for node in nodes or []:
        metadata = node.get("metadata") or {}
        value = (metadata.get("labels") or {}).get(label)
        if not isinstance(value, str) or not value:
            continue
        allocatable = ((node.get("status") or {}).get("allocatable") or {}).get(resource)
        found[value] = max(found.get(value, 0), parse_count(allocatable))
    return dict(sorted(found.items()))


def settings_defaults(settings):
    """The role-wide settings with their defaults."""
    result = {
        "state": "present", "namespace": DEFAULT_NAMESPACE, "time_zone": None, "image": DEFAULT_IMAGE,
        "runtime_class": DEFAULT_RUNTIME_CLASS, "gpu_resource": DEFAULT_GPU_RESOURCE,
        "gpu_type_label": DEFAULT_GPU_TYPE_LABEL, "cache_claim": DEFAULT_CACHE_CLAIM,
        "cache_mount": DEFAULT_CACHE_MOUNT, "scale_down_stabilization_seconds": DEFAULT_STABILIZATION,
        "startup_timeout": DEFAULT_STARTUP_TIMEOUT, "field_manager": DEFAULT_FIELD_MANAGER,
    }
    result.update(_without_nulls(settings or {}))
    return result


def settings_problems(settings):
    """Problems of the role-wide settings (the time zone is checked with the services that need it)."""
    s = settings_defaults(settings)
    found = []
    if s["state"] not in STATES:
        found.append(f"state must be present or absent, got {_show(s['state'])}")
    found += [f"namespace: {p}" for p in k8s_names.validate_dns1123_label(s["namespace"], "namespace")]
    if s["state"] != "present":
        return found
    found += image_problems("", "image", s["image"])
    if s["runtime_class"] != "":
        runtime_class_problems = k8s_names.validate_dns1123_subdomain(s["runtime_class"], "runtime_class")
        found += [f"runtime_class: {p}" for p in runtime_class_problems]
    resource = s["gpu_resource"]
    if not isinstance(resource, str) or "/" not in resource or k8s_names.validate_label_key(resource):
        found.append(f"gpu_resource must be an extended resource name such as {DEFAULT_GPU_RESOURCE}, "
                     f"got {_show(resource)}")
    if k8s_names.validate_label_key(s["gpu_type_label"]):
        found.append(f"gpu_type_label must be a label key such as {DEFAULT_GPU_TYPE_LABEL}, "
                     f"got {_show(s['gpu_type_label'])}")
    found += [f"cache_claim: {p}" for p in k8s_names.validate_dns1123_subdomain(s["cache_claim"], "cache_claim")]
    mount = s["cache_mount"]
    if not isinstance(mount, str) or not mount.startswith("/") or mount.rstrip("/") == "" \
            or ".." in mount.split("/"):
        found.append(f"cache_mount must be an absolute path other than / and without '..', got {_show(mount)}")
    stabilization = s["scale_down_stabilization_seconds"]
    if not is_int(stabilization) or not 0 <= stabilization <= HPA_STABILIZATION_MAX:
        found.append(f"scale_down_stabilization_seconds must be an integer from 0 to {HPA_STABILIZATION_MAX} "
                     f"(the HPA's limit), got {_show(stabilization)}")
    if not is_int(s["startup_timeout"]) or s["startup_timeout"] < PROBE_PERIOD:
        found.append(f"startup_timeout must be an integer of at least {PROBE_PERIOD} seconds, "
                     f"got {_show(s['startup_timeout'])}")
    if not isinstance(s["field_manager"], str) or not s["field_manager"]:
        found.append(f"field_manager must be a non-empty string, got {_show(s['field_manager'])}")
    return found


# ----------------------------------------------------------------------------------- services
def service_defaults(service):
    """A service with its defaults (null fields mean the default)."""
    return {**SERVICE_DEFAULTS, **_without_nulls(service)}


def is_windowed(service):
    """Whether a service scales by day and night (any of the window fields given)."""
    return any(service.get(field) is not None for field in WINDOW_FIELDS)


def _where(service, index):
    name = service.get("name") if isinstance(service, dict) else None
    return f"service {name}" if isinstance(name, str) and name else f"services[{index}]"


def _name_problems(where, name):
    if name is None or name == "":
        return [f"{where}: name is required"]
    problems = [f"{where}: {p}" for p in k8s_names.validate_dns1123_label(name, "name")]
    if not problems and not name[0].isalpha():
        problems.append(f"{where}: name {name!r} must start with a letter (a DNS-1035 label: it names the "
                        "Service)")
    return problems


def _extra_args_problems(where, args):
    if not isinstance(args, list) or not all(isinstance(a, str) and a for a in args):
        return [f"{where}: extra_args must be a list of non-empty strings (arguments of vllm serve), "
                f"got {_show(args)}"]
    problems = []
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag in GENERATED_ARGS:
            problems.append(f"{where}: extra_args: {flag} is generated from {GENERATED_ARGS[flag]}; set that "
                            "instead")
    return problems


def _window_problems(where, service):
    problems = []
    missing = [f for f in WINDOW_FIELDS if service.get(f) is None]
    if missing:
        problems.append(f"{where}: a day window needs {', '.join(WINDOW_FIELDS)}; missing {', '.join(missing)}")
    if service.get("replicas") is not None:
        problems.append(f"{where}: replicas is for a service without a day window; with one, day_replicas and "
                        "night_replicas say how many")
    times = {}
    for field in ("day_start", "day_end"):
        if service.get(field) is None:
            continue
        times[field], problem = hhmm(service[field])
        if problem:
            problems.append(f"{where}: {field} {problem}")
    if times.get("day_start") and times.get("day_start") == times.get("day_end"):
        problems.append(f"{where}: day_end {times['day_end']} is the same as day_start: the window would be empty "
                        "(KEDA refuses a cron trigger whose start and end are the same); for the same count all day "
                        "give replicas and no window")
    counts = {}
    for field, minimum in (("day_replicas", 1), ("night_replicas", 0)):
        if service.get(field) is None:
            continue
        count_problems = _count_problems(where, field, service[field], minimum)
        problems += count_problems
        if not count_problems:
            counts[field] = service[field]
    if len(counts) == 2 and counts["night_replicas"] > counts["day_replicas"]:
        problems.append(f"{where}: night_replicas {counts['night_replicas']} is above day_replicas "
                        f"{counts['day_replicas']}: the night count is the minimum KEDA keeps, the day count the "
                        "most it scales to")
    return problems


def _cluster_problems(where, service, settings, cluster):
    """What the Nodes say about one present service's GPU type and count."""
    types = cluster.get("gpu_types") or {}
    gpu_type, gpus = service.get("gpu_type"), service.get("gpus")
    if not isinstance(gpu_type, str) or not gpu_type:
        return []
    label, resource = settings["gpu_type_label"], settings["gpu_resource"]
    if gpu_type not in types:
        have = f"Nodes have {', '.join(types)}" if types else f"no Node has a {label} label"
        return [f"{where}: unknown GPU type {gpu_type}: no Node has the label {label}={gpu_type} ({have})"]
    most = types[gpu_type]
    if is_int(gpus) and gpus > most:
        if most == 0:
            return [f"{where}: gpus {gpus} per replica, but no Node with {label}={gpu_type} has {resource} "
                    "allocatable (is the device plugin running there?)"]
        return [f"{where}: gpus {gpus} per replica is more than any Node with {label}={gpu_type} has (at most "
                f"{most} {resource} allocatable)"]
    return []


def service_problems(service, index=0, settings=None, cluster=None):
    """Problems of one service. ``cluster``: what :func:`gpu_types` found (``{"gpu_types": {...}}``), or None
    to skip the checks against the Nodes."""
    if not isinstance(service, dict):
        return [f"services[{index}] must be a dict, got {_show(service)}"]
    where = _where(service, index)
    service = service_defaults(service)
    settings = settings_defaults(settings)
    problems = []
    unknown = sorted(str(k) for k in service if k not in SERVICE_FIELDS)
    if unknown:
        problems.append(f"{where}: unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                        f"(known: {', '.join(SERVICE_FIELDS)})")
    problems += _name_problems(where, service.get("name"))
    if service["state"] not in STATES:
        problems.append(f"{where}: state must be present or absent, got {_show(service['state'])}")
    if service["state"] != "present":
        return problems
    model = service.get("model")
    if not isinstance(model, str) or not model.strip() or any(c.isspace() for c in model):
        problems.append(f"{where}: model is required: a Hugging Face model id such as Qwen/Qwen2.5-0.5B-Instruct "
                        f"(or a path in the model cache), got {_show(model)}")
    problems += _count_problems(where, "gpus", service["gpus"], 1)
    gpu_type = service.get("gpu_type")
    if gpu_type is None or gpu_type == "":
        problems.append(f"{where}: gpu_type is required: the {settings['gpu_type_label']} label of the Nodes to "
                        "run on (e.g. A100)")
    elif not isinstance(gpu_type, str) or k8s_names.validate_label_value(gpu_type):
        problems.append(f"{where}: gpu_type must be a label value such as A100, got {_show(gpu_type)}")
    if service["dtype"] not in DTYPES:
        problems.append(f"{where}: dtype {_show(service['dtype'])} is not one of {', '.join(DTYPES)}")
    if service.get("max_model_len") is not None:
        problems += _count_problems(where, "max_model_len", service["max_model_len"], 1)
    utilization = service["gpu_memory_utilization"]
    if not isinstance(utilization, (int, float)) or isinstance(utilization, bool) or not 0 < utilization <= 1:
        problems.append(f"{where}: gpu_memory_utilization must be a fraction above 0 and at most 1 (e.g. 0.9), "
                        f"got {_show(utilization)}")
    if service.get("image") is not None:
        problems += image_problems(f"{where}: ", "image", service["image"])
    if service.get("extra_args") is not None:
        problems += _extra_args_problems(where, service["extra_args"])
    if is_windowed(service):
        problems += _window_problems(where, service)
    else:
        problems += _count_problems(where, "replicas", service.get("replicas", 1), 0)
    if cluster is not None:
        problems += _cluster_problems(where, service, settings, cluster)
    return problems


def _present(services):
    return [s for s in services if isinstance(s, dict) and service_defaults(s).get("state") == "present"]


def problems(services, settings=None, cluster=None):
    """Every problem of the whole input, one sentence each (empty: fine). ``cluster`` (None: not checked) is what
    the cluster says: ``gpu_types`` (:func:`gpu_types`), ``keda`` (whether the ScaledObject API is served),
    ``runtime_class`` (whether the RuntimeClass exists), ``claim`` (the cache claim's phase, None when missing)."""
    if not isinstance(services, list):
        return [f"services must be a list, got {_show(services)}"]
    found = settings_problems(settings)
    s = settings_defaults(settings)
    if s["state"] != "present":
        return found
    for index, service in enumerate(services):
        found += service_problems(service, index, s, cluster)
    names = [service.get("name") for service in services if isinstance(service, dict)]
    for name in sorted({n for n in names if isinstance(n, str) and n and names.count(n) > 1}):
        found.append(f"service {name} is defined {names.count(name)} times")
    present = [service_defaults(x) for x in _present(services)]
    windowed = [x for x in present if is_windowed(x)]
    windowed_names = ", ".join(str(x.get("name")) for x in windowed)
    if s["time_zone"] not in (None, ""):
        zone_problem = load_zone(s["time_zone"])[1]
        if zone_problem:
            found.append(f"time_zone {zone_problem}")
    elif windowed:
        found.append(f"time_zone is required with a day window ({windowed_names}): the IANA name of the zone "
                     "day_start and day_end are in (e.g. Europe/Berlin, UTC)")
    if cluster is not None and present:
        if windowed and not cluster.get("keda"):
            found.append(f"KEDA is not installed: the cluster does not serve {KEDA_API} ScaledObjects, which the day "
                         f"windows need ({windowed_names})")
        if s["runtime_class"] and cluster.get("runtime_class") is False:
            found.append(f"RuntimeClass {s['runtime_class']} does not exist (the nvidia_device_plugin role creates "
                         "it; or set runtime_class to \"\" where NVIDIA is the container runtime's default)")
        if cluster.get("claim", "unchecked") is None:
            found.append(f"the model cache claim {s['cache_claim']} does not exist in namespace {s['namespace']} "
                         "(the model_cache role creates it)")
    return found


# ----------------------------------------------------------------------------------- generation
def labels(name):
    return {NAME_LABEL: APP_NAME, INSTANCE_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY}


def selector_labels(name):
    return {NAME_LABEL: APP_NAME, INSTANCE_LABEL: name}


def pod_selector(name):
    """The label selector of a service's pods."""
    return f"{NAME_LABEL}={APP_NAME},{INSTANCE_LABEL}={name}"


def _meta(name, namespace):
    return {"name": name, "namespace": namespace, "labels": labels(name)}


def server_args(service):
    """The arguments of ``vllm serve``: the model first, then the generated options, then ``extra_args``."""
    args = [service["model"], "--host", "0.0.0.0", "--port", str(PORT),  # noqa: S104 - serves the pod's network
            "--dtype", service["dtype"], "--tensor-parallel-size", str(service["gpus"]),
            "--gpu-memory-utilization", str(float(service["gpu_memory_utilization"]))]
    if service.get("max_model_len") is not None:
        args += ["--max-model-len", str(service["max_model_len"])]
    return args + list(service.get("extra_args") or [])


def _probe(period, failures, timeout=5):
    return {"httpGet": {"path": HEALTH_PATH, "port": PORT}, "periodSeconds": period, "timeoutSeconds": timeout,
            "failureThreshold": failures}


def deployment_object(service, settings, replicas=None):
    """The Deployment of a present service; ``replicas`` None leaves ``spec.replicas`` out (windowed services:
    the HPA owns it)."""
    s = settings_defaults(settings)
    service = service_defaults(service)
    name = service["name"]
    container = {
        "name": CONTAINER,
        "image": service.get("image") or s["image"],
        "command": ["vllm", "serve"],
        "args": server_args(service),
        "ports": [{"name": PORT_NAME, "containerPort": PORT, "protocol": "TCP"}],
        "env": [{"name": "HF_HOME", "value": f"{s['cache_mount'].rstrip('/')}/{HF_HOME_DIR}"}],
        "resources": {"limits": {s["gpu_resource"]: str(service["gpus"])}},
        "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": s["cache_mount"]},
                         {"name": SHM_VOLUME, "mountPath": "/dev/shm"}],
        # Loading (and on first use downloading) a model takes minutes: the startup probe allows startup_timeout,
        # then readiness takes the pod in and out of the Service and liveness restarts a hung server.
        "startupProbe": _probe(PROBE_PERIOD, math.ceil(s["startup_timeout"] / PROBE_PERIOD)),
        "readinessProbe": _probe(PROBE_PERIOD, 3),
        "livenessProbe": _probe(30, 3, timeout=10),
    }
    pod_spec = {
        "nodeSelector": {s["gpu_type_label"]: service["gpu_type"]},
        "containers": [container],
        "volumes": [{"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": s["cache_claim"]}},
                    {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}}],
    }
    if s["runtime_class"]:
        pod_spec = {"runtimeClassName": s["runtime_class"], **pod_spec}
    spec = {"selector": {"matchLabels": selector_labels(name)},
            "template": {"metadata": {"labels": labels(name)}, "spec": pod_spec}}
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {"apiVersion": DEPLOYMENT_API, "kind": "Deployment", "metadata": _meta(name, s["namespace"]), "spec": spec}


def service_object(service, settings):
    """The Service (ClusterIP, port 8000 ``http``) of a present service."""
    s = settings_defaults(settings)
    name = service["name"]
    return {"apiVersion": SERVICE_API, "kind": "Service", "metadata": _meta(name, s["namespace"]),
            "spec": {"type": "ClusterIP", "selector": selector_labels(name),
                     "ports": [{"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME, "protocol": "TCP"}]}}


def scaled_object(service, settings):
    """The KEDA ScaledObject of a windowed service: night count as the minimum, the day count in the window."""
    s = settings_defaults(settings)
    service = service_defaults(service)
    name = service["name"]
    stabilization = s["scale_down_stabilization_seconds"]
    return {
        "apiVersion": KEDA_API, "kind": "ScaledObject", "metadata": _meta(name, s["namespace"]),
        "spec": {
            "scaleTargetRef": {"apiVersion": DEPLOYMENT_API, "kind": "Deployment", "name": name},
            "minReplicaCount": service["night_replicas"],
            "maxReplicaCount": service["day_replicas"],
            # Only used when the night count is 0 (KEDA then scales to zero itself): as long as the HPA waits.
            "cooldownPeriod": stabilization,
            "advanced": {"horizontalPodAutoscalerConfig": {
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": stabilization}}}},
            "triggers": [{"type": "cron", "metadata": {
                "timezone": s["time_zone"], "start": cron(service["day_start"]), "end": cron(service["day_end"]),
                "desiredReplicas": str(service["day_replicas"])}}],
        },
    }


def handover_object(deployment, replicas):
    """The Deployment's replicas alone, applied once under the handover field manager (see the module doc)."""
    meta = deployment["metadata"]
    return {"apiVersion": DEPLOYMENT_API, "kind": "Deployment",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]}, "spec": {"replicas": replicas}}


def owns_replicas(deployment, field_manager):
    """Whether ``field_manager``'s apply owns the existing Deployment's ``spec.replicas`` (managedFields)."""
    for entry in (deployment.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") != field_manager or entry.get("operation") != "Apply":
            continue
        if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {}):
            return True
    return False


def _existing_key(obj):
    meta = obj.get("metadata") or {}
    return obj.get("kind"), meta.get("name")


def hpa_ref(scaled, namespace):
    """The HPA KEDA made for an existing ScaledObject (its own name for it, else ``keda-hpa-<name>``)."""
    advanced = ((scaled.get("spec") or {}).get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}
    name = advanced.get("name") or KEDA_HPA_PREFIX + scaled["metadata"]["name"]
    return {"apiVersion": HPA_API, "kind": "HorizontalPodAutoscaler", "metadata": {"name": name,
                                                                                   "namespace": namespace}}


DELETE_ORDER = {"ScaledObject": 0, "Service": 1, "Deployment": 2}  # KEDA lets go of a Deployment before it goes


def plan(services, settings=None, cluster=None, existing=None):
    """Check everything, then the objects: ``objects`` (apply in order: per present service its Deployment,
    Service and, when windowed, ScaledObject), ``handover`` and ``handover_objects`` (the replicas hand-over of
    windowed Deployments that need one: apply ``handover`` with the handover field manager, then
    ``handover_objects`` with the role's), ``delete`` (refs of ``existing`` objects - this role's objects in the
    namespace as the cluster lists them - that the plan no longer has: services absent or gone from the list, the
    ScaledObject of a service without a window now; ScaledObjects first), ``gone`` and ``gone_selectors`` (what
    to wait for after the deletion: those objects, KEDA's HPAs of the ScaledObjects, the pods of the services
    whose Deployment goes), ``wait`` (per present service the replicas available at least: the night count, or
    the fixed count), ``services`` (a summary per service). Raises :class:`VLLMServingError`."""
    found = problems(services, settings, cluster)
    if found:
        raise VLLMServingError(found)
    s = settings_defaults(settings)
    namespace = s["namespace"]
    existing = [obj for obj in existing or [] if isinstance(obj, dict) and obj.get("metadata")]
    existing_by_key = {_existing_key(obj): obj for obj in existing}
    present = [service_defaults(x) for x in _present(services)] if s["state"] == "present" else []
    objects, handover, handover_objects, wait, summary = [], [], [], [], {}
    for service in present:
        name = service["name"]
        current = existing_by_key.get(("Deployment", name))
        if is_windowed(service):
            replicas = None
            if current is None:
                replicas = service["night_replicas"]
            elif owns_replicas(current, s["field_manager"]):
                replicas = (current.get("spec") or {}).get("replicas", service["night_replicas"])
            deployment = deployment_object(service, s, replicas)
            objects += [deployment, service_object(service, s), scaled_object(service, s)]
            if replicas is not None:
                handover.append(handover_object(deployment, replicas))
                handover_objects.append(deployment_object(service, s))
            minimum = service["night_replicas"]
            summary[name] = {"state": "present", "gpu_type": service["gpu_type"], "gpus": service["gpus"],
                             "day": f"{service['day_start']}-{service['day_end']} {s['time_zone']}",
                             "day_replicas": service["day_replicas"], "night_replicas": minimum}
        else:
            minimum = service.get("replicas", 1)
            objects += [deployment_object(service, s, minimum), service_object(service, s)]
            summary[name] = {"state": "present", "gpu_type": service["gpu_type"], "gpus": service["gpus"],
                             "replicas": minimum}
        wait.append({"name": name, "namespace": namespace, "minimum": minimum})
    wanted = {_existing_key(obj) for obj in objects}
    stale = sorted((obj for obj in existing if _existing_key(obj) not in wanted),
                   key=lambda obj: (DELETE_ORDER.get(obj.get("kind"), 3), obj["metadata"]["name"]))
    delete = [{"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
               "metadata": {"name": obj["metadata"]["name"], "namespace": namespace}} for obj in stale]
    gone = delete + [hpa_ref(obj, namespace) for obj in stale if obj.get("kind") == "ScaledObject"]
    leaving = sorted({obj["metadata"]["name"] for obj in stale if obj.get("kind") == "Deployment"})
    gone_selectors = [{"api_version": "v1", "kind": "Pod", "namespace": namespace, "label_selector": pod_selector(n)}
                      for n in leaving]
    for service in services if s["state"] == "present" else []:
        if isinstance(service, dict) and service_defaults(service)["state"] == "absent":
            summary[service["name"]] = {"state": "absent"}
    for name in sorted({obj["metadata"]["name"] for obj in stale} - set(summary)):
        summary[name] = {"state": "absent"}
    return {"objects": objects, "handover": handover, "handover_objects": handover_objects,
            "delete": delete, "gone": gone, "gone_selectors": gone_selectors, "wait": wait,
            "services": summary, "gpu_types": copy.deepcopy((cluster or {}).get("gpu_types") or {})}
