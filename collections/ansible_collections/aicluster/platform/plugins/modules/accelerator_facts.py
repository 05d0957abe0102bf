#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Gather NVIDIA GPU / Huawei Ascend NPU facts from sysfs and the vendor SMI tools."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: accelerator_facts
short_description: Detect NVIDIA GPUs and Huawei Ascend NPUs on a host
version_added: 0.1.0
description:
  - Reads C(vendor), C(device), C(class) and C(numa_node) of every PCI function under O(sysfs_root)
    and keeps NVIDIA functions of class C(0x0300xx)/C(0x0302xx) and Huawei functions of class C(0x1200xx).
    This needs no driver.
  - When O(use_smi=true) and the tools are installed, runs C(nvidia-smi --query-gpu=...) and
    C(npu-smi info) (argument lists, no shell) to add driver versions, names and memory sizes.
  - Sets the fact C(accelerator). Never changes the host.
options:
  sysfs_root:
    description: Directory holding one sub-directory per PCI function.
    type: path
    default: /sys/bus/pci/devices
  nvidia_smi:
    description:
      - The C(nvidia-smi) executable, as an absolute path or a name looked up in E(PATH)
        and the usual system directories.
      - A missing tool is not an error; the facts then come from sysfs only.
    type: path
    default: nvidia-smi
  npu_smi:
    description:
      - The C(npu-smi) executable, as an absolute path or a name looked up in E(PATH),
        C(/usr/local/bin) and the usual system directories.
      - A missing tool is not an error; the facts then come from sysfs only.
    type: path
    default: npu-smi
  ascend_version_file:
    description:
      - Ascend driver C(version.info); its C(Version=) line is the driver version, used when present.
    type: path
    default: /usr/local/Ascend/driver/version.info
  use_smi:
    description: Run the SMI tools. With V(false) only sysfs is read.
    type: bool
    default: true
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
notes:
  - Device IDs come from the table C(PCI_MODELS) in the module_utils C(accelerators); unknown IDs of a
    known vendor still count, with the model named C(<vendor>-<device id>) unless the SMI tool names it.
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Detect accelerators
  aicluster.platform.accelerator_facts:

- name: Show what was found
  ansible.builtin.debug:
    msg: "{{ ansible_facts.accelerator.count }} x {{ ansible_facts.accelerator.model }}"
  when: ansible_facts.accelerator.present

- name: Detect from sysfs only (no driver yet)
  aicluster.platform.accelerator_facts:
    use_smi: false

- name: Use an npu-smi outside PATH
  aicluster.platform.accelerator_facts:
    npu_smi: /usr/local/bin/npu-smi
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: complex
  contains:
    accelerator:
      description: Accelerator summary of the host.
      returned: always
      type: complex
      contains:
        present:
          description: Whether at least one GPU/NPU was found.
          type: bool
          sample: true
        vendor:
          description: C(nvidia), C(huawei), or null when none.
          type: str
          sample: nvidia
        model:
          description: Majority model in label form (C(A100), C(T4), C(Ascend910B), ...).
          type: str
          sample: A100
        models:
          description: Count per model (more than one key on a mixed host).
          type: dict
          sample: {A100: 8}
        mixed:
          description: Whether the host has more than one model of its vendor.
          type: bool
          sample: false
        count:
          description: Number of accelerators (chips) of the vendor.
          type: int
          sample: 8
        memory_gib:
          description: Memory per device of the majority model, from the SMI tool or the ID table.
          type: int
          sample: 80
        driver_version:
          description: Driver version from the SMI tool or C(version.info), null without a driver.
          type: str
          sample: 535.104.05
        architecture:
          description: Host architecture, C(x86_64) or C(aarch64).
          type: str
          sample: x86_64
        resource_name:
          description: Extended resource advertised by the device plugin.
          type: str
          sample: nvidia.com/gpu
        accelerator:
          description: MindCluster C(accelerator) label value for Ascend hosts, else null.
          type: str
          sample: huawei-Ascend910
        smi_matched:
          description: Number of PCI devices matched to an SMI row by bus id.
          type: int
          sample: 8
        devices:
          description: One entry per accelerator (address, ids, class, numa_node, model, memory, SMI data).
          type: list
          elements: dict
        smi:
          description: Which SMI tools ran and their problems, if any.
          type: dict
          sample: {nvidia_smi: /usr/bin/nvidia-smi, npu_smi: null, errors: []}
"""

import os
import platform

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aicluster.platform.plugins.module_utils import accelerators

SMI_EXTRA_DIRS = ["/usr/local/bin", "/usr/bin", "/usr/local/sbin", "/usr/sbin"]


def find_tool(module, name):
    """Absolute executable path for ``name``, or None."""
    if os.path.isabs(name):
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return module.get_bin_path(name, required=False, opt_dirs=SMI_EXTRA_DIRS)


def run_tool(module, argv, errors):
    rc, out, err = module.run_command(argv, check_rc=False, environ_update={"LC_ALL": "C"})
    if rc != 0:
        errors.append(f"{' '.join(argv)} exited {rc}: {(err or out).strip()[:500]}")
        return None
    return out


def main():
    module = AnsibleModule(
        argument_spec={
            "sysfs_root": {"type": "path", "default": "/sys/bus/pci/devices"},
            "nvidia_smi": {"type": "path", "default": "nvidia-smi"},
            "npu_smi": {"type": "path", "default": "npu-smi"},
            "ascend_version_file": {"type": "path", "default": "/usr/local/Ascend/driver/version.info"},
            "use_smi": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    params = module.params

    devices = accelerators.classify(accelerators.scan_pci(params["sysfs_root"]))
    vendors = {device["vendor"] for device in devices}

    smi_info = {}
    smi_report = {"nvidia_smi": None, "npu_smi": None, "errors": []}
    if params["use_smi"]:
        # Run a vendor's tool when sysfs shows its hardware, or when sysfs shows nothing at all
        # (containers and unusual sysfs roots); a missing tool is not an error.
        if "nvidia" in vendors or not devices:
            tool = find_tool(module, params["nvidia_smi"])
            if tool:
                smi_report["nvidia_smi"] = tool
                out = run_tool(module, [tool, *accelerators.NVIDIA_SMI_ARGS], smi_report["errors"])
                if out is not None:
                    smi_info["nvidia"] = accelerators.parse_nvidia_smi(out)
        if "huawei" in vendors or not devices:
            tool = find_tool(module, params["npu_smi"])
            if tool:
                smi_report["npu_smi"] = tool
                out = run_tool(module, [tool, "info"], smi_report["errors"])
                if out is not None:
                    smi_info["npu"] = accelerators.parse_npu_smi(out)
    if "huawei" in vendors or smi_info.get("npu"):
        version_file = params["ascend_version_file"]
        if version_file and os.path.isfile(version_file):
            try:
                with open(version_file, encoding="utf-8", errors="replace") as handle:
                    smi_info["ascend_driver_version"] = accelerators.parse_ascend_version_info(handle.read())
            except OSError as exc:
                smi_report["errors"].append(f"cannot read {version_file}: {exc}")

    facts = accelerators.summarize(devices, smi_info, platform.machine())
    facts["smi"] = smi_report
    module.exit_json(changed=False, ansible_facts={"accelerator": facts})


if __name__ == "__main__":
    main()
