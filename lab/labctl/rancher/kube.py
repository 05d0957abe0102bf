"""Where registrations land: Node objects in a real (kwok-backed) lab cluster.

The stand-in does what a kubelet plus Rancher's node syncer would do for a node that
joins: create the Node with the registration's labels and taints, annotated so that
kwok manages it (and reports it Ready), with addresses and cpu/memory/pods capacity.
Accelerator resources are never set here; device plugins advertise those later.

``NodeSink`` is the interface the server uses; tests inject a fake.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
NODE_ID_ANNOTATION = "lab.aicluster.io/rancher-node-id"


class NodeSink(Protocol):
    def upsert(self, node: dict) -> bool:
        """Create the Node for a registration record, or refresh an existing one.

        Returns True when the Node was created. Labels and taints are applied on creation
        only (registration-time labels apply on first registration, as with a real
        kubelet); later label changes go through ``set_labels``.
        """

    def ensure(self, node: dict) -> bool:
        """Re-create the Node if it is gone (a kubelet re-registers); True if created."""

    def set_labels(self, name: str, labels: dict[str, str | None]) -> None:
        """Merge-patch labels (``None`` removes a key)."""

    def delete(self, name: str) -> bool:
        """Delete the Node; True if it existed."""


def node_manifest(node: dict) -> dict:
    """The Node a registration record stands for (labels/taints as on first registration)."""
    name = node["nodeName"]
    resources = {
        "cpu": str(node.get("info", {}).get("cpu", {}).get("count") or 1),
        "memory": f"{int(node.get('info', {}).get('memory', {}).get('memTotalKiB') or 1048576)}Ki",
        "pods": "110",
    }
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
    }
    if node.get("worker"):
        labels["node-role.kubernetes.io/worker"] = "true"
    if node.get("controlPlane"):
        labels["node-role.kubernetes.io/control-plane"] = "true"
    if node.get("etcd"):
        labels["node-role.kubernetes.io/etcd"] = "true"
    labels.update(node.get("customConfig", {}).get("label") or {})
    annotations = {
        KWOK_ANNOTATION: "fake",
        NODE_ID_ANNOTATION: node["id"],
        "lab.aicluster.io/machine-id": node.get("machineId", ""),
        "management.cattle.io/cluster-id": node["clusterId"],
    }
    if node.get("provider") == "rke2":
        annotations["rke2.io/hostname"] = node.get("hostname", name)
        annotations["rke2.io/internal-ip"] = node.get("ipAddress", "")
    else:
        annotations["rke.cattle.io/internal-ip"] = node.get("ipAddress", "")
        annotations["rke.cattle.io/external-ip"] = node.get("externalIpAddress") or node.get("ipAddress", "")
    taints = [
        {k: v for k, v in (("key", t["key"]), ("value", t.get("value") or None), ("effect", t["effect"])) if v}
        for t in node.get("customConfig", {}).get("taints") or []
    ]
    spec: dict = {"taints": taints} if taints else {}
    if node.get("provider") == "rke2":
        spec["providerID"] = f"rke2://{name}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": spec,
        "status": _status(node, resources),
    }


def _status(node: dict, resources: dict) -> dict:
    addresses = [{"type": "InternalIP", "address": node.get("ipAddress", "")},
                 {"type": "Hostname", "address": node.get("hostname") or node["nodeName"]}]
    return {"addresses": [a for a in addresses if a["address"]], "capacity": resources, "allocatable": resources}


class KubeNodeSink:
    """NodeSink writing to the cluster behind a kubeconfig (kubernetes Python client)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = Path(kubeconfig)
        self._api = None
        self._stamp: int | None = None
        self._lock = threading.Lock()

    def _core(self):
        from kubernetes import client as k8s
        from kubernetes import config as k8s_config

        with self._lock:
            try:
                stamp = self.kubeconfig.stat().st_mtime_ns
            except FileNotFoundError:
                raise RuntimeError(f"kubeconfig {self.kubeconfig} does not exist (is the lab up?)") from None
            if self._api is None or stamp != self._stamp:  # `lab up` may have re-created the cluster
                if self._api is not None:
                    self._api.close()
                self._api = k8s_config.new_client_from_config(config_file=str(self.kubeconfig))
                self._stamp = stamp
            return k8s.CoreV1Api(self._api)

    def _get(self, name: str):
        from kubernetes.client.exceptions import ApiException

        try:
            return self._core().read_node(name, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def upsert(self, node: dict) -> bool:
        manifest = node_manifest(node)
        core = self._core()
        if self._get(manifest["metadata"]["name"]) is None:
            return self._create(manifest)
        name = manifest["metadata"]["name"]
        core.patch_node(name, {"metadata": {"annotations": manifest["metadata"]["annotations"]}}, _request_timeout=10)
        core.patch_node_status(name, {"status": {"addresses": manifest["status"]["addresses"]}}, _request_timeout=10)
        return False

    def ensure(self, node: dict) -> bool:
        if self._get(node["nodeName"]) is not None:
            return False
        return self._create(node_manifest(node))

    def _create(self, manifest: dict) -> bool:
        from kubernetes.client.exceptions import ApiException

        core = self._core()
        try:
            core.create_node(manifest, _request_timeout=10)
        except ApiException as exc:
            if exc.status != 409:
                raise
            return False
        # Status on create is kept by current apiservers, but make sure of it.
        core.patch_node_status(manifest["metadata"]["name"], {"status": manifest["status"]}, _request_timeout=10)
        return True

    def set_labels(self, name: str, labels: dict[str, str | None]) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._core().patch_node(name, {"metadata": {"labels": labels}}, _request_timeout=10)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def delete(self, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self._core().delete_node(name, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True
