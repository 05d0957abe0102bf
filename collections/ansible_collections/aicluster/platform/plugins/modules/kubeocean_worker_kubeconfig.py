#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Build a Kubeocean worker's kubeconfig from its syncer ServiceAccount token and store it as the Secret the
Kubeocean manager reads, without the kubeconfig ever leaving the module."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kubeocean_worker_kubeconfig
short_description: Store a Kubeocean worker's kubeconfig in the manager cluster, built from the syncer's token
version_added: 0.4.0
description:
  - Reads the token Secret of the syncer ServiceAccount in the B(worker) cluster (chart C(kubeocean-worker) -
    Secret C(kubeocean-syncer) in C(kubeocean-worker)), waiting at most O(token_wait_timeout) seconds for the
    token controller to fill in C(token) and C(ca.crt) (or for the Secret to appear after the chart's install).
  - Builds the kubeconfig Kubeocean's manager reads - server O(server), the Secret's CA, the syncer's token,
    context namespace O(token_secret_namespace), as Kubeocean's C(hack/kubeconfig.sh) writes it.
  - Unless O(probe=false), checks the address with that CA and token (C(GET /version)) and fails, writing
    nothing, when it does not answer (C(the manager cannot reach <server>)), when its certificate is not one the
    worker's CA signed for that name, or when it refuses the token (the address is another cluster's API server).
    B(The probe runs from the control host), not from the manager cluster's pods, which are the ones that must
    reach the address. A success is therefore no proof (the control host may be on another network), and a
    failure may be the control host's alone - then set O(probe=false) and check from the manager's side.
  - Creates or updates the Secret O(secret_name) (key C(kubeconfig), type C(Opaque), labels
    C(app.kubernetes.io/managed-by=aicluster-kubeocean) and C(aicluster.io/kubeocean-binding=<binding>)) in
    O(secret_namespace) of the B(manager) cluster, reached through the C(manager_*) options. An existing Secret
    whose kubeconfig says the same (formatting aside) is left alone; other keys of an existing Secret are kept.
  - "Why the module writes the Secret itself instead of returning the kubeconfig: the kubeconfig holds a
    ServiceAccount token that grants what the syncer may do in the worker cluster. Returned, it would live in a
    registered variable, where any later C(debug), failed task, callback plugin or C(-vvv) run can print it and
    C(no_log) on every task that touches it is easy to forget. Here it exists only inside the module process,
    in memory: it is never returned, never written to the control host's disk (only the worker's CA certificate,
    which is no secret, goes to a temporary file for the probe's TLS check; it is created with mode 0600 and
    removed before the module ends), and the token and kubeconfig are registered as no-log values, so that an
    error text that contained them would be masked."
  - With C(--diff), the diff shows the Secret's metadata and which keys change, never a value (C(<hidden>)).
  - Supports check mode - everything is read and probed, nothing is written.
  - Two clusters, two sets of connection options. The worker is reached through kubernetes.core's options
    (O(kubeconfig), O(context), O(host), O(api_key), ... and their C(K8S_AUTH_*) environment variables); the
    manager through O(manager_kubeconfig), O(manager_context), O(manager_host), O(manager_api_key),
    O(manager_validate_certs) and O(manager_ca_cert), which have no environment variables (the C(K8S_AUTH_*)
    ones are ignored for the manager, so that they cannot point both connections at one cluster). For the same
    reason the module is not in the C(aicluster.platform.k8s) action group - module_defaults meant for the other
    modules' single cluster would silently become its worker connection.
  - Transient faults (connection errors, HTTP 5xx/429) are retried with back-off for at most O(request_timeout)
    seconds per call (O(probe_timeout) for the probe).
options:
  binding:
    description:
      - Name of the ClusterBinding (M(aicluster.platform.kubeocean_plan)'s C(bindings[].name)). Names the
        kubeconfig's cluster and context and the default O(secret_name).
    type: str
    required: true
  server:
    description:
      - The worker API server's C(https://) address as the manager cluster's pods reach it (for example its
        intranet load balancer), written into the kubeconfig. It must be a name the API server's certificate is
        valid for. Loopback and in-cluster service addresses are refused.
    type: str
    required: true
  token_secret_namespace:
    description:
      - Namespace of the syncer's ServiceAccount token Secret in the worker cluster; also the kubeconfig's context
        namespace (Kubeocean's mount namespace).
    type: str
    default: kubeocean-worker
  token_secret_name:
    description: Name of the syncer's ServiceAccount token Secret (type C(kubernetes.io/service-account-token)).
    type: str
    default: kubeocean-syncer
  token_wait_timeout:
    description: Seconds to wait for the token Secret to exist and have its C(token) and C(ca.crt).
    type: int
    default: 60
  token_wait_sleep:
    description: Seconds between two reads of the token Secret while waiting.
    type: int
    default: 2
  probe:
    description: Check from the control host that O(server) answers with the worker's CA and accepts the token.
    type: bool
    default: true
  probe_timeout:
    description: Seconds the probe may take, retries of connection errors included.
    type: int
    default: 15
  secret_namespace:
    description: Namespace of the kubeconfig Secret in the manager cluster (chart C(kubeocean)'s namespace).
    type: str
    default: kubeocean-system
  secret_name:
    description:
      - Name of the kubeconfig Secret, the ClusterBinding's C(secretRef.name); default C(<binding>-kubeconfig)
        (as M(aicluster.platform.kubeocean_plan) and Kubeocean's C(install-manager.sh) name it).
    type: str
  request_timeout:
    description: Seconds each API call may take, retries of transient faults included.
    type: int
    default: 30
  manager_kubeconfig:
    description:
      - The manager cluster's kubeconfig, a path or a dict (like O(kubeconfig)). One of O(manager_kubeconfig),
        O(manager_context) and O(manager_host) is required.
    type: raw
  manager_context:
    description: Context of O(manager_kubeconfig) (or of the default kubeconfig when that is not given).
    type: str
  manager_host:
    description: The manager's API server URL, with O(manager_api_key) instead of a kubeconfig.
    type: str
  manager_api_key:
    description: Bearer token for O(manager_host).
    type: str
  manager_validate_certs:
    description: Whether to verify the manager API server's certificate (default - the kubeconfig's setting).
    type: bool
  manager_ca_cert:
    description: CA certificate file of the manager API server.
    type: path
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Metadata and the names of changed keys only; values are shown as C(<hidden>).
requirements:
  - kubernetes (Python library) on the host that runs the module
seealso:
  - module: aicluster.platform.kubeocean_plan
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Store each worker's kubeconfig in the manager cluster (before its ClusterBinding)
  aicluster.platform.kubeocean_worker_kubeconfig:
    kubeconfig: "{{ worker_kubeconfigs[item.name] }}"  # the worker cluster
    manager_kubeconfig: /etc/aicluster/manager.kubeconfig
    binding: "{{ item.name }}"
    server: "{{ item.server }}"  # as the manager's pods reach the worker's API server
    secret_namespace: "{{ item.secret.namespace }}"
    secret_name: "{{ item.secret.name }}"
  loop: "{{ kubeocean.bindings }}"  # aicluster.platform.kubeocean_plan's result
  loop_control:
    label: "{{ item.name }}"
  delegate_to: localhost
  run_once: true

- name: Same, where the control host cannot reach the worker's intranet address
  aicluster.platform.kubeocean_worker_kubeconfig:
    context: worker-admin
    manager_context: manager-admin
    binding: gpu-west
    server: https://10.20.0.10:6443
    probe: false
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
action:
  description: What was done to the kubeconfig Secret (in check mode - what would be done).
  returned: success
  type: str
  choices: [created, updated, unchanged]
  sample: updated
secret:
  description: The kubeconfig Secret in the manager cluster (namespace and name; its content is never returned).
  returned: always
  type: dict
  sample: {namespace: kubeocean-system, name: gpu-west-kubeconfig}
token_secret:
  description: The token Secret read in the worker cluster, and how many seconds were spent waiting for its token.
  returned: always
  type: dict
  sample: {namespace: kubeocean-worker, name: kubeocean-syncer, waited: 4.0}
server:
  description: The address written into the kubeconfig.
  returned: always
  type: str
  sample: https://10.20.0.10:6443
probe:
  description:
    - The probe of O(server) from the control host - C(checked) (false with O(probe=false)), and the worker API
      server's C(version) when it answered.
  returned: success
  type: dict
  sample: {checked: true, from: control host, version: v1.30.4}
"""

import base64
import json
import os
import tempfile
import time
from contextlib import contextmanager

from ansible_collections.aicluster.platform.plugins.module_utils import (
    k8s_client,
    k8s_names,
    k8s_secrets,
    kubeocean,
    retry,
)

try:
    import kubernetes.client
except ImportError:
    # k8s_client.k8s_module fails the module with kubernetes.core's message before anything here runs.
    pass

TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"  # noqa: S105 - a Secret type
MANAGER_OPTIONS = {  # manager_* option -> the kubernetes.core option it stands for
    "manager_kubeconfig": "kubeconfig",
    "manager_context": "context",
    "manager_host": "host",
    "manager_api_key": "api_key",
    "manager_validate_certs": "validate_certs",
    "manager_ca_cert": "ca_cert",
}


class Failure(Exception):
    """One sentence about why nothing (more) is written."""


# ----------------------------------------------------------------------------------- connections
class _Connection:
    """What kubernetes.core's client factory and k8s_client.connect read of a module, for the manager: the
    ``manager_*`` options under kubernetes.core's names, every other connection option unset."""

    def __init__(self, module):
        self.params = {name: None for name in k8s_client.K8S_AUTH_ARG_SPEC}
        self.params.update({option: module.params[ours] for ours, option in MANAGER_OPTIONS.items()})
        self.requires = module.requires
        self.server_side_dry_run = False


@contextmanager
def _without_auth_environment():
    """kubernetes.core falls back to K8S_AUTH_* variables for every option not given: not for the manager."""
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith("K8S_AUTH_")}
    try:
        yield
    finally:
        os.environ.update(saved)


def connect(module, timeout, manager=False):
    """An ApiClient of the worker (kubernetes.core's options) or of the manager (the ``manager_*`` options).
    Loading a kubeconfig sets the process-wide default configuration, which kubernetes.core starts from:
    it is cleared first, so that nothing of one cluster's kubeconfig leaks into the other's connection."""
    kubernetes.client.Configuration.set_default(None)
    if not manager:
        return k8s_client.connect(module, timeout)
    with _without_auth_environment():
        return k8s_client.connect(_Connection(module), timeout)


# ----------------------------------------------------------------------------------- worker side
def wait_for_token(read, timeout, sleep, clock=None):
    """``read()`` (the token Secret or None) until it has its token and CA; returns ``(data, seconds waited)`` or
    raises Failure naming what is still missing."""
    clock = clock or time
    started = clock.monotonic()
    deadline = started + timeout
    while True:
        secret = read()
        if secret is None:
            missing = ["the token Secret does not exist (is the kubeocean-worker chart installed?)"]
        else:
            try:
                kubeocean.token_secret_parts(secret.get("data"))
                return secret["data"], round(clock.monotonic() - started, 1)
            except kubeocean.KubeoceanError as exc:
                missing = exc.problems
                if secret.get("type") != TOKEN_SECRET_TYPE:
                    missing.append(f"its type is {secret.get('type')!r}, not {TOKEN_SECRET_TYPE}: the token "
                                   "controller fills in only ServiceAccount token Secrets")
                    raise Failure("; ".join(missing)) from None
        if clock.monotonic() + sleep > deadline:
            raise Failure(f"after {timeout}s: " + "; ".join(missing))
        clock.sleep(sleep)


def probe(server, ca_data, token, timeout):
    """GET ``server``/version with the worker's CA and the syncer's token; the API server's version, or Failure."""
    configuration = kubernetes.client.Configuration()
    configuration.host = server.rstrip("/")
    configuration.api_key = {"authorization": f"Bearer {token}"}
    configuration.verify_ssl = True
    descriptor, ca_file = tempfile.mkstemp(prefix="kubeocean-ca-", suffix=".crt")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(base64.b64decode(ca_data))
        configuration.ssl_ca_cert = ca_file
        api_client = kubernetes.client.ApiClient(configuration)
        try:
            _status, body = k8s_client.call(api_client, "GET", "/version",
                                            lambda left: k8s_client.get_ok(api_client, "/version", left), timeout)
        finally:
            api_client.close()
    except k8s_client.K8sError as exc:  # connection errors until the time ran out
        raise Failure(f"the manager cannot reach {server} (probed from the control host: {exc})") from None
    except k8s_client.StatusError as exc:
        if exc.status == 401:
            raise Failure(f"{server} refuses the syncer's token (HTTP 401): it is not the API server of the worker "
                          "cluster the token comes from") from None
        raise Failure(f"{server} answered GET /version with {exc}") from None
    except Exception as exc:  # TLS: the certificate is not the worker's, or not for this name
        verify = next((c for c in retry.causes(exc) if type(c).__name__ == "SSLCertVerificationError"), None)
        if verify is not None:
            reason = getattr(verify, "verify_message", None) or str(verify)
            raise Failure(f"{server} presents a certificate the worker's CA (ca.crt of the token Secret) does not "
                          f"accept for that address ({reason}): give an address the worker API server's "
                          "certificate is valid for") from None
        raise Failure(f"the manager cannot reach {server} (probed from the control host: "
                      f"{k8s_client.error_message(exc)})") from None
    finally:
        os.remove(ca_file)
    try:
        return json.loads(body).get("gitVersion")
    except (ValueError, AttributeError):
        return None


# ----------------------------------------------------------------------------------- manager side
def desired_labels(binding):
    return {kubeocean.MANAGED_BY_LABEL: kubeocean.MANAGED_BY, kubeocean.BINDING_LABEL: binding}


def decide(existing, text, labels):
    """``(action, merge patch or None)`` for the Secret: created, updated (kubeconfig and/or labels) or unchanged.
    ``existing`` is the Secret in the manager cluster (None: there is none)."""
    if existing is None:
        return "created", None
    current = k8s_secrets.decode((existing.get("data") or {}).get(kubeocean.KUBECONFIG_KEY))
    try:
        same = current is not None and kubeocean.same_kubeconfig(current, text)
    except ValueError:
        same = False
    patch = k8s_secrets.labels_patch(existing, labels)
    if not same:
        patch["data"] = {kubeocean.KUBECONFIG_KEY: k8s_secrets.encode(text)}
    return ("updated", patch) if patch else ("unchanged", None)


def write(api_client, namespace, name, action, patch, labels, text, timeout):
    try:
        if action == "created":
            data = {kubeocean.KUBECONFIG_KEY: k8s_secrets.encode(text)}
            k8s_secrets.create(api_client, namespace, name, labels, data, timeout)
        else:
            k8s_secrets.patch(api_client, namespace, name, patch, timeout)
    except k8s_secrets.MissingNamespace:
        raise Failure(f"namespace {namespace} does not exist in the manager cluster (is the kubeocean chart "
                      "installed?)") from None


# ----------------------------------------------------------------------------------- the module
def main():
    module = k8s_client.k8s_module(
        argument_spec={
            "binding": {"type": "str", "required": True},
            "server": {"type": "str", "required": True},
            "token_secret_namespace": {"type": "str", "default": kubeocean.WORKER_NAMESPACE, "no_log": False},
            "token_secret_name": {"type": "str", "default": kubeocean.SYNCER_ACCOUNT, "no_log": False},
            "token_wait_timeout": {"type": "int", "default": 60, "no_log": False},
            "token_wait_sleep": {"type": "int", "default": 2, "no_log": False},
            "probe": {"type": "bool", "default": True},
            "probe_timeout": {"type": "int", "default": 15},
            "secret_namespace": {"type": "str", "default": kubeocean.SYSTEM_NAMESPACE, "no_log": False},
            "secret_name": {"type": "str", "no_log": False},
            "request_timeout": {"type": "int", "default": 30},
            "manager_kubeconfig": {"type": "raw", "no_log": True},
            "manager_context": {"type": "str"},
            "manager_host": {"type": "str"},
            "manager_api_key": {"type": "str", "no_log": True},
            "manager_validate_certs": {"type": "bool"},
            "manager_ca_cert": {"type": "path"},
        },
        required_one_of=[("manager_kubeconfig", "manager_context", "manager_host")],
        supports_check_mode=True,
    )
    params = module.params
    binding, server = params["binding"], params["server"]
    secret_namespace = params["secret_namespace"]
    secret_name = params["secret_name"] or f"{binding}{kubeocean.SECRET_SUFFIX}"
    token_secret = {"namespace": params["token_secret_namespace"], "name": params["token_secret_name"]}
    result = {"changed": False, "secret": {"namespace": secret_namespace, "name": secret_name},
              "token_secret": dict(token_secret), "server": server}

    problems = kubeocean.server_problems(server)
    problems += [f"binding: {p}" for p in k8s_names.validate_dns1123_label(binding, "name")]
    problems += [f"secret_name: {p}" for p in k8s_names.validate_dns1123_subdomain(secret_name)]
    for key in ("request_timeout", "probe_timeout", "token_wait_sleep"):
        if params[key] < 1:
            problems.append(f"{key} must be at least 1 second")
    if params["token_wait_timeout"] < 0:
        problems.append("token_wait_timeout must not be negative")
    if problems:
        module.fail_json(msg="; ".join(problems), **result)

    timeout = params["request_timeout"]
    stage = f"reading the token Secret {token_secret['namespace']}/{token_secret['name']} in the worker cluster"
    try:
        worker = connect(module, timeout)
        data, waited = wait_for_token(
            lambda: k8s_secrets.read(worker, token_secret["namespace"], token_secret["name"], timeout),
            params["token_wait_timeout"], params["token_wait_sleep"])
        result["token_secret"]["waited"] = waited
        ca_data, token = kubeocean.token_secret_parts(data)
        text = kubeocean.worker_kubeconfig(data, server, binding, token_secret["namespace"])
        encoded = k8s_secrets.encode(text)
        # Masked wherever they would appear in the module's output (error texts included).
        module._module.no_log_values.update({token, text, encoded, data["token"]})

        stage = f"probing {server}"
        result["probe"] = {"checked": False}
        if params["probe"]:
            version = probe(server, ca_data, token, params["probe_timeout"])
            result["probe"] = {"checked": True, "from": "control host", "version": version}

        stage = f"writing Secret {secret_namespace}/{secret_name} in the manager cluster"
        manager = connect(module, timeout, manager=True)
        if manager.configuration.host == worker.configuration.host:
            module.warn(f"the worker and the manager connections reach the same API server "
                        f"({worker.configuration.host})")
        existing = k8s_secrets.read(manager, secret_namespace, secret_name, timeout)
        labels = desired_labels(binding)
        action, patch = decide(existing, text, labels)
        result["action"] = action
        result["changed"] = action != "unchanged"
        if module._diff:
            changed_keys = [kubeocean.KUBECONFIG_KEY] if action == "created" or (patch or {}).get("data") else []
            keys = set((existing or {}).get("data") or {}) | {kubeocean.KUBECONFIG_KEY}
            result["diff"] = k8s_secrets.diff(existing, secret_namespace, secret_name, labels, keys, changed_keys,
                                              "manager cluster")
        if result["changed"] and not module.check_mode:
            write(manager, secret_namespace, secret_name, action, patch, labels, text, timeout)
    except Failure as exc:
        module.fail_json(msg=f"{stage}: {exc}", **result)
    except kubeocean.KubeoceanError as exc:
        module.fail_json(msg=f"{stage}: " + "; ".join(exc.problems), **result)
    except k8s_client.K8sError as exc:
        module.fail_json(msg=f"{stage}: {exc}", **result)
    except Exception as exc:  # ApiException (401, 403, ...), TLS errors
        module.fail_json(msg=f"{stage}: {k8s_client.error_message(exc)}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
