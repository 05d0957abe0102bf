#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Wait until Kubernetes objects no longer exist (read-only)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: k8s_objects_gone
short_description: Wait until a set of Kubernetes objects is gone
version_added: 0.4.0
description:
  - Polls the API server until none of the given objects exists any more, then reports how long it took.
  - Made for removals that delete many objects without waiting (M(kubernetes.core.k8s) with C(wait=false))
    and then wait once for all of them; waiting on each object in turn would add their deletion times up,
    and deleting a Namespace that is already terminating is refused by the API server (HTTP 409).
  - Each poll reads only the objects still present, one GET each, and each selector with one LIST; a kind the
    server no longer serves (its CRD was deleted) counts as gone.
  - When O(wait_timeout) runs out the module fails, naming every object still there and whether it is
    terminating (and which finalizers hold it).
  - Never changes anything; safe in check mode (it then reports without waiting).
  - Connection options are those of M(kubernetes.core.k8s_info), through kubernetes.core's client.
options:
  objects:
    description:
      - The objects, as full definitions or references (C(apiVersion), C(kind), C(metadata.name),
        C(metadata.namespace) for namespaced kinds). Other keys are ignored.
    type: list
    elements: dict
    default: []
  selectors:
    description:
      - Sets of objects by label, e.g. the pods of an application whose owner was deleted; the wait lasts
        until no object matches. Each C(api_version), C(kind), C(label_selector) and, for namespaced kinds,
        C(namespace) (empty - all namespaces).
    type: list
    elements: dict
    default: []
    suboptions:
      api_version:
        description: API version of the kind, e.g. V(v1).
        type: str
        required: true
      kind:
        description: Kind, e.g. V(Pod).
        type: str
        required: true
      namespace:
        description: Namespace (empty - all namespaces).
        type: str
        default: ""
      label_selector:
        description: Label selector, e.g. V(ome.io/inferenceservice=chat).
        type: str
        required: true
  wait_timeout:
    description: Seconds to wait for all objects to be gone.
    type: int
    default: 300
  wait_sleep:
    description: Seconds between two polls.
    type: int
    default: 1
extends_documentation_fragment:
  - aicluster.platform.k8s_read
  - kubernetes.core.k8s_auth_options
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Delete the release's objects without waiting between them
  kubernetes.core.k8s:
    state: absent
    definition: "{{ removal }}"
    wait: false

- name: Wait once until all of them are gone
  aicluster.platform.k8s_objects_gone:
    kubeconfig: /etc/aicluster/worker.kubeconfig
    objects: "{{ removal }}"
    wait_timeout: 300
"""

RETURN = r"""
remaining:
  description: Objects still present at the end (empty unless the module failed or ran in check mode).
  returned: always
  type: list
  elements: str
  sample:
    - "Namespace/mindx-dl (terminating; finalizers: kubernetes)"
    - "Pod/inference/chat-engine-7d9f-x2 (terminating; finalizers: none)"
seconds:
  description: How long the wait took.
  returned: always
  type: float
  sample: 6.2
polls:
  description: How many polls were made.
  returned: always
  type: int
  sample: 7
"""

import time

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_client

try:
    from kubernetes.dynamic import DynamicClient
    from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
except ImportError:
    # k8s_client.k8s_module fails the module with kubernetes.core's message before anything here runs.
    pass


def references(objects):
    """Distinct ``(apiVersion, kind, namespace, name)`` tuples, in the given order; raises ValueError for an
    object without apiVersion, kind or name."""
    refs = []
    for index, obj in enumerate(objects):
        metadata = obj.get("metadata") or {}
        ref = (obj.get("apiVersion"), obj.get("kind"), metadata.get("namespace") or "", metadata.get("name"))
        if not all((ref[0], ref[1], ref[3])):
            raise ValueError(f"objects[{index}] needs apiVersion, kind and metadata.name")
        if ref not in refs:
            refs.append(ref)
    return refs


def selector_refs(selectors):
    """``("selector", apiVersion, kind, namespace, label selector)`` tuples of the ``selectors`` option."""
    return [("selector", s["api_version"], s["kind"], s.get("namespace") or "", s["label_selector"])
            for s in selectors]


def describe(ref, state=None):
    kind, namespace, name = ref[1:]
    text = f"{kind}/{namespace + '/' if namespace else ''}{name}"
    if state and state.get("terminating"):
        finalizers = ", ".join(state.get("finalizers") or []) or "none"
        text += f" (terminating; finalizers: {finalizers})"
    return text


def poll_until_gone(read, refs, wait, timeout, sleep, clock=None):
    """Poll ``read(ref)`` (None when gone, else ``{terminating, finalizers}``; for a selector ref ``{object ref:
    state}`` of what matches) for the refs still present until none is (or once, without ``wait``). Returns
    ``(remaining {ref: state}, polls, timed_out)``."""
    remaining = dict.fromkeys(refs)

    def poll(left):  # each read retries within request_timeout, not within what is left
        for ref in list(remaining):
            state = read(ref)
            if not state:  # None: gone; {}: no object matches the selector
                del remaining[ref]
            else:
                remaining[ref] = state
        return remaining

    return k8s_client.poll_until(poll, lambda rest: not rest, wait, timeout, sleep, clock or time)


def main():
    module = k8s_client.k8s_module(
        argument_spec={
            "objects": {"type": "list", "elements": "dict", "default": []},
            "selectors": {"type": "list", "elements": "dict", "default": [], "options": {
                "api_version": {"type": "str", "required": True},
                "kind": {"type": "str", "required": True},
                "namespace": {"type": "str", "default": ""},
                "label_selector": {"type": "str", "required": True},
            }},
            "wait_timeout": {"type": "int", "default": 300},
            "wait_sleep": {"type": "int", "default": 1},
            "request_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    for key in ("wait_timeout", "request_timeout", "wait_sleep"):
        if params[key] < 1:
            module.fail_json(msg=f"{key} must be at least 1 second")
    try:
        refs = references(params["objects"]) + selector_refs(params["selectors"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    started = time.monotonic()
    if not refs:
        module.exit_json(changed=False, remaining=[], seconds=0.0, polls=0)
    try:
        api_client = k8s_client.connect(module, params["request_timeout"])
        dynamic = DynamicClient(api_client)

        def state_of(obj):
            metadata = obj.get("metadata") or {}
            return {"terminating": bool(metadata.get("deletionTimestamp")),
                    "finalizers": metadata.get("finalizers") or []}

        def read(ref):
            if ref[0] == "selector":
                return read_selector(*ref[1:])
            api_version, kind, namespace, name = ref
            try:
                resource = dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                return None  # the kind is no longer served: its CRD went, and its objects with it
            path = f"{api_version}/{kind} {namespace}/{name}"
            try:
                obj = k8s_client.call(api_client, "GET", path,
                                      lambda t: resource.get(name=name, namespace=namespace or None,
                                                             _request_timeout=t),
                                      params["request_timeout"]).to_dict()
            except NotFoundError:
                return None
            return state_of(obj)

        def read_selector(api_version, kind, namespace, label_selector):
            try:
                resource = dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                return None
            path = f"{api_version}/{kind} {namespace or '*'}?labelSelector={label_selector}"
            try:
                items = k8s_client.call(api_client, "LIST", path,
                                        lambda t: resource.get(namespace=namespace or None,
                                                               label_selector=label_selector, _request_timeout=t),
                                        params["request_timeout"]).to_dict().get("items") or []
            except NotFoundError:
                return {}  # the kind is no longer served (a stale discovery cache still listed it): nothing left
            return {(api_version, kind, (item.get("metadata") or {}).get("namespace") or "",
                     (item.get("metadata") or {}).get("name")): state_of(item) for item in items}

        remaining, polls, timed_out = poll_until_gone(read, refs, not module.check_mode, params["wait_timeout"],
                                                      params["wait_sleep"])
    except k8s_client.K8sError as exc:
        module.fail_json(msg=f"cannot read the objects: {exc}")
    except Exception as exc:  # ApiException (401, 403, ...), TLS errors
        module.fail_json(msg=f"cannot read the objects: {k8s_client.error_message(exc)}")
    left = []
    for ref, state in remaining.items():
        if ref[0] == "selector":
            left.extend(describe(obj_ref, obj_state) for obj_ref, obj_state in state.items())
        else:
            left.append(describe(ref, state))
    result = {"changed": False, "remaining": left, "seconds": round(time.monotonic() - started, 1),
              "polls": polls}
    if timed_out:
        module.fail_json(msg=f"still present after {params['wait_timeout']}s: {'; '.join(left)}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
