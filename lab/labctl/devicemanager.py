"""Device manager stand-in (lab fixture): what a kubelet's device manager and NVIDIA GPU Feature
Discovery would do on a lab Node, since kwok (the lab's kubelet stand-in) runs no container.

In a real cluster the NVIDIA device plugin (chart ``nvidia-device-plugin``) registers with the
kubelet, which advertises ``nvidia.com/gpu`` in the Node's ``status.capacity``/``allocatable``;
GPU Feature Discovery (GFD) writes ``nvidia.com/gpu.*`` labels; the Ascend device plugin
advertises ``huawei.com/Ascend910`` (or ``Ascend310P``). In the lab those pods are Running on kwok
Nodes but nothing runs, so this stand-in does it for them:

* while a device-plugin pod (found by label selectors: the NVIDIA chart's
  ``app.kubernetes.io/name=nvidia-device-plugin`` with its ``nvidia-device-plugin-ctr`` container,
  the static manifest's ``name=nvidia-device-plugin-ds``, the Ascend plugin's
  ``name=ascend-device-plugin-ds``) is Running on a Node whose lab machine (Node name = machine
  name in the fleet state, ``lab/state/fleet/fleet.json``) has devices of that vendor, the Node's
  capacity and allocatable get ``devices x replicas`` of the resource;
* the replicas come from the plugin's own configuration, read the way its ``config-manager`` reads
  it: the ConfigMap mounted at ``CONFIG_FILE_SRCDIR``, the file named by the Node label
  ``nvidia.com/device-plugin.config``, else ``DEFAULT_CONFIG``, else the fallback strategies
  (``named``: a config called ``default``; ``single``: the only one; ``empty``: none).
  ``sharing.timeSlicing`` (or ``sharing.mps``) ``resources[name=nvidia.com/gpu].replicas`` multiplies
  the count; ``renameByDefault: true`` advertises ``nvidia.com/gpu.shared`` instead. A config the
  real plugin would refuse (unknown version, ``replicas`` < 2, no ``resources``, a missing config
  name) makes the pod crash for real, so nothing is advertised and the stand-in logs why;
* while a GFD pod (or container) runs there, the labels ``nvidia.com/gpu.product`` (``-SHARED``
  appended when shared and not renamed), ``.count``, ``.memory`` (MiB), ``.replicas`` and
  ``nvidia.com/gpu.sharing-strategy`` (``none|time-slicing|mps``), as GFD computes them;
* when the pod goes (deleted, terminating, not Running), what the stand-in set is taken away again.
  It records what it owns in the Node annotation ``lab.aicluster.io/device-manager`` and never
  touches other resources or labels (``nvidia.com/gpu.present`` stays the node_labels role's).

How it coexists with kwok: kwok's stages patch Node status with strategic-merge patches. Its
``node-initialize`` stage (only while the Node is not Ready) copies ``status.capacity`` and
``allocatable`` as they are; its periodic ``node-heartbeat-with-lease`` stage writes conditions,
addresses and daemon endpoints only. So a status patch adding ``nvidia.com/gpu`` sticks; the
stand-in also re-checks a Node on every change of it and re-applies what is missing.

Not emulated: the kubelet's admission of ``failRequestsGreaterThanOne`` (parsed into
``GpuSharing.fail_requests_greater_than_one``, not enforced), MIG, per-device health, the allocation
of particular devices to pods (the scheduler only needs the counts).

One process per cluster, a client only (it binds nothing), started and stopped like the other
stand-ins (pid file and log under ``lab/state/devicemanager/``)::

    up(cluster="worker")    start it in the background (no-op if running); waits for its first sync
    down(cluster=None)      stop it (all clusters by default)
    status()                what runs, for which cluster, what it advertises
    run(cluster)            the watch/reconcile loop itself (the background process runs this)
    desired_node_state()    the pure part: what one Node should carry
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labctl import paths
from labctl.standin import StandIn, error_line, list_then_watch

OWNER_ANNOTATION = "lab.aicluster.io/device-manager"
CONFIG_LABEL = "nvidia.com/device-plugin.config"
NVIDIA_GPU = "nvidia.com/gpu"
SHARED_SUFFIX = ".shared"
GFD_LABEL_PREFIX = "nvidia.com/gpu."

NVIDIA_PLUGIN = "nvidia-device-plugin"
GFD = "gpu-feature-discovery"
ASCEND_PLUGIN = "ascend-device-plugin"

# Ascend models of the lab fleet -> the whole-chip resource the Ascend device plugin advertises.
ASCEND_RESOURCES = {"910": "huawei.com/Ascend910", "910B": "huawei.com/Ascend910", "910A3": "huawei.com/Ascend910",
                    "310P": "huawei.com/Ascend310P", "310": "huawei.com/Ascend310"}

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
WATCH_SECONDS = 60          # server-side timeout of one watch request; the loop re-watches from there
RESYNC_SECONDS = 60.0       # every Node is re-checked this often even without events
FLEET_POLL_SECONDS = 2.0    # how often the fleet state file is checked for changes
REQUEST_TIMEOUT = 15


class DeviceManagerError(RuntimeError):
    """One clear line about what went wrong with the device manager stand-in."""


# ------------------------------------------------------------------ fleet: which Node has what
@dataclass(frozen=True)
class Accelerators:
    """The accelerators of one lab machine (from the fleet state), as the vendor tools report them."""

    vendor: str            # nvidia | ascend
    model: str             # fleet model key: A100, T4, 910B, ...
    count: int
    product_name: str      # nvidia-smi name / npu-smi chip name
    memory_mib: int

    @classmethod
    def from_machine(cls, machine: Mapping[str, Any]) -> Accelerators | None:
        from labctl.fleet.errors import FleetError
        from labctl.fleet.models import lookup_model

        if machine.get("vendor") in (None, "", "none") or not machine.get("count"):
            return None
        try:
            model = lookup_model(str(machine.get("model", "")))
        except FleetError:
            return None
        return cls(vendor=model.vendor, model=model.model, count=int(machine["count"]),
                   product_name=model.product_name, memory_mib=model.memory_mib)


def fleet_state_path() -> Path:
    from labctl.fleet import runtime

    return runtime.STATE_FILE


def load_fleet(path: Path) -> dict[str, Accelerators]:
    """Machine name -> its accelerators, from a fleet state file (``{"machines": [...]}``); machines
    without accelerators are left out. A missing or unreadable file is an empty fleet."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    fleet = {}
    for machine in data.get("machines") or []:
        if isinstance(machine, dict) and machine.get("name"):
            acc = Accelerators.from_machine(machine)
            if acc is not None:
                fleet[machine["name"]] = acc
    return fleet


# ------------------------------------------------------------------ which pods are device plugins
@dataclass(frozen=True)
class PodMatcher:
    """Pods playing ``role``: labels matching any of ``selectors`` (Kubernetes equality-based
    selector syntax: ``a=b,c!=d,e,!f``) and, unless ``containers`` is empty, a container whose
    name or command (basename of its first word) is one of ``containers``."""

    role: str
    selectors: tuple[str, ...]
    containers: tuple[str, ...] = ()


DEFAULT_MATCHERS: tuple[PodMatcher, ...] = (
    # The chart labels the plugin's and GFD's pods alike (app.kubernetes.io/name=nvidia-device-plugin,
    # app.kubernetes.io/instance=<release>); their containers tell them apart.
    PodMatcher(NVIDIA_PLUGIN, ("app.kubernetes.io/name=nvidia-device-plugin", "name=nvidia-device-plugin-ds"),
               ("nvidia-device-plugin-ctr", "nvidia-device-plugin")),
    PodMatcher(GFD, ("app.kubernetes.io/name=nvidia-device-plugin", "app.kubernetes.io/name=gpu-feature-discovery"),
               ("gpu-feature-discovery-ctr", "gpu-feature-discovery")),
    # MindCluster's manifests (unified, per-chip, Volcano, its Helm chart) all label name=ascend-device-plugin-ds.
    PodMatcher(ASCEND_PLUGIN, ("name=ascend-device-plugin-ds",)),
)


def parse_selector(selector: str) -> list[tuple[str, str, str | None]]:
    """``"a=b,c!=d,e,!f"`` -> ``[("=", "a", "b"), ("!=", "c", "d"), ("exists", "e", None), ("!exists", "f", None)]``."""
    terms: list[tuple[str, str, str | None]] = []
    for raw in selector.split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term:
            key, value = term.split("!=", 1)
            terms.append(("!=", key.strip(), value.strip()))
        elif "=" in term:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            terms.append(("=", key.strip(), value.strip()))
        elif term.startswith("!"):
            terms.append(("!exists", term[1:].strip(), None))
        elif " " in term or "(" in term:
            raise ValueError(f"unsupported label selector term {term!r} (use a=b, a!=b, a or !a)")
        else:
            terms.append(("exists", term, None))
    if not terms:
        raise ValueError(f"empty label selector {selector!r}")
    return terms


def selector_matches(selector: str, labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    for op, key, value in parse_selector(selector):
        if (op == "=" and labels.get(key) != value) or (op == "!=" and labels.get(key) == value) \
                or (op == "exists" and key not in labels) or (op == "!exists" and key in labels):
            return False
    return True


def _containers(pod: Mapping, init: bool = False) -> list[dict]:
    spec = pod.get("spec") or {}
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or []) if init \
        else list(spec.get("containers") or [])


def _container_ids(container: Mapping) -> set[str]:
    ids = {container.get("name") or ""}
    command = container.get("command") or []
    if command:
        ids.add(posixpath.basename(str(command[0])))
    return ids - {""}


def pod_roles(pod: Mapping, matchers: Iterable[PodMatcher] = DEFAULT_MATCHERS) -> set[str]:
    """The device-plugin roles a pod plays (usually none or one)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    roles = set()
    for m in matchers:
        if not any(selector_matches(s, labels) for s in m.selectors):
            continue
        if not m.containers or any(_container_ids(c) & set(m.containers) for c in _containers(pod)):
            roles.add(m.role)
    return roles


def might_play_a_role(pod: Mapping, matchers: Iterable[PodMatcher] = DEFAULT_MATCHERS) -> bool:
    """Labels alone match some matcher (what the stand-in keeps in its cache)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return any(selector_matches(s, labels) for m in matchers for s in m.selectors)


def pod_running(pod: Mapping) -> bool:
    """Running on a Node and not terminating: a kubelet would have the plugin registered."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    return bool(spec.get("nodeName")) and status.get("phase") == "Running" and not meta.get("deletionTimestamp")


# ------------------------------------------------------------------ NVIDIA plugin configuration
@dataclass(frozen=True)
class ConfigSource:
    """Where a device-plugin (or GFD) pod gets its config file from."""

    namespace: str
    configmap: str
    key: str | None = None          # a single file mounted straight from the ConfigMap
    node_label: str = CONFIG_LABEL
    default: str = ""
    fallbacks: tuple[str, ...] = ("named", "single")


class PluginConfigError(ValueError):
    """The plugin would refuse this configuration (its pod would crash-loop)."""


def _env(container: Mapping) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in container.get("env") or []
            if isinstance(e, dict) and e.get("name") and e.get("value") is not None}


def _configmap_at(pod: Mapping, container: Mapping, path: str) -> tuple[str, str | None] | None:
    """(ConfigMap name, key or None for a directory) mounted at ``path`` (a dir or a file) in ``container``."""
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    path = posixpath.normpath(path)
    for mount in container.get("volumeMounts") or []:
        cm = (volumes.get(mount.get("name")) or {}).get("configMap")
        if not cm or not cm.get("name"):
            continue
        mount_path = posixpath.normpath(mount.get("mountPath", ""))
        if mount_path == path:
            return cm["name"], mount.get("subPath") or None
        if mount_path == posixpath.dirname(path) and not mount.get("subPath"):
            return cm["name"], posixpath.basename(path)
    return None


def _arg_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def config_source(pod: Mapping) -> ConfigSource | None:
    """The plugin's config source as its pod spec declares it: the chart's ``config-manager``
    (init container or sidecar: ``NODE_LABEL``, ``CONFIG_FILE_SRCDIR``, ``DEFAULT_CONFIG``,
    ``FALLBACK_STRATEGIES``) or a config file mounted from a ConfigMap (``CONFIG_FILE`` /
    ``--config-file``). None: no config file, the plugin runs on its defaults."""
    meta = pod.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    for c in _containers(pod, init=True):
        if "config-manager" not in _container_ids(c):
            continue
        env = _env(c)
        src = _configmap_at(pod, c, env.get("CONFIG_FILE_SRCDIR", "/available-configs"))
        if src is None:
            continue
        fallbacks = tuple(s.strip() for s in env.get("FALLBACK_STRATEGIES", "named,single").split(",") if s.strip())
        return ConfigSource(namespace, src[0], None, env.get("NODE_LABEL") or CONFIG_LABEL,
                            env.get("DEFAULT_CONFIG", ""), fallbacks)
    for c in _containers(pod):
        path = _env(c).get("CONFIG_FILE") or _arg_value(list(c.get("args") or []) + list(c.get("command") or []),
                                                        "--config-file")
        if path:
            src = _configmap_at(pod, c, path)
            if src is not None and src[1]:
                return ConfigSource(namespace, src[0], src[1])
    return None


def select_config(source: ConfigSource, files: Mapping[str, str] | None, node_labels: Mapping[str, str]) -> str | None:
    """The config file text the plugin ends up with (None: the empty config), the way
    config-manager picks it; raises PluginConfigError where config-manager fails."""
    if files is None:
        raise PluginConfigError(f"ConfigMap {source.namespace}/{source.configmap} does not exist")
    if source.key is not None:
        if source.key not in files:
            raise PluginConfigError(f"ConfigMap {source.namespace}/{source.configmap} has no key {source.key!r}")
        return files[source.key]
    if not files:
        raise PluginConfigError(f"ConfigMap {source.namespace}/{source.configmap}: no configuration files available")
    chosen = (node_labels or {}).get(source.node_label, "")
    if chosen:
        if chosen not in files:
            raise PluginConfigError(f"specified config {chosen} does not exist (label {source.node_label})")
        return files[chosen]
    if source.default:
        if source.default not in files:
            raise PluginConfigError(f"specified config {source.default} does not exist (DEFAULT_CONFIG)")
        return files[source.default]
    for strategy in source.fallbacks:
        if strategy == "named" and "default" in files:
            return files["default"]
        if strategy == "single" and len(files) == 1:
            return next(iter(files.values()))
        if strategy == "empty":
            return None
        if strategy not in ("named", "single"):
            raise PluginConfigError(f"unknown fallback strategy: {strategy}")
    raise PluginConfigError("no config was set, no default was provided, and all fallbacks failed")


@dataclass(frozen=True)
class GpuSharing:
    """What a device-plugin config says about sharing ``nvidia.com/gpu``."""

    strategy: str = "none"          # none | time-slicing | mps
    replicas: int = 1
    renamed: bool = False           # renameByDefault: advertise nvidia.com/gpu.shared
    fail_requests_greater_than_one: bool = False

    @property
    def resource(self) -> str:
        return NVIDIA_GPU + SHARED_SUFFIX if self.renamed else NVIDIA_GPU

    @property
    def shared(self) -> bool:
        return self.replicas > 1


def _resource_name(name: Any) -> str:
    name = str(name or "")
    return name if name.startswith("nvidia.com/") else f"nvidia.com/{name}"


def _replicated(section: Any, where: str) -> dict:
    """Validate one ``sharing.timeSlicing``/``sharing.mps`` section as the plugin's parser does."""
    if not isinstance(section, dict):
        raise PluginConfigError(f"{where}: expected a mapping")
    resources = section.get("resources")
    if not resources or not isinstance(resources, list):
        raise PluginConfigError(f"{where}: no resources specified")
    rename = section.get("renameByDefault", False)
    if not isinstance(rename, bool):
        raise PluginConfigError(f"{where}.renameByDefault: expected true or false")
    fail = section.get("failRequestsGreaterThanOne")
    if fail is not None and not isinstance(fail, bool):
        raise PluginConfigError(f"{where}.failRequestsGreaterThanOne: expected true or false")
    parsed = []
    for i, r in enumerate(resources):
        if not isinstance(r, dict) or not r.get("name"):
            raise PluginConfigError(f"{where}.resources[{i}]: no resource name specified")
        if "replicas" not in r:
            raise PluginConfigError(f"{where}.resources[{i}]: no replicas specified")
        replicas = r["replicas"]
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise PluginConfigError(f"{where}.resources[{i}].replicas: expected an integer")
        if replicas < 2:
            raise PluginConfigError(f"{where}.resources[{i}]: number of replicas must be >= 2")
        parsed.append({"name": _resource_name(r["name"]), "replicas": replicas})
    return {"renameByDefault": rename, "failRequestsGreaterThanOne": fail, "resources": parsed}


def parse_sharing(text: str | None) -> GpuSharing:
    """The sharing a plugin config file (YAML or JSON; None = the empty config) yields for whole GPUs.

    Mirrors k8s-device-plugin ``api/config/v1``: ``version`` v1; per-resource ``rename`` and
    ``devices`` are ignored by the plugin (it warns), so ``renameByDefault`` alone decides the name;
    MPS wins over time-slicing; MPS defaults ``failRequestsGreaterThanOne`` to true."""
    if text is None or not text.strip():
        return GpuSharing()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PluginConfigError(f"unmarshal error: {str(exc).splitlines()[0]}") from None
    if doc is None:
        return GpuSharing()
    if not isinstance(doc, dict):
        raise PluginConfigError("unmarshal error: expected a mapping")
    version = doc.get("version") or "v1"
    if version != "v1":
        raise PluginConfigError(f"unknown version: {version}")
    sharing = doc.get("sharing") or {}
    if not isinstance(sharing, dict):
        raise PluginConfigError("sharing: expected a mapping")
    ts = _replicated(sharing["timeSlicing"], "sharing.timeSlicing") if sharing.get("timeSlicing") is not None else None
    mps = _replicated(sharing["mps"], "sharing.mps") if sharing.get("mps") is not None else None
    active, strategy = (mps, "mps") if mps is not None else (ts, "time-slicing")
    if active is None:
        return GpuSharing()
    entry = next((r for r in active["resources"] if r["name"] == NVIDIA_GPU), None)
    fail = active["failRequestsGreaterThanOne"]
    if fail is None:
        fail = strategy == "mps"
    if entry is None:
        return GpuSharing(fail_requests_greater_than_one=fail)
    return GpuSharing(strategy=strategy, replicas=entry["replicas"], renamed=active["renameByDefault"],
                      fail_requests_greater_than_one=fail)


def pod_sharing(pod: Mapping, configmaps: Mapping[tuple[str, str], Mapping[str, str]],
                node_labels: Mapping[str, str]) -> GpuSharing:
    """The GPU sharing a plugin/GFD pod runs with on a Node (raises PluginConfigError)."""
    source = config_source(pod)
    if source is None:
        return GpuSharing()
    return parse_sharing(select_config(source, configmaps.get((source.namespace, source.configmap)), node_labels))


def sanitise_product(name: str) -> str:
    """GFD's product label value: drop characters outside ``[A-Za-z0-9-_. ]``, join words with ``-``."""
    kept = "".join(ch for ch in name if ch.isascii() and (ch.isalnum() or ch in "-_. "))
    return "-".join(kept.split())


def gfd_labels(acc: Accelerators, sharing: GpuSharing) -> dict[str, str]:
    """The ``nvidia.com/gpu.*`` labels GFD writes for whole GPUs (k8s-device-plugin ``internal/lm/resource.go``)."""
    product = sanitise_product(acc.product_name)
    if sharing.shared and not sharing.renamed:
        product += "-SHARED"
    labels = {
        GFD_LABEL_PREFIX + "product": product,
        GFD_LABEL_PREFIX + "count": str(acc.count),
        GFD_LABEL_PREFIX + "replicas": str(sharing.replicas),
        GFD_LABEL_PREFIX + "sharing-strategy": sharing.strategy if sharing.shared else "none",
    }
    if acc.memory_mib:
        labels[GFD_LABEL_PREFIX + "memory"] = str(acc.memory_mib)
    return labels


def ascend_resource(acc: Accelerators) -> str:
    return ASCEND_RESOURCES.get(acc.model.upper(), "huawei.com/Ascend910")


# ------------------------------------------------------------------ the pure core
@dataclass
class NodeState:
    """What the stand-in wants on one Node: extended resources (capacity = allocatable), labels,
    and why something a pod asks for is not there (``problems``)."""

    resources: dict[str, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    sharing: GpuSharing | None = None     # the device plugin's, when one runs


def _newest(pods: list[Mapping]) -> Mapping:
    """Of several plugin pods on one Node the last one to start wins (its registration replaces the older)."""
    return max(pods, key=lambda p: ((p.get("metadata") or {}).get("creationTimestamp") or "",
                                    (p.get("metadata") or {}).get("name") or ""))


def _pod_name(pod: Mapping) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def desired_node_state(node: Mapping, accelerators: Accelerators | None, pods: Iterable[Mapping],
                       configmaps: Mapping[tuple[str, str], Mapping[str, str]],
                       matchers: Iterable[PodMatcher] = DEFAULT_MATCHERS) -> NodeState:
    """What one Node should carry, from its lab machine's accelerators (None: not a lab machine, or
    no accelerators), the pods in the cluster (only Running ones bound to this Node count), the
    ConfigMaps (``(namespace, name) -> data``) and the Node's own labels (the config choice)."""
    meta = node.get("metadata") or {}
    name, labels = meta.get("name"), meta.get("labels") or {}
    state = NodeState()
    if accelerators is None:
        return state
    matchers = tuple(matchers)
    by_role: dict[str, list[Mapping]] = {}
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") == name and pod_running(pod):
            for role in pod_roles(pod, matchers):
                by_role.setdefault(role, []).append(pod)
    if accelerators.vendor == "nvidia":
        if by_role.get(NVIDIA_PLUGIN):
            plugin = _newest(by_role[NVIDIA_PLUGIN])
            try:
                state.sharing = pod_sharing(plugin, configmaps, labels)
            except PluginConfigError as exc:
                state.problems.append(f"{_pod_name(plugin)}: {exc}")
            else:
                state.resources[state.sharing.resource] = accelerators.count * state.sharing.replicas
        if by_role.get(GFD):
            gfd = _newest(by_role[GFD])
            try:
                state.labels.update(gfd_labels(accelerators, pod_sharing(gfd, configmaps, labels)))
            except PluginConfigError as exc:
                state.problems.append(f"{_pod_name(gfd)}: {exc}")
    elif accelerators.vendor == "ascend" and by_role.get(ASCEND_PLUGIN):
        state.resources[ascend_resource(accelerators)] = accelerators.count
    return state


def owned(node: Mapping) -> tuple[set[str], set[str]]:
    """(resources, labels) the stand-in set on this Node, from its ownership annotation."""
    raw = ((node.get("metadata") or {}).get("annotations") or {}).get(OWNER_ANNOTATION)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return set(data.get("resources") or []), set(data.get("labels") or [])


def _ownership(resources: Iterable[str], labels: Iterable[str]) -> str | None:
    resources, labels = sorted(set(resources)), sorted(set(labels))
    if not resources and not labels:
        return None
    return json.dumps({"resources": resources, "labels": labels}, separators=(",", ":"))


@dataclass
class NodePatches:
    """Merge patches that bring a Node to its desired state, applied in this order so that the
    ownership annotation always covers everything the stand-in has set."""

    before: dict | None = None      # metadata: labels + annotation (resources owned so far and to come)
    status: dict | None = None      # status: capacity/allocatable
    after: dict | None = None       # metadata: the final annotation

    def __bool__(self) -> bool:
        return bool(self.before or self.status or self.after)


def plan_node_patches(node: Mapping, desired: NodeState) -> NodePatches:
    meta, status = node.get("metadata") or {}, node.get("status") or {}
    current_labels = meta.get("labels") or {}
    current_annotation = (meta.get("annotations") or {}).get(OWNER_ANNOTATION)
    owned_resources, owned_labels = owned(node)
    patches = NodePatches()

    label_patch: dict[str, str | None] = {}
    for key, value in desired.labels.items():
        if current_labels.get(key) != value:
            label_patch[key] = value
    for key in owned_labels - set(desired.labels):
        if key in current_labels:
            label_patch[key] = None

    status_patch: dict[str, dict[str, str | None]] = {}
    for section in ("capacity", "allocatable"):
        current = status.get(section) or {}
        changes: dict[str, str | None] = {r: str(n) for r, n in desired.resources.items() if current.get(r) != str(n)}
        changes.update({r: None for r in owned_resources - set(desired.resources) if r in current})
        if changes:
            status_patch[section] = changes
    if status_patch:
        patches.status = {"status": status_patch}

    interim = _ownership(owned_resources | set(desired.resources), desired.labels)
    final = _ownership(desired.resources, desired.labels)
    if label_patch or interim != current_annotation:
        before: dict[str, Any] = {}
        if label_patch:
            before["labels"] = label_patch
        if interim != current_annotation:
            before["annotations"] = {OWNER_ANNOTATION: interim}
        patches.before = {"metadata": before}
    if final != interim:
        patches.after = {"metadata": {"annotations": {OWNER_ANNOTATION: final}}}
    return patches


# ------------------------------------------------------------------ the watch/reconcile loop
MERGE_PATCH = "application/merge-patch+json"


class DeviceManager:
    """Caches of the worker cluster's device-plugin pods, ConfigMaps and Nodes kept by watches,
    and a reconcile of every Node they touch. ``core`` is a ``CoreV1Api`` (tests pass a fake)."""

    def __init__(self, core, fleet_state: Path, matchers: Iterable[PodMatcher] = DEFAULT_MATCHERS,
                 log: Callable[[str], None] = print, on_change: Callable[[], None] | None = None) -> None:
        self.core = core
        self.fleet_state = Path(fleet_state)
        self.matchers = tuple(matchers)
        self.log = log
        self.on_change = on_change or (lambda: None)
        self.stop = threading.Event()
        self.pods: dict[str, dict] = {}
        self.configmaps: dict[tuple[str, str], dict[str, str]] = {}
        self.nodes: dict[str, dict] = {}
        self.synced: dict[str, bool] = {"pods": False, "configmaps": False, "nodes": False}
        self.advertised: dict[str, dict] = {}
        self.fleet: dict[str, Accelerators] = {}
        self._fleet_stamp: tuple | None = ("not loaded",)
        self._problems: dict[str, list[str]] = {}
        self._dirty: set[str] = set()
        self._cond = threading.Condition()

    # --- caches (called from the watch threads, or directly by tests)
    def _mark(self, names: Iterable[str | None]) -> None:
        with self._cond:
            self._dirty.update(n for n in names if n)
            self._cond.notify()

    def mark_all(self) -> None:
        with self._cond:
            self._dirty.update(self.nodes)
            self._cond.notify()

    def replace(self, kind: str, items: list[dict]) -> None:
        """A fresh list of one kind (after a (re)list)."""
        with self._cond:
            if kind == "pods":
                self.pods = {p["metadata"]["uid"]: p for p in items if might_play_a_role(p, self.matchers)}
            elif kind == "configmaps":
                self.configmaps = {(c["metadata"]["namespace"], c["metadata"]["name"]): dict(c.get("data") or {})
                                   for c in items}
            else:
                self._dirty.update(self.nodes)  # Nodes deleted while the watch was down are forgotten too
                self.nodes = {n["metadata"]["name"]: n for n in items}
            self.synced[kind] = True
            self._dirty.update(self.nodes)
            self._cond.notify()

    def event(self, kind: str, typ: str, obj: dict) -> None:
        """One watch event (ADDED, MODIFIED, DELETED)."""
        meta = obj.get("metadata") or {}
        with self._cond:
            if kind == "pods":
                old = self.pods.pop(meta.get("uid"), None)
                if typ != "DELETED" and might_play_a_role(obj, self.matchers):
                    self.pods[meta["uid"]] = obj
                if old is not None or meta.get("uid") in self.pods:
                    self._dirty.update(n for n in ((old or {}).get("spec", {}).get("nodeName"),
                                                   (obj.get("spec") or {}).get("nodeName")) if n)
            elif kind == "configmaps":
                key = (meta.get("namespace"), meta.get("name"))
                if typ == "DELETED":
                    self.configmaps.pop(key, None)
                else:
                    self.configmaps[key] = dict(obj.get("data") or {})
                self._dirty.update((p.get("spec") or {}).get("nodeName") for p in self.pods.values())
                self._dirty.discard(None)
            else:
                name = meta.get("name")
                if typ == "DELETED":
                    self.nodes.pop(name, None)
                else:
                    self.nodes[name] = obj
                self._dirty.add(name)
            self._cond.notify()

    # --- reconcile
    def refresh_fleet(self) -> bool:
        """Reload the fleet state when its file changed; True if it did."""
        try:
            st = self.fleet_state.stat()
            stamp: tuple | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp == self._fleet_stamp:
            return False
        self._fleet_stamp = stamp
        fleet = load_fleet(self.fleet_state)
        changed = fleet != self.fleet
        self.fleet = fleet
        return changed

    def desired(self, name: str) -> NodeState | None:
        with self._cond:
            node = self.nodes.get(name)
            if node is None:
                return None
            pods = list(self.pods.values())
            configmaps = dict(self.configmaps)
        return desired_node_state(node, self.fleet.get(name), pods, configmaps, self.matchers)

    def _patch(self, name: str, body: dict, status: bool) -> dict:
        call = self.core.patch_node_status if status else self.core.patch_node
        resp = call(name, body, _content_type=MERGE_PATCH, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        return json.loads(resp.data)

    def reconcile(self, name: str) -> bool:
        """Bring one Node to its desired state; True if it was patched. API errors propagate
        (a 404 means the Node is gone: nothing to do)."""
        from kubernetes.client.exceptions import ApiException

        desired = self.desired(name)
        if desired is None:  # the Node is gone
            self._problems.pop(name, None)
            self._record(name, NodeState())
            return False
        problems = sorted(desired.problems)
        if problems != self._problems.get(name, []):
            for problem in problems:
                self.log(f"node {name}: nothing advertised for {problem}")
            self._problems[name] = problems
        with self._cond:
            node = self.nodes.get(name)
        if node is None:
            return False
        patches = plan_node_patches(node, desired)
        if not patches:
            self._record(name, desired)
            return False
        try:
            for body, status in ((patches.before, False), (patches.status, True), (patches.after, False)):
                if body:
                    node = self._patch(name, body, status)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        with self._cond:
            if name in self.nodes:
                self.nodes[name] = node
        what = ", ".join(f"{r}={n}" for r, n in sorted(desired.resources.items())) or "no device resources"
        sharing = f" ({desired.sharing.strategy} x{desired.sharing.replicas})" if desired.sharing and \
            desired.sharing.shared else ""
        labels = f", {len(desired.labels)} GFD labels" if desired.labels else ""
        self.log(f"node {name}: {what}{sharing}{labels}")
        self._record(name, desired)
        return True

    def _record(self, name: str, desired: NodeState) -> None:
        entry = {"resources": dict(desired.resources), "labels": dict(desired.labels)}
        if desired.resources or desired.labels:
            if self.advertised.get(name) != entry:
                self.advertised[name] = entry
                self.on_change()
        elif self.advertised.pop(name, None) is not None:
            self.on_change()

    def is_synced(self) -> bool:
        return all(self.synced.values())

    def work(self, timeout: float) -> None:
        """Wait up to ``timeout`` for dirty Nodes, then reconcile them (errors: retried later)."""
        with self._cond:
            if not self._dirty or not self.is_synced():
                self._cond.wait(timeout)
            if not self._dirty or not self.is_synced():
                return
            dirty, self._dirty = sorted(self._dirty), set()
        for name in dirty:
            if self.stop.is_set():
                return
            try:
                self.reconcile(name)
            except Exception as exc:
                self.log(f"node {name}: reconcile failed ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]});"
                         " retrying")
                self._mark([name])
                self.stop.wait(1.0)

    # --- watches
    def _list_fn(self, kind: str):
        return {"pods": self.core.list_pod_for_all_namespaces,
                "configmaps": self.core.list_config_map_for_all_namespaces,
                "nodes": self.core.list_node}[kind]

    def watch_forever(self, kind: str) -> None:
        """List, then watch from that resourceVersion; on expiry or any error list again (backoff)."""
        list_fn = self._list_fn(kind)

        def relist() -> str:
            body = json.loads(list_fn(_preload_content=False, _request_timeout=REQUEST_TIMEOUT).data)
            version = body["metadata"]["resourceVersion"]
            self.replace(kind, body.get("items") or [])
            return version

        def watch(version: str):
            return list_fn(watch=True, resource_version=version, allow_watch_bookmarks=True,
                           timeout_seconds=WATCH_SECONDS, _preload_content=False,
                           _request_timeout=(REQUEST_TIMEOUT, WATCH_SECONDS + 30))

        def failed(exc: Exception, backoff: float) -> None:
            self.synced[kind] = False
            self.log(f"watch {kind}: {error_line(exc)}; retrying in {backoff:g}s")

        list_then_watch(kind, self.stop, self.log, relist, watch, lambda typ, obj: self.event(kind, typ, obj), failed)

    def run(self) -> None:
        """Start the three watches and reconcile until ``stop`` is set."""
        self.refresh_fleet()
        self.log(f"fleet: {len(self.fleet)} machines with accelerators ({self.fleet_state})")
        for kind in ("nodes", "configmaps", "pods"):
            threading.Thread(target=self.watch_forever, args=(kind,), name=f"watch-{kind}", daemon=True).start()
        last_resync = time.monotonic()
        reported_synced = False
        while not self.stop.is_set():
            if self.refresh_fleet():
                self.log(f"fleet: {len(self.fleet)} machines with accelerators")
                self.mark_all()
            if time.monotonic() - last_resync >= RESYNC_SECONDS:
                last_resync = time.monotonic()
                self.mark_all()
            self.work(FLEET_POLL_SECONDS)
            if self.is_synced() != reported_synced:
                reported_synced = self.is_synced()
                self.on_change()


# ------------------------------------------------------------------ process: state files, run, up/down/status
def _status_fields(state: dict) -> dict:
    return {"nodes": len(state.get("advertised") or {}), "advertised": state.get("advertised") or {}}


STANDIN = StandIn(name="devicemanager", what="device manager", title="device manager stand-in", up_title="stand-in",
                  error=DeviceManagerError, stop_timeout=STOP_TIMEOUT, status_fields=_status_fields)


def state_dir() -> Path:
    return STANDIN.state_dir()


def _files(cluster: str) -> dict[str, Path]:
    return STANDIN.files(cluster)


def run(cluster: str = "worker", kubeconfig: Path | None = None, fleet_state: Path | None = None,
        matchers: Iterable[PodMatcher] = DEFAULT_MATCHERS, state_file: Path | None = None,
        stop: threading.Event | None = None, log: Callable[[str], None] | None = None) -> None:
    """The stand-in for one cluster, in the foreground, until ``stop`` is set (or SIGTERM/SIGINT when
    run as the background process). ``state_file`` (optional) gets pid, sync state and what is advertised."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    kubeconfig = Path(kubeconfig or paths.kubeconfig_path(cluster))
    fleet_state = Path(fleet_state or fleet_state_path())

    def say(message: str) -> None:
        (log or (lambda m: print(m, flush=True)))(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}")

    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    manager: DeviceManager

    def write_state() -> None:
        if state_file is not None:
            STANDIN.write_state(state_file, {"pid": os.getpid(), "cluster": cluster, "kubeconfig": str(kubeconfig),
                                             "fleet_state": str(fleet_state), "synced": manager.is_synced(),
                                             "advertised": manager.advertised})

    manager = DeviceManager(k8s.CoreV1Api(api), fleet_state, matchers, say, on_change=write_state)
    if stop is not None:
        manager.stop = stop
    say(f"device manager stand-in for cluster {cluster} ({kubeconfig})")
    write_state()
    try:
        manager.run()
    finally:
        manager.stop.set()
        api.close()
        say("stopped")


def matchers_from(selectors: Iterable[str]) -> tuple[PodMatcher, ...]:
    """``ROLE:SELECTOR`` overrides (repeatable; the roles given replace their default selectors)."""
    given: dict[str, list[str]] = {}
    for item in selectors:
        role, _, sel = item.partition(":")
        if role not in (NVIDIA_PLUGIN, GFD, ASCEND_PLUGIN) or not sel:
            raise DeviceManagerError(f"--selector {item!r}: expected ROLE:SELECTOR with ROLE one of "
                                     f"{NVIDIA_PLUGIN}, {GFD}, {ASCEND_PLUGIN}")
        try:
            parse_selector(sel)
        except ValueError as exc:
            raise DeviceManagerError(str(exc)) from None
        given.setdefault(role, []).append(sel)
    return tuple(PodMatcher(m.role, tuple(given[m.role]), m.containers) if m.role in given else m
                 for m in DEFAULT_MATCHERS)


def up(cluster: str = "worker", kubeconfig: Path | None = None, fleet_state: Path | None = None,
       selectors: Iterable[str] = (), timeout: float = START_TIMEOUT, log=None) -> dict:
    """Start the stand-in for ``cluster`` in the background (no-op if it runs) and wait until it has
    listed the cluster once. ``selectors``: ``ROLE:SELECTOR`` overrides (see :func:`matchers_from`).
    Returns :func:`status` of that cluster."""
    kubeconfig = Path(kubeconfig or paths.kubeconfig_path(cluster))
    fleet_state = Path(fleet_state or fleet_state_path())
    selectors = list(selectors)
    matchers_from(selectors)  # one clear error for a bad selector, before anything starts
    options = ["--fleet-state", str(fleet_state), *(a for sel in selectors for a in ("--selector", sel))]
    return STANDIN.up(cluster, kubeconfig, options, timeout, log)


def down(cluster: str | None = None, log=None) -> None:
    """Stop the stand-in of ``cluster`` (all of them by default). What it set on Nodes stays,
    as a kubelet that stops leaves its Node's status."""
    STANDIN.down(cluster, log)


def status() -> list[dict]:
    return STANDIN.status()


# ------------------------------------------------------------------ CLI
def _up_options(p_up: argparse.ArgumentParser) -> None:
    p_up.add_argument("--fleet-state", type=Path, default=None, help="default: lab/state/fleet/fleet.json")
    p_up.add_argument("--selector", action="append", metavar="ROLE:SELECTOR",
                      help=f"pod label selector of a role ({NVIDIA_PLUGIN}, {GFD}, {ASCEND_PLUGIN}); repeatable; "
                           "replaces that role's defaults")


def register_cli(subparsers) -> None:
    """Add ``devicemanager up|down|status`` to an argparse subparsers object (``func(args) -> int``)."""
    STANDIN.register_cli(
        subparsers, "the kubelet device manager + GPU Feature Discovery stand-in (lab fixture)", _up_options,
        lambda args, say: up(args.cluster, args.kubeconfig, args.fleet_state, args.selector or (), log=say),
        down_help="stop the stand-in (every cluster unless --cluster)")


def _run_options(p_run: argparse.ArgumentParser) -> None:
    p_run.add_argument("--fleet-state", type=Path, default=None)
    p_run.add_argument("--selector", action="append", default=[])


def _run(args: argparse.Namespace, stop_event: threading.Event) -> None:
    state_file = STANDIN.files(args.cluster, args.state_dir)["state"] if args.state_dir else None
    run(args.cluster, args.kubeconfig, args.fleet_state, matchers_from(args.selector), state_file, stop_event)


def main(argv: list[str] | None = None) -> int:
    """``python -m labctl.devicemanager run ...``: the background process."""
    return STANDIN.main(argv, _run_options, _run)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["DEFAULT_MATCHERS", "Accelerators", "DeviceManager", "DeviceManagerError", "GpuSharing", "NodeState",
           "PodMatcher", "desired_node_state", "down", "plan_node_patches", "register_cli", "run", "status", "up"]
