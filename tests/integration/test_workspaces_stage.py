"""The workspaces stage (playbooks/workspaces.yml, issue 15) and the resource group rebalancer
(playbooks/rebalance_resource_groups.yml) against the lab's worker cluster: the real API server (quota admission,
RBAC with impersonation), the real scheduler and PV controller (the job chart's GPU pod and its scratch volumes).

Story, in file order (the tests share the lab):
  1. the lab's two users (inventory/lab/group_vars/all/workspaces.yml) get their workspaces from nothing; each
     namespace holds exactly its objects; a re-run changes nothing; --check --diff of a quota edit changes nothing;
  2. the API server enforces them: a pod over alice's GPU quota is refused with the quota message, a pod without
     limits gets the LimitRange's defaults; bob cannot list alice's namespace, alice and her group can;
  3. the job chart (charts/userchart), installed by the role for alice: the real scheduler places the GPU pod on an
     A100 Node with /dev/shm in memory and two NVMe scratch volumes bound on that Node (lab/labctl/local_nvme.py
     stands in for the site's local volume provisioner); uninstalling it removes the scratch claims and keeps the
     four workspace claims;
  4. bad input is refused with nothing applied; a user dropped from the inventory keeps their workspace (reported)
     until workspaces_remove_data, which deletes it;
  5. resource groups: the lab's GPU Nodes are put in two groups (share=true) through the label role, a pod loads
     one group; check mode moves nothing, a run moves one Node from the idle group and stops at its minimum, a
     second run moves nothing, the label role keeps the move; the inventory taking the Nodes back restores them.

Needs `lab up`; the fixture converges bootstrap and the GPU stage (GPU capacity, gpu-type labels) first.
"""

from __future__ import annotations

import json

import pytest
import yaml
from stage_runner import (
    REPO,
    assert_refused,
    changed_tasks,
    ensure_bootstrap,
    failures,
    playbook,
    total_changed,
    wait_for,
)

pytestmark = pytest.mark.lab

GPU = "nvidia.com/gpu"
A100 = {"gpu-a100-1", "gpu-a100-2"}
CLAIMS = {"home", "gfshome", "share", "ssdshare"}
EMPTY = {"workspaces_users": [], "workspaces_remove_data": True}
PLAN_TASK = "Check the users and generate the objects that differ"


def lab_users() -> list[dict]:
    return yaml.safe_load((REPO / "inventory/lab/group_vars/all/workspaces.yml").read_text())["workspaces_users"]


def client(user: str | None = None, groups: tuple[str, ...] = ()):
    """The lab's admin client, or one that impersonates ``user`` with ``groups`` (as the API server's OIDC or LDAP
    authentication would name them)."""
    from kubernetes import client as k8s
    from labctl import clusters

    admin = clusters.api_client("worker")
    if user is None:
        return admin
    api = k8s.ApiClient(admin.configuration, header_name="Impersonate-User", header_value=user)
    assert len(groups) <= 1, "the client sends one Impersonate-Group header"
    if groups:
        api.default_headers["Impersonate-Group"] = groups[0]
    return api


def core(api=None):
    from kubernetes import client as k8s

    return k8s.CoreV1Api(api or client())


def rbac():
    from kubernetes import client as k8s

    return k8s.RbacAuthorizationV1Api(client())


def site(extra: dict | None = None, *args: str) -> dict:
    """The stage as the chain runs it."""
    return playbook("site.yml", extra, "--tags", "workspaces", *args)


def workspaces(extra: dict | None = None, *args: str) -> dict:
    """The stage's own playbook (what an administrator runs after a user edit): quicker to start than site.yml."""
    return playbook("playbooks/workspaces.yml", extra, *args)


def plan_result(out: dict) -> dict:
    return next(r for p in out["plays"] for t in p["tasks"] if t["task"]["name"].endswith(PLAN_TASK)
                for r in t["hosts"].values())


def namespaces() -> set[str]:
    return {n.metadata.name for n in core().list_namespace().items}


def gpu_capacity() -> bool:
    return any(int((n.status.allocatable or {}).get(GPU, "0")) > 0 for n in core().list_node().items)


# ------------------------------------------------------------------ 1. the workspaces


@pytest.fixture(scope="module")
def stage():
    ensure_bootstrap()
    if not gpu_capacity():
        gpu = playbook("playbooks/gpu.yml")
        assert gpu["_rc"] == 0, failures(gpu)
    users = {u["name"] for u in lab_users()}
    if users & namespaces():  # left by the chain or an earlier run: start from nothing
        removed = playbook("playbooks/workspaces.yml", EMPTY)
        assert removed["_rc"] == 0, failures(removed)
        assert wait_for(lambda: not users & namespaces(), timeout=180), "the old workspaces were not deleted"
    first = site()
    second = site()
    figures = {"workspaces_first_run_s": first["_seconds"], "workspaces_rerun_s": second["_seconds"],
               "first_run_api_writes": plan_result(first).get("counts"),
               "rerun_api_writes": plan_result(second).get("counts")}
    print(json.dumps(figures))
    return {"first": first, "second": second}


def test_first_run_gives_each_user_exactly_their_objects(stage):
    first = stage["first"]
    assert first["_rc"] == 0, failures(first)
    from kubernetes import client as k8s

    apps = k8s.AppsV1Api(client())
    for user in lab_users():
        ns = user["name"]
        namespace = core().read_namespace(ns)
        assert namespace.metadata.labels["aicluster.io/workspace"] == "true"
        bindings = rbac().list_namespaced_role_binding(ns).items
        assert [b.metadata.name for b in bindings] == ["workspace-edit"]
        assert (bindings[0].role_ref.kind, bindings[0].role_ref.name) == ("ClusterRole", "edit")
        subjects = {(s.kind, s.name) for s in bindings[0].subjects}
        assert subjects == {("User", ns)} | {("Group", g) for g in user.get("groups") or []}
        quotas = core().list_namespaced_resource_quota(ns).items
        assert [q.metadata.name for q in quotas] == ["workspace-quota"]
        hard = quotas[0].spec.hard
        assert hard[f"requests.{GPU}"] == str((user.get("quota") or {}).get("gpus", 0))
        assert [r.metadata.name for r in core().list_namespaced_limit_range(ns).items] == ["workspace-defaults"]
        claims = {c.metadata.name: c for c in core().list_namespaced_persistent_volume_claim(ns).items}
        assert set(claims) == CLAIMS
        assert not apps.list_namespaced_deployment(ns).items and not core().list_namespaced_pod(ns).items
    # bound to their own volumes, the personal ones in the user's directory of /data/k8s
    assert wait_for(lambda: all(c.status.phase == "Bound" for c in
                                core().list_namespaced_persistent_volume_claim("alice").items), timeout=60)
    for claim in core().list_namespaced_persistent_volume_claim("alice").items:
        volume = core().read_persistent_volume(claim.spec.volume_name)
        assert volume.metadata.name == f"alice-{claim.metadata.name}"
        assert volume.spec.persistent_volume_reclaim_policy == "Retain"
        if claim.metadata.name in ("home", "gfshome"):
            assert volume.spec.host_path.path == f"/data/k8s/{claim.metadata.name}/alice"


def test_second_run_changes_nothing_and_writes_nothing(stage):
    second = stage["second"]
    assert second["_rc"] == 0, failures(second)
    assert total_changed(second) == 0, changed_tasks(second)
    counts = plan_result(second)["counts"]
    assert counts["apply"] == counts["delete"] == counts["recreate"] == 0, counts
    assert counts["unchanged"] == counts["objects"] > 0


def test_check_mode_shows_a_quota_edit_and_changes_nothing(stage):
    users = lab_users()
    users[0]["quota"] = {**users[0]["quota"], "cpu": "20"}
    before = core().read_namespaced_resource_quota("workspace-quota", "alice")
    out = workspaces({"workspaces_users": users}, "--check", "--diff")
    assert out["_rc"] == 0, failures(out)
    assert total_changed(out) > 0
    assert plan_result(out)["counts"]["apply"] == 1  # the quota only
    after = core().read_namespaced_resource_quota("workspace-quota", "alice")
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.spec.hard["limits.cpu"] == before.spec.hard["limits.cpu"]


# ------------------------------------------------------------------ 2. quota and access, enforced by the API server


def _pod(name: str, resources: dict | None) -> dict:
    container = {"name": "main", "image": "registry.lab/pause:3.10"}
    if resources is not None:
        container["resources"] = {"limits": resources, "requests": resources}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container], "nodeSelector": {"gpu-type": "A100"}}}


def _quota_ready(ns: str) -> bool:
    quota = core().read_namespaced_resource_quota("workspace-quota", ns)
    return bool(quota.status and quota.status.hard)


def test_a_pod_over_the_gpu_quota_is_refused_by_the_api_server(stage):
    from kubernetes.client.rest import ApiException

    assert wait_for(lambda: _quota_ready("alice"), timeout=60), "the quota controller never filled in the quota"
    with pytest.raises(ApiException) as refused:
        core().create_namespaced_pod("alice", _pod("too-many-gpus", {"cpu": "1", "memory": "1Gi", GPU: "3"}))
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert "exceeded quota: workspace-quota" in message and f"requested: requests.{GPU}=3" in message, message


def test_a_pod_without_limits_gets_the_defaults_and_is_counted(stage):
    assert wait_for(lambda: _quota_ready("bob"), timeout=60)
    pod = core().create_namespaced_pod("bob", _pod("no-limits", None))
    try:
        limits = pod.spec.containers[0].resources.limits
        assert (limits["cpu"], limits["memory"]) == ("1", "2Gi")
        assert wait_for(lambda: (core().read_namespaced_resource_quota("workspace-quota", "bob").status.used or {})
                        .get("limits.cpu") == "1", timeout=60)
    finally:
        core().delete_namespaced_pod("no-limits", "bob", grace_period_seconds=0)


@pytest.mark.parametrize(("user", "groups", "namespace", "allowed"), [
    ("bob", ("infra-course",), "alice", False),
    ("alice", ("llm-course",), "bob", False),
    ("alice", ("llm-course",), "alice", True),
    ("carol", ("llm-course",), "alice", True),  # alice's group
    ("bob", ("infra-course",), "bob", True),
])
def test_only_the_user_and_their_groups_can_list_the_namespace(stage, user, groups, namespace, allowed):
    from kubernetes.client.rest import ApiException

    api = core(client(user, groups))
    if allowed:
        api.list_namespaced_pod(namespace)
        api.list_namespaced_persistent_volume_claim(namespace)
    else:
        with pytest.raises(ApiException) as refused:
            api.list_namespaced_pod(namespace)
        assert refused.value.status == 403
        message = json.loads(refused.value.body)["message"]
        assert f'User "{user}" cannot list resource "pods" in API group "" in the namespace "{namespace}"' in message


# ------------------------------------------------------------------ 3. the job chart

JOB = {"user": "alice", "name": "train", "values": {
    "BaseName": "pytorch", "ContainerImage": "registry.lab/pytorch:2.5", "GPU": "A100",
    "Limits": {"CPU": 4, "memory": "16Gi", "GPU": 1}, "UseShm": True, "ShmSize": "4Gi", "NVMEStorage": "50Gi",
    "Replicas": 1, "Command": ["sleep", "infinity"]}}
JOB_SELECTOR = "app.kubernetes.io/instance=train"


def job_pods() -> list:
    return [p for p in core().list_namespaced_pod("alice", label_selector=JOB_SELECTOR).items
            if p.metadata.deletion_timestamp is None]


def scratch_claims() -> list:
    return core().list_namespaced_persistent_volume_claim("alice", label_selector="userchart/scratch").items


@pytest.fixture(scope="module")
def job(stage):
    from labctl import local_nvme

    gpu_nodes = sorted(n.metadata.name for n in core().list_node(label_selector="gpu-type").items)
    local_nvme.ensure("worker", gpu_nodes)
    installed = workspaces({"workspaces_jobs": [JOB]})
    running = wait_for(lambda: [p for p in job_pods() if p.status.phase == "Running"], timeout=120)
    again = workspaces({"workspaces_jobs": [JOB]})
    yield {"installed": installed, "again": again, "pods": running}
    if job_pods():
        workspaces({"workspaces_jobs": [{**JOB, "state": "absent"}]})


def test_the_scheduler_places_the_job_on_the_gpu_type_with_shm_and_scratch(job):
    assert job["installed"]["_rc"] == 0, failures(job["installed"])
    assert len(job["pods"]) == 1, [p.metadata.name for p in job_pods()]
    pod = job["pods"][0]
    node = core().read_node(pod.spec.node_name)
    assert node.metadata.labels["gpu-type"] == "A100"
    assert pod.spec.containers[0].resources.limits[GPU] == "1"
    volumes = {v.name: v for v in pod.spec.volumes}
    assert volumes["shm"].empty_dir.medium == "Memory"
    assert {v.persistent_volume_claim.claim_name for v in volumes.values() if v.persistent_volume_claim} == CLAIMS
    mounts = {m.mount_path for m in pod.spec.containers[0].volume_mounts}
    assert {"/root", "/gfshome", "/share", "/ssdshare", "/dev/shm", "/scratch1", "/scratch2"} <= mounts
    # the two scratch volumes: claims made for the pod, bound to local volumes of the pod's Node
    scratch = scratch_claims()
    assert sorted(c.metadata.name for c in scratch) == [f"{pod.metadata.name}-scratch{i}" for i in (1, 2)]
    for claim in scratch:
        assert claim.status.phase == "Bound" and claim.spec.storage_class_name == "local-nvme"
        assert claim.metadata.owner_references[0].name == pod.metadata.name
        volume = core().read_persistent_volume(claim.spec.volume_name)
        term = volume.spec.node_affinity.required.node_selector_terms[0].match_expressions[0]
        assert term.values == [pod.spec.node_name]


def test_the_job_rerun_changes_nothing(job):
    assert job["again"]["_rc"] == 0, failures(job["again"])
    assert total_changed(job["again"]) == 0, changed_tasks(job["again"])


def test_uninstalling_the_job_removes_the_scratch_and_keeps_the_claims(job):
    out = workspaces({"workspaces_jobs": [{**JOB, "state": "absent"}]})
    assert out["_rc"] == 0, failures(out)
    assert total_changed(out) > 0
    assert wait_for(lambda: not job_pods() and not scratch_claims(), timeout=120), \
        ([p.metadata.name for p in job_pods()], [c.metadata.name for c in scratch_claims()])
    claims = core().list_namespaced_persistent_volume_claim("alice").items
    assert {c.metadata.name for c in claims} == CLAIMS
    assert all(c.status.phase == "Bound" for c in claims)


# ------------------------------------------------------------------ 4. bad input


def _users(**change) -> list[dict]:
    users = lab_users()
    users[0] = {**users[0], **change}
    return users


BAD_WORKSPACES = [
    pytest.param({"workspaces_users": _users(name="Alice")}, "is not a valid namespace name", id="capitals"),
    pytest.param({"workspaces_users": _users(name="alice_b")}, "is not a valid namespace name", id="underscore"),
    pytest.param({"workspaces_users": _users(quota={"storage": "100Gi"})}, "storage", id="quota-below-claims"),
    pytest.param({"workspaces_users": _users(gpu_types=["H100"])}, "H100", id="unknown-gpu-type"),
    pytest.param({"workspaces_jobs": [{**JOB, "values": {**JOB["values"], "GPU": "T4"}}]}, "T4",
                 id="job-gpu-type-not-the-user-s"),
    pytest.param({"workspaces_jobs": [{**JOB, "values": {**JOB["values"], "Replicas": 3}}]}, "quota",
                 id="job-over-the-gpu-quota"),
    pytest.param({"workspaces_cluster": "nosuch"}, 'workspaces_cluster "nosuch" is not a key of aicluster_clusters',
                 id="unknown-cluster"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_WORKSPACES)
def test_bad_workspace_input_is_refused_with_nothing_applied(stage, extra, message):
    before = namespaces()
    out = workspaces(extra)
    assert_refused(out, message, "localhost")
    assert namespaces() == before
    assert not job_pods()


# ------------------------------------------------------------------ removal: a user leaves the inventory


def report_lines(out: dict) -> list[str]:
    return next(r["msg"] for p in out["plays"] for t in p["tasks"]
                if t["task"]["name"].endswith("Report the workspaces, the API writes and what was kept")
                for r in t["hosts"].values())


def test_a_user_removed_from_the_inventory_is_kept_and_reported(stage):
    alice_only = [u for u in lab_users() if u["name"] == "alice"]
    out = workspaces({"workspaces_users": alice_only})
    assert out["_rc"] == 0, failures(out)
    assert total_changed(out) == 0, changed_tasks(out)
    assert [k["namespace"] for k in plan_result(out)["kept"]] == ["bob"]
    assert any(line.startswith("workspace bob kept") for line in report_lines(out)), report_lines(out)
    assert "bob" in namespaces()
    assert {c.metadata.name for c in core().list_namespaced_persistent_volume_claim("bob").items} == CLAIMS


def test_with_remove_data_the_workspace_goes_and_its_files_stay(stage):
    alice_only = [u for u in lab_users() if u["name"] == "alice"]
    out = workspaces({"workspaces_users": alice_only, "workspaces_remove_data": True})
    assert out["_rc"] == 0, failures(out)
    assert [d["metadata"]["name"] for d in plan_result(out)["delete"] if d["kind"] == "Namespace"] == ["bob"]
    assert wait_for(lambda: "bob" not in namespaces(), timeout=120), "namespace bob was not deleted"
    # the volume objects go once their claims have (pv-protection); their files stay (hostPath, reclaim Retain)
    assert wait_for(lambda: not core().list_persistent_volume(
        label_selector="aicluster.io/workspace-namespace=bob").items, timeout=60), "bob's volumes were not deleted"
    assert "alice" in namespaces()
    # bob back, as the lab inventory has him (the tests below use both users)
    again = workspaces()
    assert again["_rc"] == 0, failures(again)
    assert wait_for(lambda: all(c.status.phase == "Bound"
                                for c in core().list_namespaced_persistent_volume_claim("bob").items), timeout=60)


# ------------------------------------------------------------------ 5. resource groups

# The lab's three GPU Nodes in two groups, all shareable: research has one A100 Node, public an A100 and a T4 Node.
GROUPS = {"gpu-a100-1": "research", "gpu-a100-2": "public", "gpu-t4-1": "public"}
REBALANCE = {"resource_groups_minimums": {"public": 1}, "resource_groups_threshold": 0.2,
             "resource_groups_max_moves": 2}
LOAD_NS = "rebalance-load"


def labels(*args: str) -> dict:
    """The label stage on the three GPU machines only (the others' labels do not change)."""
    return playbook("site.yml", None, *args, "--tags", "labels", "--limit", ",".join(GROUPS))


def org_of(node: str) -> str | None:
    return core().read_node(node).metadata.labels.get("org")


def rebalance(extra: dict | None = None, *args: str) -> dict:
    return playbook("playbooks/rebalance_resource_groups.yml", {**REBALANCE, **(extra or {})}, *args)


def rebalance_result(out: dict) -> dict:
    return next(r for p in out["plays"] for t in p["tasks"]
                if t["task"]["name"].endswith("Move share=true Nodes from the least to the most loaded group")
                for r in t["hosts"].values())


@pytest.fixture(scope="module")
def groups(stage, tmp_path_factory):
    """The groups through the label role (an inventory that shares the three Nodes), and a pod that takes all of
    research's GPUs. Afterwards the pod goes and the label role, with the lab inventory again, takes the Nodes back."""
    overlay = tmp_path_factory.mktemp("groups") / "groups.yml"
    overlay.write_text(yaml.safe_dump({"all": {"hosts": {
        node: {"node_labels_org": org, "node_labels_share": True} for node, org in GROUPS.items()}}}))
    labelled = labels("-i", str(overlay))
    assert labelled["_rc"] == 0, failures(labelled)
    busy = [f"{p.metadata.namespace}/{p.metadata.name}" for p in core().list_pod_for_all_namespaces().items
            if p.spec.node_name in GROUPS and p.status.phase in ("Pending", "Running")
            and any((c.resources.requests or {}).get(GPU) for c in p.spec.containers)]
    assert not busy, f"GPU pods of other tests still run on the lab's GPU Nodes: {busy}"
    core().create_namespace({"metadata": {"name": LOAD_NS}})
    pod = _pod("research-load", {"cpu": "1", "memory": "1Gi", GPU: "8"})
    pod["spec"]["nodeSelector"] = {"org": "research"}
    core().create_namespaced_pod(LOAD_NS, pod)
    assert wait_for(lambda: core().read_namespaced_pod("research-load", LOAD_NS).status.phase == "Running",
                    timeout=60), "the load pod was not placed"
    yield {"overlay": str(overlay), "labelled": labelled}
    # Whatever the tests left: the lab inventory's groups back (the last test does this and checks it).
    if LOAD_NS in namespaces():
        core().delete_namespace(LOAD_NS)
    if any("share" in core().read_node(node).metadata.labels for node in GROUPS):
        labels()


def test_check_mode_shows_the_move_and_moves_nothing(groups):
    out = rebalance(None, "--check", "--diff")
    assert out["_rc"] == 0, failures(out)
    result = rebalance_result(out)
    assert [(m["node"], m["from"], m["to"]) for m in result["moves"]] == [("gpu-a100-2", "public", "research")]
    assert result["api_writes"] == 0
    assert {node: org_of(node) for node in GROUPS} == GROUPS


def test_a_run_moves_one_node_to_the_loaded_group_and_keeps_the_minimum(groups):
    out = rebalance()
    assert out["_rc"] == 0, failures(out)
    result = rebalance_result(out)
    assert [(m["node"], m["to"]) for m in result["moves"]] == [("gpu-a100-2", "research")]
    assert result["api_writes"] == 1
    assert "minimum" in result["stopped"], result["stopped"]  # max_moves 2, but public keeps its T4 Node
    node = core().read_node("gpu-a100-2")
    assert node.metadata.labels["org"] == "research"
    assert node.metadata.annotations["aicluster.io/resource-group"] == "research"
    assert node.metadata.annotations["aicluster.io/resource-group-base"] == "public"
    assert org_of("gpu-t4-1") == "public"
    loads = result["loads"]
    assert loads["before"]["research"]["load"] == 1.0 and loads["after"]["research"]["load"] == 0.5


def test_a_second_run_moves_nothing(groups):
    out = rebalance()
    assert out["_rc"] == 0, failures(out)
    assert rebalance_result(out)["moves"] == [] and total_changed(out) == 0


def test_the_label_role_keeps_the_move(groups):
    out = labels("-i", groups["overlay"])
    assert out["_rc"] == 0, failures(out)
    assert total_changed(out) == 0, changed_tasks(out)
    assert org_of("gpu-a100-2") == "research"


@pytest.mark.parametrize(("extra", "message"), [
    pytest.param({"resource_groups_minimums": {"public": 5}}, "could never be kept", id="minimum-above-nodes"),
    pytest.param({"resource_groups_threshold": 1.5}, "threshold must be a load difference from 0 to 1",
                 id="threshold-outside-0-1"),
    pytest.param({"resource_groups_cluster": "nosuch"},
                 'resource_groups_cluster "nosuch" is not a key of aicluster_clusters', id="unknown-cluster"),
])
def test_bad_rebalance_input_is_refused_with_nothing_moved(groups, extra, message):
    before = {node: org_of(node) for node in GROUPS}
    out = rebalance(extra)
    assert_refused(out, message, "localhost")
    assert {node: org_of(node) for node in GROUPS} == before


def test_the_inventory_taking_the_nodes_back_restores_their_group(groups):
    core().delete_namespace(LOAD_NS)
    out = labels()
    assert out["_rc"] == 0, failures(out)
    for node in GROUPS:
        meta = core().read_node(node).metadata
        assert meta.labels["org"] == "public" and "share" not in meta.labels
        assert "aicluster.io/resource-group" not in (meta.annotations or {})
    assert wait_for(lambda: LOAD_NS not in namespaces(), timeout=120)
