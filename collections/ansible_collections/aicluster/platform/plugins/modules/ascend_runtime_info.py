#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""The state of everything the ascend_docker_runtime role manages on a machine, in one read-only call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ascend_runtime_info
short_description: Report the Ascend driver, Docker Runtime, MindCluster accounts, log directories and runtime config
version_added: 0.3.0
description:
  - Read-only, so the ascend_docker_runtime role calls it once, before its first change, and then acts only on
    what differs. Works the same in check mode.
  - The driver precondition - C(npu-smi info) must answer with its chip table and the driver's C(version.info)
    must give a C(Version=) at least O(driver_min_version). Ascend versions are ordered as Huawei numbers them
    (C(24.1.rc3) < C(24.1.0), C(6.0.RC2) < C(6.0.0)). A missing or failing npu-smi is reported in
    C(driver.error), never as a failed task.
  - The installed Ascend Docker Runtime is read from the installer's own record
    C(<install_dir>/ascend_docker_runtime_install.info) (C(version=v<ver>), C(install-scene=), C(config-file-path=)).
  - The MindCluster accounts are looked up by name and by id through the system's user and group databases (NSS,
    as C(getent) does); a name that exists with another id, or a wanted id held by another name, is reported in
    C(account_problems).
  - Directories, files (by sha256, as M(aicluster.platform.data_storage_info) compares them; hashes are never
    returned), Docker's daemon.json as M(aicluster.platform.docker_daemon_json) would change it, and RKE2's
    containerd template as M(aicluster.platform.ascend_containerd_template) would change it.
  - The role's record of what it created (O(record)) is read, and C(record_planned) is that record plus every
    candidate of O(record_candidates) that does not exist now.
options:
  check_driver:
    description: Check the driver (npu-smi and version.info).
    type: bool
    default: true
  npu_smi:
    description: npu-smi, an absolute path or a name looked up in PATH and C(/usr/local/bin), C(/usr/local/sbin).
    type: str
    default: npu-smi
  driver_version_file:
    description: The driver's version file.
    type: path
    default: /usr/local/Ascend/driver/version.info
  driver_min_version:
    description: Oldest accepted driver version (empty - any driver whose version file has a version).
    type: str
    default: ""
  install_dir:
    description: Where the Ascend Docker Runtime is installed (the installer's C(<install-path>/Ascend-Docker-Runtime)).
    type: path
    default: /usr/local/Ascend/Ascend-Docker-Runtime
  version:
    description: The Ascend Docker Runtime version wanted; C(runtime.matches) says whether it is the one installed.
    type: str
  accounts:
    description: The accounts wanted (created by the role when missing).
    type: list
    elements: dict
    default: []
    suboptions:
      user:
        description: User name.
        type: str
        required: true
      uid:
        description: Its uid.
        type: int
        required: true
      group:
        description: Its primary group's name.
        type: str
        required: true
      gid:
        description: The primary group's gid.
        type: int
        required: true
      groups:
        description: Supplementary groups it must belong to.
        type: list
        elements: str
        default: []
  directories:
    description: Directories compared by existence and attributes; reported in C(directories) under their path.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      mode:
        description: Wanted octal mode, e.g. C("0750").
        type: raw
      owner:
        description: Wanted owner name.
        type: str
      group:
        description: Wanted group name.
        type: str
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
        description: Wanted octal mode.
        type: raw
      owner:
        description: Wanted owner name.
        type: str
      group:
        description: Wanted group name.
        type: str
  paths:
    description: Paths whose existence is reported in C(paths).
    type: list
    elements: path
    default: []
  daemon_json:
    description: Docker's daemon configuration to plan (usually C(/etc/docker/daemon.json)).
    type: path
  daemon_json_record:
    description: The restore record M(aicluster.platform.docker_daemon_json) keeps for O(daemon_json).
    type: path
  daemon_json_settings:
    description:
      - The settings wanted in O(daemon_json) (as the O(aicluster.platform.docker_daemon_json#module:settings) option).
    type: list
    elements: dict
    default: []
  daemon_json_state:
    description: C(present) (settings written) or C(absent) (recorded values restored).
    type: str
    choices: [present, absent]
    default: present
  containerd_template:
    description: RKE2's containerd configuration template to plan (as M(aicluster.platform.ascend_containerd_template)).
    type: dict
    suboptions:
      path:
        description: The template, e.g. C(/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl).
        type: path
        required: true
      runtime_name:
        description: Runtime name.
        type: str
        default: ascend
      binary:
        description: The runtime binary (C(BinaryName)).
        type: path
        required: true
      config_version:
        description:
          - containerd config version of the block - C(2) (containerd 1.x), C(3) (containerd 2.x) or C(auto), read from
            the C(version =) of the C(config.toml) RKE2 rendered beside the template (2 when there is none).
        type: str
        choices: ["auto", "2", "3"]
        default: auto
      state:
        description: C(present) or C(absent).
        type: str
        choices: [present, absent]
        default: present
      created:
        description:
          - The role created the template (with C(state=absent), a template left with nothing else is removed).
          - Default - whether the template is among the C(files) of O(record).
        type: bool
  record:
    description: The role's record of what it created (JSON); read, never written here.
    type: path
  record_candidates:
    description:
      - What the role would create, per kind - C(groups), C(users), C(log_dirs), C(dirs), C(files). Those that do not
        exist now are added to the record in C(record_planned).
    type: dict
    default: {}
  services:
    description: systemd units to read (loaded, enabled, active); reported in C(services) under their names.
    type: list
    elements: str
    default: []
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Read the driver, runtime, accounts, log directories and runtime configuration (one call)
  aicluster.platform.ascend_runtime_info:
    driver_min_version: "23.0.0"
    version: "26.1.0"
    accounts:
      - {user: HwHiAiUser, uid: 1000, group: HwHiAiUser, gid: 1000}
      - {user: hwMindX, uid: 9000, group: hwMindX, gid: 9000, groups: [HwHiAiUser]}
    directories:
      - {path: /var/log/mindx-dl, mode: "0755", owner: root, group: root}
      - {path: /var/log/mindx-dl/devicePlugin, mode: "0750", owner: root, group: root}
    containerd_template:
      path: /var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl
      binary: /usr/local/Ascend/Ascend-Docker-Runtime/ascend-docker-runtime
    record: /var/lib/aicluster/ascend-docker-runtime/created.json
    services: [rke2-agent.service]
  register: ascend_state

- name: The driver is there and recent enough
  ansible.builtin.assert:
    that: ascend_state.driver.ok
    fail_msg: "{{ ascend_state.driver.error }}"
"""

RETURN = r"""
driver:
  description:
    - C(ok), C(error) (why not), C(version) (from version.info), C(min_version), C(npu_smi) (the path used or null),
      C(npu_smi_ok), C(npu_smi_version), C(chips) (NPUs in the table), C(version_file).
  returned: always
  type: dict
  sample: {"ok": true, "error": null, "version": "24.1.rc3", "npu_smi_ok": true, "chips": 8}
runtime:
  description:
    - C(installed), C(version) (normalized, no leading v), C(wanted), C(matches), C(install_dir), C(binary),
      C(install_scene), C(config_file_path), C(injection_mode) (from the install record).
  returned: always
  type: dict
  sample: {"installed": true, "version": "26.0.0", "wanted": "26.0.0", "matches": true, "install_scene": "docker",
           "config_file_path": "/var/lib/aicluster/ascend-docker-runtime/installer/daemon.json"}
accounts:
  description:
    - Per user - C(user_exists), C(actual_uid), C(primary_gid), C(group_exists), C(actual_gid), C(member_of),
      C(missing_groups), C(ok) (exists and is in every wanted group).
  returned: always
  type: dict
account_problems:
  description: Names existing with other ids, wanted ids held by other names (the role fails on any).
  returned: always
  type: list
  elements: str
  sample: ["uid 1000 wanted for user HwHiAiUser is taken by user debian"]
directories:
  description: Per path - exists, is_dir, mode, owner, group, attributes_match, C(ok).
  returned: always
  type: dict
files:
  description:
    - Per O(files[].key) - exists, is_file, content_matches, mode, owner, group, attributes_match, error, C(ok).
  returned: always
  type: dict
paths:
  description: Per O(paths) entry, whether it exists.
  returned: always
  type: dict
daemon_json:
  description:
    - C(exists), C(error) (not JSON, not an object; the merge would refuse it), C(ok) (nothing would change),
      C(runtimes) (names), C(default_runtime), C(recorded) (paths with a restore record).
  returned: when O(daemon_json) is set
  type: dict
containerd_template:
  description:
    - C(path), C(exists), C(has_block), C(config_version) (resolved), C(error) (unreadable), C(ok) (nothing would
      change), C(removed) (the file would be removed).
  returned: when O(containerd_template) is set
  type: dict
record:
  description: The role's record as found (null when there is none).
  returned: always
  type: dict
record_error:
  description: Why the record could not be read (null when it could).
  returned: always
  type: str
record_planned:
  description: The record after this run (C(groups), C(users), C(log_dirs), C(dirs), C(files), C(runtime)).
  returned: always
  type: dict
record_present:
  description: Of the record as found, per kind, what exists now (what removal acts on).
  returned: always
  type: dict
record_ok:
  description: Whether C(record_planned) is the record as found.
  returned: always
  type: bool
removable_dirs:
  description: Recorded C(dirs) that are empty once the recorded files are gone (deepest first).
  returned: always
  type: list
  elements: str
services:
  description: Per unit - loaded, enabled, active and the raw LoadState, ActiveState, UnitFileState.
  returned: always
  type: dict
"""

import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aicluster.platform.plugins.module_utils import ascend, docker_daemon, storage_state

EXTRA_DIRS = ["/usr/local/bin", "/usr/local/sbin", "/usr/bin", "/usr/sbin", "/bin"]


def _read(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def template_report(spec, record):
    path = spec["path"]
    created = spec["created"]
    if created is None:
        created = path in ((record or {}).get("files") or [])
    result = {"path": path, "exists": False, "has_block": False, "config_version": None, "error": None, "ok": False,
              "removed": False}
    try:
        current = _read(path)
        version = spec["config_version"]
        if version == "auto":
            version = ascend.containerd_config_version(_read(os.path.join(os.path.dirname(path), "config.toml")))
        version = int(version)
        block = ascend.runtime_block(spec["runtime_name"], spec["binary"], version)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        result["error"] = f"{path}: {exc}"
        return result
    result.update(ascend.template_state(path, current, block, spec["state"], created))
    result["config_version"] = version
    return result


def driver_state(module, p):
    smi = p["npu_smi"]
    path = smi if os.path.isabs(smi) and os.access(smi, os.X_OK) else (
        None if os.path.isabs(smi) else module.get_bin_path(smi, required=False, opt_dirs=EXTRA_DIRS))
    result = None
    if path is not None:
        result = module.run_command([path, "info"])
    try:
        version_text = _read(p["driver_version_file"])
    except (OSError, UnicodeDecodeError):
        version_text = None
    return ascend.driver_report(path, result, version_text, p["driver_version_file"], p["driver_min_version"])


def read_record(path):
    """The role's record and why it could not be read (``(None, None)`` when there is none)."""
    if not path:
        return None, None
    try:
        return ascend.load_record(_read(path)), None
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        return None, f"{path} is not the role's record ({exc}); move it away to start afresh"


def record_state(p, record, result):
    """The record as planned after this run, what of it exists now, and what removal may take away."""

    def exists(kind, name):
        if kind == "users":
            return _exists_user(name)
        if kind == "groups":
            return _exists_group(name)
        return os.path.lexists(name)

    planned = ascend.plan_record(record, p["record_candidates"] or {}, exists, result["runtime"]["installed"])
    present = {kind: [n for n in (record or {}).get(kind) or [] if exists(kind, n)] for kind in ascend.RECORD_KEYS}
    template = result.get("containerd_template") or {}
    removed_files = [f for f in present["files"] if f != template.get("path") or template.get("removed")]
    return {"record_planned": planned, "record_present": present,
            "record_ok": record is not None and all(planned.get(k) == record.get(k) for k in planned),
            "removable_dirs": ascend.removable_dirs(present["dirs"], removed_files, os.listdir)}


def _exists_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _exists_group(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def main():
    module = AnsibleModule(
        argument_spec={
            "check_driver": {"type": "bool", "default": True},
            "npu_smi": {"type": "str", "default": "npu-smi"},
            "driver_version_file": {"type": "path", "default": "/usr/local/Ascend/driver/version.info"},
            "driver_min_version": {"type": "str", "default": ""},
            "install_dir": {"type": "path", "default": "/usr/local/Ascend/Ascend-Docker-Runtime"},
            "version": {"type": "str"},
            "accounts": {"type": "list", "elements": "dict", "default": [],
                         "options": {"user": {"type": "str", "required": True},
                                     "uid": {"type": "int", "required": True},
                                     "group": {"type": "str", "required": True},
                                     "gid": {"type": "int", "required": True},
                                     "groups": {"type": "list", "elements": "str", "default": []}}},
            "directories": {"type": "list", "elements": "dict", "default": [],
                            "options": {"path": {"type": "path", "required": True}, "mode": {"type": "raw"},
                                        "owner": {"type": "str"}, "group": {"type": "str"}}},
            "files": {"type": "list", "elements": "dict", "default": [],
                      "options": {"key": {"type": "str", "required": True, "no_log": False},
                                  "path": {"type": "path", "required": True},
                                  "sha256": {"type": "str"},
                                  "mode": {"type": "raw"}, "owner": {"type": "str"}, "group": {"type": "str"}}},
            "paths": {"type": "list", "elements": "path", "default": []},
            "daemon_json": {"type": "path"},
            "daemon_json_record": {"type": "path"},
            "daemon_json_settings": {"type": "list", "elements": "dict", "default": []},
            "daemon_json_state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "containerd_template": {"type": "dict",
                                    "options": {"path": {"type": "path", "required": True},
                                                "runtime_name": {"type": "str", "default": "ascend"},
                                                "binary": {"type": "path", "required": True},
                                                "config_version": {"type": "str", "choices": ["auto", "2", "3"],
                                                                   "default": "auto"},
                                                "state": {"type": "str", "choices": ["present", "absent"],
                                                          "default": "present"},
                                                "created": {"type": "bool"}}},
            "record": {"type": "path"},
            "record_candidates": {"type": "dict", "default": {}},
            "services": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    p = module.params
    template = p["containerd_template"] or {}
    absolute = [("driver_version_file", p["driver_version_file"]), ("install_dir", p["install_dir"]),
                ("daemon_json", p["daemon_json"]), ("daemon_json_record", p["daemon_json_record"]),
                ("record", p["record"]), ("containerd_template.path", template.get("path")),
                ("containerd_template.binary", template.get("binary"))]
    absolute += [(f"files[{f['key']}].path", f["path"]) for f in p["files"]]
    absolute += [("directories[].path", d["path"]) for d in p["directories"]] + [("paths[]", x) for x in p["paths"]]
    for name, value in absolute:
        if value is not None and not os.path.isabs(value):
            module.fail_json(msg=f"{name} must be an absolute path, got {value!r}")
    for setting in p["daemon_json_settings"]:
        if not isinstance(setting.get("path"), list) or not setting["path"] or "value" not in setting:
            module.fail_json(msg=f"daemon_json_settings entries need a non-empty list 'path' and a 'value': "
                                 f"{setting!r}")
    for kind, items in (p["record_candidates"] or {}).items():
        if kind not in ascend.RECORD_KEYS or not isinstance(items, list):
            module.fail_json(msg=f"record_candidates keys are {', '.join(ascend.RECORD_KEYS)}, each a list; "
                                 f"got {kind!r}: {items!r}")

    result = {"changed": False}
    result["driver"] = driver_state(module, p) if p["check_driver"] else {"ok": None, "error": None}

    install_dir = p["install_dir"]
    try:
        info_text = _read(os.path.join(install_dir, ascend.INSTALL_INFO))
    except (OSError, UnicodeDecodeError):
        info_text = None
    result["runtime"] = ascend.runtime_report(install_dir, info_text,
                                              os.path.exists(os.path.join(install_dir, ascend.RUNTIME_BINARY)),
                                              p["version"])

    result["accounts"], result["account_problems"] = ascend.account_report(
        p["accounts"], pwd.getpwnam, pwd.getpwuid, grp.getgrnam, grp.getgrgid, os.getgrouplist)
    result["directories"] = {d["path"]: storage_state.dir_state(d["path"], d["mode"], d["owner"], d["group"])
                             for d in p["directories"]}
    result["files"] = {f["key"]: storage_state.file_state(f["path"], f["sha256"], f["mode"], f["owner"], f["group"])
                       for f in p["files"]}
    result["paths"] = {x: os.path.lexists(x) for x in p["paths"]}
    if p["daemon_json"]:
        result["daemon_json"] = docker_daemon.daemon_json_state(
            p["daemon_json"], p["daemon_json_record"], p["daemon_json_settings"], p["daemon_json_state"])
    record, result["record_error"] = read_record(p["record"])
    result["record"] = record
    if template:
        result["containerd_template"] = template_report(template, record)
    result.update(record_state(p, record, result))

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
