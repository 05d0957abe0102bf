"""Agent side of the Rancher stand-in (lab fixtures): install script, lab agent, docker shim.

Run against the in-process stand-in with a stubbed ``systemctl`` and an install prefix
(LAB_AGENT_ROOT), so nothing touches this host's /etc or systemd.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from labctl.rancher.api import fixture
from labctl.rancher.testing import InProcessStandIn
from labctl.waiting import wait_for

FIXTURES = Path(__file__).resolve().parents[2] / "lab/labctl/rancher/fixtures"
MACHINE_ID = "6f1e0c8a2b3d4e5f60718293a4b5c6d7"


@pytest.fixture
def rancher(tmp_path):
    with InProcessStandIn(tmp_path / "rancher", heartbeat_seconds=0.2) as server:
        yield server


@pytest.fixture
def machine(tmp_path):
    """An install prefix standing in for a machine's root, and a PATH with a stub systemctl."""
    root = tmp_path / "machine"
    (root / "etc").mkdir(parents=True)
    (root / "etc/machine-id").write_text(MACHINE_ID + "\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "systemctl.log"
    stub = bindir / "systemctl"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {log}\n'
                    f'case "$1" in is-active) [ -e {tmp_path}/active ] && exit 0; exit 3 ;; esac\nexit 0\n')
    stub.chmod(0o755)
    env = dict(os.environ, LAB_AGENT_ROOT=str(root), PATH=f"{bindir}:{os.environ['PATH']}")
    return {"root": root, "env": env, "log": log, "active": tmp_path / "active"}


def _token(rancher, cluster: str) -> str:
    return rancher.request("GET", f"/v3/clusterregistrationtokens?clusterId={rancher.clusters[cluster]}")[1][
        "data"][0]["token"]


def _load_agent():
    spec = importlib.util.spec_from_file_location("lab_rancher_agent", FIXTURES / "rancher-agent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("shell", ["sh", "dash", "bash"])
def test_install_scripts_parse(shell):
    if not shutil.which(shell):
        pytest.skip(f"{shell} not installed")
    for name in ("system-agent-install.sh", "system-agent-uninstall.sh"):
        subprocess.run([shell, "-n", str(FIXTURES / name)], check=True)


def test_served_install_script_is_the_fixture(rancher):
    status, body = rancher.request("GET", "/system-agent-install.sh", token=None, raw=True)
    assert status == 200 and body == fixture("system-agent-install.sh")
    status, body = rancher.request("GET", "/assets/rancher-system-agent-amd64", token=None, raw=True)
    assert status == 200 and body.startswith(b"#!/usr/bin/env python3")


def _install(rancher, machine, *args: str, checksum: str | None = None, token: str | None = None,
             token_in_env: bool = False):
    script = rancher.request("GET", "/system-agent-install.sh", token=None, raw=True)[1]
    token = token or _token(rancher, "worker")
    env = dict(machine["env"], CATTLE_TOKEN=token) if token_in_env else machine["env"]
    argv = ["sh", "-s", "-", "--server", rancher.url, "--label", "cattle.io/os=linux",
            *([] if token_in_env else ["--token", token]), "--ca-checksum", checksum or rancher.ca_checksum, *args]
    return subprocess.run(argv, input=script, env=env, capture_output=True, timeout=60, check=False)


def test_install_script_parses_flags_and_installs(rancher, machine):
    result = _install(rancher, machine, "--worker", "--node-name", "gpu-a100-1", "--label", "aicluster.io/accel=nvidia",
                      "--taints", "nvidia.com/gpu=present:NoSchedule", "--taints", "dedicated:NoExecute",
                      "--address", "10.77.0.11", "--internal-address", "10.77.0.11")
    assert result.returncode == 0, result.stderr.decode()
    root = machine["root"]
    config = root / "etc/rancher/agent/config"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    cfg = dict(line.split("=", 1) for line in config.read_text().splitlines() if "=" in line and line[0] != "#")
    assert cfg["CATTLE_SERVER"] == rancher.url and cfg["CATTLE_CA_CHECKSUM"] == rancher.ca_checksum
    assert cfg["CATTLE_LABELS"] == "cattle.io/os=linux,aicluster.io/accel=nvidia"
    assert cfg["CATTLE_TAINTS"] == "nvidia.com/gpu=present:NoSchedule,dedicated:NoExecute"
    assert cfg["CATTLE_ROLE_WORKER"] == "true" and cfg["CATTLE_ROLE_ETCD"] == "false"
    assert cfg["CATTLE_NODE_NAME"] == "gpu-a100-1" and cfg["CATTLE_ADDRESS"] == "10.77.0.11"
    assert (root / "etc/rancher/agent/ca.pem").read_bytes() == rancher.ca_path.read_bytes()
    unit = (root / "etc/systemd/system/rancher-system-agent.service").read_text()
    assert "ExecStart=/usr/bin/python3 /usr/local/bin/rancher-system-agent --config /etc/rancher/agent/config" in unit
    assert os.access(root / "usr/local/bin/rancher-system-agent", os.X_OK)
    assert os.access(root / "usr/local/bin/rancher-system-agent-uninstall.sh", os.X_OK)
    calls = machine["log"].read_text().splitlines()
    assert "daemon-reload" in calls and "restart rancher-system-agent" in calls
    assert rancher.sink.nodes == {}  # the script only installs; the agent registers


def test_install_script_takes_the_token_from_the_environment(rancher, machine):
    """As Rancher's script does when --token is absent: the role keeps the token off the command line."""
    token = _token(rancher, "worker")
    result = _install(rancher, machine, "--worker", "--node-name", "gpu-t4-1", token_in_env=True)
    assert result.returncode == 0, result.stderr.decode()
    cfg = dict(line.split("=", 1) for line in (machine["root"] / "etc/rancher/agent/config").read_text().splitlines()
               if "=" in line and line[0] != "#")
    assert cfg["CATTLE_TOKEN"] == token and cfg["CATTLE_NODE_NAME"] == "gpu-t4-1"
    # neither flag nor variable: refused
    env = {k: v for k, v in machine["env"].items() if k != "CATTLE_TOKEN"}
    script = rancher.request("GET", "/system-agent-install.sh", token=None, raw=True)[1]
    missing = subprocess.run(["sh", "-s", "-", "--server", rancher.url, "--worker"], input=script, env=env,
                             capture_output=True, timeout=60, check=False)
    assert missing.returncode == 1
    assert b"--token (or CATTLE_TOKEN in the environment) is required" in missing.stderr


def test_install_script_rejects_wrong_checksum(rancher, machine):
    result = _install(rancher, machine, "--worker", checksum="0" * 64)
    assert result.returncode == 1
    assert b"does not match given --ca-checksum" in result.stderr
    assert not (machine["root"] / "etc/rancher/agent/config").exists()


def test_install_script_rejects_bad_token_and_flags(rancher, machine):
    result = _install(rancher, machine, "--worker", token="x" * 54)
    assert result.returncode == 1 and b"rejected the registration token" in result.stderr
    for bad in (["--bogus"], ["--label", "novalue"], ["--taints", "k=v:Sometimes"], ["--node-name"]):
        result = _install(rancher, machine, *bad)
        assert result.returncode == 1, bad
        assert result.stderr.startswith(b"[ERROR]"), bad
    assert not (machine["root"] / "etc/rancher/agent/config").exists()


def test_agent_registers_heartbeats_and_stops_when_deleted(rancher, machine, monkeypatch):
    assert _install(rancher, machine, "--worker", "--label", "aicluster.io/accel=nvidia",
                    "--taints", "nvidia.com/gpu=present:NoSchedule").returncode == 0
    monkeypatch.setenv("LAB_AGENT_ROOT", str(machine["root"]))
    agent_mod = _load_agent()
    agent = agent_mod.Agent(agent_mod.read_config(str(machine["root"] / "etc/rancher/agent/config")))
    stop = threading.Event()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", agent.run(stop)), daemon=True)
    thread.start()
    try:
        nodes = wait_for(lambda: rancher.request("GET", "/v3/nodes")[1]["data"], 10, "the agent to register")
        (node,) = nodes
        import socket

        hostname = socket.gethostname()
        assert node["hostname"] == hostname and node["machineId"] == MACHINE_ID
        assert node["labels"]["aicluster.io/accel"] == "nvidia" and node["labels"]["cattle.io/os"] == "linux"
        assert node["taints"][0]["effect"] == "NoSchedule" and node["info"]["cpu"]["count"] >= 1
        assert node["info"]["memory"]["memTotalKiB"] > 0
        assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", node["ipAddress"])
        wait_for(lambda: ("ensure", node["nodeName"]) in rancher.sink.calls, 10, "a heartbeat")
        assert rancher.request("DELETE", f"/v3/nodes/{node['id']}")[0] == 200
        thread.join(10)
        assert result.get("rc") == 0
        assert rancher.request("GET", "/v3/nodes")[1]["data"] == []
        state = agent.load_state()
        assert state["removed"]
        # restarted after removal: it does not re-register
        assert agent.run(threading.Event()) == 0
        assert rancher.request("GET", "/v3/nodes")[1]["data"] == []
    finally:
        stop.set()
        thread.join(5)


def test_agent_exits_2_on_rejected_registration(rancher, machine, monkeypatch):
    assert _install(rancher, machine, "--worker", "--node-name", "Bad_Name").returncode == 0
    monkeypatch.setenv("LAB_AGENT_ROOT", str(machine["root"]))
    agent_mod = _load_agent()
    agent = agent_mod.Agent(agent_mod.read_config(str(machine["root"] / "etc/rancher/agent/config")))
    assert agent.run(threading.Event()) == agent_mod.FATAL


def _docker(machine, *args: str, env: dict | None = None):
    return subprocess.run([sys.executable, str(FIXTURES / "docker"), *args], env={**machine["env"], **(env or {})},
                          capture_output=True, text=True, timeout=60, check=False)


def _env_file(machine) -> dict[str, str]:
    text = (machine["root"] / "etc/rancher/agent/rancher-agent.env").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")


def _rke1_command(rancher) -> list[str]:
    cmd = rancher.request("GET", f"/v3/clusterregistrationtokens?clusterId={rancher.clusters['worker-rke1']}")[1][
        "data"][0]["nodeCommand"].split()
    assert cmd[:3] == ["sudo", "docker", "run"]
    return cmd[3:]


def test_docker_shim_runs_rancher_agent_node_command(rancher, machine):
    args = [*_rke1_command(rancher), "--worker", "--node-name", "npu-910b-1", "--label", "aicluster.io/accel=ascend",
            "--taints", "huawei.com/npu=present:NoSchedule"]
    result = _docker(machine, "run", *args)
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    root = machine["root"]
    env = root / "etc/rancher/agent/rancher-agent.env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    cfg = dict(line.split("=", 1) for line in env.read_text().splitlines() if "=" in line and line[0] != "#")
    assert cfg["CATTLE_AGENT_KIND"] == "rancher-agent" and cfg["CATTLE_NODE_NAME"] == "npu-910b-1"
    assert cfg["CATTLE_TAINTS"] == "huawei.com/npu=present:NoSchedule" and cfg["CATTLE_ROLE_WORKER"] == "true"
    unit = (root / "etc/systemd/system/rancher-agent.service").read_text()
    assert "--config /etc/rancher/agent/rancher-agent.env" in unit
    assert "enable rancher-agent.service" in machine["log"].read_text()
    # membership probes
    assert _docker(machine, "ps", "-q").stdout == ""  # unit not active (stub)
    machine["active"].touch()
    names = _docker(machine, "ps", "--format", "{{.Names}}").stdout.split()
    assert len(names) == 1 and names[0].startswith("lab_rancher_agent_")
    assert _docker(machine, "inspect", "--format", "{{.State.Running}}", cid[:12]).stdout.strip() == "true"
    missing = _docker(machine, "inspect", "kubelet")
    assert missing.returncode == 1 and "No such object: kubelet" in missing.stderr
    # the agent (RKE1 mode) registers and adds the kubelet "containers"
    host_ca_existed = Path("/etc/rancher/agent/rancher-agent-ca.pem").exists()
    agent_mod_env = dict(machine["env"])
    reg = subprocess.run([sys.executable, str(FIXTURES / "rancher-agent.py"), "--config", str(env), "--once"],
                         env=agent_mod_env, capture_output=True, text=True, timeout=30, check=False)
    assert reg.returncode == 0, reg.stderr
    assert (root / "etc/rancher/agent/rancher-agent-ca.pem").is_file()
    assert not host_ca_existed and not Path("/etc/rancher/agent/rancher-agent-ca.pem").exists()  # stayed in the prefix
    (node,) = rancher.request("GET", "/v3/nodes")[1]["data"]
    assert node["clusterId"] == rancher.clusters["worker-rke1"] and node["nodeName"] == "npu-910b-1"
    assert node["labels"]["aicluster.io/accel"] == "ascend"
    # rm -f stops and disables the unit
    rm = _docker(machine, "rm", "-f", names[0])
    assert rm.returncode == 0 and "disable --now rancher-agent.service" in machine["log"].read_text()
    assert _docker(machine, "ps", "-aq").stdout == ""


def test_docker_shim_refuses_wrong_checksum_and_other_images(rancher, machine):
    args = _rke1_command(rancher)
    i = args.index("--ca-checksum")
    args[i + 1] = "0" * 64
    result = _docker(machine, "run", *args)
    assert result.returncode == 1 and "does not match given --ca-checksum" in result.stderr
    result = _docker(machine, "run", "-d", "nginx:latest")
    assert result.returncode == 125 and "only rancher/rancher-agent" in result.stderr
    result = _docker(machine, "exec", "kubelet", "true")
    assert result.returncode == 1 and "unsupported by the lab docker shim" in result.stderr
    assert not (machine["root"] / "etc/systemd/system/rancher-agent.service").exists()


def _without_token(args: list[str]) -> tuple[list[str], str]:
    i = args.index("--token")
    return args[:i] + args[i + 2:], args[i + 1]


def test_docker_shim_copies_a_named_variable_from_the_client_environment(rancher, machine):
    """`-e CATTLE_TOKEN` (a name, no value) takes the docker client's value, as docker does: the role's RKE1
    join runs `docker run ... -e CATTLE_TOKEN rancher/rancher-agent:<tag> --server ...` without --token."""
    args, token = _without_token(_rke1_command(rancher))
    image = next(i for i, a in enumerate(args) if a.startswith("rancher/rancher-agent"))
    argv = [*args[:image], "-e", "CATTLE_TOKEN", *args[image:], "--worker", "--node-name", "npu-910b-2"]
    result = _docker(machine, "run", *argv, env={"CATTLE_TOKEN": token})
    assert result.returncode == 0, result.stderr
    cfg = _env_file(machine)
    assert cfg["CATTLE_TOKEN"] == token and cfg["CATTLE_NODE_NAME"] == "npu-910b-2"
    assert cfg["CATTLE_SERVER"] == rancher.url and cfg["CATTLE_ROLE_WORKER"] == "true"
    record = json.loads(next((machine["root"] / "var/lib/lab-docker/containers").glob("*.json")).read_text())
    assert token not in json.dumps(record["Args"]) and token not in record["Command"]


def test_docker_shim_env_with_value_and_unset_name(rancher, machine):
    args, token = _without_token(_rke1_command(rancher))
    image = next(i for i, a in enumerate(args) if a.startswith("rancher/rancher-agent"))
    with_value = [*args[:image], "--env", f"CATTLE_TOKEN={token}", "-e", "EXTRA=1", *args[image:], "--worker"]
    result = _docker(machine, "run", *with_value)
    assert result.returncode == 0, result.stderr
    assert _env_file(machine)["CATTLE_TOKEN"] == token and _env_file(machine)["EXTRA"] == "1"
    # a name that is not set in the client's environment is left out: no token at all
    unset = [*args[:image], "-e", "CATTLE_TOKEN", *args[image:], "--worker"]
    env = {k: v for k, v in machine["env"].items() if k != "CATTLE_TOKEN"}
    result = subprocess.run([sys.executable, str(FIXTURES / "docker"), "run", *unset], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "--token (or CATTLE_TOKEN in the environment) are required" in result.stderr
