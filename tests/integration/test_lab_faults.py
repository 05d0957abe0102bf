"""Faults on purpose against the live lab: the worker cluster's kube-apiserver restarted (and
killed under `lab up`'s feet) comes back serving the same objects, and the old process leaves
neither its port nor a zombie behind. Run it alone under the lab lock:

    flock /tmp/aicluster-lab.lock .venv/bin/pytest -q -m lab tests/integration/test_lab_faults.py
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client as k8s
from labctl import clusters, procs
from labctl.waiting import wait_for

pytestmark = pytest.mark.lab
CLUSTER = "worker"


def _spec() -> clusters.ClusterSpec:
    return next(s for s in clusters.specs() if s.name == CLUSTER)


def _zombie_apiservers() -> list[int]:
    """kube-apiserver processes that exited but were not reaped."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:]
        if name == "kube-apiserver" and rest.startswith("Z"):
            found.append(int(stat.parent.name))
    return found


@pytest.fixture
def marker():
    """A ConfigMap in the worker cluster that must outlive the restart."""
    if not clusters.paths.kubeconfig_path(CLUSTER).is_file():
        pytest.fail(f"lab cluster {CLUSTER} is not up: run `lab up` (the test command does)")
    name = f"fault-test-{uuid.uuid4().hex[:6]}"
    api = clusters.api_client(CLUSTER)
    try:
        k8s.CoreV1Api(api).create_namespaced_config_map("default", {"metadata": {"name": name},
                                                                    "data": {"before": "restart"}})
    finally:
        api.close()
    yield name
    api = clusters.api_client(CLUSTER)
    try:
        k8s.CoreV1Api(api).delete_namespaced_config_map(name, "default")
    finally:
        api.close()


def _objects_still_there(marker: str, nodes_before: tuple[int, int]) -> None:
    api = clusters.api_client(CLUSTER)
    try:
        cm = k8s.CoreV1Api(api).read_namespaced_config_map(marker, "default", _request_timeout=10)
    finally:
        api.close()
    assert cm.data == {"before": "restart"}
    assert clusters.nodes_ready(CLUSTER)[1] == nodes_before[1]


def test_restarted_apiserver_serves_the_same_objects_and_leaves_nothing_behind(marker):
    nodes_before = clusters.nodes_ready(CLUSTER)
    old = clusters.component_pid(CLUSTER)
    assert old is not None
    # SIGKILL after 5 s: a graceful stop waits ~60 s on open watches, and the objects must survive either way
    # (the graceful exit is what the next test waits out).
    result = clusters.restart_apiserver(CLUSTER, down_seconds=1, stop_timeout=5, log=lambda m: None)
    print(f"restart: {result}")
    assert result["old_pid"] == old and result["new_pid"] != old
    assert not procs.alive(old)
    assert clusters.readyz(CLUSTER)
    assert procs.port_owners(_spec().apiserver_port) == [result["new_pid"]]
    assert clusters.component_pid(CLUSTER) == result["new_pid"]
    _objects_still_there(marker, nodes_before)
    wait_for(lambda: not _zombie_apiservers(), 30, "exited kube-apiservers to be reaped")


def test_lab_up_waits_out_an_apiserver_that_is_still_exiting(marker):
    nodes_before = clusters.nodes_ready(CLUSTER)
    old = clusters.component_pid(CLUSTER)
    assert old is not None
    os.kill(old, signal.SIGTERM)  # what a restart or an interrupted `lab down` leaves: a dying kube-apiserver
    messages: list[str] = []
    started = time.monotonic()
    actions = clusters.up(log=messages.append)
    print(f"lab up after SIGTERM: {actions} in {time.monotonic() - started:.1f}s: {messages}")
    assert actions[CLUSTER] == "started", (actions, messages)
    # it saw the exiting process and waited for it, instead of 180 s on /readyz and a failure
    assert any(f"kube-apiserver (pid {old}) runs but does not serve" in m for m in messages), messages
    assert not procs.alive(old)
    new = clusters.component_pid(CLUSTER)
    assert new not in (None, old)
    assert procs.port_owners(_spec().apiserver_port) == [new]
    assert clusters.readyz(CLUSTER)
    _objects_still_there(marker, nodes_before)
