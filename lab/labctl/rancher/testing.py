"""Run the Rancher stand-in in-process (tests): 127.0.0.1, a random port, an injected node sink.

    with InProcessStandIn(tmp_path) as rancher:
        status, body = rancher.request("GET", "/v3/clusters?name=worker")
        rancher.sink.nodes        # what would be in the worker cluster
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.error
import urllib.request
from pathlib import Path

from labctl.rancher.api import DEFAULT_CLUSTERS, StandIn, new_api_token
from labctl.rancher.kube import node_manifest
from labctl.rancher.pki import ensure_pki
from labctl.rancher.server import StandInServer, tls_context

API = "<the stand-in's API token>"


class FakeSink:
    """A NodeSink that keeps Node manifests in a dict and records every call."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail: Exception | None = None

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def upsert(self, node: dict) -> bool:
        self._check()
        self.calls.append(("upsert", node["nodeName"]))
        if node["nodeName"] in self.nodes:
            return False
        self.nodes[node["nodeName"]] = node_manifest(node)
        return True

    def ensure(self, node: dict) -> bool:
        self._check()
        self.calls.append(("ensure", node["nodeName"]))
        if node["nodeName"] in self.nodes:
            return False
        self.nodes[node["nodeName"]] = node_manifest(node)
        return True

    def set_labels(self, name: str, labels: dict) -> None:
        self._check()
        self.calls.append(("set_labels", name))
        if name in self.nodes:
            current = self.nodes[name]["metadata"]["labels"]
            for k, v in labels.items():
                if v is None:
                    current.pop(k, None)
                else:
                    current[k] = v

    def delete(self, name: str) -> bool:
        self._check()
        self.calls.append(("delete", name))
        return self.nodes.pop(name, None) is not None


class InProcessStandIn:
    def __init__(self, state_dir: Path, *, clusters=DEFAULT_CLUSTERS, heartbeat_seconds: float = 15,
                 sink: FakeSink | None = None, api_token: str | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.pki = ensure_pki(self.state_dir)
        self.api_token = api_token or new_api_token()
        self.sink = sink or FakeSink()
        self.server = StandInServer(("127.0.0.1", 0), None, tls_context(self.pki.server_cert, self.pki.server_key))
        self.port = self.server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.standin = StandIn(api_token=self.api_token, server_url=self.url, ca_pem=self.pki.ca_pem,
                               sinks={"worker": self.sink}, state_path=self.state_dir / "state.json",
                               clusters=clusters, heartbeat_seconds=heartbeat_seconds)
        self.server.standin = self.standin
        self.ca_path = self.pki.ca_cert
        self.ca_checksum = self.pki.ca_checksum
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def clusters(self) -> dict[str, str]:
        return self.standin.cluster_ids()

    def request(self, method: str, path: str, body=None, *, token: str | None = API,
                headers: dict | None = None, raw: bool = False):
        """(status, parsed JSON or bytes). token=API sends the API token; None sends none."""
        hdrs = dict(headers or {})
        if token is API:
            hdrs["Authorization"] = f"Bearer {self.api_token}"
        elif token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)  # noqa: S310
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:  # noqa: S310
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        if raw:
            return status, payload
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, payload

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> InProcessStandIn:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
