#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Check that a path can take a filesystem: already the wanted one, or absent/empty; refuse anything else."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mount_target_info
short_description: Refuse to mount over a non-empty directory or another filesystem
version_added: 0.1.0
description:
  - Read-only. Inspects O(path) (C(/proc/self/mountinfo), lstat, directory listing) and returns
    C(state=ready) when it already is the wanted filesystem, C(state=empty) when it is absent or an
    empty unmounted directory (safe to set up).
  - Fails, naming what is there, when O(path) is a non-empty directory, another mount, a file,
    or a symlink that is not the wanted one. It never changes anything, so a role can call it
    before its first change.
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
    description: For bind mounts, the absolute source directory; O(path) is ready when it is that directory.
    type: path
  link_to:
    description: For symlinks, the absolute target; O(path) is ready when it is a symlink to it.
    type: path
  allow_nonempty:
    description:
      - Accept any existing directory, mounted or not, empty or not (C(state=ready)); for a plain
        local directory. Files and symlinks are still refused.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Refuse to mount over data that is not the volume
  aicluster.platform.mount_target_info:
    path: /data/k8s
    fstype: fuse.juicefs
    source: JuiceFS:aicluster
"""

RETURN = r"""
state:
  description: C(ready) (already the wanted filesystem) or C(empty) (absent or an empty unmounted directory).
  returned: success
  type: str
kind:
  description: What O(path) is now, C(absent), C(dir), C(symlink).
  returned: success
  type: str
mount:
  description: The mount at O(path) (mount_point, root, fstype, source, options) or null.
  returned: success
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aicluster.platform.plugins.module_utils import storage


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "fstype": {"type": "str"},
            "source": {"type": "str"},
            "same_as": {"type": "path"},
            "link_to": {"type": "path"},
            "allow_nonempty": {"type": "bool", "default": False},
        },
        mutually_exclusive=[["same_as", "link_to"]],
        supports_check_mode=True,
    )
    p = module.params
    for key in ("path", "same_as", "link_to"):
        if p[key] is not None and not os.path.isabs(p[key]):
            module.fail_json(msg=f"{key} must be an absolute path, got {p[key]!r}")
    with open("/proc/self/mountinfo") as fh:
        mounts = storage.parse_mountinfo(fh.read())
    info = storage.inspect_target(p["path"], mounts)
    same_as_dev_ino = None
    if p["same_as"] is not None:
        try:
            st = os.stat(p["same_as"])
        except OSError as exc:
            module.fail_json(msg=f"bind source {p['same_as']} is not usable: {exc.strerror}")
        same_as_dev_ino = (st.st_dev, st.st_ino)
    try:
        state = storage.evaluate_target(info, fstype=p["fstype"], source=p["source"], same_as=p["same_as"],
                                        same_as_dev_ino=same_as_dev_ino, link_to=p["link_to"],
                                        allow_nonempty=p["allow_nonempty"])
    except storage.StorageError as exc:
        module.fail_json(msg=str(exc), kind=info["kind"], mount=info["mount"])
    module.exit_json(changed=False, state=state, kind=info["kind"], mount=info["mount"])


if __name__ == "__main__":
    main()
