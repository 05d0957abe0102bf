#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""The state of everything the data_storage role manages on a machine, in one read-only call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: data_storage_info
short_description: Report the mount point, files, directories, units and fstab entry behind /data/k8s in one call
version_added: 0.2.0
description:
  - Read-only, so a role can call it once, before its first change, and then act only on what differs
    (tasks with C(when) on the report). Works the same in check mode.
  - The mount point O(path) is judged as the data_storage role needs it - C(ready) when
    it already is the wanted filesystem, C(empty) when absent or an empty unmounted directory - but a
    refusal (a non-empty directory, another mount, a file, a foreign symlink) is reported as
    C(target.state=refused) with the sentence in C(target.problem) (and C(msg)) instead of failing the
    task; C(failed_when) on it makes the refusal fail with that sentence.
  - Files are compared by content (sha256 computed on the machine against O(files[].sha256), which the
    caller renders on the control host) and by mode/owner/group. Actual hashes are never returned.
  - Units are read with one C(systemctl show) call.
options:
  path:
    description: Absolute path of the mount target, e.g. C(/data/k8s).
    type: path
    required: true
  fstype:
    description: Filesystem type that makes a mount at O(path) the wanted one, e.g. C(fuse.juicefs).
    type: str
  source:
    description: Mount source that must match too, e.g. C(JuiceFS:aicluster).
    type: str
  same_as:
    description:
      - For bind mounts, the absolute source directory; O(path) is ready when it is that directory.
      - Its existence is reported in C(source_dir).
    type: path
  link_to:
    description:
      - For symlinks, the absolute target; O(path) is ready when it is a symlink to it.
      - Its existence is reported in C(source_dir).
    type: path
  allow_nonempty:
    description: Accept any existing directory, mounted or not, empty or not (a plain local directory).
    type: bool
    default: false
  fstab:
    description: The fstab entry O(path) should have (for bind mounts); reported in C(fstab).
    type: dict
    suboptions:
      src:
        description: Device or directory mounted.
        type: str
        required: true
      fstype:
        description: Filesystem type field.
        type: str
        required: true
      opts:
        description: Options field.
        type: str
        required: true
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
        description:
          - Wanted sha256 of the content (hex, optionally prefixed C(sha256:)); omitted, only existence
            and attributes count.
          - Never logged (the hash of a file holding a secret is as good as a guess at it).
        type: str
      mode:
        description: Wanted octal mode, e.g. C("0600"). A symbolic mode never matches.
        type: raw
      owner:
        description: Wanted owner name.
        type: str
      group:
        description: Wanted group name.
        type: str
  directories:
    description: Directories to check; reported in C(directories) under their O(directories[].path).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path on the machine.
        type: path
        required: true
      mode:
        description: Wanted octal mode, e.g. C("0700"). A symbolic mode never matches.
        type: raw
      owner:
        description: Wanted owner name.
        type: str
      group:
        description: Wanted group name.
        type: str
  services:
    description: systemd units to read (enabled, active); reported in C(services) under their names.
    type: list
    elements: str
    default: []
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Read the state of the client, the unit, its secrets, the cache and the mount point (one call)
  aicluster.platform.data_storage_info:
    path: /data/k8s
    fstype: fuse.juicefs
    source: JuiceFS:aicluster
    files:
      - key: unit
        path: /etc/systemd/system/juicefs-data-k8s.service
        sha256: "{{ lookup('ansible.builtin.template', 'juicefs.service.j2') | hash('sha256') }}"
        mode: "0644"
    directories:
      - path: /var/jfsCache
        mode: "0700"
    services: [juicefs-data-k8s.service]
  register: state
  failed_when: state.target.state == 'refused'

- name: Write the unit only when it differs
  ansible.builtin.template:
    src: juicefs.service.j2
    dest: /etc/systemd/system/juicefs-data-k8s.service
    mode: "0644"
  when: not state.files.unit.ok
"""

RETURN = r"""
target:
  description:
    - C(state) is C(ready), C(empty) or C(refused); C(problem) is the refusal's sentence (null otherwise);
      C(kind) (absent, dir, symlink, file, other), C(mount) (the mount at the path or null), C(entries)
      (number of entries of the directory).
  returned: always
  type: dict
  sample: {"state": "ready", "problem": null, "kind": "dir", "entries": 3,
           "mount": {"mount_point": "/data/k8s", "fstype": "fuse.juicefs", "source": "JuiceFS:aicluster",
                     "root": "/", "options": "rw,relatime"}}
msg:
  description: The refusal's sentence, as C(target.problem).
  returned: when C(target.state) is C(refused)
  type: str
  sample: "/data/k8s is a non-empty directory (1 entries: keep.txt) that is not the wanted fuse.juicefs
    JuiceFS:aicluster: refusing to mount over it (move its content away first)"
source_dir:
  description: Whether O(same_as) or O(link_to) exists and is a directory.
  returned: when O(same_as) or O(link_to) is set
  type: dict
  sample: {"path": "/mnt/cephfs/k8s", "exists": true, "is_dir": true}
files:
  description:
    - Per O(files[].key) - exists, is_file, content_matches, mode, owner, group, attributes_match, error,
      and C(ok) (nothing would change).
  returned: always
  type: dict
directories:
  description: Per O(directories[].path) - exists, is_dir, mode, owner, group, attributes_match, error, C(ok).
  returned: always
  type: dict
services:
  description: Per unit - loaded, enabled, active and the raw LoadState, ActiveState, UnitFileState.
  returned: always
  type: dict
  sample: {"juicefs-data-k8s.service": {"loaded": true, "enabled": true, "active": true,
                                        "load_state": "loaded", "active_state": "active",
                                        "unit_file_state": "enabled"}}
fstab:
  description: The current fstab entry for O(path) (C(entry), null when none) and whether it C(matches) O(fstab).
  returned: when O(fstab) is set
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aicluster.platform.plugins.module_utils import storage, storage_state

ATTRIBUTES = {"mode": {"type": "raw"}, "owner": {"type": "str"}, "group": {"type": "str"}}


def _read(path):
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "fstype": {"type": "str"},
            "source": {"type": "str"},
            "same_as": {"type": "path"},
            "link_to": {"type": "path"},
            "allow_nonempty": {"type": "bool", "default": False},
            "fstab": {"type": "dict", "options": {"src": {"type": "str", "required": True},
                                                  "fstype": {"type": "str", "required": True},
                                                  "opts": {"type": "str", "required": True}}},
            "files": {"type": "list", "elements": "dict", "default": [],
                      "options": {"key": {"type": "str", "required": True, "no_log": False},
                                  "path": {"type": "path", "required": True},
                                  "sha256": {"type": "str", "no_log": True}, **ATTRIBUTES}},
            "directories": {"type": "list", "elements": "dict", "default": [],
                            "options": {"path": {"type": "path", "required": True}, **ATTRIBUTES}},
            "services": {"type": "list", "elements": "str", "default": []},
        },
        mutually_exclusive=[["same_as", "link_to"]],
        supports_check_mode=True,
    )
    p = module.params
    paths = [("path", p["path"]), ("same_as", p["same_as"]), ("link_to", p["link_to"])]
    paths += [(f"files[{f['key']}].path", f["path"]) for f in p["files"]]
    paths += [("directories[].path", d["path"]) for d in p["directories"]]
    for name, value in paths:
        if value is not None and not os.path.isabs(value):
            module.fail_json(msg=f"{name} must be an absolute path, got {value!r}")

    result = {"changed": False}
    mounts = storage.parse_mountinfo(_read("/proc/self/mountinfo"))
    info = storage.inspect_target(p["path"], mounts)
    source_dir = p["same_as"] or p["link_to"]
    same_as_dev_ino = None
    if source_dir is not None:
        try:
            st = os.stat(source_dir)
            is_dir = os.path.isdir(source_dir)
        except OSError:
            st, is_dir = None, False
        result["source_dir"] = {"path": source_dir, "exists": st is not None, "is_dir": is_dir}
        if p["same_as"] is not None and st is not None:
            same_as_dev_ino = (st.st_dev, st.st_ino)
    result["target"] = storage_state.target_state(
        info, fstype=p["fstype"], source=p["source"], same_as=p["same_as"], same_as_dev_ino=same_as_dev_ino,
        link_to=p["link_to"], allow_nonempty=p["allow_nonempty"])

    if p["fstab"] is not None:
        entry = storage_state.fstab_entry(_read("/etc/fstab"), p["path"])
        result["fstab"] = {"entry": entry, "matches": storage_state.fstab_matches(
            entry, p["fstab"]["src"], p["fstab"]["fstype"], p["fstab"]["opts"])}

    result["files"] = {f["key"]: storage_state.file_state(f["path"], f["sha256"], f["mode"], f["owner"], f["group"])
                       for f in p["files"]}
    result["directories"] = {d["path"]: storage_state.dir_state(d["path"], d["mode"], d["owner"], d["group"])
                             for d in p["directories"]}

    result["services"] = {}
    if p["services"]:
        systemctl = module.get_bin_path("systemctl")
        rc, out = 1, ""
        if systemctl:
            rc, out, _err = module.run_command(storage_state.systemctl_show_command(systemctl, p["services"]))
        result["services"] = storage_state.parse_systemctl_show(p["services"], rc, out)
    if result["target"]["problem"]:
        result["msg"] = result["target"]["problem"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
