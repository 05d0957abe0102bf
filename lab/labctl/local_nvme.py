"""Lab fixture: node-local NVMe volumes for the StorageClass ``local-nvme``, a stand-in for a site's local volume
provisioner (e.g. sig-storage-local-static-provisioner), which the lab cannot run: kwok Nodes have no disks.

It does what that provisioner's contract says, through the API only: a StorageClass without a dynamic provisioner
(``kubernetes.io/no-provisioner``, ``WaitForFirstConsumer``), and per Node a fixed number of ``local``
PersistentVolumes pinned to the Node by node affinity, annotated as provisioned by it (so kube-controller-manager
leaves their reclaim to it). The real scheduler's VolumeBinding plugin then picks a Node where the pod's claims
find free volumes, and the real PV controller binds them - as with disks. When a claim is deleted its volume turns
Released; :func:`ensure` "cleans" it as the provisioner's cleaner would: deletes it and publishes it again.

The product never calls this: the job chart (charts/userchart) only names the StorageClass.
"""

from __future__ import annotations

from labctl import clusters

STORAGE_CLASS = "local-nvme"
FIXTURE_LABEL = "lab.aicluster.io/fixture"
PROVISIONER = "lab-local-nvme-provisioner"  # what the volumes' provisioned-by annotation names
DEFAULT_DISKS = 4
DEFAULT_SIZE = "1Ti"


def storage_class() -> dict:
    return {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "labels": {FIXTURE_LABEL: STORAGE_CLASS}},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
    }


def volume(node: str, disk: int, size: str = DEFAULT_SIZE) -> dict:
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"{STORAGE_CLASS}-{node}-disk{disk}", "labels": {FIXTURE_LABEL: STORAGE_CLASS},
                     "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "volumeMode": "Filesystem",
            "local": {"path": f"/mnt/nvme/disk{disk}"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
        },
    }


def ensure(cluster: str, nodes: list[str], disks: int = DEFAULT_DISKS, size: str = DEFAULT_SIZE) -> dict:
    """The StorageClass, and ``disks`` volumes per Node of ``nodes``: missing ones created, Released or Failed ones
    deleted and created again (the cleaner). Returns counts: created, recycled, available."""
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException

    api = clusters.api_client(cluster)
    storage, core = k8s.StorageV1Api(api), k8s.CoreV1Api(api)
    try:
        storage.read_storage_class(STORAGE_CLASS)
    except ApiException as exc:
        if exc.status != 404:
            raise
        storage.create_storage_class(storage_class())
    existing = {pv.metadata.name: pv for pv in
                core.list_persistent_volume(label_selector=f"{FIXTURE_LABEL}={STORAGE_CLASS}").items}
    counts = {"created": 0, "recycled": 0, "available": 0}
    for node in nodes:
        for disk in range(1, disks + 1):
            want = volume(node, disk, size)
            pv = existing.get(want["metadata"]["name"])
            if pv is not None and pv.status.phase in ("Released", "Failed") and pv.metadata.deletion_timestamp is None:
                core.delete_persistent_volume(pv.metadata.name)
                counts["recycled"] += 1
                pv = None
            if pv is None:
                _create_when_gone(core, want)
                counts["created"] += 1
            elif pv.status.phase == "Available":
                counts["available"] += 1
    return counts


def _create_when_gone(core, want: dict, attempts: int = 50) -> None:
    """Create the volume; a deleted one may still be finalizing (pv-protection): retry on 409 for a few seconds."""
    import time

    from kubernetes.client.rest import ApiException

    for _ in range(attempts):
        try:
            core.create_persistent_volume(want)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
            time.sleep(0.2)
    raise RuntimeError(f"volume {want['metadata']['name']} still exists after deletion")


def remove(cluster: str) -> None:
    """The fixture's volumes and StorageClass (volumes still bound stay until their claims go)."""
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException

    api = clusters.api_client(cluster)
    core, storage = k8s.CoreV1Api(api), k8s.StorageV1Api(api)
    core.delete_collection_persistent_volume(label_selector=f"{FIXTURE_LABEL}={STORAGE_CLASS}")
    try:
        storage.delete_storage_class(STORAGE_CLASS)
    except ApiException as exc:
        if exc.status != 404:
            raise
