# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Connection options shared by the Rancher modules (argument spec: module_utils.rancher_api.RANCHER_AUTH_ARGSPEC)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  url:
    description: Rancher server URL (C(https://...)).
    type: str
    required: true
  api_token:
    description: Rancher API key, sent as a Bearer token. Never logged.
    type: str
    required: true
  ca_checksum:
    description: sha256 of C(<url>/cacerts); when set, that CA is verified and pinned.
    type: str
    default: ""
  ca_path:
    description: CA bundle to verify Rancher with when O(ca_checksum) is empty.
    type: path
  validate_certs:
    description: Verify Rancher's certificate when O(ca_checksum) is empty.
    type: bool
    default: true
  timeout:
    description: Seconds per HTTP request.
    type: int
    default: 30
"""
