# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""What every Rancher module shares: the argument spec with the connection options (doc fragment
aicluster.platform.rancher, action group aicluster.platform.rancher), the client, and the mapping of
RancherError to a failed task."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aicluster.platform.plugins.module_utils.rancher_api import (
    RANCHER_AUTH_ARGSPEC,
    RancherClient,
    RancherError,
)


def client_from(params):
    """A RancherClient from the connection options."""
    return RancherClient(params["url"], params["api_token"], ca_checksum=params["ca_checksum"],
                         ca_path=params["ca_path"], validate_certs=params["validate_certs"], timeout=params["timeout"])


def run(argument_spec, action, check=None):
    """Run a Rancher module.

    * the module's options are the connection options plus ``argument_spec``; check mode is supported;
    * ``check(params)``, optional, returns a problem (text) with input that needs no API call, or None;
    * ``action(client, params, check_mode)`` returns the result; a ``diff`` in it is kept only in diff mode;
    * a RancherError fails the task with its sentence and ``changed=False``.
    """
    module = AnsibleModule(argument_spec={**RANCHER_AUTH_ARGSPEC, **argument_spec}, supports_check_mode=True)
    problem = check(module.params) if check else None
    if problem:
        module.fail_json(msg=problem, changed=False)
    try:
        result = action(client_from(module.params), module.params, module.check_mode)
    except RancherError as exc:
        module.fail_json(msg=str(exc), changed=False)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)
