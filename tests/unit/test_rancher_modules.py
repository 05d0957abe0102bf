"""The Rancher modules against the in-process Rancher stand-in (lab/labctl/rancher/testing.py).

The retry helper runs on a fake clock (module_utils.retry's ``time``): back-off never sleeps for real.
"""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import rancher_api, retry
from ansible_collections.aicluster.platform.plugins.modules import rancher_cluster_config, rancher_node
from ansible_collections.aicluster.platform.plugins.modules import rancher_registration as registration
from fake_clock import FakeTime
from labctl.rancher.api import Response
from labctl.rancher.testing import InProcessStandIn


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(retry, "time", fake)
    return fake


@pytest.fixture(scope="module")
def rancher(tmp_path_factory):
    with InProcessStandIn(tmp_path_factory.mktemp("rancher")) as server:
        yield server


@pytest.fixture
def requests(rancher, monkeypatch):
    """Every request the stand-in answers, as (method, target); ``faults[path prefix]`` = statuses to answer
    first (then the real answer)."""
    class Seen(list):
        faults: dict

    seen = Seen()
    faults = {}
    handle = rancher.standin.handle

    def recording(method, target, headers, body):
        seen.append((method, target))
        for prefix, statuses in faults.items():
            if target.startswith(prefix) and statuses:
                status = statuses.pop(0)
                extra = {"Retry-After": "2"} if status == 429 else None
                return Response(status, b'{"type":"error","message":"injected fault"}', headers=extra)
        return handle(method, target, headers, body)

    monkeypatch.setattr(rancher.standin, "handle", recording)
    seen.faults = faults
    return seen


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
    # the registration token travels in the environment, never in the command line
    assert join["env"] == {"CATTLE_TOKEN": result["registration_token"]}
    assert "--token" not in args_ and not any(result["registration_token"] in a for a in args_)
    tail = args_[args_.index("--worker"):]
    assert tail == ["--worker", "--node-name", "gpu-2", "--label", "aicluster.io/pool=inference",
                    "--taints", "nvidia.com/gpu=present:NoSchedule"]


def test_registration_batches_one_node_list_call(rancher, requests, capsys):
    args = {**conn(rancher), "cluster_name": "worker", "machines": [machine(f"m-{i}") for i in range(20)]}
    assert run(registration, args, capsys)["_rc"] == 0
    api_calls = [r for r in requests if r[1].startswith("/v3/")]
    assert [r for r in api_calls if r[1].startswith("/v3/nodes")] == [
        ("GET", f"/v3/nodes?clusterId={rancher.clusters['worker']}")]
    assert len(api_calls) == 3  # cluster, token, nodes
    assert requests[0] == ("GET", "/cacerts")  # the CA is checked once, before the API calls


def test_registration_rke1_plan_is_docker_argv(rancher, capsys):
    args = {**conn(rancher), "cluster_name": "worker-rke1", "flow": "rke1", "machines": [machine("rke-1")]}
    result = run(registration, args, capsys)
    join = result["machines"]["rke-1"]["join"]
    argv = join["argv"]
    assert argv[:2] == ["docker", "run"] and "rancher/rancher-agent:v2.8.5" in argv
    # docker copies CATTLE_TOKEN (a name without a value) from its own environment into the container
    image = argv.index("rancher/rancher-agent:v2.8.5")
    assert argv[image - 2:image] == ["-e", "CATTLE_TOKEN"]
    assert join["env"] == {"CATTLE_TOKEN": result["registration_token"]}
    assert "--token" not in argv and not any(result["registration_token"] in a for a in argv)
    assert argv[-7:] == ["--worker", "--node-name", "rke-1", "--label", "aicluster.io/pool=inference",
                         "--taints", "nvidia.com/gpu=present:NoSchedule"]


def test_invalid_input_per_machine(rancher, capsys):
    bad = machine("gpu-9", labels={"bad key!": "x"}, taints=["nocolon"])
    args = {**conn(rancher), "cluster_name": "worker", "machines": [machine("gpu-8"), bad]}
    result = run(registration, args, capsys)
    assert "join" in result["machines"]["gpu-8"]
    problems = result["machines"]["gpu-9"]["problems"]
    assert len(problems) == 2 and "join" not in result["machines"]["gpu-9"]
    assert problems[0].startswith("label bad key!='x' is not a valid Kubernetes label: name part 'bad key!'")
    assert problems[1].startswith("taint 'nocolon' is not key[=value]:NoSchedule|PreferNoSchedule|NoExecute")


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


# ---------------------------------------------------------------- secrets off command lines
RKE2_COMMAND = ("curl -fL https://rancher.example/system-agent-install.sh | sudo  sh -s - "
                "--server https://rancher.example --label 'cattle.io/os=linux' --token tok3nSECRET "
                "--ca-checksum " + "a" * 64)
RKE1_COMMAND = ("sudo docker run -d --privileged --restart=unless-stopped --net=host "
                "-v /etc/kubernetes:/etc/kubernetes -v /var/run:/var/run  rancher/rancher-agent:v2.8.5 "
                "--server https://rancher.example --token tok3nSECRET --ca-checksum " + "a" * 64)


@pytest.mark.parametrize(("flow", "command"), [("rke2", RKE2_COMMAND), ("rke1", RKE1_COMMAND),
                                               ("rke2", RKE2_COMMAND.replace("--token tok3n", "--token=tok3n")),
                                               ("rke1", RKE1_COMMAND.replace("--token tok3n", "--token=tok3n"))])
def test_join_argv_holds_no_token_and_env_does(flow, command):
    plan = rancher_api.join_plan(command, flow, machine("gpu-1"))
    argv = plan["args"] if flow == "rke2" else plan["argv"]
    assert not any("tok3nSECRET" in word for word in argv), argv
    assert not any(word.startswith("--token") for word in argv)
    assert plan["env"] == {"CATTLE_TOKEN": "tok3nSECRET"}
    assert argv[argv.index("--server") + 1] == "https://rancher.example"
    assert argv[argv.index("--ca-checksum") + 1] == "a" * 64
    assert argv[-7:] == ["--worker", "--node-name", "gpu-1", "--label", "aicluster.io/pool=inference",
                         "--taints", "nvidia.com/gpu=present:NoSchedule"]
    if flow == "rke2":
        assert plan["script_url"] == "https://rancher.example/system-agent-install.sh"
        assert argv[:2] == ["--server", "https://rancher.example"]
    else:
        image = argv.index("rancher/rancher-agent:v2.8.5")
        assert argv[:3] == ["docker", "run", "-d"] and argv[image - 2:image] == ["-e", "CATTLE_TOKEN"]
        assert argv[image + 1:image + 3] == ["--server", "https://rancher.example"]


def test_private_registry_agent_image_is_found():
    command = RKE1_COMMAND.replace(" rancher/rancher-agent", " registry.example:5000/rancher/rancher-agent")
    argv = rancher_api.join_plan(command, "rke1", machine("gpu-1"))["argv"]
    assert argv[argv.index("registry.example:5000/rancher/rancher-agent:v2.8.5") - 1] == "CATTLE_TOKEN"


def test_node_command_without_token_is_refused():
    with pytest.raises(rancher_api.RancherError, match="carries no --token"):
        rancher_api.parse_node_command(RKE2_COMMAND.replace("--token tok3nSECRET ", ""), "rke2")
    with pytest.raises(rancher_api.RancherError, match="carries no --token") as info:
        rancher_api.parse_node_command(RKE1_COMMAND.replace("--token tok3nSECRET ", ""), "rke1")
    assert "tok3nSECRET" not in str(info.value)


def test_parse_node_command_rejects_unknown_format():
    with pytest.raises(rancher_api.RancherError, match="unexpected RKE2"):
        rancher_api.parse_node_command("echo hi", "rke2")
    with pytest.raises(rancher_api.RancherError, match="unexpected RKE1"):
        rancher_api.parse_node_command("podman run x", "rke1")
    with pytest.raises(rancher_api.RancherError, match="unexpected RKE1") as info:
        rancher_api.parse_node_command("docker run -d nginx --token tok3nSECRET", "rke1")
    assert "tok3nSECRET" not in str(info.value)


# ---------------------------------------------------------------- transient faults
def test_transient_answers_are_retried_with_back_off(rancher, requests, clock, capsys):
    requests.faults["/v3/clusters?name=worker"] = [503, 502]
    requests.faults["/v3/nodes"] = [429]
    args = {**conn(rancher), "cluster_name": "worker", "machines": [machine("t-1")]}
    result = run(registration, args, capsys)
    assert result["_rc"] == 0 and result["cluster_id"] == rancher.clusters["worker"], result
    assert clock.sleeps == [0.5, 1.0, 2]  # back-off for the 5xx; the 429's Retry-After: 2
    assert [r[1] for r in requests].count("/v3/clusters?name=worker") == 3


def test_server_that_keeps_failing_is_named_with_its_last_error(rancher, requests, clock, capsys):
    requests.faults["/v3/clusters?name=worker"] = [503] * 100
    args = {**conn(rancher, timeout=20), "cluster_name": "worker"}
    result = run(registration, args, capsys)
    assert result["_rc"] == 1 and not result["changed"]
    assert result["msg"].startswith(f"Rancher kept failing: GET {rancher.url}/v3/clusters?name=worker: "
                                    "no success within ")
    assert result["msg"].endswith("last error: HTTP 503 Service Unavailable")
    assert sum(clock.sleeps) <= 20 and len(clock.sleeps) >= 4


def test_unreachable_rancher_is_retried_within_the_timeout(clock, capsys):
    args = {"url": "https://127.0.0.1:1", "api_token": "token-x:y", "ca_checksum": "a" * 64, "timeout": 10,
            "cluster_name": "worker"}
    result = run(registration, args, capsys)
    assert result["_rc"] == 1
    assert result["msg"].startswith("cannot reach Rancher at https://127.0.0.1:1: GET https://127.0.0.1:1/cacerts: "
                                    "no success within ")
    assert "Connection refused" in result["msg"]
    assert 0 < sum(clock.sleeps) <= 10


def test_retried_delete_whose_first_answer_was_lost(rancher, requests, clock, capsys):
    """The node is deleted but the answer is a 502; the retry then gets 404: the node is gone, as wanted."""
    register(rancher, "lost-1")
    node_id = next(n["id"] for n in rancher.request("GET", "/v3/nodes")[1]["data"] if n["nodeName"] == "lost-1")
    handle = rancher.standin.handle
    answers = []

    def delete_then_502(method, target, headers, body):
        response = handle(method, target, headers, body)
        if method == "DELETE" and not answers:
            answers.append(response.status)
            return Response(502, b'{"message":"bad gateway"}')
        return response

    rancher.standin.handle = delete_then_502
    try:
        args = {**conn(rancher), "cluster_name": "worker",
                "machines": [{"name": "lost-1", "node_name": "lost-1", "hostname": "lost-1"}]}
        result = run(rancher_node, args, capsys)
    finally:
        rancher.standin.handle = handle
    assert result["_rc"] == 0 and result["removed"] == ["lost-1"], result
    assert answers == [200] and clock.sleeps == [0.5]
    assert all(n["id"] != node_id for n in rancher.request("GET", "/v3/nodes")[1]["data"])


def test_client_errors_are_not_retried(rancher, requests, clock, capsys):
    requests.faults["/v3/clusters?name=worker"] = [404]
    result = run(registration, {**conn(rancher), "cluster_name": "worker"}, capsys)
    assert result["_rc"] == 1 and "Rancher answered HTTP 404 to GET /v3/clusters?name=worker" in result["msg"]
    assert clock.sleeps == []


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
