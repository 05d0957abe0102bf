"""Fleet profiles (YAML) and the machines and accelerators they describe."""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import FleetError

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class AcceleratorModel:
    """One accelerator model with its real PCI IDs and what the vendor tools report."""

    vendor: str            # "nvidia" | "ascend"
    model: str             # profile key, e.g. "A100"
    product_name: str      # nvidia-smi name / npu-smi chip name
    pci_vendor: int
    pci_device: int
    pci_class: int
    subsystem_vendor: int
    subsystem_device: int
    memory_mib: int        # FB memory (NVIDIA, MiB) or HBM/DDR (Ascend, MB)
    power_cap_w: int
    bus_ids: tuple[int, ...]  # PCI bus numbers a real 8-device board uses, in index order


NVIDIA_VENDOR = 0x10DE
HUAWEI_VENDOR = 0x19E5
NVIDIA_3D_CLASS = 0x030200
ASCEND_CLASS = 0x120000

_DGX_BUSES = (0x07, 0x0F, 0x47, 0x4E, 0x87, 0x90, 0xB7, 0xBD)   # DGX A100 / HGX layout
_HGX_H100_BUSES = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)
_PCIE_BUSES = (0x3B, 0x5E, 0x86, 0xAF, 0x18, 0x3C, 0xD8, 0xD9)
_ATLAS_BUSES = (0xC1, 0x01, 0xC2, 0x02, 0x81, 0x41, 0x82, 0x42)  # Atlas 800T A2 (npu-smi order)

MODELS: dict[str, AcceleratorModel] = {m.model: m for m in (
    AcceleratorModel("nvidia", "A100", "NVIDIA A100-SXM4-40GB", NVIDIA_VENDOR, 0x20B0, NVIDIA_3D_CLASS,
                     NVIDIA_VENDOR, 0x134F, 40960, 400, _DGX_BUSES),
    AcceleratorModel("nvidia", "A100-80GB", "NVIDIA A100-SXM4-80GB", NVIDIA_VENDOR, 0x20B2, NVIDIA_3D_CLASS,
                     NVIDIA_VENDOR, 0x1463, 81920, 400, _DGX_BUSES),
    AcceleratorModel("nvidia", "H100", "NVIDIA H100 80GB HBM3", NVIDIA_VENDOR, 0x2330, NVIDIA_3D_CLASS,
                     NVIDIA_VENDOR, 0x16C1, 81559, 700, _HGX_H100_BUSES),
    AcceleratorModel("nvidia", "T4", "Tesla T4", NVIDIA_VENDOR, 0x1EB8, NVIDIA_3D_CLASS,
                     NVIDIA_VENDOR, 0x12A2, 15360, 70, _PCIE_BUSES),
    AcceleratorModel("ascend", "910B", "910B3", HUAWEI_VENDOR, 0xD802, ASCEND_CLASS,
                     0x0200, 0x0100, 65536, 350, _ATLAS_BUSES),
    AcceleratorModel("ascend", "310P", "310P3", HUAWEI_VENDOR, 0xD500, ASCEND_CLASS,
                     0x0200, 0x0100, 21527, 72, _PCIE_BUSES),
)}
_ALIASES = {"A100-40GB": "A100", "A100-SXM4-40GB": "A100", "A100-SXM4-80GB": "A100-80GB",
            "H100-SXM": "H100", "910": "910B", "ASCEND910B": "910B", "ASCEND310P": "310P"}
VENDOR_ALIASES = {"nvidia": "nvidia", "ascend": "ascend", "huawei": "ascend", "none": "none", "": "none"}


def lookup_model(model: str) -> AcceleratorModel:
    key = model.strip()
    for cand in (key, key.upper(), _ALIASES.get(key.upper(), "")):
        if cand in MODELS:
            return MODELS[cand]
    raise FleetError(f"unknown accelerator model {model!r} (known: {', '.join(sorted(MODELS))})")


@dataclass
class Machine:
    """One lab machine: a systemd container with its own hostname and address."""

    name: str
    vendor: str = "none"        # nvidia | ascend | none
    model: str = ""
    count: int = 0
    cpu: int = 8
    memory_gb: int = 32
    arch: str = "x86_64"
    vars: dict[str, Any] = field(default_factory=dict)
    address: str = ""           # set when the fleet assigns it

    @property
    def accelerator(self) -> AcceleratorModel | None:
        return lookup_model(self.model) if self.vendor != "none" and self.count else None

    @property
    def group(self) -> str:
        return {"nvidia": "nvidia_nodes", "ascend": "ascend_nodes"}.get(self.vendor, "cpu_nodes")

    def describe_accelerators(self) -> str:
        return f"{self.count}x {self.model}" if self.accelerator else "-"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "vendor": self.vendor, "model": self.model, "count": self.count,
                "cpu": self.cpu, "memory_gb": self.memory_gb, "arch": self.arch, "vars": self.vars,
                "address": self.address}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Machine:
        return cls(**{k: d[k] for k in ("name", "vendor", "model", "count", "cpu", "memory_gb", "arch",
                                        "vars", "address") if k in d})


def make_machine(name: str, model: str = "", count: int = 0, *, vendor: str | None = None,
                 cpu: int = 8, memory_gb: int = 32, arch: str | None = None,
                 vars: dict[str, Any] | None = None, where: str = "") -> Machine:
    """Validate one machine definition and return it."""
    at = f"{where}: " if where else ""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise FleetError(f"{at}machine name {name!r} is not a valid hostname (lowercase letters, digits, '-')")
    count = int(count or 0)
    if count < 0 or count > 16:
        raise FleetError(f"{at}{name}: accelerator count {count} out of range 0..16")
    if model and count:
        acc = lookup_model(model)
        if vendor and VENDOR_ALIASES.get(vendor.lower(), vendor) != acc.vendor:
            raise FleetError(f"{at}{name}: model {model} is {acc.vendor}, not {vendor}")
        vendor, model = acc.vendor, acc.model
    else:
        vendor, model, count = "none", "", 0
    host_arch = platform.machine()
    arch = arch or host_arch
    if arch != host_arch:
        raise FleetError(f"{at}{name}: arch {arch} cannot run on this {host_arch} host (containers share its kernel)")
    if not isinstance(vars or {}, dict):
        raise FleetError(f"{at}{name}: vars must be a mapping")
    return Machine(name=name, vendor=vendor, model=model, count=count, cpu=int(cpu),
                   memory_gb=int(memory_gb), arch=arch, vars=dict(vars or {}))


def parse_profile(data: Any, where: str = "profile") -> list[Machine]:
    """Machines of a profile document (see profiles/demo.yaml for the format)."""
    if not isinstance(data, dict) or not isinstance(data.get("machines"), list) or not data["machines"]:
        raise FleetError(f"{where}: expected a mapping with a non-empty 'machines' list")
    defaults = data.get("defaults") or {}
    machines: list[Machine] = []
    for i, entry in enumerate(data["machines"]):
        if not isinstance(entry, dict) or "name" not in entry:
            raise FleetError(f"{where}: machines[{i}] needs at least a name")
        unknown = set(entry) - {"name", "accelerator", "cpu", "memory_gb", "arch", "vars"}
        if unknown:
            raise FleetError(f"{where}: machines[{i}] has unknown keys {sorted(unknown)}")
        acc = entry.get("accelerator") or {}
        if not isinstance(acc, dict):
            raise FleetError(f"{where}: machines[{i}].accelerator must be a mapping (vendor, model, count)")
        merged = {**defaults, **{k: v for k, v in entry.items() if k not in ("accelerator", "name")}}
        machines.append(make_machine(entry["name"], acc.get("model", ""), acc.get("count", 0),
                                     vendor=acc.get("vendor"), cpu=merged.get("cpu", 8),
                                     memory_gb=merged.get("memory_gb", 32), arch=merged.get("arch"),
                                     vars={**(defaults.get("vars") or {}), **(entry.get("vars") or {})},
                                     where=f"{where}: machines[{i}]"))
    names = [m.name for m in machines]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FleetError(f"{where}: duplicate machine names {dupes}")
    return machines


def profile_path(profile: str) -> Path:
    p = Path(profile)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    cand = PROFILES_DIR / f"{profile}.yaml"
    if not cand.exists():
        known = ", ".join(sorted(x.stem for x in PROFILES_DIR.glob("*.yaml")))
        raise FleetError(f"no fleet profile {profile!r} (known: {known})")
    return cand


def load_profile(profile: str) -> list[Machine]:
    path = profile_path(profile)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise FleetError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from exc
    return parse_profile(data, where=path.name)
