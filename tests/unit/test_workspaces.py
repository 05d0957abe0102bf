"""module_utils/workspaces and the workspace_plan module: every bad-input rule (the rows of roles/workspaces/README.md's
table among them), the objects of a workspace (Namespace, RoleBinding with User/Group subjects, ResourceQuota,
LimitRange, four volumes and claims on hostPath or NFS), what differs from the cluster (a converged cluster gets
nothing applied), the workspaces of users no longer listed (kept, or deleted with remove_data), the users' jobs
(charts/userchart releases: GPU type, GPU and claim quota, the chart's defaults), and the module against a small
fake API server, 200 users included. No cluster."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import plan_problems
from ansible_collections.aicluster.platform.plugins.module_utils import workspaces as ws
from ansible_collections.aicluster.platform.plugins.modules import workspace_plan
from fake_kube import FakeKube
from plan_helpers import DROP, assert_problem, merged, role_variables

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "workspaces"
CHART = REPO / "charts" / "userchart"

ALICE = {"name": "alice", "groups": ["llm-course", "ml"], "quota": {"cpu": 16, "memory": "64Gi", "gpus": 2},
         "gpu_types": ["A100"], "storage": {"gfshome": "500Gi"}}
BOB = {"name": "bob"}
CLUSTER = {"gpu_types": ["A100", "T4"], "namespaces": [], "persistentvolumes": [], "objects": []}
LABELS = {"aicluster.io/workspace": "true", "app.kubernetes.io/managed-by": "aicluster"}


def problems_of(alice=None, bob=None, settings=None, cluster=CLUSTER):
    """Problems of the standard users (alice with a quota, bob with the defaults), one of them changed."""
    return ws.problems([merged(ALICE, alice or {}), merged(BOB, bob or {})], settings or {}, cluster)


def by_kind(objects, kind, name, namespace=None):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name
                and o["metadata"].get("namespace") == namespace)


def test_the_standard_users_are_fine():
    assert problems_of() == []


# ------------------------------------------------------------------ the README's bad-input table
@pytest.mark.parametrize(("change", "problem"), [
    ({"name": "Alice"}, "user Alice: name 'Alice' is not a valid namespace name: at most 63 lower-case letters, "
                        "digits and '-', starting and ending with a letter or digit (no capitals, no '_')"),
    ({"name": "alice_b"}, "user alice_b: name 'alice_b' is not a valid namespace name: at most 63 lower-case "
                          "letters, digits and '-', starting and ending with a letter or digit (no capitals, no '_')"),
    ({"quota": {"storage": "300Gi"}}, "user alice: quota storage 300Gi is below the size of the claim gfshome (home "
                                      "20Gi, gfshome 500Gi, share 100Gi, ssdshare 100Gi): the claim would be refused"),
    ({"quota": {"storage": "600Gi"}}, "user alice: quota storage 600Gi is below the 720Gi its claims request "
                                      "together (home 20Gi, gfshome 500Gi, share 100Gi, ssdshare 100Gi): the last "
                                      "ones would be refused"),
    ({"gpu_types": ["A100", "H100"]}, "user alice: unknown GPU type H100: no Node has the label gpu-type=H100 (Nodes "
                                      "have A100, T4)"),
])
def test_the_issue_s_refusals(change, problem):
    assert problems_of(change) == [problem]


def test_two_users_mapping_to_one_namespace():
    assert problems_of(bob={"name": "alice@iiis.co"}) == ["users alice, alice@iiis.co map to one namespace alice"]
    assert problems_of(bob={"name": "alice"}) == ["user alice is listed 2 times"]


def test_no_gpu_type_label_on_any_node():
    assert problems_of(cluster={**CLUSTER, "gpu_types": []}) == [
        "user alice: unknown GPU type A100: no Node has the label gpu-type=A100 (no Node has a gpu-type label)"]


@pytest.mark.parametrize(("change", "problem"), [
    ({"name": DROP}, "users[0]: name is required"),
    ({"name": 7}, "users[0]: name must be a string, got 7"),
    ({"name": "-alice"}, "user -alice: name '-alice' is not a valid namespace name..."),
    ({"name": "a" * 64}, f"user {'a' * 64}: name '{'a' * 64}' is not a valid namespace name..."),
    ({"name": "kube-alice"}, "user kube-alice: name 'kube-alice' is a namespace Kubernetes reserves"),
    ({"name": "default"}, "user default: name 'default' is a namespace Kubernetes reserves"),
    ({"name": "alice@IIIS.co"}, "user alice@IIIS.co: name 'alice@IIIS.co': the part after '@' must be a lower-case "
                                "domain such as example.org"),
    ({"name": "alice@"}, "user alice@: name 'alice@': the part after '@' must be a lower-case domain..."),
    ({"colour": "blue"}, "user alice: unknown field colour (known: name, groups, quota, gpu_types, storage)"),
    ({"groups": "ml"}, "user alice: groups must be a list of group names (as the identity provider gives them, "
                       "without surrounding spaces), got 'ml'"),
    ({"groups": [" ml"]}, "user alice: groups must be a list of group names..."),
    ({"quota": "big"}, "user alice: quota must be a dict with cpu, memory, gpus, pvcs, storage, got 'big'"),
    ({"quota": {"disk": "1Ti"}}, "user alice: quota: unknown field disk (known: cpu, memory, gpus, pvcs, storage)"),
    ({"quota": {"cpu": "lots"}}, "user alice: quota cpu must be a Kubernetes quantity such as 8 or 500m, got 'lots'"),
    ({"quota": {"cpu": 0}}, "user alice: quota cpu must be above 0, got 0"),
    ({"quota": {"memory": "-1Gi"}}, "user alice: quota memory must be a Kubernetes quantity such as 32Gi, got '-1Gi'"),
    ({"quota": {"gpus": -1}}, "user alice: quota gpus must be at least 0, got -1"),
    ({"quota": {"gpus": "2"}}, "user alice: quota gpus must be a count (of the first of gpu_resources) or a dict of "
                               "GPU resource name: count, got '2'"),
    ({"quota": {"gpus": {"gpu": 1}}}, "user alice: quota gpus: GPU resource 'gpu' must be an extended resource name "
                                      "such as nvidia.com/gpu"),
    ({"quota": {"gpus": {"nvidia.com/gpu": 1.5}}}, "user alice: quota gpus nvidia.com/gpu: must be a whole number of "
                                                   "at least 0, got 1.5"),
    ({"quota": {"pvcs": 3}}, "user alice: quota pvcs 3 is below the 4 claims every workspace has (home, gfshome, "
                             "share, ssdshare)"),
    ({"quota": {"pvcs": "10"}}, "user alice: quota pvcs must be an integer, got '10'"),
    ({"quota": {"cpu": "500m"}}, "user alice: quota cpu 500m is below the default container limit 1 "
                                 "(container_defaults.cpu): a pod without limits could never start"),
    ({"storage": {"scratch": "1Ti"}}, "user alice: storage: unknown claim scratch (a workspace has home, gfshome, "
                                      "share, ssdshare)"),
    ({"storage": {"home": "lots"}}, "user alice: storage home must be a Kubernetes quantity such as 500Gi, got "
                                    "'lots'"),
    ({"storage": ["home"]}, "user alice: storage must be a dict of claim: size (home, gfshome, share, ssdshare), got "
                            "['home']"),
    ({"gpu_types": "A100"}, "user alice: gpu_types must be a list of GPU types (the gpu-type label values of the "
                            "Nodes, e.g. A100), got 'A100'"),
])
def test_user_rules(change, problem):
    assert_problem(problems_of(change), problem)


def test_nulls_mean_the_defaults():
    assert problems_of({"groups": None, "quota": None, "gpu_types": None, "storage": None}) == []
    assert problems_of({"quota": {"cpu": None, "memory": "64Gi"}}) == []


def test_users_must_be_a_list_of_dicts():
    assert ws.problems({"name": "alice"}) == ["users must be a list, got {'name': 'alice'}"]
    assert ws.problems(["alice"]) == ["users[0] must be a dict with name, groups, quota, gpu_types, storage, got "
                                      "'alice'"]


def test_without_cluster_facts_the_gpu_types_are_not_checked():
    assert ws.problems([merged(ALICE, {"gpu_types": ["H100"]})], {}) == []


def test_the_default_quota_is_checked_with_each_user():
    assert ws.problems([BOB], {"default_quota": {"storage": "100Gi"}}) == [
        "user bob: quota storage 100Gi is below the size of the claim gfshome (home 20Gi, gfshome 200Gi, share 100Gi, "
        "ssdshare 100Gi): the claim would be refused"]
    assert ws.problems([merged(BOB, {"quota": {"storage": "2Ti"}})], {"default_quota": {"storage": "100Gi"}}) == []


@pytest.mark.parametrize(("settings", "problem"), [
    ({"claims": {"home": {"path": "/data/k8s/home"}}}, "claims.home: path /data/k8s/home has no {user}: every user "
                                                       "would get the same home directory"),
    ({"claims": {"share": {"path": "/srv/share"}}}, "claims.share: path /srv/share is not under /data/k8s: a hostPath "
                                                    "volume must be on the filesystem every Node shares (or give "
                                                    "nfs_server)"),
    ({"claims": {"share": {"path": "/data/k8s/../etc"}}}, "claims.share: path must be an absolute path other than / "
                                                          "and without '..', got '/data/k8s/../etc'"),
    ({"claims": {"home": {"path": "/data/k8s/home/{name}"}}}, "claims.home: path /data/k8s/home/{name}: unknown "
                                                              "placeholder {name} (only {user}, the user's namespace)"),
    ({"claims": {"home": {"nfs_server": "nas example", "path": "/export/{user}"}}},
     "claims.home: nfs_server must be a host name or address (or empty for a hostPath volume under /data/k8s), got "
     "'nas example'"),
    ({"claims": {"home": {"size": "0"}}}, "claims.home: size must be above 0, got '0'"),
    ({"claims": {"home": {"mode": "rw"}}}, "claims.home: unknown field mode (known: size, path, nfs_server)"),
    ({"claims": {"scratch": {"size": "1Ti", "path": "/data/k8s/scratch"}}},
     "claims: unknown claim scratch (a workspace has home, gfshome, share, ssdshare)"),
    ({"claims": ["home"]}, "claims must be a dict of home, gfshome, share, ssdshare, got ['home']"),
    ({"container_defaults": {"request_cpu": "2"}}, "container_defaults: request_cpu 2 is above cpu 1: a request "
                                                   "cannot exceed its limit"),
    ({"container_defaults": {"memory": "two"}}, "container_defaults: memory must be a Kubernetes quantity such as "
                                                "2Gi, got 'two'"),
    ({"container_defaults": {"gpu": 1}}, "container_defaults: unknown field gpu (known: cpu, memory, request_cpu, "
                                         "request_memory)"),
    ({"default_quota": {"disk": "1Ti"}}, "default_quota: unknown field disk (known: cpu, memory, gpus, pvcs, "
                                         "storage)"),
    ({"user_domain": "IIIS.co"}, "user_domain must be empty or a lower-case domain such as example.org, got "
                                 "'IIIS.co'"),
    ({"user_prefix": "oidc: "}, "user_prefix must be a string without spaces (the API server's "
                                "--oidc-username-prefix), got 'oidc: '"),
    ({"group_prefix": 3}, "group_prefix must be a string without spaces (the API server's --oidc-groups-prefix), "
                          "got 3"),
    ({"cluster_role": "Edit"}, "cluster_role: cluster_role 'Edit' must be a DNS-1123 subdomain..."),
    ({"gpu_resources": ["gpu"]}, "gpu_resources: GPU resource 'gpu' must be an extended resource name such as "
                                 "nvidia.com/gpu"),
    ({"gpu_type_label": "gpu type"}, "gpu_type_label must be a label key such as gpu-type, got 'gpu type'"),
    ({"host_path_root": "/"}, "host_path_root must be an absolute path other than / and without '..', got '/'"),
    ({"remove_data": "yes"}, "remove_data must be true or false, got 'yes'"),
])
def test_settings_rules(settings, problem):
    assert_problem(ws.problems([ALICE], settings, CLUSTER), problem)


def test_nfs_claims_need_not_be_under_the_host_path_root():
    settings = {"claims": {"home": {"nfs_server": "nas.example.org", "path": "/export/home/{user}"},
                           "share": {"nfs_server": "10.0.0.9", "path": "/export/share"}}}
    assert ws.problems([ALICE], settings, CLUSTER) == []


# ------------------------------------------------------------------ what the cluster refuses
def namespace(name, workspace=True, phase="Active", user=None):
    labels = {"kubernetes.io/metadata.name": name}
    if workspace:
        labels.update(LABELS)
    meta = {"name": name, "labels": labels}
    if user:
        meta["annotations"] = {"aicluster.io/workspace-user": user}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta, "status": {"phase": phase}}


def volume(ns, claim, path=None, phase="Bound", labels=None, nfs=None):
    spec = {"capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": claim,
                         "uid": "1234"}}
    if nfs:
        spec["nfs"] = nfs
    else:
        spec["hostPath"] = {"path": path or f"/data/k8s/{claim}/{ns}", "type": "DirectoryOrCreate"}
    default_labels = {**LABELS, "aicluster.io/workspace-namespace": ns, "aicluster.io/workspace-claim": claim}
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"{ns}-{claim}", "labels": default_labels if labels is None else labels},
            "spec": spec, "status": {"phase": phase}}


@pytest.mark.parametrize(("cluster", "problem"), [
    ({"namespaces": [namespace("alice", workspace=False)]},
     "user alice: namespace alice exists and is not a workspace (no label aicluster.io/workspace=true): choose another "
     "name, or label the namespace to hand it over"),
    ({"namespaces": [namespace("alice", phase="Terminating")]},
     "user alice: namespace alice is being deleted (Terminating): run again once it is gone"),
    ({"persistentvolumes": [volume("alice", "home", labels={})]},
     "user alice: PersistentVolume alice-home exists and is not this workspace's (labels aicluster.io/workspace=true, "
     "aicluster.io/workspace-namespace=alice): rename or delete it"),
    ({"persistentvolumes": [volume("alice", "home", path="/data/k8s/old/alice")]},
     "user alice: PersistentVolume alice-home is on hostPath /data/k8s/old/alice and the settings put claim home on "
     "hostPath /data/k8s/home/alice: a volume's source cannot change - move the files, then delete the claim "
     "alice/home and the volume alice-home (the files stay) and run again"),
])
def test_cluster_rules(cluster, problem):
    assert problems_of(cluster={**CLUSTER, **cluster}) == [problem]


def test_a_storage_move_to_nfs_is_refused_too():
    settings = {"claims": {"home": {"nfs_server": "nas", "path": "/export/home/{user}"}}}
    found = ws.problems([ALICE], settings, {**CLUSTER, "persistentvolumes": [volume("alice", "home")]})
    assert found == ["user alice: PersistentVolume alice-home is on hostPath /data/k8s/home/alice and the settings put "
                     "claim home on NFS nas:/export/home/alice: a volume's source cannot change - move the files, then "
                     "delete the claim alice/home and the volume alice-home (the files stay) and run again"]


def test_the_error_integer_test_and_display_are_plan_problems():
    assert issubclass(ws.WorkspaceError, plan_problems.PlanError)
    assert ws.is_int is plan_problems.is_int and ws._show is plan_problems.show
    assert str(ws.WorkspaceError(["a", "b"])) == "a; b" and ws.WorkspaceError(("a",)).problems == ["a"]


def test_plan_raises_with_every_problem_and_generates_nothing():
    with pytest.raises(ws.WorkspaceError, match=r"user Alice_B: name 'Alice_B' is not a valid namespace name") as info:
        ws.plan([merged(ALICE, {"name": "Alice_B", "gpu_types": ["H100"], "quota": {"storage": "1Gi"}})], {}, CLUSTER)
    assert len(info.value.problems) == 3


# ------------------------------------------------------------------ the objects
def test_the_objects_of_a_new_workspace():
    result = ws.plan([ALICE], {}, CLUSTER)
    assert [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in result["apply"]] == [
        ("Namespace", None, "alice"), ("ResourceQuota", "alice", "workspace-quota"),
        ("LimitRange", "alice", "workspace-defaults"), ("RoleBinding", "alice", "workspace-edit"),
        ("PersistentVolume", None, "alice-home"), ("PersistentVolume", None, "alice-gfshome"),
        ("PersistentVolume", None, "alice-share"), ("PersistentVolume", None, "alice-ssdshare"),
        ("PersistentVolumeClaim", "alice", "home"), ("PersistentVolumeClaim", "alice", "gfshome"),
        ("PersistentVolumeClaim", "alice", "share"), ("PersistentVolumeClaim", "alice", "ssdshare")]
    objects = result["apply"]
    assert by_kind(objects, "Namespace", "alice") == {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "alice", "labels": LABELS,
                     "annotations": {"aicluster.io/workspace-user": "alice", "aicluster.io/gpu-types": "A100"}}}
    assert by_kind(objects, "ResourceQuota", "workspace-quota", "alice")["spec"] == {"hard": {
        "requests.cpu": "16", "limits.cpu": "16", "requests.memory": "64Gi", "limits.memory": "64Gi",
        "requests.nvidia.com/gpu": "2", "persistentvolumeclaims": "10", "requests.storage": "1Ti"}}
    assert by_kind(objects, "LimitRange", "workspace-defaults", "alice")["spec"] == {"limits": [{
        "type": "Container", "default": {"cpu": "1", "memory": "2Gi"},
        "defaultRequest": {"cpu": "100m", "memory": "256Mi"}}]}
    binding = by_kind(objects, "RoleBinding", "workspace-edit", "alice")
    assert binding["apiVersion"] == "rbac.authorization.k8s.io/v1"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"},
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "llm-course"},
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "ml"}]
    assert all(s["kind"] != "ServiceAccount" for s in binding["subjects"])
    assert by_kind(objects, "PersistentVolume", "alice-gfshome") == {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "alice-gfshome", "labels": {**LABELS, "aicluster.io/workspace-namespace": "alice",
                                                         "aicluster.io/workspace-claim": "gfshome"}},
        "spec": {"capacity": {"storage": "500Gi"}, "accessModes": ["ReadWriteMany"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "", "volumeMode": "Filesystem",
                 "hostPath": {"path": "/data/k8s/gfshome/alice", "type": "DirectoryOrCreate"},
                 "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "alice",
                              "name": "gfshome"}}}
    assert by_kind(objects, "PersistentVolume", "alice-share")["spec"]["hostPath"]["path"] == "/data/k8s/share"
    assert by_kind(objects, "PersistentVolumeClaim", "gfshome", "alice") == {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "gfshome", "namespace": "alice", "labels": LABELS},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeMode": "Filesystem",
                 "volumeName": "alice-gfshome", "resources": {"requests": {"storage": "500Gi"}}}}
    assert result["workspaces"]["alice"]["state"] == "new"
    assert result["counts"] == {"workspaces": 1, "objects": 12, "apply": 12, "unchanged": 0, "recreate": 0,
                                "delete": 0, "kept": 0, "jobs": 0}


def test_default_quota_without_gpus_still_limits_them_to_zero():
    hard = by_kind(ws.plan([BOB], {}, CLUSTER)["apply"], "ResourceQuota", "workspace-quota", "bob")["spec"]["hard"]
    assert hard["requests.nvidia.com/gpu"] == "0"
    assert "aicluster.io/gpu-types" not in by_kind(ws.plan([BOB], {}, CLUSTER)["apply"], "Namespace",
                                                   "bob")["metadata"]["annotations"]


def test_gpus_per_resource_name():
    settings = {"gpu_resources": ["nvidia.com/gpu", "huawei.com/Ascend910"]}
    user = merged(ALICE, {"quota": {"gpus": {"huawei.com/Ascend910": 4, "amd.com/gpu": 1}}})
    hard = by_kind(ws.plan([user], settings, CLUSTER)["apply"], "ResourceQuota", "workspace-quota",
                   "alice")["spec"]["hard"]
    assert {k: v for k, v in hard.items() if k.startswith("requests.") and "/" in k} == {
        "requests.nvidia.com/gpu": "0", "requests.huawei.com/Ascend910": "4", "requests.amd.com/gpu": "1"}
    hard = by_kind(ws.plan([merged(ALICE, {"quota": {"gpus": 3}})], settings, CLUSTER)["apply"], "ResourceQuota",
                   "workspace-quota", "alice")["spec"]["hard"]
    assert hard["requests.nvidia.com/gpu"] == "3" and hard["requests.huawei.com/Ascend910"] == "0"


def test_identity_prefixes_and_domain():
    settings = {"user_prefix": "oidc:", "group_prefix": "ldap:", "user_domain": "iiis.co"}
    result = ws.plan([ALICE, {"name": "bob@other.org", "groups": ["ml", "ml"]}], settings, CLUSTER)
    assert by_kind(result["apply"], "RoleBinding", "workspace-edit", "alice")["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "oidc:alice@iiis.co"},
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "ldap:llm-course"},
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "ldap:ml"}]
    assert by_kind(result["apply"], "RoleBinding", "workspace-edit", "bob")["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "oidc:bob@other.org"},
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "ldap:ml"}]
    assert by_kind(result["apply"], "Namespace", "bob")["metadata"]["annotations"] == {
        "aicluster.io/workspace-user": "bob@other.org"}


def test_nfs_volumes_and_another_cluster_role():
    settings = {"cluster_role": "aicluster-workspace-user",
                "claims": {"home": {"nfs_server": "nas.example.org", "path": "/export/home/{user}", "size": "50Gi"}}}
    result = ws.plan([ALICE], settings, CLUSTER)
    pv = by_kind(result["apply"], "PersistentVolume", "alice-home")
    assert pv["spec"]["nfs"] == {"server": "nas.example.org", "path": "/export/home/alice"}
    assert "hostPath" not in pv["spec"] and pv["spec"]["capacity"] == {"storage": "50Gi"}
    assert by_kind(result["apply"], "RoleBinding", "workspace-edit", "alice")["roleRef"]["name"] == \
        "aicluster-workspace-user"
    assert result["workspaces"]["alice"]["claims"]["home"] == {"size": "50Gi",
                                                               "volume": "NFS nas.example.org:/export/home/alice"}


def test_container_defaults():
    settings = {"container_defaults": {"cpu": 2, "memory": "4Gi", "request_cpu": "0.5"}}
    spec = by_kind(ws.plan([ALICE], settings, CLUSTER)["apply"], "LimitRange", "workspace-defaults", "alice")["spec"]
    assert spec["limits"][0]["default"] == {"cpu": "2", "memory": "4Gi"}
    assert spec["limits"][0]["defaultRequest"] == {"cpu": "0.5", "memory": "256Mi"}


@pytest.mark.parametrize(("value", "expected"), [("8", 8), (8, 8), ("500m", 0.5), ("1.5", 1.5), ("20Gi", 20 * 2**30),
                                                 ("1k", 1000), (".5", 0.5), ("-1", None), ("1e3", None), (True, None),
                                                 ("Gi", None), (None, None)])
def test_parse_quantity(value, expected):
    assert ws.parse_quantity(value) == expected


# ------------------------------------------------------------------ what differs from the cluster
def as_served(obj):
    """``obj`` as the API server lists it: status and server fields added, quantities in canonical form, empty
    strings of a PersistentVolume left out, kind and apiVersion kept (the module adds them back to list items)."""
    served = copy.deepcopy(obj)
    meta = served["metadata"]
    meta.update(uid="u-" + meta["name"], resourceVersion="7", creationTimestamp="2025-01-01T00:00:00Z")
    if served["kind"] == "Namespace":
        meta["labels"]["kubernetes.io/metadata.name"] = meta["name"]
        served["status"] = {"phase": "Active"}
    if served["kind"] == "PersistentVolume":
        served["spec"].pop("storageClassName")
        served["spec"]["claimRef"].update(uid="c-1", resourceVersion="9")
        served["status"] = {"phase": "Bound"}
    if served["kind"] == "PersistentVolumeClaim":
        served["status"] = {"phase": "Bound", "capacity": served["spec"]["resources"]["requests"]}
    if served["kind"] == "ResourceQuota":
        served["spec"]["hard"] = {k: {"1024Gi": "1Ti"}.get(v, v) for k, v in served["spec"]["hard"].items()}
        served["status"] = {"hard": served["spec"]["hard"], "used": {}}
    return served


def cluster_with(objects, **extra):
    cluster = {"gpu_types": ["A100", "T4"], "namespaces": [], "persistentvolumes": [], "objects": []}
    for obj in map(as_served, objects):
        key = {"Namespace": "namespaces", "PersistentVolume": "persistentvolumes"}.get(obj["kind"], "objects")
        cluster[key].append(obj)
    for key, values in extra.items():
        cluster[key] = cluster[key] + values
    return cluster


def test_a_converged_cluster_gets_nothing_applied():
    first = ws.plan([ALICE, BOB], {}, CLUSTER)
    again = ws.plan([ALICE, BOB], {}, cluster_with(first["apply"]))
    assert again["apply"] == [] and again["delete"] == [] and again["kept"] == [] and again["recreate"] == []
    assert again["counts"] == {"workspaces": 2, "objects": 24, "apply": 0, "unchanged": 24, "recreate": 0,
                               "delete": 0, "kept": 0, "jobs": 0}
    assert {name: entry["state"] for name, entry in again["workspaces"].items()} == {"alice": "unchanged",
                                                                                     "bob": "unchanged"}


def test_quantities_are_compared_by_value():
    first = ws.plan([merged(ALICE, {"quota": {"storage": "1024Gi"}})], {}, CLUSTER)
    assert by_kind(first["apply"], "ResourceQuota", "workspace-quota", "alice")["spec"]["hard"]["requests.storage"] \
        == "1024Gi"
    assert ws.plan([merged(ALICE, {"quota": {"storage": "1024Gi"}})], {}, cluster_with(first["apply"]))["apply"] == []


def test_a_changed_user_gets_only_what_changed():
    cluster = cluster_with(ws.plan([ALICE, BOB], {}, CLUSTER)["apply"])
    result = ws.plan([merged(ALICE, {"quota": {"cpu": 32}, "groups": ["ml"]}), BOB], {}, cluster)
    assert [(o["kind"], o["metadata"]["name"]) for o in result["apply"]] == [("ResourceQuota", "workspace-quota"),
                                                                           ("RoleBinding", "workspace-edit")]
    assert result["workspaces"]["alice"]["state"] == "changed" and result["workspaces"]["bob"]["state"] == "unchanged"


def test_dropped_gpu_resources_and_gpu_types_are_changes_too():
    settings = {"gpu_resources": ["nvidia.com/gpu", "huawei.com/Ascend910"]}
    cluster = cluster_with(ws.plan([ALICE], settings, CLUSTER)["apply"])
    result = ws.plan([merged(ALICE, {"gpu_types": DROP})], {}, cluster)
    assert [o["kind"] for o in result["apply"]] == ["Namespace", "ResourceQuota"]
    assert "requests.huawei.com/Ascend910" not in result["apply"][1]["spec"]["hard"]


def test_an_existing_claim_keeps_its_size():
    cluster = cluster_with(ws.plan([ALICE], {}, CLUSTER)["apply"])
    result = ws.plan([merged(ALICE, {"storage": {"gfshome": "1Ti"}, "quota": {"storage": "2Ti"}})], {}, cluster)
    assert [o["kind"] for o in result["apply"]] == ["ResourceQuota"]  # not the claim, nor its volume
    assert result["notes"] == ["user alice: claim alice/gfshome stays 500Gi (wanted 1Ti): a claim bound to a pre-made "
                               "volume cannot be resized; to change it, move the files, delete the claim and its "
                               "volume and run again"]
    assert result["workspaces"]["alice"]["claims"]["gfshome"]["size"] == "500Gi"


def test_a_released_volume_is_recreated():
    applied = ws.plan([ALICE], {}, CLUSTER)["apply"]
    cluster = cluster_with([o for o in applied if o["kind"] != "PersistentVolumeClaim"])
    next(pv for pv in cluster["persistentvolumes"] if pv["metadata"]["name"] == "alice-home")["status"]["phase"] = \
        "Released"
    result = ws.plan([ALICE], {}, cluster)
    assert result["recreate"] == [{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "alice-home"}}]
    assert [(o["kind"], o["metadata"]["name"]) for o in result["apply"]] == [
        ("PersistentVolume", "alice-home"), ("PersistentVolumeClaim", "home"), ("PersistentVolumeClaim", "gfshome"),
        ("PersistentVolumeClaim", "share"), ("PersistentVolumeClaim", "ssdshare")]


# ------------------------------------------------------------------ users no longer listed
def test_a_removed_user_s_workspace_is_kept_and_reported():
    cluster = cluster_with(ws.plan([ALICE, BOB], {}, CLUSTER)["apply"])
    result = ws.plan([ALICE], {}, cluster)
    assert result["delete"] == [] and result["apply"] == []
    assert result["kept"] == [{"namespace": "bob", "user": "bob", "namespace_exists": True,
                               "volumes": ["bob-gfshome", "bob-home", "bob-share", "bob-ssdshare"]}]
    assert result["workspaces"]["bob"] == {"user": "bob", "state": "kept"}


def test_with_remove_data_a_removed_user_s_namespace_and_volumes_are_deleted():
    cluster = cluster_with(ws.plan([ALICE, BOB], {}, CLUSTER)["apply"])
    result = ws.plan([ALICE], {"remove_data": True}, cluster)
    assert result["delete"] == [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bob"}}] + [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"bob-{claim}"}}
        for claim in ("gfshome", "home", "share", "ssdshare")]
    assert result["kept"] == [] and result["workspaces"]["bob"] == {"user": "bob", "state": "deleted"}


def test_removal_leaves_other_namespaces_and_terminating_ones_alone():
    cluster = cluster_with([], namespaces=[namespace("llm", workspace=False), namespace("kube-system", False),
                                           namespace("carol", phase="Terminating", user="carol")],
                           persistentvolumes=[volume("dave", "home"), volume("llm", "model-cache", labels={})])
    result = ws.plan([], {"remove_data": True}, cluster)
    assert result["delete"] == [{"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "dave-home"}}]
    kept = ws.plan([], {}, cluster)["kept"]
    assert kept == [{"namespace": "carol", "user": "carol", "namespace_exists": True, "volumes": []},
                    {"namespace": "dave", "user": None, "namespace_exists": False, "volumes": ["dave-home"]}]


# ------------------------------------------------------------------ jobs (charts/userchart)
# alice: 2 GPUs, gpu_types [A100], claims 720Gi (home 20Gi, gfshome 500Gi, share 100Gi, ssdshare 100Gi), the default
# pvcs 10 and storage 1Ti. TRAIN fits: 1 A100, 1 replica, 2 scratch volumes of 10Gi.
TRAIN = {"user": "alice", "name": "train", "values": {"GPU": "A100", "Limits": {"GPU": 1}, "NVMEStorage": "10Gi"}}


def job(values=None, **changes):
    """TRAIN with some fields changed (``values``: merged over TRAIN's, DROP removes one)."""
    item = merged(TRAIN, changes)
    if values is not None:
        item["values"] = merged(TRAIN["values"], values)
    return item


def job_problems_of(*jobs, alice=None, settings=None, cluster=CLUSTER):
    return ws.problems([merged(ALICE, alice or {}), BOB], settings or {}, cluster, list(jobs))


def test_the_chart_defaults_are_those_of_values_yaml():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["GPU"] == ws.CHART_DEFAULTS["GPU"]
    assert values["Replicas"] == ws.CHART_DEFAULTS["Replicas"]
    assert values["Limits"]["GPU"] == ws.CHART_DEFAULTS["Limits"]["GPU"]
    assert values["NVMEStorage"] == ws.CHART_DEFAULTS["NVMEStorage"]
    assert values["Scratch"]["MountPaths"] == ws.CHART_DEFAULTS["Scratch"]["MountPaths"]
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]
    assert {"GPU", "Replicas", "Limits", "NVMEStorage", "Scratch", "NameSpace"} <= set(schema)


def test_fitting_jobs_are_fine():
    assert job_problems_of(TRAIN) == []
    assert job_problems_of(job(name="a" * 53), job(name="cpu", values={"GPU": DROP, "Limits": DROP}),
                           job(name="ns", values={"NameSpace": "alice"}),
                           job(name="empty-ns", values={"NameSpace": ""}), {"user": "bob", "name": "notebook"},
                           {"user": "bob", "name": "old", "state": "absent"}) == []


def test_a_job_of_a_user_with_a_domain_runs_in_the_namespace():
    users = [merged(BOB, {"name": "bob@iiis.co"})]
    assert ws.problems(users, {}, CLUSTER, [{"user": "bob@iiis.co", "name": "nb", "values": {"NameSpace": "bob"}}]) \
        == []
    assert ws.problems(users, {}, CLUSTER, [{"user": "bob", "name": "nb"}]) == [
        "job bob/nb: user bob is not listed in users: a job runs in its user's workspace"]


@pytest.mark.parametrize(("item", "problem"), [
    (job(user="carol"), "job carol/train: user carol is not listed in users: a job runs in its user's workspace"),
    (job(user=DROP), "jobs[0]: user is required (the name of a user in users)"),
    (job(user=7), "jobs[0]: user must be the name of a user in users, got 7"),
    (job(name=DROP), "jobs[0]: name is required (the Helm release name)"),
    (job(name="Train_1"), "job alice/Train_1: name 'Train_1' is not a valid release name: at most 53 lower-case "
                          "letters, digits and '-', starting and ending with a letter or digit"),
    (job(name="a" * 54), f"job alice/{'a' * 54}: name '{'a' * 54}' is not a valid release name: at most 53 "
                         "lower-case letters, digits and '-', starting and ending with a letter or digit"),
    (job(state="running"), "job alice/train: state must be present or absent, got 'running'"),
    (job(replicas=2), "job alice/train: unknown field replicas (known: user, name, values, state)"),
    (merged(TRAIN, {"values": "GPU=A100"}), "job alice/train: values must be a dict of the chart's values "
                                            "(charts/userchart/values.yaml), got 'GPU=A100'"),
    ("train", "jobs[0] must be a dict with user, name, values, state, got 'train'"),
    (job({"NameSpace": "bob"}), "job alice/train: values.NameSpace 'bob' is not the user's namespace alice: leave it "
                                "out, the role sets it"),
    (job({"GPU": "T4"}), "job alice/train: values.GPU T4 is not one of user alice's gpu_types (A100)"),
    (job({"Limits": {"GPU": 1}, "Replicas": 3}), "job alice/train: Limits.GPU 1 x Replicas 3 = 3 GPUs is above user "
                                                 "alice's GPU quota of 2 (requests.nvidia.com/gpu): the pods beyond "
                                                 "it would be refused"),
    (job({"Scratch": {"MountPaths": ["/s1", "/s2", "/s3", "/s4"]}, "Replicas": 2}),
     "job alice/train: quota pvcs 10 of user alice is below the 12 claims the job needs (4 workspace claims + 4 "
     "scratch volumes x 2 replicas): the scratch volumes are generic ephemeral volumes, one claim per pod and mount "
     "path, and count against the namespace's quota - the pods beyond it would be refused"),
    (job({"NVMEStorage": "200Gi"}), "job alice/train: quota storage 1Ti of user alice is below the 1120Gi the job's "
                                    "claims request (4 workspace claims 720Gi + 2 scratch volumes x 1 replica x "
                                    "NVMEStorage 200Gi): the scratch volumes are generic ephemeral volumes and count "
                                    "against the namespace's storage quota - the pods beyond it would be refused"),
])
def test_job_rules(item, problem):
    assert job_problems_of(item) == [problem]


def test_a_job_name_twice_for_one_user():
    assert job_problems_of(TRAIN, job(state="absent"), job(user="bob", values={"Limits": DROP})) == [
        "job alice/train is listed 2 times (a user's release names must differ)"]


def test_a_gpu_model_no_node_has():
    assert job_problems_of(job({"GPU": "H100"})) == [
        "job alice/train: values.GPU H100 is not a GPU type of the cluster: no Node has the label gpu-type=H100 (Nodes "
        "have A100, T4)",
        "job alice/train: values.GPU H100 is not one of user alice's gpu_types (A100)"]
    assert job_problems_of(job({"GPU": "A100"}), cluster={**CLUSTER, "gpu_types": []}) == [
        "user alice: unknown GPU type A100: no Node has the label gpu-type=A100 (no Node has a gpu-type label)",
        "job alice/train: values.GPU A100 is not a GPU type of the cluster: no Node has the label gpu-type=A100 (no "
        "Node has a gpu-type label)"]


def test_the_chart_s_gpu_model_counts_when_the_job_gives_none():
    assert job_problems_of(job({"GPU": DROP}), alice={"gpu_types": None}) == [
        "job alice/train: values.GPU RTX4090D (the chart's default) is not a GPU type of the cluster: no Node has the "
        "label gpu-type=RTX4090D (Nodes have A100, T4)"]
    assert job_problems_of(job({"GPU": "T4"}), alice={"gpu_types": None}) == []  # any type the cluster has


def test_the_gpu_model_of_a_cpu_job_is_not_checked():
    assert job_problems_of(job({"GPU": "H100", "Limits": {"GPU": 0}}), job({"GPU": "T4", "Limits": {}}, name="b")) \
        == []


def test_without_cluster_facts_a_job_s_gpu_type_is_checked_against_the_user_only():
    assert job_problems_of(job({"GPU": "H100"}), cluster=None) == [
        "job alice/train: values.GPU H100 is not one of user alice's gpu_types (A100)"]


def test_the_chart_defaults_count_in_the_quota():
    # Replicas 1, Limits.GPU 0, 2 scratch volumes of 100G: 4 + 2 claims, 720Gi + 200G
    assert job_problems_of({"user": "alice", "name": "nb"}, alice={"quota": {"pvcs": 5}}) == [
        "job alice/nb: quota pvcs 5 of user alice is below the 6 claims the job needs (4 workspace claims + 2 scratch "
        "volumes x 1 replica): the scratch volumes are generic ephemeral volumes, one claim per pod and mount path, "
        "and count against the namespace's quota - the pods beyond it would be refused"]
    assert job_problems_of({"user": "alice", "name": "nb", "values": {"Replicas": 3}}) == [
        "job alice/nb: quota storage 1Ti of user alice is below the about 1278.8Gi the job's claims request (4 "
        "workspace claims 720Gi + 2 scratch volumes x 3 replicas x NVMEStorage 100G): the scratch volumes are "
        "generic ephemeral volumes and count against the namespace's storage quota - the pods beyond it would be "
        "refused"]


def test_the_gpu_quota_is_that_of_the_first_gpu_resource():
    settings = {"gpu_resources": ["nvidia.com/gpu", "huawei.com/Ascend910"]}
    alice = {"quota": {"gpus": {"nvidia.com/gpu": 1, "huawei.com/Ascend910": 8}}}
    assert job_problems_of(job({"Limits": {"GPU": 2}}), alice=alice, settings=settings) == [
        "job alice/train: Limits.GPU 2 x Replicas 1 = 2 GPUs is above user alice's GPU quota of 1 "
        "(requests.nvidia.com/gpu): the pods beyond it would be refused"]
    assert job_problems_of(job({"Limits": {"GPU": 1}, "Replicas": 0}), alice={"quota": {"gpus": 0}}) == []


def test_an_absent_job_is_not_counted():
    assert job_problems_of(job({"GPU": "H100", "Limits": {"GPU": 8}, "Replicas": 9}, state="absent")) == []


@pytest.mark.parametrize("values", [
    {"Replicas": "3"}, {"Replicas": -1}, {"Replicas": True}, {"Limits": "big"}, {"Limits": {"GPU": "2"}},
    {"Limits": {"GPU": 1.5}}, {"GPU": 7}, {"NVMEStorage": "lots"}, {"NVMEStorage": ["1Gi"]}, {"Scratch": "/scratch"},
    {"Scratch": {"MountPaths": "/scratch"}}, {"Replicas": None, "Limits": None, "Scratch": None},
])
def test_type_errors_of_the_values_are_the_schema_s_and_crash_nothing(values):
    assert job_problems_of(job(values, name="odd")) == []
    assert ws.plan([ALICE], {}, CLUSTER, [job(values)])["jobs"][0]["values"]["NameSpace"] == "alice"


def test_a_user_s_own_problems_are_not_counted_again_for_the_job():
    assert job_problems_of(job({"NVMEStorage": "200Gi"}), alice={"quota": {"storage": "600Gi"}}) == [
        "user alice: quota storage 600Gi is below the 720Gi its claims request together (home 20Gi, gfshome 500Gi, "
        "share 100Gi, ssdshare 100Gi): the last ones would be refused"]
    assert job_problems_of(job({"Replicas": 9}), settings={"gpu_resources": "nvidia.com/gpu"}) == [
        "gpu_resources must be a list of extended resource names, got 'nvidia.com/gpu'"]


def test_jobs_must_be_a_list():
    assert ws.problems([ALICE], {}, CLUSTER, {"user": "alice"}) == ["jobs must be a list, got {'user': 'alice'}"]


def test_a_bad_job_stops_the_plan_with_the_users_problems():
    with pytest.raises(ws.WorkspaceError) as info:
        ws.plan([merged(ALICE, {"name": "Alice"}), BOB], {}, CLUSTER, [job(user="bob", values={"Replicas": 3}),
                                                                       job(user="carol")])
    assert info.value.problems == [
        "user Alice: name 'Alice' is not a valid namespace name: at most 63 lower-case letters, digits and '-', "
        "starting and ending with a letter or digit (no capitals, no '_')",
        "job bob/train: Limits.GPU 1 x Replicas 3 = 3 GPUs is above user bob's GPU quota of 0 "
        "(requests.nvidia.com/gpu): the pods beyond it would be refused",
        "job carol/train: user carol is not listed in users: a job runs in its user's workspace"]
    with pytest.raises(ws.WorkspaceError, match="job carol/train: user carol is not listed"):
        ws.plan([ALICE, BOB], {}, CLUSTER, [TRAIN, job(user="carol")])


def test_the_jobs_returned_for_the_role():
    jobs = [TRAIN, {"user": "bob@iiis.co", "name": "nb", "values": {"NameSpace": "", "Command": ["sleep", "inf"]}},
            {"user": "alice", "name": "old", "state": "absent", "values": None}]
    given = copy.deepcopy(jobs)
    result = ws.plan([ALICE, {"name": "bob@iiis.co"}], {}, CLUSTER, jobs)  # new workspaces: their jobs are fine
    assert result["jobs"] == [
        {"user": "alice", "namespace": "alice", "release": "train", "state": "present",
         "values": {"GPU": "A100", "Limits": {"GPU": 1}, "NVMEStorage": "10Gi", "NameSpace": "alice"}},
        {"user": "bob@iiis.co", "namespace": "bob", "release": "nb", "state": "present",
         "values": {"NameSpace": "bob", "Command": ["sleep", "inf"]}},
        {"user": "alice", "namespace": "alice", "release": "old", "state": "absent", "values": {"NameSpace": "alice"}}]
    assert result["counts"]["jobs"] == 3
    assert jobs == given  # the input is left alone
    result["jobs"][0]["values"]["Limits"]["GPU"] = 9
    assert TRAIN["values"]["Limits"]["GPU"] == 1
    assert ws.plan([ALICE], {}, CLUSTER)["jobs"] == []


# ------------------------------------------------------------------ the module
LISTS = {"/api/v1/namespaces": ("Namespace", False), "/api/v1/persistentvolumes": ("PersistentVolume", False),
         "/api/v1/resourcequotas": ("ResourceQuota", True), "/api/v1/limitranges": ("LimitRange", True),
         "/apis/rbac.authorization.k8s.io/v1/rolebindings": ("RoleBinding", True),
         "/api/v1/persistentvolumeclaims": ("PersistentVolumeClaim", True)}


class FakeCluster(FakeKube):
    """FakeKube's Nodes plus the lists the plan module reads (items without kind, as the API server lists them).
    ``apply`` stores objects the way the role's server-side apply would leave them."""

    def __init__(self, nodes, objects=()):
        super().__init__(nodes)
        self.store = {}
        self.apply(objects)

    def apply(self, objects):
        for obj in map(as_served, objects):
            meta = obj["metadata"]
            self.store[(obj["kind"], meta.get("namespace"), meta["name"])] = obj

    def handle(self, handler, method):
        route, _, query = handler.path.partition("?")
        if method != "GET" or route not in LISTS:
            super().handle(handler, method)
            return
        kind, selected = LISTS[route]
        if selected:
            assert parse_qs(query)["labelSelector"] == [ws.SELECTOR], query
        items = [{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
                 for (k, _, _), obj in sorted(self.store.items()) if k == kind]
        with self.lock:
            self.requests.append((method, handler.path))
        self._send(handler, 200, {"kind": f"{kind}List", "apiVersion": "v1", "items": items})


def gpu_node(gpu_type):
    return {"metadata": {"labels": {"gpu-type": gpu_type}}, "status": {"allocatable": {"nvidia.com/gpu": "8"}}}


NODES = {"gpu-a100-1": gpu_node("A100"), "gpu-t4-1": gpu_node("T4"), "cpu-1": {"metadata": {"labels": {}}}}


def run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        workspace_plan.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


def reads(kube):
    return sorted(path.split("?")[0] for method, path in kube.requests
                  if method == "GET" and path.split("?")[0] in {*LISTS, "/api/v1/nodes"})


def test_module_returns_the_plan_and_reads_each_list_once(isolated, tmp_path, capsys):
    with FakeCluster(NODES, [namespace("llm", workspace=False)]) as kube:
        result = run_module({"kubeconfig": kube.kubeconfig(tmp_path / "config"), "users": [ALICE, BOB],
                             "_ansible_check_mode": True}, capsys)
    assert result["_rc"] == 0, result
    assert result["changed"] is False and result["problems"] == []
    assert result["gpu_types"] == ["A100", "T4"]
    assert result["apply"] == ws.plan([ALICE, BOB], {}, CLUSTER)["apply"]
    assert result["counts"]["apply"] == 24
    assert reads(kube) == sorted([*LISTS, "/api/v1/nodes"])  # each list once, the Nodes included
    assert not [m for m, _ in kube.requests if m != "GET"]  # read-only


def test_module_fails_listing_every_problem_with_nothing_returned(isolated, tmp_path, capsys):
    bad = [merged(ALICE, {"name": "Alice_B"}), merged(BOB, {"quota": {"storage": "100Gi"}}),
           merged(BOB, {"name": "carol", "gpu_types": ["H100"]})]
    with FakeCluster(NODES) as kube:
        result = run_module({"kubeconfig": kube.kubeconfig(tmp_path / "config"), "users": bad}, capsys)
    assert result["_rc"] == 1 and result["changed"] is False
    assert result["msg"].startswith("3 problems in the workspace settings: user Alice_B: name 'Alice_B' is not a "
                                    "valid namespace name"), result["msg"]
    for text in ("user bob: quota storage 100Gi is below the size of the claim gfshome",
                 "user carol: unknown GPU type H100: no Node has the label gpu-type=H100 (Nodes have A100, T4)"):
        assert text in result["msg"], text
    assert len(result["problems"]) == 3 and "apply" not in result


def test_module_returns_the_jobs(isolated, tmp_path, capsys):
    jobs = [TRAIN, {"user": "bob", "name": "old", "state": "absent"}]
    with FakeCluster(NODES) as kube:
        result = run_module({"kubeconfig": kube.kubeconfig(tmp_path / "config"), "users": [ALICE, BOB],
                             "jobs": jobs}, capsys)
    assert result["_rc"] == 0, result.get("msg")
    assert result["jobs"] == ws.plan([ALICE, BOB], {}, CLUSTER, jobs)["jobs"]
    assert [(j["namespace"], j["release"], j["state"]) for j in result["jobs"]] == [
        ("alice", "train", "present"), ("bob", "old", "absent")]
    assert result["counts"]["jobs"] == 2 and result["counts"]["apply"] == 24


def test_module_a_bad_job_fails_everything_with_the_users_problems(isolated, tmp_path, capsys):
    jobs = [job({"GPU": "H100"}), job(user="carol")]
    with FakeCluster(NODES) as kube:
        result = run_module({"kubeconfig": kube.kubeconfig(tmp_path / "config"),
                             "users": [ALICE, merged(BOB, {"quota": {"storage": "100Gi"}})], "jobs": jobs}, capsys)
    assert result["_rc"] == 1 and result["changed"] is False
    assert result["problems"] == [
        "user bob: quota storage 100Gi is below the size of the claim gfshome (home 20Gi, gfshome 200Gi, share 100Gi, "
        "ssdshare 100Gi): the claim would be refused",
        "job alice/train: values.GPU H100 is not a GPU type of the cluster: no Node has the label gpu-type=H100 (Nodes "
        "have A100, T4)",
        "job alice/train: values.GPU H100 is not one of user alice's gpu_types (A100)",
        "job carol/train: user carol is not listed in users: a job runs in its user's workspace"]
    assert result["msg"].startswith("4 problems in the workspace settings: user bob: quota storage 100Gi")
    assert "apply" not in result and "jobs" not in result


def test_module_refuses_a_namespace_that_is_not_a_workspace(isolated, tmp_path, capsys):
    with FakeCluster(NODES, [namespace("llm", workspace=False)]) as kube:
        result = run_module({"kubeconfig": kube.kubeconfig(tmp_path / "config"), "users": [{"name": "llm"}]}, capsys)
    assert result["_rc"] == 1
    assert result["problems"] == ["user llm: namespace llm exists and is not a workspace (no label "
                                  "aicluster.io/workspace=true): choose another name, or label the namespace to hand "
                                  "it over"]


def test_module_removal_kept_then_deleted(isolated, tmp_path, capsys):
    with FakeCluster(NODES, ws.plan([ALICE, BOB], {}, CLUSTER)["apply"]) as kube:
        config = kube.kubeconfig(tmp_path / "config")
        kept = run_module({"kubeconfig": config, "users": [ALICE]}, capsys)
        deleted = run_module({"kubeconfig": config, "users": [ALICE], "remove_data": True}, capsys)
    assert kept["_rc"] == 0 and kept["apply"] == [] and kept["delete"] == []
    assert [k["namespace"] for k in kept["kept"]] == ["bob"]
    assert deleted["_rc"] == 0 and deleted["kept"] == []
    assert [(o["kind"], o["metadata"]["name"]) for o in deleted["delete"]] == [
        ("Namespace", "bob"), ("PersistentVolume", "bob-gfshome"), ("PersistentVolume", "bob-home"),
        ("PersistentVolume", "bob-share"), ("PersistentVolume", "bob-ssdshare")]


def users(count):
    return [{"name": f"user-{i:03d}", "groups": [f"course-{i % 5}"],
             "quota": {"cpu": 4 + i % 4, "memory": "16Gi", "gpus": i % 3}} for i in range(count)]


def test_module_200_workspaces_then_the_converged_run_applies_nothing(isolated, tmp_path, capsys):
    with FakeCluster(NODES) as kube:
        config = kube.kubeconfig(tmp_path / "config")
        first = run_module({"kubeconfig": config, "users": users(200)}, capsys)
        assert first["_rc"] == 0, first.get("msg")
        assert first["counts"] == {"workspaces": 200, "objects": 2400, "apply": 2400, "unchanged": 0, "recreate": 0,
                                   "delete": 0, "kept": 0, "jobs": 0}
        kube.apply(first["apply"])  # what the role's server-side apply leaves
        kube.requests.clear()
        again = run_module({"kubeconfig": config, "users": users(200)}, capsys)
    assert again["_rc"] == 0 and again["apply"] == [] and again["counts"]["unchanged"] == 2400
    assert len(reads(kube)) == 7  # one GET per list, whatever the number of users


def test_module_names_an_unreachable_cluster_and_the_settings_problems(isolated, tmp_path, capsys):
    config = tmp_path / "config"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "u"}}]}))
    result = run_module({"kubeconfig": str(config), "users": [merged(ALICE, {"name": "Alice"})],
                         "request_timeout": 2}, capsys)
    assert result["_rc"] == 1
    assert result["msg"].startswith("cannot read the cluster: ")
    assert "the settings also have 1 problem(s): user Alice: name 'Alice' is not a valid namespace" in result["msg"]
    result = run_module({"kubeconfig": str(config), "users": [ALICE], "jobs": [job(user="carol")],
                         "request_timeout": 2}, capsys)
    assert result["problems"] == ["job carol/train: user carol is not listed in users: a job runs in its user's "
                                  "workspace"]


# ------------------------------------------------------------------ the role
def test_defaults_argument_specs_and_readme_name_the_same_variables():
    defaults, specs, documented = role_variables(ROLE, "workspaces_")
    assert set(defaults) == set(specs) == documented
    for name, spec in specs.items():
        if "default" in spec:
            assert spec["default"] == defaults[name], name


def test_the_role_defaults_are_the_module_defaults():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["workspaces_default_quota"] == ws.DEFAULT_QUOTA
    assert defaults["workspaces_container_defaults"] == ws.DEFAULT_CONTAINER
    assert defaults["workspaces_claims"] == {name: {k: v for k, v in claim.items() if v != ""}
                                             for name, claim in ws.DEFAULT_CLAIMS.items()}
    assert ws.settings_problems({key.removeprefix("workspaces_"): value for key, value in defaults.items()
                                 if key.removeprefix("workspaces_") in workspace_plan.SETTINGS}) == []


def test_every_bad_input_row_of_the_readme_is_a_test_here():
    readme = (ROLE / "README.md").read_text()
    table = readme.split("## Bad input", 1)[1].split("\n## ", 1)[0]
    messages = re.findall(r"^\|[^|]+\| `([^`]+)`", table, re.MULTILINE)
    flat = re.sub(r'"\s*\n\s*"', "", Path(__file__).read_text())  # adjacent string literals joined
    assert messages, "the README has a bad-input table"
    for message in messages:
        head = message.split("...")[0].split(" - ")[0].rstrip()
        if head.startswith(("workspaces_cluster", "cannot read the cluster")):
            continue  # the role's own check; the unreachable cluster has its test above
        assert head in flat, message
