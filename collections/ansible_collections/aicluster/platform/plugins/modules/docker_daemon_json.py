#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Merge settings into Docker's daemon.json (never re-templated) and restore what they replaced."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: docker_daemon_json
short_description: Merge settings into Docker's daemon.json, keeping every other key, and restore them on removal
version_added: 0.3.0
description:
  - Reads the JSON object in O(path), sets each of O(settings) (a key path and its value) and writes the file
    back only when its content changes; every key it is not told about stays as it is. It is never
    re-templated, so what a site (or another tool) put there survives.
  - The value each path had before this module first set it is kept in O(record) (a small JSON file). A
    setting dropped from O(settings) gets that value back, and O(state=absent) restores every recorded
    path and removes the record, so the file is as it was before (keys added since by others stay).
    A file the module created is removed again when nothing is left in it.
  - Invalid JSON, or an object where a key path needs another type, fails the task and changes nothing.
  - Supports check mode and diff mode (the file's text before and after). C(changed) means the daemon's
    configuration changed (restart Docker); writing only the record is not a change.
options:
  path:
    description: Docker's daemon configuration file.
    type: path
    default: /etc/docker/daemon.json
  settings:
    description:
      - The settings wanted, each C(path) (list of keys, e.g. C([runtimes, nvidia])) and C(value) (any JSON value).
      - Ignored with O(state=absent).
    type: list
    elements: dict
    default: []
  record:
    description: Where the values replaced by O(settings) are kept for their restoration (directory created 0700).
    type: path
    required: true
  state:
    description: C(present) writes O(settings); C(absent) restores every recorded path.
    type: str
    choices: [present, absent]
    default: present
  mode:
    description: Mode of a daemon.json the module creates (an existing file keeps its mode).
    type: raw
    default: "0644"
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Give Docker the nvidia runtime (nvidia-ctk runtime configure --runtime=docker, merged)
  aicluster.platform.docker_daemon_json:
    path: /etc/docker/daemon.json
    record: /var/lib/aicluster/nvidia-container-toolkit/daemon.json.record
    settings:
      - path: [runtimes, nvidia]
        value: {path: nvidia-container-runtime, args: []}
      - path: [default-runtime]
        value: nvidia
  notify: Restart Docker

- name: Put daemon.json back as it was
  aicluster.platform.docker_daemon_json:
    record: /var/lib/aicluster/nvidia-container-toolkit/daemon.json.record
    state: absent
  notify: Restart Docker
"""

RETURN = r"""
config:
  description: The daemon configuration after the change (or as it would be, in check mode).
  returned: success
  type: dict
  sample: {"log-driver": "json-file", "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}
removed:
  description: Whether the file was (or would be) removed because it was created by the module and is empty now.
  returned: success
  type: bool
record_written:
  description: Whether the restore record was (or would be) written or removed.
  returned: success
  type: bool
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aicluster.platform.plugins.module_utils import docker_daemon


def _read(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _atomic_write(module, path, text, mode, like=None):
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700 if like is None and path.endswith(".record") else 0o755)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        module.atomic_move(tmp, path)
        # atomic_move gives a new file the default mode: set the one wanted (an existing file keeps its own)
        if like is not None:
            os.chmod(path, like.st_mode & 0o7777)
            try:
                os.chown(path, like.st_uid, like.st_gid)
            except PermissionError:
                pass
        else:
            os.chmod(path, mode)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def run(module):
    p = module.params
    path, record_path, state = p["path"], p["record"], p["state"]
    for name in ("path", "record"):
        if not os.path.isabs(p[name]):
            module.fail_json(msg=f"{name} must be an absolute path, got {p[name]!r}")
    settings = [] if state == "absent" else p["settings"]
    for setting in settings:
        if not isinstance(setting.get("path"), list) or not setting["path"] or "value" not in setting:
            module.fail_json(msg=f"settings entries need a non-empty list 'path' and a 'value': {setting!r}")
        if not all(isinstance(k, str) and k for k in setting["path"]):
            module.fail_json(msg=f"settings path must be a list of non-empty strings: {setting['path']!r}")
    try:
        mode = int(str(p["mode"]), 8)
    except ValueError:
        module.fail_json(msg=f"mode must be octal, e.g. '0644', got {p['mode']!r}")

    record_text = _read(record_path)
    if state == "absent" and not (record_text or "").strip():
        # nothing was ever set (or it was restored already): the file is not even read
        return {"changed": False, "config": None, "removed": False, "record_written": False}
    existed = os.path.exists(path)
    before_text = _read(path) if existed else None
    record = None
    if record_text:
        try:
            record = json.loads(record_text)
        except ValueError:
            module.fail_json(msg=f"the restore record {record_path} is not JSON; move it away to start afresh "
                                 "(the values it held are lost)")
        if not isinstance(record, dict) or not isinstance(record.get("entries"), list):
            module.fail_json(msg=f"the restore record {record_path} is not a record of this module")
    try:
        current = docker_daemon.load_daemon_json(before_text, path)
        new, new_record = docker_daemon.plan_daemon_json(current, record, settings, state)
    except docker_daemon.DaemonJsonError as exc:
        module.fail_json(msg=str(exc))

    created_by_us = bool(record and record.get("created"))
    if new_record is not None:
        new_record["path"] = path
        new_record["created"] = created_by_us or (record is None and not existed)
    remove_file = state == "absent" and existed and new == {} and created_by_us
    write_file = new != current or (not existed and new != {})
    if remove_file:
        write_file = False
    after_text = None if remove_file else (docker_daemon.dump_daemon_json(new) if write_file else before_text)
    changed = write_file or remove_file
    record_changed = (new_record or {}).get("entries") != (record or {}).get("entries")

    result = {"changed": changed, "config": new, "removed": remove_file, "record_written": record_changed}
    if module._diff:
        result["diff"] = {"before_header": path, "after_header": path,
                          "before": before_text or "", "after": after_text or ""}
    if module.check_mode:
        return result
    if write_file:
        like = os.stat(path) if existed else None
        _atomic_write(module, path, after_text, mode, like)
    elif remove_file:
        os.unlink(path)
    if record_changed:
        if new_record is None:
            if os.path.exists(record_path):
                os.unlink(record_path)
        else:
            _atomic_write(module, record_path, json.dumps(new_record, indent=1, sort_keys=True) + "\n", 0o600)
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/etc/docker/daemon.json"},
            "settings": {"type": "list", "elements": "dict", "default": []},
            "record": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "mode": {"type": "raw", "default": "0644"},
        },
        supports_check_mode=True,
    )
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
