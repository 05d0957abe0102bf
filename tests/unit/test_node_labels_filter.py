"""Unit tests for the collection's filter plugin plugins/filter/node_labels.py."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.platform.plugins.filter import node_labels as flt
from ansible_collections.aicluster.platform.plugins.module_utils import node_labels as nl

A100 = {"present": True, "vendor": "nvidia", "model": "A100", "count": 8, "architecture": "x86_64"}
T4 = {"present": True, "vendor": "nvidia", "model": "T4", "count": 2, "architecture": "x86_64"}
ASCEND = {
    "present": True, "vendor": "huawei", "model": "Ascend910B", "count": 8, "architecture": "aarch64",
    "accelerator": "huawei-Ascend910",
}
CPU = {"present": False, "vendor": None, "model": None, "count": 0, "architecture": "x86_64"}


def hostvars(**hosts):
    """Fake hostvars: host -> its variables (a plain dict is enough for the filter)."""
    return {name.replace("_", "-"): variables for name, variables in hosts.items()}


def fleet():
    return hostvars(
        gpu_a100_1={"ansible_facts": {"accelerator": A100}, "node_labels_roles": ["train", "notebook", "service"]},
        npu_910b_1={"ansible_facts": {"accelerator": ASCEND}, "node_labels_roles": ["train"], "node_labels_org": "npu"},
        cpu_1={"ansible_facts": {"accelerator": CPU}, "node_labels_controller": True, "node_labels_roles": []},
    )


# --- desired_labels (thin wrapper) -------------------------------------------------------------

def test_desired_labels_matches_module_utils():
    kwargs = {"schemes": ["cube-studio", "nvidia"], "roles": ["train"], "org": "team-a"}
    assert flt.desired_labels(A100, **kwargs) == nl.desired_labels(A100, **kwargs)


def test_desired_labels_errors_become_filter_errors():
    with pytest.raises(AnsibleFilterError, match="unknown label scheme"):
        flt.desired_labels(A100, schemes=["volcano"])
    with pytest.raises(AnsibleFilterError, match="accelerator fact"):
        flt.desired_labels("A100")
    with pytest.raises(AnsibleFilterError, match="unexpected keyword"):
        flt.desired_labels(A100, colour="blue")


def test_filter_registered():
    filters = flt.FilterModule().filters()
    assert filters["desired_labels"] is flt.desired_labels
    assert filters["node_label_entries"] is flt.node_label_entries
    assert filters["node_label_play_overrides"] is flt.play_level_overrides


# --- node_label_entries ------------------------------------------------------------------------

def test_entries_for_a_mixed_fleet():
    entries = flt.node_label_entries(["gpu-a100-1", "npu-910b-1", "cpu-1"], fleet())
    by_host = {entry["host"]: entry for entry in entries}
    assert [entry["name"] for entry in entries] == ["gpu-a100-1", "npu-910b-1", "cpu-1"]
    assert by_host["gpu-a100-1"]["labels"] == {
        "cpu": "true", "gpu": "true", "gpu-type": "A100", "train": "true", "notebook": "true",
        "service": "true", "org": "public", "nvidia.com/gpu.present": "true",
    }
    assert by_host["npu-910b-1"]["labels"] == {
        "cpu": "true", "train": "true", "org": "npu",
        "node-role.kubernetes.io/worker": "worker", "workerselector": "dls-worker-node",
        "host-arch": "huawei-arm", "accelerator": "huawei-Ascend910", "accelerator-type": "module-910b-8",
    }
    assert by_host["cpu-1"]["labels"] == {
        "cpu": "true", "org": "public", "mysql": "true", "redis": "true", "kubeflow-dashboard": "true",
        "kubeflow": "true", "istio": "true", "monitoring": "true",
    }


def test_only_listed_hosts_are_returned():
    entries = flt.node_label_entries(["cpu-1"], fleet())
    assert [entry["host"] for entry in entries] == ["cpu-1"]


def test_builtin_defaults_then_defaults_then_hostvars_then_overrides():
    hv = hostvars(t4={"ansible_facts": {"accelerator": T4}})
    (entry,) = flt.node_label_entries(["t4"], hv)
    assert entry["labels"]["train"] == entry["labels"]["notebook"] == entry["labels"]["service"] == "true"
    assert entry["labels"]["org"] == "public"
    (entry,) = flt.node_label_entries(["t4"], hv, defaults={"node_labels_org": "team-a"})
    assert entry["labels"]["org"] == "team-a"
    hv["t4"]["node_labels_org"] = "team-b"
    (entry,) = flt.node_label_entries(["t4"], hv, defaults={"node_labels_org": "team-a"})
    assert entry["labels"]["org"] == "team-b"
    (entry,) = flt.node_label_entries(["t4"], hv, overrides={"node_labels_org": "team-c"})
    assert entry["labels"]["org"] == "team-c"


def test_all_per_host_variables():
    hv = hostvars(t4={
        "ansible_facts": {"accelerator": T4},
        "node_labels_node_name": "t4.example.com",
        "node_labels_schemes": ["cube-studio"],
        "node_labels_roles": ["service"],
        "node_labels_org": "",
        "node_labels_share": "yes",
        "node_labels_cpu": False,
        "node_labels_gpu_type": "T4-16G",
        "node_labels_vgpu": True,
        "node_labels_rdma": "true",
        "node_labels_extra": {"zone": "r02", "tier": 2, "team.example.com/owner": True},
        "node_labels_remove": ["share"],
    })
    (entry,) = flt.node_label_entries(["t4"], hv)
    assert entry == {
        "name": "t4.example.com", "host": "t4",
        "labels": {
            "gpu": "true", "gpu-type": "T4-16G", "vgpu": "true", "rdma": "true", "service": "true",
            "zone": "r02", "tier": "2", "team.example.com/owner": "true",
        },
    }


def test_accelerator_override_variable_and_product_name():
    hv = hostvars(n={
        "node_labels_accelerator": {"present": True, "vendor": "huawei", "model": "Ascend910", "count": 8,
                                    "architecture": "x86_64"},
        "ansible_facts": {"product_name": "G5500"},
        "node_labels_schemes": ["mindcluster"],
    })
    (entry,) = flt.node_label_entries(["n"], hv)
    assert entry["labels"]["accelerator-type"] == "card"
    assert entry["labels"]["host-arch"] == "huawei-x86"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"node_labels_extra": {"bad key": "x"}}, "host gpu-a100-1: node_labels_extra: label 'bad key'"),
        ({"node_labels_extra": {"team": "a b"}}, "host gpu-a100-1: node_labels_extra: label 'team': value 'a b'"),
        ({"node_labels_schemes": ["volcano"]},
         "host gpu-a100-1: node_labels_schemes: unknown label scheme(s) ['volcano']"),
        ({"node_labels_schemes": "cube-studio"}, "host gpu-a100-1: node_labels_schemes: must be a list"),
        ({"node_labels_roles": ["inference"]}, "host gpu-a100-1: node_labels_roles: unknown cube-studio role(s)"),
        ({"node_labels_org": "Team A"}, "host gpu-a100-1: node_labels_org: value 'Team A'"),
        ({"node_labels_gpu_type": "A100 SXM"}, "host gpu-a100-1: node_labels_gpu_type: value 'A100 SXM'"),
        ({"node_labels_share": "maybe"}, "host gpu-a100-1: node_labels_share: must be a boolean"),
        ({"node_labels_remove": ["-x"]}, "host gpu-a100-1: node_labels_remove: '-x'"),
        ({"node_labels_node_name": "GPU_1"}, "host gpu-a100-1: node_labels_node_name: Node name 'GPU_1'"),
        ({"ansible_facts": {}}, "host gpu-a100-1: node_labels_accelerator: no accelerator facts"),
        ({"node_labels_accelerator": "A100"},
         "host gpu-a100-1: node_labels_accelerator: node_labels_accelerator must be"),
    ],
)
def test_bad_input_names_host_and_variable(variables, expected):
    hv = fleet()
    hv["gpu-a100-1"].update(variables)
    with pytest.raises(AnsibleFilterError) as info:
        flt.node_label_entries(["gpu-a100-1", "npu-910b-1", "cpu-1"], hv)
    assert expected in str(info.value)
    assert "nothing written" in str(info.value)


def test_every_problem_of_every_host_is_reported():
    hv = fleet()
    hv["gpu-a100-1"]["node_labels_org"] = "Team A"
    hv["cpu-1"]["node_labels_extra"] = {"a/b/c": "x"}
    hv["npu-910b-1"]["node_labels_node_name"] = "gpu-a100-1"
    with pytest.raises(AnsibleFilterError) as info:
        flt.node_label_entries(["gpu-a100-1", "npu-910b-1", "cpu-1"], hv)
    message = str(info.value)
    assert message.startswith("3 problem(s)")
    assert "host gpu-a100-1: node_labels_org" in message
    assert "host cpu-1: node_labels_extra" in message
    assert "host npu-910b-1: node_labels_node_name: Node 'gpu-a100-1' is already the Node of host gpu-a100-1" in message


def test_unknown_host_and_bad_arguments():
    with pytest.raises(AnsibleFilterError, match="host nope: not in the inventory"):
        flt.node_label_entries(["nope"], fleet())
    with pytest.raises(AnsibleFilterError, match="list of inventory host names"):
        flt.node_label_entries("cpu-1", fleet())
    with pytest.raises(AnsibleFilterError, match="overrides: unknown variable node_labels_colour"):
        flt.node_label_entries(["cpu-1"], fleet(), overrides={"node_labels_colour": "blue"})


# --- play-level detection ----------------------------------------------------------------------

def test_play_level_overrides_are_values_the_host_does_not_have():
    hv = fleet()
    context = {
        "node_labels_roles": ["train", "notebook", "service"],  # same as the host's own: inventory
        "node_labels_org": "team-x",  # host has none: play level
        "node_labels_kubeconfig": "/x",  # not a per-host variable
    }
    assert flt.play_level_overrides(context, hv, "gpu-a100-1") == {"node_labels_org": "team-x"}
    context["node_labels_roles"] = ["train"]  # differs from the host's own: play level
    assert flt.play_level_overrides(context, hv, "gpu-a100-1") == {
        "node_labels_org": "team-x", "node_labels_roles": ["train"],
    }
    # the running host may be the control host, not in the labelled set
    assert flt.play_level_overrides({"node_labels_org": "x"}, hv, "localhost") == {"node_labels_org": "x"}


def test_host_variable_names_cover_every_keyword():
    names = flt.host_variable_names()
    assert "node_labels_node_name" in names and "node_labels_accelerator" in names
    assert len(names) == len(set(names)) == len(flt.HOST_VARIABLES) + 2
