"""A tiny Kubernetes API server over plain HTTP, for unit tests of the modules that go through
kubernetes.core's client factory for real: discovery (/version, /api, /apis), /readyz, Nodes
(list, merge-patch). Faults (an HTTP status, or a dropped connection) can be queued per path."""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOKEN = "fake-kube-token"


class FakeKube:
    def __init__(self, nodes=None, version="v1.36.3"):
        self.nodes = copy.deepcopy(nodes or {})
        self.version = version
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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
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
        if method == "GET" and route == "/version":
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


def ready_node(labels=None, ready=True):
    return {"metadata": {"labels": dict(labels or {})},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
