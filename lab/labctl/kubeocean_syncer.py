"""Kubeocean stand-in (lab fixture): the manager and the syncer of Kubeocean (github.com/gocrane/kubeocean
v0.1.1), played against the lab's two real clusters, because Kubeocean is not served as a Go module and
cannot be built here. Its charts are lab stand-ins too (``repos/chartsrc/kubeocean``,
``repos/chartsrc/kubeocean-worker``, served by the lab's chart repository); under kwok their pods run
nothing, and this process does their work. Section numbers below are those of the reference notes
``/work/shared/reference/kubeocean.md`` (facts from Kubeocean's source).

The contract it implements, and only while Deployment ``kubeocean-manager`` exists (any namespace,
replicas != 0; that namespace, normally ``kubeocean-system``, is "the manager's namespace"):

**Manager** (§1, §3 "What deleting a ClusterBinding does" step 3), per ClusterBinding of the computing
cluster (``manager``):

* adds the finalizer ``kubeocean.io/clusterbinding-manager``; validates the binding (``mountNamespace``
  required; a ``clusterID`` already used by an older binding is refused) and reports a refusal as
  ``status.phase: Failed`` with a ``Ready=False`` condition (reason ``ValidationFailed`` /
  ``ClusterIDConflict``);
* creates the per-binding Deployments ``kubeocean-syncer-<clusterID>`` and ``kubeocean-proxier-<clusterID>``
  and the Service ``kubeocean-proxier-<clusterID>-svc`` from the chart's ConfigMaps
  ``kubeocean-syncer-template`` / ``kubeocean-proxier-template`` (keys ``deployment.yaml``,
  ``service.yaml``; ``{{.DeploymentName}}``-style placeholders). Under kwok their pods are Running with
  nothing inside; the proxier pod's IP becomes the vnodes' InternalIP (§5 Status);
* on deletion: once the syncer's finalizer is gone, deletes those three objects and releases its own.

**Syncer** (§2, §5), per ClusterBinding whose syncer Deployment exists (the manager created it):

* adds the finalizer ``kubeocean.io/clusterbinding-syncer``;
* reads the binding's Secret (``secretRef``, key ``kubeconfig``) and talks to the worker cluster
  through THAT kubeconfig only (normally the worker chart's ``kubeocean-syncer`` ServiceAccount token:
  the worker chart's RBAC really applies). A missing Secret or key, an unparsable kubeconfig, an
  unreachable server or a refused token is reported in the binding's status: ``phase: Failed``,
  condition ``Ready=False`` with reason ``SecretNotFound`` / ``KubeconfigMissing`` /
  ``KubeconfigInvalid`` / ``ConnectionFailed`` / ``Unauthorized`` / ``Forbidden`` and the error; until
  the first lists answer ``phase: Pending`` (reason ``Connecting``); a working connection gives
  ``phase: Ready``, ``Ready=True`` (reason ``Synced``, the vnode count) and ``lastSyncTime``. Status is
  written only when phase or condition change;
* watches there ResourceLeasingPolicies, Nodes and pods; a Node becomes a vnode when it matches the
  binding's ``nodeSelector`` AND the selector of a policy with ``spec.cluster`` = the binding's NAME
  (empty selector: every Node); of several policies the earliest created wins (then the name); no
  policy, no vnode (§2 Semantics);
* the vnode (§5): name ``vnode-<clusterID>-<node>`` (64 characters or more: the first 30 and
  ``-<md5 hex>`` of the full name); labels = the physical Node's labels plus
  ``kubeocean.io/cluster-binding``, ``physical-cluster-id``, ``physical-node-name``,
  ``physical-node-uid``, ``physical-node-innerip``, ``proxier_port`` (FNV-1a hash of the vnode name into
  15000-65535, first free), ``managed-by=kubeocean``, ``type=virtual-kubelet``,
  ``node.kubernetes.io/instance-type`` and ``beta.kubernetes.io/instance-type`` = ``vnode``,
  ``kubernetes.io/hostname`` = the vnode name; annotations = the physical Node's plus
  ``kubeocean.io/policies-applied``, ``policy-details``, ``prometheus-url``, ``last-sync-time``,
  ``physical-node-name``, ``physical-node-uid`` and ``kubeocean.io/expected-metadata`` (what the syncer
  set, so that labels, annotations and taints others add are kept, as upstream); finalizer
  ``kubeocean.io/vnode``; taints = the physical taints (``node.kubernetes.io/unschedulable`` renamed
  ``kubeocean.io/physical-node-unschedulable``) + ``kubeocean.io/vnode:NoSchedule`` (unless
  ``disableNodeDefaultTaint``) + outside the policy's windows ``kubeocean.io/out-of-time-windows=true``,
  ``NoExecute`` with ``forceReclaim`` else ``NoSchedule`` (its ``timeAdded`` kept while it stays);
  capacity = allocatable = the physical allocatable minus the requests (containers, init and
  ephemeral containers summed, and one ``pods`` each) of its Pending/Running pods NOT labelled
  ``kubeocean.io/managed-by=kubeocean``, floored at 0, then per ``resourceLimits`` entry capped by the
  smaller of ``quantity`` and ``percent`` % of that free amount (percent in milli-units for decimal
  quantities, bytes for binary ones, as upstream; a percent over 100 gives 0); resources not listed
  are lent in full; addresses InternalIP = the proxier pod's IP (until one runs: the physical Node's
  InternalIP) and Hostname = the vnode name;
* force reclaim (§2 forceReclaim, §5 Taints): outside the windows with ``forceReclaim``, once
  ``gracefulReclaimPeriodSeconds`` have passed since the taint's ``timeAdded`` (0: at once), the pods on
  the vnode that do not tolerate ``kubeocean.io/out-of-time-windows`` are deleted;
* a vnode goes (§3, §5) when its Node no longer qualifies (selectors, no policy, policy deleted, Node
  deleted) or its binding is being deleted: taint ``kubeocean.io/vnode-deleting:NoSchedule`` and
  ``unschedulable``, delete, force-delete the pods on it, and once none is Pending/Running release its
  finalizer. On binding deletion the syncer's finalizer is released when no vnode of the binding is
  left;
* policies: the finalizer ``policy.kubeocean.io/finalizer`` on each policy naming the binding
  (released when the policy is deleted, after its vnodes were re-evaluated; a policy left behind by a
  removed binding keeps it, which is why ``uninstall-worker.sh`` patches finalizers away, §3), and
  ``status`` ``phase: Active|Inactive``, ``activeTimeWindow``, ``lastAppliedTime``.

**Time windows** (§2 timeWindows): ``HH:MM`` compared as strings, ``end`` inclusive, ``end < start``
crosses midnight, ``days`` (case-insensitive) are matched against the current day, an empty list is
always active. "Now" is the lab clock in the stand-in's time zone (``--timezone``, default the host's
local time, as the real pods mount the host's ``/etc/localtime``). The lab clock is the real clock
unless the clock file ``lab/state/kubeocean_syncer/clock.json`` sets it::

    lab kubeocean clock set 2026-12-06T23:30 [--frozen]   # wall time in the stand-in's zone; runs on from there
    lab kubeocean clock reset                             # back to the real clock
    lab kubeocean clock                                   # what the stand-in's "now" is

(the file: ``{"time": "2026-12-06T23:30:00", "set_at": <unix time>, "frozen": false}``; lab time =
``time`` + (now - ``set_at``) unless frozen). The process re-reads it twice a second and re-evaluates
every binding when it changes or the lab clock's minute turns, so a window boundary takes effect
within a second (upstream: up to ~300 s, §2 Re-evaluation delay). ``timeAdded`` and the graceful
period use the real clock.

**kwok** (lab/labctl/clusters.py: kwokctl's binary runtime runs kwok with ``--manage-all-nodes=true``):
the manager cluster's kwok manages every Node, vnodes included. Its ``node-initialize`` stage makes a
new vnode Ready (conditions, nodeInfo kept when set, ``capacity``/``allocatable``/``addresses`` kept as
the stand-in wrote them), its heartbeat stage and Lease keep it Ready, and it runs the pods the
manager's real kube-scheduler binds to a vnode. So kwok plays the syncer's condition copy and
LeaseController: no annotation is needed, and the stand-in never writes conditions or daemonEndpoints
(kwok would fight it). Consequence: a NotReady physical Node is not mirrored on its vnode.

Not emulated: the TopDown half (virtual pods are not mapped to physical pods in ``kubeocean-worker``:
under kwok the virtual pod simply runs on the vnode; hence no ``kubeocean-default`` PriorityClass is
created), the proxier's kubelet API, vnode metrics, the label ``kubeocean.io/policy-applied`` on
physical Nodes, leader election. Lab choices: integer resources (extended resources, ``pods``) are
floored to whole units (the API server refuses fractions; upstream would fail there); vnodes of a
ClusterBinding that no longer exists are removed.

One process per computing cluster (default ``manager``), a client only, started and stopped like the
other stand-ins (:mod:`labctl.standin`; pid file, log and state under ``lab/state/kubeocean_syncer/``)::

    up(cluster="manager")   start it in the background (no-op if running); waits for its first sync
    down(cluster=None)      stop it (vnodes stay, as when the real syncer stops)
    status()                what runs; per binding: phase, worker connection, vnodes
    set_clock(...) / reset_clock() / clock_now()
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

from labctl import paths, procs
from labctl.standin import StandIn, WatchCache, api_request, cli_log, error_line, foreground_log, status_of

# ------------------------------------------------------------------ names (api/v1beta1/constants.go)
GROUP = "cloud.tencent.com"
VERSION = "v1beta1"
BINDINGS_PATH = f"/apis/{GROUP}/{VERSION}/clusterbindings"
POLICIES_PATH = f"/apis/{GROUP}/{VERSION}/resourceleasingpolicies"

MANAGER_DEPLOYMENT = "kubeocean-manager"
SYNCER_TEMPLATE = "kubeocean-syncer-template"
PROXIER_TEMPLATE = "kubeocean-proxier-template"
KUBECONFIG_KEY = "kubeconfig"

MANAGER_FINALIZER = "kubeocean.io/clusterbinding-manager"
SYNCER_FINALIZER = "kubeocean.io/clusterbinding-syncer"
VNODE_FINALIZER = "kubeocean.io/vnode"
POLICY_FINALIZER = "policy.kubeocean.io/finalizer"

LABEL_MANAGED_BY = "kubeocean.io/managed-by"
MANAGED_BY_VALUE = "kubeocean"
LABEL_CLUSTER_BINDING = "kubeocean.io/cluster-binding"
LABEL_CLUSTER_ID = "kubeocean.io/physical-cluster-id"
LABEL_NODE_NAME = "kubeocean.io/physical-node-name"
LABEL_NODE_UID = "kubeocean.io/physical-node-uid"
LABEL_NODE_IP = "kubeocean.io/physical-node-innerip"
LABEL_PROXIER_PORT = "kubeocean.io/proxier_port"
LABEL_TYPE = "type"
TYPE_VALUE = "virtual-kubelet"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
INSTANCE_TYPE_BETA = "beta.kubernetes.io/instance-type"
INSTANCE_TYPE_VNODE = "vnode"
HOSTNAME_LABEL = "kubernetes.io/hostname"

ANN_POLICIES_APPLIED = "kubeocean.io/policies-applied"
ANN_POLICY_DETAILS = "kubeocean.io/policy-details"
ANN_PROMETHEUS_URL = "kubeocean.io/prometheus-url"
ANN_LAST_SYNC = "kubeocean.io/last-sync-time"
ANN_NODE_NAME = "kubeocean.io/physical-node-name"
ANN_NODE_UID = "kubeocean.io/physical-node-uid"
ANN_EXPECTED = "kubeocean.io/expected-metadata"
ANN_DELETION_TAINT_TIME = "kubeocean.io/deletion-taint-time"

TAINT_VNODE = "kubeocean.io/vnode"
TAINT_OUT_OF_WINDOWS = "kubeocean.io/out-of-time-windows"
TAINT_PHYSICAL_UNSCHEDULABLE = "kubeocean.io/physical-node-unschedulable"
TAINT_DELETING = "kubeocean.io/vnode-deleting"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

DEFAULT_PROMETHEUS_PORT = 9006
PROXIER_PORT_MIN, PROXIER_PORT_MAX = 15000, 65535
MAX_VNODE_NAME = 64          # names this long or longer are shortened
TRUNCATED_PREFIX = 30
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
RESYNC_SECONDS = 30.0          # every binding is re-evaluated this often even without events
LOOP_SECONDS = 0.5             # clock file and minute checks
RETRY_SECONDS = 2.0            # a binding whose reconcile failed or waits (pods on a deleting vnode)
MISSING_API_RETRY = 5.0
MERGE_PATCH = "application/merge-patch+json"
DELETE_OPTIONS = {"apiVersion": "v1", "kind": "DeleteOptions"}
FIELD_MANAGER = "lab-kubeocean"


class KubeoceanError(RuntimeError):
    """One clear line about what went wrong with the Kubeocean stand-in."""


# ------------------------------------------------------------------ quantities
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": Fraction(1),
            "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
            "P": Fraction(10**15), "E": Fraction(10**18)}
DECIMAL_SI, BINARY_SI, DECIMAL_EXPONENT = "DecimalSI", "BinarySI", "DecimalExponent"


def parse_quantity(text: Any) -> Fraction:
    """A Kubernetes quantity (``"500m"``, ``"128Gi"``, ``"1e3"``, ``8``) as an exact number."""
    if isinstance(text, bool):
        raise ValueError(f"not a quantity: {text!r}")
    if isinstance(text, int | Fraction):
        return Fraction(text)
    m = _QUANTITY.match(str(text).strip())
    if not m:
        raise ValueError(f"not a quantity: {text!r}")
    number, suffix = Fraction(m.group(1)), m.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        return number * Fraction(10) ** int(suffix[1:])
    return number * _DECIMAL[suffix]


def quantity_format(text: Any) -> str:
    """The format Kubernetes parses ``text`` in (it keeps it through arithmetic)."""
    m = _QUANTITY.match(str(text).strip())
    suffix = (m.group(2) or "") if m else ""
    if suffix in _BINARY:
        return BINARY_SI
    if suffix[:1] in ("e", "E"):
        return DECIMAL_EXPONENT
    return DECIMAL_SI


def format_quantity(value: Fraction, fmt: str = DECIMAL_SI) -> str:
    """A canonical-enough quantity string (the API server re-canonicalizes; values compare exactly)."""
    value = Fraction(value)
    if fmt == BINARY_SI and value.denominator == 1 and value >= 1024:
        n = int(value)
        for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
            if n % _BINARY[suffix] == 0:
                return f"{n // _BINARY[suffix]}{suffix}"
    if value.denominator == 1:
        return str(int(value))
    milli = value * 1000
    if milli.denominator == 1:
        return f"{int(milli)}m"
    nano = value * 10**9
    return f"{int(nano)}n"  # truncated below a nano-unit (Kubernetes rounds such values up)


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


def percent_of(available: Fraction, fmt: str, percent: int) -> Fraction:
    """``percent`` % of ``available`` as upstream's ``calculatePercentageLimit``: decimal quantities in
    milli-units (``MilliValue() * p / 100``), binary and other ones in units (``Value() * p / 100``),
    integer division; a percent outside 1..100 gives 0."""
    if percent <= 0 or percent > 100:
        return Fraction(0)
    if fmt == DECIMAL_SI:
        return Fraction(_ceil(available * 1000) * percent // 100, 1000)
    return Fraction(_ceil(available) * percent // 100)


def is_integer_resource(name: str) -> bool:
    """Resources the API server accepts only as whole numbers on a Node: ``pods`` and extended
    resources (a domain other than ``kubernetes.io``, not ``requests.``)."""
    if name == "pods":
        return True
    if "/" not in name or name.startswith("requests."):
        return False
    domain = name.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


# ------------------------------------------------------------------ names and ports
def vnode_name(cluster_id: str, node_name: str) -> str:
    """``vnode-<clusterID>-<node>``; 64 characters or more: the first 30 and ``-<md5 hex of the full name>``."""
    name = f"vnode-{cluster_id}-{node_name}"
    if len(name) < MAX_VNODE_NAME:
        return name
    return f"{name[:TRUNCATED_PREFIX]}-{hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()}"


def fnv1a32(text: str) -> int:
    h = 0x811C9DC5
    for ch in text:
        h = ((h ^ ord(ch)) * 0x01000193) & 0xFFFFFFFF
    return h


def proxier_port(vnode: str, taken: Mapping[int, str]) -> int:
    """The vnode's proxier port: FNV-1a of its name into 15000-65535, the next free one on a clash
    (``taken``: port -> vnode holding it)."""
    span = PROXIER_PORT_MAX - PROXIER_PORT_MIN + 1
    base = PROXIER_PORT_MIN + fnv1a32(vnode) % span
    for offset in range(span):
        port = PROXIER_PORT_MIN + (base - PROXIER_PORT_MIN + offset) % span
        if taken.get(port) in (None, vnode):
            return port
    raise KubeoceanError(f"no free proxier port for {vnode}")


def syncer_name(cluster_id: str) -> str:
    return f"kubeocean-syncer-{cluster_id}"


def proxier_name(cluster_id: str) -> str:
    return f"kubeocean-proxier-{cluster_id}"


def proxier_service_name(cluster_id: str) -> str:
    return f"kubeocean-proxier-{cluster_id}-svc"


# ------------------------------------------------------------------ node selectors
def _meta(obj: Mapping | None) -> dict:
    return dict((obj or {}).get("metadata") or {})


def requirement_matches(req: Mapping, values_of: Mapping[str, str]) -> bool:
    """One ``NodeSelectorRequirement`` against labels (or fields)."""
    key, op, values = req.get("key"), req.get("operator"), [str(v) for v in req.get("values") or []]
    present = key in values_of
    value = values_of.get(key)
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            have, want = int(value), int(values[0])
        except (TypeError, ValueError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def node_selector_matches(selector: Mapping | None, node: Mapping) -> bool:
    """``corev1.NodeSelector`` semantics (terms ORed, requirements ANDed, an empty term matches
    nothing); no selector or no terms matches every Node (§2)."""
    terms = (selector or {}).get("nodeSelectorTerms") or []
    if not terms:
        return True
    labels = _meta(node).get("labels") or {}
    fields = {"metadata.name": _meta(node).get("name") or ""}
    for term in terms:
        exprs, fexprs = (term or {}).get("matchExpressions") or [], (term or {}).get("matchFields") or []
        if not exprs and not fexprs:
            continue
        if all(requirement_matches(r, labels) for r in exprs) and all(requirement_matches(r, fields) for r in fexprs):
            return True
    return False


# ------------------------------------------------------------------ time windows and the lab clock
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def valid_hhmm(text: Any) -> bool:
    return isinstance(text, str) and bool(_HHMM.match(text))


def time_in_range(current: str, start: str, end: str) -> bool:
    """``HH:MM`` strings, end inclusive; ``end < start`` crosses midnight; a malformed bound never matches."""
    if not valid_hhmm(start) or not valid_hhmm(end):
        return False
    if end < start:
        return current >= start or current <= end
    return start <= current <= end


def within_time_windows(windows: Iterable[Mapping] | None, day: str, hhmm: str) -> bool:
    """Upstream's ``IsWithinTimeWindows``: no windows = always; a window's ``days`` (case-insensitive,
    empty = every day) are matched against the current ``day``, then the time."""
    windows = list(windows or [])
    if not windows:
        return True
    day = day.lower()
    for window in windows:
        days = [str(d).lower() for d in window.get("days") or []]
        if days and day not in days:
            continue
        if time_in_range(hhmm, str(window.get("start", "")), str(window.get("end", ""))):
            return True
    return False


def day_and_time(now: datetime) -> tuple[str, str]:
    """(lower-case weekday name, ``HH:MM``) of a wall-clock time."""
    return DAYS[now.weekday()], now.strftime("%H:%M")


def policy_active(policy: Mapping, now: datetime) -> bool:
    return within_time_windows((policy.get("spec") or {}).get("timeWindows"), *day_and_time(now))


def parse_clock_time(text: str) -> datetime:
    """``2026-12-06T23:30`` (or with seconds, or a space): a naive wall-clock time."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        raise KubeoceanError(f"clock: {text!r} is not a time like 2026-12-06T23:30") from None
    if parsed.tzinfo is not None:
        raise KubeoceanError(f"clock: give the wall time in the stand-in's time zone, without an offset ({text!r})")
    return parsed


def lab_now(clock: Mapping | None, tz, real_epoch: float) -> datetime:
    """The lab clock: the wall time (naive) in zone ``tz`` (None: the host's local zone) now, or the
    clock file's time advanced by the real time since it was set (not when frozen)."""
    if clock and clock.get("time"):
        base = parse_clock_time(str(clock["time"]))
        if clock.get("frozen"):
            return base
        return base + timedelta(seconds=max(0.0, real_epoch - float(clock.get("set_at") or real_epoch)))
    if tz is None:
        return datetime.fromtimestamp(real_epoch).replace(microsecond=0)
    return datetime.fromtimestamp(real_epoch, tz).replace(tzinfo=None, microsecond=0)


def load_zone(name: str | None):
    """A ``zoneinfo`` zone, or None for the host's local time."""
    if not name:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise KubeoceanError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)") from None


# ------------------------------------------------------------------ capacity
def pod_requests(pod: Mapping) -> dict[str, Fraction]:
    """Requests of a pod as upstream sums them: init, regular and ephemeral containers added up."""
    spec = pod.get("spec") or {}
    total: dict[str, Fraction] = {}
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            for name, q in ((c.get("resources") or {}).get("requests") or {}).items():
                total[name] = total.get(name, Fraction(0)) + parse_quantity(q)
    return total


def is_kubeocean_pod(pod: Mapping) -> bool:
    return (_meta(pod).get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY_VALUE


def physical_usage(pods: Iterable[Mapping], node_name: str) -> dict[str, Fraction]:
    """What non-Kubeocean Pending/Running pods on ``node_name`` request, plus one ``pods`` each."""
    used: dict[str, Fraction] = {}
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") != node_name or is_kubeocean_pod(pod):
            continue
        if (pod.get("status") or {}).get("phase") not in ("Pending", "Running"):
            continue
        for name, q in pod_requests(pod).items():
            used[name] = used.get(name, Fraction(0)) + q
        used["pods"] = used.get("pods", Fraction(0)) + 1
    return used


def leasable_resources(node: Mapping, pods: Iterable[Mapping], limits: Iterable[Mapping] | None) -> dict[str, str]:
    """The vnode's capacity (= allocatable): the Node's allocatable (its capacity when it has none)
    minus :func:`physical_usage`, floored at 0, then capped per ``resourceLimits`` entry by the smaller
    of ``quantity`` (when non-zero) and ``percent`` (when > 0) of that free amount. Unlisted resources:
    all that is free. Integer resources are floored to whole units."""
    status = node.get("status") or {}
    base = status.get("allocatable") or status.get("capacity") or {}
    used = physical_usage(pods, _meta(node).get("name") or "")
    free: dict[str, tuple[Fraction, str]] = {}
    for name, q in base.items():
        remaining = parse_quantity(q) - used.get(name, Fraction(0))
        free[name] = (max(remaining, Fraction(0)), quantity_format(q))
    for limit in limits or []:
        name = str(limit.get("resource") or "")
        if name not in free:
            continue
        available, fmt = free[name]
        caps = []
        if limit.get("quantity") not in (None, "") and parse_quantity(limit["quantity"]) != 0:
            caps.append(parse_quantity(limit["quantity"]))
        if limit.get("percent") is not None and int(limit["percent"]) > 0:
            caps.append(percent_of(available, fmt, int(limit["percent"])))
        if caps and min(caps) < available:
            free[name] = (min(caps), fmt)
    out = {}
    for name, (value, fmt) in sorted(free.items()):
        if is_integer_resource(name):
            value = Fraction(int(value))
        out[name] = format_quantity(value, fmt)
    return out


def same_resources(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    a, b = a or {}, b or {}
    if set(a) != set(b):
        return False
    try:
        return all(parse_quantity(a[k]) == parse_quantity(b[k]) for k in a)
    except ValueError:
        return False


# ------------------------------------------------------------------ policies and taints
def _created(obj: Mapping) -> tuple[str, str]:
    meta = _meta(obj)
    return meta.get("creationTimestamp") or "", meta.get("name") or ""


def applicable_policies(policies: Iterable[Mapping], binding_name: str, node: Mapping,
                        binding_selector: Mapping | None) -> list[dict]:
    """Policies naming the binding (not being deleted) whose selector and the binding's both match
    ``node``, earliest created first (then by name): the first one applies."""
    found = [p for p in policies
             if not _meta(p).get("deletionTimestamp") and (p.get("spec") or {}).get("cluster") == binding_name
             and node_selector_matches(binding_selector, node)
             and node_selector_matches((p.get("spec") or {}).get("nodeSelector"), node)]
    return sorted(found, key=_created)


def vnode_taints(physical_taints: Iterable[Mapping] | None, disable_default: bool, policy: Mapping | None,
                 in_window: bool, now_rfc3339: str) -> list[dict]:
    """Upstream's ``transformTaints``: the physical taints (an out-of-time-windows one dropped,
    ``node.kubernetes.io/unschedulable`` renamed ``kubeocean.io/physical-node-unschedulable``), the default
    ``kubeocean.io/vnode:NoSchedule``, and outside the windows ``kubeocean.io/out-of-time-windows=true``
    (NoExecute with ``forceReclaim``, else NoSchedule; ``timeAdded`` = now)."""
    taints: list[dict] = []
    for t in physical_taints or []:
        if t.get("key") == TAINT_OUT_OF_WINDOWS:
            continue
        if t.get("key") == UNSCHEDULABLE_TAINT:
            taints.append({k: v for k, v in {"key": TAINT_PHYSICAL_UNSCHEDULABLE, "value": t.get("value"),
                                             "effect": t.get("effect")}.items() if v})
        else:
            taints.append(dict(t))
    if not disable_default:
        taints.append({"key": TAINT_VNODE, "effect": "NoSchedule"})
    if policy is not None and not in_window:
        effect = "NoExecute" if (policy.get("spec") or {}).get("forceReclaim") else "NoSchedule"
        taints.append({"key": TAINT_OUT_OF_WINDOWS, "value": "true", "effect": effect, "timeAdded": now_rfc3339})
    return taints


def tolerates_out_of_windows(pod: Mapping) -> bool:
    """Force reclaim skips pods with any toleration for the out-of-time-windows key (as upstream)."""
    return any(t.get("key") == TAINT_OUT_OF_WINDOWS for t in (pod.get("spec") or {}).get("tolerations") or [])


def reclaim_due(taint: Mapping | None, grace_seconds: int, now: datetime) -> bool:
    """Force reclaim may delete pods: grace 0, or the taint's ``timeAdded`` (missing: at once) is
    ``grace_seconds`` or more ago (real time, UTC)."""
    if grace_seconds <= 0 or not taint or not taint.get("timeAdded"):
        return True
    added = datetime.fromisoformat(str(taint["timeAdded"]).replace("Z", "+00:00"))
    return now - added >= timedelta(seconds=grace_seconds)


def pods_to_reclaim(pods: Iterable[Mapping], vnode: str, skip_tolerating: bool = True) -> list[dict]:
    """Pods on ``vnode`` to force-delete (not already being deleted; with ``skip_tolerating``, not those
    tolerating the out-of-time-windows key)."""
    return [p for p in pods if (p.get("spec") or {}).get("nodeName") == vnode and not _meta(p).get("deletionTimestamp")
            and not (skip_tolerating and tolerates_out_of_windows(p))]


def active_pods(pods: Iterable[Mapping], vnode: str) -> list[dict]:
    return [p for p in pods if (p.get("spec") or {}).get("nodeName") == vnode
            and (p.get("status") or {}).get("phase") in ("Pending", "Running")]


# ------------------------------------------------------------------ the vnode
def node_internal_ip(node: Mapping | None) -> str:
    for a in (node or {}).get("status", {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            return a.get("address") or ""
    return ""


def policy_details(policy: Mapping) -> str:
    limits = []
    for limit in (policy.get("spec") or {}).get("resourceLimits") or []:
        quantity = "" if limit.get("quantity") is None else str(limit["quantity"])
        percent = "" if limit.get("percent") is None else f"{limit['percent']}%"
        limits.append(f"{limit.get('resource')}={quantity}/{percent}")
    name = _meta(policy).get("name") or ""
    return f"{name}({','.join(limits)})" if limits else name


@dataclass
class VNode:
    """What one vnode should be."""

    name: str
    labels: dict[str, str]
    annotations: dict[str, str]          # without last-sync-time and expected-metadata
    taints: list[dict]
    resources: dict[str, str]
    internal_ip: str
    node_info: dict = field(default_factory=dict)
    in_window: bool = True
    policy: str = ""


def desired_vnode(binding: Mapping, node: Mapping, policy: Mapping, pods: Iterable[Mapping], now: datetime,
                  internal_ip: str, port: int, prometheus_port: int = DEFAULT_PROMETHEUS_PORT,
                  now_rfc3339: str = "") -> VNode:
    """The vnode of a physical ``node`` lent under ``policy`` at lab time ``now`` (§5)."""
    meta, spec = _meta(binding), binding.get("spec") or {}
    cluster_id = str(spec.get("clusterID") or "")
    nmeta = _meta(node)
    name = vnode_name(cluster_id, nmeta.get("name") or "")
    labels = dict(nmeta.get("labels") or {})
    labels.update({LABEL_CLUSTER_BINDING: meta.get("name") or "", LABEL_CLUSTER_ID: cluster_id,
                   LABEL_NODE_NAME: nmeta.get("name") or "", LABEL_NODE_UID: nmeta.get("uid") or "",
                   LABEL_MANAGED_BY: MANAGED_BY_VALUE, LABEL_TYPE: TYPE_VALUE, INSTANCE_TYPE: INSTANCE_TYPE_VNODE,
                   INSTANCE_TYPE_BETA: INSTANCE_TYPE_VNODE, HOSTNAME_LABEL: name, LABEL_PROXIER_PORT: str(port)})
    physical_ip = node_internal_ip(node)
    if physical_ip:
        labels[LABEL_NODE_IP] = physical_ip
    annotations = dict(nmeta.get("annotations") or {})
    annotations.pop(ANN_EXPECTED, None)
    annotations.update({ANN_NODE_NAME: nmeta.get("name") or "", ANN_NODE_UID: nmeta.get("uid") or "",
                        ANN_POLICIES_APPLIED: _meta(policy).get("name") or "",
                        ANN_POLICY_DETAILS: policy_details(policy),
                        ANN_PROMETHEUS_URL: f"{internal_ip or '<pending>'}:{prometheus_port}/{name}"})
    in_window = policy_active(policy, now)
    taints = vnode_taints((node.get("spec") or {}).get("taints"), bool(spec.get("disableNodeDefaultTaint")),
                          policy, in_window, now_rfc3339 or _rfc3339(datetime.now(UTC)))
    resources = leasable_resources(node, pods, (policy.get("spec") or {}).get("resourceLimits"))
    return VNode(name=name, labels=labels, annotations=annotations, taints=taints, resources=resources,
                 internal_ip=internal_ip, node_info=dict((node.get("status") or {}).get("nodeInfo") or {}),
                 in_window=in_window, policy=_meta(policy).get("name") or "")


def encode_expected(labels: Mapping, annotations: Mapping, taints: Iterable[Mapping]) -> str:
    data = {"labels": dict(labels), "annotations": dict(annotations), "taints": [dict(t) for t in taints]}
    return base64.b64encode(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).decode()


def decode_expected(annotations: Mapping | None) -> dict:
    raw = (annotations or {}).get(ANN_EXPECTED)
    try:
        data = json.loads(base64.b64decode(raw)) if raw else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def _taint_key(t: Mapping) -> tuple[str, str]:
    return t.get("key") or "", t.get("effect") or ""


def _same_taint(a: Mapping, b: Mapping) -> bool:
    return (a.get("key"), a.get("value") or "", a.get("effect")) \
        == (b.get("key"), b.get("value") or "", b.get("effect"))


def merge_taints(existing: Iterable[Mapping], previous_expected: Iterable[Mapping],
                 desired: Iterable[Mapping]) -> list[dict]:
    """Upstream's ``mergeTaints``: the desired taints (keeping the out-of-time-windows taint's
    ``timeAdded`` while it stays), plus the existing taints neither desired nor set by the syncer
    before (someone else's, e.g. the node lifecycle controller's); the deletion taint is dropped."""
    existing = [dict(t) for t in existing or []]
    desired_keys = {t.get("key") for t in desired}
    previous_keys = {t.get("key") for t in previous_expected or []}
    merged = []
    for t in desired:
        t = dict(t)
        if t.get("key") == TAINT_OUT_OF_WINDOWS:
            old = next((e for e in existing if e.get("key") == TAINT_OUT_OF_WINDOWS and e.get("timeAdded")), None)
            if old is not None:
                t["timeAdded"] = old["timeAdded"]
        merged.append(t)
    for t in existing:
        if t.get("key") in desired_keys or t.get("key") == TAINT_DELETING or t.get("key") in previous_keys:
            continue
        merged.append(t)
    return merged


def merge_map(existing: Mapping | None, previous_expected: Mapping | None, desired: Mapping) -> dict:
    """Desired keys set; existing keys neither desired nor set by the syncer before are kept."""
    out = dict(desired)
    for k, v in (existing or {}).items():
        if k not in desired and k not in (previous_expected or {}) and k != ANN_DELETION_TAINT_TIME:
            out[k] = v
    return out


def _taints_equal(a: Iterable[Mapping], b: Iterable[Mapping]) -> bool:
    a, b = list(a or []), list(b or [])
    return len(a) == len(b) and all(_same_taint(x, y) and (x.get("timeAdded") or None) == (y.get("timeAdded") or None)
                                    for x, y in zip(sorted(a, key=_taint_key), sorted(b, key=_taint_key), strict=True))


@dataclass
class VNodePlan:
    """What to send for one vnode: ``create`` (the whole Node) or the patches of an existing one."""

    create: dict | None = None
    meta: dict | None = None             # merge patch: labels/annotations/finalizers/taints (with resourceVersion)
    status: dict | None = None           # merge patch of /status: capacity, allocatable, addresses
    changed: list[str] = field(default_factory=list)   # what differs, for the log

    def __bool__(self) -> bool:
        return bool(self.create or self.meta or self.status)


def plan_vnode(existing: Mapping | None, want: VNode, sync_time: str) -> VNodePlan:
    """Create ``want``, or patch ``existing`` towards it without touching what others own."""
    addresses = [{"type": "InternalIP", "address": want.internal_ip}, {"type": "Hostname", "address": want.name}]
    if existing is None:
        annotations = dict(want.annotations)
        annotations[ANN_LAST_SYNC] = sync_time
        annotations[ANN_EXPECTED] = encode_expected(want.labels, annotations, want.taints)
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": want.name, "labels": want.labels, "annotations": annotations,
                             "finalizers": [VNODE_FINALIZER]},
                "spec": {"taints": want.taints},
                "status": {"capacity": want.resources, "allocatable": want.resources, "addresses": addresses,
                           "nodeInfo": want.node_info}}
        if not want.internal_ip:
            node["status"]["addresses"] = addresses[1:]
        return VNodePlan(create=node)
    meta, spec, status = _meta(existing), existing.get("spec") or {}, existing.get("status") or {}
    previous = decode_expected(meta.get("annotations"))
    labels = merge_map(meta.get("labels"), previous.get("labels"), want.labels)
    current_annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in (ANN_LAST_SYNC,
                                                                                                ANN_EXPECTED)}
    annotations = merge_map(current_annotations, previous.get("annotations"), want.annotations)
    taints = merge_taints(spec.get("taints") or [], previous.get("taints") or [], want.taints)
    finalizers = list(meta.get("finalizers") or [])
    plan = VNodePlan()
    plan.changed = [what for what, differs in (
        ("labels", labels != (meta.get("labels") or {})), ("annotations", annotations != current_annotations),
        ("taints", not _taints_equal(taints, spec.get("taints") or [])),
        ("finalizers", VNODE_FINALIZER not in finalizers)) if differs]
    if plan.changed:
        wanted_annotations = dict(want.annotations)
        wanted_annotations[ANN_LAST_SYNC] = sync_time
        annotations[ANN_LAST_SYNC] = sync_time
        annotations[ANN_EXPECTED] = encode_expected(want.labels, wanted_annotations, want.taints)
        patch_annotations: dict[str, str | None] = dict(annotations)
        for k in meta.get("annotations") or {}:
            if k not in annotations:
                patch_annotations[k] = None
        patch_labels: dict[str, str | None] = dict(labels)
        for k in meta.get("labels") or {}:
            if k not in labels:
                patch_labels[k] = None
        if VNODE_FINALIZER not in finalizers:
            finalizers.append(VNODE_FINALIZER)
        plan.meta = {"metadata": {"labels": patch_labels, "annotations": patch_annotations, "finalizers": finalizers,
                                  "resourceVersion": meta.get("resourceVersion")},
                     "spec": {"taints": taints}}
    status_patch: dict[str, Any] = {}
    for section in ("capacity", "allocatable"):
        current = status.get(section) or {}
        if not same_resources(current, want.resources):
            changes: dict[str, str | None] = dict(want.resources)
            changes.update({k: None for k in current if k not in want.resources})
            status_patch[section] = changes
    current_ip = node_internal_ip(existing)
    if want.internal_ip and current_ip != want.internal_ip:
        status_patch["addresses"] = addresses
    plan.changed += [k for k in status_patch if k != "allocatable"]
    if status_patch:
        plan.status = {"status": status_patch}
    return plan


# ------------------------------------------------------------------ statuses
def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(ctype: str, status: bool, reason: str, message: str, previous: Iterable[Mapping] | None,
              now: str, generation: int | None = None) -> dict:
    """A ``metav1.Condition``; ``lastTransitionTime`` kept while the status stays."""
    old = next((c for c in previous or [] if c.get("type") == ctype), None)
    value = "True" if status else "False"
    cond = {"type": ctype, "status": value, "reason": reason, "message": message[:32000],
            "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == value else now}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def binding_status(binding: Mapping, phase: str, ready: bool, reason: str, message: str, now: str) -> dict | None:
    """The status patch for a binding, or None when phase and condition say the same already."""
    status = binding.get("status") or {}
    generation = _meta(binding).get("generation")
    cond = condition("Ready", ready, reason, message, status.get("conditions"), now, generation)
    old = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if status.get("phase") == phase and old and all(old.get(k) == cond.get(k) for k in
                                                   ("status", "reason", "message", "observedGeneration")):
        return None
    body: dict[str, Any] = {"phase": phase, "conditions": [cond]}
    if ready:
        body["lastSyncTime"] = now
    return {"status": body}


def policy_status(policy: Mapping, active: bool, now: str) -> dict | None:
    status = policy.get("status") or {}
    phase = "Active" if active else "Inactive"
    if status.get("phase") == phase and bool(status.get("activeTimeWindow")) == active:
        return None
    return {"status": {"phase": phase, "activeTimeWindow": active, "lastAppliedTime": now,
                       "conditions": [condition("Active", active, "InTimeWindow" if active else "OutOfTimeWindow",
                                                "within a time window" if active else "outside every time window",
                                                status.get("conditions"), now, _meta(policy).get("generation"))]}}


# ------------------------------------------------------------------ manager: template rendering
_IF_BLOCK = re.compile(r"[ \t]*\{\{-?\s*if\s+\.(\w+)\s*-?\}\}(.*?)[ \t]*\{\{-?\s*end\s*-?\}\}[ \t]*\n?", re.S)
_FIELD = re.compile(r"\{\{-?\s*\.(\w+)\s*-?\}\}")


def render_template(text: str, values: Mapping[str, Any]) -> str:
    """The manager's Go-template placeholders: ``{{.Name}}`` and ``{{- if .Flag}} ... {{- end}}``."""
    text = _IF_BLOCK.sub(lambda m: m.group(2).lstrip("\n") if values.get(m.group(1)) else "", text)

    def field_value(m: re.Match) -> str:
        if m.group(1) not in values:
            raise KubeoceanError(f"template placeholder {m.group(0)} has no value")
        return str(values[m.group(1)])
    return _FIELD.sub(field_value, text)


def per_binding_objects(binding: Mapping, namespace: str, syncer_cm: Mapping | None,
                        proxier_cm: Mapping | None) -> list[dict]:
    """The syncer Deployment, proxier Deployment and proxier Service of a binding, rendered from the
    chart's template ConfigMaps (``data``)."""
    import yaml

    name, cluster_id = _meta(binding).get("name") or "", str((binding.get("spec") or {}).get("clusterID") or "")
    out = []
    if syncer_cm is None or "deployment.yaml" not in (syncer_cm.get("data") or {}):
        raise KubeoceanError(f"ConfigMap {namespace}/{SYNCER_TEMPLATE} with deployment.yaml not found")
    if proxier_cm is None or "deployment.yaml" not in (proxier_cm.get("data") or {}):
        raise KubeoceanError(f"ConfigMap {namespace}/{PROXIER_TEMPLATE} with deployment.yaml not found")
    sdata, pdata = syncer_cm["data"], proxier_cm["data"]
    svalues = {"DeploymentName": syncer_name(cluster_id), "SyncerNamespace": sdata.get("syncerNamespace") or namespace,
               "ClusterBindingName": name, "ServiceAccountName": sdata.get("serviceAccountName") or "kubeocean-syncer"}
    out.append(yaml.safe_load(render_template(sdata["deployment.yaml"], svalues)))
    pvalues = {"DeploymentName": proxier_name(cluster_id), "ServiceName": proxier_service_name(cluster_id),
               "ProxierNamespace": pdata.get("proxierNamespace") or namespace, "ClusterBindingName": name,
               "ServiceAccountName": pdata.get("serviceAccountName") or "kubeocean-proxier", "TLSEnabled": False,
               "TLSSecretName": "", "TLSSecretNamespace": ""}
    out.append(yaml.safe_load(render_template(pdata["deployment.yaml"], pvalues)))
    if pdata.get("service.yaml"):
        out.append(yaml.safe_load(render_template(pdata["service.yaml"], pvalues)))
    return out


def validate_binding(binding: Mapping, bindings: Iterable[Mapping]) -> tuple[str, str] | None:
    """The manager's validation: (reason, message) of a refusal, or None."""
    spec = binding.get("spec") or {}
    if not spec.get("clusterID"):
        return "ValidationFailed", "spec.clusterID is required"
    if not spec.get("mountNamespace"):
        return "ValidationFailed", "spec.mountNamespace is required"
    ref = spec.get("secretRef") or {}
    if not ref.get("name") or not ref.get("namespace"):
        return "ValidationFailed", "spec.secretRef needs name and namespace"
    for other in bindings:
        if _meta(other).get("name") != _meta(binding).get("name") \
                and (other.get("spec") or {}).get("clusterID") == spec["clusterID"] \
                and _created(other) < _created(binding):
            return "ClusterIDConflict", (f"clusterID {spec['clusterID']} is already used by ClusterBinding "
                                         f"{_meta(other).get('name')}")
    return None


# ------------------------------------------------------------------ API plumbing
def describe_error(exc: BaseException) -> tuple[str, str]:
    """(condition reason, one line) for a failed call to a worker cluster."""
    status = status_of(exc)
    text = str(exc).splitlines()[0][:300] if str(exc) else exc.__class__.__name__
    text = re.sub(r" at 0x[0-9a-f]+", "", text)      # stable across attempts: the status is not rewritten each time
    if status == 401:
        return "Unauthorized", f"the worker cluster refused the kubeconfig's credentials (401): {text}"
    if status == 403:
        body = getattr(exc, "body", None) or ""
        with contextlib.suppress(ValueError, TypeError):
            body = json.loads(body).get("message", body)
        return "Forbidden", f"the worker cluster forbids it (403): {str(body)[:300]}"
    if status is not None:
        return "ConnectionFailed", f"HTTP {status} from the worker cluster: {text}"
    return "ConnectionFailed", f"cannot reach the worker cluster: {exc.__class__.__name__}: {text}"


class Cache(WatchCache):
    """List, then watch one resource path; objects (transformed) by (namespace, name); ``on_change()``
    after every change. A path that is not served (404: CRD not installed) is an empty list, listed
    again every ``MISSING_API_RETRY`` seconds. ``error`` holds the last failure (None once listed)."""

    not_served_retry = MISSING_API_RETRY

    def __init__(self, api, name: str, path: str, on_change: Callable[[], None], log: Callable[[str], None],
                 stop: threading.Event, selector: str | None = None, field_selector: str | None = None,
                 transform: Callable[[dict], dict] | None = None) -> None:
        super().__init__(api, name, path, log, stop, selector, transform)
        self.field_selector = field_selector
        self.on_change = on_change
        self.error: BaseException | None = None
        self._logged = ""

    def _request(self, query: dict, **options):
        return api_request(self.api, "GET", self.path, query, **options)

    def _changed(self) -> None:
        self.on_change()

    def _log_once(self, message: str) -> None:
        if message != self._logged:
            self._logged = message
            self.log(message)

    def _query(self, **more) -> dict:
        return {"labelSelector": self.selector, "fieldSelector": self.field_selector, **more}

    def _listed(self) -> None:
        self.error = None
        self._logged = ""

    def _not_served(self, first: bool) -> None:
        self.error = None
        super()._not_served(first)

    def _failed(self, exc: Exception, backoff: float) -> None:
        first = self.error is None
        self.error = exc
        if not self.synced or first:
            self.on_change()
        self._log_once(f"watch {self.name}: {error_line(exc)}; retrying (back-off up to 10s)")


def _slim_pod(obj: dict) -> dict:
    meta, spec = _meta(obj), obj.get("spec") or {}
    keep = ("initContainers", "containers", "ephemeralContainers")
    return {"metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "labels", "deletionTimestamp")},
            "spec": {"nodeName": spec.get("nodeName"), "tolerations": spec.get("tolerations") or [],
                     **{k: [{"resources": {"requests": (c.get("resources") or {}).get("requests") or {}}}
                            for c in spec.get(k) or []] for k in keep}},
            "status": {k: (obj.get("status") or {}).get(k) for k in ("phase", "podIP")}}


def _slim_secret(obj: dict) -> dict:
    meta = _meta(obj)
    return {"metadata": {k: meta.get(k) for k in ("name", "namespace", "resourceVersion")},
            "data": {k: v for k, v in (obj.get("data") or {}).items() if k == KUBECONFIG_KEY}}


def _slim_deployment(obj: dict) -> dict:
    meta, spec = _meta(obj), obj.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return {"metadata": {k: meta.get(k) for k in ("name", "namespace", "labels", "deletionTimestamp")},
            "spec": {"replicas": spec.get("replicas", 1),
                     "args": [a for c in containers for a in (c.get("args") or [])]}}


# ------------------------------------------------------------------ the worker side of one binding
class WorkerConnection:
    """The syncer's view of one binding's worker cluster, through the kubeconfig in the binding's
    Secret: watches of its ResourceLeasingPolicies, Nodes and pods. ``problem`` is (reason, message)
    while it cannot list them."""

    def __init__(self, binding: str, kubeconfig: bytes, on_change: Callable[[], None], log: Callable[[str], None]):
        import yaml
        from kubernetes import config as k8s_config

        self.binding = binding
        self.fingerprint = hashlib.sha256(kubeconfig).hexdigest()
        self.stop = threading.Event()
        self.log = log
        self.api = None
        self.caches: dict[str, Cache] = {}
        self.problem: tuple[str, str] | None = None
        try:
            config = yaml.safe_load(kubeconfig.decode())
            if not isinstance(config, dict) or not config.get("clusters"):
                raise ValueError("no clusters in it")
            self.api = k8s_config.new_client_from_config_dict(config)
            self.server = self.api.configuration.host
        except Exception as exc:
            text = str(exc).splitlines()[0][:300] if str(exc) else exc.__class__.__name__
            self.problem = ("KubeconfigInvalid", f"the kubeconfig in the binding's Secret is not usable: {text}")
            self.server = ""
            return
        for name, path, transform in (("policies", POLICIES_PATH, None), ("nodes", "/api/v1/nodes", None),
                                      ("pods", "/api/v1/pods", _slim_pod)):
            self.caches[name] = Cache(self.api, f"{binding}/{name}", path, on_change, log, self.stop,
                                      transform=transform)

    def start(self) -> None:
        for cache in self.caches.values():
            threading.Thread(target=cache.run, name=f"watch-{cache.name}", daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        if self.api is not None:
            with contextlib.suppress(Exception):
                self.api.close()

    def state(self) -> tuple[str, tuple[str, str] | None]:
        """("ok" | "pending" | "failed", problem)."""
        if self.problem:
            return "failed", self.problem
        for cache in self.caches.values():
            if cache.error is not None:
                return "failed", describe_error(cache.error)
        if all(c.synced for c in self.caches.values()):
            return "ok", None
        return "pending", None

    def request(self, method: str, path: str, body: Any = None, content_type: str | None = None) -> dict:
        return api_request(self.api, method, path, body=body, content_type=content_type,
                           query={"fieldManager": FIELD_MANAGER} if method in ("PATCH", "POST", "PUT") else None)


# ------------------------------------------------------------------ the stand-in
MANAGER_WATCHES: tuple[tuple[str, str, str | None, Callable[[dict], dict] | None], ...] = (
    ("bindings", BINDINGS_PATH, None, None),
    ("deployments", "/apis/apps/v1/deployments", None, _slim_deployment),
    ("secrets", "/api/v1/secrets", None, _slim_secret),
    ("vnodes", "/api/v1/nodes", f"{LABEL_MANAGED_BY}={MANAGED_BY_VALUE}", None),
    ("proxiers", "/api/v1/pods", "app.kubernetes.io/name=kubeocean-proxier", _slim_pod),
    ("services", "/api/v1/services", "app.kubernetes.io/name=kubeocean-proxier", None),
)


def clock_path() -> Path:
    """The lab clock file the stand-in reads (``lab/state/kubeocean_syncer/clock.json``)."""
    return paths.STATE_DIR / "kubeocean_syncer" / "clock.json"


def read_clock(path: Path | None = None) -> dict:
    return procs.read_json(Path(path or clock_path()))


class Kubeocean:
    """The manager's watches, one :class:`WorkerConnection` per binding, and the reconcile of each
    binding (see the module doc). ``api`` is a kubernetes ``ApiClient`` of the computing cluster."""

    def __init__(self, api, clock_file: Path, zone=None, log: Callable[[str], None] = print,
                 on_change: Callable[[], None] | None = None, stop: threading.Event | None = None) -> None:
        self.api = api
        self.clock_file = Path(clock_file)
        self.zone = zone
        self.log = log
        self.on_change = on_change or (lambda: None)
        self.stop = stop or threading.Event()
        self._cond = threading.Condition()
        self._dirty: set[str] = set()
        self._all = True
        self._later: dict[str, float] = {}
        self.caches = {name: Cache(api, name, path, self.mark_all, log, self.stop, selector, transform=transform)
                       for name, path, selector, transform in MANAGER_WATCHES}
        self.workers: dict[str, WorkerConnection] = {}
        self.report: dict[str, dict] = {}
        self._said: dict[str, str] = {}
        self._clock_stamp: tuple | None = ("unread",)
        self.clock: dict = {}
        self._minute: tuple[str, str] | None = None

    # --- plumbing
    def mark(self, name: str) -> None:
        with self._cond:
            self._dirty.add(name)
            self._cond.notify()

    def mark_all(self) -> None:
        with self._cond:
            self._all = True
            self._cond.notify()

    def say_once(self, key: str, message: str | None) -> None:
        if message is None:
            self._said.pop(key, None)
        elif self._said.get(key) != message:
            self._said[key] = message
            self.log(message)

    def is_synced(self) -> bool:
        return all(c.synced for c in self.caches.values())

    def request(self, method: str, path: str, body: Any = None, content_type: str | None = None,
                query: Mapping[str, Any] | None = None) -> dict:
        q = dict(query or {})
        if method in ("PATCH", "POST", "PUT"):
            q.setdefault("fieldManager", FIELD_MANAGER)
        return api_request(self.api, method, path, query=q, body=body, content_type=content_type)

    def patch(self, path: str, body: dict) -> dict:
        try:
            return self.request("PATCH", path, body, MERGE_PATCH)
        except Exception as exc:
            if status_of(exc) == 409:
                self.refresh(path)
            raise

    def refresh(self, path: str) -> None:
        """After a conflict (the cached resourceVersion is old): read the object again into its cache at once,
        instead of waiting for the watch to bring it, so that the retry half a second later acts on it."""
        cache = (self.caches["vnodes"] if path.startswith("/api/v1/nodes/")
                 else self.caches["bindings"] if path.startswith(f"{BINDINGS_PATH}/") else None)
        if cache is None:
            return
        try:
            obj = self.request("GET", path)
        except Exception as exc:
            if status_of(exc) != 404:
                return
            with cache.lock:
                cache.items.pop(("", path.rsplit("/", 1)[-1]), None)
            return
        with cache.lock:
            cache.items[("", _meta(obj).get("name") or "")] = cache.transform(obj)

    def delete(self, path: str, body: dict | None = None) -> None:
        try:
            self.request("DELETE", path, body)
        except Exception as exc:
            if status_of(exc) != 404:
                raise

    # --- the lab clock
    def refresh_clock(self) -> bool:
        """Re-read the clock file when it changed; True if the lab clock changed."""
        try:
            st = self.clock_file.stat()
            stamp: tuple | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp == self._clock_stamp:
            return False
        self._clock_stamp = stamp
        clock = read_clock(self.clock_file) if stamp else {}
        if clock.get("time"):
            try:
                parse_clock_time(str(clock["time"]))
            except KubeoceanError as exc:
                self.log(f"clock: {exc}; using the real clock")
                clock = {}
        changed = clock != self.clock
        self.clock = clock
        if changed:
            self.log(f"clock: lab time {self.now().isoformat(timespec='minutes')}"
                     + (" (set" + (", frozen)" if clock.get("frozen") else ")") if clock else " (real clock)"))
        return changed

    def now(self) -> datetime:
        return lab_now(self.clock, self.zone, time.time())

    # --- the manager cluster
    def manager_deployment(self) -> dict | None:
        for d in self.caches["deployments"].values():
            if _meta(d).get("name") == MANAGER_DEPLOYMENT and not _meta(d).get("deletionTimestamp") \
                    and (d.get("spec") or {}).get("replicas", 1) != 0:
                return d
        return None

    def syncer_deployment(self, namespace: str, cluster_id: str) -> dict | None:
        d = self.caches["deployments"].get(namespace, syncer_name(cluster_id))
        if d is None or _meta(d).get("deletionTimestamp") or (d.get("spec") or {}).get("replicas", 1) == 0:
            return None
        return d

    def proxier_ip(self, namespace: str, cluster_id: str) -> str:
        pods = [p for p in self.caches["proxiers"].values()
                if _meta(p).get("namespace") == namespace and (_meta(p).get("labels") or {}).get("k8s-app")
                == proxier_name(cluster_id) and (p.get("status") or {}).get("phase") == "Running"
                and (p.get("status") or {}).get("podIP") and not _meta(p).get("deletionTimestamp")]
        return min(pods, key=lambda p: _meta(p).get("name") or "")["status"]["podIP"] if pods else ""

    def _binding_path(self, name: str, sub: str = "") -> str:
        return f"{BINDINGS_PATH}/{name}{sub}"

    def set_finalizers(self, binding: Mapping, finalizers: list[str]) -> None:
        meta = _meta(binding)
        self.patch(self._binding_path(meta["name"]), {"metadata": {"finalizers": finalizers,
                                                                   "resourceVersion": meta.get("resourceVersion")}})

    def set_status(self, binding: Mapping, phase: str, ready: bool, reason: str, message: str) -> None:
        name = _meta(binding).get("name") or ""
        self.report.setdefault(name, {}).update(phase=phase, reason=reason, message=message)
        body = binding_status(binding, phase, ready, reason, message, _rfc3339(datetime.now(UTC)))
        if body is not None:
            self.patch(self._binding_path(name, "/status"), body)
            self.log(f"binding {name}: {phase} ({reason}: {message})")

    def ensure_per_binding_objects(self, binding: Mapping, namespace: str) -> None:
        """The manager's part: the binding's syncer/proxier Deployments and proxier Service exist."""
        cluster_id = str((binding.get("spec") or {}).get("clusterID"))
        wanted = {("Deployment", syncer_name(cluster_id)), ("Deployment", proxier_name(cluster_id)),
                  ("Service", proxier_service_name(cluster_id))}
        have = {(kind, _meta(o).get("name")) for kind, cache in (("Deployment", "deployments"), ("Service", "services"))
                for o in self.caches[cache].values() if _meta(o).get("namespace") == namespace}
        missing = wanted - have
        if not missing:
            return
        templates = {}
        for cm in (SYNCER_TEMPLATE, PROXIER_TEMPLATE):
            try:
                templates[cm] = self.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/{cm}")
            except Exception as exc:
                if status_of(exc) != 404:
                    raise
                templates[cm] = None
        for obj in per_binding_objects(binding, namespace, templates[SYNCER_TEMPLATE], templates[PROXIER_TEMPLATE]):
            kind, name = obj.get("kind"), _meta(obj).get("name")
            if (kind, name) not in missing:
                continue
            ns = _meta(obj).get("namespace") or namespace
            path = (f"/apis/apps/v1/namespaces/{ns}/deployments" if kind == "Deployment"
                    else f"/api/v1/namespaces/{ns}/services")
            try:
                self.request("POST", path, obj)
                self.log(f"binding {_meta(binding).get('name')}: created {kind} {ns}/{name}")
            except Exception as exc:
                if status_of(exc) != 409:
                    raise

    def delete_per_binding_objects(self, binding: Mapping, namespace: str) -> None:
        cluster_id = str((binding.get("spec") or {}).get("clusterID"))
        for path in (f"/apis/apps/v1/namespaces/{namespace}/deployments/{syncer_name(cluster_id)}",
                     f"/apis/apps/v1/namespaces/{namespace}/deployments/{proxier_name(cluster_id)}",
                     f"/api/v1/namespaces/{namespace}/services/{proxier_service_name(cluster_id)}"):
            self.delete(path, {**DELETE_OPTIONS, "propagationPolicy": "Background"})

    # --- worker connections
    def worker(self, binding: Mapping) -> tuple[WorkerConnection | None, tuple[str, str] | None]:
        name = _meta(binding).get("name") or ""
        ref = (binding.get("spec") or {}).get("secretRef") or {}
        secret = self.caches["secrets"].get(ref.get("namespace") or "", ref.get("name") or "")
        problem = None
        raw = b""
        if secret is None:
            problem = ("SecretNotFound", f"Secret {ref.get('namespace')}/{ref.get('name')} not found")
        elif not (secret.get("data") or {}).get(KUBECONFIG_KEY):
            problem = ("KubeconfigMissing", f"Secret {ref.get('namespace')}/{ref.get('name')} has no key "
                                            f"{KUBECONFIG_KEY!r}")
        else:
            try:
                raw = base64.b64decode(secret["data"][KUBECONFIG_KEY])
            except ValueError:
                problem = ("KubeconfigInvalid", "the Secret's kubeconfig is not base64")
        if problem:
            self.drop_worker(name)
            return None, problem
        conn = self.workers.get(name)
        if conn is not None and conn.fingerprint == hashlib.sha256(raw).hexdigest():
            return conn, None
        if conn is not None:
            conn.close()
            self.log(f"binding {name}: the kubeconfig changed; reconnecting")
        conn = WorkerConnection(name, raw, lambda: self.mark(name), self.log)
        self.workers[name] = conn
        conn.start()
        self.log(f"binding {name}: watching the worker cluster {conn.server or '(unusable kubeconfig)'}")
        return conn, None

    def drop_worker(self, name: str) -> None:
        conn = self.workers.pop(name, None)
        if conn is not None:
            conn.close()

    # --- vnodes
    def _vnodes(self) -> dict[str, dict]:
        return {_meta(n).get("name"): n for n in self.caches["vnodes"].values()}

    def _remember(self, node: dict) -> None:
        with self.caches["vnodes"].lock:
            self.caches["vnodes"].items[("", _meta(node).get("name") or "")] = node

    def pods_on(self, vnode: str) -> list[dict]:
        body = self.request("GET", "/api/v1/pods", query={"fieldSelector": f"spec.nodeName={vnode}"})
        return body.get("items") or []

    def delete_pods(self, pods: Iterable[Mapping], why: str) -> int:
        n = 0
        for pod in pods:
            meta = _meta(pod)
            self.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                        {**DELETE_OPTIONS, "preconditions": {"uid": meta.get("uid")}})
            self.log(f"pod {meta['namespace']}/{meta['name']} on {(pod.get('spec') or {}).get('nodeName')}: "
                     f"deleted ({why})")
            n += 1
        return n

    def delete_vnode(self, vnode: Mapping) -> bool:
        """One step of a vnode's removal (upstream's ``handleNodeDeletion`` with force): taint
        ``vnode-deleting`` + unschedulable, delete, force-delete its pods, release the finalizer once no
        pod is Pending/Running there. True while it is not gone yet."""
        meta, spec = _meta(vnode), vnode.get("spec") or {}
        name = meta.get("name") or ""
        path = f"/api/v1/nodes/{name}"
        try:
            tainted = any(t.get("key") == TAINT_DELETING for t in spec.get("taints") or [])
            if not tainted or not spec.get("unschedulable"):
                taints = [t for t in spec.get("taints") or [] if t.get("key") != TAINT_DELETING]
                taints.append({"key": TAINT_DELETING, "value": "true", "effect": "NoSchedule"})
                node = self.patch(path, {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                                                      "annotations": {ANN_DELETION_TAINT_TIME:
                                                                      _rfc3339(datetime.now(UTC))}},
                                         "spec": {"taints": taints, "unschedulable": True}})
                self._remember(node)
                self.log(f"vnode {name}: deleting (taint {TAINT_DELETING}, unschedulable)")
                meta = _meta(node)
            if not meta.get("deletionTimestamp"):
                self.request("DELETE", path, {**DELETE_OPTIONS, "preconditions": {"uid": meta.get("uid")}})
                return True
            pods = self.pods_on(name)
            self.delete_pods(pods_to_reclaim(pods, name, skip_tolerating=False), f"vnode {name} is being deleted")
            if active_pods(pods, name):
                return True
            finalizers = [f for f in meta.get("finalizers") or [] if f != VNODE_FINALIZER]
            if VNODE_FINALIZER in (meta.get("finalizers") or []):
                self.patch(path, {"metadata": {"finalizers": finalizers or None,
                                               "resourceVersion": meta.get("resourceVersion")}})
                self.log(f"vnode {name}: removed")
            return False
        except Exception as exc:
            if status_of(exc) == 404:
                with self.caches["vnodes"].lock:
                    self.caches["vnodes"].items.pop(("", name), None)
                return False
            raise

    def apply_vnode(self, existing: dict | None, want: VNode, sync_time: str) -> dict | None:
        plan = plan_vnode(existing, want, sync_time)
        node = existing
        if plan.create is not None:
            node = self.request("POST", "/api/v1/nodes", plan.create)
            self.log(f"vnode {want.name}: created ({', '.join(f'{k}={v}' for k, v in want.resources.items())}"
                     f"{'' if want.in_window else '; out of time windows'})")
        if plan.meta is not None:
            node = self.patch(f"/api/v1/nodes/{want.name}", plan.meta)
            oow = next((t for t in want.taints if t.get("key") == TAINT_OUT_OF_WINDOWS), None)
            self.log(f"vnode {want.name}: {'/'.join(c for c in plan.changed if c not in ('capacity', 'addresses'))} "
                     "updated" + (f"; out of time windows ({TAINT_OUT_OF_WINDOWS}:{oow['effect']})" if oow
                                  else "; in its time windows"))
        if plan.status is not None:
            node = self.patch(f"/api/v1/nodes/{want.name}/status", plan.status)
            if "capacity" in plan.status["status"]:
                self.log(f"vnode {want.name}: capacity " + ", ".join(f"{k}={v}" for k, v in want.resources.items()))
            if "addresses" in plan.status["status"]:
                self.log(f"vnode {want.name}: InternalIP {want.internal_ip}")
        if node is not None and plan:
            self._remember(node)
        return node

    def reclaim(self, vnode: Mapping, policy: Mapping) -> float | None:
        """Force reclaim on an out-of-window vnode; seconds until it is due, when it is not yet."""
        spec = policy.get("spec") or {}
        if not spec.get("forceReclaim"):
            return None
        taint = next((t for t in (vnode.get("spec") or {}).get("taints") or [] if t.get("key") == TAINT_OUT_OF_WINDOWS),
                     None)
        grace = int(spec.get("gracefulReclaimPeriodSeconds") or 0)
        now = datetime.now(UTC)
        if not reclaim_due(taint, grace, now):
            added = datetime.fromisoformat(str(taint["timeAdded"]).replace("Z", "+00:00"))
            return max(0.5, (added + timedelta(seconds=grace) - now).total_seconds())
        name = _meta(vnode).get("name") or ""
        self.delete_pods(pods_to_reclaim(self.pods_on(name), name), "force reclaim: out of time windows")
        return None

    # --- one binding
    def reconcile_binding(self, name: str) -> float | None:
        """Bring one binding (and its vnodes) to what the contract says; seconds until a retry is due,
        when something waits."""
        binding = self.caches["bindings"].get("", name)
        manager = self.manager_deployment()
        if manager is None:          # idle: nothing is reconciled, no worker is watched
            self.drop_worker(name)
            return None
        if binding is None:
            self.drop_worker(name)
            self.report.pop(name, None)
            return self.remove_vnodes(name)
        namespace = _meta(manager).get("namespace") or "kubeocean-system"
        meta, spec = _meta(binding), binding.get("spec") or {}
        finalizers = list(meta.get("finalizers") or [])
        deleting = bool(meta.get("deletionTimestamp"))
        cluster_id = str(spec.get("clusterID") or "")
        report = self.report.setdefault(name, {})
        report.update(clusterID=cluster_id, deleting=deleting)
        # the manager's part
        if deleting:
            if SYNCER_FINALIZER not in finalizers:
                if MANAGER_FINALIZER in finalizers:
                    self.delete_per_binding_objects(binding, namespace)
                    self.set_finalizers(binding, [f for f in finalizers if f != MANAGER_FINALIZER])
                    self.log(f"binding {name}: syncer and proxier removed; finalizer {MANAGER_FINALIZER} released")
                self.drop_worker(name)
                return None
        else:
            if MANAGER_FINALIZER not in finalizers:
                self.set_finalizers(binding, [*finalizers, MANAGER_FINALIZER])
                return None          # its watch event brings the binding back
            refused = validate_binding(binding, self.caches["bindings"].values())
            if refused:
                self.drop_worker(name)
                self.set_status(binding, "Failed", False, *refused)
                return None
            try:
                self.ensure_per_binding_objects(binding, namespace)
            except KubeoceanError as exc:
                self.set_status(binding, "Failed", False, "TemplateNotFound", str(exc))
                return RETRY_SECONDS * 5
        # the syncer's part: only where its Deployment exists
        if self.syncer_deployment(namespace, cluster_id) is None:
            return None if deleting else RETRY_SECONDS
        if deleting:
            left = self.remove_vnodes(name)
            if left:
                return left
            self.set_finalizers(binding, [f for f in finalizers if f != SYNCER_FINALIZER])
            self.log(f"binding {name}: every vnode removed; finalizer {SYNCER_FINALIZER} released")
            self.drop_worker(name)
            return None
        if SYNCER_FINALIZER not in finalizers:
            self.set_finalizers(binding, [*finalizers, SYNCER_FINALIZER])
            return None
        conn, problem = self.worker(binding)
        if conn is not None:
            state, problem = conn.state()
            report["worker"] = conn.server
            if state == "pending":
                self.set_status(binding, "Pending", False, "Connecting",
                                f"listing the worker cluster at {conn.server}")
                return None
        if problem:
            self.set_status(binding, "Failed", False, *problem)
            return None
        assert conn is not None
        return self.sync(binding, namespace, conn)

    def sync(self, binding: Mapping, namespace: str, conn: WorkerConnection) -> float | None:
        """The BottomUp half for a connected binding: its vnodes, its policies' finalizers and status."""
        name, spec = _meta(binding).get("name") or "", binding.get("spec") or {}
        cluster_id = str(spec.get("clusterID") or "")
        now, real_now = self.now(), datetime.now(UTC)
        stamp = _rfc3339(real_now)
        policies = conn.caches["policies"].values()
        pods = conn.caches["pods"].values()
        vnodes = self._vnodes()
        proxier_ip = self.proxier_ip(namespace, cluster_id)
        syncer = self.syncer_deployment(namespace, cluster_id) or {}
        prom = next((int(a.split("=", 1)[1]) for a in (syncer.get("spec") or {}).get("args") or []
                     if a.startswith("--prometheus-vnode-base-port=") and a.split("=", 1)[1].isdigit()),
                    DEFAULT_PROMETHEUS_PORT)
        taken = {int(p): n for n, v in vnodes.items()
                 if (p := (_meta(v).get("labels") or {}).get(LABEL_PROXIER_PORT, "")).isdigit()}
        retry: float | None = None

        def later(seconds: float | None) -> None:
            nonlocal retry
            if seconds is not None:
                retry = seconds if retry is None else min(retry, seconds)

        wanted: dict[str, tuple[VNode, dict, dict]] = {}
        for node in conn.caches["nodes"].values():
            nmeta = _meta(node)
            if nmeta.get("deletionTimestamp"):
                continue
            chosen = applicable_policies(policies, name, node, spec.get("nodeSelector"))
            if not chosen:
                continue
            vname = vnode_name(cluster_id, nmeta.get("name") or "")
            existing = vnodes.get(vname)
            owner = (_meta(existing).get("labels") or {}).get(LABEL_CLUSTER_BINDING) if existing else name
            if owner != name:
                self.say_once(f"owner {vname}", f"vnode {vname}: belongs to binding {owner}; skipped")
                continue
            label = (_meta(existing).get("labels") or {}).get(LABEL_PROXIER_PORT, "") if existing else ""
            port = int(label) if label.isdigit() else proxier_port(vname, taken)
            taken[port] = vname
            ip = proxier_ip or node_internal_ip(existing) or node_internal_ip(node)
            wanted[vname] = (desired_vnode(binding, node, chosen[0], pods, now, ip, port, prom, stamp), chosen[0], node)
        for vname, (want, policy, node) in wanted.items():
            existing = vnodes.get(vname)
            if existing is not None and (_meta(existing).get("deletionTimestamp")
                                         or (_meta(existing).get("labels") or {}).get(LABEL_NODE_UID)
                                         != _meta(node).get("uid")):
                if self.delete_vnode(existing):      # a Node recreated, or a vnode someone deleted: finish first
                    later(RETRY_SECONDS)
                else:
                    later(0.0)
                continue
            current = self.apply_vnode(existing, want, stamp)
            if not want.in_window and current is not None:
                later(self.reclaim(current, policy))
        for vname, vnode in vnodes.items():
            if (_meta(vnode).get("labels") or {}).get(LABEL_CLUSTER_BINDING) == name and vname not in wanted:
                if self.delete_vnode(vnode):
                    later(RETRY_SECONDS)
        self.sync_policies(conn, name, now, stamp)
        report = self.report.setdefault(name, {})
        report["vnodes"] = {v: {"resources": w.resources, "in_window": w.in_window, "policy": p["metadata"]["name"]}
                            for v, (w, p, _n) in sorted(wanted.items())}
        served = "" if conn.caches["policies"].served else "; the worker cluster serves no ResourceLeasingPolicy API"
        self.set_status(binding, "Ready", True, "Synced",
                        f"{len(wanted)} vnode(s) from the worker cluster at {conn.server}{served}")
        return retry

    def sync_policies(self, conn: WorkerConnection, binding_name: str, now: datetime, stamp: str) -> None:
        for policy in conn.caches["policies"].values():
            meta = _meta(policy)
            if (policy.get("spec") or {}).get("cluster") != binding_name:
                continue
            path = f"{POLICIES_PATH}/{meta['name']}"
            finalizers = list(meta.get("finalizers") or [])
            if meta.get("deletionTimestamp"):
                if POLICY_FINALIZER in finalizers:
                    conn.request("PATCH", path, {"metadata": {"finalizers": [f for f in finalizers
                                                                             if f != POLICY_FINALIZER] or None,
                                                              "resourceVersion": meta.get("resourceVersion")}},
                                 MERGE_PATCH)
                    self.log(f"policy {meta['name']}: deleted; finalizer {POLICY_FINALIZER} released")
                continue
            if POLICY_FINALIZER not in finalizers:
                conn.request("PATCH", path, {"metadata": {"finalizers": [*finalizers, POLICY_FINALIZER],
                                                          "resourceVersion": meta.get("resourceVersion")}},
                             MERGE_PATCH)
            body = policy_status(policy, policy_active(policy, now), stamp)
            if body is not None:
                conn.request("PATCH", f"{path}/status", body, MERGE_PATCH)
                self.log(f"policy {meta['name']}: {body['status']['phase']} at lab time "
                         f"{now.isoformat(timespec='minutes')}")

    def remove_vnodes(self, binding_name: str) -> float | None:
        """Step every vnode of a binding towards removal; seconds until the next step when some remain."""
        left = False
        for vnode in self._vnodes().values():
            if (_meta(vnode).get("labels") or {}).get(LABEL_CLUSTER_BINDING) == binding_name:
                left = self.delete_vnode(vnode) or left
        return RETRY_SECONDS if left else None

    # --- the loop
    def binding_names(self) -> set[str]:
        names = {_meta(b).get("name") for b in self.caches["bindings"].values()}
        if self.manager_deployment() is not None and self.caches["bindings"].served:
            names |= {(_meta(v).get("labels") or {}).get(LABEL_CLUSTER_BINDING) for v in self.caches["vnodes"].values()}
        names |= set(self.workers)
        return {n for n in names if n}

    def reconcile(self, names: Iterable[str]) -> None:
        for name in sorted(names):
            if self.stop.is_set():
                return
            try:
                delay = self.reconcile_binding(name)
                self.say_once(f"err {name}", None)
                self.say_once(f"stale {name}", None)
            except Exception as exc:
                # Acted on a stale cache: refreshed at once after a conflict (patch), else its watch brings the news.
                if status_of(exc) in (404, 409):
                    self.say_once(f"stale {name}", f"binding {name}: {status_of(exc)} on a stale object; retrying")
                    self._later[name] = time.monotonic() + 0.5
                    continue
                text = str(exc).splitlines()[0][:300] if str(exc) else ""
                self.say_once(f"err {name}", f"binding {name}: {exc.__class__.__name__}: {text}; retrying")
                delay = RETRY_SECONDS
            if delay is not None:
                self._later[name] = min(self._later.get(name, float("inf")), time.monotonic() + delay)
            else:
                self._later.pop(name, None)

    def run(self) -> None:
        for cache in self.caches.values():
            threading.Thread(target=cache.run, name=f"watch-{cache.name}", daemon=True).start()
        last_resync = time.monotonic()
        reported_synced, manager_seen = False, None
        try:
            while not self.stop.is_set():
                if self.refresh_clock():
                    self.mark_all()
                minute = day_and_time(self.now())
                if minute != self._minute:
                    self._minute = minute
                    self.mark_all()
                if time.monotonic() - last_resync >= RESYNC_SECONDS:
                    last_resync = time.monotonic()
                    self.mark_all()
                with self._cond:
                    if not self._dirty and not self._all:
                        due = min(self._later.values(), default=float("inf")) - time.monotonic()
                        self._cond.wait(max(0.05, min(LOOP_SECONDS, due)))
                    if not self.is_synced():
                        continue
                    names, everyone = set(self._dirty), self._all
                    self._dirty, self._all = set(), False
                now = time.monotonic()
                names |= {n for n, t in self._later.items() if t <= now}
                if everyone:
                    names |= self.binding_names()
                present = self.manager_deployment() is not None
                if present != manager_seen:
                    manager_seen = present
                    self.log(f"Deployment {MANAGER_DEPLOYMENT}: "
                             + ("present: playing the manager and the syncers" if present
                                else "absent: idle (nothing is reconciled)"))
                    self.on_change()
                if names:
                    self.reconcile(names)
                    self.on_change()
                if self.is_synced() != reported_synced:
                    reported_synced = self.is_synced()
                    self.on_change()
        finally:
            for name in list(self.workers):
                self.drop_worker(name)

    def state(self) -> dict:
        manager = self.manager_deployment()
        bindings = {}
        for name, row in sorted(self.report.items()):
            conn = self.workers.get(name)
            bindings[name] = {**row, "worker_state": conn.state()[0] if conn else None}
        return {"synced": self.is_synced(), "manager": (f"{_meta(manager).get('namespace')}/{MANAGER_DEPLOYMENT}"
                                                        if manager else None),
                "clock": self.clock, "timezone": getattr(self.zone, "key", None) or "", "bindings": bindings,
                "vnodes": sorted(_meta(v).get("name") for v in self.caches["vnodes"].values())}


# ------------------------------------------------------------------ the lab clock (CLI and tests)
def set_clock(when: str | datetime, frozen: bool = False, path: Path | None = None) -> dict:
    """Set the lab clock to wall time ``when`` (in the stand-in's time zone); it runs on from there
    unless ``frozen``. Returns what was written."""
    moment = parse_clock_time(when) if isinstance(when, str) else when.replace(tzinfo=None)
    target = Path(path or clock_path())
    paths.private_dir(target.parent)
    data = {"time": moment.isoformat(timespec="seconds"), "set_at": time.time(), "frozen": bool(frozen)}
    paths.write_private(target, json.dumps(data, indent=1) + "\n")
    return data


def reset_clock(path: Path | None = None) -> None:
    """Back to the real clock."""
    Path(path or clock_path()).unlink(missing_ok=True)


def clock_now(timezone: str | None = None, path: Path | None = None) -> dict:
    """The lab clock as the stand-in sees it: ``{"now", "day", "set", "frozen", "timezone"}``."""
    clock = read_clock(path)
    now = lab_now(clock, load_zone(timezone), time.time())
    return {"now": now.isoformat(timespec="seconds"), "day": day_and_time(now)[0].capitalize(),
            "set": clock.get("time"), "frozen": bool(clock.get("frozen")), "timezone": timezone or "host local time"}


# ------------------------------------------------------------------ process: run, up/down/status
def run(cluster: str = "manager", kubeconfig: Path | None = None, timezone: str | None = None,
        clock_file: Path | None = None, state_file: Path | None = None, stop: threading.Event | None = None,
        log: Callable[[str], None] | None = None) -> None:
    """The stand-in for one computing cluster, in the foreground, until ``stop`` is set (SIGTERM/SIGINT
    for the background process)."""
    from kubernetes import config as k8s_config

    kubeconfig = Path(kubeconfig or paths.kubeconfig_path(cluster))
    zone = load_zone(timezone)
    say = foreground_log(log)
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    lab: Kubeocean
    write_state = STANDIN.state_writer(state_file, lambda: {"pid": os.getpid(), "cluster": cluster,
                                                            "kubeconfig": str(kubeconfig), **lab.state()}, default=str)
    lab = Kubeocean(api, Path(clock_file or clock_path()), zone, say, write_state, stop)
    say(f"Kubeocean stand-in for computing cluster {cluster} ({kubeconfig}); time zone "
        f"{timezone or 'host local time'}; clock file {lab.clock_file}")
    STANDIN.run_until_stopped(lab.run, write_state, api, say)


def _status_fields(state: dict) -> dict:
    return {"manager": state.get("manager"), "timezone": state.get("timezone") or "host local time",
            "clock": state.get("clock") or {}, "bindings": state.get("bindings") or {},
            "vnodes": state.get("vnodes") or []}


STANDIN = StandIn(name="kubeocean_syncer", what="kubeocean stand-in", title="Kubeocean stand-in",
                  up_title="Kubeocean manager/syncer stand-in", error=KubeoceanError, stop_timeout=STOP_TIMEOUT,
                  status_fields=_status_fields, private_files=True)


def up(cluster: str = "manager", kubeconfig: Path | None = None, timezone: str | None = None,
       timeout: float = START_TIMEOUT, log=None) -> dict:
    """Start the stand-in for computing cluster ``cluster`` in the background (no-op if it runs) and
    wait until it has listed the cluster once. Returns its status row."""
    load_zone(timezone)  # one clear error before anything starts
    options = ["--timezone", timezone] if timezone else []
    STANDIN.up(cluster, Path(kubeconfig or paths.kubeconfig_path(cluster)), options, timeout, log)
    return next(row for row in status() if row["cluster"] == cluster)


def down(cluster: str | None = None, log=None) -> None:
    """Stop the stand-in of ``cluster`` (all by default). Its vnodes stay, as when a real syncer stops."""
    STANDIN.down(cluster, log)


def status() -> list[dict]:
    """One row per cluster with a pid file, and always ``manager``."""
    rows = []
    for name in sorted(set(STANDIN.clusters()) | {"manager"}):
        f = STANDIN.files(name)
        pid = STANDIN.our_pid(name)
        state = procs.read_json(f["state"]) if pid else {}
        fields = _status_fields(state)
        with contextlib.suppress(KubeoceanError):
            fields["lab_time"] = clock_now(state.get("timezone") or None)["now"]
        rows.append({"cluster": name, "running": pid is not None, "pid": pid, "synced": bool(state.get("synced")),
                     **fields, "log": str(f["log"])})
    return rows


# ------------------------------------------------------------------ CLI
def _cmd_up(args: argparse.Namespace) -> int:
    print(json.dumps(up(args.cluster, args.kubeconfig, args.timezone, log=cli_log), indent=2))
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    down(args.cluster, log=cli_log)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(status(), indent=2))
    return 0


def _running_timezone() -> str | None:
    for row in status():
        if row["running"] and row.get("timezone") not in (None, "", "host local time"):
            return row["timezone"]
    return None


def _cmd_clock(args: argparse.Namespace) -> int:
    if args.clock_command == "set":
        set_clock(args.time, frozen=args.frozen)
    elif args.clock_command == "reset":
        reset_clock()
    print(json.dumps(clock_now(_running_timezone()), indent=2))
    return 0


def register_cli(subparsers) -> None:
    """Add ``kubeocean up|down|status|clock`` to an argparse subparsers object (``func(args) -> int``)."""
    top = subparsers.add_parser("kubeocean", help="the Kubeocean manager/syncer stand-in: vnodes in the computing "
                                "cluster from ClusterBindings and ResourceLeasingPolicies (lab fixture)")
    sub = top.add_subparsers(dest="kubeocean_command", required=True)
    p_up = sub.add_parser("up", help="start the stand-in for a computing cluster (no-op if running)")
    p_up.add_argument("--cluster", default="manager")
    p_up.add_argument("--kubeconfig", type=Path, default=None, help="default: lab/state/kubeconfig/<cluster>.yaml")
    p_up.add_argument("--timezone", default=None,
                      help="IANA zone the time windows are evaluated in (default: the host's local time)")
    p_up.set_defaults(func=STANDIN.guard(_cmd_up))
    p_down = sub.add_parser("down", help="stop the stand-in (every cluster unless --cluster); vnodes stay")
    p_down.add_argument("--cluster", default=None)
    p_down.set_defaults(func=STANDIN.guard(_cmd_down))
    sub.add_parser("status", help="report the stand-ins").set_defaults(func=STANDIN.guard(_cmd_status))
    p_clock = sub.add_parser("clock", help="the lab clock the time windows are evaluated on")
    p_clock.set_defaults(func=STANDIN.guard(_cmd_clock), clock_command="show")
    csub = p_clock.add_subparsers(dest="clock_command")
    csub.add_parser("show", help="what the stand-in's 'now' is (the default)")
    p_set = csub.add_parser("set", help="set the lab clock, e.g. 2026-12-06T23:30 (wall time in the stand-in's "
                            "time zone); it runs on from there")
    p_set.add_argument("time")
    p_set.add_argument("--frozen", action="store_true", help="keep the clock at that time")
    csub.add_parser("reset", help="back to the real clock")


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timezone", default=None)
    parser.add_argument("--clock-file", type=Path, default=None)


def _run(args: argparse.Namespace, stop: threading.Event) -> None:
    base = args.state_dir
    state_file = STANDIN.files(args.cluster, base)["state"] if base else None
    clock_file = args.clock_file or ((Path(base) / "clock.json") if base else None)
    run(args.cluster, args.kubeconfig, args.timezone, clock_file, state_file, stop)


def main(argv: list[str] | None = None) -> int:
    """``python -m labctl.kubeocean_syncer run ...``: the background process."""
    return STANDIN.main(argv, _run_options, _run)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Kubeocean", "KubeoceanError", "VNode", "applicable_policies", "clock_now", "desired_vnode", "down",
           "lab_now", "leasable_resources", "node_selector_matches", "percent_of", "plan_vnode", "register_cli",
           "reset_clock", "run", "set_clock", "status", "up", "vnode_name", "vnode_taints", "within_time_windows"]
