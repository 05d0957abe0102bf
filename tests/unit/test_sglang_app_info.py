"""sglang_app_info: the report of SGLang applications from the objects OME's controller makes (Deployments or
LeaderWorkerSets and their pods, labelled ome.io/inferenceservice and component), scheduling failures from
FailedScheduling events, the list calls (one per kind and namespace) and the module around them. No cluster."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import k8s_client
from ansible_collections.aicluster.platform.plugins.modules import sglang_app_info as status

NS = "inference"
INSUFFICIENT = "0/4 nodes are available: 4 Insufficient huawei.com/Ascend910."


def labels(app, component, **extra):
    return {"ome.io/inferenceservice": app, "component": component, "aicluster.io/sglang-app": app, **extra}


def isvc(name, ready, reason=None, message=None, components=("engine", "decoder", "router"), url=None):
    conditions = [{"type": "EngineReady", "status": "True"},
                  {"type": "Ready", "status": "True" if ready else "False", "reason": reason, "message": message}]
    return {"apiVersion": "ome.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": NS, "labels": {"aicluster.io/sglang-app": name}},
            "spec": {c: {"minReplicas": 1} for c in components},
            "status": {"conditions": conditions, **({"url": url} if url else {})}}


def deployment(app, component, replicas, ready):
    status_ = {"readyReplicas": ready} if ready else {}
    return {"metadata": {"name": f"{app}-{component}", "namespace": NS, "labels": labels(app, component)},
            "spec": {"replicas": replicas}, "status": status_}


def lws(app, component, replicas, size, ready_groups):
    return {"metadata": {"name": f"lws-{app}-{component}", "namespace": NS, "labels": labels(app, component)},
            "spec": {"replicas": replicas, "leaderWorkerTemplate": {"size": size}},
            "status": {"readyReplicas": ready_groups}}


def pod(name, app, component, phase="Running", ready=True, node="npu-1", uid=None, waiting=None, restarts=0,
        scheduled_message=None, extra_labels=None):
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if scheduled_message:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": scheduled_message})
    container = {"name": "ome-container", "restartCount": restarts,
                 "state": {"waiting": {"reason": waiting}} if waiting else {"running": {}}}
    return {"metadata": {"name": name, "namespace": NS, "uid": uid or f"uid-{name}",
                         "labels": labels(app, component, **(extra_labels or {}))},
            "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": conditions, "containerStatuses": [container]}}


def pending(name, app, component, **kwargs):
    return pod(name, app, component, phase="Pending", ready=False, node=None, **kwargs)


def event(pod_name, message, at, uid=None, reason="FailedScheduling"):
    involved = {"kind": "Pod", "name": pod_name, "namespace": NS}
    if uid:
        involved["uid"] = uid
    return {"metadata": {"name": f"{pod_name}.{at}", "namespace": NS}, "reason": reason, "message": message,
            "involvedObject": involved, "lastTimestamp": at}


APP = {"name": "chat", "namespace": NS}


# ------------------------------------------------------------------ Deployment mode
def deployment_mode_report():
    pods = [
        pod("chat-engine-7f-aaaaa", "chat", "engine"),
        pod("chat-engine-7f-bbbbb", "chat", "engine", node="npu-2"),
        pending("chat-decoder-6d-ccccc", "chat", "decoder", uid="uid-new"),
        pod("chat-router-5c-ddddd", "chat", "router", node="cpu-1"),
    ]
    events = [
        event("chat-decoder-6d-ccccc", "0/4 nodes are available: 2 node(s) didn't match Pod's node affinity.",
              "2026-01-01T10:00:00Z", uid="uid-new"),
        event("chat-decoder-6d-ccccc", INSUFFICIENT, "2026-01-01T10:05:00Z", uid="uid-new"),
        event("chat-decoder-6d-ccccc", "an older pod of that name", "2026-01-01T11:00:00Z", uid="uid-old"),
        event("chat-engine-7f-aaaaa", "scheduled long ago, not pending", "2026-01-01T09:00:00Z"),
    ]
    deployments = [deployment("chat", "engine", 2, 2), deployment("chat", "decoder", 1, 0),
                   deployment("chat", "router", 1, 1), deployment("other", "engine", 1, 1)]
    return status.summarize([APP], [isvc("chat", False, "ComponentNotReady", "decoder not ready")], deployments, [],
                            pods, events)


def test_deployment_mode_roles_workloads_and_pods():
    report = deployment_mode_report()
    app = report["applications"][0]
    assert app["exists"] is True and app["ready"] is False and report["ready"] is False
    assert app["conditions"][1] == {"type": "Ready", "status": "False", "reason": "ComponentNotReady",
                                    "message": "decoder not ready"}
    assert list(app["roles"]) == ["engine", "decoder", "router"]
    engine = app["roles"]["engine"]
    assert engine["workloads"] == [{"kind": "Deployment", "name": "chat-engine", "desired": 2, "ready": 2,
                                    "pods_per_instance": 1}]
    assert (engine["desired_pods"], engine["ready_pods"]) == (2, 2)
    assert [(p["name"], p["node"], p["ready"]) for p in engine["pods"]] == [
        ("chat-engine-7f-aaaaa", "npu-1", True), ("chat-engine-7f-bbbbb", "npu-2", True)]
    assert engine["pods"][0]["scheduling"] == []  # not pending: its old events do not matter
    decoder = app["roles"]["decoder"]
    assert (decoder["desired_pods"], decoder["ready_pods"]) == (1, 0)
    assert decoder["pods"] == [{"name": "chat-decoder-6d-ccccc", "phase": "Pending", "ready": False, "node": None,
                                "reason": None, "restarts": 0,
                                "scheduling": ["0/4 nodes are available: 2 node(s) didn't match Pod's node affinity.",
                                               INSUFFICIENT]}]


def test_deployment_mode_summary():
    assert deployment_mode_report()["summary"] == [
        "inference/chat: not ready (Ready=False ComponentNotReady: decoder not ready)",
        "inference/chat engine: 2/2 pods ready on npu-1, npu-2 (Deployment chat-engine 2/2)",
        "inference/chat decoder: 0/1 pods ready (Deployment chat-decoder 0/1)",
        f"inference/chat decoder pod chat-decoder-6d-ccccc Pending: {INSUFFICIENT}",
        "inference/chat router: 1/1 pods ready on cpu-1 (Deployment chat-router 1/1)",
    ]


def test_scheduling_falls_back_to_the_pod_condition():
    waiting = pending("chat-decoder-6d-eeeee", "chat", "decoder", scheduled_message="pod group is not ready, 1 Pending")
    report = status.summarize([APP], [isvc("chat", False)], [deployment("chat", "decoder", 1, 0)], [], [waiting], [])
    assert report["applications"][0]["roles"]["decoder"]["pods"][0]["scheduling"] == [
        "pod group is not ready, 1 Pending"]


def test_a_crashing_pod_says_why():
    crashing = pod("chat-engine-7f-fffff", "chat", "engine", ready=False, waiting="CrashLoopBackOff", restarts=4)
    report = status.summarize([APP], [isvc("chat", False)], [deployment("chat", "engine", 1, 0)], [], [crashing], [])
    assert "inference/chat engine pod chat-engine-7f-fffff Running on npu-1 (CrashLoopBackOff, 4 restarts)" in \
        report["summary"]


# ------------------------------------------------------------------ LeaderWorkerSet mode
def test_leaderworkerset_mode_counts_instances_and_their_pods():
    leader = {"leaderworkerset.sigs.k8s.io/worker-index": "0"}
    worker = {"leaderworkerset.sigs.k8s.io/worker-index": "1"}
    pods = [pod("lws-big-engine-0", "big", "engine", extra_labels=leader),
            pod("lws-big-engine-0-1", "big", "engine", node="npu-2", extra_labels=worker),
            pod("lws-big-decoder-0", "big", "decoder", node="npu-3", extra_labels=leader),
            pod("lws-big-decoder-0-1", "big", "decoder", node="npu-4", extra_labels=worker),
            pending("lws-big-decoder-1", "big", "decoder", extra_labels=leader),
            pending("lws-big-decoder-1-1", "big", "decoder", extra_labels=worker)]
    events = [event("lws-big-decoder-1", "pod group is not ready, 2 Pending, 2 minAvailable", "2026-01-01T10:00:00Z"),
              event("lws-big-decoder-1-1", INSUFFICIENT, "2026-01-01T10:00:00Z")]
    workloads = [lws("big", "engine", 1, 2, 1), lws("big", "decoder", 2, 2, 1)]
    app = {"name": "big", "namespace": NS}
    report = status.summarize([app], [isvc("big", False, components=("engine", "decoder"))], [], workloads, pods,
                              events)
    roles = report["applications"][0]["roles"]
    assert list(roles) == ["engine", "decoder"]  # no router in this InferenceService
    assert roles["decoder"]["workloads"] == [{"kind": "LeaderWorkerSet", "name": "lws-big-decoder", "desired": 2,
                                              "ready": 1, "pods_per_instance": 2}]
    assert (roles["decoder"]["desired_pods"], roles["decoder"]["ready_pods"]) == (4, 2)
    assert (roles["engine"]["desired_pods"], roles["engine"]["ready_pods"]) == (2, 2)
    assert report["summary"][2:] == [
        "inference/big decoder: 2/4 pods ready on npu-3, npu-4 (LeaderWorkerSet lws-big-decoder 1/2 instances)",
        "inference/big decoder pod lws-big-decoder-1 Pending: pod group is not ready, 2 Pending, 2 minAvailable",
        f"inference/big decoder pod lws-big-decoder-1-1 Pending: {INSUFFICIENT}",
    ]


# ------------------------------------------------------------------ whole reports
def test_ready_and_missing_applications():
    ready = isvc("chat", True, url="http://chat.inference.example")
    report = status.summarize([APP, {"name": "gone", "namespace": NS}], [ready],
                              [deployment("chat", "engine", 1, 1)], [], [pod("chat-engine-1", "chat", "engine")], [])
    assert report["ready"] is False
    assert report["summary"][0] == "inference/chat: Ready (http://chat.inference.example)"
    assert report["summary"][-1] == "inference/gone: no InferenceService"
    gone = report["applications"][1]
    assert gone["exists"] is False and gone["roles"] == {}
    assert status.summarize([APP], [ready], [], [], [], [])["ready"] is True


def test_an_application_is_matched_by_namespace_too():
    other = dict(isvc("chat", True), metadata={"name": "chat", "namespace": "staging"})
    report = status.summarize([APP], [other], [], [], [], [])
    assert report["applications"][0]["exists"] is False


def test_kinds_the_cluster_does_not_serve_are_named():
    report = status.summarize([APP], [], [], [], [], [], missing_kinds=["InferenceService", "LeaderWorkerSet"])
    assert report["summary"][-2:] == ["InferenceService is not served by the cluster (OME not installed?)",
                                      "LeaderWorkerSet is not served by the cluster (LeaderWorkerSet not installed?)"]


def test_normalize_defaults_the_namespace_and_drops_repeats():
    assert status.normalize([{"name": "chat", "prefill": 2}, {"name": "chat", "namespace": "default"},
                             {"name": "chat", "namespace": NS}]) == [{"name": "chat", "namespace": "default"},
                                                                     {"name": "chat", "namespace": NS}]
    with pytest.raises(ValueError, match=r"applications\[0\] needs a name"):
        status.normalize([{"namespace": NS}])


# ------------------------------------------------------------------ the list calls
class FakeApi:
    """Answers list paths from a table (kind path prefix -> items); None: the kind is not served."""

    def __init__(self, served):
        self.served = served
        self.calls = []

    def get(self, path):
        self.calls.append(urllib.parse.unquote(path))
        prefix = path.split("?")[0]
        for route, items in self.served.items():
            if prefix.endswith(route):
                return None if items is None else {"items": items}
        raise AssertionError(f"unexpected path {path}")


def test_one_list_call_per_kind_and_namespace():
    api = FakeApi({"/inferenceservices": [], "/deployments": [], "/leaderworkersets": None,
                   "/pods": [pending("chat-decoder-1", "chat", "decoder")], "/events": []})
    items, missing = status.read_all(api.get, [APP, {"name": "code", "namespace": NS}])
    assert missing == ["LeaderWorkerSet"]
    assert api.calls == [
        f"/apis/ome.io/v1beta1/namespaces/{NS}/inferenceservices?labelSelector=aicluster.io/sglang-app in (chat,code)",
        f"/apis/apps/v1/namespaces/{NS}/deployments?labelSelector=ome.io/inferenceservice in (chat,code)",
        f"/apis/leaderworkerset.x-k8s.io/v1/namespaces/{NS}/leaderworkersets?labelSelector=ome.io/inferenceservice "
        "in (chat,code)",
        f"/api/v1/namespaces/{NS}/pods?labelSelector=ome.io/inferenceservice in (chat,code)",
        f"/api/v1/namespaces/{NS}/events?fieldSelector=reason=FailedScheduling,involvedObject.kind=Pod",
    ]
    assert [p["metadata"]["name"] for p in items["Pod"]] == ["chat-decoder-1"]


def test_no_event_call_without_a_pending_pod():
    api = FakeApi({"/inferenceservices": [], "/deployments": [], "/leaderworkersets": [],
                   "/pods": [pod("chat-engine-1", "chat", "engine")]})
    status.read_all(api.get, [APP, {"name": "chat", "namespace": "staging"}])
    assert len(api.calls) == 8 and not any("/events" in c for c in api.calls)  # 4 kinds x 2 namespaces


# ------------------------------------------------------------------ the module
class FakeClient:
    class configuration:  # stands for ApiClient.configuration
        host = "https://fake-apiserver:6443"


def test_module_reports_through_the_api(monkeypatch, capsys):
    served = {"/inferenceservices": [isvc("chat", True, components=("engine",))],
              "/deployments": [deployment("chat", "engine", 1, 1)],
              "/pods": [pod("chat-engine-1", "chat", "engine")]}
    paths = []

    def get_ok(api_client, path, timeout, answer=None):
        paths.append(path)
        for route, items in served.items():
            if path.split("?")[0].endswith(route):
                return 200, json.dumps({"items": items})
        raise k8s_client.StatusError(404, '{"kind": "Status", "code": 404}')

    monkeypatch.setattr(k8s_client, "connect", lambda module, timeout: FakeClient())
    monkeypatch.setattr(k8s_client, "get_ok", get_ok)
    with patch_module_args({"applications": [APP], "_ansible_check_mode": True}), pytest.raises(SystemExit) as info:
        status.main()
    result = json.loads(capsys.readouterr().out)
    assert info.value.code == 0 and result["changed"] is False and result["ready"] is True
    assert result["summary"] == ["inference/chat: Ready", "inference/chat engine: 1/1 pods ready on npu-1 (Deployment "
                                 "chat-engine 1/1)",
                                 "LeaderWorkerSet is not served by the cluster (LeaderWorkerSet not installed?)"]
    assert len(paths) == 4


def test_module_require_ready_fails_with_the_report(monkeypatch, capsys):
    def get_ok(api_client, path, timeout, answer=None):
        return 200, json.dumps({"items": []})

    monkeypatch.setattr(k8s_client, "connect", lambda module, timeout: FakeClient())
    monkeypatch.setattr(k8s_client, "get_ok", get_ok)
    with patch_module_args({"applications": [APP], "require_ready": True}), pytest.raises(SystemExit) as info:
        status.main()
    result = json.loads(capsys.readouterr().out)
    assert info.value.code == 1
    assert result["msg"] == "not ready: inference/chat (inference/chat: no InferenceService)"
    assert result["applications"][0]["exists"] is False


def test_module_names_an_api_error(monkeypatch, capsys):
    def get_ok(api_client, path, timeout, answer=None):
        raise k8s_client.StatusError(403, '{"kind": "Status", "message": "pods is forbidden", "code": 403}')

    monkeypatch.setattr(k8s_client, "connect", lambda module, timeout: FakeClient())
    monkeypatch.setattr(k8s_client, "get_ok", get_ok)
    with patch_module_args({"applications": [APP]}), pytest.raises(SystemExit) as info:
        status.main()
    result = json.loads(capsys.readouterr().out)
    assert info.value.code == 1
    assert result["msg"] == "cannot read the applications' state: HTTP 403: pods is forbidden"
