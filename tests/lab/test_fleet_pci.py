"""The fake /sys/bus/pci/devices tree and /dev nodes generated per machine (no podman needed)."""

import struct

from labctl.fleet.accel import device_files, write_machine_files, write_pci_tree
from labctl.fleet.models import make_machine


def _read(d, name):
    return (d / name).read_text().strip()


def _detect(root):
    """The detection recipe roles use (accelerators.md §9): vendor + class prefix."""
    found = []
    for d in sorted(root.iterdir()):
        vendor, cls, dev = _read(d, "vendor"), _read(d, "class"), _read(d, "device")
        if vendor == "0x10de" and cls[:6] in ("0x0300", "0x0302"):
            found.append(("nvidia", dev))
        elif vendor == "0x19e5" and cls.startswith("0x1200"):
            found.append(("ascend", dev))
    return found


def test_a100_tree_has_eight_3d_controllers_and_host_devices(tmp_path):
    bdfs = write_pci_tree(make_machine("g1", "A100", 8), tmp_path)
    assert "0000:07:00.0" in bdfs and "0000:00:00.0" in bdfs
    assert _detect(tmp_path) == [("nvidia", "0x20b0")] * 8
    gpu = tmp_path / "0000:07:00.0"
    assert _read(gpu, "class") == "0x030200"
    assert _read(gpu, "subsystem_vendor") == "0x10de"
    assert _read(gpu, "numa_node") == "0"
    classes = sorted(_read(d, "class") for d in tmp_path.iterdir())
    assert "0x060000" in classes and "0x020000" in classes  # host bridge, NIC
    assert len([d for d in tmp_path.iterdir() if _read(d, "vendor") == "0x10de"]) == 8


def test_config_space_matches_sysfs_attributes(tmp_path):
    write_pci_tree(make_machine("n1", "910B", 2), tmp_path)
    d = tmp_path / "0000:c1:00.0"
    cfg = (d / "config").read_bytes()
    vendor, device = struct.unpack_from("<HH", cfg, 0)
    sub_vendor, sub_device = struct.unpack_from("<HH", cfg, 0x2C)
    assert (vendor, device) == (0x19E5, 0xD802)
    assert cfg[11] == 0x12 and cfg[10] == 0x00  # base class 12 (processing accelerator)
    assert (sub_vendor, sub_device) == (0x0200, 0x0100)
    assert _read(d, "class") == "0x120000"


def test_ascend_and_cpu_trees(tmp_path):
    write_pci_tree(make_machine("n1", "910B", 8), tmp_path / "a")
    assert _detect(tmp_path / "a") == [("ascend", "0xd802")] * 8
    write_pci_tree(make_machine("c1"), tmp_path / "c")
    assert _detect(tmp_path / "c") == []


def test_tree_is_regenerated_not_merged(tmp_path):
    write_pci_tree(make_machine("g", "A100", 8), tmp_path)
    write_pci_tree(make_machine("g", "T4", 2), tmp_path)
    assert _detect(tmp_path) == [("nvidia", "0x1eb8")] * 2


def test_device_files():
    assert device_files(make_machine("g", "T4", 2)) == [
        "/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"]
    ascend = device_files(make_machine("n", "910B", 8))
    assert ascend[:8] == [f"/dev/davinci{i}" for i in range(8)]
    assert set(ascend[8:]) == {"/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"}
    assert device_files(make_machine("c")) == []


def test_machine_files(tmp_path):
    write_machine_files(make_machine("n", "910B", 8), tmp_path)
    assert (tmp_path / "accelerators.json").exists()
    assert (tmp_path / "version.info").read_text().startswith("Version=24.1.rc3\n")
