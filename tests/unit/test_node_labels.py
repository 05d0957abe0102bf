"""Unit tests for module_utils/node_labels.py: schemes, value coercion, ownership-aware plan (label syntax:
test_k8s_names.py)."""

import pytest
from ansible_collections.aicluster.platform.plugins.module_utils import node_labels as nl

ANN = nl.MANAGED_ANNOTATION

A100_FACTS = {
    "present": True, "vendor": "nvidia", "model": "A100", "count": 8, "architecture": "x86_64",
    "resource_name": "nvidia.com/gpu", "accelerator": None,
}
T4_FACTS = {"present": True, "vendor": "nvidia", "model": "T4", "count": 2, "architecture": "x86_64"}
ASCEND_910B_FACTS = {
    "present": True, "vendor": "huawei", "model": "Ascend910B", "count": 8, "architecture": "aarch64",
    "resource_name": "huawei.com/Ascend910", "accelerator": "huawei-Ascend910",
}
ASCEND_910_FACTS = {"present": True, "vendor": "huawei", "model": "Ascend910", "count": 8, "architecture": "x86_64"}
ASCEND_310P_FACTS = {"present": True, "vendor": "huawei", "model": "Ascend310P", "count": 4, "architecture": "x86_64"}
CPU_FACTS = {"present": False, "vendor": None, "model": None, "count": 0, "architecture": "x86_64"}


# --- desired labels: cube-studio --------------------------------------------------------------

def test_cube_studio_gpu_worker():
    labels = nl.desired_labels(A100_FACTS, schemes=["cube-studio"], roles=["train", "notebook", "service"])
    assert labels == {
        "cpu": "true", "gpu": "true", "gpu-type": "A100",
        "train": "true", "notebook": "true", "service": "true", "org": "public",
    }


def test_cube_studio_cpu_worker_with_org_share_rdma():
    labels = nl.desired_labels(
        CPU_FACTS, schemes=["cube-studio"], roles=["train"], org="team-a", share=True, rdma=True,
    )
    assert labels == {"cpu": "true", "rdma": "true", "train": "true", "org": "team-a", "share": "true"}


def test_cube_studio_explicit_overrides():
    labels = nl.desired_labels(
        T4_FACTS, schemes=["cube-studio"], roles=["service"], cpu=False, vgpu=True, gpu_type="T4-16G", org=None,
    )
    assert labels == {"gpu": "true", "gpu-type": "T4-16G", "vgpu": "true", "service": "true"}
    # gpu=False wins over detection
    assert "gpu" not in nl.desired_labels(T4_FACTS, schemes=["cube-studio"], gpu=False)


def test_cube_studio_controller():
    labels = nl.desired_labels(CPU_FACTS, schemes=["cube-studio"], controller=True, cpu=False, org=None)
    assert labels == {
        "mysql": "true", "redis": "true", "kubeflow-dashboard": "true",
        "kubeflow": "true", "istio": "true", "monitoring": "true",
    }
    only = nl.desired_labels(
        CPU_FACTS, schemes=["cube-studio"], controller=True, controller_components=["mysql"], cpu=False, org=None,
    )
    assert only == {"mysql": "true"}


def test_cube_studio_no_gpu_label_for_ascend():
    labels = nl.desired_labels(ASCEND_910B_FACTS, schemes=["cube-studio"], roles=["train"])
    assert "gpu" not in labels and "gpu-type" not in labels


# --- desired labels: MindCluster --------------------------------------------------------------

def test_mindcluster_910b_worker():
    labels = nl.desired_labels(ASCEND_910B_FACTS, schemes=["mindcluster"])
    assert labels == {
        "node-role.kubernetes.io/worker": "worker",
        "workerselector": "dls-worker-node",
        "host-arch": "huawei-arm",
        "accelerator": "huawei-Ascend910",
        "accelerator-type": "module-910b-8",
    }


def test_mindcluster_910b_16_and_infer():
    facts = dict(ASCEND_910B_FACTS, count=16, architecture="x86_64")
    labels = nl.desired_labels(facts, schemes=["mindcluster"], server_usage="infer")
    assert labels["accelerator-type"] == "module-910b-16"
    assert labels["host-arch"] == "huawei-x86"
    assert labels["server-usage"] == "infer"


def test_mindcluster_910_card_from_product_name():
    labels = nl.desired_labels(ASCEND_910_FACTS, schemes=["mindcluster"], product_name="2288H V5")
    assert labels["accelerator"] == "huawei-Ascend910"
    assert labels["accelerator-type"] == "card"
    # An Atlas 800 is full/half module: no guess, must be explicit
    atlas = nl.desired_labels(ASCEND_910_FACTS, schemes=["mindcluster"], product_name="Atlas 800 (Model 9000)")
    assert "accelerator-type" not in atlas
    explicit = nl.desired_labels(ASCEND_910_FACTS, schemes=["mindcluster"], accelerator_type="module")
    assert explicit["accelerator-type"] == "module"


def test_mindcluster_310p_has_no_accelerator_type():
    labels = nl.desired_labels(ASCEND_310P_FACTS, schemes=["mindcluster"])
    assert labels["accelerator"] == "huawei-Ascend310P"
    assert "accelerator-type" not in labels


def test_mindcluster_master_and_non_ascend_nodes():
    master = nl.desired_labels(CPU_FACTS, schemes=["mindcluster"], mindcluster_master=True)
    assert master == {"masterselector": "dls-master-node"}
    assert nl.desired_labels(A100_FACTS, schemes=["mindcluster"]) == {}


def test_nvidia_scheme_and_all_schemes_together():
    assert nl.desired_labels(A100_FACTS, schemes=["nvidia"]) == {"nvidia.com/gpu.present": "true"}
    assert nl.desired_labels(ASCEND_910B_FACTS, schemes=["nvidia"]) == {}
    both = nl.desired_labels(ASCEND_910B_FACTS, roles=["train"])
    assert both["workerselector"] == "dls-worker-node" and both["train"] == "true" and both["cpu"] == "true"


def test_extra_and_remove():
    labels = nl.desired_labels(
        A100_FACTS, schemes=["cube-studio"], extra={"nodeDEnable": "on", "org": "vip"}, remove=["cpu"],
    )
    assert labels["nodeDEnable"] == "on"
    assert labels["org"] == "vip"
    assert "cpu" not in labels


def test_unknown_scheme_and_role_rejected():
    with pytest.raises(ValueError, match="unknown label scheme"):
        nl.desired_labels(A100_FACTS, schemes=["volcano"])
    with pytest.raises(ValueError, match="unknown cube-studio role"):
        nl.desired_labels(A100_FACTS, roles=["inference"])


def test_coerce_label_value():
    assert nl.coerce_label_value(True) == "true"
    assert nl.coerce_label_value(False) == "false"
    assert nl.coerce_label_value(8) == "8"
    assert nl.coerce_label_value("x") == "x"
    assert nl.coerce_label_value(None) is None


# --- plan -------------------------------------------------------------------------------------

def test_plan_first_run_adds_labels_and_annotation():
    patch, diff = nl.plan({"kubernetes.io/hostname": "n1"}, {}, {"gpu": "true", "cpu": "true"})
    assert patch == {"metadata": {"labels": {"cpu": "true", "gpu": "true"}, "annotations": {ANN: "cpu,gpu"}}}
    assert diff["before"]["labels"] == {"kubernetes.io/hostname": "n1"}
    assert diff["after"]["labels"] == {"kubernetes.io/hostname": "n1", "cpu": "true", "gpu": "true"}
    assert diff["after"]["managed"] == ["cpu", "gpu"]


def test_plan_change_value():
    patch, diff = nl.plan({"gpu-type": "T4", "gpu": "true"}, {ANN: "gpu,gpu-type"}, {"gpu": "true", "gpu-type": "A100"})
    assert patch == {"metadata": {"labels": {"gpu-type": "A100"}}}
    assert diff["set"] == {"gpu-type": "A100"}


def test_plan_remove_previously_managed():
    patch, diff = nl.plan({"gpu": "true", "train": "true"}, {ANN: "gpu,train"}, {"gpu": "true"})
    assert patch == {"metadata": {"labels": {"train": None}, "annotations": {ANN: "gpu"}}}
    assert diff["removed"] == ["train"]
    assert "train" not in diff["after"]["labels"]


def test_plan_hand_added_label_survives():
    current = {"gpu": "true", "team": "ml", "zone": "a"}
    patch, _ = nl.plan(current, {ANN: "gpu"}, {"gpu": "true", "cpu": "true"})
    assert patch == {"metadata": {"labels": {"cpu": "true"}, "annotations": {ANN: "cpu,gpu"}}}
    # hand-added labels are never removed, even when nothing is desired any more
    patch, _ = nl.plan(current, {ANN: "gpu"}, {})
    assert patch == {"metadata": {"labels": {"gpu": None}, "annotations": {ANN: None}}}


def test_plan_adopts_hand_set_label_with_same_value():
    patch, diff = nl.plan({"org": "public"}, {}, {"org": "public"})
    assert patch == {"metadata": {"annotations": {ANN: "org"}}}
    assert diff["adopted"] == ["org"]
    # once adopted, removing it from desired removes it from the node
    patch, _ = nl.plan({"org": "public"}, {ANN: "org"}, {})
    assert patch == {"metadata": {"labels": {"org": None}, "annotations": {ANN: None}}}


def test_plan_overrides_hand_set_label_with_other_value():
    patch, _ = nl.plan({"org": "team-x"}, {}, {"org": "public"})
    assert patch == {"metadata": {"labels": {"org": "public"}, "annotations": {ANN: "org"}}}


def test_plan_noop_returns_none():
    current = {"gpu": "true", "cpu": "true", "hand": "made"}
    patch, diff = nl.plan(current, {ANN: "cpu,gpu"}, {"cpu": "true", "gpu": "true"})
    assert patch is None
    assert diff["before"] == diff["after"]
    assert nl.plan({}, {}, {})[0] is None


def test_plan_managed_key_already_gone_only_updates_annotation():
    patch, diff = nl.plan({"gpu": "true"}, {ANN: "gpu,rdma"}, {"gpu": "true"})
    assert patch == {"metadata": {"annotations": {ANN: "gpu"}}}
    assert diff["removed"] == []


def test_plan_custom_annotation_key():
    patch, _ = nl.plan({}, {}, {"a": "1"}, annotation_key="example.com/owned")
    assert patch["metadata"]["annotations"] == {"example.com/owned": "a"}


def test_managed_roundtrip():
    assert nl.parse_managed("b, a,,c") == {"a", "b", "c"}
    assert nl.parse_managed(None) == set()
    assert nl.format_managed({"b", "a"}) == "a,b"


def test_kubeocean_worker_label_in_any_scheme():
    assert nl.desired_labels({}, schemes=[], kubeocean_worker=True) == {"kubeocean.io/role": "worker"}
    assert "kubeocean.io/role" not in nl.desired_labels({}, schemes=["cube-studio"])
