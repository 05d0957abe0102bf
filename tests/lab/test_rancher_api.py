"""Rancher stand-in API (lab fixture), in-process on 127.0.0.1 with a fake node sink."""

from __future__ import annotations

import hashlib
import re

import pytest
from labctl.rancher.api import AGENT_IMAGE
from labctl.rancher.testing import InProcessStandIn

TOKEN_RE = r"[bcdfghjklmnpqrstvwxz2456789]{54}"


@pytest.fixture
def rancher(tmp_path):
    with InProcessStandIn(tmp_path / "rancher") as server:
        yield server


def _token(rancher, cluster: str) -> dict:
    status, body = rancher.request("GET", f"/v3/clusterregistrationtokens?clusterId={rancher.clusters[cluster]}")
    assert status == 200 and body["type"] == "collection"
    return body["data"][0]


def _register(rancher, cluster="worker", token=None, **overrides):
    reg = {"hostname": "gpu-a100-1", "machineId": "0123456789abcdef0123456789abcdef", "address": "10.77.0.11",
           "cpu": 128, "memoryKiB": 1073741824, "labels": {"cattle.io/os": "linux", "aicluster.io/accel": "nvidia"},
           "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
           "roles": {"worker": True}, "agentKind": "system-agent" if cluster == "worker" else "rancher-agent"}
    reg.update(overrides)
    tok = token or _token(rancher, cluster)["token"]
    return rancher.request("POST", "/lab/agent/register", reg, token=None, headers={"X-API-Tunnel-Token": tok})


def test_ping_and_cacerts(rancher):
    assert rancher.request("GET", "/ping", token=None, raw=True) == (200, b"pong")
    status, pem = rancher.request("GET", "/cacerts", token=None, raw=True)
    assert status == 200 and pem == rancher.ca_path.read_bytes()
    assert hashlib.sha256(pem).hexdigest() == rancher.ca_checksum
    status, setting = rancher.request("GET", "/v3/settings/cacerts", token=None)
    assert status == 200 and setting["type"] == "setting" and setting["value"].encode() == pem


def test_pki_files_private(rancher):
    for name in ("ca-key.pem", "server-key.pem"):
        assert (rancher.state_dir / name).stat().st_mode & 0o777 == 0o600


def test_clusters_by_name_have_rancher_ids_and_shapes(rancher):
    status, body = rancher.request("GET", "/v3/clusters?name=worker")
    assert status == 200 and body["type"] == "collection" and body["resourceType"] == "cluster"
    (rke2,) = body["data"]
    assert re.fullmatch(r"c-m-[a-z0-9]{8}", rke2["id"]) and rke2["provider"] == "rke2"
    assert rke2["links"]["clusterRegistrationTokens"].endswith(f"/v3/clusters/{rke2['id']}/clusterregistrationtokens")
    status, body = rancher.request("GET", "/v3/clusters?name=worker-rke1")
    (rke1,) = body["data"]
    assert re.fullmatch(r"c-[a-z0-9]{5}", rke1["id"]) and rke1["provider"] == "rke"
    assert rke1["rancherKubernetesEngineConfig"]["services"]["kubelet"]["extraBinds"] == []
    assert rancher.request("GET", "/v3/clusters?name=nope")[1]["data"] == []
    status, one = rancher.request("GET", f"/v3/clusters/{rke1['id']}")
    assert status == 200 and one["name"] == "worker-rke1" and one["type"] == "cluster"
    assert rancher.request("GET", "/v3/clusters/c-zzzzz")[0] == 404


def test_rke2_token_node_command_matches_rancher_format(rancher):
    tok = _token(rancher, "worker")
    assert re.fullmatch(TOKEN_RE, tok["token"])
    assert tok["type"] == "clusterRegistrationToken" and tok["id"] == f"{rancher.clusters['worker']}:default-token"
    url = rancher.url
    assert tok["nodeCommand"] == (
        f"curl -fL {url}/system-agent-install.sh | sudo  sh -s - --server {url} --label 'cattle.io/os=linux' "
        f"--token {tok['token']} --ca-checksum {rancher.ca_checksum}")
    assert tok["insecureNodeCommand"] == tok["nodeCommand"].replace("curl -fL", "curl --insecure -fL", 1)
    assert tok["manifestUrl"] == f"{url}/v3/import/{tok['token']}_{rancher.clusters['worker']}.yaml"
    assert tok["command"] == f"kubectl apply -f {tok['manifestUrl']}"
    assert tok["insecureCommand"] == f"curl --insecure -sfL {tok['manifestUrl']} | kubectl apply -f -"


def test_rke1_token_node_command_matches_rancher_format(rancher):
    tok = _token(rancher, "worker-rke1")
    assert tok["nodeCommand"] == (
        "sudo docker run -d --privileged --restart=unless-stopped --net=host -v /etc/kubernetes:/etc/kubernetes "
        f"-v /var/run:/var/run  {AGENT_IMAGE} --server {rancher.url} --token {tok['token']} "
        f"--ca-checksum {rancher.ca_checksum}")
    assert AGENT_IMAGE == "rancher/rancher-agent:v2.8.5"
    assert tok["insecureNodeCommand"] == ""  # Rancher sets it for provisioning-v2 clusters only


def test_create_token(rancher):
    cid = rancher.clusters["worker"]
    status, tok = rancher.request("POST", "/v3/clusterregistrationtokens",
                                  {"type": "clusterRegistrationToken", "clusterId": cid})
    assert status == 201 and tok["clusterId"] == cid and re.fullmatch(TOKEN_RE, tok["token"])
    assert tok["token"] != _token(rancher, "worker")["token"]
    listed = rancher.request("GET", f"/v3/clusters/{cid}/clusterregistrationtokens")[1]["data"]
    assert len(listed) == 2
    status, err = rancher.request("POST", "/v3/clusterregistrationtokens", {"type": "clusterRegistrationToken"})
    assert status == 422 and err["type"] == "error" and err["fieldName"] == "clusterId"


@pytest.mark.parametrize("token", [None, "token-abcde:wrongsecret"])
def test_unauthenticated_is_401_and_changes_nothing(rancher, token):
    cid = rancher.clusters["worker-rke1"]
    _register(rancher, "worker-rke1")
    before = (rancher.state_dir / "state.json").read_bytes()
    (nid,) = [n["id"] for n in rancher.request("GET", "/v3/nodes")[1]["data"]]
    calls = list(rancher.sink.calls)
    attempts = [
        ("GET", "/v3/clusters?name=worker", None),
        ("GET", f"/v3/clusterregistrationtokens?clusterId={cid}", None),
        ("POST", "/v3/clusterregistrationtokens", {"clusterId": cid}),
        ("PUT", f"/v3/clusters/{cid}", {"description": "hacked"}),
        ("DELETE", f"/v3/nodes/{nid}", None),
        ("PUT", f"/v3/nodes/{nid}", {"labels": {}}),
        ("GET", "/v1/provisioning.cattle.io.clusters/fleet-default/worker", None),
    ]
    for method, path, body in attempts:
        status, err = rancher.request(method, path, body, token=token)
        assert status == 401, (method, path)
        assert err == {"type": "error", "status": "401", "message": "must authenticate"}
    assert (rancher.state_dir / "state.json").read_bytes() == before
    assert rancher.sink.calls == calls
    assert len(rancher.request("GET", "/v3/nodes")[1]["data"]) == 1


def test_basic_auth_with_token_accepted(rancher):
    import base64

    basic = base64.b64encode(rancher.api_token.encode()).decode()
    status, _ = rancher.request("GET", "/v3/clusters", token=None, headers={"Authorization": f"Basic {basic}"})
    assert status == 200


def test_registration_creates_node_record_and_node(rancher):
    status, reply = _register(rancher)
    assert status == 201 and reply["new"] is True
    cid = rancher.clusters["worker"]
    assert re.fullmatch(rf"{cid}:m-[a-z0-9]{{5}}", reply["nodeId"])
    status, body = rancher.request("GET", f"/v3/nodes?clusterId={cid}")
    (node,) = body["data"]
    assert node["type"] == "node" and node["state"] == "active"
    assert node["hostname"] == "gpu-a100-1" and node["nodeName"] == "gpu-a100-1"
    assert node["ipAddress"] == "10.77.0.11" and node["machineId"] == "0123456789abcdef0123456789abcdef"
    assert node["worker"] is True and node["etcd"] is False and node["controlPlane"] is False
    assert node["labels"]["aicluster.io/accel"] == "nvidia"
    assert node["taints"][0]["key"] == "nvidia.com/gpu" and node["taints"][0]["effect"] == "NoSchedule"
    manifest = rancher.sink.nodes["gpu-a100-1"]
    assert manifest["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert manifest["metadata"]["labels"]["aicluster.io/accel"] == "nvidia"
    assert manifest["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert manifest["status"]["capacity"] == {"cpu": "128", "memory": "1073741824Ki", "pods": "110"}
    assert {"type": "InternalIP", "address": "10.77.0.11"} in manifest["status"]["addresses"]
    assert not any("gpu" in k or "npu" in k for k in manifest["status"]["capacity"])
    # filters
    assert len(rancher.request("GET", "/v3/nodes?hostname=gpu-a100-1")[1]["data"]) == 1
    assert len(rancher.request("GET", "/v3/nodes?nodeName=gpu-a100-1")[1]["data"]) == 1
    assert rancher.request("GET", "/v3/nodes?nodeName=other")[1]["data"] == []
    assert rancher.request("GET", f"/v3/nodes/{node['id']}")[1]["id"] == node["id"]
    assert rancher.request("GET", f"/v3/clusters/{cid}")[1]["nodeCount"] == 1


def test_reregistration_same_machine_is_same_node(rancher):
    first = _register(rancher)[1]
    status, again = _register(rancher, address="10.77.0.12", labels={"changed": "yes"})
    assert status == 200 and again["nodeId"] == first["nodeId"] and again["new"] is False
    (node,) = rancher.request("GET", "/v3/nodes")[1]["data"]
    assert node["ipAddress"] == "10.77.0.12"
    assert "changed" not in node["labels"]  # registration labels apply on first registration only


def test_registration_rejections(rancher):
    status, _ = _register(rancher, token="x" * 54)
    assert status == 401
    _register(rancher)
    status, err = _register(rancher, machineId="f" * 32)
    assert status == 409 and "already registered" in err["message"]
    status, err = _register(rancher, hostname="gpu-2", machineId="e" * 32,
                            taints=[{"key": "a", "value": "b", "effect": "Sometimes"}])
    assert status == 422 and err["fieldName"] == "taints"
    status, err = _register(rancher, hostname="gpu-2", machineId="e" * 32, nodeName="Bad_Name")
    assert status == 422 and err["fieldName"] == "nodeName"
    status, err = _register(rancher, hostname="gpu-2", machineId="e" * 32, agentKind="rancher-agent")
    assert status == 422 and "system-agent-install.sh" in err["message"]
    status, err = _register(rancher, "worker-rke1", hostname="gpu-2", machineId="e" * 32, agentKind="system-agent")
    assert status == 422 and "docker run" in err["message"]
    assert len(rancher.request("GET", "/v3/nodes")[1]["data"]) == 1


def test_delete_node_removes_record_and_kubernetes_node(rancher):
    reply = _register(rancher)[1]
    tok = _token(rancher, "worker")["token"]
    hb = rancher.request("POST", "/lab/agent/heartbeat", {"nodeId": reply["nodeId"]}, token=None,
                         headers={"X-API-Tunnel-Token": tok})
    assert hb[0] == 200
    status, gone = rancher.request("DELETE", f"/v3/nodes/{reply['nodeId']}")
    assert status == 200 and gone["state"] == "removing"
    assert ("delete", "gpu-a100-1") in rancher.sink.calls and "gpu-a100-1" not in rancher.sink.nodes
    assert rancher.request("GET", f"/v3/nodes/{reply['nodeId']}")[0] == 404
    assert rancher.request("GET", "/v3/nodes")[1]["data"] == []
    hb = rancher.request("POST", "/lab/agent/heartbeat", {"nodeId": reply["nodeId"]}, token=None,
                         headers={"X-API-Tunnel-Token": tok})
    assert hb[0] == 410  # the agent stops; no ghost re-registration


def test_delete_by_short_machine_id(rancher):
    reply = _register(rancher)[1]
    short = reply["nodeId"].split(":", 1)[1]
    assert rancher.request("DELETE", f"/v3/nodes/{short}")[0] == 200
    assert rancher.sink.nodes == {}


def test_heartbeat_recreates_node_deleted_behind_rancher(rancher):
    reply = _register(rancher)[1]
    rancher.sink.nodes.clear()  # someone ran kubectl delete node; the kubelet re-registers
    tok = _token(rancher, "worker")["token"]
    rancher.request("POST", "/lab/agent/heartbeat", {"nodeId": reply["nodeId"]}, token=None,
                    headers={"X-API-Tunnel-Token": tok})
    assert "gpu-a100-1" in rancher.sink.nodes


def test_sink_failure_is_503_and_no_record(rancher):
    rancher.sink.fail = RuntimeError("worker cluster is down")
    status, err = _register(rancher)
    assert status == 503 and "worker cluster is down" in err["message"]
    rancher.sink.fail = None
    assert rancher.request("GET", "/v3/nodes")[1]["data"] == []


def test_cluster_put_keeps_extra_binds(rancher, tmp_path):
    cid = rancher.clusters["worker-rke1"]
    cluster = rancher.request("GET", f"/v3/clusters/{cid}")[1]
    rke = cluster["rancherKubernetesEngineConfig"]
    binds = ["/data:/data", "/etc/resolv-src.conf:/etc/resolv-src.conf"]
    rke["services"]["kubelet"]["extraBinds"] = binds
    rke["services"]["kubelet"]["extraArgs"] = {"kube-api-burst": "30"}
    status, updated = rancher.request("PUT", f"/v3/clusters/{cid}", {**cluster, "rancherKubernetesEngineConfig": rke})
    assert status == 200 and updated["rancherKubernetesEngineConfig"]["services"]["kubelet"]["extraBinds"] == binds
    status, _ = rancher.request("PUT", f"/v3/clusters/{cid}", {"description": "GPU workers"})
    assert status == 200
    got = rancher.request("GET", f"/v3/clusters/{cid}")[1]
    assert got["description"] == "GPU workers" and got["id"] == cid
    assert got["rancherKubernetesEngineConfig"]["services"]["kubelet"]["extraBinds"] == binds
    # persisted: a restarted stand-in over the same state has the same ids and binds
    with InProcessStandIn(rancher.state_dir, api_token=rancher.api_token) as again:
        assert again.clusters == rancher.clusters
        kubelet = again.request("GET", f"/v3/clusters/{cid}")[1]["rancherKubernetesEngineConfig"]["services"]["kubelet"]
        assert kubelet["extraBinds"] == binds
        assert _token(again, "worker")["token"] == _token(rancher, "worker")["token"]


def test_cluster_put_validation(rancher):
    rke2 = rancher.clusters["worker"]
    assert rancher.request("PUT", f"/v3/clusters/{rke2}", {"rancherKubernetesEngineConfig": {}})[0] == 422
    rke1 = rancher.clusters["worker-rke1"]
    bad = {"rancherKubernetesEngineConfig": {"services": {"kubelet": {"extraBinds": ["/data"]}}}}
    assert rancher.request("PUT", f"/v3/clusters/{rke1}", bad)[0] == 422
    assert rancher.request("PUT", f"/v3/clusters/{rke1}", {"id": "c-hijck"})[1]["id"] == rke1


def test_provisioning_v1_cluster(rancher):
    status, obj = rancher.request("GET", "/v1/provisioning.cattle.io.clusters/fleet-default/worker")
    assert status == 200 and obj["id"] == "fleet-default/worker" and obj["kind"] == "Cluster"
    assert obj["status"]["clusterName"] == rancher.clusters["worker"]
    obj["spec"]["rkeConfig"]["machineGlobalConfig"]["kubelet-arg"] = ["max-pods=200"]
    status, updated = rancher.request("PUT", "/v1/provisioning.cattle.io.clusters/fleet-default/worker", obj)
    assert status == 200 and updated["metadata"]["resourceVersion"] == "2"
    status, _ = rancher.request("PUT", "/v1/provisioning.cattle.io.clusters/fleet-default/worker", obj)
    assert status == 409  # stale resourceVersion
    assert rancher.request("GET", "/v1/provisioning.cattle.io.clusters/fleet-default/worker-rke1")[0] == 404


def test_node_label_update_goes_to_kubernetes(rancher):
    reply = _register(rancher)[1]
    node = rancher.request("GET", f"/v3/nodes/{reply['nodeId']}")[1]
    labels = {k: v for k, v in node["labels"].items() if k != "aicluster.io/accel"} | {"pool": "a100"}
    status, updated = rancher.request("PUT", f"/v3/nodes/{reply['nodeId']}", {"labels": labels})
    assert status == 200 and updated["labels"] == labels
    k8s_labels = rancher.sink.nodes["gpu-a100-1"]["metadata"]["labels"]
    assert k8s_labels["pool"] == "a100" and "aicluster.io/accel" not in k8s_labels
