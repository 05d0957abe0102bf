# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Node label logic: desired labels per scheme and the ownership-aware plan (JSON merge patch)
used by the ``node_labels`` module. Label syntax lives in ``k8s_names``.

Pure functions only -- no Kubernetes client, no Ansible.

Label schemes (values as in shared/reference/accelerators.md and the cube-studio wiki,
shared/seeds/004_*):

* ``cube-studio``: ``cpu``/``gpu``/``vgpu``/``rdma``/``train``/``notebook``/``service`` = ``"true"``,
  ``org`` (default ``public``), ``gpu-type`` (e.g. ``A100``), ``share=true`` for shareable nodes;
  controller nodes get ``mysql redis kubeflow-dashboard kubeflow istio monitoring`` = ``"true"``.
* ``mindcluster`` (Ascend): compute nodes ``node-role.kubernetes.io/worker=worker``,
  ``workerselector=dls-worker-node``, ``host-arch=huawei-arm|huawei-x86``,
  ``accelerator=huawei-Ascend910|huawei-Ascend310P|huawei-Ascend310`` and, where known,
  ``accelerator-type``; the management node gets ``masterselector=dls-master-node``.
* ``nvidia``: ``nvidia.com/gpu.present=true`` on NVIDIA GPU nodes (device-plugin chart affinity
  without NFD).
"""

from __future__ import annotations

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_names

MANAGED_ANNOTATION = "aicluster.io/managed-labels"

SCHEMES = ("cube-studio", "mindcluster", "nvidia")

CUBE_ROLES = ("train", "notebook", "service")
CUBE_CONTROLLER_COMPONENTS = ("mysql", "redis", "kubeflow-dashboard", "kubeflow", "istio", "monitoring")
CUBE_DEFAULT_ORG = "public"

MINDCLUSTER_WORKER_LABELS = {
    "node-role.kubernetes.io/worker": "worker",
    "workerselector": "dls-worker-node",
}
MINDCLUSTER_MASTER_LABELS = {"masterselector": "dls-master-node"}
# Kubeocean: the Nodes a binding lends are selected by this label (its install scripts and cookbook).
KUBEOCEAN_ROLE_LABEL = "kubeocean.io/role"
KUBEOCEAN_WORKER = "worker"
MINDCLUSTER_HOST_ARCH = {"aarch64": "huawei-arm", "x86_64": "huawei-x86"}

# model -> accelerator label (device plugin acceleratorLabelMap, reference 4.2)
MINDCLUSTER_ACCELERATOR = {
    "Ascend910": "huawei-Ascend910",
    "Ascend910B": "huawei-Ascend910",
    "Ascend910A3": "huawei-Ascend910",
    "Ascend310P": "huawei-Ascend310P",
    "Ascend310": "huawei-Ascend310",
}

# (model, chips on the node) -> accelerator-type, for the values the reference table ties to a
# chip count.  Other products (module / half / module-a3-*, super pods) must be given explicitly.
MINDCLUSTER_ACCELERATOR_TYPE_BY_COUNT = {
    ("Ascend910B", 8): "module-910b-8",
    ("Ascend910B", 16): "module-910b-16",
}

TRUE = "true"

# Resource groups (cube-studio ``org``) and the rebalancer (module_utils ``resource_groups``, module
# ``resource_group_rebalance``): it moves ``share=true`` Nodes between groups by changing ``org`` and records the move
# in these two annotations; :func:`resource_group_override` makes this role yield to that record.
GROUP_LABEL = "org"
SHARE_LABEL = "share"
RESOURCE_GROUP_ANNOTATION = "aicluster.io/resource-group"  # the group the rebalancer moved the Node to
RESOURCE_GROUP_BASE_ANNOTATION = "aicluster.io/resource-group-base"  # its org before the first move (the inventory's)


# ---------------------------------------------------------------------------------------------
# Desired labels
# ---------------------------------------------------------------------------------------------

def host_arch_label(architecture):
    """``aarch64`` -> ``huawei-arm``; ``x86_64`` -> ``huawei-x86``; other -> None."""
    arch = (architecture or "").strip().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    return MINDCLUSTER_HOST_ARCH.get(arch)


def ascend_accelerator_type(facts, product_name=None):
    """Derive ``accelerator-type`` from the accelerator facts, or None when the reference gives
    no rule for the hardware (the caller must then pass it explicitly).

    * 910B with 8 chips -> ``module-910b-8``; with 16 -> ``module-910b-16`` (reference 4.2 table).
    * 910 (``d801``) in a server whose DMI product name does not contain ``Atlas`` -> ``card``
      (ascend-deployer ``deviceplugin.yaml``, reference 4.2).
    """
    facts = facts or {}
    model = facts.get("model")
    count = facts.get("count") or 0
    by_count = MINDCLUSTER_ACCELERATOR_TYPE_BY_COUNT.get((model, count))
    if by_count:
        return by_count
    if model == "Ascend910" and product_name and "atlas" not in product_name.lower():
        return "card"
    return None


def desired_labels(
    facts,
    *,
    schemes=SCHEMES,
    roles=(),
    org=CUBE_DEFAULT_ORG,
    share=False,
    cpu=True,
    gpu=None,
    gpu_type=None,
    vgpu=False,
    rdma=False,
    controller=False,
    controller_components=CUBE_CONTROLLER_COMPONENTS,
    mindcluster_worker=None,
    mindcluster_master=False,
    accelerator_type=None,
    server_usage=None,
    product_name=None,
    kubeocean_worker=False,
    extra=None,
    remove=(),
):
    """Compute the labels this project wants on one node.

    ``facts`` is the ``accelerator`` fact (``accelerator_facts`` module / ``summarize()``).

    Parameters (all explicit, nothing is inferred from host names or groups):

    * ``schemes``: subset of ``cube-studio``, ``mindcluster``, ``nvidia``.
    * cube-studio: ``roles`` (subset of ``train``, ``notebook``, ``service``), ``org``
      (``org`` label; None/"" leaves it out), ``share`` (``share=true`` when true, absent when
      false), ``cpu`` (``cpu=true``), ``gpu`` (None = NVIDIA GPU present per facts), ``gpu_type``
      (None = facts model when ``gpu``), ``vgpu``, ``rdma``, ``controller`` with
      ``controller_components``.
    * mindcluster: ``mindcluster_worker`` (None = Ascend NPU present per facts),
      ``mindcluster_master`` (management node), ``accelerator_type`` (None = derived by
      ``ascend_accelerator_type(facts, product_name)``), ``server_usage`` (e.g. ``infer``).
    * ``kubeocean_worker``: ``kubeocean.io/role=worker``, the label Kubeocean's bindings select the Nodes to lend
      by (any scheme).
    * ``extra``: labels merged last (they win); ``remove``: keys dropped from the result, so that a
      previously managed label is deleted by the plan.

    Returns a dict of str -> str.  Raises ValueError for unknown schemes or roles.
    """
    facts = facts or {}
    schemes = tuple(schemes or ())
    unknown = [scheme for scheme in schemes if scheme not in SCHEMES]
    if unknown:
        raise ValueError(f"unknown label scheme(s) {unknown}; expected a subset of {list(SCHEMES)}")
    roles = tuple(roles or ())
    bad_roles = [role for role in roles if role not in CUBE_ROLES]
    if bad_roles:
        raise ValueError(f"unknown cube-studio role(s) {bad_roles}; expected a subset of {list(CUBE_ROLES)}")

    present = bool(facts.get("present"))
    vendor = facts.get("vendor") if present else None
    labels = {}

    if "cube-studio" in schemes:
        if cpu:
            labels["cpu"] = TRUE
        has_gpu = (vendor == "nvidia") if gpu is None else bool(gpu)
        if has_gpu:
            labels["gpu"] = TRUE
            model = gpu_type if gpu_type else facts.get("model")
            if model:
                labels["gpu-type"] = str(model)
        if vgpu:
            labels["vgpu"] = TRUE
        if rdma:
            labels["rdma"] = TRUE
        for role in CUBE_ROLES:
            if role in roles:
                labels[role] = TRUE
        if org:
            labels["org"] = str(org)
        if share:
            labels["share"] = TRUE
        if controller:
            for component in controller_components or ():
                labels[str(component)] = TRUE

    if "mindcluster" in schemes:
        worker = (vendor == "huawei") if mindcluster_worker is None else bool(mindcluster_worker)
        if worker:
            labels.update(MINDCLUSTER_WORKER_LABELS)
            arch_label = host_arch_label(facts.get("architecture"))
            if arch_label:
                labels["host-arch"] = arch_label
            accelerator = facts.get("accelerator") or MINDCLUSTER_ACCELERATOR.get(facts.get("model"))
            if vendor == "huawei" and accelerator:
                labels["accelerator"] = accelerator
            acc_type = accelerator_type
            if not acc_type and vendor == "huawei":
                acc_type = ascend_accelerator_type(facts, product_name)
            if acc_type:
                labels["accelerator-type"] = acc_type
            if server_usage:
                labels["server-usage"] = str(server_usage)
        if mindcluster_master:
            labels.update(MINDCLUSTER_MASTER_LABELS)

    if "nvidia" in schemes and vendor == "nvidia":
        labels["nvidia.com/gpu.present"] = TRUE

    if kubeocean_worker:
        labels[KUBEOCEAN_ROLE_LABEL] = KUBEOCEAN_WORKER

    for key, value in (extra or {}).items():
        labels[str(key)] = value
    for key in remove or ():
        labels.pop(key, None)
    return labels


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

def coerce_label_value(value):
    """Lenient form of label values coming from YAML: ``True`` -> ``"true"``, ``3`` -> ``"3"``.
    Strings are returned unchanged; anything else (None, lists, dicts) is returned unchanged so
    that validation reports it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------------
# Ownership-aware plan
# ---------------------------------------------------------------------------------------------

def parse_managed(annotation_value):
    """``"a,b/c"`` -> ``{"a", "b/c"}``; None or "" -> empty set."""
    if not annotation_value:
        return set()
    return {item.strip() for item in str(annotation_value).split(",") if item.strip()}


def format_managed(keys):
    return ",".join(sorted(keys))


def resource_group_override(desired, node_annotations):
    """Which ``org`` wins on a Node the resource group rebalancer moved: ``(desired, annotation_changes, note)``.

    The rebalancer's record (``aicluster.io/resource-group`` = the group it chose, ``aicluster.io/resource-group-base``
    = the ``org`` before its first move) wins while the inventory still wants the Node shared (``share=true``) and
    still gives it the ``org`` it had when it was first moved: ``desired['org']`` becomes the recorded group, so a
    label run neither undoes the move nor writes anything for it (``org`` stays a managed key). Otherwise the
    inventory wins - it took the Node back (no ``share``) or gave it another group since - and the record is removed
    (``annotation_changes``: null for each of its annotations, for the merge patch). ``note`` says which won (None:
    no record)."""
    annotations = node_annotations or {}
    group = annotations.get(RESOURCE_GROUP_ANNOTATION)
    base = annotations.get(RESOURCE_GROUP_BASE_ANNOTATION)
    if group is None and base is None:
        return desired, {}, None
    wanted = desired.get(GROUP_LABEL)
    if desired.get(SHARE_LABEL) == TRUE and wanted and wanted == base and isinstance(group, str) and group \
            and not k8s_names.validate_label_value(group):
        return {**desired, GROUP_LABEL: group}, {}, (
            f"org {group}: moved there from {base} by the resource group rebalancer (annotation "
            f"{RESOURCE_GROUP_ANNOTATION}); the inventory's org {wanted} yields while the Node is share=true")
    if desired.get(SHARE_LABEL) != TRUE:
        why = "the inventory no longer shares the Node (no share=true)"
    elif wanted != base:
        why = f"the inventory's org is now {wanted or 'none'} (it was {base} when the Node was first moved)"
    else:
        why = f"the recorded group {group!r} is not a label value"
    changes = {key: None for key in (RESOURCE_GROUP_ANNOTATION, RESOURCE_GROUP_BASE_ANNOTATION) if key in annotations}
    return desired, changes, f"org {wanted or 'unmanaged'}: {why}, so the inventory wins and the rebalancer's " \
                             "record is removed"


def plan(node_labels, node_annotations, desired, annotation_key=MANAGED_ANNOTATION, annotation_changes=None):
    """Compute the JSON merge patch that moves a Node from its labels to ``desired``.

    * a desired label that is missing or has another value is set;
    * a label in the previously managed set (annotation ``annotation_key``) that is no longer
      desired is removed (``null`` in the merge patch);
    * labels outside the managed set are never touched, except that a desired key is always set
      -- if it already carries the desired value (set by hand) nothing is written for it, and it
      simply becomes managed;
    * the annotation is rewritten to the sorted, comma-separated desired keys (removed when none);
    * ``annotation_changes`` (other annotations to set, or remove with None: the resource group record, see
      :func:`resource_group_override`) go into the same patch.

    Returns ``(patch, diff)``: ``patch`` is None when nothing changes; ``diff`` is
    ``{"before": {...}, "after": {...}, "set": {...}, "removed": [...], "adopted": [...]}`` where
    before/after hold ``labels`` and the managed-key list.
    """
    current = dict(node_labels or {})
    annotations = dict(node_annotations or {})
    desired = dict(desired or {})
    previous_raw = annotations.get(annotation_key)
    previous = parse_managed(previous_raw)

    label_patch = {}
    adopted = []
    for key in sorted(desired):
        value = desired[key]
        if current.get(key) != value:
            label_patch[key] = value
        elif key not in previous:
            adopted.append(key)
    removed = sorted(key for key in previous - set(desired) if key in current)
    for key in removed:
        label_patch[key] = None

    new_managed = format_managed(desired)
    annotation_patch = {}
    if desired:
        if previous_raw != new_managed:
            annotation_patch[annotation_key] = new_managed
    elif previous_raw is not None:
        annotation_patch[annotation_key] = None
    annotation_patch.update(annotation_changes or {})

    after_labels = {key: value for key, value in current.items() if key not in removed}
    after_labels.update({key: value for key, value in label_patch.items() if value is not None})
    diff = {
        "before": {"labels": dict(sorted(current.items())), "managed": sorted(previous)},
        "after": {"labels": dict(sorted(after_labels.items())), "managed": sorted(desired)},
        "set": {key: value for key, value in label_patch.items() if value is not None},
        "removed": removed,
        "adopted": adopted,
    }
    if annotation_changes:  # only then, so that the diff of every other Node stays as it was
        diff["before"]["annotations"] = {key: annotations[key] for key in annotation_changes if key in annotations}
        diff["after"]["annotations"] = {key: value for key, value in annotation_changes.items() if value is not None}

    if not label_patch and not annotation_patch:
        return None, diff
    metadata = {}
    if label_patch:
        metadata["labels"] = label_patch
    if annotation_patch:
        metadata["annotations"] = annotation_patch
    return {"metadata": metadata}, diff
