#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""The Kubernetes objects of an official MindCluster release directory, found and checked in one read-only call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mindcluster_release_info
short_description: Find and read the component YAMLs of an official MindCluster release directory
version_added: 0.3.0
description:
  - Read-only, on the host that holds the release (the mindcluster role's control host), so the role calls it
    once, before its first change. Works the same in check mode.
  - Each selected component's release file is looked for by name anywhere under O(path) (the release's zips
    unpack into one directory each), e.g. C(device-plugin-volcano-v26.0.1.yaml), C(volcano-v1.9.0.yaml),
    C(clusterd-v26.0.1.yaml), C(noded-v26.0.1.yaml), C(npu-exporter-v26.0.1.yaml) (the names of MindCluster's
    C(build.sh) scripts); O(file_names) names a file differently.
  - Fails, naming every missing file (and its component), a file found twice, an unreadable file or a document
    that is not a Kubernetes object, before anything is applied. The files are returned as they are - parsed,
    never changed.
options:
  path:
    description: The release directory.
    type: path
    required: true
  components:
    description:
      - The components whose files are read, some of C(ascend-device-plugin), C(volcano), C(noded), C(clusterd),
        C(npu-exporter).
    type: list
    elements: str
    required: true
  version:
    description: MindCluster's version (C(26.0.1) or C(v26.0.1)), part of the file names.
    type: str
    required: true
  volcano_version:
    description: Version of MindCluster's Volcano build (C(1.9.0)), part of the Volcano file's name.
    type: str
    required: true
  file_names:
    description: Component to file name, for a release whose files are named differently.
    type: dict
    default: {}
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Read the release's YAMLs (fails naming a missing file before anything is applied)
  aicluster.platform.mindcluster_release_info:
    path: /opt/mindcluster/26.0.1
    components: [ascend-device-plugin, volcano, clusterd, noded, npu-exporter]
    version: 26.0.1
    volcano_version: 1.9.0
  register: release
"""

RETURN = r"""
file_names:
  description: Component to the file name looked for.
  returned: always
  type: dict
  sample: {"clusterd": "clusterd-v26.0.1.yaml"}
files:
  description: Component to the file found.
  returned: success
  type: dict
  sample: {"clusterd": "/opt/mindcluster/26.0.1/clusterd/clusterd-v26.0.1.yaml"}
manifests:
  description: Component to the Kubernetes objects of its file, in file order (empty documents skipped).
  returned: success
  type: dict
  sample: {"noded": [{"apiVersion": "v1", "kind": "ServiceAccount",
                      "metadata": {"name": "noded", "namespace": "mindx-dl"}}]}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aicluster.platform.plugins.module_utils import mindcluster


def read_release(path, components, version, volcano_version, file_names=None):
    """``(result, problems)``: what the module returns, and why it fails (empty: it does not)."""
    settings = {"components": components, "version": version, "volcano_version": volcano_version,
                "release_files": file_names or {}}
    problems = mindcluster.settings_problems(settings)
    if problems:
        return {}, problems
    names = mindcluster.release_file_names(components, version, volcano_version, file_names)
    result = {"file_names": names}
    files, problems = mindcluster.locate_release_files(path, names)
    if problems:
        return result, problems
    manifests = {}
    for component, file_path in files.items():
        try:
            with open(file_path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"cannot read {file_path} (component {component}): {exc}")
            continue
        objects, file_problems = mindcluster.parse_manifests(text, file_path)
        problems += file_problems
        if not objects and not file_problems:
            problems.append(f"{file_path} (component {component}) holds no Kubernetes object")
        manifests[component] = objects
    result.update(files=files, manifests=manifests)
    return result, problems


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "components": {"type": "list", "elements": "str", "required": True},
            "version": {"type": "str", "required": True},
            "volcano_version": {"type": "str", "required": True},
            "file_names": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    p = module.params
    result, problems = read_release(p["path"], p["components"], p["version"], p["volcano_version"],
                                    p["file_names"])
    if problems:
        module.fail_json(msg="; ".join(problems) + "; nothing was applied", problems=problems, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
