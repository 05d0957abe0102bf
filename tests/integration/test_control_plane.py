"""The lab control planes work together: kwok readies Nodes, the scheduler honours
extended resources, the controller-manager drives Deployments to Running."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client as k8s
from labctl.waiting import wait_for

pytestmark = pytest.mark.lab
TIMEOUT = 90


def _gpu_node(name: str) -> dict:
    resources = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"kubernetes.io/hostname": name, "lab-test": "gpu"}},
        "status": {"capacity": resources, "allocatable": resources},
    }


def _deployment(name: str, gpus: int) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"lab-test": "gpu"},
                    "containers": [{"name": "cuda", "image": "nvcr.io/nvidia/cuda:12.4.0-base-ubuntu22.04",
                                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}],
                },
            },
        },
    }


@pytest.fixture
def namespace(api):
    core = k8s.CoreV1Api(api)
    name = f"cp-test-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def gpu_node(api):
    core = k8s.CoreV1Api(api)
    name = f"gpu-test-{uuid.uuid4().hex[:6]}"
    core.create_node(_gpu_node(name))
    yield name
    core.delete_node(name)


def _ready(core: k8s.CoreV1Api, node: str) -> bool:
    """Ready, and the node-lifecycle controller has taken its not-ready taint away (it lags the condition)."""
    found = core.read_node(node)
    ready = any(c.type == "Ready" and c.status == "True" for c in found.status.conditions or [])
    return ready and not [t for t in found.spec.taints or [] if t.effect in ("NoSchedule", "NoExecute")]


def _pods(core, namespace, app):
    return core.list_namespaced_pod(namespace, label_selector=f"app={app}").items


def test_gpu_node_becomes_ready_and_keeps_capacity(api, gpu_node):
    core = k8s.CoreV1Api(api)
    wait_for(lambda: _ready(core, gpu_node), TIMEOUT, f"node {gpu_node} Ready")
    node = core.read_node(gpu_node)
    assert node.status.allocatable["nvidia.com/gpu"] == "8"
    assert node.status.capacity["nvidia.com/gpu"] == "8"


def test_one_gpu_deployment_runs_on_the_gpu_node(api, gpu_node, namespace):
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    wait_for(lambda: _ready(core, gpu_node), TIMEOUT, f"node {gpu_node} Ready")
    apps.create_namespaced_deployment(namespace, _deployment("one-gpu", 1))

    def running():
        pods = _pods(core, namespace, "one-gpu")
        return pods and pods[0].status.phase == "Running" and pods[0]

    pod = wait_for(running, TIMEOUT, "one-gpu pod Running")
    assert pod.spec.node_name == gpu_node
    wait_for(lambda: (apps.read_namespaced_deployment_status("one-gpu", namespace).status.available_replicas or 0) == 1,
             TIMEOUT, "one-gpu Deployment available")


def test_nine_gpu_deployment_stays_pending_insufficient(api, gpu_node, namespace):
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    wait_for(lambda: _ready(core, gpu_node), TIMEOUT, f"node {gpu_node} Ready")
    apps.create_namespaced_deployment(namespace, _deployment("nine-gpu", 9))

    def unschedulable():
        pods = _pods(core, namespace, "nine-gpu")
        if not pods:
            return None
        for condition in pods[0].status.conditions or []:
            if condition.type == "PodScheduled" and condition.status == "False" and condition.reason == "Unschedulable":
                return pods[0], condition
        return None

    pod, condition = wait_for(unschedulable, TIMEOUT, "nine-gpu pod marked Unschedulable")
    assert pod.status.phase == "Pending"
    assert pod.spec.node_name is None
    assert "Insufficient nvidia.com/gpu" in condition.message
