"""Unit tests for module_utils/accelerators.py (sysfs trees built in tmp_path, captured SMI output)."""

from pathlib import Path

import pytest
from ansible_collections.aicluster.platform.plugins.module_utils import accelerators

FIXTURES = Path(__file__).parent / "fixtures"

A100_BUS = ["07", "0f", "47", "4e", "87", "90", "b7", "bd"]
NPU_BUS = ["c1", "01", "c2", "02", "81", "41", "82", "42"]


def fixture(name):
    return (FIXTURES / name).read_text()


def add_pci(root, address, vendor, device, pci_class, numa_node="0", subsystem=None):
    path = root / address
    path.mkdir(parents=True)
    (path / "vendor").write_text(vendor + "\n")
    (path / "device").write_text(device + "\n")
    (path / "class").write_text(pci_class + "\n")
    if numa_node is not None:
        (path / "numa_node").write_text(numa_node + "\n")
    if subsystem:
        (path / "subsystem_vendor").write_text(subsystem[0] + "\n")
        (path / "subsystem_device").write_text(subsystem[1] + "\n")


def add_host_noise(root):
    """Devices every server has: host bridge, BMC VGA, NIC, NVMe."""
    add_pci(root, "0000:00:00.0", "0x8086", "0x09a2", "0x060000", "-1")
    add_pci(root, "0000:05:00.0", "0x1a03", "0x2000", "0x030000", "0")  # ASPEED BMC VGA
    add_pci(root, "0000:18:00.0", "0x15b3", "0x101b", "0x020700", "0")  # ConnectX-6 IB
    add_pci(root, "0000:5e:00.0", "0x144d", "0xa80a", "0x010802", "0")  # NVMe


@pytest.fixture
def a100x8(tmp_path):
    root = tmp_path / "devices"
    add_host_noise(root)
    for i, bus in enumerate(A100_BUS):
        add_pci(root, f"0000:{bus}:00.0", "0x10de", "0x20b2", "0x030200", str(i // 4))
    # NVSwitch bridges and an audio function share vendor 10de and must not count
    for bus in ("c4", "c5", "c6"):
        add_pci(root, f"0000:{bus}:00.0", "0x10de", "0x1af1", "0x068000", "1")
    add_pci(root, "0000:07:00.1", "0x10de", "0x1aef", "0x040300", "0")
    return root


@pytest.fixture
def t4x2(tmp_path):
    root = tmp_path / "devices"
    add_host_noise(root)
    add_pci(root, "0000:3b:00.0", "0x10de", "0x1eb8", "0x030200", "0")
    add_pci(root, "0000:af:00.0", "0x10de", "0x1eb8", "0x030200", "1")
    return root


@pytest.fixture
def ascend910bx8(tmp_path):
    root = tmp_path / "devices"
    add_host_noise(root)
    for i, bus in enumerate(NPU_BUS):
        add_pci(root, f"0000:{bus}:00.0", "0x19e5", "0xd802", "0x120000", str(i // 2), ("0x19e5", "0x3000"))
    # a Huawei NIC (vendor 19e5, class 0x0200) must not count
    add_pci(root, "0000:3d:00.0", "0x19e5", "0x0222", "0x020000", "0")
    return root


@pytest.fixture
def cpu_only(tmp_path):
    root = tmp_path / "devices"
    add_host_noise(root)
    return root


@pytest.fixture
def mixed(tmp_path):
    root = tmp_path / "devices"
    add_host_noise(root)
    for bus in ("17", "31", "b1"):
        add_pci(root, f"0000:{bus}:00.0", "0x10de", "0x20f1", "0x030200", "0")
    add_pci(root, "0000:ca:00.0", "0x10de", "0x1eb8", "0x030200", "1")
    return root


# --- scan_pci / classify ----------------------------------------------------------------------

def test_scan_pci_reads_all_functions(a100x8):
    devices = accelerators.scan_pci(str(a100x8))
    assert len(devices) == 4 + 8 + 3 + 1
    first = next(d for d in devices if d["address"] == "0000:07:00.0")
    assert first == {
        "address": "0000:07:00.0", "vendor": "0x10de", "device": "0x20b2", "class": "0x030200",
        "subsystem_vendor": None, "subsystem_device": None, "numa_node": 0,
    }
    bridge = next(d for d in devices if d["address"] == "0000:00:00.0")
    assert bridge["numa_node"] is None  # -1 from the kernel


def test_scan_pci_missing_root(tmp_path):
    assert accelerators.scan_pci(str(tmp_path / "nope")) == []


def test_classify_filters_audio_nvswitch_and_bmc(a100x8):
    found = accelerators.classify(accelerators.scan_pci(str(a100x8)))
    assert [d["address"] for d in found] == [f"0000:{bus}:00.0" for bus in A100_BUS]
    assert {d["model"] for d in found} == {"A100"}
    assert {d["memory_gib"] for d in found} == {80}
    assert [d["numa_node"] for d in found] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_classify_filters_huawei_nic(ascend910bx8):
    found = accelerators.classify(accelerators.scan_pci(str(ascend910bx8)))
    assert len(found) == 8
    assert {(d["vendor"], d["model"], d["accelerator"]) for d in found} == {
        ("huawei", "Ascend910B", "huawei-Ascend910"),
    }
    assert found[0]["subsystem_device"] == "0x3000"


@pytest.mark.parametrize(
    ("device", "model", "vendor"),
    [
        (("0x10de", "0x20b0"), "A100", "nvidia"),
        (("0x10de", "0x20f3"), "A800", "nvidia"),
        (("0x10de", "0x2330"), "H100", "nvidia"),
        (("0x10de", "0x2324"), "H800", "nvidia"),
        (("0x10de", "0x26b9"), "L40S", "nvidia"),
        (("0x10de", "0x1eb8"), "T4", "nvidia"),
        (("0x10de", "0x1db6"), "V100", "nvidia"),
        (("0x10de", "0x2236"), "A10", "nvidia"),
        (("0x19e5", "0xd802"), "Ascend910B", "huawei"),
        (("0x19e5", "0xd801"), "Ascend910", "huawei"),
        (("0x19e5", "0xd500"), "Ascend310P", "huawei"),
        (("0x19e5", "0xd100"), "Ascend310", "huawei"),
    ],
)
def test_model_table(device, model, vendor):
    assert accelerators.PCI_MODELS[device]["model"] == model
    assert accelerators.VENDORS[device[0]] == vendor


def test_unknown_device_id_still_counts(tmp_path):
    root = tmp_path / "devices"
    add_pci(root, "0000:01:00.0", "0x10de", "0x9999", "0x030000", "0")
    facts = accelerators.summarize(accelerators.scan_pci(str(root)), {}, "x86_64")
    assert facts["present"] is True
    assert facts["model"] == "nvidia-9999"
    assert facts["resource_name"] == "nvidia.com/gpu"


# --- SMI parsers ------------------------------------------------------------------------------

def test_parse_nvidia_smi_a100():
    gpus = accelerators.parse_nvidia_smi(fixture("nvidia_smi_a100x8.txt"))
    assert len(gpus) == 8
    assert gpus[0] == {
        "index": 0,
        "name": "NVIDIA A100-SXM4-80GB",
        "model": "A100",
        "uuid": "GPU-1f1b65b3-e559-713a-e355-9dd901bfd8e0",
        "memory_mib": 81920,
        "driver_version": "535.104.05",
        "bus_id": "0000:07:00.0",
    }


def test_parse_nvidia_smi_no_devices():
    assert accelerators.parse_nvidia_smi(fixture("nvidia_smi_no_devices.txt")) == []
    assert accelerators.parse_nvidia_smi("") == []


def test_parse_nvidia_smi_na_memory():
    gpus = accelerators.parse_nvidia_smi("0, NVIDIA H100 80GB HBM3, GPU-x, [N/A], 550.54.15, 00000000:1B:00.0\n")
    assert gpus[0]["memory_mib"] is None
    assert gpus[0]["model"] == "H100"


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA A100-PCIE-40GB", "A100"),
        ("NVIDIA A10", "A10"),
        ("Tesla T4", "T4"),
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA L40", "L40"),
        ("NVIDIA H800", "H800"),
        ("NVIDIA A800 80GB PCIe", "A800"),
        ("Tesla V100-SXM2-32GB", "V100"),
        ("NVIDIA RTX A6000", None),
    ],
)
def test_nvidia_model_from_name(name, model):
    assert accelerators.nvidia_model_from_name(name) == model


def test_parse_npu_smi_910b():
    info = accelerators.parse_npu_smi(fixture("npu_smi_910b_x8.txt"))
    assert info["version"] == "23.0.6"
    assert len(info["chips"]) == 8
    chip = info["chips"][0]
    assert chip == {
        "npu": 0, "name": "910B2", "model": "Ascend910B", "health": "OK",
        "chip": 0, "phy_id": None, "bus_id": "0000:c1:00.0", "memory_mib": 65536,
    }
    assert [c["npu"] for c in info["chips"]] == list(range(8))


def test_parse_npu_smi_a3_two_chips_per_npu():
    info = accelerators.parse_npu_smi(fixture("npu_smi_a3_phyid.txt"))
    assert info["version"] == "25.2.0"
    assert [(c["npu"], c["chip"], c["phy_id"]) for c in info["chips"]] == [(0, 0, 0), (0, 1, 1), (1, 0, 2), (1, 1, 3)]
    assert {c["model"] for c in info["chips"]} == {"Ascend910"}
    assert info["chips"][3]["bus_id"] == "0000:39:00.0"


def test_parse_npu_smi_no_hbm():
    info = accelerators.parse_npu_smi(fixture("npu_smi_310b_nohbm.txt"))
    assert info["version"] == "23.0.0"
    assert info["chips"][0]["bus_id"] is None
    assert info["chips"][0]["memory_mib"] == 15609
    assert info["chips"][0]["health"] == "Alarm"


def test_parse_npu_smi_garbage():
    assert accelerators.parse_npu_smi("command not found") is None
    assert accelerators.parse_npu_smi("") is None


def test_parse_ascend_version_info():
    assert accelerators.parse_ascend_version_info(fixture("ascend_version_info.txt")) == "23.0.6"
    assert accelerators.parse_ascend_version_info("") is None


@pytest.mark.parametrize(
    ("raw", "normal"),
    [("00000000:07:00.0", "0000:07:00.0"), ("0000:C1:00.0", "0000:c1:00.0"), ("NA", None), ("", None)],
)
def test_normalize_bus_id(raw, normal):
    assert accelerators.normalize_bus_id(raw) == normal


# --- summarize --------------------------------------------------------------------------------

def test_summarize_a100x8_with_smi(a100x8):
    devices = accelerators.classify(accelerators.scan_pci(str(a100x8)))
    smi = {"nvidia": accelerators.parse_nvidia_smi(fixture("nvidia_smi_a100x8.txt"))}
    facts = accelerators.summarize(devices, smi, "x86_64")
    assert facts["present"] is True
    assert facts["vendor"] == "nvidia"
    assert facts["model"] == "A100"
    assert facts["count"] == 8
    assert facts["memory_gib"] == 80
    assert facts["driver_version"] == "535.104.05"
    assert facts["architecture"] == "x86_64"
    assert facts["resource_name"] == "nvidia.com/gpu"
    assert facts["mixed"] is False
    assert facts["smi_matched"] == 8
    assert facts["devices"][0]["uuid"].startswith("GPU-")
    assert facts["devices"][0]["index"] == 0


def test_summarize_a100x8_sysfs_only(a100x8):
    facts = accelerators.summarize(accelerators.scan_pci(str(a100x8)), None, "amd64")
    assert (facts["model"], facts["count"], facts["memory_gib"]) == ("A100", 8, 80)
    assert facts["driver_version"] is None
    assert facts["architecture"] == "x86_64"


def test_summarize_t4x2(t4x2):
    smi = {"nvidia": accelerators.parse_nvidia_smi(fixture("nvidia_smi_t4x2.txt"))}
    facts = accelerators.summarize(accelerators.classify(accelerators.scan_pci(str(t4x2))), smi, "x86_64")
    assert (facts["vendor"], facts["model"], facts["count"]) == ("nvidia", "T4", 2)
    assert facts["memory_gib"] == 15  # 15360 MiB reported by nvidia-smi
    assert facts["driver_version"] == "550.54.15"
    assert [d["numa_node"] for d in facts["devices"]] == [0, 1]


def test_summarize_ascend910bx8(ascend910bx8):
    smi = {
        "npu": accelerators.parse_npu_smi(fixture("npu_smi_910b_x8.txt")),
        "ascend_driver_version": accelerators.parse_ascend_version_info(fixture("ascend_version_info.txt")),
    }
    facts = accelerators.summarize(accelerators.classify(accelerators.scan_pci(str(ascend910bx8))), smi, "aarch64")
    assert facts["vendor"] == "huawei"
    assert facts["model"] == "Ascend910B"
    assert facts["count"] == 8
    assert facts["memory_gib"] == 64
    assert facts["driver_version"] == "23.0.6"
    assert facts["architecture"] == "aarch64"
    assert facts["resource_name"] == "huawei.com/Ascend910"
    assert facts["accelerator"] == "huawei-Ascend910"
    assert facts["smi_matched"] == 8
    assert facts["devices"][0]["npu"] is not None


def test_summarize_ascend_driver_version_from_npu_smi_header(ascend910bx8):
    smi = {"npu": accelerators.parse_npu_smi(fixture("npu_smi_910b_x8.txt"))}
    facts = accelerators.summarize(accelerators.scan_pci(str(ascend910bx8)), smi, "arm64")
    assert facts["driver_version"] == "23.0.6"
    assert facts["architecture"] == "aarch64"


def test_summarize_cpu_only(cpu_only):
    facts = accelerators.summarize(accelerators.classify(accelerators.scan_pci(str(cpu_only))), {}, "x86_64")
    assert facts == {
        "present": False, "vendor": None, "model": None, "models": {}, "mixed": False, "count": 0,
        "memory_gib": None, "driver_version": None, "architecture": "x86_64", "resource_name": None,
        "accelerator": None, "smi_matched": 0, "devices": [],
    }


def test_summarize_mixed_reports_majority_and_all(mixed):
    smi = {"nvidia": accelerators.parse_nvidia_smi(fixture("nvidia_smi_mixed.txt"))}
    facts = accelerators.summarize(accelerators.classify(accelerators.scan_pci(str(mixed))), smi, "x86_64")
    assert facts["model"] == "A100"
    assert facts["models"] == {"A100": 3, "T4": 1}
    assert facts["mixed"] is True
    assert facts["count"] == 4
    assert facts["memory_gib"] == 40
    assert [d["model"] for d in facts["devices"]] == ["A100", "A100", "A100", "T4"]


def test_summarize_smi_only_when_sysfs_empty():
    smi = {"nvidia": accelerators.parse_nvidia_smi(fixture("nvidia_smi_t4x2.txt"))}
    facts = accelerators.summarize([], smi, "x86_64")
    assert (facts["present"], facts["model"], facts["count"]) == (True, "T4", 2)


def test_summarize_a3_smi_only():
    smi = {"npu": accelerators.parse_npu_smi(fixture("npu_smi_a3_phyid.txt"))}
    facts = accelerators.summarize([], smi, "aarch64")
    assert (facts["vendor"], facts["model"], facts["count"]) == ("huawei", "Ascend910", 4)
    assert facts["resource_name"] == "huawei.com/Ascend910"
    assert facts["driver_version"] == "25.2.0"


# --- accelerator_facts module -----------------------------------------------------------------

def run_facts_module(args, capsys):
    import json

    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.aicluster.platform.plugins.modules import accelerator_facts

    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        accelerator_facts.main()
    result = json.loads(capsys.readouterr().out)
    assert exit_info.value.code == 0, result
    return result


def fake_tool(tmp_path, name, fixture_name, argv_log):
    """An executable that records its argv and prints a captured fixture."""
    script = tmp_path / name
    script.write_text(f'#!/bin/sh\necho "$@" >> {argv_log}\ncat {FIXTURES / fixture_name}\n')
    script.chmod(0o755)
    return str(script)


def test_module_a100_with_fake_nvidia_smi(a100x8, tmp_path, capsys):
    log = tmp_path / "argv.log"
    tool = fake_tool(tmp_path, "nvidia-smi", "nvidia_smi_a100x8.txt", log)
    result = run_facts_module(
        {"sysfs_root": str(a100x8), "nvidia_smi": tool, "npu_smi": str(tmp_path / "absent"),
         "_ansible_check_mode": True},
        capsys,
    )
    facts = result["ansible_facts"]["accelerator"]
    assert result["changed"] is False
    assert (facts["vendor"], facts["model"], facts["count"], facts["driver_version"]) == (
        "nvidia", "A100", 8, "535.104.05",
    )
    assert facts["smi"]["nvidia_smi"] == tool
    assert facts["smi"]["npu_smi"] is None
    assert log.read_text().split() == list(accelerators.NVIDIA_SMI_ARGS)


def test_module_ascend_with_fake_npu_smi(ascend910bx8, tmp_path, capsys):
    log = tmp_path / "argv.log"
    tool = fake_tool(tmp_path, "npu-smi", "npu_smi_910b_x8.txt", log)
    result = run_facts_module(
        {"sysfs_root": str(ascend910bx8), "npu_smi": tool, "nvidia_smi": str(tmp_path / "absent"),
         "ascend_version_file": str(FIXTURES / "ascend_version_info.txt")},
        capsys,
    )
    facts = result["ansible_facts"]["accelerator"]
    assert (facts["vendor"], facts["model"], facts["count"]) == ("huawei", "Ascend910B", 8)
    assert facts["driver_version"] == "23.0.6"
    assert facts["resource_name"] == "huawei.com/Ascend910"
    assert log.read_text().split() == ["info"]


def test_module_sysfs_only_and_failing_tool(t4x2, tmp_path, capsys):
    broken = tmp_path / "nvidia-smi"
    broken.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    broken.chmod(0o755)
    result = run_facts_module({"sysfs_root": str(t4x2), "nvidia_smi": str(broken)}, capsys)
    facts = result["ansible_facts"]["accelerator"]
    assert (facts["model"], facts["count"], facts["driver_version"]) == ("T4", 2, None)
    assert "exited 9" in facts["smi"]["errors"][0]

    result = run_facts_module({"sysfs_root": str(t4x2), "nvidia_smi": str(broken), "use_smi": False}, capsys)
    assert result["ansible_facts"]["accelerator"]["smi"] == {"nvidia_smi": None, "npu_smi": None, "errors": []}


def test_module_cpu_only(cpu_only, tmp_path, capsys):
    result = run_facts_module(
        {"sysfs_root": str(cpu_only), "nvidia_smi": "no-such-nvidia-smi", "npu_smi": "no-such-npu-smi"}, capsys,
    )
    facts = result["ansible_facts"]["accelerator"]
    assert facts["present"] is False
    assert facts["count"] == 0
