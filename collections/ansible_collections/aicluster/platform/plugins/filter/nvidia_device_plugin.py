# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Filters behind the nvidia_device_plugin role: the plugin's configuration files (``config.map`` of
its Helm chart), built and validated on the control host by the rules of the plugin's config API
before anything is installed (documented in nvidia_time_slicing_config.yml,
nvidia_device_plugin_config_problems.yml and nvidia_device_plugin_config_map.yml next to this file).
"""

from __future__ import annotations

import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.platform.plugins.module_utils import nvidia
from ansible_collections.aicluster.platform.plugins.module_utils.plain_data import plain


def _int_or_value(value):
    """Inventory values arrive as strings when templated: "4" -> 4 (anything else is left to the rules)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return value


def nvidia_time_slicing_config(replicas=0, rename_by_default=False, fail_requests_greater_than_one=False,
                               mig_strategy="none"):
    return nvidia.time_slicing_config(_int_or_value(replicas), rename_by_default, fail_requests_greater_than_one,
                                      mig_strategy)


def nvidia_device_plugin_config_problems(configs, default=None):
    return nvidia.config_set_problems(plain(configs), default or None)


def nvidia_device_plugin_config_map(configs, default=None):
    configs = plain(configs)
    problems = nvidia.config_set_problems(configs, default or None)
    if problems:
        raise AnsibleFilterError("invalid NVIDIA device plugin configuration: " + "; ".join(problems))
    return {name: yaml.safe_dump(config, default_flow_style=False, sort_keys=False)
            for name, config in sorted(configs.items())}


class FilterModule:
    def filters(self):
        return {
            "nvidia_time_slicing_config": nvidia_time_slicing_config,
            "nvidia_device_plugin_config_problems": nvidia_device_plugin_config_problems,
            "nvidia_device_plugin_config_map": nvidia_device_plugin_config_map,
        }
