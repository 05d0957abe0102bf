#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Report SGLang applications' state in the cluster: InferenceService, workloads and pods per role, and why
pending pods are not scheduled (read-only, one list call per kind and namespace)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sglang_app_info
short_description: Report SGLang applications' InferenceServices, workloads, pods and scheduling failures
version_added: 0.4.0
description:
  - For each application (an OME InferenceService of that name in its namespace, as M(aicluster.platform.sglang_plan)
    generates) reports the InferenceService's conditions and readiness and, per role (C(engine) = prefill,
    C(decoder) = decode, C(router)), its workloads (Deployments, or LeaderWorkerSets for multi-node instances)
    with their desired and ready counts, and its pods with phase, readiness and node.
  - For pods that are C(Pending) it adds the messages of their C(FailedScheduling) events (Volcano's or the
    default scheduler's), or the C(PodScheduled) condition's message when there is no event.
  - One list call per kind and namespace with a label selector - InferenceServices by C(aicluster.io/sglang-app),
    Deployments, LeaderWorkerSets and Pods by OME's C(ome.io/inferenceservice); events by the field selector
    C(reason=FailedScheduling), only where a pod is pending. No per-pod calls. A kind the cluster does not serve
    (OME or LeaderWorkerSet not installed) counts as none and is named in RV(summary).
  - Never changes anything; safe in check mode.
  - Connection errors and HTTP 5xx/429 answers are retried with exponential back-off for at most
    O(request_timeout) seconds per call; then the module fails naming the URL and the last error.
  - Connection options are those of M(kubernetes.core.k8s_info), through kubernetes.core's client.
options:
  applications:
    description:
      - The applications to report on, each C(name) and optional C(namespace) (default V(default)); other keys
        (the inventory's application settings) are ignored.
    type: list
    elements: dict
    required: true
  require_ready:
    description: Fail (with the full report) unless every application's InferenceService exists and is Ready.
    type: bool
    default: false
extends_documentation_fragment:
  - aicluster.platform.k8s_read
  - kubernetes.core.k8s_auth_options
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Report the SGLang applications
  aicluster.platform.sglang_app_info:
    kubeconfig: /etc/aicluster/worker.kubeconfig
    applications: "{{ sglang_applications }}"  # only name and namespace are read
  delegate_to: localhost
  run_once: true
  register: sglang_status

- name: Show what is not running yet
  ansible.builtin.debug:
    var: sglang_status.summary
"""

RETURN = r"""
applications:
  description: Per application, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Application (InferenceService) name.
      type: str
    namespace:
      description: Its namespace.
      type: str
    exists:
      description: Whether the InferenceService exists.
      type: bool
    ready:
      description: Whether its C(Ready) condition is C(True).
      type: bool
    url:
      description: The InferenceService's C(status.url), if any.
      type: str
    conditions:
      description: Its conditions (C(type), C(status), C(reason), C(message)).
      type: list
      elements: dict
    roles:
      description:
        - Per role (C(engine), C(decoder), C(router)) present in the InferenceService or found in the cluster -
          C(workloads) (C(kind), C(name), C(desired), C(ready) - replicas of a Deployment, instances of a
          LeaderWorkerSet - and C(pods_per_instance)), C(desired_pods), C(ready_pods), C(pods) (C(name), C(phase),
          C(ready), C(node), C(reason), C(restarts), C(scheduling) - the messages that say why a pending pod is
          not scheduled).
      type: dict
  sample:
    - name: chat
      namespace: inference
      exists: true
      ready: false
      url: null
      conditions: [{type: Ready, status: "False", reason: ComponentNotReady, message: decoder not ready}]
      roles:
        decoder:
          workloads: [{kind: Deployment, name: chat-decoder, desired: 1, ready: 0, pods_per_instance: 1}]
          desired_pods: 1
          ready_pods: 0
          pods:
            - name: chat-decoder-6d9f-abcde
              phase: Pending
              ready: false
              node: null
              reason: null
              restarts: 0
              scheduling: ["0/4 nodes are available: 4 Insufficient huawei.com/Ascend910."]
summary:
  description: One line per application, per role and per pod that is not ready, and per kind the cluster does not
    serve.
  returned: always
  type: list
  elements: str
  sample:
    - "inference/chat: not ready (Ready=False ComponentNotReady: decoder not ready)"
    - "inference/chat engine: 2/2 pods ready on npu-a2-01, npu-a2-02 (Deployment chat-engine 2/2)"
    - "inference/chat decoder: 0/1 pods ready (Deployment chat-decoder 0/1)"
    - "inference/chat decoder pod chat-decoder-6d9f-abcde Pending: 0/4 nodes are available: 4 Insufficient
      huawei.com/Ascend910."
ready:
  description: Whether every application's InferenceService exists and is Ready.
  returned: always
  type: bool
"""

import json
from urllib.parse import quote, urlencode

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_client, sglang

ROLE_ORDER = ("engine", "decoder", "router")

# kind -> (list path in a namespace, label key of the selector)
KINDS = {
    "InferenceService": ("/apis/ome.io/v1beta1/namespaces/{namespace}/inferenceservices", sglang.APP_LABEL),
    "Deployment": ("/apis/apps/v1/namespaces/{namespace}/deployments", sglang.ISVC_LABEL),
    "LeaderWorkerSet": ("/apis/leaderworkerset.x-k8s.io/v1/namespaces/{namespace}/leaderworkersets",
                        sglang.ISVC_LABEL),
    "Pod": ("/api/v1/namespaces/{namespace}/pods", sglang.ISVC_LABEL),
}
EVENTS_PATH = "/api/v1/namespaces/{namespace}/events"
EVENTS_SELECTOR = "reason=FailedScheduling,involvedObject.kind=Pod"


# ----------------------------------------------------------------------------------- pure summary
def _meta(obj):
    return obj.get("metadata") or {}


def _labels(obj):
    return _meta(obj).get("labels") or {}


def _condition(obj, kind):
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def pod_ready(pod):
    condition = _condition(pod, "Ready")
    return bool(condition and condition.get("status") == "True")


def _pod_reason(pod):
    """Why a pod is not running well: a container's waiting reason (CrashLoopBackOff, ImagePullBackOff, ...), a
    terminated container's reason, or the pod's own reason (Evicted)."""
    status = pod.get("status") or {}
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        state = container.get("state") or {}
        for key in ("waiting", "terminated"):
            reason = (state.get(key) or {}).get("reason")
            if reason and reason != "Completed":
                return reason
    if _meta(pod).get("deletionTimestamp"):
        return "Terminating"
    return status.get("reason")


def _restarts(pod):
    return sum(int(c.get("restartCount") or 0) for c in (pod.get("status") or {}).get("containerStatuses") or [])


def _event_time(event):
    return str(event.get("lastTimestamp") or event.get("eventTime") or _meta(event).get("creationTimestamp") or "")


def scheduling_messages(pod, events):
    """The distinct FailedScheduling messages of this pod (this incarnation: same uid when both say), oldest
    first; else the PodScheduled=False condition's message; else nothing."""
    meta = _meta(pod)
    mine = []
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("kind", "Pod") != "Pod" or involved.get("name") != meta.get("name"):
            continue
        if involved.get("namespace") and meta.get("namespace") and involved["namespace"] != meta["namespace"]:
            continue
        if involved.get("uid") and meta.get("uid") and involved["uid"] != meta["uid"]:
            continue
        if event.get("reason", "FailedScheduling") != "FailedScheduling":
            continue
        mine.append(event)
    messages = []
    for event in sorted(mine, key=_event_time):
        text = " ".join(str(event.get("message") or "").split())
        if text in messages:
            messages.remove(text)
        if text:
            messages.append(text)
    if messages:
        return messages
    condition = _condition(pod, "PodScheduled")
    if condition and condition.get("status") == "False" and condition.get("message"):
        return [" ".join(str(condition["message"]).split())]
    return []


def pod_state(pod, events):
    phase = (pod.get("status") or {}).get("phase") or "Unknown"
    state = {
        "name": _meta(pod).get("name"),
        "phase": phase,
        "ready": pod_ready(pod),
        "node": (pod.get("spec") or {}).get("nodeName") or None,
        "reason": _pod_reason(pod),
        "restarts": _restarts(pod),
        "scheduling": [],
    }
    if phase == "Pending" and not state["node"]:
        state["scheduling"] = scheduling_messages(pod, events)
    return state


def workload_state(kind, obj):
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    desired = spec.get("replicas")
    desired = 1 if desired is None else int(desired)
    size = 1
    if kind == "LeaderWorkerSet":
        size = int(((spec.get("leaderWorkerTemplate") or {}).get("size")) or 1)
    return {"kind": kind, "name": _meta(obj).get("name"), "desired": desired,
            "ready": int(status.get("readyReplicas") or 0), "pods_per_instance": size}


def _belongs(obj, app):
    return (_labels(obj).get(sglang.ISVC_LABEL) == app["name"]
            and (_meta(obj).get("namespace") in (None, app["namespace"])))


def application_state(app, isvc, deployments, leaderworkersets, pods, events):
    """The report of one application from the objects listed in its namespace."""
    state = {"name": app["name"], "namespace": app["namespace"], "exists": isvc is not None, "ready": False,
             "url": None, "conditions": [], "roles": {}}
    roles = []
    if isvc is not None:
        status = isvc.get("status") or {}
        state["url"] = status.get("url") or None
        state["conditions"] = [{"type": c.get("type"), "status": c.get("status"), "reason": c.get("reason"),
                                "message": c.get("message")} for c in status.get("conditions") or []]
        ready = _condition(isvc, "Ready")
        state["ready"] = bool(ready and ready.get("status") == "True")
        roles = [r for r in ROLE_ORDER if (isvc.get("spec") or {}).get(r) is not None]
    workloads = [("Deployment", d) for d in deployments if _belongs(d, app)]
    workloads += [("LeaderWorkerSet", w) for w in leaderworkersets if _belongs(w, app)]
    mine = [p for p in pods if _belongs(p, app)]
    found = [obj for _kind, obj in workloads] + mine
    for role in ROLE_ORDER:
        if role not in roles and any(_labels(obj).get(sglang.COMPONENT_LABEL) == role for obj in found):
            roles.append(role)
    for role in sorted(roles, key=ROLE_ORDER.index):
        role_workloads = sorted((workload_state(k, o) for k, o in workloads
                                 if _labels(o).get(sglang.COMPONENT_LABEL) == role), key=lambda w: w["name"] or "")
        role_pods = sorted((pod_state(p, events) for p in mine if _labels(p).get(sglang.COMPONENT_LABEL) == role),
                           key=lambda p: p["name"] or "")
        state["roles"][role] = {
            "workloads": role_workloads,
            "desired_pods": sum(w["desired"] * w["pods_per_instance"] for w in role_workloads),
            "ready_pods": sum(1 for p in role_pods if p["ready"] and p["reason"] != "Terminating"),
            "pods": role_pods,
        }
    return state


def _describe_workload(workload):
    unit = "" if workload["kind"] == "Deployment" else " instances"
    return f"{workload['kind']} {workload['name']} {workload['ready']}/{workload['desired']}{unit}"


def summary_lines(state):
    where = f"{state['namespace']}/{state['name']}"
    if not state["exists"]:
        lines = [f"{where}: no InferenceService"]
    elif state["ready"]:
        lines = [f"{where}: Ready" + (f" ({state['url']})" if state["url"] else "")]
    else:
        ready = next((c for c in state["conditions"] if c["type"] == "Ready"), None)
        if ready is None:
            lines = [f"{where}: not ready (no Ready condition yet)"]
        else:
            detail = ": ".join(str(x) for x in (ready.get("reason"), ready.get("message")) if x)
            lines = [f"{where}: not ready (Ready={ready.get('status')}{' ' + detail if detail else ''})"]
    for role, info in state["roles"].items():
        workloads = ", ".join(_describe_workload(w) for w in info["workloads"]) or "no workload yet"
        nodes = sorted({pod["node"] for pod in info["pods"] if pod["node"]})
        on = f" on {', '.join(nodes)}" if nodes else ""
        lines.append(f"{where} {role}: {info['ready_pods']}/{info['desired_pods']} pods ready{on} ({workloads})")
        for pod in info["pods"]:
            if pod["ready"]:
                continue
            text = f"{where} {role} pod {pod['name']} {pod['phase']}"
            if pod["node"]:
                text += f" on {pod['node']}"
            if pod["reason"]:
                text += f" ({pod['reason']}"
                text += f", {pod['restarts']} restarts)" if pod["restarts"] else ")"
            if pod["scheduling"]:
                text += ": " + pod["scheduling"][-1]
            lines.append(text)
    return lines


def summarize(applications, isvcs, deployments, leaderworkersets, pods, events, missing_kinds=()):
    """The whole report from what the list calls returned (items of every namespace together).

    ``applications``: ``[{name, namespace}]``; ``missing_kinds``: kinds the cluster does not serve.
    Returns ``{applications, summary, ready}``."""
    states, summary = [], []
    for app in applications:
        isvc = next((i for i in isvcs if _meta(i).get("name") == app["name"]
                     and _meta(i).get("namespace") in (None, app["namespace"])), None)
        state = application_state(app, isvc, deployments, leaderworkersets, pods, events)
        states.append(state)
        summary += summary_lines(state)
    for kind in missing_kinds:
        summary.append(f"{kind} is not served by the cluster ({'OME' if kind == 'InferenceService' else kind} "
                       "not installed?)")
    return {"applications": states, "summary": summary, "ready": all(s["exists"] and s["ready"] for s in states)}


def normalize(applications):
    """``[{name, namespace}]`` from the option (namespace defaults to default); raises ValueError."""
    apps = []
    for index, app in enumerate(applications):
        name, namespace = app.get("name"), app.get("namespace") or sglang.DEFAULT_NAMESPACE
        if not isinstance(name, str) or not name or not isinstance(namespace, str):
            raise ValueError(f"applications[{index}] needs a name (and a namespace, if any, as a string)")
        if {"name": name, "namespace": namespace} not in apps:
            apps.append({"name": name, "namespace": namespace})
    return apps


# ----------------------------------------------------------------------------------- cluster
def selector(key, values):
    return f"{key} in ({','.join(sorted(values))})"


def read_namespace(get, namespace, names):
    """List every kind in one namespace (one call each; events only when a pod is pending).

    ``get(path)`` returns the parsed list answer, or None when the kind is not served (404). Returns
    ``(items per kind, kinds not served)``."""
    items, missing = {}, []
    for kind, (path, label) in KINDS.items():
        query = urlencode({"labelSelector": selector(label, names)}, quote_via=quote)
        answer = get(path.format(namespace=namespace) + "?" + query)
        if answer is None:
            missing.append(kind)
        items[kind] = (answer or {}).get("items") or []
    pending = [p for p in items["Pod"] if (p.get("status") or {}).get("phase") == "Pending"]
    items["Event"] = []
    if pending:
        query = urlencode({"fieldSelector": EVENTS_SELECTOR}, quote_via=quote)
        items["Event"] = (get(EVENTS_PATH.format(namespace=namespace) + "?" + query) or {}).get("items") or []
    return items, missing


def read_all(get, apps):
    """Items of every kind over the applications' namespaces, and the kinds the cluster does not serve."""
    by_namespace = {}
    for app in apps:
        by_namespace.setdefault(app["namespace"], []).append(app["name"])
    items = {kind: [] for kind in (*KINDS, "Event")}
    missing = []
    for namespace, names in by_namespace.items():
        found, not_served = read_namespace(get, namespace, names)
        for kind, listed in found.items():
            for obj in listed:
                obj.setdefault("metadata", {}).setdefault("namespace", namespace)
            items[kind] += listed
        missing += [k for k in not_served if k not in missing]
    return items, missing


def main():
    module = k8s_client.k8s_module(
        argument_spec={
            "applications": {"type": "list", "elements": "dict", "required": True},
            "require_ready": {"type": "bool", "default": False},
            "request_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["request_timeout"] < 1:
        module.fail_json(msg="request_timeout must be at least 1 second")
    try:
        apps = normalize(params["applications"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if not apps:
        module.exit_json(changed=False, applications=[], summary=[], ready=True)
    timeout = params["request_timeout"]
    try:
        api_client = k8s_client.connect(module, timeout)

        def get(path):
            try:
                body = k8s_client.call(api_client, "GET", path,
                                       lambda left: k8s_client.get_ok(api_client, path, left), timeout)[1]
            except k8s_client.StatusError as exc:
                if exc.status == 404:
                    return None  # the kind is not served: its CRD is not installed
                raise
            return json.loads(body)

        items, missing = read_all(get, apps)
    except k8s_client.K8sError as exc:
        module.fail_json(msg=f"cannot read the applications' state: {exc}")
    except Exception as exc:  # ApiException, StatusError (401, 403, ...), TLS errors, answers that are not JSON
        module.fail_json(msg=f"cannot read the applications' state: {k8s_client.error_message(exc)}")
    result = summarize(apps, items["InferenceService"], items["Deployment"], items["LeaderWorkerSet"],
                       items["Pod"], items["Event"], missing)
    if params["require_ready"] and not result["ready"]:
        not_ready = [f"{s['namespace']}/{s['name']}" for s in result["applications"]
                     if not (s["exists"] and s["ready"])]
        module.fail_json(msg=f"not ready: {', '.join(not_ready)} ({'; '.join(result['summary'])})", changed=False,
                         **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
