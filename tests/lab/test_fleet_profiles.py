"""Fleet profiles: parsing, validation, the shipped demo and bench50 profiles (no podman needed)."""

import platform

import pytest
from labctl.fleet import FleetError, load_profile
from labctl.fleet.models import lookup_model, make_machine, parse_profile

ARCH = platform.machine()


def test_demo_profile_has_the_documented_machines():
    machines = {m.name: m for m in load_profile("demo")}
    assert set(machines) == {"gpu-a100-1", "gpu-a100-2", "gpu-t4-1", "npu-910b-1", "npu-910b-2", "cpu-1"}
    assert (machines["gpu-a100-1"].vendor, machines["gpu-a100-1"].model, machines["gpu-a100-1"].count) == (
        "nvidia", "A100", 8)
    assert (machines["gpu-t4-1"].model, machines["gpu-t4-1"].count) == ("T4", 2)
    assert (machines["npu-910b-2"].vendor, machines["npu-910b-2"].count) == ("ascend", 8)
    assert machines["cpu-1"].accelerator is None and machines["cpu-1"].group == "cpu_nodes"
    assert machines["gpu-a100-1"].vars == {"lab_rack": "r01"}
    assert all(m.arch == ARCH and m.cpu > 0 and m.memory_gb > 0 for m in machines.values())


def test_bench50_profile_is_fifty_unique_machines_in_all_groups():
    machines = load_profile("bench50")
    assert len(machines) == 50
    assert len({m.name for m in machines}) == 50
    assert {m.group for m in machines} == {"nvidia_nodes", "ascend_nodes", "cpu_nodes"}
    assert {m.model for m in machines} >= {"A100", "H100", "T4", "910B", "310P"}


def _doc(*machines):
    return {"name": "t", "machines": list(machines)}


def test_defaults_and_vendor_aliases():
    (m,) = parse_profile({"defaults": {"cpu": 4, "vars": {"a": 1}},
                          "machines": [{"name": "n1", "accelerator": {"vendor": "huawei", "model": "ascend910b",
                                                                      "count": 2}, "vars": {"b": 2}}]})
    assert (m.vendor, m.model, m.count, m.cpu, m.vars) == ("ascend", "910B", 2, 4, {"a": 1, "b": 2})


@pytest.mark.parametrize(("doc", "message"), [
    ({"machines": []}, "non-empty"),
    (_doc({"name": "Bad_Name"}), "not a valid hostname"),
    (_doc({"name": "a"}, {"name": "a"}), "duplicate"),
    (_doc({"name": "a", "accelerator": {"model": "Z80", "count": 1}}), "unknown accelerator model"),
    (_doc({"name": "a", "accelerator": {"vendor": "ascend", "model": "A100", "count": 1}}), "is nvidia"),
    (_doc({"name": "a", "accelerator": {"model": "T4", "count": 99}}), "out of range"),
    (_doc({"name": "a", "gpus": 3}), "unknown keys"),
    (_doc({"name": "a", "arch": "s390x" if ARCH != "s390x" else "x86_64"}), "cannot run"),
])
def test_invalid_profiles_raise_one_line_errors(doc, message):
    with pytest.raises(FleetError, match=message) as err:
        parse_profile(doc)
    assert "\n" not in str(err.value)


def test_unknown_profile_name_lists_known_ones():
    with pytest.raises(FleetError, match=r"known: .*bench50.*demo"):
        load_profile("nope")


def test_real_pci_ids_of_models():
    assert lookup_model("A100").pci_device == 0x20B0
    assert lookup_model("A100-80GB").pci_device == 0x20B2
    assert lookup_model("T4").pci_device == 0x1EB8
    assert lookup_model("H100").pci_device == 0x2330
    assert lookup_model("910B").pci_device == 0xD802
    assert lookup_model("310P").pci_device == 0xD500


def test_machine_without_accelerator_is_cpu_only():
    m = make_machine("cpu-9", "A100", 0)
    assert (m.vendor, m.model, m.count, m.group) == ("none", "", 0, "cpu_nodes")
