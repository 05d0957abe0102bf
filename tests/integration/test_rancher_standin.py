"""The Rancher stand-in against the live worker cluster (`lab up` first).

Registers as the lab agent would, sees the Node appear and turn Ready (kwok) with its
labels and taints, deletes it through the v3 API, and checks that a bad token changes
nothing.
"""

from __future__ import annotations

import json
import secrets
import ssl
import urllib.error
import urllib.request

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from labctl import clusters, paths
from labctl.waiting import wait_for

pytestmark = pytest.mark.lab
TIMEOUT = 60


@pytest.fixture(scope="module")
def standin() -> dict:
    d = paths.STATE_DIR / "rancher"
    server = d / "server.json"
    if not server.is_file() or not (d / "api-token").is_file():
        pytest.fail("the Rancher stand-in is not up: run `lab up` (or `lab rancher up`)")
    info = json.loads(server.read_text())
    host = "127.0.0.1" if "127.0.0.1" in info.get("bound", []) else info["server_url"].split("//")[1].split(":")[0]
    return {"base": f"https://{host}:{info['port']}", "url": info["server_url"],
            "token": (d / "api-token").read_text().strip(), "ca": str(d / "ca.pem")}


@pytest.fixture(scope="module")
def core():
    if not paths.kubeconfig_path("worker").is_file():
        pytest.fail("lab cluster worker is not up: run `lab up`")
    api = clusters.api_client("worker")
    yield k8s.CoreV1Api(api)
    api.close()


def call(standin, method, path, body=None, token="api", headers=None):
    hdrs = dict(headers or {})
    if token == "api":
        hdrs["Authorization"] = f"Bearer {standin['token']}"
    elif token:
        hdrs["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    if data:
        hdrs["Content-Type"] = "application/json"
    req = urllib.request.Request(standin["base"] + path, data=data, method=method, headers=hdrs)
    ctx = ssl.create_default_context(cafile=standin["ca"])
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=15) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _node(core, name):
    try:
        return core.read_node(name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _ready(node) -> bool:
    return node is not None and any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


@pytest.mark.parametrize(("cluster", "kind"), [("worker", "system-agent"), ("worker-rke1", "rancher-agent")])
def test_registration_creates_ready_node_and_delete_removes_it(standin, core, cluster, kind):
    status, body = call(standin, "GET", f"/v3/clusters?name={cluster}")
    assert status == 200 and len(body["data"]) == 1
    cid = body["data"][0]["id"]
    status, toks = call(standin, "GET", f"/v3/clusterregistrationtokens?clusterId={cid}")
    token = toks["data"][0]["token"]
    assert f"--token {token}" in toks["data"][0]["nodeCommand"]
    name = f"lab-itest-{secrets.token_hex(3)}"
    reg = {"hostname": name, "machineId": secrets.token_hex(16), "address": "10.77.0.250", "cpu": 8,
           "memoryKiB": 33554432, "labels": {"cattle.io/os": "linux", "aicluster.io/itest": "yes"},
           "taints": [{"key": "aicluster.io/itest", "value": "yes", "effect": "NoSchedule"}],
           "roles": {"worker": True}, "agentKind": kind}
    try:
        status, _ = call(standin, "POST", "/lab/agent/register", reg, token=None,
                         headers={"X-API-Tunnel-Token": "x" * 54})
        assert status == 401
        assert _node(core, name) is None
        status, reply = call(standin, "POST", "/lab/agent/register", reg, token=None,
                             headers={"X-API-Tunnel-Token": token})
        assert status == 201, reply
        wait_for(lambda: _ready(_node(core, name)), TIMEOUT, f"Node {name} Ready")
        node = _node(core, name)
        assert node.metadata.labels["aicluster.io/itest"] == "yes"
        assert node.metadata.labels["node-role.kubernetes.io/worker"] == "true"
        # The node-lifecycle controller's own not-ready taint may still be on its way off.
        taints = [(t.key, t.effect) for t in node.spec.taints if not t.key.startswith("node.kubernetes.io/")]
        assert taints == [("aicluster.io/itest", "NoSchedule")]
        assert node.status.capacity["cpu"] == "8" and node.status.capacity["pods"] == "110"
        assert not [r for r in node.status.capacity if "gpu" in r or "npu" in r]
        assert {"type": "InternalIP", "address": "10.77.0.250"} in [a.to_dict() for a in node.status.addresses]
        status, nodes = call(standin, "GET", f"/v3/nodes?clusterId={cid}&nodeName={name}")
        assert status == 200 and [n["id"] for n in nodes["data"]] == [reply["nodeId"]]
        status, _ = call(standin, "DELETE", f"/v3/nodes/{reply['nodeId']}", token="token-abcde:wrong")
        assert status == 401 and _node(core, name) is not None
        status, _ = call(standin, "DELETE", f"/v3/nodes/{reply['nodeId']}")
        assert status == 200
        wait_for(lambda: _node(core, name) is None, TIMEOUT, f"Node {name} to be deleted")
        assert call(standin, "GET", f"/v3/nodes?nodeName={name}")[1]["data"] == []
    finally:
        for n in call(standin, "GET", f"/v3/nodes?nodeName={name}")[1]["data"]:
            call(standin, "DELETE", f"/v3/nodes/{n['id']}")
        if _node(core, name) is not None:
            core.delete_node(name)
