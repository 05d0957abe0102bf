#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Everything the host preflight checks, in one module call: platform facts, free space, clock."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_facts
short_description: Platform facts, free space and clock of a machine in one call
version_added: 0.2.0
description:
  - Read-only. Replaces C(ansible.builtin.setup) (subset C(min)) plus a free-space probe for the
    host preflight, in a single module execution.
  - Publishes under C(ansible_facts) the names C(setup) uses, with the same values -
    C(distribution), C(distribution_version), C(distribution_major_version),
    C(distribution_release), C(os_family), C(hostname), C(nodename), C(machine_id),
    C(python_version), C(system), C(kernel), C(machine), C(architecture) - so later tasks guarded by
    C(ansible_facts['machine_id'] is not defined) do not gather again.
  - Returns the machine's clock (C(epoch)) outside C(ansible_facts), so it never lands in the fact
    cache where an old value would pass for a fresh one.
  - Measures free space with statvfs on each path, or on its nearest existing parent when the path
    does not exist yet (for example C(/data/k8s) before it is created).
options:
  paths:
    description: Absolute paths whose filesystems to measure.
    type: list
    elements: path
    default: []
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Read the machine's platform, free space and clock (one call)
  aicluster.platform.host_facts:
    paths: [/, /var/lib]
  register: host

- name: Compare its clock with the control host's
  ansible.builtin.assert:
    that: (now(utc=true).timestamp() - host.epoch) | abs < 30
"""

RETURN = r"""
ansible_facts:
  description: Platform facts under setup's names.
  returned: always
  type: dict
  sample: {"distribution": "Debian", "distribution_version": "12.7", "distribution_major_version": "12",
           "os_family": "Debian", "hostname": "gpu-a100-1", "nodename": "gpu-a100-1",
           "machine_id": "0f1e...", "python_version": "3.11.2", "architecture": "x86_64"}
space:
  description: Per requested path, the path measured and its free and total bytes.
  returned: always
  type: dict
  sample: {"/var/lib": {"measured": "/var/lib", "free_bytes": 107374182400, "total_bytes": 214748364800}}
epoch:
  description: The machine's clock (seconds since the epoch, float) when the module ran.
  returned: always
  type: float
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.facts.system.distribution import Distribution
from ansible_collections.aicluster.platform.plugins.module_utils import hostinfo


def main():
    module = AnsibleModule(argument_spec={"paths": {"type": "list", "elements": "path", "default": []}},
                           supports_check_mode=True)
    relative = hostinfo.bad_paths(module.params["paths"])
    if relative:
        module.fail_json(msg=f"paths must be absolute: {', '.join(relative)}")
    facts = Distribution(module=module).get_distribution_facts()
    facts.update(hostinfo.platform_facts(machine_id=hostinfo.read_machine_id()))
    space = {p: hostinfo.measure(p) for p in module.params["paths"]}
    module.exit_json(changed=False, ansible_facts=facts, space=space, epoch=time.time())


if __name__ == "__main__":
    main()
