"""A tiny Kubernetes API server over plain HTTP (or HTTPS with a given certificate), for unit tests of the
modules that go through kubernetes.core's client factory for real: discovery (/version, /api, /apis),
/readyz, Nodes (list, merge-patch), Secrets (get, create, merge-patch). Faults (an HTTP status, or a
dropped connection) can be queued per path."""

from __future__ import annotations

import copy
import json
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN = "fake-kube-token"


class FakeKube:
    def __init__(self, nodes=None, version="v1.36.3", secrets=None, namespaces=None, tls=None):
        """``secrets``: {(namespace, name): Secret}; ``namespaces``: those that exist (None: every one);
        ``tls``: (certificate file, key file) to serve HTTPS."""
        self.nodes = copy.deepcopy(nodes or {})
        self.version = version
        self.secrets = copy.deepcopy(secrets or {})
        self.namespaces = namespaces
        self.resource_version = 1
        self.failed_checks = []
        self.requests: list[tuple[str, str]] = []
        self.faults: list[tuple[str, str, int | None]] = []  # (method, path prefix, status; None: drop)
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                fake.handle(self, "GET")

            def do_PATCH(self):
                fake.handle(self, "PATCH")

            def do_POST(self):
                fake.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def fail(self, method, path, status, times=1):
        """Answer the next ``times`` matching requests with ``status`` (None: close the connection)."""
        self.faults.extend([(method, path, status)] * times)

    def kubeconfig(self, path: Path, token=TOKEN) -> str:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}},
                         {"name": "other", "cluster": {"server": "http://127.0.0.1:1"}}],
            "users": [{"name": "admin", "user": {"token": token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "admin"}},
                         {"name": "other", "context": {"cluster": "other", "user": "admin"}}],
        }))
        return str(path)

    # ------------------------------------------------------------------ serving
    def _send(self, handler, status, body, content_type="application/json", headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def handle(self, handler, method):
        path = handler.path
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append((method, path))
            fault = next((f for f in self.faults if f[0] == method and path.startswith(f[1])), None)
            if fault is not None:
                self.faults.remove(fault)
        if fault is not None:
            if fault[2] is None:
                handler.close_connection = True
                handler.connection.close()
                return
            self._send(handler, fault[2], {"kind": "Status", "status": "Failure", "message": "injected fault",
                                           "code": fault[2]})
            return
        if handler.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(handler, 401, {"kind": "Status", "status": "Failure", "message": "Unauthorized", "code": 401})
            return
        route = path.split("?")[0]
        secret = _SECRET_ROUTE.match(route)
        if secret is not None:
            self._secret(handler, method, secret.group("namespace"), secret.group("name"), body)
        elif method == "GET" and route == "/version":
            major, minor = self.version.lstrip("v").split(".")[:2]
            self._send(handler, 200, {"major": major, "minor": minor, "gitVersion": self.version})
        elif method == "GET" and route == "/api":
            self._send(handler, 200, {"kind": "APIVersions", "versions": ["v1"]})
        elif method == "GET" and route == "/apis":
            self._send(handler, 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        elif method == "GET" and route == "/api/v1":
            self._send(handler, 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
                 "verbs": ["get", "list", "patch"]}]})
        elif method == "GET" and route == "/readyz":
            lines = [f"[-]{check} failed" if check in self.failed_checks else f"[+]{check} ok"
                     for check in ("ping", "etcd", "informer-sync")]
            ok = not self.failed_checks
            lines.append("readyz check passed" if ok else "readyz check failed")
            self._send(handler, 200 if ok else 500, ("\n".join(lines) + "\n").encode(), "text/plain")
        elif method == "GET" and route == "/api/v1/nodes":
            with self.lock:
                items = [{"metadata": {"name": name, **copy.deepcopy(meta.get("metadata", {}))},
                          "status": copy.deepcopy(meta.get("status", {}))} for name, meta in sorted(self.nodes.items())]
            self._send(handler, 200, {"kind": "NodeList", "apiVersion": "v1", "items": items})
        elif method == "PATCH" and route.startswith("/api/v1/nodes/"):
            name = route.rsplit("/", 1)[1]
            if name not in self.nodes:
                self._send(handler, 404, {"kind": "Status", "message": f'nodes "{name}" not found', "code": 404})
                return
            patch = json.loads(body)
            with self.lock:
                meta = self.nodes[name].setdefault("metadata", {})
                for section in ("labels", "annotations"):
                    for key, value in patch.get("metadata", {}).get(section, {}).items():
                        target = meta.setdefault(section, {})
                        if value is None:
                            target.pop(key, None)
                        else:
                            target[key] = value
                answer = {"metadata": {"name": name, **copy.deepcopy(meta)}}
            self._send(handler, 200, answer)
        else:
            self._send(handler, 404, {"kind": "Status", "message": "not found", "code": 404})

    def _secret(self, handler, method, namespace, name, body):
        """GET and merge-PATCH of /api/v1/namespaces/<ns>/secrets/<name>, POST of /api/v1/namespaces/<ns>/secrets."""
        with self.lock:
            if method == "POST":
                obj = json.loads(body)
                name = obj["metadata"]["name"]
                if self.namespaces is not None and namespace not in self.namespaces:
                    status, answer = 404, {"kind": "Status", "message": f'namespaces "{namespace}" not found',
                                           "code": 404}
                elif (namespace, name) in self.secrets:
                    status, answer = 409, {"kind": "Status", "message": f'secrets "{name}" already exists',
                                           "code": 409}
                else:
                    obj["metadata"]["namespace"] = namespace
                    self.resource_version += 1
                    obj["metadata"]["resourceVersion"] = str(self.resource_version)
                    self.secrets[(namespace, name)] = obj
                    status, answer = 201, copy.deepcopy(obj)
            elif name is None or method not in ("GET", "PATCH"):
                status, answer = 405, {"kind": "Status", "message": "method not allowed", "code": 405}
            elif (namespace, name) not in self.secrets:
                status, answer = 404, {"kind": "Status", "message": f'secrets "{name}" not found', "code": 404}
            elif method == "GET":
                status, answer = 200, copy.deepcopy(self.secrets[(namespace, name)])
            else:
                obj = self.secrets[(namespace, name)]
                patch = json.loads(body)
                for section in ("labels", "annotations"):
                    _merge(obj["metadata"], section, patch.get("metadata", {}).get(section))
                _merge(obj, "data", patch.get("data"))
                self.resource_version += 1
                obj["metadata"]["resourceVersion"] = str(self.resource_version)
                status, answer = 200, copy.deepcopy(obj)
        self._send(handler, status, answer)


_SECRET_ROUTE = re.compile(r"^/api/v1/namespaces/(?P<namespace>[^/]+)/secrets(?:/(?P<name>[^/]+))?$")


def _merge(parent, section, changes):
    """JSON merge patch of one map (a null value removes the key)."""
    if not changes:
        return
    target = parent.setdefault(section, {})
    for key, value in changes.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


def ready_node(labels=None, ready=True):
    return {"metadata": {"labels": dict(labels or {})},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
