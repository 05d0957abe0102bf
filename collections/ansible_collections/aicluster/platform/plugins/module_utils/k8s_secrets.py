# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Secrets written by the collection's modules themselves, so that their values never leave the module: read,
compare, create or merge-patch, and show in a diff with every value hidden. Used by
kubeocean_worker_kubeconfig and serve_auth_secret."""

from __future__ import annotations

import base64
import json

from ansible_collections.aicluster.platform.plugins.module_utils import k8s_client

try:
    import kubernetes.client
    from kubernetes.client.exceptions import ApiException
except ImportError:
    # k8s_client.k8s_module fails the module with kubernetes.core's message before anything here runs.
    pass

MERGE_PATCH = "application/merge-patch+json"
HIDDEN = "<hidden>"


class MissingNamespace(Exception):
    """The Secret's namespace does not exist (the caller says which component should have made it)."""


def encode(text):
    """A Secret data value of ``text``."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def decode(value):
    """The text of a Secret data value (None when absent or not UTF-8)."""
    if value is None:
        return None
    try:
        return base64.b64decode(value).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def read(api_client, namespace, name, timeout):
    """The Secret as a dict, or None when there is none."""
    core = k8s_client.core_v1_api(api_client)
    try:
        response = k8s_client.call(
            api_client, "GET", f"/api/v1/namespaces/{namespace}/secrets/{name}",
            lambda left: core.read_namespaced_secret(name, namespace, _request_timeout=left, _preload_content=False),
            timeout)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return json.loads(response.data)


def labels_patch(existing, labels):
    """The metadata part of a merge patch that sets ``labels`` ({} when they are already there)."""
    have = ((existing or {}).get("metadata") or {}).get("labels") or {}
    return {"metadata": {"labels": labels}} if any(have.get(k) != v for k, v in labels.items()) else {}


def shown(secret, changed_keys=()):
    """The Secret as a diff shows it: metadata and keys, every value hidden ({} for none)."""
    if secret is None:
        return {}
    metadata = secret.get("metadata") or {}
    keys = sorted(set(secret.get("data") or {}) | set(changed_keys))
    return {
        "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace"),
                     "labels": dict(sorted((metadata.get("labels") or {}).items()))},
        "type": secret.get("type") or "Opaque",
        "data": {key: f"{HIDDEN} (changed)" if key in changed_keys else HIDDEN for key in keys},
    }


def diff(existing, namespace, name, labels, data_after_keys, changed_keys, where):
    """The module's ``diff`` for a Secret going from ``existing`` to the given keys and labels, values hidden."""
    after = {"metadata": {"name": name, "namespace": namespace,
                          "labels": {**(((existing or {}).get("metadata") or {}).get("labels") or {}), **labels}},
             "type": (existing or {}).get("type") or "Opaque",
             "data": dict.fromkeys(data_after_keys, "")}
    header = f"Secret {namespace}/{name} ({where})"
    return {"before_header": header, "after_header": header, "before": shown(existing),
            "after": shown(after, changed_keys)}


def create(api_client, namespace, name, labels, data, timeout):
    """POST a new Opaque Secret; MissingNamespace when its namespace does not exist."""
    core = k8s_client.core_v1_api(api_client)
    body = kubernetes.client.V1Secret(
        api_version="v1", kind="Secret", type="Opaque",
        metadata=kubernetes.client.V1ObjectMeta(name=name, namespace=namespace, labels=labels), data=data)
    try:
        k8s_client.call(api_client, "POST", f"/api/v1/namespaces/{namespace}/secrets",
                        lambda left: core.create_namespaced_secret(namespace, body, _request_timeout=left,
                                                                   _preload_content=False), timeout)
    except ApiException as exc:
        if exc.status == 404:
            raise MissingNamespace(namespace) from None
        raise


def patch(api_client, namespace, name, merge_patch, timeout):
    """Merge-PATCH a Secret (a null data value removes that key)."""
    core = k8s_client.core_v1_api(api_client)
    k8s_client.call(api_client, "PATCH", f"/api/v1/namespaces/{namespace}/secrets/{name}",
                    lambda left: core.patch_namespaced_secret(name, namespace, merge_patch, _content_type=MERGE_PATCH,
                                                              _request_timeout=left, _preload_content=False),
                    timeout)
