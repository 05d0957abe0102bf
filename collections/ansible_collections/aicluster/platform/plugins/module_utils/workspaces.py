# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Per-user workspaces in the worker cluster - the pure part: the inventory's users and settings, every problem
they have (against the cluster's Nodes and namespaces, when those are given), the objects each user gets, which of
them differ from what the cluster has, and what happens to the workspaces of users no longer listed. No Ansible,
no API calls.

Per user ``<ns>`` (the user name, or its part before ``@``):

- Namespace ``<ns>``: label ``aicluster.io/workspace=true`` (how the plan finds the workspaces it made),
  annotations ``aicluster.io/workspace-user`` (the login) and, when the user's GPU types are limited,
  ``aicluster.io/gpu-types`` (comma-separated ``gpu-type`` label values).
- RoleBinding ``workspace-edit``: ClusterRole ``edit`` (setting ``cluster_role``) for the user and their groups as
  identity-provider names (OIDC/LDAP through the API server: ``User`` and ``Group`` subjects, with the API server's
  ``--oidc-username-prefix`` / ``--oidc-groups-prefix`` as ``user_prefix`` / ``group_prefix``).
- ResourceQuota ``workspace-quota``: ``requests.cpu`` and ``limits.cpu``, ``requests.memory`` and ``limits.memory``,
  ``requests.<gpu resource>`` for every GPU resource name (0 unless the user has some), ``persistentvolumeclaims``
  and ``requests.storage``.
- LimitRange ``workspace-defaults``: container default limits and requests, so that a pod without them is admitted
  under the quota (a quota on cpu/memory refuses pods that name none) and counted.
- Per claim ``home``, ``gfshome``, ``share``, ``ssdshare``: PersistentVolume ``<ns>-<claim>`` (ReadWriteMany,
  Retain, no storage class, pre-bound to the claim by ``claimRef``; ``nfs`` when the claim has an ``nfs_server``,
  else ``hostPath`` under ``host_path_root``, /data/k8s, the filesystem every Node shares) and the
  PersistentVolumeClaim ``<claim>`` bound to it by ``volumeName``.

Jobs (``jobs``): Helm releases of the repository's job chart charts/userchart that the role installs in a listed
user's namespace once the workspaces are applied. The plan checks each one against its user - the release name, the
chart's ``NameSpace`` (the role sets it), and for a present job the GPU model (``GPU``: a ``gpu_type_label`` value
some Node carries, one of the user's ``gpu_types`` if limited), the GPUs (``Limits.GPU`` x ``Replicas``) against the
user's GPU quota, and the claims - the four workspace claims plus the scratch volumes, generic ephemeral volumes
that count against the namespace's quota - against the quota's claims count and storage - and returns each with its
namespace and values (``NameSpace`` set). Values the job leaves out are the chart's defaults
(:data:`CHART_DEFAULTS`); other type errors of the values are the chart's values.schema.json's to refuse.

Every problem is a sentence naming the user (or the job, ``job <user>/<name>``) and the field; :func:`plan` raises
:class:`WorkspaceError` with all of them before anything is generated.
"""

from __future__ import annotations

import copy
import re
from fractions import Fraction

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_names, plan_problems

WORKSPACE_LABEL = "aicluster.io/workspace"  # "true" on every object of a workspace
WORKSPACE_NAMESPACE_LABEL = "aicluster.io/workspace-namespace"  # on the PersistentVolumes (cluster-wide)
CLAIM_LABEL = "aicluster.io/workspace-claim"  # on the PersistentVolumes
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "aicluster"
SELECTOR = f"{WORKSPACE_LABEL}=true"
USER_ANNOTATION = "aicluster.io/workspace-user"
GPU_TYPES_ANNOTATION = "aicluster.io/gpu-types"

ROLE_BINDING = "workspace-edit"
RESOURCE_QUOTA = "workspace-quota"
LIMIT_RANGE = "workspace-defaults"
RBAC_GROUP = "rbac.authorization.k8s.io"

CLAIMS = ("home", "gfshome", "share", "ssdshare")
PERSONAL_CLAIMS = ("home", "gfshome")  # one directory per user: their path must name {user}
CLAIM_FIELDS = ("size", "path", "nfs_server")
USER_PLACEHOLDER = "{user}"
DEFAULT_CLAIMS = {
    "home": {"size": "20Gi", "path": "/data/k8s/home/{user}", "nfs_server": ""},
    "gfshome": {"size": "200Gi", "path": "/data/k8s/gfshome/{user}", "nfs_server": ""},
    "share": {"size": "100Gi", "path": "/data/k8s/share", "nfs_server": ""},
    "ssdshare": {"size": "100Gi", "path": "/data/k8s/ssdshare", "nfs_server": ""},
}
QUOTA_FIELDS = ("cpu", "memory", "gpus", "pvcs", "storage")
DEFAULT_QUOTA = {"cpu": "8", "memory": "32Gi", "gpus": 0, "pvcs": 10, "storage": "1Ti"}
CONTAINER_FIELDS = ("cpu", "memory", "request_cpu", "request_memory")
DEFAULT_CONTAINER = {"cpu": "1", "memory": "2Gi", "request_cpu": "100m", "request_memory": "256Mi"}
USER_FIELDS = ("name", "groups", "quota", "gpu_types", "storage")
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_GPU_TYPE_LABEL = "gpu-type"
DEFAULT_HOST_PATH_ROOT = "/data/k8s"
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
JOB_FIELDS = ("user", "name", "values", "state")
JOB_STATES = ("present", "absent")
RELEASE_NAME_MAX = 53  # Helm's limit on a release name
JOB_CHART = "charts/userchart"
# The job chart's defaults of the values the plan checks, as charts/userchart/values.yaml sets them (a unit test
# compares the two): what a job gets for a value it leaves out. Keep them in step with that file.
CHART_DEFAULTS = {
    "GPU": "RTX4090D",
    "Replicas": 1,
    "Limits": {"GPU": 0},
    "NVMEStorage": "100G",
    "Scratch": {"MountPaths": ["/scratch1", "/scratch2"]},
}

QUANTITY_RE = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?P<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
SUFFIX = {None: 1, "m": Fraction(1, 1000), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
          "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
NFS_SERVER_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.:\[\]]*[A-Za-z0-9\]])?$")  # host name, IPv4 or [IPv6]


class WorkspaceError(plan_problems.PlanError):
    """Problems that stop the plan before any object is generated (``problems``: one sentence each)."""


# ----------------------------------------------------------------------------------- small helpers
is_int = plan_problems.is_int


_show = plan_problems.show


def _without_nulls(item):
    """The dict without its null fields: inventory that templates a setting to null means the default."""
    return {k: v for k, v in item.items() if v is not None} if isinstance(item, dict) else item


def quantity_text(value):
    """A quantity as Kubernetes writes it: inventory may give 8 or 0.5."""
    return value if isinstance(value, str) else str(value)


def parse_quantity(value):
    """The exact value (a Fraction) of a Kubernetes quantity (``8``, ``500m``, ``20Gi``, ``1.5``), None when it is
    not one (negative, exponent forms and bools are refused too)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    match = QUANTITY_RE.match(quantity_text(value).strip())
    if not match:
        return None
    return Fraction(match.group("number")) * SUFFIX[match.group("suffix")]


def same_quantity(a, b):
    """Whether two quantities are equal in value (the API server rewrites ``1024Mi`` as ``1Gi``)."""
    x, y = parse_quantity(a), parse_quantity(b)
    return x is not None and x == y


def _quantity_problems(where, field, value, example):
    amount = parse_quantity(value)
    if amount is None:
        return [f"{where}{field} must be a Kubernetes quantity such as {example}, got {_show(value)}"]
    if amount <= 0:
        return [f"{where}{field} must be above 0, got {_show(value)}"]
    return []


def _unknown_fields(where, item, known):
    unknown = [key for key in item if key not in known]
    if not unknown:
        return []
    return [f"{where}unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))} "
            f"(known: {', '.join(known)})"]


def _gpu_resource_problems(where, resource):
    if not isinstance(resource, str) or "/" not in resource or k8s_names.validate_label_key(resource):
        return [f"{where}GPU resource {_show(resource)} must be an extended resource name such as "
                f"{DEFAULT_GPU_RESOURCE}"]
    return []


# ----------------------------------------------------------------------------------- the cluster
def gpu_types(nodes, label=DEFAULT_GPU_TYPE_LABEL):
    """The GPU types the Nodes carry: the sorted values of their ``label`` label."""
    found = set()
    for node in nodes or []:
        value = ((node.get("metadata") or {}).get("labels") or {}).get(label)
        if isinstance(value, str) and value:
            found.add(value)
    return sorted(found)


# ----------------------------------------------------------------------------------- settings
def settings_defaults(settings):
    """The settings with their defaults; ``claims`` merged per claim and field over :data:`DEFAULT_CLAIMS`."""
    given = _without_nulls(settings or {})
    result = {
        "remove_data": False, "user_prefix": "", "group_prefix": "", "user_domain": "", "cluster_role": "edit",
        "default_quota": dict(DEFAULT_QUOTA), "container_defaults": dict(DEFAULT_CONTAINER),
        "host_path_root": DEFAULT_HOST_PATH_ROOT, "gpu_type_label": DEFAULT_GPU_TYPE_LABEL,
        "gpu_resources": [DEFAULT_GPU_RESOURCE],
    }
    result.update({k: v for k, v in given.items() if k != "claims"})
    for key, defaults in (("default_quota", DEFAULT_QUOTA), ("container_defaults", DEFAULT_CONTAINER)):
        if isinstance(result[key], dict):
            result[key] = {**defaults, **_without_nulls(result[key])}
    claims = given.get("claims") or {}
    if isinstance(claims, dict):
        merged = {name: dict(fields) for name, fields in DEFAULT_CLAIMS.items()}
        for name, fields in claims.items():
            merged[name] = {**merged.get(name, {}), **(_without_nulls(fields) if isinstance(fields, dict) else {})}
        result["claims"] = merged
    else:
        result["claims"] = claims
    return result


def _claim_problems(name, claim, root):
    where = f"claims.{name}: "
    if not isinstance(claim, dict):
        return [f"claims.{name} must be a dict with size, path and nfs_server, got {_show(claim)}"]
    problems = _unknown_fields(where, claim, CLAIM_FIELDS)
    problems += _quantity_problems(where, "size", claim.get("size"), "20Gi")
    path, server = claim.get("path"), claim.get("nfs_server") or ""
    if not isinstance(server, str) or (server and not NFS_SERVER_RE.match(server)):
        problems.append(f"{where}nfs_server must be a host name or address (or empty for a hostPath volume under "
                        f"{root}), got {_show(server)}")
    if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/") or path.rstrip("/") == "":
        problems.append(f"{where}path must be an absolute path other than / and without '..', got {_show(path)}")
        return problems
    placeholders = [p for p in re.findall(r"\{[^}]*\}", path) if p != USER_PLACEHOLDER]
    if placeholders:
        problems.append(f"{where}path {path}: unknown placeholder {', '.join(placeholders)} (only {USER_PLACEHOLDER},"
                        " the user's namespace)")
    if name in PERSONAL_CLAIMS and USER_PLACEHOLDER not in path:
        problems.append(f"{where}path {path} has no {USER_PLACEHOLDER}: every user would get the same {name} "
                        "directory")
    if not server and isinstance(root, str) and not path.startswith(root.rstrip("/") + "/"):
        problems.append(f"{where}path {path} is not under {root}: a hostPath volume must be on the filesystem every "
                        "Node shares (or give nfs_server)")
    return problems


def _container_problems(container):
    if not isinstance(container, dict):
        return [f"container_defaults must be a dict with {', '.join(CONTAINER_FIELDS)}, got {_show(container)}"]
    problems = _unknown_fields("container_defaults: ", container, CONTAINER_FIELDS)
    for field, example in (("cpu", "1"), ("memory", "2Gi"), ("request_cpu", "100m"), ("request_memory", "256Mi")):
        problems += _quantity_problems("container_defaults: ", field, container.get(field), example)
    for resource in ("cpu", "memory"):
        limit, request = parse_quantity(container.get(resource)), parse_quantity(container.get(f"request_{resource}"))
        if limit is not None and request is not None and request > limit:
            problems.append(f"container_defaults: request_{resource} {container[f'request_{resource}']} is above "
                            f"{resource} {container[resource]}: a request cannot exceed its limit")
    return problems


def settings_problems(settings):
    """Problems of the settings (``default_quota`` is checked with each user, merged with theirs)."""
    s = settings_defaults(settings)
    found = []
    if not isinstance(s["remove_data"], bool):
        found.append(f"remove_data must be true or false, got {_show(s['remove_data'])}")
    for field in ("user_prefix", "group_prefix"):
        if not isinstance(s[field], str) or any(c.isspace() for c in s[field]):
            found.append(f"{field} must be a string without spaces (the API server's --oidc-"
                         f"{'username' if field == 'user_prefix' else 'groups'}-prefix), got {_show(s[field])}")
    domain = s["user_domain"]
    if not isinstance(domain, str) or (domain and k8s_names.validate_dns1123_subdomain(domain)):
        found.append(f"user_domain must be empty or a lower-case domain such as example.org, got {_show(domain)}")
    found += [f"cluster_role: {p}" for p in k8s_names.validate_dns1123_subdomain(s["cluster_role"], "cluster_role")]
    if k8s_names.validate_label_key(s["gpu_type_label"]):
        found.append(f"gpu_type_label must be a label key such as {DEFAULT_GPU_TYPE_LABEL}, "
                     f"got {_show(s['gpu_type_label'])}")
    resources = s["gpu_resources"]
    if not isinstance(resources, list):
        found.append(f"gpu_resources must be a list of extended resource names, got {_show(resources)}")
    else:
        for resource in resources:
            found += _gpu_resource_problems("gpu_resources: ", resource)
    root = s["host_path_root"]
    if not isinstance(root, str) or not root.startswith("/") or root.rstrip("/") == "" or ".." in root.split("/"):
        found.append(f"host_path_root must be an absolute path other than / and without '..', got {_show(root)}")
    if not isinstance(s["default_quota"], dict):
        found.append(f"default_quota must be a dict with {', '.join(QUOTA_FIELDS)}, got {_show(s['default_quota'])}")
    else:
        found += _unknown_fields("default_quota: ", s["default_quota"], QUOTA_FIELDS)
    found += _container_problems(s["container_defaults"])
    claims = s["claims"]
    if not isinstance(claims, dict):
        found.append(f"claims must be a dict of {', '.join(CLAIMS)}, got {_show(claims)}")
    else:
        unknown = [name for name in claims if name not in CLAIMS]
        if unknown:
            found.append(f"claims: unknown claim {', '.join(map(str, unknown))} (a workspace has {', '.join(CLAIMS)})")
        for name in CLAIMS:
            found += _claim_problems(name, claims[name], root)
    return found


# ----------------------------------------------------------------------------------- users
def namespace_of(name):
    """The namespace of a user: the name, or its part before ``@``."""
    return name.split("@", 1)[0] if isinstance(name, str) else None


def login_of(name, settings):
    """The user's name as the API server sees it: ``user_prefix`` + the name (+ ``@user_domain`` when it has no
    domain and the setting gives one)."""
    s = settings_defaults(settings)
    login = name if "@" in name or not s["user_domain"] else f"{name}@{s['user_domain']}"
    return s["user_prefix"] + login


def _where(user, index):
    name = user.get("name") if isinstance(user, dict) else None
    return f"user {name}" if isinstance(name, str) and name else f"users[{index}]"


def _name_problems(where, name):
    if name is None or name == "":
        return [f"{where}: name is required"]
    if not isinstance(name, str):
        return [f"{where}: name must be a string, got {_show(name)}"]
    local, domain = name.partition("@")[::2]
    if len(local) > k8s_names.NAME_MAX or not k8s_names.DNS1123_LABEL_RE.match(local):
        return [f"{where}: name {local!r} is not a valid namespace name: at most 63 lower-case letters, digits and "
                "'-', starting and ending with a letter or digit (no capitals, no '_')"]
    problems = []
    if local in RESERVED_NAMESPACES or local.startswith("kube-"):
        problems.append(f"{where}: name {local!r} is a namespace Kubernetes reserves")
    if "@" in name and (not domain or k8s_names.validate_dns1123_subdomain(domain)):
        problems.append(f"{where}: name {name!r}: the part after '@' must be a lower-case domain such as "
                        "example.org")
    return problems


def user_quota(user, settings):
    """The user's quota: ``default_quota`` with the user's fields over it (null fields: the default)."""
    s = settings_defaults(settings)
    quota = dict(s["default_quota"]) if isinstance(s["default_quota"], dict) else {}
    given = user.get("quota")
    if isinstance(given, dict):
        quota.update(_without_nulls(given))
    return quota


def gpu_quota(quota, settings):
    """``{resource: count}``: every GPU resource of the settings (0 unless given) and those the quota names; an
    integer ``gpus`` counts the first resource of the settings."""
    s = settings_defaults(settings)
    resources = [r for r in s["gpu_resources"] if isinstance(r, str)] or [DEFAULT_GPU_RESOURCE]
    counts = dict.fromkeys(resources, 0)
    gpus = quota.get("gpus", 0)
    if is_int(gpus):
        counts[resources[0]] = gpus
    elif isinstance(gpus, dict):
        counts.update(gpus)
    return counts


def claim_sizes(user, settings):
    """``{claim: size}``: the claims' sizes, the user's ``storage`` over them."""
    s = settings_defaults(settings)
    sizes = {name: (s["claims"].get(name) or {}).get("size") for name in CLAIMS}
    storage = user.get("storage")
    if isinstance(storage, dict):
        sizes.update(_without_nulls(storage))
    return sizes


def _quota_problems(where, quota, sizes):
    problems = _unknown_fields(f"{where}: quota: ", quota, QUOTA_FIELDS)
    problems += _quantity_problems(f"{where}: quota ", "cpu", quota.get("cpu"), "8 or 500m")
    problems += _quantity_problems(f"{where}: quota ", "memory", quota.get("memory"), "32Gi")
    gpus = quota.get("gpus", 0)
    if is_int(gpus):
        if gpus < 0:
            problems.append(f"{where}: quota gpus must be at least 0, got {gpus}")
    elif isinstance(gpus, dict):
        for resource, count in gpus.items():
            problems += _gpu_resource_problems(f"{where}: quota gpus: ", resource)
            if not is_int(count) or count < 0:
                problems.append(f"{where}: quota gpus {resource}: must be a whole number of at least 0, "
                                f"got {_show(count)}")
    else:
        problems.append(f"{where}: quota gpus must be a count (of the first of gpu_resources) or a dict of GPU "
                        f"resource name: count, got {_show(gpus)}")
    pvcs = quota.get("pvcs")
    if not is_int(pvcs):
        problems.append(f"{where}: quota pvcs must be an integer, got {_show(pvcs)}")
    elif pvcs < len(CLAIMS):
        problems.append(f"{where}: quota pvcs {pvcs} is below the {len(CLAIMS)} claims every workspace has "
                        f"({', '.join(CLAIMS)})")
    problems += _quantity_problems(f"{where}: quota ", "storage", quota.get("storage"), "1Ti")
    storage = parse_quantity(quota.get("storage"))
    values = {name: parse_quantity(size) for name, size in sizes.items()}
    if storage is not None and storage > 0 and all(v is not None for v in values.values()):
        total = sum(values.values())
        if total > storage:
            biggest = [name for name, value in values.items() if value > storage]
            detail = ", ".join(f"{name} {quantity_text(sizes[name])}" for name in CLAIMS)
            if biggest:
                problems.append(f"{where}: quota storage {quantity_text(quota['storage'])} is below the size of the "
                                f"claim {', '.join(biggest)} ({detail}): the claim would be refused")
            else:
                problems.append(f"{where}: quota storage {quantity_text(quota['storage'])} is below the "
                                f"{_format_bytes(total)} its claims request together ({detail}): the last ones would "
                                "be refused")
    return problems


def _format_bytes(value):
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = SUFFIX[suffix]
        if value >= unit and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(int(value)) if value == int(value) else str(float(value))


def _container_vs_quota_problems(where, quota, container):
    problems = []
    for resource in ("cpu", "memory"):
        limit, hard = parse_quantity(container.get(resource)), parse_quantity(quota.get(resource))
        if limit is not None and hard is not None and limit > hard:
            problems.append(f"{where}: quota {resource} {quantity_text(quota[resource])} is below the default "
                            f"container limit {quantity_text(container[resource])} (container_defaults.{resource}): "
                            "a pod without limits could never start")
    return problems


def user_problems(user, index, settings, cluster=None):
    """Problems of one user (``cluster``: see :func:`problems`)."""
    if not isinstance(user, dict):
        return [f"users[{index}] must be a dict with name, groups, quota, gpu_types, storage, got {_show(user)}"]
    user = _without_nulls(user)
    s = settings_defaults(settings)
    where = _where(user, index)
    problems = _unknown_fields(f"{where}: ", user, USER_FIELDS)
    problems += _name_problems(where, user.get("name"))
    groups = user.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) and g.strip() == g and g for g in groups):
        problems.append(f"{where}: groups must be a list of group names (as the identity provider gives them, "
                        f"without surrounding spaces), got {_show(groups)}")
    quota = user.get("quota", {})
    storage = user.get("storage", {})
    if not isinstance(quota, dict):
        problems.append(f"{where}: quota must be a dict with {', '.join(QUOTA_FIELDS)}, got {_show(quota)}")
    if not isinstance(storage, dict):
        problems.append(f"{where}: storage must be a dict of claim: size ({', '.join(CLAIMS)}), got {_show(storage)}")
    else:
        unknown = [name for name in storage if name not in CLAIMS]
        if unknown:
            problems.append(f"{where}: storage: unknown claim {', '.join(map(str, unknown))} (a workspace has "
                            f"{', '.join(CLAIMS)})")
        for name, size in _without_nulls(storage).items():
            if name in CLAIMS:
                problems += _quantity_problems(f"{where}: storage ", name, size, "500Gi")
    if isinstance(quota, dict) and isinstance(s["default_quota"], dict) and isinstance(storage, dict) \
            and isinstance(s["claims"], dict):
        merged = user_quota(user, s)
        problems += _quota_problems(where, merged, claim_sizes(user, s))
        if isinstance(s["container_defaults"], dict):
            problems += _container_vs_quota_problems(where, merged, s["container_defaults"])
    types = user.get("gpu_types")
    if types is not None:
        if not isinstance(types, list) or not all(isinstance(t, str) and t for t in types):
            problems.append(f"{where}: gpu_types must be a list of GPU types (the {s['gpu_type_label']} label values "
                            f"of the Nodes, e.g. A100), got {_show(types)}")
        elif cluster is not None and cluster.get("gpu_types") is not None:
            known = list(cluster["gpu_types"])
            have = f"Nodes have {', '.join(known)}" if known else f"no Node has a {s['gpu_type_label']} label"
            for gpu_type in types:
                if gpu_type not in known:
                    problems.append(f"{where}: unknown GPU type {gpu_type}: no Node has the label "
                                    f"{s['gpu_type_label']}={gpu_type} ({have})")
    return problems


def _cluster_problems(workspaces, settings, cluster):
    """What the cluster refuses: namespaces that exist and are no workspace, or are being deleted; volumes of the
    workspaces' names that are someone else's, or whose storage changed (a volume's source cannot change)."""
    problems = []
    namespaces = {(ns.get("metadata") or {}).get("name"): ns for ns in cluster.get("namespaces") or []}
    volumes = {(pv.get("metadata") or {}).get("name"): pv for pv in cluster.get("persistentvolumes") or []}
    for ws in workspaces:
        where, ns = f"user {ws['name']}", ws["namespace"]
        current = namespaces.get(ns)
        if current is not None:
            labels = (current.get("metadata") or {}).get("labels") or {}
            if labels.get(WORKSPACE_LABEL) != "true":
                problems.append(f"{where}: namespace {ns} exists and is not a workspace (no label {WORKSPACE_LABEL}="
                                "true): choose another name, or label the namespace to hand it over")
                continue
            if (current.get("status") or {}).get("phase") == "Terminating":
                problems.append(f"{where}: namespace {ns} is being deleted (Terminating): run again once it is gone")
        for claim in CLAIMS:
            name = volume_name(ns, claim)
            pv = volumes.get(name)
            if pv is None:
                continue
            labels = (pv.get("metadata") or {}).get("labels") or {}
            if labels.get(WORKSPACE_LABEL) != "true" or labels.get(WORKSPACE_NAMESPACE_LABEL) != ns:
                problems.append(f"{where}: PersistentVolume {name} exists and is not this workspace's (labels "
                                f"{WORKSPACE_LABEL}=true, {WORKSPACE_NAMESPACE_LABEL}={ns}): rename or delete it")
                continue
            wanted, have = volume_source(ws["claims"][claim]), _source_of(pv)
            if have is not None and wanted != have:
                problems.append(f"{where}: PersistentVolume {name} is on {_describe_source(have)} and the settings "
                                f"put claim {claim} on {_describe_source(wanted)}: a volume's source cannot change - "
                                f"move the files, then delete the claim {ns}/{claim} and the volume {name} (the files "
                                "stay) and run again")
    return problems


# ----------------------------------------------------------------------------------- jobs (charts/userchart)
_WRONG = object()  # a value under something that is not a dict: the chart's schema refuses it


def chart_value(values, *path):
    """The value at ``path`` (``"Limits", "GPU"``) that the chart gets from a job's ``values``: the job's, or the
    chart's default (:data:`CHART_DEFAULTS`) when it leaves it out or gives null (Helm then keeps the chart's);
    :data:`_WRONG` when a level above it is no dict."""
    default = CHART_DEFAULTS
    for key in path:
        default = default[key]
    current = values
    for key in path:
        if not isinstance(current, dict):
            return _WRONG
        current = current.get(key)
        if current is None:
            return copy.deepcopy(default)
    return current


def _job_where(job, index):
    user, name = (job.get("user"), job.get("name")) if isinstance(job, dict) else (None, None)
    if isinstance(user, str) and user and isinstance(name, str) and name:
        return f"job {user}/{name}"
    return f"jobs[{index}]"


def _format_storage(value):
    """A byte count as a quantity: exact in binary or decimal units of at least a mega, else about so many Gi (a sum
    of Gi and G sizes)."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "E", "P", "T", "G", "Mi", "M"):
        unit = SUFFIX[suffix]
        if value >= unit and value % unit == 0:
            return f"{value // unit}{suffix}"
    return f"about {float(value / SUFFIX['Gi']):.1f}Gi"


def _plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def _job_gpu_type_problems(where, user, gpu_type, given, settings, cluster):
    """A GPU job's GPU model: a GPU type some Node carries, and one of the user's ``gpu_types`` when limited."""
    if not isinstance(gpu_type, str):
        return []  # the chart's schema refuses it
    shown = f"values.GPU {gpu_type}" + ("" if given else " (the chart's default)")
    label = settings["gpu_type_label"]
    problems = []
    if cluster is not None and cluster.get("gpu_types") is not None:
        known = list(cluster["gpu_types"])
        if gpu_type not in known:
            have = f"Nodes have {', '.join(known)}" if known else f"no Node has a {label} label"
            problems.append(f"{where}: {shown} is not a GPU type of the cluster: no Node has the label "
                            f"{label}={gpu_type} ({have})")
    allowed = user.get("gpu_types")
    if isinstance(allowed, list) and gpu_type not in allowed:
        problems.append(f"{where}: {shown} is not one of user {user['name']}'s gpu_types "
                        f"({', '.join(map(str, allowed)) or 'none'})")
    return problems


def _job_quota_problems(where, user, values, settings):
    """Whether a present job fits in its user's quota (the user's settings are fine): its GPUs in the GPU quota of
    the first GPU resource, the workspace claims and the scratch volumes in the claims count and the storage."""
    s = settings
    name = user["name"]
    quota = user_quota(user, s)
    replicas, gpus = chart_value(values, "Replicas"), chart_value(values, "Limits", "GPU")
    mounts, nvme = chart_value(values, "Scratch", "MountPaths"), chart_value(values, "NVMEStorage")
    if not is_int(replicas) or replicas < 0:
        return []  # the chart's schema refuses it; nothing to count
    problems = []
    if is_int(gpus) and gpus > 0:
        resource = next((r for r in s["gpu_resources"] if isinstance(r, str)), DEFAULT_GPU_RESOURCE)
        limit = gpu_quota(quota, s).get(resource)
        if is_int(limit) and gpus * replicas > limit:
            problems.append(f"{where}: Limits.GPU {gpus} x Replicas {replicas} = {gpus * replicas} GPUs is above "
                            f"user {name}'s GPU quota of {limit} (requests.{resource}): the pods beyond it would be "
                            "refused")
    if not isinstance(mounts, list):
        return problems
    scratch = len(mounts) * replicas
    detail = f"{_plural(len(mounts), 'scratch volume')} x {_plural(replicas, 'replica')}"
    pvcs = quota.get("pvcs")
    if is_int(pvcs) and len(CLAIMS) + scratch > pvcs:
        problems.append(f"{where}: quota pvcs {pvcs} of user {name} is below the {len(CLAIMS) + scratch} claims the "
                        f"job needs ({len(CLAIMS)} workspace claims + {detail}): the scratch volumes are generic "
                        "ephemeral volumes, one claim per pod and mount path, and count against the namespace's "
                        "quota - the pods beyond it would be refused")
    storage, each = parse_quantity(quota.get("storage")), parse_quantity(nvme)
    sizes = [parse_quantity(size) for size in claim_sizes(user, s).values()]
    if storage is None or each is None or None in sizes:
        return problems
    claims, need = sum(sizes), sum(sizes) + each * scratch
    if need > storage:
        problems.append(f"{where}: quota storage {quantity_text(quota['storage'])} of user {name} is below the "
                        f"{_format_storage(need)} the job's claims request ({len(CLAIMS)} workspace claims "
                        f"{_format_storage(claims)} + {detail} x NVMEStorage {quantity_text(nvme)}): the scratch "
                        "volumes are generic ephemeral volumes and count against the namespace's storage quota - "
                        "the pods beyond it would be refused")
    return problems


def job_problems(job, index, listed, settings, cluster=None, fine=()):
    """Problems of one job. ``listed``: the users by name (nulls dropped); ``fine``: the names of the users whose
    settings are fine (only their jobs' quota is counted); ``cluster``: see :func:`problems`."""
    if not isinstance(job, dict):
        return [f"jobs[{index}] must be a dict with {', '.join(JOB_FIELDS)}, got {_show(job)}"]
    job = _without_nulls(job)
    where = _job_where(job, index)
    problems = _unknown_fields(f"{where}: ", job, JOB_FIELDS)
    user_name, user = job.get("user"), None
    if user_name is None or user_name == "":
        problems.append(f"{where}: user is required (the name of a user in users)")
    elif not isinstance(user_name, str):
        problems.append(f"{where}: user must be the name of a user in users, got {_show(user_name)}")
    elif user_name not in listed:
        problems.append(f"{where}: user {user_name} is not listed in users: a job runs in its user's workspace")
    else:
        user = listed[user_name]
    name = job.get("name")
    if name is None or name == "":
        problems.append(f"{where}: name is required (the Helm release name)")
    elif not isinstance(name, str) or len(name) > RELEASE_NAME_MAX or not k8s_names.DNS1123_LABEL_RE.match(name):
        problems.append(f"{where}: name {_show(name)} is not a valid release name: at most {RELEASE_NAME_MAX} "
                        "lower-case letters, digits and '-', starting and ending with a letter or digit")
    state = job.get("state", "present")
    if not isinstance(state, str) or state not in JOB_STATES:
        problems.append(f"{where}: state must be present or absent, got {_show(state)}")
    values = job.get("values", {})
    if not isinstance(values, dict):
        problems.append(f"{where}: values must be a dict of the chart's values ({JOB_CHART}/values.yaml), got "
                        f"{_show(values)}")
        return problems
    if user is None:
        return problems
    ns = namespace_of(user["name"])
    given = values.get("NameSpace")
    if given is not None and given != "" and given != ns:
        problems.append(f"{where}: values.NameSpace {_show(given)} is not the user's namespace {ns}: leave it out, "
                        "the role sets it")
    if state != "present":
        return problems
    gpus = chart_value(values, "Limits", "GPU")
    if is_int(gpus) and gpus > 0:
        problems += _job_gpu_type_problems(where, user, chart_value(values, "GPU"),
                                           values.get("GPU") is not None, settings, cluster)
    if user["name"] in fine:
        problems += _job_quota_problems(where, user, values, settings)
    return problems


def jobs_problems(jobs, users, settings=None, cluster=None):
    """Problems of the jobs (None: no jobs) of ``users`` (the input of :func:`problems`)."""
    if jobs is None:
        return []
    if not isinstance(jobs, list):
        return [f"jobs must be a list, got {_show(jobs)}"]
    s = settings_defaults(settings)
    listed = {}
    for user in users if isinstance(users, list) else []:
        if isinstance(user, dict) and isinstance(user.get("name"), str) and user["name"]:
            listed.setdefault(user["name"], _without_nulls(user))
    wanted = {job.get("user") for job in jobs if isinstance(job, dict) and isinstance(job.get("user"), str)}
    fine = set()
    if not settings_problems(s):
        fine = {name for name in wanted & set(listed) if not user_problems(listed[name], 0, s)}
    found, count = [], {}
    for index, job in enumerate(jobs):
        found += job_problems(job, index, listed, s, cluster, fine)
        where = _job_where(job, index)
        if where.startswith("job "):
            count[where] = count.get(where, 0) + 1
    for where, times in count.items():
        if times > 1:
            found.append(f"{where} is listed {times} times (a user's release names must differ)")
    return found


def problems(users, settings=None, cluster=None, jobs=None):
    """Every problem of the whole input, one sentence each (empty: fine). ``cluster`` (None: not checked) is what
    the cluster says: ``gpu_types`` (:func:`gpu_types` of the Nodes), ``namespaces`` (every Namespace),
    ``persistentvolumes`` (every PersistentVolume). ``jobs``: see :func:`jobs_problems`."""
    if not isinstance(users, list):
        return [f"users must be a list, got {_show(users)}"]
    found = settings_problems(settings)
    s = settings_defaults(settings)
    for index, user in enumerate(users):
        found += user_problems(user, index, s, cluster)
    by_namespace = {}
    for user in users:
        if isinstance(user, dict) and isinstance(user.get("name"), str) and user["name"]:
            by_namespace.setdefault(namespace_of(user["name"]), []).append(user["name"])
    for ns, names in sorted(by_namespace.items()):
        if len(names) > 1:
            listed = ", ".join(names)
            found.append(f"users {listed} map to one namespace {ns}" if len(set(names)) > 1
                         else f"user {names[0]} is listed {len(names)} times")
    if not found and cluster is not None:
        found += _cluster_problems(_workspaces(users, s), s, cluster)
    return found + jobs_problems(jobs, users, s, cluster)


# ----------------------------------------------------------------------------------- objects
def volume_name(namespace, claim):
    return f"{namespace}-{claim}"


def volume_source(claim):
    """``{"nfs": {...}}`` or ``{"hostPath": {...}}`` of a resolved claim (its path with ``{user}`` filled in)."""
    if claim.get("nfs_server"):
        return {"nfs": {"server": claim["nfs_server"], "path": claim["path"]}}
    return {"hostPath": {"path": claim["path"], "type": "DirectoryOrCreate"}}


def _source_of(pv):
    spec = pv.get("spec") or {}
    if "nfs" in spec:
        return {"nfs": {"server": spec["nfs"].get("server"), "path": spec["nfs"].get("path")}}
    if "hostPath" in spec:
        return {"hostPath": {"path": spec["hostPath"].get("path"), "type": "DirectoryOrCreate"}}
    return {"other": sorted(spec)}


def _describe_source(source):
    if "nfs" in source:
        return f"NFS {source['nfs']['server']}:{source['nfs']['path']}"
    if "hostPath" in source:
        return f"hostPath {source['hostPath']['path']}"
    return "another kind of volume"


def _workspaces(users, settings):
    """Each user resolved: name, namespace, login, groups, quota, GPU counts and types, claims (path filled in)."""
    s = settings_defaults(settings)
    result = []
    for user in users:
        user = _without_nulls(user)
        ns = namespace_of(user["name"])
        sizes = claim_sizes(user, s)
        claims = {}
        for name in CLAIMS:
            claim = s["claims"][name]
            claims[name] = {"size": quantity_text(sizes[name]), "path": claim["path"].replace(USER_PLACEHOLDER, ns),
                            "nfs_server": claim.get("nfs_server") or ""}
        groups = list(dict.fromkeys(user.get("groups") or []))
        quota = user_quota(user, s)
        result.append({"name": user["name"], "namespace": ns, "login": login_of(user["name"], s), "groups": groups,
                       "quota": quota, "gpus": gpu_quota(quota, s), "gpu_types": user.get("gpu_types"),
                       "claims": claims})
    return result


def _labels():
    return {WORKSPACE_LABEL: "true", MANAGED_BY_LABEL: MANAGED_BY}


def namespace_object(ws):
    annotations = {USER_ANNOTATION: ws["name"]}
    if ws["gpu_types"] is not None:
        annotations[GPU_TYPES_ANNOTATION] = ",".join(ws["gpu_types"])
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ws["namespace"], "labels": _labels(), "annotations": annotations}}


def role_binding_object(ws, settings):
    s = settings_defaults(settings)
    subjects = [{"apiGroup": RBAC_GROUP, "kind": "User", "name": ws["login"]}]
    subjects += [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": s["group_prefix"] + group} for group in ws["groups"]]
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "RoleBinding",
            "metadata": {"name": ROLE_BINDING, "namespace": ws["namespace"], "labels": _labels()},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": s["cluster_role"]},
            "subjects": subjects}


def quota_hard(ws):
    """The ResourceQuota's ``spec.hard``."""
    quota = ws["quota"]
    cpu, memory = quantity_text(quota["cpu"]), quantity_text(quota["memory"])
    hard = {"requests.cpu": cpu, "limits.cpu": cpu, "requests.memory": memory, "limits.memory": memory}
    for resource, count in ws["gpus"].items():
        hard[f"requests.{resource}"] = str(count)
    hard["persistentvolumeclaims"] = str(quota["pvcs"])
    hard["requests.storage"] = quantity_text(quota["storage"])
    return hard


def resource_quota_object(ws):
    return {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": RESOURCE_QUOTA, "namespace": ws["namespace"], "labels": _labels()},
            "spec": {"hard": quota_hard(ws)}}


def limit_range_object(ws, settings):
    container = settings_defaults(settings)["container_defaults"]
    return {"apiVersion": "v1", "kind": "LimitRange",
            "metadata": {"name": LIMIT_RANGE, "namespace": ws["namespace"], "labels": _labels()},
            "spec": {"limits": [{
                "type": "Container",
                "default": {"cpu": quantity_text(container["cpu"]), "memory": quantity_text(container["memory"])},
                "defaultRequest": {"cpu": quantity_text(container["request_cpu"]),
                                   "memory": quantity_text(container["request_memory"])},
            }]}}


def volume_object(ws, claim, size):
    ns = ws["namespace"]
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": volume_name(ns, claim),
                         "labels": {**_labels(), WORKSPACE_NAMESPACE_LABEL: ns, CLAIM_LABEL: claim}},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteMany"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "", "volumeMode": "Filesystem",
                     **volume_source(ws["claims"][claim]),
                     "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns,
                                  "name": claim}}}


def claim_object(ws, claim, size):
    ns = ws["namespace"]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": ns, "labels": _labels()},
            "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeMode": "Filesystem",
                     "volumeName": volume_name(ns, claim), "resources": {"requests": {"storage": size}}}}


# ----------------------------------------------------------------------------------- what differs
def _covers(want, have):
    """Whether ``have`` (as the API server returns it) already has everything ``want`` sets: dicts key by key (an
    empty value may be missing: the server leaves out empty strings), lists item by item, quantities by value."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return False
        return all(_covers(value, have[key]) if key in have else value in ("", [], {})
                   for key, value in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(_covers, want, have))
    return want == have or (isinstance(want, str) and isinstance(have, str) and same_quantity(want, have))


def differs(obj, existing):
    """Whether applying ``obj`` would change ``existing`` (None: it does not exist). Besides what the object sets,
    the keys of a ResourceQuota's ``hard`` and the GPU types annotation must match: an apply drops those it no
    longer sets."""
    if existing is None or not _covers(obj, existing):
        return True
    if obj["kind"] == "ResourceQuota":
        return set(obj["spec"]["hard"]) != set((existing.get("spec") or {}).get("hard") or {})
    if obj["kind"] == "Namespace":
        have = (existing.get("metadata") or {}).get("annotations") or {}
        return (GPU_TYPES_ANNOTATION in have) != (GPU_TYPES_ANNOTATION in obj["metadata"]["annotations"])
    return False


def _key(obj):
    meta = obj.get("metadata") or {}
    return obj.get("kind"), meta.get("namespace") or "", meta.get("name")


def _ref(kind, name, namespace=None):
    metadata = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "v1", "kind": kind, "metadata": metadata}


# ----------------------------------------------------------------------------------- the plan
def job_entries(jobs, users):
    """The jobs (checked) as the role installs them: ``user``, ``namespace``, ``release``, ``state`` and ``values``
    (the job's, with ``NameSpace`` set to the user's namespace), in input order."""
    result = []
    for job in jobs or []:
        job = _without_nulls(job)
        ns = namespace_of(job["user"])
        result.append({"user": job["user"], "namespace": ns, "release": job["name"],
                       "state": job.get("state", "present"),
                       "values": {**copy.deepcopy(job.get("values", {})), "NameSpace": ns}})
    return result


def plan(users, settings=None, cluster=None, jobs=None):
    """Check everything, then the objects and what to delete.

    ``cluster``: ``gpu_types`` (what the Nodes carry), ``namespaces`` (every Namespace), ``persistentvolumes``
    (every PersistentVolume) and ``objects`` (the workspaces' ResourceQuotas, LimitRanges, RoleBindings and
    PersistentVolumeClaims, each with its ``kind``).

    Returns ``apply`` (the objects that are missing or differ, in order: per user Namespace, ResourceQuota,
    LimitRange, RoleBinding, PersistentVolumes, PersistentVolumeClaims), ``recreate`` (Released volumes of listed
    users: their claim was deleted, so they must be deleted - the files stay - before they can bind again),
    ``delete`` (with ``remove_data``: refs of the Namespaces and PersistentVolumes of workspaces whose user is no
    longer listed), ``kept`` (without it: those workspaces, kept), ``workspaces`` (a summary per namespace),
    ``notes`` (claims whose size cannot change), ``jobs`` (:func:`job_entries`) and ``counts``. Raises
    :class:`WorkspaceError`."""
    found = problems(users, settings, cluster, jobs)
    if found:
        raise WorkspaceError(found)
    s = settings_defaults(settings)
    cluster = cluster or {}
    existing = {}
    for obj in [*(cluster.get("namespaces") or []), *(cluster.get("persistentvolumes") or []),
                *(cluster.get("objects") or [])]:
        existing[_key(obj)] = obj
    namespaces = {(ns.get("metadata") or {}).get("name"): ns for ns in cluster.get("namespaces") or []}
    apply, recreate, notes, summary, total = [], [], [], {}, 0
    for ws in _workspaces(users, s):
        ns = ws["namespace"]
        objects = [namespace_object(ws), resource_quota_object(ws), limit_range_object(ws, s),
                   role_binding_object(ws, s)]
        sizes = {}
        for claim in CLAIMS:
            size = ws["claims"][claim]["size"]
            current = existing.get(("PersistentVolumeClaim", ns, claim))
            have = ((((current or {}).get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
            if have is not None and not same_quantity(have, size):
                notes.append(f"user {ws['name']}: claim {ns}/{claim} stays {have} (wanted {size}): a claim bound to a "
                             "pre-made volume cannot be resized; to change it, move the files, delete the claim and "
                             "its volume and run again")
                size = have
            sizes[claim] = size
            pv = existing.get(("PersistentVolume", "", volume_name(ns, claim)))
            if pv is not None and (pv.get("status") or {}).get("phase") == "Released":
                recreate.append(_ref("PersistentVolume", volume_name(ns, claim)))
        objects += [volume_object(ws, claim, sizes[claim]) for claim in CLAIMS]
        objects += [claim_object(ws, claim, sizes[claim]) for claim in CLAIMS]
        recreated = {ref["metadata"]["name"] for ref in recreate}
        changed = [obj for obj in objects
                   if (obj["kind"] == "PersistentVolume" and obj["metadata"]["name"] in recreated)
                   or differs(obj, existing.get(_key(obj)))]
        apply += changed
        total += len(objects)
        state = "new" if ns not in namespaces else ("changed" if changed else "unchanged")
        summary[ns] = {"user": ws["name"], "state": state, "login": ws["login"], "groups": ws["groups"],
                       "quota": quota_hard(ws), "gpu_types": ws["gpu_types"],
                       "claims": {claim: {"size": sizes[claim],
                                          "volume": _describe_source(volume_source(ws["claims"][claim]))}
                                  for claim in CLAIMS}}
    wanted = {ws["namespace"] for ws in _workspaces(users, s)}
    leaving = {}
    for name, ns in namespaces.items():
        labels = (ns.get("metadata") or {}).get("labels") or {}
        if labels.get(WORKSPACE_LABEL) == "true" and name not in wanted:
            leaving.setdefault(name, {"namespace": ns, "volumes": []})
    for pv in cluster.get("persistentvolumes") or []:
        labels = (pv.get("metadata") or {}).get("labels") or {}
        owner = labels.get(WORKSPACE_NAMESPACE_LABEL)
        if labels.get(WORKSPACE_LABEL) == "true" and owner and owner not in wanted:
            leaving.setdefault(owner, {"namespace": None, "volumes": []})["volumes"].append(pv["metadata"]["name"])
    delete, kept = [], []
    for name in sorted(leaving):
        entry = leaving[name]
        ns = entry["namespace"]
        user = (((ns or {}).get("metadata") or {}).get("annotations") or {}).get(USER_ANNOTATION)
        terminating = ns is not None and (ns.get("status") or {}).get("phase") == "Terminating"
        volumes = sorted(entry["volumes"])
        if s["remove_data"]:
            if ns is not None and not terminating:
                delete.append(_ref("Namespace", name))
            delete += [_ref("PersistentVolume", volume) for volume in volumes]
            summary[name] = {"user": user, "state": "deleted"}
        else:
            kept.append({"namespace": name, "user": user, "namespace_exists": ns is not None, "volumes": volumes})
            summary[name] = {"user": user, "state": "kept"}
    entries = job_entries(jobs, users)
    return {"apply": apply, "recreate": recreate, "delete": delete, "kept": kept, "workspaces": summary,
            "notes": notes, "gpu_types": copy.deepcopy(list(cluster.get("gpu_types") or [])), "jobs": entries,
            "counts": {"workspaces": len(wanted), "objects": total, "apply": len(apply),
                       "unchanged": total - len(apply), "recreate": len(recreate), "delete": len(delete),
                       "kept": len(kept), "jobs": len(entries)}}
