#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""The state of everything the nvidia_container_toolkit role manages on a machine, in one read-only call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nvidia_toolkit_info
short_description: Report the NVIDIA driver, toolkit packages, repository files, daemon.json and units in one call
version_added: 0.3.0
description:
  - Read-only, so the nvidia_container_toolkit role calls it once, before its first change, and then acts
    only on what differs. Works the same in check mode.
  - The driver is read with C(nvidia-smi --query-gpu=driver_version --format=csv,noheader); a missing or
    failing nvidia-smi is reported in C(driver.error), never as a failed task.
  - Installed package versions come from one C(dpkg-query -W) (apt) or C(rpm -q) (dnf) call.
  - Files (repository definition, signing key) are compared by sha256 and attributes, as
    M(aicluster.platform.data_storage_info) does; actual hashes are never returned.
  - With O(daemon_json), the Docker daemon configuration is planned exactly as
    M(aicluster.platform.docker_daemon_json) would change it; C(daemon_json.ok) is true when it would not.
options:
  nvidia_smi:
    description: nvidia-smi, an absolute path or a name looked up in PATH and C(/usr/bin), C(/usr/local/bin).
    type: str
    default: nvidia-smi
  check_driver:
    description: Run nvidia-smi for the driver version.
    type: bool
    default: true
  package_manager:
    description: C(apt) (dpkg-query), C(dnf) (rpm) or C(auto) (whichever of dpkg-query and rpm exists, dpkg first).
    type: str
    choices: [auto, apt, dnf]
    default: auto
  packages:
    description: Package names whose installed version is reported in C(packages).
    type: list
    elements: str
    default: []
  package_versions:
    description:
      - Package name to the version it is pinned to (Debian C(1.17.8-1) or RPM C(1.17.8-1); an epoch or a missing
        revision is accepted); each C(packages) entry then says whether it C(matches). Names here are reported too.
    type: dict
    default: {}
  files:
    description: Regular files to compare; reported in C(files) under their O(files[].key).
    type: list
    elements: dict
    default: []
    suboptions:
      key:
        description: Name of the entry in C(files).
        type: str
        required: true
      path:
        description: Absolute path on the machine.
        type: path
        required: true
      sha256:
        description: Wanted sha256 of the content (hex, optionally prefixed C(sha256:)).
        type: str
      mode:
        description: Wanted octal mode, e.g. C("0644").
        type: raw
      owner:
        description: Wanted owner name.
        type: str
      group:
        description: Wanted group name.
        type: str
  daemon_json:
    description: Path of Docker's daemon configuration to plan (usually C(/etc/docker/daemon.json)).
    type: path
  daemon_json_record:
    description: The restore record M(aicluster.platform.docker_daemon_json) keeps for O(daemon_json).
    type: path
  daemon_json_settings:
    description:
      - The settings wanted in O(daemon_json)
        (as the O(aicluster.platform.docker_daemon_json#module:settings) option).
    type: list
    elements: dict
    default: []
  daemon_json_state:
    description: C(present) (settings written) or C(absent) (recorded values restored).
    type: str
    choices: [present, absent]
    default: present
  paths:
    description: Paths whose existence is reported in C(paths) (e.g. the runtime binary, RKE2's containerd config).
    type: list
    elements: path
    default: []
  services:
    description: systemd units to read (loaded, enabled, active); reported in C(services) under their names.
    type: list
    elements: str
    default: []
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Read the driver, packages, repository files, daemon.json and units (one call)
  aicluster.platform.nvidia_toolkit_info:
    packages: [nvidia-container-toolkit, nvidia-container-toolkit-base, libnvidia-container-tools, libnvidia-container1]
    files:
      - key: source
        path: /etc/apt/sources.list.d/nvidia-container-toolkit.list
        sha256: "{{ source_line | hash('sha256') }}"
        mode: "0644"
    daemon_json: /etc/docker/daemon.json
    daemon_json_record: /var/lib/aicluster/nvidia-container-toolkit/daemon.json.record
    daemon_json_settings:
      - path: [runtimes, nvidia]
        value: {path: nvidia-container-runtime, args: []}
    services: [docker.service]
  register: toolkit_state

- name: The driver is there and recent enough
  ansible.builtin.assert:
    that: toolkit_state.driver.version is version('535.54.03', '>=')
    fail_msg: "{{ toolkit_state.driver.error or 'driver too old' }}"
"""

RETURN = r"""
driver:
  description: C(version) (null when unknown), C(error) (why it is unknown), C(nvidia_smi) (the path used or null).
  returned: always
  type: dict
  sample: {"version": "550.54.15", "error": null, "nvidia_smi": "/usr/bin/nvidia-smi"}
package_manager:
  description: C(apt), C(dnf) or null when neither dpkg-query nor rpm exists.
  returned: always
  type: str
packages:
  description:
    - Per name - C(installed), C(version) (null when not installed), C(held) (dpkg selection hold), C(wanted)
      (from O(package_versions), or null) and C(matches) (installed, at the wanted version when one is given).
  returned: always
  type: dict
  sample: {"nvidia-container-toolkit": {"installed": true, "version": "1.20.0-1", "held": true,
                                       "wanted": "1.20.0-1", "matches": true}}
files:
  description:
    - Per O(files[].key) - exists, is_file, content_matches, mode, owner, group, attributes_match, error, C(ok).
  returned: always
  type: dict
daemon_json:
  description:
    - C(exists), C(error) (not JSON, not an object; the merge would refuse it), C(ok) (nothing would change),
      C(runtimes) (names), C(default_runtime), C(recorded) (paths with a restore record).
  returned: when O(daemon_json) is set
  type: dict
  sample: {"exists": true, "error": null, "ok": false, "runtimes": ["runc"], "default_runtime": null, "recorded": []}
paths:
  description: Per O(paths) entry, whether it exists.
  returned: always
  type: dict
services:
  description: Per unit - loaded, enabled, active and the raw LoadState, ActiveState, UnitFileState.
  returned: always
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aicluster.platform.plugins.module_utils import docker_daemon, nvidia, storage_state

EXTRA_DIRS = ["/usr/bin", "/usr/local/bin", "/usr/sbin", "/bin"]


def main():
    module = AnsibleModule(
        argument_spec={
            "nvidia_smi": {"type": "str", "default": "nvidia-smi"},
            "check_driver": {"type": "bool", "default": True},
            "package_manager": {"type": "str", "choices": ["auto", "apt", "dnf"], "default": "auto"},
            "packages": {"type": "list", "elements": "str", "default": []},
            "package_versions": {"type": "dict", "default": {}},
            "files": {"type": "list", "elements": "dict", "default": [],
                      "options": {"key": {"type": "str", "required": True, "no_log": False},
                                  "path": {"type": "path", "required": True},
                                  "sha256": {"type": "str"},
                                  "mode": {"type": "raw"}, "owner": {"type": "str"}, "group": {"type": "str"}}},
            "daemon_json": {"type": "path"},
            "daemon_json_record": {"type": "path"},
            "daemon_json_settings": {"type": "list", "elements": "dict", "default": []},
            "daemon_json_state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "paths": {"type": "list", "elements": "path", "default": []},
            "services": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    for name, value in [("daemon_json", p["daemon_json"]), ("daemon_json_record", p["daemon_json_record"])] + [
            (f"files[{f['key']}].path", f["path"]) for f in p["files"]] + [("paths[]", x) for x in p["paths"]]:
        if value is not None and not os.path.isabs(value):
            module.fail_json(msg=f"{name} must be an absolute path, got {value!r}")
    for setting in p["daemon_json_settings"]:
        if not isinstance(setting.get("path"), list) or not setting["path"] or "value" not in setting:
            module.fail_json(msg=f"daemon_json_settings entries need a non-empty list 'path' and a 'value': "
                                 f"{setting!r}")

    result = {"changed": False}

    driver = {"version": None, "error": None, "nvidia_smi": None}
    if p["check_driver"]:
        smi = p["nvidia_smi"]
        path = smi if os.path.isabs(smi) and os.access(smi, os.X_OK) else (
            None if os.path.isabs(smi) else module.get_bin_path(smi, required=False, opt_dirs=EXTRA_DIRS))
        if path is None:
            driver["error"] = f"{smi} not found: no NVIDIA driver (nvidia-smi comes with it)"
        else:
            driver["nvidia_smi"] = path
            rc, out, err = module.run_command([path, *nvidia.NVIDIA_SMI_DRIVER_ARGS])
            driver["version"], driver["error"] = nvidia.parse_driver_version(rc, out, err)
    result["driver"] = driver

    manager = p["package_manager"]
    dpkg_query = module.get_bin_path("dpkg-query", required=False)
    rpm = module.get_bin_path("rpm", required=False)
    if manager == "auto":
        manager = "apt" if dpkg_query else ("dnf" if rpm else None)
    result["package_manager"] = manager
    wanted = {str(k): (None if v is None else str(v)) for k, v in p["package_versions"].items()}
    names = list(dict.fromkeys([*p["packages"], *wanted]))
    packages = {n: {"version": None, "installed": False, "held": False} for n in names}
    if names:
        if manager == "apt" and dpkg_query:
            _rc, out, _err = module.run_command(nvidia.dpkg_query_command(dpkg_query, names))
            packages = nvidia.parse_dpkg_query(names, out)
        elif manager == "dnf" and rpm:
            _rc, out, _err = module.run_command(nvidia.rpm_query_command(rpm, names))
            packages = nvidia.parse_rpm_query(names, out)
    for name, state in packages.items():
        state["wanted"] = wanted.get(name)
        state["matches"] = state["installed"] and nvidia.package_version_matches(state["version"], state["wanted"])
    result["packages"] = packages

    result["files"] = {f["key"]: storage_state.file_state(f["path"], f["sha256"], f["mode"], f["owner"], f["group"])
                       for f in p["files"]}
    if p["daemon_json"]:
        result["daemon_json"] = docker_daemon.daemon_json_state(
            p["daemon_json"], p["daemon_json_record"], p["daemon_json_settings"], p["daemon_json_state"])
    result["paths"] = {x: os.path.exists(x) for x in p["paths"]}

    result["services"] = {}
    if p["services"]:
        systemctl = module.get_bin_path("systemctl")
        rc, out = 1, ""
        if systemctl:
            rc, out, _err = module.run_command(storage_state.systemctl_show_command(systemctl, p["services"]))
        result["services"] = storage_state.parse_systemctl_show(p["services"], rc, out)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
