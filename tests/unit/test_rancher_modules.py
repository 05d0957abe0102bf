"""The Rancher modules against the in-process Rancher stand-in (lab/labctl/rancher/testing.py)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import rancher_api
from ansible_collections.aicluster.platform.plugins.modules import rancher_cluster_config, rancher_node
from ansible_collections.aicluster.platform.plugins.modules import rancher_registration as registration
from labctl.rancher.testing import InProcessStandIn


@pytest.fixture(scope="module")
def rancher(tmp_path_factory):
    with InProcessStandIn(tmp_path_factory.mktemp("rancher")) as server:
        yield server


def run(module, args, capsys, check_mode=False, diff=False):
    if check_mode:
        args = {**args, "_ansible_check_mode": True}
    if diff:
        args = {**args, "_ansible_diff": True}
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


def conn(rancher, **over):
    return {"url": rancher.url, "api_token": rancher.api_token, "ca_checksum": rancher.ca_checksum, **over}


def machine(name, **over):
    return {"name": name, "node_name": name, "hostname": name, "machine_id": f"{name:0<32}"[:32],
            "labels": {"aicluster.io/pool": "inference"}, "taints": ["nvidia.com/gpu=present:NoSchedule"], **over}


def register(rancher, name, cluster="worker"):
    status, body = rancher.request("GET", f"/v3/clusterregistrationtokens?clusterId={rancher.clusters[cluster]}")
    token = body["data"][0]["token"]
    reg = {"hostname": name, "machineId": f"{name:0<32}"[:32], "address": "10.77.0.50", "roles": {"worker": True},
           "agentKind": "system-agent" if cluster == "worker" else "rancher-agent"}
    status, body = rancher.request("POST", "/lab/agent/register", reg, token=None,
                                   headers={"X-API-Tunnel-Token": token})
    assert status in (200, 201), body
    return body


# ---------------------------------------------------------------- registration
def test_registration_plans_joins_and_finds_members(rancher, capsys):
    register(rancher, "gpu-1")
    args = {**conn(rancher), "cluster_name": "worker",
            "machines": [machine("gpu-1", agent_active=True), machine("gpu-2"), machine("gpu-3", agent_active=True)]}
    result = run(registration, args, capsys)
    assert result["_rc"] == 0 and not result["changed"]
    assert result["cluster_id"] == rancher.clusters["worker"]
    assert result["ca_checksum"] == rancher.ca_checksum
    m = result["machines"]
    assert m["gpu-1"]["member"] and m["gpu-1"]["node"]["nodeName"] == "gpu-1" and "join" not in m["gpu-1"]
    assert not m["gpu-2"]["member"] and not m["gpu-2"]["in_rancher"]
    # agent active but no node in Rancher (deleted there): not a member, join again
    assert not m["gpu-3"]["member"] and "join" in m["gpu-3"]
    join = m["gpu-2"]["join"]
    assert join["script_url"] == f"{rancher.url}/system-agent-install.sh"
    args_ = join["args"]
    assert args_[args_.index("--server") + 1] == rancher.url
    assert args_[args_.index("--ca-checksum") + 1] == rancher.ca_checksum
    assert args_[args_.index("--token") + 1] == result["registration_token"]
    tail = args_[args_.index("--worker"):]
    assert tail == ["--worker", "--node-name", "gpu-2", "--label", "aicluster.io/pool=inference",
                    "--taints", "nvidia.com/gpu=present:NoSchedule"]


def test_registration_batches_one_node_list_call(rancher, monkeypatch):
    client = rancher_api.RancherClient(rancher.url, rancher.api_token, ca_checksum=rancher.ca_checksum)
    params = {"cluster_name": "worker", "flow": "rke2", "create_token": True,
              "machines": [machine(f"m-{i}") for i in range(20)]}
    registration.plan(client, params)
    assert [c for c in client.calls if c[1].startswith("/v3/nodes")] == [
        ("GET", f"/v3/nodes?clusterId={rancher.clusters['worker']}")]
    assert len(client.calls) == 3  # cluster, token, nodes


def test_registration_rke1_plan_is_docker_argv(rancher, capsys):
    args = {**conn(rancher), "cluster_name": "worker-rke1", "flow": "rke1", "machines": [machine("rke-1")]}
    result = run(registration, args, capsys)
    argv = result["machines"]["rke-1"]["join"]["argv"]
    assert argv[:2] == ["docker", "run"] and "rancher/rancher-agent:v2.8.5" in argv
    assert argv[-7:] == ["--worker", "--node-name", "rke-1", "--label", "aicluster.io/pool=inference",
                         "--taints", "nvidia.com/gpu=present:NoSchedule"]


def test_token_override_and_invalid_input_per_machine(rancher, capsys):
    bad = machine("gpu-9", labels={"bad key!": "x"}, taints=["nocolon"])
    args = {**conn(rancher), "cluster_name": "worker",
            "machines": [machine("gpu-8", token_override="not-the-token"), bad]}
    result = run(registration, args, capsys)
    args8 = result["machines"]["gpu-8"]["join"]["args"]
    assert args8[args8.index("--token") + 1] == "not-the-token"
    problems = result["machines"]["gpu-9"]["problems"]
    assert len(problems) == 2 and "join" not in result["machines"]["gpu-9"]


@pytest.mark.parametrize(("over", "needle"), [
    ({"api_token": "token-wrong:nope"}, "Rancher rejected the API token"),
    ({"cluster_name": "nope"}, "no cluster named 'nope'; clusters that exist: worker, worker-rke1"),
    ({"url": "https://127.0.0.1:1"}, "cannot reach Rancher at https://127.0.0.1:1"),
    ({"ca_checksum": "0" * 64}, "CA checksum mismatch"),
    ({"ca_checksum": "abc"}, "must be 64 hex digits"),
    ({"url": "http://127.0.0.1:1"}, "must be an https:// URL"),
    ({"flow": "rke1"}, "set rancher_worker_flow: rke2"),
])
def test_registration_bad_input(rancher, capsys, over, needle):
    args = {**conn(rancher), "cluster_name": "worker", "machines": [machine("x-1")], **over}
    result = run(registration, args, capsys)
    assert result["_rc"] == 1 and result["failed"] and not result["changed"]
    assert needle in result["msg"]
    assert rancher.api_token not in json.dumps(result)


def test_no_checksum_uses_trust_store(rancher, capsys):
    result = run(registration, {**conn(rancher, ca_checksum=""), "cluster_name": "worker"}, capsys)
    assert result["failed"] and "TLS verification" in result["msg"]
    result = run(registration, {**conn(rancher, ca_checksum="", ca_path=str(rancher.ca_path)),
                                "cluster_name": "worker"}, capsys)
    assert result["_rc"] == 0


def test_token_created_when_none(tmp_path, capsys):
    with InProcessStandIn(tmp_path / "r") as rancher:
        rancher.standin.state["tokens"].clear()
        args = {**conn(rancher), "cluster_name": "worker", "machines": [machine("n-1")]}
        check = run(registration, args, capsys, check_mode=True)
        assert check["changed"] and "join" not in check["machines"]["n-1"]
        assert not rancher.standin.state["tokens"]
        result = run(registration, args, capsys)
        assert result["changed"] and result["machines"]["n-1"]["join"]
        again = run(registration, args, capsys)
        assert not again["changed"]


def test_parse_node_command_rejects_unknown_format():
    with pytest.raises(rancher_api.RancherError, match="unexpected RKE2"):
        rancher_api.parse_node_command("echo hi", "rke2")
    with pytest.raises(rancher_api.RancherError, match="unexpected RKE1"):
        rancher_api.parse_node_command("podman run x", "rke1")


# ---------------------------------------------------------------- node removal
def test_rancher_node_removes_and_is_idempotent(rancher, capsys):
    register(rancher, "gone-1")
    ids = [{k: machine(n)[k] for k in ("name", "node_name", "hostname", "machine_id")} for n in ("gone-1", "x-2")]
    args = {**conn(rancher), "cluster_name": "worker", "machines": ids}
    strict = run(rancher_node, {**args, "machines": [machine("gone-1")]}, capsys)
    assert strict["failed"] and "Unsupported parameters" in strict["msg"]
    check = run(rancher_node, args, capsys, check_mode=True)
    assert check["changed"] and check["removed"] == ["gone-1"]
    assert "gone-1" in rancher.sink.nodes
    result = run(rancher_node, args, capsys)
    assert result["changed"] and result["removed"] == ["gone-1"] and "gone-1" not in rancher.sink.nodes
    again = run(rancher_node, args, capsys)
    assert not again["changed"] and again["removed"] == []


# ---------------------------------------------------------------- RKE1 extraBinds
def test_extra_binds_check_diff_apply_idempotent(rancher, capsys):
    args = {**conn(rancher), "cluster_name": "worker-rke1", "kubelet_extra_binds": ["/data/k8s:/data/k8s"]}
    check = run(rancher_cluster_config, args, capsys, check_mode=True, diff=True)
    assert check["changed"] and check["diff"]["before"] == {"extraBinds": []}
    assert check["diff"]["after"] == {"extraBinds": ["/data/k8s:/data/k8s"]}
    cid = rancher.clusters["worker-rke1"]
    kubelet = lambda: rancher.standin.state["clusters"][cid]["rancherKubernetesEngineConfig"]["services"]["kubelet"]  # noqa: E731
    assert kubelet()["extraBinds"] == []
    result = run(rancher_cluster_config, args, capsys)
    assert result["changed"] and result["added"] == ["/data/k8s:/data/k8s"]
    assert kubelet()["extraBinds"] == ["/data/k8s:/data/k8s"]
    assert kubelet()["clusterDnsServer"] == "10.43.0.10"  # the rest of the config is kept
    again = run(rancher_cluster_config, args, capsys)
    assert not again["changed"] and again["added"] == []


def test_extra_binds_keeps_existing_and_refuses_rke2(rancher, capsys):
    cid = rancher.clusters["worker-rke1"]
    rancher.standin.state["clusters"][cid]["rancherKubernetesEngineConfig"]["services"]["kubelet"]["extraBinds"] = [
        "/etc/resolv-src.conf:/etc/resolv-src.conf"]
    args = {**conn(rancher), "cluster_name": "worker-rke1", "kubelet_extra_binds": ["/data/k8s:/data/k8s"]}
    result = run(rancher_cluster_config, args, capsys)
    assert result["extra_binds"] == ["/etc/resolv-src.conf:/etc/resolv-src.conf", "/data/k8s:/data/k8s"]
    bad = run(rancher_cluster_config, {**args, "cluster_name": "worker"}, capsys)
    assert bad["failed"] and "not an RKE1 cluster" in bad["msg"]
    bad = run(rancher_cluster_config, {**args, "kubelet_extra_binds": ["data"]}, capsys)
    assert bad["failed"] and "host/path" in bad["msg"]
