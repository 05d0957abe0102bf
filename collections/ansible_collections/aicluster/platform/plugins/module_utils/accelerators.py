# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Accelerator detection: pure functions over sysfs and the vendors' SMI tools.

Nothing here runs a process or talks to Ansible; the module ``accelerator_facts`` feeds
these functions with the sysfs tree and the captured tool output, which keeps them
unit-testable with fixtures.

Sources (see shared/reference/accelerators.md):

* Vendor and class filter: NVIDIA ``0x10de`` with class ``0x0300xx`` (VGA) or ``0x0302xx``
  (3D controller), which leaves out the HDMI audio function (``0x0403``) and NVSwitch bridges;
  Huawei ``0x19e5`` with class ``0x1200xx`` (processing accelerator) -- reference sections 0, 2.3, 4.8.
* Ascend device IDs: ``d100`` 310, ``d500`` 310P, ``d801`` 910, ``d802`` 910B (Huawei's
  ascend-deployer ``npu_info.py``), ``d803`` 910 A3 (community-sourced only, reference 4.8).
* NVIDIA device IDs and names: ``pci.ids`` (Debian package ``pci.ids`` 0.0~2023.04.11-1), except
  ``26b9`` (L40S), which is newer than that file.
* Resource names: ``nvidia.com/gpu``; ``huawei.com/Ascend910`` for 910, 910B and 910A3,
  ``huawei.com/Ascend310P``, ``huawei.com/Ascend310`` (reference 4.3).
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter

# ---------------------------------------------------------------------------------------------
# Data tables -- extend here.
# ---------------------------------------------------------------------------------------------

VENDORS = {
    "0x10de": "nvidia",
    "0x19e5": "huawei",
}

# PCI class prefixes (first four hex digits: base class + sub class) that count as an
# accelerator, per vendor.  Everything else from these vendors (audio, bridges, NICs) is ignored.
ACCELERATOR_CLASSES = {
    "nvidia": ("0x0300", "0x0302"),  # VGA compatible controller, 3D controller
    "huawei": ("0x1200",),  # processing accelerators
}

# (vendor id, device id) -> model facts.  ``model`` is the form used in node labels
# (cube-studio ``gpu-type``); ``memory_gib`` is the nominal size (SMI output wins when present).
# Ascend entries carry the MindCluster ``accelerator`` label and the device-plugin resource.
PCI_MODELS = {
    # NVIDIA Volta
    ("0x10de", "0x1db1"): {"model": "V100", "memory_gib": 16, "pci_name": "Tesla V100 SXM2 16GB"},
    ("0x10de", "0x1db4"): {"model": "V100", "memory_gib": 16, "pci_name": "Tesla V100 PCIe 16GB"},
    ("0x10de", "0x1db5"): {"model": "V100", "memory_gib": 32, "pci_name": "Tesla V100 SXM2 32GB"},
    ("0x10de", "0x1db6"): {"model": "V100", "memory_gib": 32, "pci_name": "Tesla V100 PCIe 32GB"},
    ("0x10de", "0x1db8"): {"model": "V100", "memory_gib": 32, "pci_name": "Tesla V100 SXM3 32GB"},
    ("0x10de", "0x1df6"): {"model": "V100S", "memory_gib": 32, "pci_name": "Tesla V100S PCIe 32GB"},
    # NVIDIA Turing
    ("0x10de", "0x1eb8"): {"model": "T4", "memory_gib": 16, "pci_name": "Tesla T4"},
    # NVIDIA Ampere
    ("0x10de", "0x20b0"): {"model": "A100", "memory_gib": 40, "pci_name": "A100 SXM4 40GB"},
    ("0x10de", "0x20b1"): {"model": "A100", "memory_gib": 40, "pci_name": "A100 PCIe 40GB"},
    ("0x10de", "0x20b2"): {"model": "A100", "memory_gib": 80, "pci_name": "A100 SXM4 80GB"},
    ("0x10de", "0x20b3"): {"model": "A100", "memory_gib": 64, "pci_name": "A100-SXM-64GB"},
    ("0x10de", "0x20b5"): {"model": "A100", "memory_gib": 80, "pci_name": "A100 PCIe 80GB"},
    ("0x10de", "0x20f1"): {"model": "A100", "memory_gib": 40, "pci_name": "A100 PCIe 40GB"},
    ("0x10de", "0x20f3"): {"model": "A800", "memory_gib": 80, "pci_name": "A800-SXM4-80GB"},
    ("0x10de", "0x20f5"): {"model": "A800", "memory_gib": 80, "pci_name": "A800 80GB PCIe"},
    ("0x10de", "0x20f6"): {"model": "A800", "memory_gib": 40, "pci_name": "A800 40GB PCIe"},
    ("0x10de", "0x20b7"): {"model": "A30", "memory_gib": 24, "pci_name": "A30 PCIe"},
    ("0x10de", "0x2235"): {"model": "A40", "memory_gib": 48, "pci_name": "A40"},
    ("0x10de", "0x2236"): {"model": "A10", "memory_gib": 24, "pci_name": "A10"},
    # NVIDIA Ada
    ("0x10de", "0x26b5"): {"model": "L40", "memory_gib": 48, "pci_name": "L40"},
    ("0x10de", "0x26b9"): {"model": "L40S", "memory_gib": 48, "pci_name": "L40S"},
    ("0x10de", "0x27b8"): {"model": "L4", "memory_gib": 24, "pci_name": "L4"},
    # NVIDIA Hopper
    ("0x10de", "0x2322"): {"model": "H800", "memory_gib": 80, "pci_name": "H800 PCIe"},
    ("0x10de", "0x2324"): {"model": "H800", "memory_gib": 80, "pci_name": "H800"},
    ("0x10de", "0x2330"): {"model": "H100", "memory_gib": 80, "pci_name": "H100 SXM5 80GB"},
    ("0x10de", "0x2331"): {"model": "H100", "memory_gib": 80, "pci_name": "H100 PCIe"},
    ("0x10de", "0x2336"): {"model": "H100", "memory_gib": None, "pci_name": "H100"},
    ("0x10de", "0x2339"): {"model": "H100", "memory_gib": None, "pci_name": "H100"},
    # Huawei Ascend (memory per chip; 910B4 has 32 GiB, npu-smi output corrects it)
    ("0x19e5", "0xd100"): {
        "model": "Ascend310", "memory_gib": 8, "pci_name": "Atlas 300I (Ascend 310)",
        "accelerator": "huawei-Ascend310", "resource_name": "huawei.com/Ascend310",
    },
    ("0x19e5", "0xd500"): {
        "model": "Ascend310P", "memory_gib": 24, "pci_name": "Atlas 300I Pro/Duo (Ascend 310P)",
        "accelerator": "huawei-Ascend310P", "resource_name": "huawei.com/Ascend310P",
    },
    ("0x19e5", "0xd801"): {
        "model": "Ascend910", "memory_gib": 32, "pci_name": "Ascend 910",
        "accelerator": "huawei-Ascend910", "resource_name": "huawei.com/Ascend910",
    },
    ("0x19e5", "0xd802"): {
        "model": "Ascend910B", "memory_gib": 64, "pci_name": "Ascend 910B",
        "accelerator": "huawei-Ascend910", "resource_name": "huawei.com/Ascend910",
    },
    ("0x19e5", "0xd803"): {
        "model": "Ascend910A3", "memory_gib": 64, "pci_name": "Ascend 910 A3 (unconfirmed by Huawei)",
        "accelerator": "huawei-Ascend910", "resource_name": "huawei.com/Ascend910",
    },
}

# Default device-plugin resource per vendor (Ascend models override it in PCI_MODELS).
VENDOR_RESOURCE = {
    "nvidia": "nvidia.com/gpu",
    "huawei": "huawei.com/Ascend910",
}

# NVIDIA model tokens recognised in ``nvidia-smi`` names, longest first so that ``A100`` is not
# read as ``A10`` nor ``L40S`` as ``L40``.
NVIDIA_NAME_MODELS = (
    "L40S", "L40", "L20", "L4",
    "A100", "A800", "A40", "A30", "A16", "A10", "A2",
    "H100", "H800", "H200", "H20",
    "V100S", "V100", "T4", "P100", "P40", "P4",
)

# npu-smi chip names (``910B2``, ``Ascend910``, ``310P3`` ...) -> label model.
ASCEND_NAME_MODELS = (
    (re.compile(r"^(?:Ascend)?910B", re.IGNORECASE), "Ascend910B"),
    (re.compile(r"^(?:Ascend)?910_?93|^(?:Ascend)?910C", re.IGNORECASE), "Ascend910A3"),
    (re.compile(r"^(?:Ascend)?910", re.IGNORECASE), "Ascend910"),
    (re.compile(r"^(?:Ascend)?310P", re.IGNORECASE), "Ascend310P"),
    (re.compile(r"^(?:Ascend)?310", re.IGNORECASE), "Ascend310"),
)

ARCH_ALIASES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "huawei-x86": "x86_64",
    "huawei-arm": "aarch64",
}

# Fields asked from nvidia-smi, in this order (module and parser share it).
NVIDIA_SMI_FIELDS = ("index", "name", "uuid", "memory.total", "driver_version", "pci.bus_id")
NVIDIA_SMI_ARGS = (
    "--query-gpu=" + ",".join(NVIDIA_SMI_FIELDS),
    "--format=csv,noheader,nounits",
)


# ---------------------------------------------------------------------------------------------
# sysfs
# ---------------------------------------------------------------------------------------------

def _read_attr(path):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _hex_attr(value):
    """Normalise a sysfs hex attribute (``0x10DE`` -> ``0x10de``); None stays None."""
    if value is None:
        return None
    value = value.strip().lower()
    if not value:
        return None
    if not value.startswith("0x"):
        value = "0x" + value
    return value


def normalize_bus_id(bus_id):
    """``00000000:07:00.0`` (nvidia-smi) / ``0000:C1:00.0`` (npu-smi) -> ``0000:07:00.0``."""
    if not bus_id:
        return None
    bus_id = bus_id.strip().lower()
    match = re.match(r"^(?:([0-9a-f]+):)?([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$", bus_id)
    if not match:
        return None
    domain = (match.group(1) or "0")[-4:].rjust(4, "0")
    return f"{domain}:{match.group(2)}:{match.group(3)}.{match.group(4)}"


def scan_pci(sysfs_root="/sys/bus/pci/devices"):
    """Read every PCI function under ``sysfs_root``.

    Returns a list (sorted by address) of dicts with ``address``, ``vendor``, ``device``,
    ``class``, ``subsystem_vendor``, ``subsystem_device`` (``0x``-prefixed lower-case hex strings
    or None) and ``numa_node`` (int, None when the kernel reports ``-1`` or the file is missing).
    A missing root yields an empty list.
    """
    try:
        entries = sorted(os.listdir(sysfs_root))
    except OSError:
        return []
    devices = []
    for entry in entries:
        path = os.path.join(sysfs_root, entry)
        if not os.path.isdir(path):
            continue
        vendor = _hex_attr(_read_attr(os.path.join(path, "vendor")))
        if vendor is None:
            continue
        numa_raw = _read_attr(os.path.join(path, "numa_node"))
        try:
            numa_node = int(numa_raw) if numa_raw is not None else None
        except ValueError:
            numa_node = None
        if numa_node is not None and numa_node < 0:
            numa_node = None
        devices.append({
            "address": normalize_bus_id(entry) or entry,
            "vendor": vendor,
            "device": _hex_attr(_read_attr(os.path.join(path, "device"))),
            "class": _hex_attr(_read_attr(os.path.join(path, "class"))),
            "subsystem_vendor": _hex_attr(_read_attr(os.path.join(path, "subsystem_vendor"))),
            "subsystem_device": _hex_attr(_read_attr(os.path.join(path, "subsystem_device"))),
            "numa_node": numa_node,
        })
    return devices


def is_accelerator(device):
    """True when the PCI function is a GPU/NPU per the vendor + class filter."""
    vendor = VENDORS.get(device.get("vendor") or "")
    if vendor is None:
        return False
    pci_class = device.get("class") or ""
    return any(pci_class.startswith(prefix) for prefix in ACCELERATOR_CLASSES[vendor])


def classify(devices):
    """Keep the accelerators of ``scan_pci`` output and attach the table facts.

    Each result carries ``vendor`` (``nvidia``/``huawei``), ``vendor_id``, ``device_id``,
    ``model`` (None for an ID missing from PCI_MODELS), ``memory_gib`` and, for Ascend,
    ``accelerator``; plus the sysfs fields.
    """
    result = []
    for device in devices:
        if not is_accelerator(device):
            continue
        info = PCI_MODELS.get((device["vendor"], device.get("device")), {})
        result.append({
            "address": device["address"],
            "vendor": VENDORS[device["vendor"]],
            "vendor_id": device["vendor"],
            "device_id": device.get("device"),
            "class": device.get("class"),
            "subsystem_vendor": device.get("subsystem_vendor"),
            "subsystem_device": device.get("subsystem_device"),
            "numa_node": device.get("numa_node"),
            "model": info.get("model"),
            "pci_name": info.get("pci_name"),
            "memory_gib": info.get("memory_gib"),
            "accelerator": info.get("accelerator"),
            "resource_name": info.get("resource_name"),
        })
    return result


# ---------------------------------------------------------------------------------------------
# SMI output parsers
# ---------------------------------------------------------------------------------------------

def _none_if_na(value):
    value = (value or "").strip()
    if not value or value.upper() in ("[N/A]", "N/A", "NA", "[NOT SUPPORTED]", "-"):
        return None
    return value


def _int_or_none(value):
    value = _none_if_na(value)
    if value is None:
        return None
    match = re.match(r"^(\d+)(?:\.\d+)?\s*(?:MiB)?$", value)
    return int(match.group(1)) if match else None


def nvidia_model_from_name(name):
    """``NVIDIA A100-SXM4-80GB`` -> ``A100``; ``Tesla T4`` -> ``T4``; unknown -> None."""
    if not name:
        return None
    upper = name.upper()
    for model in NVIDIA_NAME_MODELS:
        if re.search(r"(?<![A-Z0-9])" + re.escape(model) + r"(?![A-Z0-9])", upper):
            return model
    return None


def parse_nvidia_smi(output):
    """Parse ``nvidia-smi --query-gpu=index,name,uuid,memory.total,driver_version,pci.bus_id
    --format=csv,noheader,nounits``.

    Returns a list of dicts: ``index`` (int), ``name``, ``model``, ``uuid``, ``memory_mib`` (int or
    None), ``driver_version``, ``bus_id`` (normalised ``dddd:bb:dd.f``).  Lines that do not have six
    fields (warnings, blank lines, "No devices were found") are skipped.
    """
    gpus = []
    reader = csv.reader((output or "").splitlines(), skipinitialspace=True)
    for row in reader:
        if len(row) != len(NVIDIA_SMI_FIELDS):
            continue
        index, name, uuid, memory, driver, bus_id = (field.strip() for field in row)
        if not index.isdigit():
            continue
        gpus.append({
            "index": int(index),
            "name": name,
            "model": nvidia_model_from_name(name),
            "uuid": _none_if_na(uuid),
            "memory_mib": _int_or_none(memory),
            "driver_version": _none_if_na(driver),
            "bus_id": normalize_bus_id(bus_id),
        })
    return gpus


def ascend_model_from_name(name):
    """npu-smi ``Name`` column (``910B2``, ``910B2C``, ``Ascend910``, ``310P3``) -> label model."""
    if not name:
        return None
    for pattern, model in ASCEND_NAME_MODELS:
        if pattern.search(name.strip()):
            return model
    return None


_NPU_VERSION = re.compile(r"npu-smi\s+(\S+)\s+Version:\s*(\S+)")
_NPU_FIRST = re.compile(r"^\|\s*(\d+)\s+(\S+)\s*\|\s*(\S+)\s*\|")
_NPU_SECOND = re.compile(r"^\|\s*(\d+)(?:\s+(\d+))?\s*\|\s*(\S+)\s*\|(.*)\|\s*$")
_USAGE = re.compile(r"(\d+)\s*/\s*(\d+)")


def parse_npu_smi(output):
    """Parse the ``npu-smi info`` table.

    The table has two rows per chip::

        | NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|
        | Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |
        | 0     910B2               | OK            | 96.5        36                0    / 0             |
        | 0                         | 0000:C1:00.0  | 0           0    / 0          29954/ 65536         |

    (Newer drivers print ``Chip  Phy-ID`` and 910 A3 boards list two chips per NPU.)  The process
    table after the chip table is ignored.

    Returns ``{"version": str|None, "chips": [...]}``; each chip has ``npu``, ``chip``,
    ``phy_id`` (int or None), ``name``, ``model``, ``health``, ``bus_id`` (normalised or None),
    ``memory_mib`` (HBM total when printed, else DDR total) -- or None when there is no table.
    """
    text = output or ""
    match = _NPU_VERSION.search(text)
    if not match and "NPU" not in text:
        return None
    version = match.group(2) if match else None
    chips = []
    pending = None
    in_process_table = False
    for raw in text.splitlines():
        line = raw.rstrip()
        if "Process id" in line or "Process name" in line:
            in_process_table = True
            pending = None
            continue
        if in_process_table or not line.startswith("|"):
            continue
        if pending is None:
            first = _NPU_FIRST.match(line)
            if first and not first.group(2).startswith("Name"):
                pending = {
                    "npu": int(first.group(1)),
                    "name": first.group(2),
                    "model": ascend_model_from_name(first.group(2)),
                    "health": first.group(3),
                }
            continue
        second = _NPU_SECOND.match(line)
        if not second:
            pending = None
            continue
        usages = _USAGE.findall(second.group(4))
        memory = int(usages[-1][1]) if usages else None
        if memory == 0:
            memory = None
        chips.append({
            **pending,
            "chip": int(second.group(1)),
            "phy_id": int(second.group(2)) if second.group(2) is not None else None,
            "bus_id": normalize_bus_id(second.group(3)),
            "memory_mib": memory,
        })
        pending = None
    if not chips and version is None:
        return None
    return {"version": version, "chips": chips}


def parse_ascend_version_info(text):
    """``/usr/local/Ascend/driver/version.info`` -> driver version (the ``Version=`` line)."""
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() == "version" and value.strip():
            return value.strip()
    return None


# ---------------------------------------------------------------------------------------------
# Summary facts
# ---------------------------------------------------------------------------------------------

def normalize_arch(arch):
    """``amd64``/``x86_64``/``huawei-x86`` -> ``x86_64``; ``arm64``/``aarch64``/``huawei-arm`` ->
    ``aarch64``; anything else is returned lower-cased (None stays None)."""
    if not arch:
        return None
    arch = str(arch).strip().lower()
    return ARCH_ALIASES.get(arch, arch)


def _majority(values):
    """Most common non-None value; ties go to the value seen first."""
    counted = Counter(value for value in values if value is not None)
    if not counted:
        return None
    best = max(counted.values())
    for value in values:
        if value is not None and counted[value] == best:
            return value
    return None


def _gib(mib):
    return round(mib / 1024) if mib else None


def summarize(devices, smi_info=None, arch=None):
    """Build the ``accelerator`` fact from ``classify()`` output (or raw ``scan_pci()`` output,
    which is classified here) and the parsed SMI output.

    ``smi_info``: ``{"nvidia": parse_nvidia_smi(...) or None, "npu": parse_npu_smi(...) or None,
    "ascend_driver_version": str or None}`` -- any key may be missing.

    The host's vendor is the vendor with most accelerators; ``model`` is the majority model of
    that vendor and ``models`` counts every model found (mixed hosts).  ``count`` is every
    accelerator of the vendor: the device plugin advertises all of them under one resource.
    """
    smi_info = smi_info or {}
    if devices and "vendor_id" not in devices[0]:
        devices = classify(devices)
    devices = [dict(device) for device in (devices or [])]

    nvidia_smi = smi_info.get("nvidia") or []
    npu_smi = smi_info.get("npu") or {}
    npu_chips = npu_smi.get("chips") or []

    # Enrich PCI devices with the SMI row of the same bus id.
    smi_by_bus = {}
    for gpu in nvidia_smi:
        if gpu.get("bus_id"):
            smi_by_bus[gpu["bus_id"]] = ("nvidia", gpu)
    for chip in npu_chips:
        if chip.get("bus_id"):
            smi_by_bus[chip["bus_id"]] = ("huawei", chip)
    matched = set()
    for device in devices:
        hit = smi_by_bus.get(device["address"])
        if not hit or hit[0] != device["vendor"]:
            continue
        matched.add(device["address"])
        row = hit[1]
        device["smi_name"] = row.get("name")
        device["memory_mib"] = row.get("memory_mib")
        if row.get("memory_mib"):
            device["memory_gib"] = _gib(row["memory_mib"])
        if device["model"] is None:
            device["model"] = row.get("model")
        if hit[0] == "nvidia":
            device["index"] = row.get("index")
            device["uuid"] = row.get("uuid")
        else:
            device["npu"] = row.get("npu")
            device["chip"] = row.get("chip")

    # SMI rows that sysfs did not show (sysfs_root pointing elsewhere, containers): keep them.
    if not devices:
        for gpu in nvidia_smi:
            devices.append({
                "address": gpu.get("bus_id"), "vendor": "nvidia", "vendor_id": "0x10de",
                "device_id": None, "numa_node": None, "model": gpu.get("model"),
                "memory_gib": _gib(gpu.get("memory_mib")), "memory_mib": gpu.get("memory_mib"),
                "smi_name": gpu.get("name"), "index": gpu.get("index"), "uuid": gpu.get("uuid"),
                "accelerator": None, "resource_name": None,
            })
        for chip in npu_chips:
            model = chip.get("model")
            info = _ascend_info_for_model(model)
            devices.append({
                "address": chip.get("bus_id"), "vendor": "huawei", "vendor_id": "0x19e5",
                "device_id": None, "numa_node": None, "model": model,
                "memory_gib": _gib(chip.get("memory_mib")), "memory_mib": chip.get("memory_mib"),
                "smi_name": chip.get("name"), "npu": chip.get("npu"), "chip": chip.get("chip"),
                "accelerator": info.get("accelerator"), "resource_name": info.get("resource_name"),
            })

    # Unknown PCI ids: name them after the vendor and device id so that they still count.
    for device in devices:
        if device["model"] is None:
            device_id = (device.get("device_id") or "unknown").replace("0x", "")
            device["model"] = f"{device['vendor']}-{device_id}"

    vendor = _majority([device["vendor"] for device in devices])
    mine = [device for device in devices if device["vendor"] == vendor]
    models = Counter(device["model"] for device in mine)
    model = _majority([device["model"] for device in mine])
    of_model = [device for device in mine if device["model"] == model]

    memory_gib = _majority([device.get("memory_gib") for device in of_model])

    driver_version = None
    if vendor == "nvidia":
        driver_version = _majority([gpu.get("driver_version") for gpu in nvidia_smi])
    elif vendor == "huawei":
        driver_version = smi_info.get("ascend_driver_version") or npu_smi.get("version")

    resource_name = None
    accelerator_label = None
    if vendor == "nvidia":
        resource_name = VENDOR_RESOURCE["nvidia"]
    elif vendor == "huawei":
        resource_name = _majority([device.get("resource_name") for device in of_model]) or VENDOR_RESOURCE["huawei"]
        accelerator_label = _majority([device.get("accelerator") for device in of_model])

    return {
        "present": bool(mine),
        "vendor": vendor,
        "model": model,
        "models": dict(models),
        "mixed": len(models) > 1,
        "count": len(mine),
        "memory_gib": memory_gib,
        "driver_version": driver_version,
        "architecture": normalize_arch(arch),
        "resource_name": resource_name,
        "accelerator": accelerator_label,
        "smi_matched": len(matched),
        "devices": devices,
    }


def _ascend_info_for_model(model):
    for (vendor_id, _device_id), info in PCI_MODELS.items():
        if vendor_id == "0x19e5" and info.get("model") == model:
            return info
    return {}
