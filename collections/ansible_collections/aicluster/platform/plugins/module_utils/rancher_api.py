# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""A small client for Rancher's v3 (norman) API, shared by the collection's Rancher modules.

Trust model (Rancher's own): when a CA checksum is given, ``/cacerts`` is fetched without
verification, its sha256 must equal the checksum, and from then on every API call verifies
the server against exactly that CA (pinned). Without a checksum the system trust store (or
``ca_path``) is used. A mismatch, a rejected token, an unknown cluster and an unreachable
server each raise ``RancherError`` with one clear sentence.

Python standard library only; runs on the control host.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import ssl
import urllib.error
import urllib.request
from urllib.parse import quote, urlsplit

# Connection options shared by every Rancher module; document them as in rancher_registration.
RANCHER_AUTH_ARGSPEC = {
    "url": {"type": "str", "required": True},
    "api_token": {"type": "str", "required": True, "no_log": True},
    "ca_checksum": {"type": "str", "default": ""},
    "ca_path": {"type": "path"},
    "validate_certs": {"type": "bool", "default": True},
    "timeout": {"type": "int", "default": 30},
}

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
TAINT_RE = re.compile(r"^([^=:\s,]+)(=([^:\s,]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
RKE2_PROVIDERS = ("rke2", "k3s")
RKE1_PROVIDERS = ("rke",)


class RancherError(Exception):
    """One clear sentence about what went wrong talking to Rancher."""


def ca_checksum(pem: bytes) -> str:
    """Rancher's --ca-checksum: sha256 hex of the bytes ``/cacerts`` serves."""
    return hashlib.sha256(pem).hexdigest()


class RancherClient:
    def __init__(self, url, api_token, ca_checksum="", ca_path=None, validate_certs=True, timeout=30, opener=None):
        url = (url or "").strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise RancherError(f"rancher url must be an https:// URL, got {url!r}")
        if ca_checksum and not SHA256_RE.match(ca_checksum.lower()):
            raise RancherError(f"rancher CA checksum must be 64 hex digits (sha256 of {url}/cacerts), "
                               f"got {ca_checksum!r}")
        if not api_token:
            raise RancherError("the Rancher API token is empty")
        self.url = url
        self.api_token = api_token
        self.expected_checksum = (ca_checksum or "").lower()
        self.ca_path = ca_path
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.ca_pem = None
        self.verified_checksum = ""
        self._ctx = None
        self.calls = []

    # ------------------------------------------------------------ TLS
    def _insecure(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def context(self):
        """The SSL context for API calls (verifies the CA checksum first, once)."""
        if self._ctx is not None:
            return self._ctx
        if self.expected_checksum:
            pem = self._fetch(f"{self.url}/cacerts", self._insecure())
            got = ca_checksum(pem)
            if got != self.expected_checksum:
                raise RancherError(
                    f"CA checksum mismatch: {self.url}/cacerts has sha256 {got}, expected {self.expected_checksum} "
                    "(rancher_ca_checksum); not trusting this server")
            self.ca_pem = pem
            self.verified_checksum = got
            self._ctx = ssl.create_default_context(cadata=pem.decode("ascii", "replace"))
        elif not self.validate_certs:
            self._ctx = self._insecure()
        elif self.ca_path:
            self._ctx = ssl.create_default_context(cafile=self.ca_path)
        else:
            self._ctx = ssl.create_default_context()
        return self._ctx

    def _fetch(self, url, ctx):
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=self.timeout) as resp:  # noqa: S310 - https only
                return resp.read()
        except urllib.error.HTTPError as exc:
            raise RancherError(f"{url} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RancherError(f"cannot reach Rancher at {self.url}: {reason}") from None

    # ------------------------------------------------------------ requests
    def request(self, method, path, body=None):
        """(status, parsed JSON) for 2xx; raises RancherError otherwise."""
        ctx = self.context()
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.api_token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)  # noqa: S310
        self.calls.append((method, path))
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=self.timeout) as resp:  # noqa: S310
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                message = json.loads(payload).get("message") or ""
            except (ValueError, AttributeError):
                message = payload.decode("utf-8", "replace").strip()[:200]
            if exc.code == 401:
                raise RancherError(f"Rancher rejected the API token (HTTP 401 from {self.url}); check "
                                   "rancher_api_token (an API key like token-xxxxx:secret)") from None
            if exc.code == 403:
                raise RancherError(f"the Rancher API token may not {method} {path} (HTTP 403): {message}") from None
            raise RancherError(f"Rancher answered HTTP {exc.code} to {method} {path}: {message}") from None
        except ssl.SSLError as exc:
            raise RancherError(f"TLS verification of {self.url} failed ({exc}); set rancher_ca_checksum to the "
                               "sha256 of its /cacerts, or trust its CA on the control host") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLError):
                raise RancherError(f"TLS verification of {self.url} failed ({reason}); set rancher_ca_checksum to "
                                   "the sha256 of its /cacerts, or trust its CA on the control host") from None
            raise RancherError(f"cannot reach Rancher at {self.url}: {reason}") from None
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
        _, token = self.request("POST", "/v3/clusterregistrationtokens", {"type": "clusterRegistrationToken",
                                                                          "clusterId": cluster_id})
        return token, True

    def cluster_nodes(self, cluster_id):
        return [n for n in self.get(f"/v3/nodes?clusterId={quote(cluster_id)}").get("data") or []
                if n.get("clusterId") == cluster_id]

    def delete_node(self, node_id):
        self.request("DELETE", f"/v3/nodes/{quote(node_id, safe=':')}")

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


def valid_label(key, value):
    prefix, _, name = str(key).rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return False
    if not (0 < len(name) <= 63 and _LABEL_NAME.match(name)):
        return False
    return isinstance(value, str) and len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def validate_machine(machine):
    """Problems with one machine's labels, taints and node name (empty list: fine)."""
    problems = []
    name = machine.get("node_name") or ""
    if len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        problems.append(f"node name {name!r} is not a valid DNS-1123 subdomain (lowercase letters, digits, '-', '.')")
    labels = machine.get("labels") or {}
    if not isinstance(labels, dict):
        problems.append("labels must be a dict of key: value")
        labels = {}
    for key, value in labels.items():
        if not valid_label(key, value):
            problems.append(f"label {key}={value!r} is not a valid Kubernetes label (values must be strings)")
    taints = machine.get("taints") or []
    if not isinstance(taints, list):
        problems.append("taints must be a list of 'key[=value]:Effect' strings")
        taints = []
    for taint in taints:
        match = TAINT_RE.match(str(taint))
        if not match or not valid_label(match.group(1), match.group(3) or ""):
            problems.append(f"taint {taint!r} is not key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
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


def _replace_token(args, token):
    out, i = [], 0
    while i < len(args):
        if args[i] == "--token" and i + 1 < len(args):
            out += ["--token", token]
            i += 2
            continue
        if args[i].startswith("--token="):
            out.append(f"--token={token}")
        else:
            out.append(args[i])
        i += 1
    return out


def parse_node_command(command, flow):
    """Split Rancher's nodeCommand into what the role runs without a shell.

    rke2: ``curl -fL <url>/system-agent-install.sh | sudo  sh -s - <args>`` ->
    ``{'script_url': url, 'args': [...]}``; rke1: ``sudo docker run ... <image> <args>`` ->
    ``{'argv': ['docker', 'run', ...]}``.
    """
    if not command:
        raise RancherError("the registration token has no nodeCommand")
    if flow == "rke2":
        fetch, sep, run = command.partition("|")
        if not sep:
            raise RancherError(f"unexpected RKE2 nodeCommand format (no pipe): {command.split(' --token')[0]} ...")
        urls = [w for w in shlex.split(fetch) if w.startswith("https://")]
        words = shlex.split(run)
        if not urls or "-" not in words:
            raise RancherError(f"unexpected RKE2 nodeCommand format: {command.split(' --token')[0]} ...")
        return {"script_url": urls[0], "args": words[words.index("-") + 1:]}
    words = shlex.split(command)
    if words and words[0] == "sudo":
        words = words[1:]
    if words[:2] != ["docker", "run"]:
        raise RancherError(f"unexpected RKE1 nodeCommand format: {command.split(' --token')[0]} ...")
    return {"argv": words}


def join_plan(command, flow, machine, token_override=""):
    """What one machine runs to join (argv pieces, no shell), with its worker flags appended."""
    plan = parse_node_command(command, flow)
    flags = worker_flags(machine)
    key = "args" if flow == "rke2" else "argv"
    plan[key] = plan[key] + flags
    if token_override:
        plan[key] = _replace_token(plan[key], token_override)
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
