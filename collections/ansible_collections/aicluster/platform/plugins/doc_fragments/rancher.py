# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Connection options shared by the Rancher modules (argument spec: module_utils.rancher_api.RANCHER_AUTH_ARGSPEC;
set-up and error mapping: module_utils.rancher_module)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  url:
    description: Rancher server URL (C(https://...)).
    type: str
    required: true
  api_token:
    description: Rancher API key, sent as a Bearer token (never after a redirect). Never logged.
    type: str
    required: true
  ca_checksum:
    description:
      - sha256 of C(<url>/cacerts). When set, C(/cacerts) is fetched without verification, must have this checksum,
        and then every API call verifies Rancher against exactly that CA (pinned; the system trust store is not used).
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
    description:
      - Seconds each API call may take. Connection errors and HTTP 5xx/429 answers are retried with exponential
        back-off within that time; then the module fails naming the URL and the last error.
    type: int
    default: 30
notes:
  - Proxies come from the environment (E(https_proxy), E(no_proxy)) as for M(ansible.builtin.uri).
  - The connection options can be given once for all Rancher modules with
    C(module_defaults) and the action group C(group/aicluster.platform.rancher).
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  action_group:
    description: Use C(group/aicluster.platform.rancher) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - aicluster.platform.rancher
"""
