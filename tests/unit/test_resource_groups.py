"""module_utils/resource_groups and the resource_group_rebalance module: the loads (which pods are whose, which GPUs
count), the moves (least to most loaded, minimums, max_moves, threshold, busy Nodes only with allow_drain, a second
run with the same load moves nothing, the same input the same moves), the record on the Node, every bad-input row of
roles/resource_groups/README.md, the label role yielding to the record (module_utils/node_labels and the node_labels
module), and both modules against a small fake API server. No cluster."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import node_labels as labels_logic
from ansible_collections.aicluster.platform.plugins.module_utils import plan_problems
from ansible_collections.aicluster.platform.plugins.module_utils import resource_groups as rg
from ansible_collections.aicluster.platform.plugins.modules import node_labels as node_labels_module
from ansible_collections.aicluster.platform.plugins.modules import resource_group_rebalance
from fake_kube import FakeKube
from plan_helpers import role_variables

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "resource_groups"
RG = "aicluster.io/resource-group"
BASE = "aicluster.io/resource-group-base"
MANAGED = "aicluster.io/managed-labels"


def node(name, org, gpus=8, share=True, cordoned=False, rv="1", annotations=None):
    labels = {"kubernetes.io/hostname": name}
    if org:
        labels["org"] = org
    if share:
        labels["share"] = "true"
    item = {"metadata": {"name": name, "labels": labels, "resourceVersion": rv},
            "status": {"allocatable": {"cpu": "32", "nvidia.com/gpu": str(gpus)}}}
    if annotations:
        item["metadata"]["annotations"] = dict(annotations)
    if cordoned:
        item["spec"] = {"unschedulable": True}
    return item


def pod(name, on, gpus, org=None, phase="Running", owner=None, init=None, request=False):
    resources = {"requests" if request else "limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    spec = {"nodeName": on, "containers": [{"name": "main", "resources": resources}]}
    if org:
        spec["nodeSelector"] = {"org": org}
    if init is not None:
        spec["initContainers"] = [{"name": "init", "resources": {"limits": {"nvidia.com/gpu": str(init)}}}]
    meta = {"name": name, "namespace": "jupyter"}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "x", "apiVersion": "apps/v1", "uid": "u"}]
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


# team-a: two 8-GPU Nodes, both busy (16 of 16 GPUs requested); team-b: three 8-GPU Nodes, one running 4 GPUs.
NODES = [node("a1", "team-a"), node("a2", "team-a"), node("b1", "team-b"), node("b2", "team-b"),
         node("b3", "team-b")]
PODS = [pod("train-1", "a1", 8, "team-a"), pod("train-2", "a2", 8, "team-a"), pod("nb-1", "b1", 4, "team-b")]


def moves_of(result):
    return [(m["node"], m["from"], m["to"]) for m in result["moves"]]


def applied(nodes, result):
    """The Node list after the plan's patches (as the API server would merge them)."""
    nodes = copy.deepcopy(nodes)
    for item in nodes:
        patch = result["patches"].get(item["metadata"]["name"])
        if not patch:
            continue
        meta = item["metadata"]
        meta["labels"].update(patch["metadata"]["labels"])
        for key, value in (patch["metadata"].get("annotations") or {}).items():
            if value is None:
                meta.setdefault("annotations", {}).pop(key, None)
            else:
                meta.setdefault("annotations", {})[key] = value
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
    return nodes


# ------------------------------------------------------------------ the loads
def test_loads_count_the_pods_of_each_group_over_its_gpus():
    result = rg.plan(NODES, PODS, {"max_moves": 0})
    assert result["loads"]["before"] == {
        "team-a": {"nodes": 2, "share_nodes": 2, "gpus": 16, "gpus_requested": 16, "minimum": 0, "load": 1.0},
        "team-b": {"nodes": 3, "share_nodes": 3, "gpus": 24, "gpus_requested": 4, "minimum": 0, "load": 0.1667}}
    assert result["moves"] == [] and result["stopped"] == "max_moves is 0: report only"


def test_which_pods_count():
    pods = [
        pod("selects-a-on-b", "b1", 2, "team-a"),  # the group it selects, wherever it runs
        pod("gpu-no-selector", "b2", 3),  # the group of its Node
        pod("cpu-no-selector", "b2", 0),  # nobody's
        pod("daemon", "a1", 1, owner="DaemonSet"),  # nobody's
        pod("done", "a1", 8, "team-a", phase="Succeeded"),
        pod("failed", "a1", 8, "team-a", phase="Failed"),
        pod("starting", "a2", 1, "team-a", phase="Pending"),  # bound, so its GPUs are taken
        {**pod("unbound", "", 8, "team-a", phase="Pending")},
        pod("init-heavy", "a2", 1, "team-a", init=4),  # the scheduler counts max(1, 4)
        pod("requests", "b3", 2, "team-b", request=True),
    ]
    before = rg.plan(NODES, pods, {"max_moves": 0})["loads"]["before"]
    assert before["team-a"]["gpus_requested"] == 2 + 1 + 4
    assert before["team-b"]["gpus_requested"] == 3 + 2


def test_pod_gpus_follows_the_scheduler():
    assert rg.pod_gpus(pod("p", "n", 2, init=1)) == 2
    assert rg.pod_gpus(pod("p", "n", 2, init=3)) == 3
    assert rg.pod_gpus({"spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": "1"}}},
                                                {"resources": {"requests": {"nvidia.com/gpu": "2"}}}]}}) == 3
    assert rg.pod_gpus({"spec": {}}) == 0


def test_nodes_without_gpus_or_group_are_not_in_the_loads():
    nodes = [*NODES, node("cpu-1", "team-a", gpus=0), node("loose", None)]
    before = rg.plan(nodes, PODS, {"max_moves": 0})["loads"]["before"]
    assert before["team-a"]["nodes"] == 2 and set(before) == {"team-a", "team-b"}


# ------------------------------------------------------------------ the moves
def test_moves_go_from_the_least_to_the_most_loaded_group_until_balanced():
    result = rg.plan(NODES, PODS, {"max_moves": 5})
    assert moves_of(result) == [("b2", "team-b", "team-a"), ("b3", "team-b", "team-a")]
    assert result["moves"][0] == {"node": "b2", "from": "team-b", "to": "team-a", "gpus": 8, "gpus_in_use": 0,
                                  "busy": False}
    assert result["loads"]["after"]["team-a"]["load"] == 0.5 and result["loads"]["after"]["team-b"]["load"] == 0.5
    assert result["stopped"] == ("balanced: the most loaded group team-a (50%) and the least loaded team-b (50%) "
                                 "differ by no more than the threshold 0.2")


def test_a_second_run_with_the_same_load_moves_nothing():
    first = rg.plan(NODES, PODS, {"max_moves": 5})
    second = rg.plan(applied(NODES, first), PODS, {"max_moves": 5})
    assert second["moves"] == [] and second["patches"] == {}
    assert second["loads"]["before"] == first["loads"]["after"]


def test_max_moves_per_run_and_the_next_run_goes_on():
    first = rg.plan(NODES, PODS, {"max_moves": 1})
    assert moves_of(first) == [("b2", "team-b", "team-a")] and first["stopped"] == "max_moves 1 reached"
    second = rg.plan(applied(NODES, first), PODS, {"max_moves": 1})
    assert moves_of(second) == [("b3", "team-b", "team-a")]
    assert rg.plan(applied(applied(NODES, first), second), PODS, {"max_moves": 1})["moves"] == []


def test_the_minimum_is_honoured():
    result = rg.plan(NODES, PODS, {"max_moves": 5, "minimums": {"team-b": 2}})
    assert moves_of(result) == [("b2", "team-b", "team-a")]
    assert result["stopped"] == "no Node can move to team-a (67%): team-b: at its minimum of 2 GPU Nodes"
    assert rg.plan(NODES, PODS, {"max_moves": 5, "minimums": {"team-b": 3}})["moves"] == []


@pytest.mark.parametrize(("threshold", "moves"), [(0.0, 2), (0.8, 1), (0.83, 1), (0.834, 0), (1.0, 0)])
def test_the_threshold(threshold, moves):
    """team-a 1.0 against team-b 0.1667: a difference of 0.8333; after one move 0.6667 against 0.25."""
    assert len(rg.plan(NODES, PODS, {"max_moves": 5, "threshold": threshold})["moves"]) == moves


def test_a_difference_equal_to_the_threshold_moves_nothing():
    nodes = [node("a1", "team-a", gpus=4), node("b1", "team-b", gpus=4), node("b2", "team-b", gpus=4)]
    pods = [pod("p", "a1", 2, "team-a")]  # team-a 0.5, team-b 0.0
    assert rg.plan(nodes, pods, {"threshold": 0.5})["moves"] == []
    assert moves_of(rg.plan(nodes, pods, {"threshold": 0.49})) == [("b1", "team-b", "team-a")]


def test_busy_nodes_move_only_with_allow_drain_and_idle_ones_first():
    pods = [*PODS, pod("nb-2", "b2", 1, "team-b"), pod("nb-3", "b3", 1, "team-b")]
    held = rg.plan(NODES, pods, {"max_moves": 5})
    assert held["moves"] == []
    assert held["stopped"] == ("no Node can move to team-a (100%): team-b: its share=true Nodes run its pods (b1, b2, "
                               "b3; allow_drain is false)")
    drained = rg.plan(NODES, pods, {"max_moves": 1, "allow_drain": True})
    assert drained["moves"] == [{"node": "b2", "from": "team-b", "to": "team-a", "gpus": 8, "gpus_in_use": 1,
                                 "busy": True}]  # the fewest GPUs in use of the busy ones
    idle = [*PODS, pod("nb-2", "b2", 1, "team-b")]
    assert moves_of(rg.plan(NODES, idle, {"max_moves": 1, "allow_drain": True})) == [("b3", "team-b", "team-a")]


def test_pods_of_another_group_do_not_make_a_node_busy():
    pods = [*PODS, pod("lent", "b2", 1, "team-c"), pod("nb-3", "b3", 1, "team-b")]
    assert moves_of(rg.plan(NODES, pods, {"max_moves": 1}))[0][0] == "b2"


def test_only_shared_schedulable_gpu_nodes_move():
    nodes = [node("a1", "team-a"), node("a2", "team-a"), node("b1", "team-b", share=False),
             node("b2", "team-b", cordoned=True), node("b3", "team-b", gpus=0)]
    result = rg.plan(nodes, PODS[:2], {"max_moves": 5})
    assert result["moves"] == []
    assert result["stopped"] == ("no Node can move to team-a (100%): team-b: no share=true GPU Node that is not "
                                 "cordoned")


def test_a_move_must_narrow_the_gap():
    """team-b's only shared Node holds most of its GPUs: giving it away would leave team-b (7 of 8) further above
    team-a (2 of 18) than team-a (2 of 2) is above team-b (7 of 24) now."""
    nodes = [node("a1", "team-a", gpus=2), node("b1", "team-b", gpus=8, share=False), node("b2", "team-b", gpus=16)]
    pods = [pod("p", "a1", 2, "team-a"), pod("q", "b1", 7, "team-b")]
    result = rg.plan(nodes, pods, {"max_moves": 5})
    assert result["moves"] == []
    assert result["stopped"].startswith("no Node can move to team-a (100%): team-b: no move would narrow the gap")


def test_the_donor_is_the_least_loaded_group_that_can_give():
    nodes = [*NODES, node("c1", "team-c", share=False)]
    result = rg.plan(nodes, PODS, {"max_moves": 1})  # team-c (0%) has nothing to give: team-b gives
    assert moves_of(result) == [("b2", "team-b", "team-a")]


def test_a_group_without_gpus_but_with_pods_receives_first():
    nodes = [*NODES, node("c1", "team-c", gpus=0)]
    pods = [*PODS, pod("lost", "b3", 2, "team-c")]  # selects team-c, which has no GPU Node
    result = rg.plan(nodes, pods, {"max_moves": 1})
    assert moves_of(result) == [("b2", "team-b", "team-c")]
    assert result["loads"]["before"]["team-c"]["load"] is None
    assert result["loads"]["after"]["team-c"]["load"] == 0.25


def test_the_same_input_gives_the_same_moves():
    expected = rg.plan(NODES, PODS, {"max_moves": 5})
    assert rg.plan(list(reversed(NODES)), list(reversed(PODS)), {"max_moves": 5}) == expected


def test_fewer_than_two_groups():
    result = rg.plan([node("a1", "team-a")], [], {})
    assert result["moves"] == [] and result["stopped"] == "fewer than two resource groups: nothing to balance"


# ------------------------------------------------------------------ the record on the Node
def test_the_first_move_records_the_base_group():
    result = rg.plan(NODES, PODS, {"max_moves": 1})
    assert result["patches"] == {"b2": {"metadata": {
        "labels": {"org": "team-a"}, "annotations": {RG: "team-a", BASE: "team-b"}, "resourceVersion": "1"}}}
    assert result["diff"] == [{"before_header": "node/b2", "after_header": "node/b2",
                               "before": {"labels": {"org": "team-b"}, "annotations": {}},
                               "after": {"labels": {"org": "team-a"}, "annotations": {RG: "team-a", BASE: "team-b"}}}]


def test_a_further_move_keeps_the_base_and_a_move_back_clears_the_record():
    nodes = [node("a1", "team-a"), node("b1", "team-b", share=False), node("b2", "team-b", share=False),
             node("c1", "team-c", share=False, annotations={RG: "team-c", BASE: "team-b"}),
             node("c2", "team-c", annotations={RG: "team-c", BASE: "team-a"})]
    assert rg.node_patch(rg.nodes_of(nodes)["c1"], "team-a")["metadata"]["annotations"] == {RG: "team-a",
                                                                                            BASE: "team-b"}
    assert rg.node_patch(rg.nodes_of(nodes)["c1"], "team-b")["metadata"] == {
        "labels": {"org": "team-b"}, "annotations": {RG: None, BASE: None}, "resourceVersion": "1"}
    pods = [pod("p", "a1", 8, "team-a")]
    result = rg.plan(nodes, pods, {"max_moves": 1})
    assert moves_of(result) == [("c2", "team-c", "team-a")]  # back to its base group
    assert result["patches"]["c2"]["metadata"]["annotations"] == {RG: None, BASE: None}


# ------------------------------------------------------------------ bad input (the README's table)
@pytest.mark.parametrize(("settings", "problem"), [
    ({"minimums": {"team-a": 3}}, "minimums: group team-a: the minimum 3 is above its 2 GPU Nodes (org=team-a with "
                                  "nvidia.com/gpu allocatable): it could never be kept"),
    ({"minimums": {"team-z": 1}}, "minimums: group team-z: the minimum 1 is above its 0 GPU Nodes (org=team-z with "
                                  "nvidia.com/gpu allocatable): it could never be kept"),
    ({"threshold": 1.5}, "threshold must be a load difference from 0 to 1 (e.g. 0.2: move when the most and the least "
                         "loaded group differ by more than 20 points), got 1.5"),
    ({"threshold": -0.1}, "threshold must be a load difference from 0 to 1 (e.g. 0.2: move when the most and the "
                          "least loaded group differ by more than 20 points), got -0.1"),
    ({"threshold": "0.2"}, "threshold must be a load difference from 0 to 1 (e.g. 0.2: move when the most and the "
                           "least loaded group differ by more than 20 points), got '0.2'"),
    ({"max_moves": -1}, "max_moves must be a whole number of at least 0 (0: report only), got -1"),
    ({"minimums": {"team-a": -1}}, "minimums: group team-a: the minimum must be a whole number of GPU Nodes, at least "
                                   "0, got -1"),
    ({"minimums": {"Team A": 1}}, "minimums: group 'Team A' is not an org label value: value 'Team A' must be empty "
                                  "or consist of alphanumerics, '-', '_' or '.', and must start and end with an "
                                  "alphanumeric"),
    ({"minimums": [1]}, "minimums must be a dict of group: GPU Nodes it keeps, got [1]"),
    ({"gpu_resource": "gpu"}, "gpu_resource must be an extended resource name such as nvidia.com/gpu, got 'gpu'"),
    ({"allow_drain": "yes"}, "allow_drain must be true or false, got 'yes'"),
])
def test_bad_input(settings, problem):
    assert rg.problems(NODES, settings) == [problem]
    with pytest.raises(rg.ResourceGroupError) as info:
        rg.plan(NODES, PODS, settings)
    assert info.value.problems == [problem]


def test_the_error_integer_test_and_display_are_plan_problems():
    assert issubclass(rg.ResourceGroupError, plan_problems.PlanError)
    assert rg.is_int is plan_problems.is_int and rg._show is plan_problems.show
    assert str(rg.ResourceGroupError(["a", "b"])) == "a; b" and rg.ResourceGroupError(("a",)).problems == ["a"]


def test_the_boundaries_are_fine():
    assert rg.problems(NODES, {"threshold": 0, "max_moves": 0, "minimums": {"team-a": 2, "team-b": 3}}) == []
    assert rg.problems(NODES, {"threshold": 1}) == []


def test_every_problem_at_once():
    found = rg.problems(NODES, {"threshold": 2, "max_moves": -3})
    assert len(found) == 2


# ------------------------------------------------------------------ the label role yields to the record
def wanted(org="team-b", share=True):
    labels = {"cpu": "true", "gpu": "true", "org": org}
    if share:
        labels["share"] = "true"
    return labels


def test_the_label_role_yields_while_the_inventory_is_unchanged():
    desired, changes, note = labels_logic.resource_group_override(wanted(), {RG: "team-a", BASE: "team-b"})
    assert desired == {**wanted(), "org": "team-a"} and changes == {}
    assert note == ("org team-a: moved there from team-b by the resource group rebalancer (annotation "
                    "aicluster.io/resource-group); the inventory's org team-b yields while the Node is share=true")
    current = {**wanted(), "org": "team-a"}
    patch, _ = labels_logic.plan(current, {MANAGED: "cpu,gpu,org,share", RG: "team-a", BASE: "team-b"}, desired)
    assert patch is None  # nothing to write: the move stays


@pytest.mark.parametrize(("desired", "record", "why"), [
    (wanted(share=False), {RG: "team-a", BASE: "team-b"}, "the inventory no longer shares the Node (no share=true)"),
    (wanted(org="team-c"), {RG: "team-a", BASE: "team-b"},
     "the inventory's org is now team-c (it was team-b when the Node was first moved)"),
    (wanted(), {RG: "Team A", BASE: "team-b"}, "the recorded group 'Team A' is not a label value"),
    (wanted(), {RG: "team-a"}, "the inventory's org is now team-b (it was None when the Node was first moved)"),
])
def test_the_inventory_wins_when_it_changes(desired, record, why):
    result, changes, note = labels_logic.resource_group_override(desired, record)
    assert result == desired and changes == dict.fromkeys(record)
    assert note.endswith(f"{why}, so the inventory wins and the rebalancer's record is removed"), note


def test_no_record_no_change():
    assert labels_logic.resource_group_override(wanted(), {MANAGED: "org"}) == (wanted(), {}, None)


def test_the_record_goes_in_the_same_patch_as_the_labels():
    current = {**wanted(), "org": "team-a"}
    annotations = {MANAGED: "cpu,gpu,org,share", RG: "team-a", BASE: "team-b"}
    desired, changes, _ = labels_logic.resource_group_override(wanted(share=False), annotations)
    patch, diff = labels_logic.plan(current, annotations, desired, annotation_changes=changes)
    assert patch == {"metadata": {"labels": {"org": "team-b", "share": None},
                                  "annotations": {MANAGED: "cpu,gpu,org", RG: None, BASE: None}}}
    assert diff["before"]["annotations"] == {RG: "team-a", BASE: "team-b"} and diff["after"]["annotations"] == {}


def test_without_changes_the_plan_is_as_before():
    _, diff = labels_logic.plan({"a": "1"}, {}, {"a": "1"})
    assert "annotations" not in diff["before"]


# ------------------------------------------------------------------ the modules
class FakeCluster(FakeKube):
    """Nodes (spec and resourceVersion included; a merge patch with a stale resourceVersion gets 409, as the API
    server answers) and pods (listed with the module's field selector)."""

    def __init__(self, nodes, pods=()):
        super().__init__({item["metadata"]["name"]: {"metadata": {k: v for k, v in item["metadata"].items()
                                                                  if k != "name"},
                                                     "status": item["status"], "spec": item.get("spec", {})}
                          for item in nodes})
        self.pods = copy.deepcopy(list(pods))
        self.patches = []

    def node_items(self):
        return [{"metadata": {"name": name, **copy.deepcopy(n["metadata"])}, "spec": copy.deepcopy(n["spec"]),
                 "status": copy.deepcopy(n["status"])} for name, n in sorted(self.nodes.items())]

    def handle(self, handler, method):
        route, _, query = handler.path.partition("?")
        if method == "GET" and route == "/api/v1/pods":
            assert parse_qs(query)["fieldSelector"] == ["status.phase!=Succeeded,status.phase!=Failed"], query
            found = (200, {"kind": "PodList", "items": self.pods})
        elif method == "GET" and route == "/api/v1/nodes":
            found = (200, {"kind": "NodeList", "items": self.node_items()})
        elif method == "PATCH" and route.startswith("/api/v1/nodes/"):
            name = route.rsplit("/", 1)[1]
            body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
            self.patches.append((name, body, handler.headers.get("Content-Type")))
            meta = self.nodes[name]["metadata"]
            wanted_version = body["metadata"].pop("resourceVersion", None)
            if wanted_version is not None and wanted_version != meta.get("resourceVersion"):
                found = (409, {"kind": "Status", "code": 409, "reason": "Conflict",
                               "message": f'Operation cannot be fulfilled on nodes "{name}": the object has been '
                                          "modified; please apply your changes to the latest version and try again"})
            else:
                for section in ("labels", "annotations"):
                    for key, value in (body["metadata"].get(section) or {}).items():
                        if value is None:
                            meta.setdefault(section, {}).pop(key, None)
                        else:
                            meta.setdefault(section, {})[key] = value
                meta["resourceVersion"] = str(int(meta.get("resourceVersion") or 0) + 1)
                found = (200, {"metadata": {"name": name, **meta}})
        else:
            super().handle(handler, method)
            return
        with self.lock:
            self.requests.append((method, handler.path))
        self._send(handler, *found)


def run(module, args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


def rebalance(args, capsys):
    return run(resource_group_rebalance, args, capsys)


def test_module_check_mode_shows_the_moves_and_writes_nothing(isolated, tmp_path, capsys):
    with FakeCluster(NODES, PODS) as kube:
        result = rebalance({"kubeconfig": kube.kubeconfig(tmp_path / "config"), "max_moves": 5,
                            "_ansible_check_mode": True, "_ansible_diff": True}, capsys)
    assert result["_rc"] == 0, result
    assert result["changed"] is True and result["api_writes"] == 0
    assert moves_of(result) == [("b2", "team-b", "team-a"), ("b3", "team-b", "team-a")]
    assert [d["before_header"] for d in result["diff"]] == ["node/b2", "node/b3"]
    assert result["diff"][0]["after"] == {"labels": {"org": "team-a"}, "annotations": {RG: "team-a", BASE: "team-b"}}
    assert kube.patches == []
    assert sorted(p.split("?")[0] for m, p in kube.requests if m == "GET" and p.startswith("/api/v1/")) == [
        "/api/v1/nodes", "/api/v1/pods"]  # each read once


def test_module_moves_then_a_second_run_moves_nothing(isolated, tmp_path, capsys):
    with FakeCluster(NODES, PODS) as kube:
        config = kube.kubeconfig(tmp_path / "config")
        first = rebalance({"kubeconfig": config, "max_moves": 5, "minimums": {"team-b": 1}}, capsys)
        second = rebalance({"kubeconfig": config, "max_moves": 5, "minimums": {"team-b": 1}}, capsys)
    assert first["_rc"] == 0 and first["changed"] is True and first["api_writes"] == 2
    assert [(name, content_type) for name, _, content_type in kube.patches] == [
        ("b2", "application/merge-patch+json"), ("b3", "application/merge-patch+json")]
    assert kube.patches[0][1] == {"metadata": {"labels": {"org": "team-a"},
                                               "annotations": {RG: "team-a", BASE: "team-b"}}}
    assert kube.nodes["b2"]["metadata"]["labels"]["org"] == "team-a"
    assert kube.nodes["b2"]["metadata"]["annotations"] == {RG: "team-a", BASE: "team-b"}
    assert second["_rc"] == 0 and second["changed"] is False and second["moves"] == []
    assert second["api_writes"] == 0 and len(kube.patches) == 2
    assert second["loads"]["before"] == first["loads"]["after"]


def test_module_skips_a_node_changed_since_it_was_read(isolated, tmp_path, capsys, monkeypatch):
    from ansible.module_utils.basic import AnsibleModule

    said = []  # the module's own warnings, whatever other tests left in ansible's process-wide warning store
    original = AnsibleModule.warn
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning, *a, **k: (said.append(str(warning)),
                                                                              original(self, warning, *a, **k))[1])

    class Racing(FakeCluster):
        def node_items(self):
            items = super().node_items()
            self.nodes["b2"]["metadata"]["resourceVersion"] = "5"  # the kubelet wrote after the list
            return items

    with Racing(NODES, PODS) as kube:
        result = rebalance({"kubeconfig": kube.kubeconfig(tmp_path / "config"), "max_moves": 5}, capsys)
    assert result["_rc"] == 0, result
    assert result["conflicts"] == ["b2"] and result["api_writes"] == 1
    assert moves_of(result) == [("b3", "team-b", "team-a")]
    assert said == ["Node b2 changed since it was read and was not moved from team-b to team-a; the next run decides "
                    "again"]
    assert kube.nodes["b2"]["metadata"]["labels"]["org"] == "team-b"


def test_module_bad_input_fails_listing_every_problem_and_writes_nothing(isolated, tmp_path, capsys):
    with FakeCluster(NODES, PODS) as kube:
        result = rebalance({"kubeconfig": kube.kubeconfig(tmp_path / "config"), "threshold": 1.5, "max_moves": -1,
                            "minimums": {"team-a": 3}}, capsys)
    assert result["_rc"] == 1 and result["changed"] is False
    assert result["msg"].startswith("3 problems in the resource group settings: threshold must be a load difference "
                                    "from 0 to 1"), result["msg"]
    assert "max_moves must be a whole number of at least 0 (0: report only), got -1" in result["msg"]
    assert "minimums: group team-a: the minimum 3 is above its 2 GPU Nodes" in result["msg"]
    assert kube.patches == []


def test_module_names_an_unreachable_cluster(isolated, tmp_path, capsys):
    config = tmp_path / "config"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "u"}}]}))
    result = rebalance({"kubeconfig": str(config), "threshold": 2.0, "request_timeout": 2}, capsys)
    assert result["_rc"] == 1 and result["api_writes"] == 0
    assert result["msg"].startswith("cannot read the cluster: ")
    assert "the settings also have 1 problem(s): threshold must be" in result["msg"]


def inventory_entries(share_b2=True, org_b2="team-b"):
    """What the label role computes from inventory for the five Nodes (node_label_entries' output)."""
    entries = []
    for item in NODES:
        name = item["metadata"]["name"]
        org = item["metadata"]["labels"]["org"]
        share = True
        if name == "b2":
            org, share = org_b2, share_b2
        labels = {"kubernetes.io/hostname": name, "org": org}
        if share:
            labels["share"] = "true"
        entries.append({"name": name, "labels": labels})
    return entries


def test_the_next_label_run_keeps_the_move_and_an_inventory_edit_takes_the_node_back(isolated, tmp_path, capsys):
    labelled = [node(n["metadata"]["name"], n["metadata"]["labels"]["org"],
                     annotations={MANAGED: "kubernetes.io/hostname,org,share"}) for n in NODES]
    with FakeCluster(labelled, PODS) as kube:
        config = kube.kubeconfig(tmp_path / "config")
        moved = rebalance({"kubeconfig": config, "max_moves": 5}, capsys)
        assert moves_of(moved) == [("b2", "team-b", "team-a"), ("b3", "team-b", "team-a")]
        kube.patches.clear()
        bootstrap = run(node_labels_module, {"kubeconfig": config, "nodes": inventory_entries()}, capsys)
        assert bootstrap["_rc"] == 0, bootstrap
        assert bootstrap["changed"] is False and kube.patches == []  # the move stays, nothing written
        assert bootstrap["plans"]["b2"]["resource_group"].startswith("org team-a: moved there from team-b")
        assert kube.nodes["b2"]["metadata"]["annotations"][MANAGED] == "kubernetes.io/hostname,org,share"

        again = rebalance({"kubeconfig": config, "max_moves": 5}, capsys)
        assert again["moves"] == []  # nor does the rebalancer move anything back

        taken_back = run(node_labels_module, {"kubeconfig": config, "nodes": inventory_entries(share_b2=False)},
                         capsys)
    assert taken_back["_rc"] == 0 and taken_back["nodes_changed"] == ["b2"]
    meta = kube.nodes["b2"]["metadata"]
    assert meta["labels"]["org"] == "team-b" and "share" not in meta["labels"]
    assert RG not in meta["annotations"] and BASE not in meta["annotations"]
    assert taken_back["plans"]["b2"]["resource_group"].endswith("so the inventory wins and the rebalancer's record "
                                                                "is removed")


# ------------------------------------------------------------------ the role
def test_defaults_argument_specs_and_readme_name_the_same_variables():
    defaults, specs, documented = role_variables(ROLE, "resource_groups_")
    assert set(defaults) == set(specs) == documented
    for name, spec in specs.items():
        if "default" in spec:
            assert spec["default"] == defaults[name], name
    assert defaults["resource_groups_threshold"] == rg.DEFAULT_THRESHOLD
    assert defaults["resource_groups_max_moves"] == rg.DEFAULT_MAX_MOVES


def test_every_bad_input_row_of_the_readme_is_a_test_here():
    table = (ROLE / "README.md").read_text().split("## Bad input", 1)[1].split("\n## ", 1)[0]
    messages = re.findall(r"^\|[^|]+\| `([^`]+)`", table, re.MULTILINE)
    flat = re.sub(r'"\s*\n\s*"', "", Path(__file__).read_text())
    assert len(messages) == 7
    for message in messages:
        head = message.split("...")[0].rstrip()
        if head.startswith("resource_groups_cluster"):
            continue  # the role's own check
        assert head in flat, message
