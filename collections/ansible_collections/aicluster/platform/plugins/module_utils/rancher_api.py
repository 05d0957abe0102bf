# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""A small client for Rancher's v3 (norman) API, shared by the collection's Rancher modules.

HTTP goes through ``ansible.module_utils.urls`` (proxies from the environment, timeouts, TLS
settings). Trust model (Rancher's own): when a CA checksum is given, ``/cacerts`` is fetched
without verification, its sha256 must equal the checksum, and from then on every API call
verifies the server against exactly that CA (pinned: an SSL context holding only that PEM, not
the system store). Without a checksum the system trust store (or ``ca_path``) is used, unless
``validate_certs`` is false.

Every call is retried on connection errors and HTTP 5xx/429 answers within ``timeout`` seconds
(module_utils ``retry``). A mismatch, a rejected token, an unknown cluster, an unreachable server
and a server that keeps failing each raise ``RancherError`` with one clear sentence.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import shlex
import ssl
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlsplit

from ansible.module_utils.urls import Request
from ansible_collections.aicluster.platform.plugins.module_utils import k8s_names, retry

# Connection options shared by every Rancher module; documented by the doc fragment aicluster.platform.rancher.
RANCHER_AUTH_ARGSPEC = {
    "url": {"type": "str", "required": True},
    "api_token": {"type": "str", "required": True, "no_log": True},
    "ca_checksum": {"type": "str", "default": ""},
    "ca_path": {"type": "path"},
    "validate_certs": {"type": "bool", "default": True},
    "timeout": {"type": "int", "default": 30},
}

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
RKE2_PROVIDERS = ("rke2", "k3s")
RKE1_PROVIDERS = ("rke",)
AGENT_IMAGE_RE = re.compile(r"^([^\s/]+/)*rancher/rancher-agent(:[\w.\-]+)?$")
TOKEN_ENV = "CATTLE_TOKEN"  # noqa: S105 - the name of the variable, not a token


class RancherError(Exception):
    """One clear sentence about what went wrong talking to Rancher (``status``: the HTTP status, if any)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def ca_checksum(pem: bytes) -> str:
    """Rancher's --ca-checksum: sha256 hex of the bytes ``/cacerts`` serves."""
    return hashlib.sha256(pem).hexdigest()


def _is_transient(exc):
    if isinstance(exc, HTTPError):
        return retry.transient_status(exc.code)
    # a connection dropped mid-answer (IncompleteRead, RemoteDisconnected, ...) is worth another try
    return isinstance(exc, http.client.HTTPException) or retry.transient_os_error(exc)


def _retry_after(exc):
    headers = getattr(exc, "headers", None)
    return retry.parse_retry_after(headers.get("Retry-After")) if headers is not None else None


def _error_text(exc):
    if isinstance(exc, HTTPError):
        return f"HTTP {exc.code} {exc.reason}".rstrip()
    reason = getattr(exc, "reason", None)
    return retry.describe(reason if isinstance(reason, BaseException) else exc)


def _http_message(exc):
    """The ``message`` of a Rancher error answer, else the start of its body."""
    try:
        payload = exc.read()
    except Exception:  # an answer without a body
        return ""
    try:
        return json.loads(payload).get("message") or ""
    except (ValueError, AttributeError):
        return payload.decode("utf-8", "replace").strip()[:200]


class RancherClient:
    def __init__(self, url, api_token, ca_checksum="", ca_path=None, validate_certs=True, timeout=30):
        url = (url or "").strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise RancherError(f"rancher url must be an https:// URL, got {url!r}")
        if ca_checksum and not SHA256_RE.match(ca_checksum.lower()):
            raise RancherError(f"rancher CA checksum must be 64 hex digits (sha256 of {url}/cacerts), "
                               f"got {ca_checksum!r}")
        if not api_token:
            raise RancherError("the Rancher API token is empty")
        if timeout < 1:
            raise RancherError(f"timeout must be at least 1 second, got {timeout}")
        self.url = url
        self.api_token = api_token
        self.expected_checksum = (ca_checksum or "").lower()
        self.ca_path = ca_path
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.ca_pem = None
        self.verified_checksum = ""
        self._tls = None
        # The API token never follows a redirect to another place.
        self._http = Request(headers={"Accept": "application/json"}, unredirected_headers=["Authorization"],
                             follow_redirects="safe")

    # ------------------------------------------------------------ HTTP with retries
    def _open(self, method, url, data=None, headers=None, **tls):
        """(status, body bytes) of a 2xx answer; transient faults retried within the timeout.

        Raises RancherError for an unreachable server and for one that keeps failing (naming the
        URL and the last error); other HTTPError and URLError propagate.
        """
        def attempt(left):
            with self._http.open(method, url, data=data, headers=headers, timeout=left, **tls) as resp:
                return resp.status, resp.read()

        try:
            return retry.call(attempt, endpoint=f"{method} {url}", timeout=self.timeout, is_transient=_is_transient,
                              retry_after=_retry_after, describe_error=_error_text)
        except retry.RetryTimeout as exc:
            if isinstance(exc.last_error, HTTPError):
                raise RancherError(f"Rancher kept failing: {exc}") from None
            raise RancherError(f"cannot reach Rancher at {self.url}: {exc}") from None

    def tls(self):
        """The TLS settings of API calls (verifies and pins the CA checksum first, once)."""
        if self._tls is not None:
            return self._tls
        if self.expected_checksum:
            url = f"{self.url}/cacerts"
            try:
                _status, pem = self._open("GET", url, validate_certs=False)
            except HTTPError as exc:
                raise RancherError(f"{url} answered HTTP {exc.code}") from None
            except (URLError, OSError, http.client.HTTPException) as exc:
                raise RancherError(f"cannot reach Rancher at {self.url}: {_error_text(exc)}") from None
            got = ca_checksum(pem)
            if got != self.expected_checksum:
                raise RancherError(
                    f"CA checksum mismatch: {url} has sha256 {got}, expected {self.expected_checksum} "
                    "(rancher_ca_checksum); not trusting this server")
            try:
                context = ssl.create_default_context(cadata=pem.decode("ascii"))
            except (ValueError, ssl.SSLError) as exc:
                raise RancherError(f"{url} matches the checksum but holds no usable CA certificate: {exc}") from None
            self.ca_pem = pem
            self.verified_checksum = got
            self._tls = {"context": context}
        elif not self.validate_certs:
            self._tls = {"validate_certs": False}
        elif self.ca_path:
            self._tls = {"ca_path": self.ca_path}
        else:
            self._tls = {}
        return self._tls

    def request(self, method, path, body=None):
        """(status, parsed JSON) for 2xx; raises RancherError otherwise."""
        tls = self.tls()
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.api_token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            status, raw = self._open(method, self.url + path, data=data, headers=headers, **tls)
        except HTTPError as exc:
            message = _http_message(exc)
            if exc.code == 401:
                raise RancherError(f"Rancher rejected the API token (HTTP 401 from {self.url}); check "
                                   "rancher_api_token (an API key like token-xxxxx:secret)", 401) from None
            if exc.code == 403:
                raise RancherError(f"the Rancher API token may not {method} {path} (HTTP 403): {message}",
                                   403) from None
            raise RancherError(f"Rancher answered HTTP {exc.code} to {method} {path}: {message}", exc.code) from None
        except URLError as exc:
            if isinstance(exc.reason, ssl.SSLError):
                raise RancherError(f"TLS verification of {self.url} failed ({exc.reason}); set rancher_ca_checksum "
                                   "to the sha256 of its /cacerts, or trust its CA on the control host") from None
            raise RancherError(f"cannot reach Rancher at {self.url}: {_error_text(exc)}") from None
        except ssl.SSLError as exc:
            raise RancherError(f"TLS verification of {self.url} failed ({exc}); set rancher_ca_checksum to the "
                               "sha256 of its /cacerts, or trust its CA on the control host") from None
        except (OSError, http.client.HTTPException) as exc:
            raise RancherError(f"cannot reach Rancher at {self.url}: {_error_text(exc)}") from None
        try:
            return status, json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise RancherError(f"Rancher answered {method} {path} with something that is not JSON "
                               f"(is {self.url} a Rancher server?)") from None

    def get(self, path):
        return self.request("GET", path)[1]

    # ------------------------------------------------------------ resources
    def cluster_by_name(self, name):
        data = self.get(f"/v3/clusters?name={quote(name)}").get("data") or []
        found = [c for c in data if c.get("name") == name]
        if not found:
            names = sorted(c.get("name", "?") for c in self.get("/v3/clusters").get("data") or [])
            raise RancherError(f"Rancher has no cluster named {name!r}; clusters that exist: "
                               f"{', '.join(names) or '(none)'}")
        return found[0]

    def registration_token(self, cluster_id, create=True):
        """(token object or None, created?) — the cluster's first usable registration token."""
        data = self.get(f"/v3/clusterregistrationtokens?clusterId={quote(cluster_id)}").get("data") or []
        usable = [t for t in data if t.get("clusterId") == cluster_id and t.get("token") and t.get("nodeCommand")]
        usable.sort(key=lambda t: (t.get("name") != "default-token", t.get("createdTS") or 0))
        if usable:
            return usable[0], False
        if not create:
            return None, True
        body = {"type": "clusterRegistrationToken", "clusterId": cluster_id}
        token = self.request("POST", "/v3/clusterregistrationtokens", body)[1]
        return token, True

    def cluster_nodes(self, cluster_id):
        return [n for n in self.get(f"/v3/nodes?clusterId={quote(cluster_id)}").get("data") or []
                if n.get("clusterId") == cluster_id]

    def delete_node(self, node_id):
        try:
            self.request("DELETE", f"/v3/nodes/{quote(node_id, safe=':')}")
        except RancherError as exc:
            if exc.status != 404:  # gone already (e.g. a retried DELETE whose first answer was lost): done
                raise

    def update_cluster(self, cluster, changes):
        body = {k: v for k, v in cluster.items() if k not in ("links", "actions")}
        body.update(changes)
        return self.request("PUT", f"/v3/clusters/{quote(cluster['id'])}", body)[1]


# ---------------------------------------------------------------- pure helpers (unit tested)
def flow_of(provider):
    if provider in RKE2_PROVIDERS:
        return "rke2"
    if provider in RKE1_PROVIDERS:
        return "rke1"
    return provider or "unknown"


def find_node(nodes, machine):
    """The Rancher node for a machine: by machine id first, then node name / hostname."""
    machine_id = (machine.get("machine_id") or "").strip()
    if machine_id:
        for node in nodes:
            if node.get("machineId") == machine_id:
                return node
    names = {v.lower() for v in (machine.get("node_name"), machine.get("hostname")) if v}
    for node in nodes:
        have = {str(node.get(k) or "").lower() for k in ("nodeName", "hostname", "requestedHostname")}
        if names & have:
            return node
    return None


def node_summary(node):
    if not node:
        return None
    return {k: node.get(k) for k in ("id", "nodeName", "hostname", "machineId", "ipAddress", "state", "clusterId",
                                     "worker", "etcd", "controlPlane")}


def validate_machine(machine):
    """Problems with one machine's labels, taints and node name (empty list: fine)."""
    problems = []
    name = machine.get("node_name") or ""
    if k8s_names.validate_node_name(name):
        problems.append(f"node name {name!r} is not a valid DNS-1123 subdomain (lowercase letters, digits, '-', '.')")
    labels = machine.get("labels") or {}
    if not isinstance(labels, dict):
        problems.append("labels must be a dict of key: value")
        labels = {}
    for key, value in labels.items():
        errors = k8s_names.validate_label_key(key) + k8s_names.validate_label_value(value)
        if errors:
            problems.append(f"label {key}={value!r} is not a valid Kubernetes label: {'; '.join(errors)}")
    taints = machine.get("taints") or []
    if not isinstance(taints, list):
        problems.append("taints must be a list of 'key[=value]:Effect' strings")
        taints = []
    for taint in taints:
        errors = k8s_names.validate_taint(taint)
        if errors:
            problems.append(f"taint {taint!r} is not key[=value]:{'|'.join(k8s_names.TAINT_EFFECTS)} "
                            f"({'; '.join(errors)})")
    return problems


def worker_flags(machine):
    """Registration flags for a worker: role, node name, addresses, labels, taints."""
    flags = ["--worker", "--node-name", machine["node_name"]]
    for key in ("address", "internal_address"):
        if machine.get(key):
            flags += ["--" + key.replace("_", "-"), machine[key]]
    for key, value in sorted((machine.get("labels") or {}).items()):
        flags += ["--label", f"{key}={value}"]
    for taint in machine.get("taints") or []:
        flags += ["--taints", str(taint)]
    return flags


def split_token(args):
    """``(args without --token, token)``: the registration token leaves the command line."""
    out, token, i = [], "", 0
    while i < len(args):
        if args[i] == "--token" and i + 1 < len(args):
            token = args[i + 1]
            i += 2
            continue
        if args[i].startswith("--token="):
            token = args[i].partition("=")[2]
        else:
            out.append(args[i])
        i += 1
    return out, token


def _redacted(command):
    return command.split(" --token")[0] + " ..."


def parse_node_command(command, flow):
    """Split Rancher's nodeCommand into what the role runs without a shell, the token kept apart.

    rke2: ``curl -fL <url>/system-agent-install.sh | sudo  sh -s - <args>`` ->
    ``{'script_url': url, 'args': [...], 'env': {'CATTLE_TOKEN': token}}``; rke1: ``sudo docker run ...
    <image> <args>`` -> ``{'argv': ['docker', 'run', ..., '-e', 'CATTLE_TOKEN', <image>, ...], 'env': {...}}``.
    Neither ``args`` nor ``argv`` holds the token: Rancher's install script and agent read CATTLE_TOKEN from
    their environment when ``--token`` is absent, and ``docker run -e CATTLE_TOKEN`` (a name without a value)
    copies it from the docker client's environment into the container.
    """
    if not command:
        raise RancherError("the registration token has no nodeCommand")
    if flow == "rke2":
        fetch, sep, run = command.partition("|")
        if not sep:
            raise RancherError(f"unexpected RKE2 nodeCommand format (no pipe): {_redacted(command)}")
        urls = [w for w in shlex.split(fetch) if w.startswith("https://")]
        words = shlex.split(run)
        if not urls or "-" not in words:
            raise RancherError(f"unexpected RKE2 nodeCommand format: {_redacted(command)}")
        args, token = split_token(words[words.index("-") + 1:])
        if not token:
            raise RancherError(f"the RKE2 nodeCommand carries no --token: {_redacted(command)}")
        return {"script_url": urls[0], "args": args, "env": {TOKEN_ENV: token}}
    words = shlex.split(command)
    if words and words[0] == "sudo":
        words = words[1:]
    images = [i for i, word in enumerate(words) if AGENT_IMAGE_RE.match(word)]
    if words[:2] != ["docker", "run"] or not images:
        raise RancherError(f"unexpected RKE1 nodeCommand format: {_redacted(command)}")
    image = images[0]
    agent_args, token = split_token(words[image + 1:])
    if not token:
        raise RancherError(f"the RKE1 nodeCommand carries no --token: {_redacted(command)}")
    argv = [*words[:image], "-e", TOKEN_ENV, words[image], *agent_args]
    return {"argv": argv, "env": {TOKEN_ENV: token}}


def join_plan(command, flow, machine):
    """What one machine runs to join (argv pieces, no shell, no token) with its worker flags appended, and
    the environment that carries the registration token."""
    plan = parse_node_command(command, flow)
    key = "args" if flow == "rke2" else "argv"
    plan[key] = plan[key] + worker_flags(machine)
    return plan


def extra_binds_change(cluster, wanted):
    """(before, after) kubelet extraBinds of an RKE1 cluster; after appends the missing entries."""
    rke = cluster.get("rancherKubernetesEngineConfig")
    if not isinstance(rke, dict):
        raise RancherError(f"cluster {cluster.get('name')} ({cluster.get('id')}) is not an RKE1 cluster "
                           f"(provider {cluster.get('provider') or cluster.get('driver')}); kubelet extraBinds are "
                           "an RKE1 (rancherKubernetesEngineConfig) setting")
    before = list(((rke.get("services") or {}).get("kubelet") or {}).get("extraBinds") or [])
    after = before + [b for b in wanted if b not in before]
    return before, after


def with_extra_binds(cluster, binds):
    """A copy of the cluster's rancherKubernetesEngineConfig with kubelet extraBinds set."""
    rke = json.loads(json.dumps(cluster["rancherKubernetesEngineConfig"]))
    services = rke.setdefault("services", {})
    kubelet = services.setdefault("kubelet", {})
    kubelet["extraBinds"] = binds
    return rke
