#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Keep the Ascend Docker Runtime in RKE2's containerd configuration template, as one managed block."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ascend_containerd_template
short_description: Add the Ascend Docker Runtime to RKE2's containerd template as a managed block, and take it out again
version_added: 0.3.0
description:
  - RKE2 (and K3s) render their containerd C(config.toml) from C(config.toml.tmpl) beside it when that file exists,
    a Go template whose C({{ template "base" . }}) is RKE2's own configuration. This module keeps one marked block
    in it - the runtime the Ascend Docker Runtime installer gives containerd (C(runtime_type =
    "io.containerd.runc.v2"), C(options.BinaryName), C(SystemdCgroup) as RKE2 sets it for runc) - and nothing
    else.
  - A missing template is created as C({{ template "base" . }}) plus the block (parent directories are made
    0755); an existing one (the site's own) gets the block appended, or its block replaced in place. Every other
    line stays.
  - O(state=absent) takes the block out; a template the role created (O(created)) that holds nothing else is
    removed.
  - RKE2 reads the template when its agent starts; restart it after a change (C(changed)).
  - Supports check mode and diff mode (the template's text before and after).
options:
  path:
    description: The template (RKE2 - C(/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl)).
    type: path
    required: true
  runtime_name:
    description: The runtime's name in containerd (what a RuntimeClass handler or the default runtime names).
    type: str
    default: ascend
  binary:
    description: The runtime binary (C(<install dir>/ascend-docker-runtime)).
    type: path
    default: /usr/local/Ascend/Ascend-Docker-Runtime/ascend-docker-runtime
  config_version:
    description: containerd config version the block is written for - C(2) (containerd 1.x) or C(3) (containerd 2.x).
    type: int
    choices: [2, 3]
    default: 2
  state:
    description: C(present) keeps the block in the template; C(absent) takes it out.
    type: str
    choices: [present, absent]
    default: present
  created:
    description: The template was created by the role; with O(state=absent) it is removed when nothing else is left.
    type: bool
    default: false
  mode:
    description: Mode of a template the module creates (an existing one keeps its mode).
    type: raw
    default: "0644"
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Give RKE2's containerd the Ascend runtime
  aicluster.platform.ascend_containerd_template:
    path: /var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl
    binary: /usr/local/Ascend/Ascend-Docker-Runtime/ascend-docker-runtime
  notify: Restart the RKE2 agent

- name: Take it out again
  aicluster.platform.ascend_containerd_template:
    path: /var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl
    state: absent
    created: true
"""

RETURN = r"""
removed:
  description: Whether the template was (or would be) removed.
  returned: success
  type: bool
created_dirs:
  description: Parent directories that were (or would be) created.
  returned: success
  type: list
  elements: str
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aicluster.platform.plugins.module_utils import ascend


def _read(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def run(module):
    p = module.params
    path = p["path"]
    for name in ("path", "binary"):
        if not os.path.isabs(p[name]):
            module.fail_json(msg=f"{name} must be an absolute path, got {p[name]!r}")
    if not p["runtime_name"] or any(c in p["runtime_name"] for c in '"\\\n'):
        module.fail_json(msg=f"runtime_name must be a plain name such as ascend, got {p['runtime_name']!r}")
    try:
        mode = int(str(p["mode"]), 8)
    except ValueError:
        module.fail_json(msg=f"mode must be octal, e.g. '0644', got {p['mode']!r}")
    try:
        current = _read(path)
    except (OSError, UnicodeDecodeError) as exc:
        module.fail_json(msg=f"cannot read {path}: {exc}; nothing was changed")
    block = ascend.runtime_block(p["runtime_name"], p["binary"], p["config_version"])
    planned = ascend.plan_template(current, block, p["state"], p["created"])
    changed = planned != current
    removed = current is not None and planned is None
    created_dirs = ascend.missing_parents(path, os.path.isdir) if planned is not None and current is None else []
    result = {"changed": changed, "removed": removed, "created_dirs": created_dirs}
    if module._diff:
        result["diff"] = {"before_header": path, "after_header": path, "before": current or "", "after": planned or ""}
    if module.check_mode or not changed:
        return result
    if removed:
        os.unlink(path)
        return result
    for directory in created_dirs:
        os.mkdir(directory, 0o755)
    like = os.stat(path) if current is not None else None
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(planned)
        module.atomic_move(tmp, path)
        if like is not None:
            os.chmod(path, like.st_mode & 0o7777)
            os.chown(path, like.st_uid, like.st_gid)
        else:
            os.chmod(path, mode)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "runtime_name": {"type": "str", "default": "ascend"},
            "binary": {"type": "path", "default": "/usr/local/Ascend/Ascend-Docker-Runtime/ascend-docker-runtime"},
            "config_version": {"type": "int", "choices": [2, 3], "default": 2},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "created": {"type": "bool", "default": False},
            "mode": {"type": "raw", "default": "0644"},
        },
        supports_check_mode=True,
    )
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
