# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Kubeocean (gocrane/kubeocean v0.1.x), the pure part: the inventory's cluster bindings and resource leasing
policies, every problem they have, the objects they become, the worker kubeconfig the manager reads, and the
judgement of the time zone the leasing windows are evaluated in. No Ansible, no API calls.

What Kubeocean says (api/v1beta1, group ``cloud.tencent.com``, version ``v1beta1``, both kinds cluster-scoped):

* ``ClusterBinding`` lives in the manager (computing) cluster: ``clusterID`` (required, immutable,
  ``^[a-z0-9]([-a-z0-9]*[a-z0-9])?$``, at most 24 characters, unique among bindings; it names the vnodes and the
  per-binding syncer and proxier), ``secretRef {name, namespace}`` (a Secret whose key ``kubeconfig`` holds the
  worker kubeconfig), ``nodeSelector`` (a corev1.NodeSelector: the worker Nodes that become vnodes),
  ``mountNamespace`` (required, the worker namespace of the mapped pods, normally ``kubeocean-worker``) and the
  optional ``serviceNamespaces``, ``disableNodeDefaultTaint``, ``podPriorityClassName``,
  ``runningDaemonsetByDefault``, ``directScheduling``.
* ``ResourceLeasingPolicy`` lives in the **worker** cluster: ``cluster`` (the ClusterBinding's *name*, not its
  clusterID: ``policy.Spec.Cluster == r.ClusterBindingName``), ``nodeSelector`` (ANDed with the binding's; empty:
  every Node), ``timeWindows [{start, end, days}]`` (``"HH:MM"`` compared as strings, end inclusive, end < start
  crosses midnight, days by name case-insensitively, an empty list: always active), ``resourceLimits [{resource,
  quantity?, percent?}]`` (the smaller wins when both are set; resources not listed are lent in full),
  ``forceReclaim`` and ``gracefulReclaimPeriodSeconds``. Only the earliest-created policy that matches a Node
  applies to it.
* The manager and the syncer mount the host's ``/etc/localtime``: the windows are evaluated in the local time of
  the manager cluster's Nodes. Kubernetes publishes no time zone of a Node (no label, annotation or status field;
  Kubeocean adds none and its syncer has no time-zone setting), so it cannot be read through the API: a role
  can only compare the time zone it is given with what it finds on the manager hosts themselves (the target of
  their ``/etc/localtime`` or ``timedatectl``), which is what :func:`time_zone_problems` takes.

Every function returns problems as sentences naming the binding or policy and the field, or raises
:class:`KubeoceanError` with all of them, before anything is generated.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import json
import re
from urllib.parse import urlsplit

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_names, plan_problems

try:
    import zoneinfo
except ImportError:  # Python < 3.9: every time zone is then reported as unknown
    zoneinfo = None

GROUP = "cloud.tencent.com"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
CLUSTER_BINDING = "ClusterBinding"
LEASING_POLICY = "ResourceLeasingPolicy"

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "aicluster-kubeocean"
BINDING_LABEL = "aicluster.io/kubeocean-binding"
TIME_ZONE_ANNOTATION = "aicluster.io/kubeocean-time-zone"
# On each ClusterBinding: the inventory's name of its worker cluster, so that an unbind after the binding left the
# inventory still finds the cluster holding its policies.
WORKER_CLUSTER_ANNOTATION = "aicluster.io/kubeocean-worker-cluster"

SYSTEM_NAMESPACE = "kubeocean-system"  # charts/kubeocean: the manager's namespace, where the kubeconfig Secrets go
WORKER_NAMESPACE = "kubeocean-worker"  # charts/kubeocean-worker: the mount namespace and the syncer's account
SYNCER_ACCOUNT = "kubeocean-syncer"  # ServiceAccount and its token Secret of the same name (kubeocean-worker)
KUBECONFIG_KEY = "kubeconfig"  # the key of the Secret the manager reads (readKubeconfigSecret)
SECRET_SUFFIX = "-kubeconfig"  # noqa: S105 - a name suffix; install-manager.sh: Secret <binding name>-kubeconfig

CLUSTER_ID_MAX = 24
CLUSTER_ID_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HHMM_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
INT32_MAX = 2**31 - 1
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
# A Kubernetes quantity (k8s.io/apimachinery resource.Quantity), not negative.
QUANTITY_RE = re.compile(r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$")
# Names that reach the manager's own API server from inside its pods, never a worker's.
IN_CLUSTER_HOSTS = ("kubernetes", "kubernetes.default", "kubernetes.default.svc")

BINDING_FIELDS = (
    "name", "cluster_id", "server", "node_selector", "mount_namespace", "secret_name", "service_namespaces",
    "disable_node_default_taint", "pod_priority_class_name", "running_daemonset_by_default", "direct_scheduling",
    "policies", "worker_cluster",
)
DEFAULT_WORKER_CLUSTER = "worker"  # the inventory's name of the cluster that lends its Nodes (aicluster_clusters)
BINDING_FLAGS = {  # inventory -> ClusterBinding spec, booleans generated only when given
    "disable_node_default_taint": "disableNodeDefaultTaint",
    "running_daemonset_by_default": "runningDaemonsetByDefault",
    "direct_scheduling": "directScheduling",
}
POLICY_FIELDS = ("name", "cluster", "node_selector", "time_windows", "resource_limits", "force_reclaim",
                 "graceful_period")
WINDOW_FIELDS = ("start", "end", "days")
LIMIT_FIELDS = ("resource", "quantity", "percent")


class KubeoceanError(plan_problems.PlanError):
    """Problems that stop the plan before any object is generated."""


# ----------------------------------------------------------------------------------- small checks
_is_int = plan_problems.is_int


_show = plan_problems.show


def _name(item):
    name = item.get("name") if isinstance(item, dict) else None
    return name if isinstance(name, str) and name else None


def _unknown_fields(where, item, known):
    unknown = sorted(str(k) for k in item if k not in known)
    if not unknown:
        return []
    return [f"{where}: unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(known: {', '.join(known)})"]


def _bool_problems(where, field, value):
    if value is not None and not isinstance(value, bool):
        return [f"{where}: {field} must be true or false, got {_show(value)}"]
    return []


def _without_nulls(item):
    """The dict without its null fields: inventory that templates a setting to null means the default."""
    return {k: v for k, v in item.items() if v is not None} if isinstance(item, dict) else item


# ----------------------------------------------------------------------------------- node selectors
def _expression_problems(where, expression, index, kind):
    at = f"{where} {kind}[{index}]"
    if not isinstance(expression, dict):
        return [f"{at} must be a dict with key, operator and values, got {_show(expression)}"]
    problems = _unknown_fields(at, expression, ("key", "operator", "values"))
    key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values")
    if kind == "matchExpressions":
        problems += [f"{at}: key {_show(key)}: {p}" for p in k8s_names.validate_label_key(key)]
    elif not isinstance(key, str) or not key:
        problems.append(f"{at}: key must be a field name such as metadata.name, got {_show(key)}")
    if operator not in SELECTOR_OPERATORS:
        return [*problems, f"{at}: operator {_show(operator)} is not one of {', '.join(SELECTOR_OPERATORS)}"]
    if values is not None and (not isinstance(values, list) or not all(isinstance(v, str) for v in values)):
        return [*problems, f"{at}: values must be a list of strings, got {_show(values)}"]
    values = values or []
    if operator in ("In", "NotIn") and not values:
        problems.append(f"{at}: operator {operator} needs at least one value")
    elif operator in ("Exists", "DoesNotExist") and values:
        problems.append(f"{at}: operator {operator} takes no values")
    elif operator in ("Gt", "Lt") and (len(values) != 1 or not re.match(r"^-?[0-9]+$", values[0])):
        problems.append(f"{at}: operator {operator} needs exactly one integer value")
    return problems


def node_selector_problems(where, selector, required=False):
    """Problems of an inventory node selector: either labels (a dict of label key -> value or list of values, all
    required of a Node) or a Kubernetes NodeSelector (a dict with the single key ``nodeSelectorTerms``)."""
    if selector is None or selector == {}:
        if required:
            return [f"{where}: node_selector is required (the worker Nodes to lend, e.g. "
                    "{kubeocean.io/role: worker})"]
        return []
    if not isinstance(selector, dict):
        return [f"{where}: node_selector must be a dict of label -> value(s), or a Kubernetes NodeSelector with "
                f"nodeSelectorTerms, got {_show(selector)}"]
    where = f"{where}: node_selector"
    if "nodeSelectorTerms" in selector:
        problems = _unknown_fields(where, selector, ("nodeSelectorTerms",))
        terms = selector["nodeSelectorTerms"]
        if not isinstance(terms, list) or not terms:
            return [*problems, f"{where} nodeSelectorTerms must be a non-empty list of terms, got {_show(terms)}"]
        for index, term in enumerate(terms):
            at = f"{where} nodeSelectorTerms[{index}]"
            if not isinstance(term, dict) or not (term.get("matchExpressions") or term.get("matchFields")):
                problems.append(f"{at} must have matchExpressions or matchFields")
                continue
            problems += _unknown_fields(at, term, ("matchExpressions", "matchFields"))
            for kind in ("matchExpressions", "matchFields"):
                expressions = term.get(kind) or []
                if not isinstance(expressions, list):
                    problems.append(f"{at} {kind} must be a list, got {_show(expressions)}")
                    continue
                for number, expression in enumerate(expressions):
                    problems += _expression_problems(at, expression, number, kind)
        return problems
    problems = []
    for key, value in selector.items():
        problems += [f"{where} key {_show(key)}: {p}" for p in k8s_names.validate_label_key(key)]
        values = value if isinstance(value, list) else [value]
        if not values:
            problems.append(f"{where} {key}: give at least one value")
        for item in values:
            if not isinstance(item, str):
                problems.append(f"{where} {key}: value {_show(item)} must be a string (quote numbers and booleans)")
            else:
                problems += [f"{where} {key}: {p}" for p in k8s_names.validate_label_value(item)]
    return problems


def node_selector_object(selector):
    """The corev1.NodeSelector of a (valid, non-empty) inventory node selector."""
    if "nodeSelectorTerms" in selector:
        return copy.deepcopy(selector)
    expressions = [{"key": key, "operator": "In", "values": list(value) if isinstance(value, list) else [value]}
                   for key, value in selector.items()]
    return {"nodeSelectorTerms": [{"matchExpressions": expressions}]}


# ----------------------------------------------------------------------------------- bindings
def server_problems(server, where=None, field="server"):
    """Problems of a worker API server address as the manager's pods must reach it: an ``https://`` URL with a
    host, not a loopback or in-cluster address (those name the manager itself from inside its pods)."""
    prefix = f"{where}: " if where else ""
    if not isinstance(server, str) or not server.strip():
        return [f"{prefix}{field} is required (the worker API server's https:// address, reachable from the "
                "manager cluster's pods)"]
    if any(c.isspace() for c in server):
        return [f"{prefix}{field} {server!r} must not contain spaces"]
    try:
        url = urlsplit(server)
        if url.port == 0:  # url.port raises ValueError for a port that is not a number or out of range
            return [f"{prefix}{field} {server} has port 0"]
    except ValueError as exc:
        return [f"{prefix}{field} {server} is not a URL: {exc}"]
    if url.scheme != "https" or not url.hostname:
        return [f"{prefix}{field} {server} must be an https:// URL with a host (the kubeconfig carries a token)"]
    if url.query or url.fragment:
        return [f"{prefix}{field} {server} must not have a query or fragment"]
    host = url.hostname.lower()
    if host == "localhost" or host.endswith(".localhost") or host.startswith("127.") or host in ("::1", "0.0.0.0"):  # noqa: S104
        return [f"{prefix}{field} {server} is a loopback address: the manager cannot reach the worker there "
                "(give an address of the worker's API server reachable from the manager cluster's pods)"]
    if host in IN_CLUSTER_HOSTS or host.endswith(".svc") or host.endswith(".svc.cluster.local"):
        return [f"{prefix}{field} {server} is an in-cluster service name: inside the manager's pods it names a "
                "service of the manager cluster, not the worker's API server"]
    return []


def cluster_id_problems(where, cluster_id):
    if cluster_id is None or cluster_id == "":
        return [f"{where}: cluster_id is required (Kubeocean's clusterID)"]
    if not isinstance(cluster_id, str):
        return [f"{where}: cluster_id must be a string, got {_show(cluster_id)}"]
    problems = []
    if len(cluster_id) > CLUSTER_ID_MAX:
        problems.append(f"{where}: cluster_id {cluster_id} has {len(cluster_id)} characters, Kubeocean allows at "
                        f"most {CLUSTER_ID_MAX}")
    if not CLUSTER_ID_RE.match(cluster_id):
        problems.append(f"{where}: cluster_id {cluster_id!r} must be lower-case letters, digits and '-', starting "
                        "and ending with a letter or digit (^[a-z0-9]([-a-z0-9]*[a-z0-9])?$)")
    return problems


def binding_defaults(binding):
    """A copy of a (valid) binding with its defaults filled in."""
    binding = dict(_without_nulls(binding))
    binding.setdefault("mount_namespace", WORKER_NAMESPACE)
    binding.setdefault("secret_name", f"{binding['name']}{SECRET_SUFFIX}")
    binding.setdefault("worker_cluster", DEFAULT_WORKER_CLUSTER)
    return binding


def binding_problems(binding, index=0, clusters=None):
    """Problems of one binding (its nested policies are checked by :func:`problems`); ``clusters``: the
    inventory's cluster names a ``worker_cluster`` may take (None: not checked)."""
    if not isinstance(binding, dict):
        return [f"bindings[{index}] must be a dict, got {_show(binding)}"]
    binding = _without_nulls(binding)
    name = _name(binding)
    where = f"binding {name}" if name else f"bindings[{index}]"
    problems = _unknown_fields(where, binding, BINDING_FIELDS)
    if name is None:
        problems.append(f"{where}: name is required (the ClusterBinding's name)")
    else:
        # A label value on every vnode (kubeocean.io/cluster-binding) and the start of the Secret's name.
        problems += [f"{where}: {p}" for p in k8s_names.validate_dns1123_label(name, "name")]
    problems += cluster_id_problems(where, binding.get("cluster_id"))
    problems += server_problems(binding.get("server"), where)
    problems += node_selector_problems(where, binding.get("node_selector"), required=True)
    for field in ("mount_namespace",):
        if field in binding:
            problems += [f"{where}: {p}" for p in k8s_names.validate_dns1123_label(binding[field], field)]
    worker_cluster = binding.get("worker_cluster", DEFAULT_WORKER_CLUSTER)
    if not isinstance(worker_cluster, str) or not worker_cluster:
        problems.append(f"{where}: worker_cluster must be the name of a cluster of the inventory, got "
                        f"{_show(worker_cluster)}")
    elif clusters is not None and worker_cluster not in clusters:
        problems.append(f"{where}: worker_cluster {worker_cluster} is not a cluster of the inventory "
                        f"(aicluster_clusters: {', '.join(clusters) or 'none'})")
    if "secret_name" in binding:
        secret_name = binding["secret_name"]
        problems += [f"{where}: {p}" for p in k8s_names.validate_dns1123_subdomain(secret_name, "secret_name")]
    namespaces = binding.get("service_namespaces")
    if namespaces is not None:
        if not isinstance(namespaces, list):
            problems.append(f"{where}: service_namespaces must be a list of namespaces, got {_show(namespaces)}")
        else:
            for namespace in namespaces:
                problems += [f"{where}: service_namespaces: {p}"
                             for p in k8s_names.validate_dns1123_label(namespace, "namespace")]
    if "pod_priority_class_name" in binding:
        problems += [f"{where}: {p}" for p in k8s_names.validate_dns1123_subdomain(
            binding["pod_priority_class_name"], "pod_priority_class_name")]
    for field in BINDING_FLAGS:
        problems += _bool_problems(where, field, binding.get(field))
    policies = binding.get("policies")
    if policies is not None and not isinstance(policies, list):
        problems.append(f"{where}: policies must be a list of leasing policies, got {_show(policies)}")
    return problems


def binding_object(binding, system_namespace=SYSTEM_NAMESPACE):
    """The ClusterBinding of a (valid) binding."""
    binding = binding_defaults(binding)
    spec = {
        "clusterID": binding["cluster_id"],
        "secretRef": {"name": binding["secret_name"], "namespace": system_namespace},
        "nodeSelector": node_selector_object(binding["node_selector"]),
        "mountNamespace": binding["mount_namespace"],
    }
    if "service_namespaces" in binding:
        spec["serviceNamespaces"] = list(binding["service_namespaces"])
    for field, key in BINDING_FLAGS.items():
        if field in binding:
            spec[key] = binding[field]
    if "pod_priority_class_name" in binding:
        spec["podPriorityClassName"] = binding["pod_priority_class_name"]
    return {"apiVersion": API_VERSION, "kind": CLUSTER_BINDING,
            "metadata": {"name": binding["name"], "labels": {MANAGED_BY_LABEL: MANAGED_BY},
                         "annotations": {WORKER_CLUSTER_ANNOTATION: binding["worker_cluster"]}},
            "spec": spec}


# ----------------------------------------------------------------------------------- leasing policies
def hhmm(value):
    """``(text, problem)``: a time of day as Kubeocean compares it, ``"HH:MM"`` on 24 hours with leading zeros
    (its windows are compared as strings, so ``8:00`` would sort after ``18:00``)."""
    if _is_int(value):
        # YAML 1.1 (Ansible's loader) reads an unquoted 18:30 as the base-60 number 1110.
        hint = f"{value // 60:02d}:{value % 60:02d}" if 0 <= value < 24 * 60 else None
        quoted = f" (YAML reads an unquoted time as a base-60 number: quote it, \"{hint}\")" if hint else ""
        return None, f"must be a quoted \"HH:MM\" time, got {value}{quoted}"
    if not isinstance(value, str):
        return None, f"must be a quoted \"HH:MM\" time, got {_show(value)}"
    if not HHMM_RE.match(value):
        return None, f"{value!r} is not a time of day as \"HH:MM\" (00:00 to 23:59, two digits each)"
    return value, None


def _window_problems(where, window, index):
    at = f"{where}: time_windows[{index}]"
    if not isinstance(window, dict):
        return [f"{at} must be a dict with start, end and days, got {_show(window)}"]
    window = _without_nulls(window)
    problems = _unknown_fields(at, window, WINDOW_FIELDS)
    times = {}
    for field in ("start", "end"):
        if field not in window:
            problems.append(f"{at}: {field} is required (\"HH:MM\")")
            continue
        times[field], problem = hhmm(window[field])
        if problem:
            problems.append(f"{at}: {field} {problem}")
    if times.get("start") and times.get("start") == times.get("end"):
        problems.append(f"{at}: start and end are both {times['start']}: give a window that ends before it starts "
                        "to cross midnight (e.g. 08:01 to 08:00 for the whole day), or no time_windows to lend "
                        "at all times")
    days = window.get("days")
    if days is not None:
        if not isinstance(days, list):
            problems.append(f"{at}: days must be a list of day names (Monday to Sunday), got {_show(days)}")
        else:
            for day in days:
                if not isinstance(day, str) or day.capitalize() not in DAYS:
                    problems.append(f"{at}: days: {_show(day)} is not a day name ({', '.join(DAYS)})")
    return problems


def window_object(window):
    window = _without_nulls(window)
    result = {"start": window["start"], "end": window["end"]}
    if window.get("days"):
        result["days"] = [day.capitalize() for day in window["days"]]
    return result


def is_extended_resource(resource):
    """Extended resources (a domain prefix outside kubernetes.io, e.g. nvidia.com/gpu) are counted in whole units."""
    if "/" not in resource:
        return False
    prefix = resource.split("/", 1)[0]
    return not (prefix == "kubernetes.io" or prefix.endswith(".kubernetes.io"))


def quantity_text(value):
    """A quantity as a string (inventory may give 4 or 0.5)."""
    return str(value) if not isinstance(value, str) else value


def _limit_problems(where, limit, index):
    if not isinstance(limit, dict):
        return [f"{where}: resource_limits[{index}] must be a dict with resource and quantity and/or percent, got "
                f"{_show(limit)}"]
    limit = _without_nulls(limit)
    resource = limit.get("resource")
    at = f"{where}: resource_limits[{index}]" + (f" ({resource})" if isinstance(resource, str) and resource else "")
    problems = _unknown_fields(at, limit, LIMIT_FIELDS)
    if not isinstance(resource, str) or not resource:
        problems.append(f"{at}: resource is required (e.g. cpu, memory, nvidia.com/gpu)")
    else:
        problems += [f"{at}: resource {p}" for p in k8s_names.validate_label_key(resource)]
    if "quantity" not in limit and "percent" not in limit:
        problems.append(f"{at}: give quantity, percent or both (the smaller wins)")
    if "quantity" in limit:
        quantity = limit["quantity"]
        if isinstance(quantity, bool) or not isinstance(quantity, (str, int, float)) \
                or not QUANTITY_RE.match(quantity_text(quantity)):
            problems.append(f"{at}: quantity {_show(quantity)} is not a Kubernetes quantity (e.g. \"96\", \"500m\", "
                            "\"256Gi\"; not negative)")
        elif isinstance(resource, str) and is_extended_resource(resource) \
                and not re.match(r"^\+?[0-9]+$", quantity_text(quantity)):
            problems.append(f"{at}: quantity {_show(quantity)} must be a whole number: {resource} is an extended "
                            "resource, counted in whole units")
    if "percent" in limit:
        percent = limit["percent"]
        if not _is_int(percent):
            hint = " (a number without %)" if isinstance(percent, str) and percent.endswith("%") else ""
            problems.append(f"{at}: percent must be a whole number from 0 to 100, got {_show(percent)}{hint}")
        elif not 0 <= percent <= 100:
            problems.append(f"{at}: percent {percent} is {'over 100' if percent > 100 else 'negative'} (0 to 100)")
    return problems


def limit_object(limit):
    limit = _without_nulls(limit)
    result = {"resource": limit["resource"]}
    if "quantity" in limit:
        result["quantity"] = quantity_text(limit["quantity"])
    if "percent" in limit:
        result["percent"] = limit["percent"]
    return result


def policy_problems(policy, where):
    """Problems of one leasing policy's own fields (its ``cluster`` is checked against the bindings by
    :func:`problems`)."""
    policy = _without_nulls(policy)
    problems = _unknown_fields(where, policy, POLICY_FIELDS)
    name = _name(policy)
    if name is None:
        problems.append(f"{where}: name is required (the ResourceLeasingPolicy's name)")
    else:
        problems += [f"{where}: {p}" for p in k8s_names.validate_dns1123_subdomain(name, "name")]
    problems += node_selector_problems(where, policy.get("node_selector"))
    windows = policy.get("time_windows", [])
    if not isinstance(windows, list):
        problems.append(f"{where}: time_windows must be a list of {{start, end, days}}, got {_show(windows)}")
    else:
        for index, window in enumerate(windows):
            problems += _window_problems(where, window, index)
    limits = policy.get("resource_limits", [])
    if not isinstance(limits, list):
        problems.append(f"{where}: resource_limits must be a list of {{resource, quantity, percent}}, got "
                        f"{_show(limits)}")
    else:
        for index, limit in enumerate(limits):
            problems += _limit_problems(where, limit, index)
        resources = [limit.get("resource") for limit in limits if isinstance(limit, dict)]
        for resource in sorted({r for r in resources if isinstance(r, str) and resources.count(r) > 1}):
            problems.append(f"{where}: resource_limits lists {resource} {resources.count(resource)} times")
    problems += _bool_problems(where, "force_reclaim", policy.get("force_reclaim"))
    if "graceful_period" in policy:
        period = policy["graceful_period"]
        if not _is_int(period) or not 0 <= period <= INT32_MAX:
            problems.append(f"{where}: graceful_period must be a number of seconds (0 or more), got {_show(period)}")
        elif policy.get("force_reclaim") is not True:
            problems.append(f"{where}: graceful_period only delays forced reclaim: it has no effect without "
                            "force_reclaim: true")
    return problems


def policy_object(policy, binding_name, time_zone=None):
    """The ResourceLeasingPolicy of a (valid) policy of the binding ``binding_name``."""
    policy = _without_nulls(policy)
    spec = {"cluster": binding_name}
    if policy.get("node_selector"):
        spec["nodeSelector"] = node_selector_object(policy["node_selector"])
    # Always given, also empty: applying the object again must clear windows or limits removed from inventory.
    spec["timeWindows"] = [window_object(w) for w in policy.get("time_windows", [])]
    spec["resourceLimits"] = [limit_object(limit) for limit in policy.get("resource_limits", [])]
    spec["forceReclaim"] = policy.get("force_reclaim", False)
    if "graceful_period" in policy:
        spec["gracefulReclaimPeriodSeconds"] = policy["graceful_period"]
    metadata = {"name": policy["name"], "labels": {MANAGED_BY_LABEL: MANAGED_BY, BINDING_LABEL: binding_name}}
    if time_zone and spec["timeWindows"]:
        metadata["annotations"] = {TIME_ZONE_ANNOTATION: time_zone}
    return {"apiVersion": API_VERSION, "kind": LEASING_POLICY, "metadata": metadata, "spec": spec}


# ----------------------------------------------------------------------------------- time zone
def zone_name(value):
    """An IANA name from what a host says: the name itself, or the target of its ``/etc/localtime`` link
    (``/usr/share/zoneinfo/Asia/Shanghai``, ``../usr/share/zoneinfo/posix/Etc/UTC``)."""
    if not isinstance(value, str):
        return value
    value = value.strip()
    if "zoneinfo/" in value:
        value = value.rsplit("zoneinfo/", 1)[1]
        for prefix in ("posix/", "right/"):
            if value.startswith(prefix):
                value = value[len(prefix):]
    return value


def load_zone(name):
    """``(ZoneInfo, problem)`` for an IANA time zone name."""
    if zoneinfo is None:
        return None, "cannot be checked: this Python has no zoneinfo module"
    if not isinstance(name, str) or not name.strip():
        return None, f"must be an IANA time zone name such as Asia/Shanghai, got {_show(name)}"
    try:
        return zoneinfo.ZoneInfo(name), None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        if not zoneinfo.available_timezones():
            return None, f"{name!r} cannot be checked: the control host has no time zone database (install tzdata)"
        return None, f"{name!r} is not an IANA time zone name (e.g. Asia/Shanghai, Europe/Berlin, UTC)"


def same_clock(zone, other, now=None, days=731):
    """Whether two zones show the same local time at every 6 hours of the next two years (e.g. UTC and
    Etc/UTC, or Asia/Shanghai and Asia/Chongqing: different names, the same clock)."""
    if zone.key == other.key:
        return True
    start = (now or datetime.datetime.now(datetime.UTC)).replace(minute=0, second=0, microsecond=0)
    for step in range(days * 4):
        instant = start + datetime.timedelta(hours=6 * step)
        if instant.astimezone(zone).utcoffset() != instant.astimezone(other).utcoffset():
            return False
    return True


def time_zone_problems(time_zone, observed=None, required=True, now=None):
    """Problems of the time zone the leasing windows are written for (``time_zone``, an IANA name) and of its
    comparison with ``observed``: ``{manager Node or host: what it says}`` (IANA names or ``/etc/localtime``
    link targets; empty values are unknown and skipped). Kubeocean evaluates the windows in the manager Nodes'
    local time, which the API does not publish, so these can only come from the hosts themselves."""
    if time_zone is None or time_zone == "":
        return ["time_zone is required: Kubeocean evaluates the time windows in the manager Nodes' local time, "
                "give it as an IANA name (e.g. Asia/Shanghai)"] if required else []
    zone, problem = load_zone(time_zone)
    if problem:
        return [f"time_zone {problem}"]
    if observed is None:
        return []
    if not isinstance(observed, dict):
        return [f"observed_time_zones must map manager Nodes to their time zones, got {_show(observed)}"]
    problems = []
    for source in sorted(observed, key=str):
        seen = zone_name(observed[source])
        if seen is None or seen == "":
            continue
        other, problem = load_zone(seen)
        if problem:
            problems.append(f"manager Node {source}: its time zone {problem}, so it cannot be compared with "
                            f"time_zone {time_zone}")
        elif not same_clock(zone, other, now):
            problems.append(f"manager Node {source} runs in time zone {seen}, not time_zone {time_zone}: Kubeocean "
                            "evaluates the time windows in the manager Nodes' local time (the syncer mounts the "
                            "host's /etc/localtime)")
    return problems


# ----------------------------------------------------------------------------------- the whole input
def _selector_key(policy):
    """The Nodes a policy selects, as comparable text (label form: keys and values in any order)."""
    selector = _without_nulls(policy).get("node_selector") or {}
    if selector and "nodeSelectorTerms" not in selector:
        selector = {key: sorted(value) if isinstance(value, list) else [value]
                    for key, value in sorted(selector.items())}
    return json.dumps(node_selector_object(selector) if selector else {}, sort_keys=True)


def collect_policies(bindings, policies):
    """``[(binding name or None, where, policy, nested)]``: the policies nested under the bindings (their binding
    is the one they sit under) then the separate ones (their ``cluster`` names the binding)."""
    found = []
    for b_index, binding in enumerate(bindings):
        if not isinstance(binding, dict) or not isinstance(binding.get("policies"), list):
            continue
        b_where = f"binding {_name(binding)}" if _name(binding) else f"bindings[{b_index}]"
        for index, policy in enumerate(binding["policies"]):
            where = f"{b_where} policy {_name(policy)}" if _name(policy) else f"{b_where} policies[{index}]"
            found.append((_name(binding), where, policy, True))
    for index, policy in enumerate(policies):
        where = f"policy {_name(policy)}" if _name(policy) else f"policies[{index}]"
        cluster = policy.get("cluster") if isinstance(policy, dict) else None
        found.append((cluster if isinstance(cluster, str) else None, where, policy, False))
    return found


def problems(bindings, policies=None, time_zone=None, observed_time_zones=None, system_namespace=SYSTEM_NAMESPACE,
             clusters=None):
    """Every problem of the whole input, one sentence each, in input order (empty: fine)."""
    policies = [] if policies is None else policies
    found = [f"{field} must be a list, got {_show(value)}"
             for field, value in (("bindings", bindings), ("policies", policies)) if not isinstance(value, list)]
    if found:
        return found
    found += [f"system_namespace: {p}" for p in k8s_names.validate_dns1123_label(system_namespace, "namespace")]
    for index, binding in enumerate(bindings):
        found += binding_problems(binding, index, clusters)
    for field, what in (("name", "name"), ("cluster_id", "cluster_id"), ("server", "server")):
        values = [b.get(field) for b in bindings if isinstance(b, dict) and isinstance(b.get(field), str)]
        for value in dict.fromkeys(v for v in values if values.count(v) > 1):
            owners = [_name(b) or "?" for b in bindings if isinstance(b, dict) and b.get(field) == value]
            if field == "name":
                found.append(f"binding {value} is defined {values.count(value)} times")
            elif field == "cluster_id":
                found.append(f"bindings {', '.join(owners)} share the cluster_id {value}: Kubeocean rejects a "
                             "clusterID used by another binding")
            else:
                found.append(f"bindings {', '.join(owners)} share the {what} {value}: one worker cluster bound twice "
                             "would lend its Nodes twice")
    names = {_name(b): b for b in bindings if isinstance(b, dict) and _name(b)}
    cluster_ids = {b.get("cluster_id"): _name(b) for b in bindings if isinstance(b, dict) and _name(b)}
    per_binding = {}
    for cluster, where, policy, nested in collect_policies(bindings, policies):
        if not isinstance(policy, dict):
            found.append(f"{where} must be a dict, got {_show(policy)}")
            continue
        found += policy_problems(policy, where)
        stated = policy.get("cluster")
        if nested and stated is not None and stated != cluster:
            found.append(f"{where}: cluster {_show(stated)} is not the name of the binding it sits under "
                         f"({cluster}); leave it out")
        elif not nested and (stated is None or stated == ""):
            found.append(f"{where}: cluster is required (the name of the binding whose worker it lends)")
        elif not nested and stated not in names:
            if isinstance(stated, str) and stated in cluster_ids:
                found.append(f"{where}: cluster {stated} is the cluster_id of binding {cluster_ids[stated]}; "
                             f"Kubeocean matches the ClusterBinding's name: cluster: {cluster_ids[stated]}")
            else:
                known = ", ".join(names) or "none"
                found.append(f"{where}: cluster {_show(stated)} is not bound (bindings: {known})")
        if cluster in names and _name(policy):
            per_binding.setdefault(cluster, []).append((where, policy))
    for cluster, entries in per_binding.items():
        seen_names, seen_selectors = {}, {}
        for where, policy in entries:
            name = _name(policy)
            if name in seen_names:
                found.append(f"{where}: binding {cluster} has two policies named {name} (one worker cluster)")
            seen_names.setdefault(name, where)
            if not node_selector_problems(where, _without_nulls(policy).get("node_selector")):
                key = _selector_key(policy)
                if key in seen_selectors and seen_selectors[key] != name:
                    found.append(f"{where}: selects the same Nodes as policy {seen_selectors[key]} of binding "
                                 f"{cluster}; Kubeocean applies only the earliest-created policy to a Node")
                seen_selectors.setdefault(key, name)
    windows = any(isinstance(p, dict) and p.get("time_windows")
                  for _c, _w, p, _n in collect_policies(bindings, policies))
    found += time_zone_problems(time_zone, observed_time_zones, required=windows)
    return found


def plan(bindings, policies=None, time_zone=None, observed_time_zones=None, system_namespace=SYSTEM_NAMESPACE,
         clusters=None):
    """The objects of the bindings and their policies, or :class:`KubeoceanError` with every problem.

    Returns ``bindings``: per binding, in inventory order, ``{name, cluster_id, server, worker_cluster,
    secret {namespace, name}, worker_objects, manager_objects}`` - what to do in order: apply ``worker_objects`` (its
    ResourceLeasingPolicies) to its worker cluster, write the kubeconfig Secret into the manager cluster, apply
    ``manager_objects`` (its ClusterBinding) to the manager; ``objects``: all of them in that order (every
    binding's policies, then the ClusterBindings); ``time_zone``."""
    policies = [] if policies is None else policies
    found = problems(bindings, policies, time_zone, observed_time_zones, system_namespace, clusters)
    if found:
        raise KubeoceanError(found)
    zone = time_zone or None
    result = []
    collected = collect_policies(bindings, policies)
    for binding in bindings:
        binding = binding_defaults(binding)
        own = [policy_object(p, binding["name"], zone)
               for cluster, _w, p, _n in collected if cluster == binding["name"]]
        result.append({
            "name": binding["name"],
            "cluster_id": binding["cluster_id"],
            "server": binding["server"],
            "worker_cluster": binding["worker_cluster"],
            "secret": {"namespace": system_namespace, "name": binding["secret_name"]},
            "worker_objects": own,
            "manager_objects": [binding_object(binding, system_namespace)],
        })
    objects = [o for b in result for o in b["worker_objects"]] + [o for b in result for o in b["manager_objects"]]
    return {"bindings": result, "objects": objects, "time_zone": zone}


# ----------------------------------------------------------------------------------- worker kubeconfig
def token_secret_parts(data):
    """``(ca_data, token)`` of a ServiceAccount token Secret's ``data`` as the API returns it (base64 values):
    the CA as base64 (kubeconfig's certificate-authority-data) and the token as text. Raises
    :class:`KubeoceanError` naming what is missing or malformed (never a value)."""
    if not isinstance(data, dict):
        raise KubeoceanError(["the token Secret has no data yet (the token controller fills it in)"])
    found, decoded = [], {}
    for key in ("token", "ca.crt"):
        value = data.get(key)
        if not value:
            found.append(f"the token Secret has no {key} yet (the token controller fills it in)")
            continue
        try:
            decoded[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError, TypeError):
            found.append(f"the token Secret's {key} is not base64")
    if "token" in decoded:
        try:
            decoded["token"] = decoded["token"].decode("ascii").strip()
        except UnicodeDecodeError:
            found.append("the token Secret's token is not text")
        else:
            if not decoded["token"] or any(c.isspace() for c in decoded["token"]):
                found.append("the token Secret's token is empty or contains spaces")
    if "ca.crt" in decoded and b"-----BEGIN CERTIFICATE-----" not in decoded["ca.crt"]:
        found.append("the token Secret's ca.crt is not a PEM certificate")
    if found:
        raise KubeoceanError(found)
    return base64.b64encode(decoded["ca.crt"]).decode("ascii"), decoded["token"]


def worker_kubeconfig(data, server, name="kubeocean-worker", namespace=WORKER_NAMESPACE):
    """The worker kubeconfig the manager reads (Secret key ``kubeconfig``), as YAML: ``server``, the Secret's CA
    and the syncer's token, context namespace ``namespace`` - what Kubeocean's hack/kubeconfig.sh writes.
    ``data`` is the token Secret's ``data``. Raises :class:`KubeoceanError` (without any secret value)."""
    problems = server_problems(server)
    if problems:
        raise KubeoceanError(problems)
    ca_data, token = token_secret_parts(data)
    user = f"{name}-{SYNCER_ACCOUNT}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user, "namespace": namespace}}],
        "current-context": name,
        "preferences": {},
    }
    return dump_yaml(config)


def dump_yaml(value):
    try:
        import yaml
    except ImportError:  # JSON is YAML too
        return json.dumps(value, indent=2) + "\n"
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False)


def same_kubeconfig(text, other):
    """Whether two kubeconfig texts say the same (formatting aside); unreadable text never does."""
    try:
        import yaml

        return yaml.safe_load(text) == yaml.safe_load(other)
    except Exception:  # unreadable text is different text
        return text == other
