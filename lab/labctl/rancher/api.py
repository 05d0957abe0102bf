"""The Rancher stand-in's API: a subset of Rancher's v3 (norman) API (lab fixture).

Only what a join role uses, with Rancher's JSON shapes: ``type``/``data`` collections,
``links``, ids like ``c-m-xxxxxxxx`` (RKE2 custom, provisioning v2) and ``c-xxxxx``
(RKE1), cluster registration tokens with Rancher's command formats, ``/v3/nodes``.

Agents do not speak Rancher's websocket tunnel here; the lab agent (served at
``/assets/rancher-system-agent-amd64``) POSTs JSON to ``/lab/agent/*`` authenticated by
the cluster registration token in ``X-API-Tunnel-Token``, as Rancher's agents send it.

Everything is kept in one JSON state file written atomically; ids survive restarts.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hmac
import ipaddress
import json
import os
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from labctl.rancher.kube import NodeSink

RANCHER_VERSION = "v2.8.5"
AGENT_IMAGE = f"rancher/rancher-agent:{RANCHER_VERSION}"
# Rancher's random token alphabet (no vowels, no look-alikes).
TOKEN_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # noqa: S105 - an alphabet
HEARTBEAT_SECONDS = 15
UNAVAILABLE_AFTER = 120.0

DEFAULT_CLUSTERS = (
    {"name": "worker", "provider": "rke2", "kubernetes": "worker",
     "kubernetesVersion": "v1.28.15+rke2r1", "description": "RKE2 custom cluster (lab stand-in)"},
    {"name": "worker-rke1", "provider": "rke", "kubernetes": "worker",
     "kubernetesVersion": "v1.28.15-rancher1-1", "description": "RKE1 custom cluster (lab stand-in)"},
)

READ_ONLY_CLUSTER_FIELDS = {
    "id", "type", "baseType", "links", "actions", "state", "transitioning", "transitioningMessage", "created",
    "createdTS", "uuid", "provider", "driver", "name", "nodeCount", "conditions", "creatorId", "version",
}
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?)$")


def random_string(n: int) -> str:
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(n))


def _lower_alnum(n: int) -> str:
    return "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def new_api_token() -> str:
    """An API token as Rancher shows it: ``token-xxxxx:<secret>``."""
    return f"token-{_lower_alnum(5)}:{random_string(54)}"


def _now() -> tuple[str, int]:
    t = time.time()
    iso = datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return iso, int(t * 1000)


def fixture(name: str) -> bytes:
    return resources.files("labctl.rancher").joinpath("fixtures", name).read_bytes()


def valid_label_key(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_NAME.match(name))


def valid_label_value(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_VALUE.match(value))


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict | None = None


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def response(self) -> Response:
        body = {"baseType": "error", "type": "error", "status": self.status, "code": self.code, "message": self.message}
        if self.field:
            body["fieldName"] = self.field
        return _json(self.status, body)


def _json(status: int, obj) -> Response:
    return Response(status, (json.dumps(obj, indent=1) + "\n").encode())


UNAUTHORIZED = Response(401, b'{"type":"error","status":"401","message":"must authenticate"}\n')


class StandIn:
    """State and request handling; the HTTP layer is a thin wrapper (see ``make_server``)."""

    def __init__(self, *, api_token: str, server_url: str, ca_pem: bytes, sinks: dict[str, NodeSink],
                 state_path: Path | None = None, clusters: list[dict] | tuple = DEFAULT_CLUSTERS,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS) -> None:
        self.api_token = api_token
        self.heartbeat_seconds = heartbeat_seconds
        self.server_url = server_url.rstrip("/")
        self.ca_pem = ca_pem
        from labctl.rancher.pki import ca_checksum

        self.ca_checksum = ca_checksum(ca_pem)
        self.sinks = sinks
        self.state_path = state_path
        self.lock = threading.RLock()
        self.state = self._load()
        self._reconcile_clusters(list(clusters))
        self._save()

    # ---------------------------------------------------------------- state
    def _load(self) -> dict:
        if self.state_path and self.state_path.is_file():
            data = json.loads(self.state_path.read_text())
            if data.get("version") == 1:
                return data
        return {"version": 1, "clusters": {}, "tokens": {}, "nodes": {}, "provisioning": {}}

    def _save(self) -> None:
        if not self.state_path:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(f".{self.state_path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.state, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)

    def _reconcile_clusters(self, config: list[dict]) -> None:
        by_name = {c["name"]: c for c in self.state["clusters"].values()}
        for spec in config:
            existing = by_name.get(spec["name"])
            if existing:
                existing["_kubernetes"] = spec.get("kubernetes", "worker")
                cluster = existing
            else:
                cluster = self._new_cluster(spec)
                self.state["clusters"][cluster["id"]] = cluster
            if not any(t["clusterId"] == cluster["id"] for t in self.state["tokens"].values()):
                self._new_token(cluster["id"], "default-token")
            if cluster["provider"] == "rke2" and spec["name"] not in self.state["provisioning"]:
                self.state["provisioning"][spec["name"]] = self._new_provisioning(cluster, spec)

    def _new_cluster(self, spec: dict) -> dict:
        created, created_ts = _now()
        provider = spec.get("provider", "rke2")
        if provider not in ("rke2", "k3s", "rke"):
            raise ValueError(f"cluster {spec['name']}: provider must be rke2, k3s or rke, not {provider!r}")
        common = {
            "name": spec["name"], "type": "cluster", "baseType": "cluster", "state": "active",
            "transitioning": "no", "transitioningMessage": "", "created": created, "createdTS": created_ts,
            "uuid": str(uuid.uuid4()), "creatorId": "user-lab01", "description": spec.get("description", ""),
            "internal": False, "provider": provider, "labels": {"provider.cattle.io": provider},
            "annotations": {}, "_kubernetes": spec.get("kubernetes", "worker"),
            "version": {"gitVersion": spec.get("kubernetesVersion", "")},
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Provisioned", "status": "True"}],
        }
        if provider == "rke":
            return {**common, "id": f"c-{_lower_alnum(5)}", "driver": "rancherKubernetesEngine",
                    "rancherKubernetesEngineConfig": {
                        "type": "/v3/schemas/rancherKubernetesEngineConfig",
                        "kubernetesVersion": spec.get("kubernetesVersion", "v1.28.15-rancher1-1"),
                        "ignoreDockerVersion": True, "sshAgentAuth": False,
                        "network": {"plugin": "canal", "type": "/v3/schemas/networkConfig"},
                        "services": {
                            "type": "/v3/schemas/rkeConfigServices",
                            "kubelet": {"type": "/v3/schemas/kubeletService", "extraArgs": {}, "extraBinds": [],
                                        "extraEnv": [], "clusterDnsServer": "10.43.0.10",
                                        "failSwapOn": False, "generateServingCertificate": False},
                            "kubeApi": {"type": "/v3/schemas/kubeAPIService", "serviceClusterIpRange": "10.43.0.0/16",
                                        "serviceNodePortRange": "30000-32767", "extraArgs": {}},
                            "kubeController": {"type": "/v3/schemas/kubeControllerService",
                                               "clusterCidr": "10.42.0.0/16", "serviceClusterIpRange": "10.43.0.0/16"},
                            "etcd": {"type": "/v3/schemas/etcdService", "snapshot": False},
                        },
                    }}
        annotations = {
            "objectset.rio.cattle.io/owner-gvk": "provisioning.cattle.io/v1, Kind=Cluster",
            "objectset.rio.cattle.io/owner-name": spec["name"],
            "objectset.rio.cattle.io/owner-namespace": "fleet-default",
        }
        return {**common, "id": f"c-m-{_lower_alnum(8)}", "driver": provider, "annotations": annotations,
                "fleetWorkspaceName": "fleet-default",
                f"{provider}Config": {"type": f"/v3/schemas/{provider}Config",
                                      "kubernetesVersion": spec.get("kubernetesVersion", "")}}

    def _new_provisioning(self, cluster: dict, spec: dict) -> dict:
        created, _ = _now()
        return {
            "apiVersion": "provisioning.cattle.io/v1", "kind": "Cluster",
            "metadata": {"name": spec["name"], "namespace": "fleet-default", "uid": str(uuid.uuid4()),
                         "resourceVersion": "1", "generation": 1, "creationTimestamp": created,
                         "labels": {}, "annotations": {}},
            "spec": {"kubernetesVersion": spec.get("kubernetesVersion", ""), "localClusterAuthEndpoint": {},
                     "rkeConfig": {"machineGlobalConfig": {"cni": "calico"}, "machineSelectorConfig": [
                         {"config": {"protect-kernel-defaults": False}}], "upgradeStrategy": {}}},
            "status": {"clusterName": cluster["id"], "ready": True, "observedGeneration": 1},
        }

    def _new_token(self, cluster_id: str, name: str | None = None) -> dict:
        created, created_ts = _now()
        name = name or f"crt-{_lower_alnum(5)}"
        token = {"name": name, "clusterId": cluster_id, "token": random_string(54), "created": created,
                 "createdTS": created_ts, "uuid": str(uuid.uuid4())}
        self.state["tokens"][f"{cluster_id}:{name}"] = token
        return token

    # ---------------------------------------------------------------- views
    def _cluster_view(self, c: dict, base: str) -> dict:
        view = {k: copy.deepcopy(v) for k, v in c.items() if not k.startswith("_")}
        self_url = f"{base}/v3/clusters/{c['id']}"
        view["nodeCount"] = sum(1 for n in self.state["nodes"].values() if n["clusterId"] == c["id"])
        view["links"] = {
            "self": self_url, "update": self_url, "remove": self_url,
            "clusterRegistrationTokens": f"{self_url}/clusterregistrationtokens",
            "nodes": f"{self_url}/nodes",
        }
        view["actions"] = {"generateKubeconfig": f"{self_url}?action=generateKubeconfig"}
        return view

    def _token_view(self, t: dict, base: str) -> dict:
        cluster = self.state["clusters"][t["clusterId"]]
        tid = f"{t['clusterId']}:{t['name']}"
        commands = registration_commands(cluster["provider"], self.server_url, t["token"], self.ca_checksum,
                                         t["clusterId"])
        return {
            "id": tid, "type": "clusterRegistrationToken", "baseType": "clusterRegistrationToken",
            "name": t["name"], "namespaceId": t["clusterId"], "clusterId": t["clusterId"],
            "state": "active", "transitioning": "no", "transitioningMessage": "",
            "created": t["created"], "createdTS": t["createdTS"], "uuid": t["uuid"], "creatorId": "user-lab01",
            "annotations": {}, "labels": {"cattle.io/creator": "norman"}, "token": t["token"], **commands,
            "links": {"self": f"{base}/v3/clusterregistrationtokens/{tid}",
                      "update": f"{base}/v3/clusterregistrationtokens/{tid}",
                      "remove": f"{base}/v3/clusterregistrationtokens/{tid}"},
            "actions": {},
        }

    def _node_view(self, n: dict, base: str) -> dict:
        view = {k: copy.deepcopy(v) for k, v in n.items() if not k.startswith("_")}
        age = time.time() - n.get("_lastSeen", 0)
        if age > UNAVAILABLE_AFTER:
            view["state"] = "unavailable"
            view["transitioning"] = "error"
            view["transitioningMessage"] = f"Kubelet stopped posting node status ({int(age)}s since last heartbeat)"
        self_url = f"{base}/v3/nodes/{n['id']}"
        view["links"] = {"self": self_url, "update": self_url, "remove": self_url,
                         "cluster": f"{base}/v3/clusters/{n['clusterId']}"}
        view["actions"] = {"cordon": f"{self_url}?action=cordon", "drain": f"{self_url}?action=drain"}
        return view

    @staticmethod
    def _collection(resource_type: str, plural: str, base: str, data: list, query: dict) -> dict:
        filters = {k: [{"modifier": "eq", "value": v}] for k, v in query.items()}
        return {
            "type": "collection", "resourceType": resource_type,
            "links": {"self": f"{base}/v3/{plural}"},
            "createTypes": {resource_type: f"{base}/v3/{plural}"},
            "actions": {}, "pagination": {"limit": 1000, "total": len(data)},
            "sort": {"order": "asc", "reverse": f"{base}/v3/{plural}?order=desc"},
            "filters": filters, "data": data,
        }

    @staticmethod
    def _filter(items: list[dict], query: dict) -> list[dict]:
        def match(item: dict, key: str, want: str) -> bool:
            have = item.get(key)
            if isinstance(have, bool):
                return str(have).lower() == want.lower()
            return have is not None and str(have) == want

        return [i for i in items if all(match(i, k, v) for k, v in query.items())]

    # ---------------------------------------------------------------- dispatch
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        parts = urlsplit(target)
        path = unquote(parts.path).rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()
                 if k not in ("limit", "marker", "sort", "order", "action")}
        action = parse_qs(parts.query).get("action", [None])[-1]
        host = headers.get("host")
        base = f"https://{host}" if host else self.server_url
        try:
            public = self._public(method, path)
            if public is not None:
                return public
            if path.startswith("/lab/agent/"):
                return self._agent(method, path, headers, body)
            if not self._authenticated(headers):
                return UNAUTHORIZED
            with self.lock:
                return self._api(method, path, query, action, base, body)
        except ApiError as exc:
            return exc.response()

    def _authenticated(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        value = value.strip()
        if scheme.lower() == "basic":
            try:
                value = base64.b64decode(value, validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return False
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.encode(), self.api_token.encode())

    def _public(self, method: str, path: str) -> Response | None:
        if method not in ("GET", "HEAD"):
            return None
        if path in ("/ping", "/healthz"):
            return Response(200, b"pong", "text/plain")
        if path == "/cacerts":
            return Response(200, self.ca_pem, "text/plain")
        if path in ("/v3/settings/cacerts", "/v3/settings/server-url", "/v3/settings/agent-image"):
            name = path.rsplit("/", 1)[1]
            value = {"cacerts": self.ca_pem.decode(), "server-url": self.server_url, "agent-image": AGENT_IMAGE}[name]
            return _json(200, {"id": name, "type": "setting", "baseType": "setting", "name": name, "value": value,
                               "default": "", "customized": False, "source": "db",
                               "links": {"self": f"{self.server_url}{path}"}})
        if path == "/system-agent-install.sh":
            return Response(200, fixture("system-agent-install.sh"), "text/plain")
        if path == "/assets/system-agent-uninstall.sh":
            return Response(200, fixture("system-agent-uninstall.sh"), "text/plain")
        if path in ("/assets/rancher-system-agent-amd64", "/assets/rancher-system-agent-arm64",
                    "/assets/rancher-agent"):
            return Response(200, fixture("rancher-agent.py"), "application/octet-stream")
        return None

    # ---------------------------------------------------------------- /v3 + /v1 (API token)
    def _api(self, method: str, path: str, query: dict, action: str | None, base: str, body: bytes) -> Response:
        seg = path.strip("/").split("/")
        if seg == ["v3"]:
            return _json(200, {"type": "apiRoot", "id": "v3", "links": {
                k: f"{base}/v3/{k}" for k in ("clusters", "clusterRegistrationTokens", "nodes", "settings")}})
        if seg[0] == "v1" and len(seg) >= 2 and seg[1] == "provisioning.cattle.io.clusters":
            return self._provisioning(method, seg[2:], base, body)
        if seg[0] != "v3" or len(seg) < 2:
            raise ApiError(404, "NotFound", f"{path} not found")
        kind, rest = seg[1].lower(), seg[2:]
        if kind == "clusters":
            if len(rest) == 2 and rest[1].lower() in ("clusterregistrationtokens", "nodes"):
                sub = "tokens" if rest[1].lower() == "clusterregistrationtokens" else "nodes"
                self._cluster(rest[0])
                if method == "POST" and sub == "tokens":
                    return self._create_token({**_parse(body), "clusterId": rest[0]}, base)
                return self._list(sub, {**query, "clusterId": rest[0]}, base)
            return self._clusters(method, rest, query, base, body)
        if kind == "clusterregistrationtokens":
            if method == "POST" and not rest:
                return self._create_token(_parse(body), base)
            if method == "GET" and not rest:
                return self._list("tokens", query, base)
            if method == "GET" and len(rest) == 1:
                tok = self.state["tokens"].get(rest[0])
                if not tok:
                    raise ApiError(404, "NotFound", f"clusterRegistrationToken {rest[0]} not found")
                return _json(200, self._token_view(tok, base))
            raise ApiError(405, "MethodNotAllowed", f"{method} not allowed on {path}")
        if kind == "nodes":
            return self._nodes(method, rest, query, action, base, body)
        if kind == "settings" and method == "GET":
            raise ApiError(404, "NotFound", f"setting {'/'.join(rest)} not found")
        raise ApiError(404, "NotFound", f"{path} not found")

    def _cluster(self, cid: str) -> dict:
        cluster = self.state["clusters"].get(cid)
        if not cluster:
            raise ApiError(404, "NotFound", f"cluster {cid} not found")
        return cluster

    def _list(self, what: str, query: dict, base: str) -> Response:
        if what == "tokens":
            items = [self._token_view(t, base) for t in self.state["tokens"].values()]
            return _json(200, self._collection("clusterRegistrationToken", "clusterregistrationtokens", base,
                                               self._filter(items, query), query))
        items = [self._node_view(n, base) for n in self.state["nodes"].values()]
        return _json(200, self._collection("node", "nodes", base, self._filter(items, query), query))

    def _clusters(self, method: str, rest: list[str], query: dict, base: str, body: bytes) -> Response:
        if not rest:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the lab stand-in does not create clusters; see its config")
            items = [self._cluster_view(c, base) for c in self.state["clusters"].values()]
            return _json(200, self._collection("cluster", "clusters", base, self._filter(items, query), query))
        cluster = self._cluster(rest[0])
        if len(rest) > 1:
            raise ApiError(404, "NotFound", f"/v3/clusters/{'/'.join(rest)} not found")
        if method == "GET":
            return _json(200, self._cluster_view(cluster, base))
        if method == "PUT":
            update = _parse(body)
            if not isinstance(update, dict):
                raise ApiError(422, "InvalidBodyContent", "cluster update must be a JSON object")
            if "rancherKubernetesEngineConfig" in update:
                if cluster["provider"] != "rke":
                    raise ApiError(422, "InvalidInput", "rancherKubernetesEngineConfig applies to RKE1 clusters only",
                                   "rancherKubernetesEngineConfig")
                rke = update["rancherKubernetesEngineConfig"]
                if not isinstance(rke, dict):
                    raise ApiError(422, "InvalidType", "rancherKubernetesEngineConfig must be an object",
                                   "rancherKubernetesEngineConfig")
                binds = (rke.get("services") or {}).get("kubelet", {}).get("extraBinds", [])
                if not isinstance(binds, list) or not all(isinstance(b, str) and ":" in b for b in binds):
                    raise ApiError(422, "InvalidFormat", "services.kubelet.extraBinds must be a list of "
                                   "'host-path:container-path[:options]' strings", "extraBinds")
            for key, value in update.items():
                if key not in READ_ONLY_CLUSTER_FIELDS and not key.startswith("_"):
                    cluster[key] = value
            self._save()
            return _json(200, self._cluster_view(cluster, base))
        raise ApiError(405, "MethodNotAllowed", f"{method} not allowed on a cluster")

    def _create_token(self, data: dict, base: str) -> Response:
        cid = data.get("clusterId") if isinstance(data, dict) else None
        if not cid:
            raise ApiError(422, "MissingRequired", "clusterId is required", "clusterId")
        self._cluster(cid)
        token = self._new_token(cid, data.get("name") or None)
        self._save()
        return _json(201, self._token_view(token, base))

    def _find_node(self, nid: str) -> dict:
        node = self.state["nodes"].get(nid)
        if node is None and ":" not in nid:
            node = next((n for n in self.state["nodes"].values() if n["id"].split(":", 1)[1] == nid), None)
        if node is None:
            raise ApiError(404, "NotFound", f"node {nid} not found")
        return node

    def _sink_for(self, cluster_id: str) -> NodeSink:
        backing = self.state["clusters"][cluster_id].get("_kubernetes", "worker")
        sink = self.sinks.get(backing)
        if sink is None:
            raise ApiError(503, "ServiceUnavailable", f"no Kubernetes cluster {backing!r} behind this stand-in")
        return sink

    def _nodes(self, method: str, rest: list[str], query: dict, action: str | None, base: str,
               body: bytes) -> Response:
        if not rest:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "nodes are created by registering an agent")
            return self._list("nodes", query, base)
        node = self._find_node(rest[0])
        if method == "GET":
            return _json(200, self._node_view(node, base))
        if method == "DELETE":
            try:
                self._sink_for(node["clusterId"]).delete(node["nodeName"])
            except ApiError:
                raise
            except Exception as exc:
                raise ApiError(500, "ServerError", f"deleting Node {node['nodeName']}: {exc}") from exc
            del self.state["nodes"][node["id"]]
            self._save()
            view = self._node_view(node, base)
            view["state"] = "removing"
            return _json(200, view)
        if method == "PUT":
            update = _parse(body)
            labels = update.get("labels") if isinstance(update, dict) else None
            if labels is not None:
                if not isinstance(labels, dict) or not all(
                        isinstance(v, str) and valid_label_key(k) and valid_label_value(v) for k, v in labels.items()):
                    raise ApiError(422, "InvalidFormat", "labels must map valid label keys to valid values", "labels")
                patch: dict[str, str | None] = {k: None for k in node["labels"] if k not in labels}
                patch.update(labels)
                try:
                    self._sink_for(node["clusterId"]).set_labels(node["nodeName"], patch)
                except Exception as exc:
                    raise ApiError(500, "ServerError", f"labelling Node {node['nodeName']}: {exc}") from exc
                node["labels"] = dict(labels)
            if isinstance(update, dict) and isinstance(update.get("annotations"), dict):
                node["annotations"] = update["annotations"]
            self._save()
            return _json(200, self._node_view(node, base))
        raise ApiError(405, "MethodNotAllowed", f"{method} not allowed on a node")

    def _provisioning(self, method: str, rest: list[str], base: str, body: bytes) -> Response:
        def view(name: str, obj: dict) -> dict:
            url = f"{base}/v1/provisioning.cattle.io.clusters/fleet-default/{name}"
            return {"id": f"fleet-default/{name}", "type": "provisioning.cattle.io.cluster",
                    "links": {"self": url, "update": url, "remove": url}, **copy.deepcopy(obj)}

        prov = self.state["provisioning"]
        if not rest and method == "GET":
            data = [view(n, o) for n, o in sorted(prov.items())]
            revision = max([int(o["metadata"]["resourceVersion"]) for o in prov.values()] or [0])
            return _json(200, {"type": "collection", "resourceType": "provisioning.cattle.io.cluster",
                               "links": {"self": f"{base}/v1/provisioning.cattle.io.clusters"},
                               "revision": str(revision),
                               "count": len(data), "data": data})
        if len(rest) != 2 or rest[0] != "fleet-default" or rest[1] not in prov:
            raise ApiError(404, "NotFound", f"clusters.provisioning.cattle.io \"{'/'.join(rest)}\" not found")
        obj = prov[rest[1]]
        if method == "GET":
            return _json(200, view(rest[1], obj))
        if method == "PUT":
            update = _parse(body)
            if not isinstance(update, dict) or not isinstance(update.get("spec"), dict):
                raise ApiError(422, "InvalidBodyContent", "a provisioning cluster update needs spec")
            meta = update.get("metadata") or {}
            rv = meta.get("resourceVersion")
            if rv and rv != obj["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "the object has been modified; please apply your changes to the "
                               "latest version and try again")
            obj["spec"] = update["spec"]
            for key in ("labels", "annotations"):
                if isinstance(meta.get(key), dict):
                    obj["metadata"][key] = meta[key]
            obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) + 1)
            obj["metadata"]["generation"] += 1
            obj["status"]["observedGeneration"] = obj["metadata"]["generation"]
            self._save()
            return _json(200, view(rest[1], obj))
        raise ApiError(405, "MethodNotAllowed", f"{method} not allowed here")

    # ---------------------------------------------------------------- agent side (registration token)
    def _token_cluster(self, headers: dict[str, str]) -> dict | None:
        presented = headers.get("x-api-tunnel-token", "").strip()
        if not presented:
            return None
        for tok in self.state["tokens"].values():
            if hmac.compare_digest(tok["token"].encode(), presented.encode()):
                return self.state["clusters"][tok["clusterId"]]
        return None

    def _agent(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        with self.lock:
            cluster = self._token_cluster(headers)
            if cluster is None:
                return UNAUTHORIZED
            if path == "/lab/agent/validate" and method == "GET":
                return _json(200, {"clusterId": cluster["id"], "clusterName": cluster["name"],
                                   "provider": cluster["provider"]})
            if path == "/lab/agent/register" and method == "POST":
                return self._register(cluster, _parse(body))
            if path == "/lab/agent/heartbeat" and method == "POST":
                return self._heartbeat(cluster, _parse(body))
            raise ApiError(404, "NotFound", f"{method} {path} not found")

    def _register(self, cluster: dict, reg: dict) -> Response:
        if not isinstance(reg, dict):
            raise ApiError(422, "InvalidBodyContent", "registration must be a JSON object")
        kind = reg.get("agentKind")
        if kind == "rancher-agent" and cluster["provider"] != "rke":
            raise ApiError(422, "InvalidInput", f"cluster {cluster['name']} is an {cluster['provider'].upper()} "
                           "custom cluster: register with its system-agent-install.sh nodeCommand, not docker run "
                           "rancher-agent")
        if kind == "system-agent" and cluster["provider"] == "rke":
            raise ApiError(422, "InvalidInput", f"cluster {cluster['name']} is an RKE1 cluster: register with its "
                           "docker run rancher/rancher-agent nodeCommand, not system-agent-install.sh")
        hostname = str(reg.get("hostname") or "").strip()
        machine_id = str(reg.get("machineId") or "").strip()
        if not hostname:
            raise ApiError(422, "MissingRequired", "hostname is required", "hostname")
        if not machine_id:
            raise ApiError(422, "MissingRequired", "machineId is required", "machineId")
        node_name = str(reg.get("nodeName") or hostname.split(".")[0].lower())
        if len(node_name) > 253 or not DNS_SUBDOMAIN.match(node_name):
            raise ApiError(422, "InvalidFormat", f"node name {node_name!r} is not a valid DNS-1123 subdomain "
                           "(lowercase letters, digits, '-' and '.')", "nodeName")
        address = str(reg.get("internalAddress") or reg.get("address") or "")
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise ApiError(422, "InvalidFormat", f"address {address!r} is not an IPv4 address", "address") from None
        external = str(reg.get("address") or address)
        labels = reg.get("labels") or {}
        if not isinstance(labels, dict):
            raise ApiError(422, "InvalidType", "labels must be an object", "labels")
        for k, v in labels.items():
            if not valid_label_key(str(k)) or not isinstance(v, str) or not valid_label_value(v):
                raise ApiError(422, "InvalidFormat", f"invalid label {k}={v}", "labels")
        taints = reg.get("taints") or []
        if not isinstance(taints, list):
            raise ApiError(422, "InvalidType", "taints must be a list", "taints")
        clean_taints = []
        for t in taints:
            if not isinstance(t, dict) or not valid_label_key(str(t.get("key", ""))) \
                    or t.get("effect") not in TAINT_EFFECTS or not valid_label_value(str(t.get("value") or "")):
                raise ApiError(422, "InvalidFormat", f"invalid taint {t!r}: want key[=value]:"
                               f"{'|'.join(TAINT_EFFECTS)}", "taints")
            clean_taints.append({"key": t["key"], "value": str(t.get("value") or ""), "effect": t["effect"],
                                 "type": "/v3/schemas/taint"})
        roles = reg.get("roles") or {}
        role = {r: bool(roles.get(r)) for r in ("worker", "etcd", "controlPlane")}
        if not any(role.values()):
            role["worker"] = True
        backing = cluster.get("_kubernetes", "worker")
        existing = None
        for n in self.state["nodes"].values():
            if self.state["clusters"][n["clusterId"]].get("_kubernetes") != backing or n["nodeName"] != node_name:
                continue
            if n["machineId"] != machine_id or n["clusterId"] != cluster["id"]:
                where = self.state["clusters"][n["clusterId"]]["name"]
                raise ApiError(409, "Conflict", f"node name {node_name} is already registered in cluster {where} by "
                               f"machine {n['machineId']} ({n['hostname']}, {n['ipAddress']}); remove that node first")
            existing = n
        created, created_ts = _now()
        info = {"cpu": {"count": int(reg.get("cpu") or 1)},
                "memory": {"memTotalKiB": int(reg.get("memoryKiB") or 0)},
                "os": {"operatingSystem": str(reg.get("os") or "linux"), "kernelVersion": str(reg.get("kernel") or "")}}
        if existing is None:
            node = {
                "id": f"{cluster['id']}:m-{_lower_alnum(5)}", "type": "node", "baseType": "node", "name": "",
                "clusterId": cluster["id"], "namespaceId": cluster["id"], "provider": cluster["provider"],
                "hostname": hostname, "requestedHostname": node_name, "nodeName": node_name,
                "ipAddress": address, "externalIpAddress": external, "machineId": machine_id,
                "state": "active", "transitioning": "no", "transitioningMessage": "",
                "created": created, "createdTS": created_ts, "uuid": str(uuid.uuid4()), "imported": False,
                **role, "labels": {}, "annotations": {}, "taints": clean_taints,
                "customConfig": {"type": "/v3/schemas/customConfig", "address": external, "internalAddress": address,
                                 "label": dict(labels), "taints": clean_taints},
                "info": info, "agentKind": kind or "", "agentVersion": str(reg.get("agentVersion") or ""),
            }
        else:
            node = existing
            node.update({"hostname": hostname, "ipAddress": address, "externalIpAddress": external, "info": info})
        try:
            self._sink_for(cluster["id"]).upsert(node)
        except ApiError:
            raise
        except Exception as exc:
            raise ApiError(503, "ServiceUnavailable", f"creating Node {node_name}: {exc}") from exc
        if existing is None:
            from labctl.rancher.kube import node_manifest

            node["labels"] = node_manifest(node)["metadata"]["labels"]
            self.state["nodes"][node["id"]] = node
        node["_lastSeen"] = time.time()
        node["lastHeartbeat"] = created
        self._save()
        return _json(201 if existing is None else 200, {
            "nodeId": node["id"], "clusterId": cluster["id"], "clusterName": cluster["name"],
            "nodeName": node_name, "heartbeatSeconds": self.heartbeat_seconds, "new": existing is None})

    def _heartbeat(self, cluster: dict, data: dict) -> Response:
        nid = data.get("nodeId") if isinstance(data, dict) else None
        node = self.state["nodes"].get(str(nid))
        if node is None or node["clusterId"] != cluster["id"]:
            raise ApiError(410, "Gone", f"node {nid} is no longer registered in cluster {cluster['name']}")
        try:
            self._sink_for(cluster["id"]).ensure(node)
        except Exception as exc:
            raise ApiError(503, "ServiceUnavailable", f"checking Node {node['nodeName']}: {exc}") from exc
        node["_lastSeen"] = time.time()
        node["lastHeartbeat"] = _now()[0]
        self._save()
        return _json(200, {"nodeId": node["id"], "state": "active", "heartbeatSeconds": self.heartbeat_seconds})

    # ---------------------------------------------------------------- helpers for lifecycle/tests
    def cluster_ids(self) -> dict[str, str]:
        with self.lock:
            return {c["name"]: c["id"] for c in self.state["clusters"].values()}


def _parse(body: bytes):
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "InvalidBodyContent", "request body is not valid JSON") from None


def registration_commands(provider: str, server_url: str, token: str, checksum: str, cluster_id: str) -> dict:
    """Command fields of a cluster registration token, in Rancher's formats.

    Rancher formats the provisioning-v2 node command as ``"%s curl -fL %s | sudo %s sh -s - ..."``
    with empty agent-env prefixes, hence the two spaces after ``sudo``; the RKE1 one as
    ``"sudo docker run ... -v /var/run:/var/run %s %s --server ..."``, hence two spaces
    before the image. The leading space of the v2 form is trimmed.
    """
    ca = f" --ca-checksum {checksum}" if checksum else ""
    manifest = f"{server_url}/v3/import/{token}_{cluster_id}.yaml"
    fields = {
        "manifestUrl": manifest,
        "command": f"kubectl apply -f {manifest}",
        "insecureCommand": f"curl --insecure -sfL {manifest} | kubectl apply -f -",
        "windowsNodeCommand": "",
        "insecureWindowsNodeCommand": "",
    }
    if provider == "rke":
        fields["nodeCommand"] = (
            "sudo docker run -d --privileged --restart=unless-stopped --net=host -v /etc/kubernetes:/etc/kubernetes "
            f"-v /var/run:/var/run  {AGENT_IMAGE} --server {server_url} --token {token}{ca}")
        fields["insecureNodeCommand"] = ""
    else:
        tail = f"sh -s - --server {server_url} --label 'cattle.io/os=linux' --token {token}{ca}"
        fields["nodeCommand"] = f"curl -fL {server_url}/system-agent-install.sh | sudo  {tail}"
        fields["insecureNodeCommand"] = f"curl --insecure -fL {server_url}/system-agent-install.sh | sudo  {tail}"
    return fields
