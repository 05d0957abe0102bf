# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Kubernetes client construction shared by the collection's modules.

Modules that use it run on the control host (``delegate_to: localhost`` / ``run_once``), where the
``kubernetes`` Python package is installed.  Import failures are recorded, not raised, so that a
module can call ``missing_required_lib('kubernetes')``.
"""

from __future__ import annotations

import os
import traceback

try:
    from kubernetes import client as _client
    from kubernetes import config as _config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - exercised only without the library
    _client = None
    _config = None
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()

    class ApiException(Exception):
        """Placeholder so that ``except ApiException`` works without the library."""

        status = None
        reason = None
        body = None

    class ConfigException(Exception):
        """Placeholder for kubernetes.config.ConfigException."""


# Name used by other modules of the collection (None when the import worked).
K8S_IMPORT_ERROR = KUBERNETES_IMPORT_ERROR

# Connection options shared by every module that talks to the API server; document them as
#   kubeconfig: {type: path}  and  context: {type: str}
K8S_AUTH_ARGSPEC = {
    "kubeconfig": {"type": "path"},
    "context": {"type": "str"},
}

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path


class K8sClientError(Exception):
    """Raised when no usable client configuration can be loaded."""


def default_kubeconfig():
    """First existing file of ``$K8S_AUTH_KUBECONFIG``, ``$KUBECONFIG`` (first entry),
    ``~/.kube/config``; None when there is none."""
    candidates = [os.environ.get("K8S_AUTH_KUBECONFIG")]
    if os.environ.get("KUBECONFIG"):
        candidates.append(os.environ["KUBECONFIG"].split(os.pathsep)[0])
    candidates.append("~/.kube/config")
    for candidate in candidates:
        if candidate and os.path.isfile(os.path.expanduser(candidate)):
            return os.path.expanduser(candidate)
    return None


def load_api_client(kubeconfig=None, context=None):
    """Return a ``kubernetes.client.ApiClient``.

    * ``kubeconfig`` given: load that file;
    * otherwise the first existing of ``$K8S_AUTH_KUBECONFIG``, ``$KUBECONFIG``, ``~/.kube/config``;
    * otherwise the in-cluster service account.

    ``context`` (or ``$K8S_AUTH_CONTEXT``) selects a kubeconfig context; default is the file's
    current-context.  Raises K8sClientError with a readable message on any configuration problem.
    """
    if not HAS_KUBERNETES:
        raise K8sClientError("the kubernetes Python library is not installed")
    context = context or os.environ.get("K8S_AUTH_CONTEXT") or None
    if kubeconfig:
        path = os.path.expanduser(kubeconfig)
        if not os.path.isfile(path):
            raise K8sClientError(f"kubeconfig {kubeconfig!r} does not exist")
    else:
        path = default_kubeconfig()
    if path:
        try:
            return _config.new_client_from_config(config_file=path, context=context, persist_config=False)
        except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
            raise K8sClientError(f"cannot load kubeconfig {path!r} (context {context!r}): {exc}") from exc
    if context:
        raise K8sClientError(f"context {context!r} given but no kubeconfig file found")
    if os.path.exists(SERVICE_ACCOUNT_TOKEN):
        configuration = _client.Configuration()
        try:
            _config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise K8sClientError(f"cannot load in-cluster configuration: {exc}") from exc
        return _client.ApiClient(configuration=configuration)
    raise K8sClientError(
        "no kubeconfig given, none at $K8S_AUTH_KUBECONFIG, $KUBECONFIG or ~/.kube/config, and not running in a cluster"
    )


def core_v1_api(api_client):
    """``CoreV1Api`` bound to ``api_client`` (separate so that tests can substitute a fake)."""
    return _client.CoreV1Api(api_client)


def api_error_message(exc):
    """Short text for an ApiException or any other exception."""
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status is not None:
        body = getattr(exc, "body", None)
        detail = f": {body}" if body else ""
        return f"HTTP {status} {reason or ''}".rstrip() + detail
    return str(exc) or exc.__class__.__name__


def raw_get(api_client, path, timeout=10):
    """GET a non-resource path (/readyz, /version) with the client's TLS and auth settings.

    Goes through the REST client directly: ApiClient.call_api's signature differs between
    kubernetes client generations, its REST client's request() does not.
    Returns (status, body text); a non-2xx answer raises kubernetes ApiException.
    """
    headers = {}
    for setting in api_client.configuration.auth_settings().values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[setting["key"]] = setting["value"]
    response = api_client.rest_client.request(
        "GET", api_client.configuration.host + path, headers=headers, _request_timeout=timeout
    )
    data = response.data if response.data is not None else response.read()
    return response.status, data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
