"""The Kubeocean stand-in's pure logic (no cluster): vnode names, the capacity rule (allocatable minus
non-Kubeocean requests, capped by percent and quantity), time windows (midnight, days), taints in and
out of the windows, force reclaim, the lab clock, policy choice, the vnode patch plan, the manager's
templates and validation, the CLI."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
import yaml
from labctl import cli, paths
from labctl import kubeocean_syncer as ko
from labctl.repos import charts

SUNDAY_2330 = datetime(2026, 12, 6, 23, 30)     # a Sunday
MONDAY_0030 = datetime(2026, 12, 7, 0, 30)
FRIDAY_2200 = datetime(2026, 12, 4, 22, 0)
SATURDAY_0300 = datetime(2026, 12, 5, 3, 0)
WEDNESDAY_1200 = datetime(2026, 12, 2, 12, 0)

# examples/resourceleasingpolicy_sample.yaml (§2), with a GPU limit of 50%
NIGHTS_AND_WEEKENDS = [{"start": "18:00", "end": "08:00", "days": ["Monday", "Tuesday", "Wednesday", "Thursday",
                                                                    "Friday"]},
                       {"start": "00:00", "end": "23:59", "days": ["Saturday", "Sunday"]}]


def node(name="gpu-1", allocatable=None, labels=None, taints=None, uid="uid-1", ip="10.0.0.5"):
    allocatable = allocatable or {"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": "8", "pods": "110"}
    return {"metadata": {"name": name, "uid": uid, "labels": {"kubeocean.io/role": "worker", **(labels or {})},
                         "annotations": {"kwok.x-k8s.io/node": "fake"}, "creationTimestamp": "2026-12-01T00:00:00Z"},
            "spec": {"taints": taints or []},
            "status": {"allocatable": allocatable, "capacity": dict(allocatable),
                       "addresses": [{"type": "InternalIP", "address": ip}],
                       "nodeInfo": {"kubeletVersion": "kwok-v0.8.0"}}}


def pod(node_name="gpu-1", requests=None, phase="Running", kubeocean=False, init=None, tolerations=None, name="p"):
    labels = {ko.LABEL_MANAGED_BY: ko.MANAGED_BY_VALUE} if kubeocean else {}
    spec = {"nodeName": node_name, "containers": [{"name": "c", "resources": {"requests": requests or {}}}],
            "tolerations": tolerations or []}
    if init:
        spec["initContainers"] = [{"name": "i", "resources": {"requests": init}}]
    return {"metadata": {"name": name, "namespace": "default", "labels": labels}, "spec": spec,
            "status": {"phase": phase}}


def policy(name="example-policy", cluster="example-cluster", windows=None, limits=None, force=True, grace=0,
           selector=None, created="2026-12-01T00:00:00Z", deleting=False):
    meta = {"name": name, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    return {"metadata": meta, "spec": {"cluster": cluster, "timeWindows": windows or [], "resourceLimits": limits or [],
                                       "forceReclaim": force, "gracefulReclaimPeriodSeconds": grace,
                                       **({"nodeSelector": selector} if selector else {})}}


WORKER_SELECTOR = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubeocean.io/role", "operator": "In",
                                                                "values": ["worker"]}]}]}


def binding(name="example-cluster", cluster_id="cls-example", selector=WORKER_SELECTOR, **spec):
    return {"metadata": {"name": name, "creationTimestamp": "2026-12-01T00:00:00Z", "generation": 1},
            "spec": {"clusterID": cluster_id, "mountNamespace": "kubeocean-worker", "nodeSelector": selector,
                     "secretRef": {"name": f"{name}-kubeconfig", "namespace": "kubeocean-system"}, **spec}}


# ------------------------------------------------------------------ names
def test_vnode_names_as_upstream():
    assert ko.vnode_name("cls-worker1", "kubeocean-worker1-worker") == "vnode-cls-worker1-kubeocean-worker1-worker"
    long_node = "a-very-long-physical-node-name-from-a-cloud-provider-01"
    full = f"vnode-cls-example-{long_node}"
    assert len(full) >= 64
    short = ko.vnode_name("cls-example", long_node)
    assert short == full[:30] + "-" + hashlib.md5(full.encode()).hexdigest()
    assert len(short) == 63
    exactly_63 = "x" * (63 - len("vnode-c-"))
    assert ko.vnode_name("c", exactly_63) == f"vnode-c-{exactly_63}"  # < 64 kept


def test_proxier_port_hash_and_clash():
    port = ko.proxier_port("vnode-a-b", {})
    assert ko.PROXIER_PORT_MIN <= port <= ko.PROXIER_PORT_MAX
    assert port == ko.PROXIER_PORT_MIN + ko.fnv1a32("vnode-a-b") % (ko.PROXIER_PORT_MAX - ko.PROXIER_PORT_MIN + 1)
    assert ko.proxier_port("vnode-a-b", {port: "vnode-a-b"}) == port         # its own
    assert ko.proxier_port("vnode-a-b", {port: "vnode-other"}) != port        # taken: the next free one
    assert ko.fnv1a32("") == 0x811C9DC5


# ------------------------------------------------------------------ quantities and capacity
@pytest.mark.parametrize("text,value,fmt", [("8", 8, ko.DECIMAL_SI), ("500m", Fraction(1, 2), ko.DECIMAL_SI),
                                            ("128Gi", 128 * 2**30, ko.BINARY_SI), ("1e3", 1000, ko.DECIMAL_EXPONENT),
                                            ("1.5", Fraction(3, 2), ko.DECIMAL_SI), ("2k", 2000, ko.DECIMAL_SI),
                                            (4, 4, ko.DECIMAL_SI)])
def test_quantities(text, value, fmt):
    assert ko.parse_quantity(text) == value
    assert ko.quantity_format(text) == fmt
    assert ko.parse_quantity(ko.format_quantity(ko.parse_quantity(text), fmt)) == value


def test_quantity_formatting():
    assert ko.format_quantity(Fraction(28800, 1000)) == "28800m"
    assert ko.format_quantity(Fraction(4)) == "4"
    assert ko.format_quantity(Fraction(243 * 2**30), ko.BINARY_SI) == "243Gi"
    assert ko.format_quantity(Fraction(1000), ko.BINARY_SI) == "1000"
    with pytest.raises(ValueError):
        ko.parse_quantity("lots")


def test_half_of_eight_gpus_is_four():
    assert ko.leasable_resources(node(), [], [{"resource": "nvidia.com/gpu", "percent": 50}])["nvidia.com/gpu"] == "4"


def test_capacity_is_allocatable_minus_non_kubeocean_requests_then_capped():
    pods = [pod(requests={"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"}, name="infer"),
            pod(requests={"cpu": "2", "nvidia.com/gpu": "2"}, kubeocean=True, name="mapped"),    # not subtracted
            pod(requests={"cpu": "8"}, phase="Succeeded", name="done"),                         # not subtracted
            pod(requests={"cpu": "1"}, phase="Pending", init={"cpu": "1", "memory": "1Gi"}, name="starting"),
            pod(node_name="gpu-2", requests={"cpu": "30"}, name="elsewhere")]
    got = ko.leasable_resources(node(), pods, [{"resource": "cpu", "quantity": "96", "percent": 90},
                                               {"resource": "memory", "percent": 95},
                                               {"resource": "nvidia.com/gpu", "percent": 50}])
    # cpu: 32 - (4 + 1 + 1 init, summed as upstream does) = 26 free; 90% = 23.4 < 96
    assert ko.parse_quantity(got["cpu"]) == Fraction(234, 10)
    # memory: 256Gi - 17Gi = 239Gi free; 95% in bytes
    assert ko.parse_quantity(got["memory"]) == (239 * 2**30) * 95 // 100
    assert got["nvidia.com/gpu"] == "3"      # 8 - 2 = 6 free, 50%
    assert got["pods"] == "108"              # two non-Kubeocean pods counted; pods not listed: all that is free


def test_quantity_cap_and_smaller_of_both():
    limits = [{"resource": "cpu", "quantity": "10", "percent": 90}]
    assert ko.leasable_resources(node(), [], limits)["cpu"] == "10"
    limits = [{"resource": "cpu", "quantity": "30", "percent": 50}]
    assert ko.leasable_resources(node(), [], limits)["cpu"] == "16"
    limits = [{"resource": "nvidia.com/gpu", "quantity": 2}]
    assert ko.leasable_resources(node(), [], limits)["nvidia.com/gpu"] == "2"
    limits = [{"resource": "cpu", "quantity": "0", "percent": 0}]          # neither set: no cap
    assert ko.leasable_resources(node(), [], limits)["cpu"] == "32"
    limits = [{"resource": "example.com/fpga", "percent": 10}]             # a resource the Node lacks: ignored
    assert "example.com/fpga" not in ko.leasable_resources(node(), [], limits)


def test_unlisted_resources_are_lent_in_full_and_usage_never_negative():
    pods = [pod(requests={"nvidia.com/gpu": "9", "cpu": "40"})]
    got = ko.leasable_resources(node(), pods, [{"resource": "memory", "percent": 95}])
    assert got["nvidia.com/gpu"] == "0" and got["cpu"] == "0"


def test_percent_rounding_as_upstream():
    assert ko.percent_of(Fraction(7), ko.DECIMAL_SI, 33) == Fraction(2310, 1000)      # milli-units
    assert ko.percent_of(Fraction(1001), ko.BINARY_SI, 50) == 500                    # whole units, truncated
    assert ko.percent_of(Fraction(8), ko.DECIMAL_SI, 101) == 0                       # over 100: 0, as upstream
    three = node(allocatable={"cpu": "3", "nvidia.com/gpu": "3", "pods": "110"})
    got = ko.leasable_resources(three, [], [{"resource": "nvidia.com/gpu", "percent": 50},
                                            {"resource": "cpu", "percent": 50}])
    assert got["nvidia.com/gpu"] == "1"      # 1500m is no valid extended resource: floored
    assert got["cpu"] == "1500m"


def test_capacity_falls_back_to_capacity_without_allocatable():
    n = node()
    n["status"]["allocatable"] = {}
    assert ko.leasable_resources(n, [], [])["nvidia.com/gpu"] == "8"


# ------------------------------------------------------------------ time windows
@pytest.mark.parametrize("hhmm,inside", [("17:59", False), ("18:00", True), ("23:30", True), ("00:00", True),
                                         ("07:59", True), ("08:00", True), ("08:01", False), ("12:00", False)])
def test_window_crossing_midnight(hhmm, inside):
    assert ko.within_time_windows([{"start": "18:00", "end": "08:00"}], "tuesday", hhmm) is inside


def test_window_days_case_insensitive_and_on_the_current_day():
    weekday_nights = [{"start": "18:00", "end": "08:00", "days": ["MONDAY", "tuesday", "Friday"]}]
    assert ko.within_time_windows(weekday_nights, "friday", "22:00")
    assert ko.within_time_windows(weekday_nights, "monday", "07:00")
    assert not ko.within_time_windows(weekday_nights, "saturday", "03:00")   # Friday's night: the day is Saturday
    assert not ko.within_time_windows(weekday_nights, "wednesday", "22:00")


def test_window_edge_cases():
    assert ko.within_time_windows([], "monday", "12:00")                              # none: always
    assert ko.within_time_windows(None, "monday", "12:00")
    assert ko.within_time_windows([{"start": "08:01", "end": "08:00"}], "monday", "08:00")   # "24h" (quick-start)
    assert ko.within_time_windows([{"start": "08:01", "end": "08:00"}], "monday", "08:01")
    assert not ko.within_time_windows([{"start": "8:00", "end": "18:00"}], "monday", "12:00")  # malformed: never
    assert not ko.within_time_windows([{"start": "08:00", "end": "24:00"}], "monday", "12:00")
    assert ko.within_time_windows([{"start": "00:00", "end": "23:59"}], "sunday", "23:59")   # end inclusive


@pytest.mark.parametrize("when,inside", [(SUNDAY_2330, True), (MONDAY_0030, True), (FRIDAY_2200, True),
                                         (SATURDAY_0300, True), (WEDNESDAY_1200, False),
                                         (datetime(2026, 12, 7, 8, 1), False)])
def test_sample_policy_windows(when, inside):
    assert ko.policy_active(policy(windows=NIGHTS_AND_WEEKENDS), when) is inside
    assert ko.day_and_time(SUNDAY_2330) == ("sunday", "23:30")


# ------------------------------------------------------------------ taints and force reclaim
def test_taints_in_and_out_of_the_window():
    phys = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
            {"key": "dedicated", "value": "infer", "effect": "NoSchedule"},
            {"key": ko.TAINT_OUT_OF_WINDOWS, "value": "true", "effect": "NoExecute"}]
    inside = ko.vnode_taints(phys, False, policy(), True, "2026-12-06T23:30:00Z")
    assert inside == [{"key": ko.TAINT_PHYSICAL_UNSCHEDULABLE, "effect": "NoSchedule"},
                      {"key": "dedicated", "value": "infer", "effect": "NoSchedule"},
                      {"key": ko.TAINT_VNODE, "effect": "NoSchedule"}]
    outside = ko.vnode_taints([], False, policy(force=True), False, "2026-12-06T23:30:00Z")
    assert outside[-1] == {"key": ko.TAINT_OUT_OF_WINDOWS, "value": "true", "effect": "NoExecute",
                           "timeAdded": "2026-12-06T23:30:00Z"}
    soft = ko.vnode_taints([], True, policy(force=False), False, "2026-12-06T23:30:00Z")
    assert [(t["key"], t["effect"]) for t in soft] == [(ko.TAINT_OUT_OF_WINDOWS, "NoSchedule")]  # no default taint


def test_force_reclaim_grace_and_tolerations():
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    taint = {"key": ko.TAINT_OUT_OF_WINDOWS, "timeAdded": "2026-12-06T11:59:30Z"}
    assert ko.reclaim_due(taint, 0, now)
    assert not ko.reclaim_due(taint, 60, now)
    assert ko.reclaim_due(taint, 30, now)
    assert ko.reclaim_due({"key": ko.TAINT_OUT_OF_WINDOWS}, 60, now)        # no timeAdded: at once
    pods = [pod(node_name="vn", name="plain"),
            pod(node_name="vn", name="tolerates", tolerations=[{"key": ko.TAINT_OUT_OF_WINDOWS, "operator": "Exists"}]),
            pod(node_name="other", name="elsewhere")]
    gone = dict(pod(node_name="vn", name="going"))
    gone["metadata"] = {**gone["metadata"], "deletionTimestamp": "2026-12-06T11:00:00Z"}
    pods.append(gone)
    assert [p["metadata"]["name"] for p in ko.pods_to_reclaim(pods, "vn")] == ["plain"]
    assert [p["metadata"]["name"] for p in ko.pods_to_reclaim(pods, "vn", skip_tolerating=False)] == [
        "plain", "tolerates"]
    assert len(ko.active_pods(pods, "vn")) == 3


# ------------------------------------------------------------------ the lab clock
def test_lab_clock_runs_on_from_the_set_time_or_stays_frozen():
    set_at = 1_000_000.0
    clock = {"time": "2026-12-06T23:30:00", "set_at": set_at, "frozen": False}
    assert ko.lab_now(clock, None, set_at + 90) == datetime(2026, 12, 6, 23, 31, 30)
    assert ko.lab_now({**clock, "frozen": True}, None, set_at + 90) == SUNDAY_2330
    berlin = ko.load_zone("Europe/Berlin")
    real = datetime(2026, 12, 6, 22, 30, tzinfo=UTC).timestamp()
    assert ko.lab_now({}, berlin, real) == SUNDAY_2330                 # 22:30 UTC is 23:30 in Berlin
    assert ko.lab_now({}, ko.load_zone("UTC"), real) == datetime(2026, 12, 6, 22, 30)
    with pytest.raises(ko.KubeoceanError, match="unknown time zone"):
        ko.load_zone("Mars/Olympus")
    with pytest.raises(ko.KubeoceanError, match="2026-12-06T23:30"):
        ko.parse_clock_time("tomorrow")


def test_clock_file_round_trip(tmp_path):
    path = tmp_path / "clock.json"
    data = ko.set_clock("2026-12-06T23:30", frozen=True, path=path)
    assert data["time"] == "2026-12-06T23:30:00" and data["frozen"]
    assert path.stat().st_mode & 0o777 == 0o600
    shown = ko.clock_now(path=path)
    assert shown["now"] == "2026-12-06T23:30:00" and shown["day"] == "Sunday"
    ko.set_clock("2026-12-07 08:01", path=path)
    assert ko.clock_now(path=path)["now"].startswith("2026-12-07T08:0")
    ko.reset_clock(path=path)
    assert not path.exists() and ko.clock_now(path=path)["set"] is None


def test_cli_clock_writes_the_state_dirs_clock_file(lab_dirs, capsys):
    assert cli.main(["kubeocean", "clock", "set", "2026-12-06T23:30", "--frozen"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["now"] == "2026-12-06T23:30:00" and shown["frozen"]
    assert ko.clock_path() == paths.STATE_DIR / "kubeocean_syncer" / "clock.json"
    assert json.loads(ko.clock_path().read_text())["time"] == "2026-12-06T23:30:00"
    assert cli.main(["kubeocean", "clock", "reset"]) == 0
    assert not ko.clock_path().exists()
    assert cli.main(["kubeocean", "clock", "set", "not-a-time"]) == 1
    assert "not a time" in capsys.readouterr().err


def test_cli_status_without_a_running_stand_in(lab_dirs, capsys):
    assert cli.main(["kubeocean", "status"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["cluster"] == "manager" and row["running"] is False and row["bindings"] == {}


# ------------------------------------------------------------------ selectors and policy choice
def test_node_selector_semantics():
    n = node(labels={"zone": "a", "gpus": "8"})
    assert ko.node_selector_matches(None, n) and ko.node_selector_matches({"nodeSelectorTerms": []}, n)
    term = lambda *exprs: {"nodeSelectorTerms": [{"matchExpressions": list(exprs)}]}  # noqa: E731
    assert ko.node_selector_matches(term({"key": "zone", "operator": "In", "values": ["a", "b"]}), n)
    assert not ko.node_selector_matches(term({"key": "zone", "operator": "NotIn", "values": ["a"]}), n)
    assert ko.node_selector_matches(term({"key": "zone", "operator": "Exists"},
                                         {"key": "spot", "operator": "DoesNotExist"}), n)
    assert ko.node_selector_matches(term({"key": "gpus", "operator": "Gt", "values": ["4"]}), n)
    assert not ko.node_selector_matches(term({"key": "gpus", "operator": "Lt", "values": ["4"]}), n)
    assert not ko.node_selector_matches({"nodeSelectorTerms": [{}]}, n)              # an empty term: nothing
    fields = {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-1"]}]}]}
    assert ko.node_selector_matches(fields, n)
    ored = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]},
                                  {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}
    assert ko.node_selector_matches(ored, n)


def test_applicable_policies_both_selectors_binding_name_earliest_first():
    a100 = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["a100"]}]}]}
    n = node(labels={"gpu": "a100"})
    policies = [policy("later", created="2026-12-03T00:00:00Z"), policy("earlier", created="2026-12-02T00:00:00Z"),
                policy("by-cluster-id", cluster="cls-example"), policy("other-gpu", selector={
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["t4"]}]}]}),
                policy("a100-only", selector=a100, created="2026-12-04T00:00:00Z"),
                policy("going", deleting=True, created="2026-11-01T00:00:00Z")]
    chosen = ko.applicable_policies(policies, "example-cluster", n, WORKER_SELECTOR)
    assert [p["metadata"]["name"] for p in chosen] == ["earlier", "later", "a100-only"]
    not_lent = node(labels={"kubeocean.io/role": "infer-only"})
    assert ko.applicable_policies(policies, "example-cluster", not_lent, WORKER_SELECTOR) == []


# ------------------------------------------------------------------ the vnode
def test_desired_vnode_labels_annotations_taints_capacity():
    want = ko.desired_vnode(binding(), node(), policy(windows=NIGHTS_AND_WEEKENDS,
                                                      limits=[{"resource": "nvidia.com/gpu", "percent": 50}]),
                            [], WEDNESDAY_1200, "10.244.0.7", 15001, 9006, "2026-12-02T11:00:00Z")
    assert want.name == "vnode-cls-example-gpu-1"
    assert want.labels == {"kubeocean.io/role": "worker", "kubeocean.io/cluster-binding": "example-cluster",
                           "kubeocean.io/physical-cluster-id": "cls-example",
                           "kubeocean.io/physical-node-name": "gpu-1", "kubeocean.io/physical-node-uid": "uid-1",
                           "kubeocean.io/physical-node-innerip": "10.0.0.5", "kubeocean.io/proxier_port": "15001",
                           "kubeocean.io/managed-by": "kubeocean", "type": "virtual-kubelet",
                           "node.kubernetes.io/instance-type": "vnode", "beta.kubernetes.io/instance-type": "vnode",
                           "kubernetes.io/hostname": "vnode-cls-example-gpu-1"}
    assert want.annotations["kubeocean.io/policies-applied"] == "example-policy"
    assert want.annotations["kubeocean.io/policy-details"] == "example-policy(nvidia.com/gpu=/50%)"
    assert want.annotations["kubeocean.io/prometheus-url"] == "10.244.0.7:9006/vnode-cls-example-gpu-1"
    assert want.annotations["kwok.x-k8s.io/node"] == "fake"                  # physical annotations copied
    assert want.resources["nvidia.com/gpu"] == "4" and not want.in_window
    assert want.taints == [{"key": ko.TAINT_VNODE, "effect": "NoSchedule"},
                           {"key": ko.TAINT_OUT_OF_WINDOWS, "value": "true", "effect": "NoExecute",
                            "timeAdded": "2026-12-02T11:00:00Z"}]


def test_plan_create_then_nothing_then_window_change_keeping_foreign_metadata():
    pol = policy(windows=NIGHTS_AND_WEEKENDS)
    inside = ko.desired_vnode(binding(), node(), pol, [], SUNDAY_2330, "10.244.0.7", 15001, now_rfc3339="t0")
    plan = ko.plan_vnode(None, inside, "2026-12-06T22:30:00Z")
    created = plan.create
    assert created["metadata"]["finalizers"] == [ko.VNODE_FINALIZER]
    assert created["status"]["capacity"] == created["status"]["allocatable"] == inside.resources
    assert created["status"]["addresses"] == [{"type": "InternalIP", "address": "10.244.0.7"},
                                              {"type": "Hostname", "address": inside.name}]
    # as the API server has it, plus what others added: a label, an annotation, kube's not-ready taint
    existing = json.loads(json.dumps(created))
    existing["metadata"].update(resourceVersion="7")
    existing["metadata"]["labels"]["team"] = "research"
    existing["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"] = "0"
    existing["spec"]["taints"].append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
    assert not ko.plan_vnode(existing, inside, "later")                     # nothing to do
    # the lab clock leaves the window: the taint comes, the others' metadata stays
    outside = ko.desired_vnode(binding(), node(), pol, [], WEDNESDAY_1200, "10.244.0.7", 15001,
                               now_rfc3339="2026-12-02T11:00:00Z")
    patch = ko.plan_vnode(existing, outside, "later").meta
    assert patch["metadata"]["resourceVersion"] == "7"
    assert patch["metadata"]["labels"]["team"] == "research"
    assert patch["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"] == "0"
    keys = [(t["key"], t["effect"]) for t in patch["spec"]["taints"]]
    assert keys == [(ko.TAINT_VNODE, "NoSchedule"), (ko.TAINT_OUT_OF_WINDOWS, "NoExecute"),
                    ("node.kubernetes.io/not-ready", "NoSchedule")]
    # applied; a later pass keeps timeAdded (the graceful period is not restarted)
    existing["spec"]["taints"] = patch["spec"]["taints"]
    existing["metadata"]["annotations"] = {k: v for k, v in patch["metadata"]["annotations"].items() if v is not None}
    again = ko.desired_vnode(binding(), node(), pol, [], WEDNESDAY_1200 + timedelta(minutes=5), "10.244.0.7",
                             15001, now_rfc3339="2026-12-02T11:05:00Z")
    assert not ko.plan_vnode(existing, again, "later")
    # a label the syncer set before and no longer wants goes; the physical Node lost its role label
    n = node()
    n["metadata"]["labels"] = {"zone": "a"}
    back = ko.desired_vnode(binding(), n, pol, [], WEDNESDAY_1200, "10.244.0.7", 15001,
                            now_rfc3339="2026-12-02T11:05:00Z")
    labels = ko.plan_vnode(existing, back, "later").meta["metadata"]["labels"]
    assert labels["kubeocean.io/role"] is None and labels["zone"] == "a" and labels["team"] == "research"


def test_plan_status_patch_on_capacity_change():
    pol = policy(limits=[{"resource": "nvidia.com/gpu", "percent": 50}])
    want = ko.desired_vnode(binding(), node(), pol, [], SUNDAY_2330, "10.244.0.7", 15001, now_rfc3339="t")
    existing = json.loads(json.dumps(ko.plan_vnode(None, want, "t").create))
    existing["status"]["capacity"]["memory"] = str(256 * 2**30)              # canonicalised by the server: same
    assert not ko.plan_vnode(existing, want, "t")
    busier = ko.desired_vnode(binding(), node(), pol, [pod(requests={"nvidia.com/gpu": "4"})], SUNDAY_2330,
                              "10.244.0.7", 15001, now_rfc3339="t")
    status = ko.plan_vnode(existing, busier, "t").status["status"]
    assert status["capacity"]["nvidia.com/gpu"] == status["allocatable"]["nvidia.com/gpu"] == "2"


# ------------------------------------------------------------------ statuses and validation
def test_binding_status_written_only_on_change():
    b = binding()
    body = ko.binding_status(b, "Failed", False, "Unauthorized", "401", "2026-12-06T00:00:00Z")
    assert body["status"]["phase"] == "Failed" and body["status"]["conditions"][0]["reason"] == "Unauthorized"
    b["status"] = body["status"]
    assert ko.binding_status(b, "Failed", False, "Unauthorized", "401", "2026-12-06T00:01:00Z") is None
    ready = ko.binding_status(b, "Ready", True, "Synced", "2 vnode(s)", "2026-12-06T00:02:00Z")["status"]
    assert ready["lastSyncTime"] == "2026-12-06T00:02:00Z" and ready["conditions"][0]["status"] == "True"


def test_policy_status():
    p = policy()
    body = ko.policy_status(p, False, "2026-12-06T00:00:00Z")["status"]
    assert body["phase"] == "Inactive" and body["activeTimeWindow"] is False
    p["status"] = body
    assert ko.policy_status(p, False, "later") is None
    assert ko.policy_status(p, True, "later")["status"]["phase"] == "Active"


def test_manager_validation():
    b = binding()
    assert ko.validate_binding(b, [b]) is None
    assert ko.validate_binding(binding(mountNamespace=""), [])[0] == "ValidationFailed"
    older = binding(name="first")
    older["metadata"]["creationTimestamp"] = "2026-11-01T00:00:00Z"
    reason, message = ko.validate_binding(b, [older, b])
    assert reason == "ClusterIDConflict" and "first" in message
    assert ko.validate_binding(older, [older, b]) is None


def test_render_template():
    text = "name: {{.DeploymentName}}\nargs:\n{{- if .TLSEnabled}}\n- --tls={{.TLSSecretName}}\n{{- end}}\n- --x\n"
    assert ko.render_template(text, {"DeploymentName": "d", "TLSEnabled": False, "TLSSecretName": "s"}) == \
        "name: d\nargs:\n- --x\n"
    assert "--tls=s" in ko.render_template(text, {"DeploymentName": "d", "TLSEnabled": True, "TLSSecretName": "s"})
    with pytest.raises(ko.KubeoceanError, match="DeploymentName"):
        ko.render_template(text, {})


@pytest.mark.skipif(not (shutil.which("helm") or (paths.REPO_ROOT / ".venv/bin/helm").exists()), reason="needs helm")
def test_per_binding_objects_from_the_charts_templates(tmp_path):
    helm = charts.helm_binary()
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HELM_CACHE_HOME": str(tmp_path / "c"),
           "HELM_CONFIG_HOME": str(tmp_path / "cf"), "HELM_DATA_HOME": str(tmp_path / "d")}
    out = subprocess.run([helm, "template", "kubeocean", str(charts.KUBEOCEAN_SOURCE)], capture_output=True,
                         text=True, check=True, env=env).stdout
    cms = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out) if d and d["kind"] == "ConfigMap"}
    objs = ko.per_binding_objects(binding(), "kubeocean-system", cms[ko.SYNCER_TEMPLATE], cms[ko.PROXIER_TEMPLATE])
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("Deployment", "kubeocean-syncer-cls-example"), ("Deployment", "kubeocean-proxier-cls-example"),
        ("Service", "kubeocean-proxier-cls-example-svc")]
    syncer, proxier, svc = objs
    spec = syncer["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "kubeocean-syncer"
    assert "--cluster-binding-name=example-cluster" in spec["containers"][0]["args"]
    assert spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"][0] == {"key": "node.kubernetes.io/instance-type", "operator": "NotIn", "values": ["vnode"]}
    assert syncer["spec"]["selector"]["matchLabels"].items() <= syncer["spec"]["template"]["metadata"]["labels"].items()
    assert not any(a.startswith("--tls") for a in proxier["spec"]["template"]["spec"]["containers"][0]["args"])
    assert svc["spec"]["selector"]["k8s-app"] == "kubeocean-proxier-cls-example"
    with pytest.raises(ko.KubeoceanError, match="kubeocean-syncer-template"):
        ko.per_binding_objects(binding(), "kubeocean-system", None, cms[ko.PROXIER_TEMPLATE])


def test_describe_error():
    class E(Exception):
        def __init__(self, status, body=""):
            super().__init__(f"({status})")
            self.status, self.body = status, body

    assert ko.describe_error(E(401))[0] == "Unauthorized"
    reason, message = ko.describe_error(E(403, json.dumps({"message": "nodes is forbidden"})))
    assert reason == "Forbidden" and "nodes is forbidden" in message
    assert ko.describe_error(ConnectionRefusedError("refused"))[0] == "ConnectionFailed"


def test_clock_set_at_is_now(tmp_path):
    before = time.time()
    data = ko.set_clock(SUNDAY_2330, path=tmp_path / "c.json")
    assert before <= data["set_at"] <= time.time()


# ------------------------------------------------------------------ the reconcile against an in-memory API
_PATH = re.compile(r"^(/api/v1|/apis/[^/]+/[^/]+)(?:/namespaces/([^/]+))?/([^/]+)(?:/([^/]+))?(?:/(status))?$")


class FakeError(Exception):
    def __init__(self, status, message=""):
        super().__init__(f"({status}) {message}")
        self.status, self.body = status, json.dumps({"message": message})


def _merge(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def _labels_match(obj, selector):
    if not selector:
        return True
    labels = obj["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in (term.split("=", 1) for term in selector.split(",")))


class FakeAPI:
    """Enough of a kube-apiserver for the stand-in's calls: collections by (group prefix, resource),
    merge patches with resourceVersion preconditions, finalizers and deletionTimestamp."""

    def __init__(self, host):
        self.configuration = type("C", (), {"host": host})()
        self.store: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
        self.rv = 0
        self.fail: FakeError | None = None

    def close(self):
        pass

    def _bump(self, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def add(self, prefix, resource, obj, namespace=""):
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if namespace:
            meta["namespace"] = namespace
        meta.setdefault("uid", f"uid-{meta['name']}-{self.rv}")
        meta.setdefault("creationTimestamp", "2026-12-01T00:00:00Z")
        self._bump(obj)
        self.store.setdefault((prefix, resource), {})[(meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def objects(self, prefix, resource, selector=None):
        return [copy.deepcopy(o) for o in self.store.get((prefix, resource), {}).values() if _labels_match(o, selector)]

    def handle(self, method, path, query, body):
        if self.fail is not None:
            raise self.fail
        m = _PATH.match(path)
        prefix, ns, resource, name, _sub = m.groups()
        coll = self.store.setdefault((prefix, resource), {})
        if method == "GET" and name is None:
            items = [o for o in coll.values() if ns in (None, o["metadata"].get("namespace", ""))]
            fsel = (query or {}).get("fieldSelector")
            if fsel:
                items = [o for o in items if (o.get("spec") or {}).get("nodeName") == fsel.split("=", 1)[1]]
            return {"metadata": {"resourceVersion": str(self.rv)}, "items": copy.deepcopy(items)}
        key = (ns or "", name)
        if method == "POST":
            key = (ns or "", body["metadata"]["name"])
            if key in coll:
                raise FakeError(409, "exists")
            return copy.deepcopy(self.add(prefix, resource, body, ns or ""))
        if key not in coll:
            raise FakeError(404, "not found")
        obj = coll[key]
        if method == "GET":
            return copy.deepcopy(obj)
        if method == "PATCH":
            want = ((body or {}).get("metadata") or {}).get("resourceVersion")
            if want and want != obj["metadata"]["resourceVersion"]:
                raise FakeError(409, "conflict")
            new = _merge(obj, body)
            new["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
            self._bump(new)
            if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
                del coll[key]
            else:
                coll[key] = new
            return copy.deepcopy(new)
        if method == "DELETE":
            if obj["metadata"].get("finalizers"):
                obj["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z"
                self._bump(obj)
            else:
                del coll[key]
            return {}
        raise AssertionError(method)


def _fake_request(api, method, path, query=None, body=None, content_type=None, **kwargs):
    return api.handle(method, path, query, body)


CORE, APPS, CLOUD = "/api/v1", "/apis/apps/v1", "/apis/cloud.tencent.com/v1beta1"
WORKER_KUBECONFIG = yaml.safe_dump({"clusters": [{"name": "w", "cluster": {"server": "https://worker.test"}}],
                                    "users": [{"name": "u", "user": {"token": "t"}}], "current-context": "c",
                                    "contexts": [{"name": "c", "context": {"cluster": "w", "user": "u"}}]})


@pytest.fixture
def world(monkeypatch, tmp_path):
    """A manager with the chart's objects, a worker with two GPU Nodes and the policy, the stand-in."""
    import kubernetes.config

    manager, worker = FakeAPI("https://manager.test"), FakeAPI("https://worker.test")
    monkeypatch.setattr(ko, "api_request", _fake_request)
    monkeypatch.setattr(kubernetes.config, "new_client_from_config_dict", lambda config: worker)
    monkeypatch.setattr(ko.WorkerConnection, "start", lambda self: None)
    helm = charts.helm_binary() if (paths.REPO_ROOT / ".venv/bin/helm").exists() or shutil.which("helm") else None
    if helm is None:
        pytest.skip("needs helm")
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HELM_CACHE_HOME": str(tmp_path / "c"),
           "HELM_CONFIG_HOME": str(tmp_path / "cf"), "HELM_DATA_HOME": str(tmp_path / "d")}
    rendered = subprocess.run([helm, "template", "kubeocean", str(charts.KUBEOCEAN_SOURCE)], capture_output=True,
                              text=True, check=True, env=env).stdout
    for doc in yaml.safe_load_all(rendered):
        if doc and doc["kind"] == "ConfigMap":
            manager.add(CORE, "configmaps", doc, "kubeocean-system")
    manager.add(APPS, "deployments", {"metadata": {"name": "kubeocean-manager"}, "spec": {"replicas": 2}},
                "kubeocean-system")
    manager.add(CORE, "secrets", {"metadata": {"name": "example-cluster-kubeconfig"},
                                  "data": {"kubeconfig": base64.b64encode(WORKER_KUBECONFIG.encode()).decode()}},
                "kubeocean-system")
    for name, labels in (("gpu-1", {}), ("gpu-2", {}), ("infer-1", {"kubeocean.io/role": "infer"})):
        n = node(name, labels=labels, uid=f"uid-{name}")
        n["metadata"].pop("creationTimestamp")
        worker.add(CORE, "nodes", n)
    worker.add(CLOUD, "resourceleasingpolicies", policy(windows=NIGHTS_AND_WEEKENDS,
                                                        limits=[{"resource": GPU_, "percent": 50}]))
    clock = tmp_path / "clock.json"
    ko.set_clock(SUNDAY_2330, frozen=True, path=clock)
    logs: list[str] = []
    lab = ko.Kubeocean(manager, clock, None, logs.append)
    lab.refresh_clock()
    return {"lab": lab, "manager": manager, "worker": worker, "logs": logs, "clock": clock}


GPU_ = "nvidia.com/gpu"


def _refresh(lab, manager, worker):
    for cache in lab.caches.values():
        prefix = CLOUD if "cloud.tencent.com" in cache.path else (APPS if "/apps/" in cache.path else CORE)
        cache.items = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): cache.transform(o)
                       for o in manager.objects(prefix, cache.path.rsplit("/", 1)[1], cache.selector)}
        cache.synced = cache.served = True
    for conn in lab.workers.values():
        for cache in conn.caches.values():
            prefix = CLOUD if "cloud.tencent.com" in cache.path else CORE
            cache.items = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): cache.transform(o)
                           for o in worker.objects(prefix, cache.path.rsplit("/", 1)[1])}
            cache.synced = cache.served = True
            cache.error = worker.fail


def settle(world, rounds=12):
    lab, manager, worker = world["lab"], world["manager"], world["worker"]
    for _ in range(rounds):
        _refresh(lab, manager, worker)
        lab.refresh_clock()
        for name in sorted(lab.binding_names()):
            lab.reconcile_binding(name)
    _refresh(lab, manager, worker)


def _bind(world):
    world["manager"].add(CLOUD, "clusterbindings", binding())
    settle(world)


def _vnodes_of(manager):
    return {n["metadata"]["name"]: n for n in manager.objects(CORE, "nodes")}


def test_reconcile_binds_only_while_the_manager_deployment_exists(world):
    manager = world["manager"]
    del manager.store[(APPS, "deployments")][("kubeocean-system", "kubeocean-manager")]
    _bind(world)
    assert not _vnodes_of(manager)
    assert "finalizers" not in manager.objects(CLOUD, "clusterbindings")[0]["metadata"]
    manager.add(APPS, "deployments", {"metadata": {"name": "kubeocean-manager"}, "spec": {"replicas": 1}},
                "kubeocean-system")
    settle(world)
    assert set(_vnodes_of(manager)) == {"vnode-cls-example-gpu-1", "vnode-cls-example-gpu-2"}


def test_reconcile_bind_window_reclaim_unbind(world):
    lab, manager, worker = world["lab"], world["manager"], world["worker"]
    _bind(world)
    (b,) = manager.objects(CLOUD, "clusterbindings")
    assert b["metadata"]["finalizers"] == [ko.MANAGER_FINALIZER, ko.SYNCER_FINALIZER]
    assert b["status"]["phase"] == "Ready" and b["status"]["conditions"][0]["reason"] == "Synced"
    deployments = {o["metadata"]["name"] for o in manager.objects(APPS, "deployments")}
    assert deployments == {"kubeocean-manager", "kubeocean-syncer-cls-example", "kubeocean-proxier-cls-example"}
    assert [s["metadata"]["name"] for s in manager.objects(CORE, "services")] == ["kubeocean-proxier-cls-example-svc"]
    vnodes = _vnodes_of(manager)
    assert set(vnodes) == {"vnode-cls-example-gpu-1", "vnode-cls-example-gpu-2"}      # not infer-1
    v = vnodes["vnode-cls-example-gpu-1"]
    assert v["status"]["capacity"][GPU_] == v["status"]["allocatable"][GPU_] == "4"
    assert v["metadata"]["finalizers"] == [ko.VNODE_FINALIZER]
    assert v["status"]["addresses"][0] == {"type": "InternalIP", "address": "10.0.0.5"}   # no proxier pod yet
    (pol,) = worker.objects(CLOUD, "resourceleasingpolicies")
    assert pol["metadata"]["finalizers"] == [ko.POLICY_FINALIZER] and pol["status"]["phase"] == "Active"
    # the proxier pod runs: its IP becomes the vnodes' InternalIP
    manager.add(CORE, "pods", {"metadata": {"name": "kubeocean-proxier-cls-example-x", "labels": {
        "app.kubernetes.io/name": "kubeocean-proxier", "k8s-app": "kubeocean-proxier-cls-example"}},
        "spec": {"nodeName": "manager-cpu-1"}, "status": {"phase": "Running", "podIP": "10.244.1.9"}},
        "kubeocean-system")
    settle(world)
    v = _vnodes_of(manager)["vnode-cls-example-gpu-1"]
    assert v["status"]["addresses"][0]["address"] == "10.244.1.9"
    assert v["metadata"]["annotations"][ko.ANN_PROMETHEUS_URL] == "10.244.1.9:9006/vnode-cls-example-gpu-1"
    # a virtual pod on a vnode, one tolerating the out-of-time-windows taint; the clock leaves the window
    for name, tol in (("train", []), ("stays", [{"key": ko.TAINT_OUT_OF_WINDOWS, "operator": "Exists"}])):
        manager.add(CORE, "pods", pod(node_name="vnode-cls-example-gpu-1", name=name, tolerations=tol), "default")
    ko.set_clock(WEDNESDAY_1200, frozen=True, path=world["clock"])
    settle(world)
    for v in _vnodes_of(manager).values():
        (oow,) = [t for t in v["spec"]["taints"] if t["key"] == ko.TAINT_OUT_OF_WINDOWS]
        assert oow["effect"] == "NoExecute" and oow["timeAdded"]
    pods = {p["metadata"]["name"] for p in manager.objects(CORE, "pods") if p["metadata"].get("namespace") == "default"}
    assert pods == {"stays"}                                           # force reclaim, grace 0
    assert worker.objects(CLOUD, "resourceleasingpolicies")[0]["status"]["phase"] == "Inactive"
    ko.set_clock(SUNDAY_2330, frozen=True, path=world["clock"])
    settle(world)
    assert not any(t["key"] == ko.TAINT_OUT_OF_WINDOWS
                   for v in _vnodes_of(manager).values() for t in v["spec"]["taints"])
    # unbind: the vnodes (and the pod on one) go, then both finalizers, the syncer and the proxier
    manager.handle("DELETE", f"{CLOUD}/clusterbindings/example-cluster", None, None)
    settle(world)
    assert not _vnodes_of(manager)
    assert not manager.objects(CLOUD, "clusterbindings")
    assert {o["metadata"]["name"] for o in manager.objects(APPS, "deployments")} == {"kubeocean-manager"}
    assert not manager.objects(CORE, "services")
    assert not [p for p in manager.objects(CORE, "pods") if p["metadata"].get("namespace") == "default"]
    assert any("finalizer kubeocean.io/clusterbinding-syncer released" in m for m in world["logs"])
    assert worker.objects(CLOUD, "resourceleasingpolicies")[0]["metadata"]["finalizers"] == [ko.POLICY_FINALIZER]
    assert lab.workers == {}


def test_reconcile_policy_deleted_removes_its_vnodes(world):
    manager, worker = world["manager"], world["worker"]
    _bind(world)
    assert len(_vnodes_of(manager)) == 2
    worker.handle("DELETE", f"{CLOUD}/resourceleasingpolicies/example-policy", None, None)
    settle(world)
    assert not _vnodes_of(manager)
    assert not worker.objects(CLOUD, "resourceleasingpolicies")          # its finalizer released


def test_reconcile_reports_a_broken_secret_or_worker(world):
    manager, worker = world["manager"], world["worker"]
    del manager.store[(CORE, "secrets")][("kubeocean-system", "example-cluster-kubeconfig")]
    _bind(world)
    status = manager.objects(CLOUD, "clusterbindings")[0]["status"]
    assert (status["phase"], status["conditions"][0]["reason"]) == ("Failed", "SecretNotFound")
    manager.add(CORE, "secrets", {"metadata": {"name": "example-cluster-kubeconfig"},
                                  "data": {"kubeconfig": base64.b64encode(b"{not yaml: [").decode()}},
                "kubeocean-system")
    settle(world)
    assert manager.objects(CLOUD, "clusterbindings")[0]["status"]["conditions"][0]["reason"] == "KubeconfigInvalid"
    manager.store[(CORE, "secrets")][("kubeocean-system", "example-cluster-kubeconfig")]["data"]["kubeconfig"] = \
        base64.b64encode(WORKER_KUBECONFIG.encode()).decode()
    worker.fail = FakeError(401, "Unauthorized")
    settle(world)
    status = manager.objects(CLOUD, "clusterbindings")[0]["status"]
    assert (status["phase"], status["conditions"][0]["reason"]) == ("Failed", "Unauthorized")
    assert not _vnodes_of(manager)
    worker.fail = None
    settle(world)
    assert manager.objects(CLOUD, "clusterbindings")[0]["status"]["phase"] == "Ready"
    assert len(_vnodes_of(manager)) == 2


def test_reconcile_refuses_a_reused_cluster_id(world):
    manager = world["manager"]
    _bind(world)
    second = binding(name="second")
    second["metadata"]["creationTimestamp"] = "2026-12-05T00:00:00Z"
    manager.add(CLOUD, "clusterbindings", second)
    settle(world)
    status = next(b for b in manager.objects(CLOUD, "clusterbindings") if b["metadata"]["name"] == "second")["status"]
    assert (status["phase"], status["conditions"][0]["reason"]) == ("Failed", "ClusterIDConflict")
    assert len(_vnodes_of(manager)) == 2
