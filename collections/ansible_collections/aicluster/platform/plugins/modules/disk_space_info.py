#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Free and total space of the filesystems holding given paths (statvfs; paths need not exist yet)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: disk_space_info
short_description: Free space of the filesystems that hold the given paths
version_added: 0.1.0
description:
  - Calls statvfs on each path, or on its nearest existing parent when the path does not exist yet
    (for example C(/data/k8s) before it is created), so the answer is about where data will land.
  - Works the same in containers, where the root filesystem is often missing from mount facts.
options:
  paths:
    description: Absolute paths to measure.
    type: list
    elements: path
    required: true
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
- name: Measure the filesystems images and data land on
  aicluster.platform.disk_space_info:
    paths: [/, /var/lib]
  register: space
"""

RETURN = r"""
space:
  description: Per requested path, the path measured and its free and total bytes.
  returned: always
  type: dict
  sample: {"/var/lib": {"measured": "/var/lib", "free_bytes": 107374182400, "total_bytes": 214748364800}}
"""

import os

from ansible.module_utils.basic import AnsibleModule


def measure(path):
    probe = path
    while not os.path.exists(probe):
        probe = os.path.dirname(probe) or "/"
    stats = os.statvfs(probe)
    return {"measured": probe, "free_bytes": stats.f_bavail * stats.f_frsize,
            "total_bytes": stats.f_blocks * stats.f_frsize}


def main():
    module = AnsibleModule(argument_spec={"paths": {"type": "list", "elements": "path", "required": True}},
                           supports_check_mode=True)
    relative = [p for p in module.params["paths"] if not os.path.isabs(p)]
    if relative:
        module.fail_json(msg=f"paths must be absolute: {', '.join(relative)}")
    module.exit_json(changed=False, space={p: measure(p) for p in module.params["paths"]})


if __name__ == "__main__":
    main()
