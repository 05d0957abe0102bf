# Copyright: AI cluster platform maintainers
# Apache-2.0
"""What the collection's read-only Kubernetes modules share (k8s_readiness_info, k8s_nodes_info,
k8s_objects_gone, sglang_app_info): the per-call timeout with retries (module_utils.k8s_client), their
attributes and requirements. The connection options come from kubernetes.core.k8s_auth_options."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  request_timeout:
    description: Seconds each API call may take, retries of transient faults included.
    type: int
    default: 30
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
requirements:
  - kubernetes (Python library) on the host that runs the module
"""
