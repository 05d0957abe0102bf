# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Kubernetes access for the collection's modules, built on kubernetes.core.

kubernetes.core provides the module class (``AnsibleK8SModule``: it reports a missing
``kubernetes`` library), the connection options (``AUTH_ARG_SPEC``: kubeconfig, context, host,
api_key, validate_certs, ca_cert, proxy, ... and their ``K8S_AUTH_*`` environment variables) and the
client factory (``get_api_client``: kubeconfig, in-cluster configuration, impersonation). What is
ours: retries of transient faults around the set-up and every call (module_utils ``retry``), GETs
of non-resource paths (``/readyz``, ``/version``), short error texts and the poll loop of the modules
that wait (``poll_until``).

Modules that use it run on the control host (``delegate_to: localhost`` / ``run_once``).
"""

from __future__ import annotations

import json
import time

from ansible_collections.aicluster.platform.plugins.module_utils import retry
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

try:
    from kubernetes.client import Configuration, CoreV1Api
    from kubernetes.client.exceptions import ApiException
except ImportError:
    # AnsibleK8SModule fails the module with kubernetes.core's message before anything here runs.
    pass

# kubernetes.core's connection options, documented by its doc fragment kubernetes.core.k8s_auth_options.
K8S_AUTH_ARG_SPEC = AUTH_ARG_SPEC


class K8sError(Exception):
    """One sentence about what went wrong talking to the API server."""


class StatusError(Exception):
    """A non-2xx answer to a GET of a non-resource path."""

    def __init__(self, status, body):
        self.status = status
        self.body = body
        super().__init__(f"HTTP {status}: {body.strip()[:200]}")


def k8s_module(argument_spec, **kwargs):
    """An AnsibleK8SModule whose argument spec has kubernetes.core's connection options added."""
    return AnsibleK8SModule(argument_spec={**K8S_AUTH_ARG_SPEC, **argument_spec}, **kwargs)


def is_transient(exc):
    """Connection errors, and HTTP 5xx/429 answers (ApiException, kubernetes.dynamic errors, StatusError)."""
    status = getattr(exc, "status", None)
    if status is not None:
        return retry.transient_status(status)
    return retry.transient_os_error(exc)


def retry_after(exc):
    headers = getattr(exc, "headers", None) or {}
    try:
        return retry.parse_retry_after(headers.get("Retry-After"))
    except AttributeError:
        return None


def error_message(exc):
    """Short text for an ApiException, a connection error or any other exception."""
    status = getattr(exc, "status", None)
    if status:
        body = getattr(exc, "body", None)
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        try:
            detail = json.loads(body).get("message") or body
        except (TypeError, ValueError, AttributeError):
            detail = body
        text = f"HTTP {status} {getattr(exc, 'reason', None) or ''}".rstrip()
        return f"{text}: {' '.join(str(detail).split())[:300]}" if detail else text
    for cause in retry.causes(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return f"[Errno {cause.errno}] {cause.strerror}" if cause.errno else cause.strerror
    return retry.describe(exc)


def _server_of(exc, module):
    """The API server a failed set-up was talking to: the urllib3 connection pool of the error, else the
    O(host) option, else the server of the kubeconfig that kubernetes.core loaded."""
    for cause in retry.causes(exc):
        pool = getattr(cause, "pool", None)
        if pool is not None and getattr(pool, "host", None):
            return f"{getattr(pool, 'scheme', 'https')}://{pool.host}:{pool.port}"
    if module.params.get("host"):
        return module.params["host"]
    try:
        return Configuration.get_default_copy().host
    except Exception:  # no kubernetes library, no configuration loaded
        return "the Kubernetes API server"


def connect(module, timeout):
    """The ``kubernetes.client.ApiClient`` that kubernetes.core's ``get_api_client`` builds from the module's
    connection options.

    The factory already talks to the server (version and API discovery, unless cached) and takes no
    timeout, so each attempt is bounded by what is left of ``timeout`` and transient faults are
    retried like every other call. Raises K8sError.
    """
    def attempt(left):
        return retry.bounded(lambda: get_api_client(module=module), left).client.client

    try:
        return retry.call(attempt, endpoint=lambda exc: f"connecting to {_server_of(exc, module)}", timeout=timeout,
                          is_transient=is_transient, retry_after=retry_after, describe_error=error_message)
    except retry.RetryTimeout as exc:
        raise K8sError(str(exc)) from None
    except CoreException as exc:
        raise K8sError(str(exc)) from None
    except Exception as exc:  # configuration errors of every kind (file, context, TLS material, host)
        raise K8sError(f"cannot set up the Kubernetes client: {error_message(exc)}") from None


def call(api_client, method, path, func, timeout):
    """``func(request_timeout)`` retried on transient faults within ``timeout`` seconds.

    ``method`` and ``path`` name the call in the error raised when the time is up (K8sError, with the
    server's URL and the last error). Other errors propagate unchanged.
    """
    endpoint = f"{method} {api_client.configuration.host}{path}"
    try:
        return retry.call(func, endpoint=endpoint, timeout=timeout, is_transient=is_transient,
                          retry_after=retry_after, describe_error=error_message)
    except retry.RetryTimeout as exc:
        raise K8sError(str(exc)) from None


def list_items(api_client, path, func, timeout):
    """The items of a LIST, raw JSON (no model objects: cheap for thousands): ``func(**kwargs)`` is the
    kubernetes client's list call, made with ``_preload_content=False`` and retried by :func:`call`; ``path``
    names it in errors."""
    response = call(api_client, "GET", path, lambda t: func(_request_timeout=t, _preload_content=False), timeout)
    return json.loads(response.data).get("items") or []


def core_v1_api(api_client):
    """``CoreV1Api`` bound to ``api_client``."""
    return CoreV1Api(api_client)


def raw_get(api_client, path, timeout):
    """GET a non-resource path (``/readyz``, ``/version``) with the client's TLS, auth and default headers.

    Goes through the REST client: ApiClient.call_api's signature differs between kubernetes client
    generations, its REST client's request() does not. Returns (status, body text) for any HTTP answer.
    """
    headers = dict(api_client.default_headers)
    for setting in api_client.configuration.auth_settings().values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[setting["key"]] = setting["value"]
    try:
        response = api_client.rest_client.request(
            "GET", api_client.configuration.host + path, headers=headers, _request_timeout=timeout
        )
    except ApiException as exc:
        if not exc.status:  # TLS and other client-side failures
            raise
        return exc.status, _text(exc.body)  # clients before v29 raise non-2xx answers
    data = response.data if response.data is not None else response.read()
    return response.status, _text(data)


def _text(data):
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


def get_ok(api_client, path, timeout, answer=None):
    """``raw_get`` for calls that want a 2xx: a transient answer raises StatusError (retried by ``call``),
    any other non-2xx too (not retried). ``answer(status, body)`` may accept more (e.g. /readyz's 500)."""
    status, body = raw_get(api_client, path, timeout)
    if 200 <= status <= 299 or (answer is not None and answer(status, body)):
        return status, body
    raise StatusError(status, body)


def poll_until(poll, done, wait, timeout, sleep, clock=None):
    """Call ``poll(left)`` until ``done(result)`` is true (or once, without ``wait``), ``sleep`` seconds apart.

    ``left`` is what is left of ``timeout`` (at least 1 second), for a ``poll`` that retries transient faults
    (``call``) within it. The wait times out when one more sleep would pass the deadline. ``clock`` (default:
    the ``time`` module) has ``monotonic()`` and ``sleep()``. Returns ``(last result, polls, timed_out)``.
    """
    clock = clock or time
    deadline = clock.monotonic() + timeout
    polls = 0
    while True:
        result = poll(max(1.0, deadline - clock.monotonic()))
        polls += 1
        if not wait or done(result):
            return result, polls, False
        if clock.monotonic() + sleep > deadline:
            return result, polls, True
        clock.sleep(sleep)
