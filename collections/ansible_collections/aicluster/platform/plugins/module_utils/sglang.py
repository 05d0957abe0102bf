# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""SGLang prefill/decode-disaggregated inference on Ascend NPUs through OME, scheduled by Huawei MindCluster
(Volcano), the pure part: the inventory's models, runtimes and applications, every problem they have, and
the OME objects they become (ClusterBaseModel, ClusterServingRuntime, InferenceService). No Ansible, no API
calls.

What MindCluster asks of the pods (its "SGLang inference best practice", table "YAML parameters" of the
ClusterServingRuntime): ``schedulerName: volcano``; node selector ``accelerator-type`` = ``module-910b-8``
(Atlas 800I A2, 8 chips), ``module-a3-16`` (Atlas 800I A3, 16) or ``module-a3-16-super-pod`` (Atlas 900 A3
SuperPoD, 16), optionally ``host-arch``; ``huawei.com/Ascend910`` requests = limits = the whole server's chips;
env ``ASCEND_VISIBLE_DEVICES`` from ``metadata.annotations['huawei.com/Ascend910']``; the driver at
``/usr/local/Ascend/driver`` from the host; labels ``fault-scheduling`` (grace|force|off),
``pod-rescheduling: "on"``, ``fault-retry-times`` (> 0); annotation ``sp-block`` (SuperPoD only: a multiple
of the node's chips, dividing each P/D instance's chips); annotation ``huawei.com/schedule_minAvailable`` =
the instance count of the component in Deployment mode, not used with LeaderWorkerSet.

Where OME v0.1.5 puts them (pkg/controller/v1beta1/inferenceservice): a component's ``labels`` and
``annotations`` (ComponentExtensionSpec of the runtime's ``engineConfig``/``decoderConfig``, strategically
merged with the InferenceService's ``engine``/``decoder``, the latter winning) plus the InferenceService's own
metadata labels and annotations become the component's ObjectMeta, which OME gives to the Deployment *and* its
pod template (deployment_reconciler.go createRawDeployment), or to the LeaderWorkerSet and its leader and
worker templates (lws_reconciler.go createLWS). The runtime's own metadata is never read (only its spec). So:
the MindCluster labels and ``sp-block`` go into the runtime's ``engineConfig``/``decoderConfig`` (one runtime
serves every application), the per-application ``huawei.com/schedule_minAvailable`` into the
InferenceService's ``engine``/``decoder`` annotations (no per-application copy of the runtime is needed).
Pod-level settings (schedulerName, nodeSelector, volumes, runner) sit on the component in Deployment mode and
on its ``leader`` and ``worker`` in LeaderWorkerSet mode (OME ignores the component's pod spec when a leader
exists).

Every function returns problems as sentences naming the model, runtime or application and the field, or
raises :class:`SGLangError` with all of them, before anything is generated.
"""

from __future__ import annotations

import copy
import posixpath
import re

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_names, plan_problems

OME_API = "ome.io/v1beta1"
DEFAULT_MODEL_ROOT = "/data/k8s"
DEFAULT_NAMESPACE = "default"
# OME's CRD requires a framework in every runtime model format (supportedModelFormats[].modelFramework);
# models and formats without one are Hugging Face transformers checkpoints, like all of OME's samples.
DEFAULT_FRAMEWORK = "transformers"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "aicluster"
APP_LABEL = "aicluster.io/sglang-app"

# MindCluster (seed table) ------------------------------------------------------------------------------
SCHEDULER_NAME = "volcano"
ACCELERATOR_LABEL = "accelerator-type"
HOST_ARCH_LABEL = "host-arch"
NPU_RESOURCE = "huawei.com/Ascend910"
VISIBLE_DEVICES_ENV = "ASCEND_VISIBLE_DEVICES"
VISIBLE_DEVICES_FIELD = "metadata.annotations['huawei.com/Ascend910']"
DRIVER_PATH = "/usr/local/Ascend/driver"
DRIVER_VOLUME = "ascend-driver"
SHM_VOLUME = "dshm"
FAULT_SCHEDULING_LABEL = "fault-scheduling"
POD_RESCHEDULING_LABEL = "pod-rescheduling"
FAULT_RETRY_TIMES_LABEL = "fault-retry-times"
SP_BLOCK_ANNOTATION = "sp-block"
MIN_AVAILABLE_ANNOTATION = "huawei.com/schedule_minAvailable"

SUPER_POD = "module-a3-16-super-pod"
# accelerator-type -> (chips per server, product)
ACCELERATORS = {
    "module-910b-8": (8, "Atlas 800I A2"),
    "module-a3-16": (16, "Atlas 800I A3"),
    SUPER_POD: (16, "Atlas 900 A3 SuperPoD"),
}
HOST_ARCHS = ("huawei-arm", "huawei-x86")
FAULT_SCHEDULING = ("grace", "force", "off")

# OME ----------------------------------------------------------------------------------------------------
DEPLOYMENT = "deployment"
LEADERWORKERSET = "leaderworkerset"
MODES = (DEPLOYMENT, LEADERWORKERSET)
RUNNER_NAME = "ome-container"
ROUTER_RUNNER_NAME = "router"
ISVC_LABEL = "ome.io/inferenceservice"  # OME's label on every workload and pod of an InferenceService
COMPONENT_LABEL = "component"  # engine | decoder | router
LWS_WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
# role (as the inventory says it) -> OME component; the engine does prefill, the decoder decode.
ROLES = {"prefill": "engine", "decode": "decoder"}
# Names OME derives from an InferenceService name (constants.go EngineServiceName, DecoderServiceName,
# RouterServiceName, LWSName) and Kubernetes' limits on them.
DNS_LABEL_MAX = 63
STATEFULSET_NAME_MAX = 52  # its pods carry controller-revision-hash: <name>-<10-char hash>, a 63-char label value
LWS_NAME_BUDGET = 50  # OME's LWSName keeps the last 50 characters of <isvc>-<component>

RESERVED_ENV = (VISIBLE_DEVICES_ENV, "MODEL_PATH")  # set by this module / by OME from the model's path
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_PARAMETER_SIZE_RE = re.compile(r"^[0-9]+(\.[0-9]+)?[MBT]$")

MODEL_FIELDS = ("name", "format", "architecture", "parameter_size", "path", "framework", "storage_uri")
MODEL_FORMAT_FIELDS = ("format", "architecture", "framework")
RUNTIME_FIELDS = (
    "name", "accelerator_type", "mode", "nodes_per_instance", "chips_per_pod", "host_arch", "fault_scheduling",
    "pod_rescheduling", "fault_retry_times", "sp_block", "images", "server_port", "router_port", "dist_init_port",
    "tp_size", "engine_args", "decoder_args", "router_args", "env", "model_formats", "resources", "router_resources",
    "router_on_npu_nodes",
)
APP_FIELDS = ("name", "namespace", "model", "runtime", "prefill", "decode", "router", "images", "min_available",
              "state")
IMAGE_KEYS = ("engine", "decoder", "router")
RESOURCE_KEYS = ("requests", "limits")
STATES = ("present", "absent")
DEFAULT_ROUTER_RESOURCES = {"limits": {"cpu": "1", "memory": "2Gi"}}


class SGLangError(plan_problems.PlanError):
    """Problems that stop the plan before any object is generated."""


# ----------------------------------------------------------------------------------- small checks
is_int = plan_problems.is_int


_show = plan_problems.show


def _where(kind, item, index, plural):
    name = item.get("name") if isinstance(item, dict) else None
    return f"{kind} {name}" if isinstance(name, str) and name else f"{plural}[{index}]"


def _unknown_fields(where, item, known):
    unknown = sorted(str(k) for k in item if k not in known)
    if not unknown:
        return []
    return [f"{where}: unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(known: {', '.join(known)})"]


def _name_problems(where, name, dns1035=False, field="name"):
    if name is None or name == "":
        return [f"{where}: {field} is required"]
    problems = [f"{where}: {p}" for p in k8s_names.validate_dns1123_label(name, field)]
    if not problems and dns1035 and not name[0].isalpha():
        problems.append(f"{where}: {field} {name!r} must start with a letter (a DNS-1035 label, as OME requires)")
    return problems


def _string_problems(where, field, value, required=True):
    if value is None:
        return [f"{where}: {field} is required"] if required else []
    if not isinstance(value, str) or not value.strip():
        return [f"{where}: {field} must be a non-empty string, got {_show(value)}"]
    return []


def _image_problems(where, field, value):
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        return [f"{where}: {field} must be an image reference without spaces, got {_show(value)}"]
    return []


def _count_problems(where, field, value, minimum):
    if not is_int(value):
        return [f"{where}: {field} must be an integer, got {_show(value)}"]
    if value < minimum:
        return [f"{where}: {field} must be at least {minimum}, got {value}"]
    return []


def _port_problems(where, field, value):
    if not is_int(value) or not 1 <= value <= 65535:
        return [f"{where}: {field} must be a port number (1-65535), got {_show(value)}"]
    return []


def _path_problems(where, field, path):
    prefix = f"{where}: " if where else ""
    if not isinstance(path, str) or not path:
        return [f"{prefix}{field} must be an absolute path, got {_show(path)}"]
    if not path.startswith("/"):
        return [f"{prefix}{field} {path} must be an absolute path"]
    if ".." in path.split("/"):
        return [f"{prefix}{field} {path} must not contain '..'"]
    return []


# ----------------------------------------------------------------------------------- models
def model_problems(model, index=0, model_root=DEFAULT_MODEL_ROOT):
    """Problems of one model: ``{name, format, architecture, parameter_size, path, framework, storage_uri}``."""
    if not isinstance(model, dict):
        return [f"models[{index}] must be a dict, got {_show(model)}"]
    where = _where("model", model, index, "models")
    problems = _unknown_fields(where, model, MODEL_FIELDS)
    problems += _name_problems(where, model.get("name"))
    if model.get("name") in (DRIVER_VOLUME, SHM_VOLUME):
        problems.append(f"{where}: name {model['name']} is taken by a volume of the runtimes' pods "
                        f"(OME names the model's volume after the model)")
    problems += _string_problems(where, "format", model.get("format"))
    problems += _string_problems(where, "architecture", model.get("architecture"))
    problems += _string_problems(where, "framework", model.get("framework"), required=False)
    size = model.get("parameter_size")
    if size is not None and (not isinstance(size, str) or not _PARAMETER_SIZE_RE.match(size)):
        problems.append(f"{where}: parameter_size must be a number with M, B or T (e.g. 1B, 7.5B), got "
                        f"{_show(size)}")
    path = model.get("path")
    if path is None:
        problems.append(f"{where}: path is required")
    else:
        path_problems = _path_problems(where, "path", path)
        problems += path_problems
        root = posixpath.normpath(model_root) if isinstance(model_root, str) else None
        if not path_problems and root is not None:
            normal = posixpath.normpath(path)
            if normal == root or posixpath.commonpath([normal, root]) != root:
                problems.append(f"{where}: path {path} is not under model_root {model_root}")
    uri = model.get("storage_uri")
    if uri is not None and (not isinstance(uri, str) or "://" not in uri):
        problems.append(f"{where}: storage_uri must be a URI such as local:///data/k8s/models/x, got {_show(uri)}")
    return problems


def model_root_problems(model_root):
    return _path_problems(None, "model_root", model_root)


# ----------------------------------------------------------------------------------- runtimes
def runtime_defaults(runtime):
    """A copy of the runtime with its defaults filled in (values as given otherwise; validate first)."""
    runtime = copy.deepcopy(runtime)
    mode = runtime.get("mode")
    accelerator = runtime.get("accelerator_type")
    chips = ACCELERATORS.get(accelerator, (None, None))[0] if isinstance(accelerator, str) else None
    nodes = runtime.get("nodes_per_instance")
    if nodes is None:
        nodes = 2 if mode == LEADERWORKERSET else 1
    chips_per_pod = runtime.get("chips_per_pod")
    if chips_per_pod is None:
        chips_per_pod = chips
    images = dict(runtime.get("images") or {}) if isinstance(runtime.get("images"), dict) else {}
    if images.get("engine") and not images.get("decoder"):
        images["decoder"] = images["engine"]
    tp_size = runtime.get("tp_size")
    if tp_size is None and is_int(chips_per_pod) and is_int(nodes):
        tp_size = chips_per_pod * nodes
    return {
        **runtime,
        "nodes_per_instance": nodes,
        "chips_per_pod": chips_per_pod,
        "fault_scheduling": runtime.get("fault_scheduling", "force"),
        "pod_rescheduling": runtime.get("pod_rescheduling", True),
        "images": images,
        "server_port": runtime.get("server_port", 8080),
        "router_port": runtime.get("router_port", 8080),
        "dist_init_port": runtime.get("dist_init_port", 5757),
        "tp_size": tp_size,
        "engine_args": runtime.get("engine_args") or [],
        "decoder_args": runtime.get("decoder_args") or [],
        "router_args": runtime.get("router_args") or [],
        "env": runtime.get("env") or {},
        "model_formats": runtime.get("model_formats") or [],
        "resources": runtime.get("resources") or {},
        "router_resources": runtime.get("router_resources") or copy.deepcopy(DEFAULT_ROUTER_RESOURCES),
        "router_on_npu_nodes": runtime.get("router_on_npu_nodes", False),
    }


def _args_problems(where, field, args):
    if not isinstance(args, list):
        return [f"{where}: {field} must be a list of arguments, got {_show(args)}"]
    problems = []
    for arg in args:
        if isinstance(arg, bool) or not isinstance(arg, (str, int, float)):
            problems.append(f"{where}: {field} item {_show(arg)} must be a string or a number")
        elif "{{" in str(arg):
            problems.append(f"{where}: {field} item {arg!r} contains '{{{{': OME expands Go templates in "
                            "container fields")
    return problems


def _env_problems(where, env):
    if not isinstance(env, dict):
        return [f"{where}: env must map variable names to values, got {_show(env)}"]
    problems = []
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME_RE.match(name):
            problems.append(f"{where}: env name {_show(name)} is not a valid environment variable name")
        elif name in RESERVED_ENV:
            problems.append(f"{where}: env {name} is set by the platform ({VISIBLE_DEVICES_ENV} from the chips "
                            "Volcano allocates, MODEL_PATH by OME from the model's path)")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            problems.append(f"{where}: env {name} must be a string or a number, got {_show(value)}")
    return problems


def _resources_problems(where, field, resources):
    if not isinstance(resources, dict):
        return [f"{where}: {field} must be a dict with requests and/or limits, got {_show(resources)}"]
    problems = _unknown_fields(f"{where}: {field}", resources, RESOURCE_KEYS)
    for key in RESOURCE_KEYS:
        section = resources.get(key)
        if section is None:
            continue
        if not isinstance(section, dict):
            problems.append(f"{where}: {field}.{key} must map resource names to quantities, got {_show(section)}")
            continue
        for name, quantity in section.items():
            if name == NPU_RESOURCE:
                problems.append(f"{where}: {field}.{key} must not name {NPU_RESOURCE}: the chips come from "
                                "chips_per_pod (the whole server)")
            elif isinstance(quantity, bool) or not isinstance(quantity, (str, int, float)) or quantity == "":
                problems.append(f"{where}: {field}.{key}.{name} must be a quantity, got {_show(quantity)}")
    return problems


def _model_formats_problems(where, formats):
    if not isinstance(formats, list) or not formats:
        return [f"{where}: model_formats must be a non-empty list of {{format, architecture, framework}}, "
                f"got {_show(formats)}"]
    problems = []
    for index, entry in enumerate(formats):
        field = f"model_formats[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: {field} must be a dict, got {_show(entry)}")
            continue
        problems += _unknown_fields(f"{where}: {field}", entry, MODEL_FORMAT_FIELDS)
        problems += _string_problems(where, f"{field}.format", entry.get("format"))
        problems += _string_problems(where, f"{field}.architecture", entry.get("architecture"))
        problems += _string_problems(where, f"{field}.framework", entry.get("framework"), required=False)
    return problems


def runtime_problems(runtime, index=0):
    """Problems of one runtime (see the module documentation of sglang_plan for its fields)."""
    if not isinstance(runtime, dict):
        return [f"runtimes[{index}] must be a dict, got {_show(runtime)}"]
    where = _where("runtime", runtime, index, "runtimes")
    problems = _unknown_fields(where, runtime, RUNTIME_FIELDS)
    problems += _name_problems(where, runtime.get("name"))
    rt = runtime_defaults(runtime)

    accelerator = runtime.get("accelerator_type")
    server_chips = None
    if accelerator is None:
        problems.append(f"{where}: accelerator_type is required (one of {', '.join(ACCELERATORS)})")
    elif not isinstance(accelerator, str) or accelerator not in ACCELERATORS:
        problems.append(f"{where}: accelerator_type {_show(accelerator)} is not one of {', '.join(ACCELERATORS)}")
    else:
        server_chips = ACCELERATORS[accelerator][0]

    mode = runtime.get("mode")
    if mode not in MODES:
        problems.append(f"{where}: mode {_show(mode)} is not one of {', '.join(MODES)}")
        mode = None

    nodes = rt["nodes_per_instance"]
    nodes_ok = is_int(nodes) and nodes >= 1
    if not is_int(nodes):
        problems.append(f"{where}: nodes_per_instance must be an integer, got {_show(nodes)}")
    elif mode == DEPLOYMENT and nodes != 1:
        problems.append(f"{where}: nodes_per_instance {nodes} needs mode leaderworkerset: in mode deployment an "
                        "instance is one pod on one server")
        nodes_ok = False
    elif mode == LEADERWORKERSET and nodes < 2:
        problems.append(f"{where}: nodes_per_instance {nodes} is too small for mode leaderworkerset (a leader "
                        "and at least one worker: 2 or more); use mode deployment for one server per instance")
        nodes_ok = False

    chips = rt["chips_per_pod"]
    chips_ok = False
    if runtime.get("chips_per_pod") is not None:
        if not is_int(chips):
            problems.append(f"{where}: chips_per_pod must be an integer, got {_show(chips)}")
        elif server_chips is not None and chips != server_chips:
            problems.append(f"{where}: chips_per_pod {chips} is not the {server_chips} chips of a {accelerator} "
                            f"server ({ACCELERATORS[accelerator][1]}): MindCluster schedules whole servers only")
        else:
            chips_ok = server_chips is not None
    else:
        chips_ok = server_chips is not None

    host_arch = runtime.get("host_arch")
    if host_arch is not None and host_arch not in HOST_ARCHS:
        problems.append(f"{where}: host_arch {_show(host_arch)} is not one of {', '.join(HOST_ARCHS)}")

    fault = rt["fault_scheduling"]
    if fault not in FAULT_SCHEDULING:
        problems.append(f"{where}: fault_scheduling {_show(fault)} is not one of {', '.join(FAULT_SCHEDULING)}")

    if not isinstance(rt["router_on_npu_nodes"], bool):
        problems.append(f"{where}: router_on_npu_nodes must be true or false, got {_show(rt['router_on_npu_nodes'])}")

    rescheduling = rt["pod_rescheduling"]
    if not isinstance(rescheduling, bool):
        problems.append(f"{where}: pod_rescheduling must be true or false, got {_show(rescheduling)}")
    elif not rescheduling and fault in ("grace", "force"):
        problems.append(f"{where}: pod_rescheduling false with fault_scheduling {fault}: MindCluster reschedules "
                        "the failed P/D instance of an OME service only with pod-rescheduling on (set "
                        "fault_scheduling: off to turn rescheduling off)")

    retries = runtime.get("fault_retry_times")
    if retries is not None and (not is_int(retries) or retries < 1):
        problems.append(f"{where}: fault_retry_times must be a positive integer, got {_show(retries)}")

    sp_block = runtime.get("sp_block")
    if sp_block is not None:
        if accelerator != SUPER_POD:
            problems.append(f"{where}: sp_block is only for accelerator_type {SUPER_POD} "
                            f"({ACCELERATORS[SUPER_POD][1]}), not {_show(accelerator)}")
        elif not is_int(sp_block) or sp_block < 1:
            problems.append(f"{where}: sp_block must be a positive integer, got {_show(sp_block)}")
        else:
            if sp_block % server_chips:
                problems.append(f"{where}: sp_block {sp_block} is not a multiple of the node's {server_chips} chips")
            if chips_ok and nodes_ok and (chips * nodes) % sp_block:
                problems.append(f"{where}: sp_block {sp_block} does not divide an instance's {chips * nodes} chips "
                                f"({chips} chips x {nodes} node{'s' if nodes > 1 else ''}): each P/D instance "
                                "must fill whole logical SuperPoDs")

    images = runtime.get("images")
    if not isinstance(images, dict):
        problems.append(f"{where}: images must be a dict with engine (and decoder, router), got {_show(images)}")
    else:
        problems += _unknown_fields(f"{where}: images", images, IMAGE_KEYS)
        if images.get("engine") is None:
            problems.append(f"{where}: images.engine is required")
        for key in IMAGE_KEYS:
            if images.get(key) is not None:
                problems += _image_problems(where, f"images.{key}", images[key])

    for field in ("server_port", "router_port", "dist_init_port"):
        problems += _port_problems(where, field, rt[field])
    if runtime.get("tp_size") is not None:
        problems += _count_problems(where, "tp_size", runtime["tp_size"], 1)
    for field in ("engine_args", "decoder_args", "router_args"):
        problems += _args_problems(where, field, rt[field])
    problems += _env_problems(where, rt["env"])
    problems += _model_formats_problems(where, runtime.get("model_formats"))
    problems += _resources_problems(where, "resources", rt["resources"])
    problems += _resources_problems(where, "router_resources", rt["router_resources"])
    return problems


# ----------------------------------------------------------------------------------- applications
def derived_names(name, mode, prefill, decode):
    """The names OME (and LeaderWorkerSet) derive from an application's InferenceService name, with the most
    characters each may have: ``[(what, derived name, limit, why)]``."""
    names = []
    for component in ("engine", "decoder", "router"):
        names.append(("Service", f"{name}-{component}", DNS_LABEL_MAX, "a DNS-1035 label"))
    if mode == LEADERWORKERSET:
        for role, component in ROLES.items():
            instances = prefill if role == "prefill" else decode
            base = f"{name}-{component}"
            names.append(("LeaderWorkerSet input", base, LWS_NAME_BUDGET,
                          "OME keeps only its last 50 characters in the LeaderWorkerSet name"))
            last = max(instances - 1, 0)
            names.append(("worker StatefulSet", f"lws-{base}-{last}", STATEFULSET_NAME_MAX,
                          "its pods are labelled controller-revision-hash=<name>-<hash>, at most 63 characters"))
    return names


def _name_length_problems(where, name, mode, prefill, decode):
    """One sentence for the derived name that limits the application's name the most (if any is too long)."""
    worst = None
    for what, derived, limit, why in derived_names(name, mode, prefill, decode):
        if len(derived) > limit:
            most = len(name) - (len(derived) - limit)
            if worst is None or most < worst[0]:
                worst = (most, what, derived, limit, why)
    if worst is None:
        return []
    most, what, derived, limit, why = worst
    return [f"{where}: name {name!r} is too long: OME derives the {what} name {derived} ({len(derived)} "
            f"characters, at most {limit}: {why}); use at most {most} characters"]


def framework_of(item):
    return item.get("framework") or DEFAULT_FRAMEWORK


def model_matches(model, runtime_formats):
    """Whether OME's runtime selector accepts ``model`` for a runtime with these ``model_formats``: format
    name, architecture and framework equal (runtimeselector/matcher.go; DEFAULT_FRAMEWORK when not given)."""
    for entry in runtime_formats:
        if (entry.get("format") == model.get("format") and entry.get("architecture") == model.get("architecture")
                and framework_of(entry) == framework_of(model)):
            return True
    return False


def application_problems(app, index, models, runtimes):
    """Problems of one application. ``models``/``runtimes``: name -> their (raw) dict, for the references."""
    if not isinstance(app, dict):
        return [f"applications[{index}] must be a dict, got {_show(app)}"]
    where = _where("application", app, index, "applications")
    problems = _unknown_fields(where, app, APP_FIELDS)
    name = app.get("name")
    problems += _name_problems(where, name, dns1035=True)
    namespace = app.get("namespace", DEFAULT_NAMESPACE)
    problems += _name_problems(where, namespace, field="namespace")
    state = app.get("state", "present")
    if state not in STATES:
        problems.append(f"{where}: state {_show(state)} is not one of {', '.join(STATES)}")
    if state == "absent":
        return problems  # only its name is needed to delete it: the model or runtime may be gone already

    model_name, runtime_name = app.get("model"), app.get("runtime")
    model = runtime = None
    if model_name is None:
        problems.append(f"{where}: model is required")
    elif not isinstance(model_name, str) or model_name not in models:
        problems.append(f"{where}: model {_show(model_name)} is not one of the models "
                        f"({', '.join(models) or 'none defined'})")
    else:
        model = models[model_name]
    if runtime_name is None:
        problems.append(f"{where}: runtime is required")
    elif not isinstance(runtime_name, str) or runtime_name not in runtimes:
        problems.append(f"{where}: runtime {_show(runtime_name)} is not one of the runtimes "
                        f"({', '.join(runtimes) or 'none defined'})")
    else:
        runtime = runtimes[runtime_name]

    counts_ok = True
    for field in ("prefill", "decode"):
        found = _count_problems(where, field, app.get(field), 1) if field in app else \
            [f"{where}: {field} (the number of {field} instances, OME's {ROLES[field]}) is required"]
        problems += found
        counts_ok = counts_ok and not found
    problems += _count_problems(where, "router", app.get("router", 1), 0)

    images = app.get("images")
    if images is not None:
        if not isinstance(images, dict):
            problems.append(f"{where}: images must be a dict with engine, decoder and/or router, got {_show(images)}")
            images = None
        else:
            problems += _unknown_fields(f"{where}: images", images, IMAGE_KEYS)
            for key in IMAGE_KEYS:
                if images.get(key) is not None:
                    problems += _image_problems(where, f"images.{key}", images[key])

    mode = runtime.get("mode") if isinstance(runtime, dict) else None
    if mode not in MODES:
        mode = None
    min_available = app.get("min_available")
    if "min_available" in app and mode == LEADERWORKERSET:
        problems.append(f"{where}: min_available is not used with runtime {runtime_name} (mode leaderworkerset): "
                        f"MindCluster takes {MIN_AVAILABLE_ANNOTATION} only in Deployment mode, LeaderWorkerSet "
                        "gang-schedules each instance itself")
    elif "min_available" in app and mode == DEPLOYMENT:
        if not isinstance(min_available, dict):
            problems.append(f"{where}: min_available must be a dict with prefill and/or decode, got "
                            f"{_show(min_available)}")
        else:
            problems += _unknown_fields(f"{where}: min_available", min_available, tuple(ROLES))
            for role in ROLES:
                if role in min_available and (not is_int(min_available[role]) or min_available[role] != app.get(role)):
                    problems.append(f"{where}: min_available.{role} {_show(min_available[role])} must equal "
                                    f"{role} ({app.get(role)}): MindCluster's {MIN_AVAILABLE_ANNOTATION} is the "
                                    f"{ROLES[role]}'s instance count in Deployment mode")

    if isinstance(name, str) and not _name_problems(where, name, dns1035=True) and counts_ok:
        problems += _name_length_problems(where, name, mode, app["prefill"], app["decode"])

    model_known = isinstance(model, dict) and all(isinstance(model.get(k), str) for k in ("format", "architecture"))
    if model_known and isinstance(runtime, dict) and isinstance(runtime.get("model_formats"), list):
        formats = [f for f in runtime["model_formats"] if isinstance(f, dict)]
        if formats and not model_matches(model, formats):
            problems.append(f"{where}: model {model_name} ({model.get('format')}, {model.get('architecture')}, "
                            f"framework {framework_of(model)}) matches none of runtime "
                            f"{runtime_name}'s model_formats: OME would refuse the runtime")

    router = app.get("router", 1)
    if is_int(router) and router > 0 and isinstance(runtime, dict) and isinstance(runtime.get("images"), dict):
        if not runtime["images"].get("router") and not (images or {}).get("router"):
            problems.append(f"{where}: router {router} needs a router image: set images.router here or in "
                            f"runtime {runtime_name}")
    return problems


# ----------------------------------------------------------------------------------- all of it
def _duplicates(items, key, describe):
    seen = {}
    for item in items:
        if isinstance(item, dict):
            k = key(item)
            if k is not None:
                seen[k] = seen.get(k, 0) + 1
    return [describe(k, n) for k, n in seen.items() if n > 1]


def _name_of(item):
    return item.get("name") if isinstance(item.get("name"), str) and item.get("name") else None


def _app_identity(app):
    name, namespace = app.get("name"), app.get("namespace", DEFAULT_NAMESPACE)
    return (namespace, name) if isinstance(name, str) and name and isinstance(namespace, str) else None


def without_nulls(items):
    """The items with their null fields dropped: inventory that templates a setting to null means the default."""
    if not isinstance(items, list):
        return items
    return [{k: v for k, v in item.items() if v is not None} if isinstance(item, dict) else item for item in items]


def _named(items):
    named = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"] not in named:
            named[item["name"]] = item
    return named


def problems(models, runtimes, applications, model_root=DEFAULT_MODEL_ROOT):
    """Every problem of the whole input, one sentence each, in input order (empty: fine)."""
    found = []
    for field, value in (("models", models), ("runtimes", runtimes), ("applications", applications)):
        if not isinstance(value, list):
            found.append(f"{field} must be a list, got {_show(value)}")
    if found:
        return found
    models, runtimes, applications = without_nulls(models), without_nulls(runtimes), without_nulls(applications)
    found += model_root_problems(model_root)
    root = model_root if not found else None
    for index, model in enumerate(models):
        found += model_problems(model, index, root)
    found += _duplicates(models, _name_of, lambda k, n: f"model {k} is defined {n} times")
    for index, runtime in enumerate(runtimes):
        found += runtime_problems(runtime, index)
    found += _duplicates(runtimes, _name_of, lambda k, n: f"runtime {k} is defined {n} times")
    named_models, named_runtimes = _named(models), _named(runtimes)
    for index, app in enumerate(applications):
        found += application_problems(app, index, named_models, named_runtimes)
    found += _duplicates(applications, _app_identity,
                         lambda k, n: f"application {k[1]} is defined {n} times in namespace {k[0]}")
    return found


# ----------------------------------------------------------------------------------- generation
def _meta(name, namespace=None, app=None):
    labels = {MANAGED_BY_LABEL: MANAGED_BY}
    if app is not None:
        labels[APP_LABEL] = app
    meta = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    return meta


def ref(obj):
    """apiVersion, kind, metadata name (and namespace): what it takes to find or delete ``obj``."""
    meta = {"name": obj["metadata"]["name"]}
    if obj["metadata"].get("namespace"):
        meta["namespace"] = obj["metadata"]["namespace"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta}


def model_object(model):
    """The ClusterBaseModel of a (valid) model."""
    spec = {
        "disabled": False,
        "modelFormat": {"name": model["format"]},
        "modelArchitecture": model["architecture"],
        "storage": {"path": model["path"], "storageUri": model.get("storage_uri") or f"local://{model['path']}"},
    }
    spec["modelFramework"] = {"name": framework_of(model)}
    if model.get("parameter_size"):
        spec["modelParameterSize"] = model["parameter_size"]
    return {"apiVersion": OME_API, "kind": "ClusterBaseModel", "metadata": _meta(model["name"]), "spec": spec}


def mindcluster_labels(rt):
    """The MindCluster labels every NPU pod of the runtime carries (fault handling)."""
    labels = {FAULT_SCHEDULING_LABEL: rt["fault_scheduling"]}
    if rt["pod_rescheduling"]:
        labels[POD_RESCHEDULING_LABEL] = "on"
    if rt.get("fault_retry_times") is not None:
        labels[FAULT_RETRY_TIMES_LABEL] = str(rt["fault_retry_times"])
    return labels


def mindcluster_annotations(rt):
    return {SP_BLOCK_ANNOTATION: str(rt["sp_block"])} if rt.get("sp_block") is not None else {}


def _node_selector(rt):
    selector = {ACCELERATOR_LABEL: rt["accelerator_type"]}
    if rt.get("host_arch"):
        selector[HOST_ARCH_LABEL] = rt["host_arch"]
    return selector


def _npu_volumes():
    return [
        {"name": DRIVER_VOLUME, "hostPath": {"path": DRIVER_PATH}},
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}},
    ]


def _resources(rt):
    chips = rt["chips_per_pod"]
    user = rt["resources"]
    return {
        "requests": {**(user.get("requests") or {}), NPU_RESOURCE: chips},
        "limits": {**(user.get("limits") or {}), NPU_RESOURCE: chips},
    }


def server_command(rt, role):
    """``python3 -m sglang.launch_server`` for the prefill (engine) or decode (decoder) instances: the OME PD
    samples' flags with Ascend's device, attention and KV-transfer backends; in LeaderWorkerSet mode the
    distributed flags from the LWS_* variables LeaderWorkerSet injects."""
    command = [
        "python3", "-m", "sglang.launch_server",
        "--host", "0.0.0.0",  # noqa: S104 - a server in a pod listens on the pod's addresses
        "--port", str(rt["server_port"]),
        "--model-path", "$(MODEL_PATH)",
        "--device", "npu",
        "--attention-backend", "ascend",
        "--tp-size", str(rt["tp_size"]),
        "--disaggregation-mode", role,
        "--disaggregation-transfer-backend", "ascend",
    ]
    if rt["mode"] == LEADERWORKERSET:
        command += ["--dist-init-addr", f"$(LWS_LEADER_ADDRESS):{rt['dist_init_port']}",
                    "--nnodes", "$(LWS_GROUP_SIZE)", "--node-rank", "$(LWS_WORKER_INDEX)"]
    extra = rt["engine_args"] if role == "prefill" else rt["decoder_args"]
    return command + [str(a) for a in extra]


def _runner(rt, role, image, serving):
    env = [{"name": VISIBLE_DEVICES_ENV, "valueFrom": {"fieldRef": {"fieldPath": VISIBLE_DEVICES_FIELD}}}]
    env += [{"name": name, "value": str(value)} for name, value in rt["env"].items()]
    runner = {
        "name": RUNNER_NAME,
        "command": server_command(rt, role),
        "env": env,
        "resources": _resources(rt),
        "volumeMounts": [
            {"name": DRIVER_VOLUME, "mountPath": DRIVER_PATH},
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
        ],
    }
    if image:
        runner["image"] = image
    if serving:  # the pod that serves HTTP: the Deployment's, or the LeaderWorkerSet's leader
        runner["ports"] = [{"containerPort": rt["server_port"], "name": "http1", "protocol": "TCP"}]
        runner["readinessProbe"] = {"httpGet": {"path": "/health", "port": rt["server_port"]},
                                    "periodSeconds": 10, "failureThreshold": 3}
    return runner


def _pod(rt, role, image, serving):
    return {
        "schedulerName": SCHEDULER_NAME,
        "nodeSelector": _node_selector(rt),
        "volumes": _npu_volumes(),
        "runner": _runner(rt, role, image, serving),
    }


def component_config(rt, role):
    """The runtime's ``engineConfig`` (role prefill) or ``decoderConfig`` (role decode)."""
    image = rt["images"].get("engine" if role == "prefill" else "decoder")
    config = {"labels": mindcluster_labels(rt)}
    annotations = mindcluster_annotations(rt)
    if annotations:
        config["annotations"] = annotations
    if rt["mode"] == LEADERWORKERSET:
        config["leader"] = _pod(rt, role, image, serving=True)
        config["worker"] = {"size": rt["nodes_per_instance"] - 1, **_pod(rt, role, image, serving=False)}
    else:
        config.update(_pod(rt, role, image, serving=True))
    return config


def router_command(rt):
    """``python3 -m sglang_router.launch_router`` in PD mode, finding the prefill and decode pods of its own
    InferenceService by OME's labels (component, ome.io/inferenceservice; only leaders serve with LWS)."""
    selectors = {}
    for component in ("engine", "decoder"):
        selector = [f"{COMPONENT_LABEL}={component}", f"{ISVC_LABEL}=$(INFERENCESERVICE_NAME)"]
        if rt["mode"] == LEADERWORKERSET:
            selector.append(f"{LWS_WORKER_INDEX_LABEL}=0")
        selectors[component] = selector
    return [
        "python3", "-m", "sglang_router.launch_router",
        "--host", "0.0.0.0",  # noqa: S104 - a server in a pod listens on the pod's addresses
        "--port", str(rt["router_port"]),
        "--pd-disaggregation",
        "--service-discovery",
        "--service-discovery-namespace", "$(NAMESPACE)",
        "--service-discovery-port", str(rt["server_port"]),
        "--prefill-selector", *selectors["engine"],
        "--decode-selector", *selectors["decoder"],
        *[str(a) for a in rt["router_args"]],
    ]


def router_config(rt):
    runner = {
        "name": ROUTER_RUNNER_NAME,
        "command": router_command(rt),
        "env": [
            {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "INFERENCESERVICE_NAME",
             "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{ISVC_LABEL}']"}}},
        ],
        "ports": [{"containerPort": rt["router_port"], "name": "http"}],
        "resources": rt["router_resources"],
        "readinessProbe": {"httpGet": {"path": "/readiness", "port": rt["router_port"]},
                           "periodSeconds": 10, "failureThreshold": 5},
    }
    if rt["images"].get("router"):
        runner["image"] = rt["images"]["router"]
    if rt["router_on_npu_nodes"]:
        return {"runner": runner}
    # The router needs no NPU: keep it off the NPU servers (MindCluster labels them accelerator-type), whose
    # CPU and memory the SGLang servers need.
    return {"runner": runner, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": ACCELERATOR_LABEL, "operator": "DoesNotExist"}]}]}}}}


def runtime_object(runtime):
    """The ClusterServingRuntime of a (valid) runtime."""
    rt = runtime_defaults(runtime)
    formats = []
    for entry in rt["model_formats"]:
        fmt = {"name": entry["format"], "modelFormat": {"name": entry["format"]},
               "modelArchitecture": entry["architecture"], "autoSelect": False, "priority": 1}
        fmt["modelFramework"] = {"name": framework_of(entry)}
        formats.append(fmt)
    spec = {
        "disabled": False,
        "protocolVersions": ["openAI"],
        "supportedModelFormats": formats,
        "engineConfig": component_config(rt, "prefill"),
        "decoderConfig": component_config(rt, "decode"),
        "routerConfig": router_config(rt),
    }
    return {"apiVersion": OME_API, "kind": "ClusterServingRuntime", "metadata": _meta(rt["name"]), "spec": spec}


def _image_override(image, runner_name):
    return {"name": runner_name, "image": image}  # the name: OME's merge would blank the runtime's otherwise


def inference_service_object(app, runtime):
    """The InferenceService of a (valid, present) application on its runtime."""
    rt = runtime_defaults(runtime)
    images = app.get("images") or {}
    namespace = app.get("namespace", DEFAULT_NAMESPACE)
    spec = {"model": {"name": app["model"], "kind": "ClusterBaseModel"},
            "runtime": {"name": app["runtime"], "kind": "ClusterServingRuntime"}}
    for role, component in ROLES.items():
        count = app[role]
        part = {"minReplicas": count, "maxReplicas": count}
        if rt["mode"] == DEPLOYMENT:
            part["annotations"] = {MIN_AVAILABLE_ANNOTATION: str(count)}
        image = images.get("engine") if role == "prefill" else images.get("decoder") or images.get("engine")
        if image:
            if rt["mode"] == LEADERWORKERSET:
                part["leader"] = {"runner": _image_override(image, RUNNER_NAME)}
                part["worker"] = {"runner": _image_override(image, RUNNER_NAME)}
            else:
                part["runner"] = _image_override(image, RUNNER_NAME)
        spec[component] = part
    router = app.get("router", 1)
    if router > 0:  # minReplicas 0 would make OME deploy the router serverless (Knative)
        spec["router"] = {"minReplicas": router, "maxReplicas": router}
        if images.get("router"):
            spec["router"]["runner"] = _image_override(images["router"], ROUTER_RUNNER_NAME)
    return {"apiVersion": OME_API, "kind": "InferenceService",
            "metadata": _meta(app["name"], namespace, app=app["name"]), "spec": spec}


def _absent_service(app):
    namespace = app.get("namespace", DEFAULT_NAMESPACE)
    return {"apiVersion": OME_API, "kind": "InferenceService",
            "metadata": _meta(app["name"], namespace, app=app["name"])}


def app_key(app):
    return f"{app.get('namespace', DEFAULT_NAMESPACE)}/{app['name']}"


def leftover_selectors(app):
    """What must be gone, beyond the InferenceService, once an application is deleted: OME's workloads and pods
    carry ``ome.io/inferenceservice=<name>`` (k8s_objects_gone selectors)."""
    namespace = app.get("namespace", DEFAULT_NAMESPACE)
    selector = f"ome.io/inferenceservice={app['name']}"
    return [{"api_version": api_version, "kind": kind, "namespace": namespace, "label_selector": selector}
            for api_version, kind in (("apps/v1", "Deployment"), ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"),
                                      ("v1", "Pod"))]


def _selected(app, only):
    return only is None or app["name"] in only or app_key(app) in only


def plan(models, runtimes, applications, model_root=DEFAULT_MODEL_ROOT, only=None):
    """The objects to apply and to delete, or :class:`SGLangError` with every problem.

    Returns ``objects`` (apply order: ClusterBaseModels, ClusterServingRuntimes, then each present
    application's InferenceService), ``applications`` (``namespace/name`` -> refs of its objects),
    ``absent`` (refs of the objects of applications with state absent), ``absent_selectors`` (their workloads
    and pods by label, to wait for) and ``namespaces`` (those the present applications live in, sorted).

    ``only`` (names or ``namespace/name`` keys) narrows the result to those applications and the models and
    runtimes they use; everything is still checked, and a name that matches no application is a problem."""
    found = problems(models, runtimes, applications, model_root)
    if only is not None:
        known = {a.get("name") for a in without_nulls(applications) if isinstance(a, dict)}
        known |= {app_key(a) for a in without_nulls(applications) if isinstance(a, dict) and a.get("name")}
        found += [f"application {name} is not among the applications" for name in only if name not in known]
    if found:
        raise SGLangError(found)
    models, runtimes, applications = without_nulls(models), without_nulls(runtimes), without_nulls(applications)
    chosen = [app for app in applications if _selected(app, only)]
    used = [app for app in chosen if app.get("state", "present") != "absent"]
    if only is not None:
        models = [m for m in models if m["name"] in {app["model"] for app in used}]
        runtimes = [r for r in runtimes if r["name"] in {app["runtime"] for app in used}]
    named_runtimes = _named(runtimes)
    objects = [model_object(m) for m in models] + [runtime_object(r) for r in runtimes]
    per_app, absent, leftovers, namespaces = {}, [], [], set()
    for app in chosen:
        if app.get("state", "present") == "absent":
            obj = _absent_service(app)
            absent.append(ref(obj))
            leftovers.extend(leftover_selectors(app))
        else:
            obj = inference_service_object(app, named_runtimes[app["runtime"]])
            objects.append(obj)
            namespaces.add(obj["metadata"]["namespace"])
        per_app[app_key(app)] = [ref(obj)]
    return {"objects": objects, "applications": per_app, "absent": absent, "absent_selectors": leftovers,
            "namespaces": sorted(namespaces)}
