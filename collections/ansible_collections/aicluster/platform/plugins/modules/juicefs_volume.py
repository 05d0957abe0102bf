#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Format a JuiceFS volume exactly once: detect it with `juicefs status`, format only when absent."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: juicefs_volume
short_description: Make sure a JuiceFS volume exists in a metadata engine, formatting it only once
version_added: 0.1.0
description:
  - Runs C(juicefs status META) first. When the metadata engine answers that it holds no volume,
    runs C(juicefs format --no-update) once; when it already holds the volume, changes nothing.
  - Any other answer (engine unreachable, wrong password) fails the task, so an outage never
    leads to a new format. An engine holding a volume with another name fails too.
  - Secrets never appear on a command line; the metadata password travels in E(META_PASSWORD),
    the object store's secret key in E(SECRET_KEY).
  - Run it from one host (C(run_once)); C(--no-update) keeps a concurrent second format harmless.
options:
  binary:
    description: Path of the juicefs client on the host.
    type: path
    default: /usr/local/bin/juicefs
  meta_url:
    description: Metadata engine URL without a password, e.g. C(redis://10.0.0.5:6379/1).
    type: str
    required: true
  meta_password:
    description: Password of the metadata engine (passed as E(META_PASSWORD)).
    type: str
  name:
    description: Volume name.
    type: str
    required: true
  storage:
    description: Object storage type (C(s3), C(redis), C(minio), C(ceph), C(file), ...).
    type: str
    required: true
  bucket:
    description: Bucket URL or endpoint of the object storage.
    type: str
  access_key:
    description: Access key (user name for C(redis)) of the object storage.
    type: str
  secret_key:
    description: Secret key (password for C(redis)) of the object storage (passed as E(SECRET_KEY)).
    type: str
  format_options:
    description:
      - Extra C(juicefs format) flags used only when formatting, without the leading dashes
        (C(block-size), C(compress), C(trash-days), ...). C(true) adds a bare flag.
    type: dict
    default: {}
  timeout:
    description: Seconds to allow each juicefs command.
    type: int
    default: 120
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
- name: Format the volume once, from one host
  aicluster.platform.juicefs_volume:
    meta_url: redis://10.0.0.5:6379/1
    meta_password: "{{ vault_meta_password }}"
    name: aicluster
    storage: s3
    bucket: https://jfs.s3.example.com
    access_key: "{{ vault_access_key }}"
    secret_key: "{{ vault_secret_key }}"
  run_once: true
  no_log: true
"""

RETURN = r"""
formatted:
  description: Whether this run formatted the volume (in check mode, whether it would).
  returned: always
  type: bool
volume:
  description: The volume's settings as C(juicefs status) reports them (no secrets).
  returned: always
  type: dict
  sample: {"Name": "aicluster", "UUID": "1c2c...", "Storage": "redis", "Bucket": "redis://10.77.0.1:6380/2"}
differences:
  description: Settings of the existing volume that differ from the requested ones (never changed by this module).
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.aicluster.platform.plugins.module_utils import storage


def run(module, cmd, env):
    """Run a juicefs command bounded by the timeout; secrets only in ``env``."""
    return module.run_command(["timeout", str(module.params["timeout"]), *cmd], environ_update=env)


def main():
    module = AnsibleModule(
        argument_spec={
            "binary": {"type": "path", "default": "/usr/local/bin/juicefs"},
            "meta_url": {"type": "str", "required": True},
            "meta_password": {"type": "str", "no_log": True},
            "name": {"type": "str", "required": True},
            "storage": {"type": "str", "required": True},
            "bucket": {"type": "str"},
            "access_key": {"type": "str", "no_log": False},
            "secret_key": {"type": "str", "no_log": True},
            "format_options": {"type": "dict", "default": {}},
            "timeout": {"type": "int", "default": 120},
        },
        supports_check_mode=True,
    )
    p = module.params
    secrets = [p["meta_password"], p["secret_key"]]
    if storage.url_has_password(p["meta_url"]):
        module.fail_json(msg="meta_url must not contain a password: pass it as meta_password")
    if not (os.path.isfile(p["binary"]) and os.access(p["binary"], os.X_OK)):
        if module.check_mode:
            module.exit_json(changed=True, formatted=True, volume={}, differences=[],
                             msg=f"{p['binary']} is not installed yet: cannot tell whether the volume exists")
        module.fail_json(msg=f"juicefs client not found or not executable at {p['binary']}")
    env = storage.command_env(p["meta_password"])
    rc, out, err = run(module, storage.status_command(p["binary"], p["meta_url"]), env)
    try:
        exists, setting = storage.parse_status(rc, out, storage.redact(err, secrets))
        if exists:
            differences = storage.check_existing(setting, p["name"], p["storage"], p["bucket"])
            module.exit_json(changed=False, formatted=False, volume=setting, differences=differences)
    except storage.StorageError as exc:
        module.fail_json(msg=storage.redact(str(exc), secrets))
    if module.check_mode:
        module.exit_json(changed=True, formatted=True, volume={"Name": p["name"]}, differences=[])
    cmd = storage.format_command(p["binary"], p["meta_url"], p["name"], p["storage"], p["bucket"], p["access_key"],
                                 p["format_options"])
    rc, out, err = run(module, cmd, storage.command_env(p["meta_password"], p["secret_key"]))
    if rc != 0:
        lines = [ln for ln in storage.redact(err or out, secrets).strip().splitlines() if ln.strip()]
        module.fail_json(msg=f"juicefs format failed: {lines[-1] if lines else f'exit {rc}'}")
    rc, out, err = run(module, storage.status_command(p["binary"], p["meta_url"]), env)
    try:
        exists, setting = storage.parse_status(rc, out, storage.redact(err, secrets))
        if not exists:
            raise storage.StorageError("juicefs format succeeded but the engine still holds no volume")
        differences = storage.check_existing(setting, p["name"], p["storage"], p["bucket"])
    except storage.StorageError as exc:
        module.fail_json(msg=storage.redact(str(exc), secrets))
    module.exit_json(changed=True, formatted=True, volume=setting, differences=differences)


if __name__ == "__main__":
    main()
