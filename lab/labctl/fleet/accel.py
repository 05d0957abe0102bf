"""Simulated accelerators (lab fixtures): the per-machine files mounted at production paths.

For each machine the host generates, under ``STATE_DIR/fleet/<name>/``:

- ``pci/``: a fake ``/sys/bus/pci/devices`` tree, one directory per function (``0000:17:00.0``)
  holding ``vendor``, ``device``, ``class``, ``subsystem_vendor``, ``subsystem_device``,
  ``revision``, ``numa_node``, ``irq``, ``resource`` and a 256-byte ``config`` header, so that both
  ``cat /sys/bus/pci/devices/*/vendor`` and ``lspci -nn`` work inside the machine;
- ``accelerators.json``: what the ``nvidia-smi`` / ``npu-smi`` stand-ins report
  (mounted at ``/etc/lab-accelerators.json``);
- ``version.info``: the Ascend driver version file (``/usr/local/Ascend/driver/version.info``).
"""

from __future__ import annotations

import json
import shutil
import struct
import uuid
import zlib
from pathlib import Path

from .models import AcceleratorModel, Machine

NVIDIA_DRIVER = "550.127.05"
CUDA_VERSION = "12.4"
ASCEND_DRIVER = "24.1.rc3"
ASCEND_FIRMWARE = "7.5.0.1.129"

# Functions every machine has: (bdf, vendor, device, class, subsys vendor, subsys device, rev)
BASE_DEVICES = (
    ("0000:00:00.0", 0x8086, 0x09A2, 0x060000, 0x8086, 0x0000, 0x04),  # Ice Lake host bridge
    ("0000:00:1f.0", 0x8086, 0xA1C3, 0x060100, 0x8086, 0x7270, 0x09),  # C620 LPC/ISA bridge
    ("0000:00:17.0", 0x8086, 0xA182, 0x010601, 0x8086, 0x7270, 0x09),  # C620 SATA AHCI
    ("0000:31:00.0", 0x8086, 0x1572, 0x020000, 0x8086, 0x0006, 0x02),  # X710 10GbE NIC
    ("0000:31:00.1", 0x8086, 0x1572, 0x020000, 0x8086, 0x0000, 0x02),  # X710 10GbE NIC, port 2
)


def bus_ids(acc: AcceleratorModel, count: int) -> list[str]:
    """PCI addresses (``0000:BB:00.0``) of ``count`` devices of a model, in device index order."""
    buses = list(acc.bus_ids)
    nxt = 0x60
    while len(buses) < count:
        if nxt not in buses:
            buses.append(nxt)
        nxt += 1
    return [f"0000:{b:02x}:00.0" for b in buses[:count]]


def device_uuid(machine: str, index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{machine}.gpu{index}.aicluster-lab"))


def accelerator_info(m: Machine) -> dict:
    """The per-machine JSON the smi stand-ins read (``/etc/lab-accelerators.json``)."""
    acc = m.accelerator
    if acc is None:
        return {"vendor": "none", "devices": []}
    devices = []
    for i, bdf in enumerate(bus_ids(acc, m.count)):
        numa = 0 if i < (m.count + 1) // 2 else 1
        dev = {"index": i, "pci_bus_id": bdf, "numa_node": numa, "memory_total": acc.memory_mib,
               "power_cap_w": acc.power_cap_w, "temperature_c": 30 + (i * 7) % 9, "health": "OK"}
        if acc.vendor == "nvidia":
            dev["uuid"] = f"GPU-{device_uuid(m.name, i)}"
            dev["serial"] = str(1320000000000 + zlib.crc32(m.name.encode()) % 100000 * 100 + i)
            dev["power_draw_w"] = round(acc.power_cap_w * 0.14 + (i % 3) * 1.7, 2)
        else:
            dev["chip_id"] = 0
            dev["power_draw_w"] = round(88.0 + (i % 4) * 2.3, 1)
            dev["hbm_used"] = 3161 if acc.model == "910B" else 0
            dev["memory_used"] = 0 if acc.model == "910B" else 1423
        devices.append(dev)
    info = {"vendor": acc.vendor, "model": acc.model, "product_name": acc.product_name,
            "pci_vendor": f"0x{acc.pci_vendor:04x}", "pci_device": f"0x{acc.pci_device:04x}",
            "devices": devices}
    if acc.vendor == "nvidia":
        info |= {"driver_version": NVIDIA_DRIVER, "cuda_version": CUDA_VERSION}
    else:
        info |= {"driver_version": ASCEND_DRIVER, "firmware_version": ASCEND_FIRMWARE}
    return info


def _config_space(vendor: int, device: int, cls: int, sub_vendor: int, sub_device: int, rev: int,
                  header_type: int = 0) -> bytes:
    cfg = bytearray(256)
    struct.pack_into("<HHHH", cfg, 0, vendor, device, 0x0146, 0x0010)  # command, status (cap list)
    cfg[8] = rev
    cfg[9:12] = (cls & 0xFF, (cls >> 8) & 0xFF, (cls >> 16) & 0xFF)    # prog-if, subclass, base class
    cfg[0x0E] = header_type
    if header_type == 0:
        struct.pack_into("<HH", cfg, 0x2C, sub_vendor, sub_device)
    return bytes(cfg)


def _write_function(root: Path, bdf: str, vendor: int, device: int, cls: int, sub_vendor: int,
                    sub_device: int, rev: int, numa: int) -> None:
    d = root / bdf
    d.mkdir(parents=True)
    files = {
        "vendor": f"0x{vendor:04x}", "device": f"0x{device:04x}", "class": f"0x{cls:06x}",
        "subsystem_vendor": f"0x{sub_vendor:04x}", "subsystem_device": f"0x{sub_device:04x}",
        "revision": f"0x{rev:02x}", "numa_node": str(numa), "irq": "0", "enable": "1",
        "local_cpulist": "0-63" if numa == 0 else "64-127",
        "resource": "\n".join(["0x0000000000000000 0x0000000000000000 0x0000000000000000"] * 13),
        "modalias": (f"pci:v{vendor:08X}d{device:08X}sv{sub_vendor:08X}sd{sub_device:08X}"
                     f"bc{cls >> 16:02X}sc{(cls >> 8) & 0xFF:02X}i{cls & 0xFF:02X}"),
    }
    for name, value in files.items():
        (d / name).write_text(value + "\n")
    (d / "config").write_bytes(_config_space(vendor, device, cls, sub_vendor, sub_device, rev))


def write_pci_tree(m: Machine, root: Path) -> list[str]:
    """(Re)create the fake ``/sys/bus/pci/devices`` of ``m`` under ``root``; return the BDFs."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for bdf, vendor, device, cls, sv, sd, rev in BASE_DEVICES:
        _write_function(root, bdf, vendor, device, cls, sv, sd, rev, 0)
    acc = m.accelerator
    if acc is not None:
        for dev in accelerator_info(m)["devices"]:
            _write_function(root, dev["pci_bus_id"], acc.pci_vendor, acc.pci_device, acc.pci_class,
                            acc.subsystem_vendor, acc.subsystem_device, 0xA1 if acc.vendor == "nvidia" else 0x20,
                            dev["numa_node"])
    return sorted(p.name for p in root.iterdir())


def version_info(driver: str = ASCEND_DRIVER) -> str:
    """Content of ``/usr/local/Ascend/driver/version.info`` as the driver .run installs it."""
    return (f"Version={driver}\nascendhal_version=7.35.23\naicpu_version=1.0\ntdt_version=1.0\n"
            f"log_version=1.0\nprof_version=2.0\ndvppkernels_version=1.1\ntsfw_version=1.0\n"
            f"Innerversion=V100R001C19SPC003B205\ncompatible_version=[V100R001C15],[V100R001C17],"
            f"[V100R001C18],[V100R001C19]\ncompatible_version_fw=[7.0.0,7.5.99]\npackage_version={driver}\n")


def device_files(m: Machine) -> list[str]:
    """``/dev`` nodes the machine must have (created as char devices via ``--device /dev/null:…``)."""
    acc = m.accelerator
    if acc is None:
        return []
    if acc.vendor == "nvidia":
        return [f"/dev/nvidia{i}" for i in range(m.count)] + ["/dev/nvidiactl", "/dev/nvidia-uvm",
                                                              "/dev/nvidia-uvm-tools"]
    return [f"/dev/davinci{i}" for i in range(m.count)] + ["/dev/davinci_manager", "/dev/devmm_svm",
                                                            "/dev/hisi_hdc"]


def write_machine_files(m: Machine, machine_dir: Path) -> None:
    """Generate all host-side fixture files of one machine under ``machine_dir``."""
    machine_dir.mkdir(parents=True, exist_ok=True)
    write_pci_tree(m, machine_dir / "pci")
    (machine_dir / "accelerators.json").write_text(json.dumps(accelerator_info(m), indent=2) + "\n")
    if m.vendor == "ascend":
        (machine_dir / "version.info").write_text(version_info())
