# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Huawei MindCluster's cluster components, the pure parts (no Ansible, no API calls): which components
exist and what their official release YAMLs are called, where those files are in a release directory,
the Kubernetes objects in a YAML text, and the order they are applied and deleted in.

Release file names are those of MindCluster's ``build.sh`` scripts (``modify_version`` / ``copy_yaml``),
tag v26.0.1 of Ascend/mind-cluster: ``device-plugin-volcano-v{ver}.yaml`` (Ascend Device Plugin, Volcano
mode, the per-chip 910 file selecting ``accelerator=huawei-Ascend910``), ``volcano-v{volcano}.yaml``,
``clusterd-v{ver}.yaml``, ``noded-v{ver}.yaml`` and ``npu-exporter-v{ver}.yaml``. Every function returns
problems as sentences (or raises :class:`MindClusterError` with them) so that one failure names them all
before anything is applied.
"""

from __future__ import annotations

import json
import os
import re

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_names

# Install order of MindCluster's guide (device plugin, Volcano, NodeD, ClusterD, NPU exporter) and each
# component's release file name ({version}: MindCluster's, {volcano_version}: the Volcano build's).
COMPONENTS = {
    "ascend-device-plugin": "device-plugin-volcano-v{version}.yaml",
    "volcano": "volcano-v{volcano_version}.yaml",
    "noded": "noded-v{version}.yaml",
    "clusterd": "clusterd-v{version}.yaml",
    "npu-exporter": "npu-exporter-v{version}.yaml",
}

# Namespaces the guide creates by hand before any YAML is applied (01_preparing_for_installation.md).
GUIDE_NAMESPACES = ("mindx-dl", "cluster-system")
# Never deleted, whatever a manifest or a record says.
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet")

# Apply order by kind (Helm's install order, shortened); kinds not listed come after these, in file order.
KIND_ORDER = (
    "Namespace", "CustomResourceDefinition", "PriorityClass", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "ConfigMap", "StorageClass", "PersistentVolume",
    "PersistentVolumeClaim", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service",
    "DaemonSet", "Pod", "ReplicaSet", "Deployment", "StatefulSet", "Job", "CronJob",
)

# Kinds without a namespace (the built-in ones the release YAMLs can hold; CRDs in the set add theirs).
CLUSTER_SCOPED_KINDS = frozenset((
    "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
    "StorageClass", "PersistentVolume", "RuntimeClass", "IngressClass", "CSIDriver", "APIService",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding", "Node",
))

_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]*$")
_FILE_NAME_RE = re.compile(r"^[^/\0]+$")


class MindClusterError(ValueError):
    """Problems that stop the role before its first change (``problems``: one sentence each)."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


# ----------------------------------------------------------------------------------- settings
def bare_version(version):
    """``"v26.0.1"`` or ``"26.0.1"`` -> ``"26.0.1"`` (release files and image tags add the ``v``)."""
    text = str(version if version is not None else "").strip()
    return text[1:] if text[:1] in ("v", "V") and text[1:2].isdigit() else text


def component_problems(components):
    """Problems of the list of components to install: a list of known names, each once, not empty."""
    if not isinstance(components, (list, tuple)) or isinstance(components, str):
        return [f"mindcluster_components must be a list of component names, got {components!r}"]
    names = [str(c) for c in components]
    problems = []
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        problems.append(f"unknown MindCluster component(s) {', '.join(unknown)}: "
                        f"mindcluster_components takes some of {', '.join(COMPONENTS)}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(f"mindcluster_components names {', '.join(twice)} more than once")
    if not names:
        problems.append("mindcluster_components is empty: nothing to install "
                        "(mindcluster_state: absent removes the components)")
    return problems


def settings_problems(settings):
    """Every problem of the role's settings, one sentence each (empty: fine).

    ``settings`` keys (all optional): ``components`` (list), ``version``, ``volcano_version``,
    ``release_files`` (component -> file name overrides), ``node_selectors`` (component -> label dict),
    ``images`` (variable name -> image reference)."""
    problems = []
    if "components" in settings:
        problems += component_problems(settings["components"])
    for key, var in (("version", "mindcluster_version"), ("volcano_version", "mindcluster_volcano_version")):
        if key in settings and not _VERSION_RE.match(bare_version(settings[key])):
            problems.append(f"{var} must be a version such as 26.0.1, got {settings[key]!r}")
    overrides = settings.get("release_files") or {}
    if not isinstance(overrides, dict):
        problems.append(f"mindcluster_release_files must map component names to file names, got {overrides!r}")
        overrides = {}
    for component, name in overrides.items():
        if component not in COMPONENTS:
            problems.append(f"mindcluster_release_files: unknown component {component!r} "
                            f"(one of {', '.join(COMPONENTS)})")
        if not isinstance(name, str) or not _FILE_NAME_RE.match(name) or name in (".", ".."):
            problems.append(f"mindcluster_release_files[{component}] must be a file name (no directory), "
                            f"got {name!r}")
    for component, selector in (settings.get("node_selectors") or {}).items():
        var = f"mindcluster_{component.replace('-', '_')}_node_selector"
        if not isinstance(selector, dict) or not selector:
            problems.append(f"{var} must be a non-empty dict of Node labels, got {selector!r}")
            continue
        for key, message in k8s_names.validate_labels({str(k): v if isinstance(v, str) else str(v)
                                                       for k, v in selector.items()}):
            problems.append(f"{var}: label {key!r}: {message}")
    for var, image in (settings.get("images") or {}).items():
        if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
            problems.append(f"{var} must be an image reference without spaces, got {image!r}")
    return problems


def release_file_names(components, version, volcano_version, overrides=None):
    """Component -> the file its release ships (overrides win), in the guide's install order."""
    problems = component_problems(components)
    if problems:
        raise MindClusterError(problems)
    overrides = overrides or {}
    values = {"version": bare_version(version), "volcano_version": bare_version(volcano_version)}
    return {c: str(overrides.get(c) or COMPONENTS[c].format(**values)) for c in COMPONENTS if c in components}


# ----------------------------------------------------------------------------------- release directory
def locate_release_files(root, names):
    """Find each wanted file name under ``root`` (recursively: a release unpacks into one directory per
    component zip). Returns ``(component -> path, problems)``; a name found twice is a problem too."""
    if not os.path.isdir(root):
        return {}, [f"release directory {root} does not exist or is not a directory"]
    wanted = {name: component for component, name in names.items()}
    seen = {name: [] for name in wanted}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for filename in sorted(filenames):
            if filename in seen and os.path.isfile(os.path.join(dirpath, filename)):
                seen[filename].append(os.path.join(dirpath, filename))
    found, problems = {}, []
    missing = [f"{name} (component {wanted[name]})" for name, paths in seen.items() if not paths]
    if missing:
        problems.append(f"release directory {root} has no {', '.join(missing)}")
    for name, paths in seen.items():
        if len(paths) > 1:
            problems.append(f"release directory {root} has {name} {len(paths)} times ({', '.join(paths)}): "
                            f"keep one, or name the file in mindcluster_release_files")
        elif paths:
            found[wanted[name]] = paths[0]
    return {c: found[c] for c in names if c in found}, problems


# ----------------------------------------------------------------------------------- manifests
def parse_manifests(text, source="manifest"):
    """The Kubernetes objects of a (multi-document) YAML text, in order: empty documents are skipped,
    ``kind: List`` is unpacked. Returns ``(objects, problems)``."""
    import yaml

    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        return [], [f"{source}: not valid YAML: {detail}"]
    objects, problems = [], []
    for index, doc in enumerate(documents, start=1):
        if doc is None:
            continue
        items = doc.get("items") if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
        for item in items or []:
            where = f"{source} document {index}"
            problem = object_problem(item)
            if problem:
                problems.append(f"{where}: {problem}")
            else:
                objects.append(item)
    return objects, problems


def object_problem(obj):
    if not isinstance(obj, dict):
        return f"not a Kubernetes object (a {type(obj).__name__})"
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            return f"no {key}"
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        return f"{obj['kind']} without metadata.name"
    if "namespace" in meta and (not isinstance(meta["namespace"], str) or not meta["namespace"]):
        return f"{obj['kind']} {meta['name']}: metadata.namespace must be a name"
    return None


def api_group(api_version):
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def object_key(obj):
    """Identity of an object whatever its API version: ``(group, kind, namespace, name)``."""
    meta = obj.get("metadata") or {}
    return (api_group(obj["apiVersion"]), obj["kind"], meta.get("namespace") or "", meta["name"])


def object_ref(obj):
    """What it takes to find (and delete) an object: apiVersion, kind, metadata name and namespace."""
    meta = obj.get("metadata") or {}
    ref = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {"name": meta["name"]}}
    if meta.get("namespace"):
        ref["metadata"]["namespace"] = meta["namespace"]
    return ref


def describe(obj):
    """``"DaemonSet kube-system/ascend-device-plugin-daemonset-910"``; a list: ``"3 objects: ..."``."""
    if isinstance(obj, (list, tuple)):
        return f"{len(obj)} object{'' if len(obj) == 1 else 's'}: " + ", ".join(describe(o) for o in obj)
    if object_problem(obj):
        return str(obj)
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']} {where}{meta['name']}"


def _kind_rank(kind):
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def _crd_kinds(objects):
    """(group, kind) -> scope of the CRDs among ``objects``."""
    kinds = {}
    for obj in objects:
        if obj["kind"] == "CustomResourceDefinition" and api_group(obj["apiVersion"]) == "apiextensions.k8s.io":
            spec = obj.get("spec") or {}
            kinds[(spec.get("group", ""), (spec.get("names") or {}).get("kind", ""))] = spec.get("scope", "")
    return kinds


def plan(manifests, components=None, existing_namespaces=None, check_mode=False, existing_crds=None):
    """What to apply, in order, from ``manifests`` (source -> objects; sources applied in the order given,
    the role's own ``namespaces`` first).

    Returns a dict:

    * ``namespaces``, ``crds``, ``objects``: the three batches (Namespaces; CRDs; everything else in kind
      order, then file order), each a list of objects;
    * ``deferred``: in check mode, objects that cannot be dry-run yet (their namespace, or the CRD of their
      kind, is only created by this run); they are reported as changes instead;
    * ``workloads``: refs of the Deployments, DaemonSets and StatefulSets (their rollout is waited on);
    * ``placements``: each of those as ``{workload, kind, node_selector}`` (a Deployment whose nodeSelector
      matches no Node would never become available: the role checks that first);
    * ``refs``: every object's ref in apply order (the record of what the role applied);
    * ``crds_used``: names of the CRDs in the set whose kinds other objects of the set have (in check mode
      the role reads whether they exist, and passes them as ``existing_crds``);
    * ``problems``: an object defined twice differently, an object in a namespace that neither exists
      nor is created (only checked when ``existing_namespaces`` is given).
    """
    order = list(components or [])
    sources = [s for s in manifests if s not in order] + [s for s in order if s in manifests]
    chosen, origin, problems = {}, {}, []
    for source in sources:
        for obj in manifests[source] or []:
            key = object_key(obj)
            if key in chosen:
                if origin[key] == "namespaces" and obj["kind"] == "Namespace":
                    # A component's own Namespace object wins over the guide's bare one.
                    chosen[key], origin[key] = obj, source
                elif _comparable(chosen[key]) != _comparable(obj):
                    problems.append(f"{describe(obj)} is defined twice, differently ({origin[key]} and {source})")
                continue
            chosen[key], origin[key] = obj, source
    objects = list(chosen.values())
    crd_kinds = _crd_kinds(objects)
    namespaces = [o for o in objects if o["kind"] == "Namespace" and o["apiVersion"] == "v1"]
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    rest = [(i, o) for i, o in enumerate(objects) if o["kind"] not in ("Namespace", "CustomResourceDefinition")]
    rest = [pair[1] for pair in sorted(rest, key=lambda pair: (_kind_rank(pair[1]["kind"]), pair[0]))]
    ordered = namespaces + crds + rest
    created_namespaces = {o["metadata"]["name"] for o in namespaces}
    existing = None if existing_namespaces is None else {str(n) for n in existing_namespaces}
    if existing is not None:
        for obj in rest:
            ns = (obj.get("metadata") or {}).get("namespace")
            if ns and ns not in created_namespaces and ns not in existing:
                problems.append(f"{describe(obj)} ({origin[object_key(obj)]}) is in namespace {ns}, "
                                "which neither exists nor is created by the selected components")
    used_crds = [_crd_name(crds, gk) for gk in crd_kinds
                 if any((api_group(o["apiVersion"]), o["kind"]) == gk for o in rest)]
    deferred = []
    if check_mode:
        # A dry run cannot create an object in a namespace, or of a kind, that only this run creates.
        present_crds = {str(n) for n in (existing_crds or [])}
        pending_kinds = {gk for gk in crd_kinds if _crd_name(crds, gk) not in present_crds}
        deferred = [o for o in rest
                    if (existing is not None and (o.get("metadata") or {}).get("namespace")
                        and o["metadata"]["namespace"] not in existing)
                    or (api_group(o["apiVersion"]), o["kind"]) in pending_kinds]
    return {
        "namespaces": namespaces,
        "crds": crds,
        "objects": [o for o in rest if not any(o is d for d in deferred)],
        "deferred": deferred,
        "workloads": [object_ref(o) for o in rest
                      if o["kind"] in WORKLOAD_KINDS and api_group(o["apiVersion"]) == "apps"],
        "refs": [object_ref(o) for o in ordered],
        "placements": [{"workload": describe(o), "kind": o["kind"], "node_selector": _node_selector(o)}
                       for o in rest if o["kind"] in WORKLOAD_KINDS and api_group(o["apiVersion"]) == "apps"],
        "crds_used": sorted(set(used_crds)),
        "problems": problems,
    }


def _node_selector(workload):
    pod_spec = (((workload.get("spec") or {}).get("template") or {}).get("spec") or {})
    selector = pod_spec.get("nodeSelector") or {}
    return {str(k): str(v) for k, v in selector.items()} if isinstance(selector, dict) else {}


def _crd_name(crds, group_kind):
    for crd in crds:
        spec = crd.get("spec") or {}
        if (spec.get("group", ""), (spec.get("names") or {}).get("kind", "")) == group_kind:
            return crd["metadata"]["name"]
    return ""


def _comparable(obj):
    return json.dumps(obj, sort_keys=True, default=str)


# ----------------------------------------------------------------------------------- removal
def removal_plan(refs, keep_namespaces=False, exclude=None):
    """The objects to delete, in order: the reverse of the apply order (workloads first, so their pods go
    and the Nodes stop advertising NPUs; RBAC; CRDs; Namespaces last). Duplicates are dropped, protected
    namespaces are never listed, Namespaces only unless ``keep_namespaces``; refs matching one in
    ``exclude`` (by group, kind, namespace, name) are left out (what is still wanted), and so is a Namespace
    that one of them lives in."""
    wanted = [r for r in (exclude or []) if not object_problem(r)]
    excluded = {object_key(r) for r in wanted}
    in_use = {(r.get("metadata") or {}).get("namespace") for r in wanted} - {None, ""}
    unique, seen = [], set()
    for ref in refs or []:
        if object_problem(ref):
            continue
        key = object_key(ref)
        if key in seen or key in excluded:
            continue
        seen.add(key)
        if ref["kind"] == "Namespace" and (keep_namespaces or ref["metadata"]["name"] in PROTECTED_NAMESPACES
                                           or ref["metadata"]["name"] in in_use):
            continue
        unique.append(object_ref(ref))
    ranked = sorted(enumerate(unique), key=lambda pair: (_removal_rank(pair[1]["kind"]), -pair[0]))
    return [pair[1] for pair in ranked]


def _removal_rank(kind):
    """Workloads, then the other namespaced objects (and custom resources), cluster-wide RBAC, CRDs, Namespaces."""
    if kind in WORKLOAD_KINDS:
        return 0
    return {"ClusterRole": 2, "ClusterRoleBinding": 2, "CustomResourceDefinition": 3, "Namespace": 4}.get(kind, 1)
