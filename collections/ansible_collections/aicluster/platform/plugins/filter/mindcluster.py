# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Filters behind the mindcluster role: its settings' problems, the release file names, the objects of a
rendered template, the apply plan (batches, rollout waits, what check mode cannot dry-run, the record),
the removal order, and objects named in messages. Each is documented in plugins/filter/<name>.yml; the
logic is module_utils/mindcluster.py.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.platform.plugins.module_utils import mindcluster
from ansible_collections.aicluster.platform.plugins.module_utils.plain_data import plain


def mindcluster_problems(settings):
    return mindcluster.settings_problems(plain(settings or {}))


def mindcluster_release_files(components, version, volcano_version, overrides=None):
    try:
        return mindcluster.release_file_names(plain(components), str(version), str(volcano_version),
                                              plain(overrides or {}))
    except mindcluster.MindClusterError as exc:
        raise AnsibleFilterError(str(exc)) from None


def mindcluster_manifests(text, source="manifest"):
    objects, problems = mindcluster.parse_manifests(str(text), str(source))
    if problems:
        raise AnsibleFilterError("; ".join(problems))
    return objects


def mindcluster_plan(manifests, components=None, existing_namespaces=None, check_mode=False, existing_crds=None):
    manifests = plain(manifests or {})
    for source, objects in manifests.items():
        if not isinstance(objects, list):
            raise AnsibleFilterError(f"mindcluster_plan: the objects of {source} must be a list")
        for obj in objects:
            problem = mindcluster.object_problem(obj)
            if problem:
                raise AnsibleFilterError(f"mindcluster_plan: {source}: {problem}")
    return mindcluster.plan(manifests, plain(components or []),
                            None if existing_namespaces is None else plain(existing_namespaces),
                            bool(check_mode), plain(existing_crds or []))


def mindcluster_removal_plan(refs, keep_namespaces=False, exclude=None):
    return mindcluster.removal_plan(plain(refs or []), bool(keep_namespaces), plain(exclude or []))


def mindcluster_describe(obj):
    return mindcluster.describe(plain(obj))


class FilterModule:
    def filters(self):
        return {
            "mindcluster_problems": mindcluster_problems,
            "mindcluster_release_files": mindcluster_release_files,
            "mindcluster_manifests": mindcluster_manifests,
            "mindcluster_plan": mindcluster_plan,
            "mindcluster_removal_plan": mindcluster_removal_plan,
            "mindcluster_describe": mindcluster_describe,
        }
