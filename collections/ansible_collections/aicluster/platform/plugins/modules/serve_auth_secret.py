#!/usr/bin/python
# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Write the auth-config Secret of a Ray Serve application: JWT signing key (kept across runs), token lifetime and
users with password hashes, without any of it leaving the module."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: serve_auth_secret
short_description: Write a Ray Serve application's login Secret (JWT key, users, password hashes) without showing it
version_added: 0.5.0
description:
  - Creates or updates the Secret (default C(auth-config)) that the Serve pods read with C(envFrom) and that the
    package C(aicluster_serve_auth) of the Serve image checks logins against - C(JWT_KEY),
    C(ACCESS_TOKEN_EXPIRE_MINUTES), C(USER_LIST) and per user C(<ID>_USERNAME), C(<ID>_HASHED_PASSWORD),
    C(<ID>_ROLE), where C(<ID>) is the user name in capitals with every other character than letters and digits as
    C(_).
  - "The signing key is created once (48 random bytes, URL-safe base64) and kept by later runs, so tokens stay valid
    across a re-run; O(rotate_key=true) makes a new one (every token issued before stops working)."
  - "Passwords are hashed with PBKDF2-HMAC-SHA256, 600,000 iterations, a random salt per user, in the
    self-describing format C(pbkdf2_sha256$<iterations>$<salt>$<hash>) of module_utils C(serve_auth_passwords),
    the one implementation the Serve image uses too. A hash already in the Secret is kept while it still matches
    the inventory's password and is as strong (so a re-run changes nothing); otherwise it is made again."
  - Users not in O(users) are removed from the Secret (they can no longer log in, and the Serve package refuses
    their earlier tokens too).
  - Nothing secret is returned or logged - the key, passwords and hashes stay in the module; with C(--diff) the
    diff shows the keys and which changed, every value as C(<hidden>). Check mode reads and compares, writes
    nothing.
options:
  namespace:
    description: Namespace of the Secret (it must exist).
    type: str
    required: true
  name:
    description: Name of the Secret.
    type: str
    default: auth-config
  users:
    description:
      - The users who may log in. C(name) (letters, digits, C(.), C(_), C(-); starting with a letter or digit),
        C(password) (at least 8 characters; from vaulted inventory), C(role) (e.g. V(admin), V(user)).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The login name.
        type: str
        required: true
      password:
        description: The password (at least 8 characters).
        type: str
        required: true
      role:
        description: The role, e.g. V(admin), V(user).
        type: str
        required: true
  token_lifetime_minutes:
    description: Lifetime of the access tokens, in minutes.
    type: int
    default: 60
  rotate_key:
    description: Make a new signing key (invalidates every token issued before).
    type: bool
    default: false
  extra_data:
    description:
      - More keys of the Secret, e.g. C(HUGGING_FACE_HUB_TOKEN) (values are strings; kept out of the output too).
    type: dict
    default: {}
  labels:
    description: Labels of the Secret.
    type: dict
    default: {}
  request_timeout:
    description: Seconds each API call may take, retries of transient faults included.
    type: int
    default: 30
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Metadata and the names of changed keys only; values are shown as C(<hidden>).
requirements:
  - kubernetes (Python library) on the host that runs the module
author:
  - AI cluster platform maintainers (@aicluster)
"""

EXAMPLES = r"""
- name: Write the login Secret of the Serve application
  aicluster.platform.serve_auth_secret:
    kubeconfig: /etc/aicluster/kubeconfig/worker.yaml
    namespace: llm
    users: "{{ ray_serve_users }}"  # vaulted: [{name: alice, password: ..., role: admin}, ...]
    token_lifetime_minutes: 60
    extra_data:
      HUGGING_FACE_HUB_TOKEN: "{{ vault_hf_token }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
action:
  description: What was done to the Secret (in check mode - what would be done).
  returned: success
  type: str
  choices: [created, updated, unchanged]
users:
  description: The users of the Secret after the run (names and roles only), and what happened to each.
  returned: success
  type: list
  elements: dict
  sample: [{name: alice, role: admin, password: kept}, {name: bob, role: user, password: hashed}]
removed_users:
  description: Users that were in the Secret and are no longer in O(users).
  returned: success
  type: list
  elements: str
key:
  description: What happened to the signing key - C(created), C(kept) or C(rotated).
  returned: success
  type: str
"""

import re
import secrets

from ansible_collections.aicluster.platform.plugins.module_utils import (
    k8s_client,
    k8s_names,
    k8s_secrets,
    serve_auth_passwords,
)

KEY_BYTES = 48
MIN_KEY_LENGTH = 32
MIN_PASSWORD = 8
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def user_id(name):
    """The user's id in the Secret's variable names (ALICE for alice, JO_ANN for jo-ann)."""
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def problems_of(params):
    """Every problem of the input, one sentence each, never quoting a password."""
    found = []
    found += [f"namespace: {p}" for p in k8s_names.validate_dns1123_label(params["namespace"], "namespace")]
    found += [f"name: {p}" for p in k8s_names.validate_dns1123_subdomain(params["name"], "name")]
    if params["token_lifetime_minutes"] < 1:
        found.append(f"token_lifetime_minutes must be at least 1, got {params['token_lifetime_minutes']}")
    seen = {}
    for index, user in enumerate(params["users"]):
        where = f"users[{index}]"
        name = user.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            found.append(f"{where}: name must be letters, digits, '.', '_' or '-', starting with a letter or digit")
            continue
        where = f"user {name}"
        password = user.get("password")
        if not isinstance(password, str) or len(password) < MIN_PASSWORD:
            found.append(f"{where}: password must be a string of at least {MIN_PASSWORD} characters")
        role = user.get("role")
        if not isinstance(role, str) or not NAME_RE.match(role):
            found.append(f"{where}: role must be a word (letters, digits, '.', '_', '-'), e.g. admin or user")
        ident = user_id(name)
        if ident in seen:
            found.append(f"{where}: its variables ({ident}_*) would be those of user {seen[ident]}")
        seen.setdefault(ident, name)
    for key in params["extra_data"]:
        if key in ("JWT_KEY", "ACCESS_TOKEN_EXPIRE_MINUTES", "USER_LIST") or any(
                key.startswith(f"{ident}_") for ident in seen):
            found.append(f"extra_data: {key} is one of the keys the module writes")
    return found


def desired_data(params, existing_data):
    """``(data as text, user reports, key action)`` for the Secret, keeping what may be kept."""
    current = {key: k8s_secrets.decode(value) for key, value in (existing_data or {}).items()}
    key = current.get("JWT_KEY")
    if params["rotate_key"] and key:
        key, key_action = secrets.token_urlsafe(KEY_BYTES), "rotated"
    elif key and len(key) >= MIN_KEY_LENGTH:
        key_action = "kept"
    else:
        key, key_action = secrets.token_urlsafe(KEY_BYTES), "created"
    data = {"JWT_KEY": key, "ACCESS_TOKEN_EXPIRE_MINUTES": str(params["token_lifetime_minutes"])}
    ids, reports = [], []
    for user in params["users"]:
        ident = user_id(user["name"])
        ids.append(ident)
        old = current.get(f"{ident}_HASHED_PASSWORD")
        keep = (old is not None and current.get(f"{ident}_USERNAME") == user["name"]
                and serve_auth_passwords.is_current(old)
                and serve_auth_passwords.verify_password(user["password"], old))
        data[f"{ident}_USERNAME"] = user["name"]
        data[f"{ident}_HASHED_PASSWORD"] = old if keep else serve_auth_passwords.hash_password(user["password"])
        data[f"{ident}_ROLE"] = user["role"]
        reports.append({"name": user["name"], "role": user["role"], "password": "kept" if keep else "hashed"})
    data["USER_LIST"] = ",".join(ids)
    data.update({str(k): str(v) for k, v in params["extra_data"].items()})
    return data, reports, key_action


def main():
    module = k8s_client.k8s_module(
        argument_spec={
            "namespace": {"type": "str", "required": True},
            "name": {"type": "str", "default": "auth-config"},
            # Only the passwords are secret: names and roles show in messages and results.
            "users": {"type": "list", "elements": "dict", "required": True, "options": {
                "name": {"type": "str", "required": True},
                "password": {"type": "str", "required": True, "no_log": True},
                "role": {"type": "str", "required": True},
            }},
            "token_lifetime_minutes": {"type": "int", "default": 60, "no_log": False},
            "rotate_key": {"type": "bool", "default": False, "no_log": False},
            "extra_data": {"type": "dict", "default": {}, "no_log": True},
            "labels": {"type": "dict", "default": {}},
            "request_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    namespace, name = params["namespace"], params["name"]
    result = {"changed": False, "secret": {"namespace": namespace, "name": name}}
    problems = problems_of(params)
    if problems:
        module.fail_json(msg=f"{len(problems)} problem{'s' if len(problems) > 1 else ''} in the login settings: "
                             + "; ".join(problems), **result)
    labels = {str(k): str(v) for k, v in params["labels"].items()}
    timeout = params["request_timeout"]
    stage = f"reading Secret {namespace}/{name}"
    try:
        api = k8s_client.connect(module, timeout)
        existing = k8s_secrets.read(api, namespace, name, timeout)
        have = (existing or {}).get("data") or {}
        data, reports, key_action = desired_data(params, have)
        encoded = {key: k8s_secrets.encode(value) for key, value in data.items()}
        # Masked wherever they would appear in the module's output (error texts included).
        module._module.no_log_values.update(v for k, v in data.items() if not k.endswith(("_USERNAME", "_ROLE")))
        module._module.no_log_values.update(encoded.values())
        changed_keys = sorted(k for k in set(encoded) | set(have) if encoded.get(k) != have.get(k))
        removed_ids = [key[:-len("_HASHED_PASSWORD")] for key in have if key.endswith("_HASHED_PASSWORD")
                       and key not in encoded]
        result.update(users=reports, key=key_action,
                      removed_users=sorted(k8s_secrets.decode(have.get(f"{i}_USERNAME")) or i for i in removed_ids))
        merge = k8s_secrets.labels_patch(existing, labels)
        if changed_keys:
            merge["data"] = {key: encoded.get(key) for key in changed_keys}  # None removes a key
        action = "created" if existing is None else ("updated" if merge else "unchanged")
        result["action"] = action
        result["changed"] = action != "unchanged"
        if module._diff:
            result["diff"] = k8s_secrets.diff(existing, namespace, name, labels, encoded, changed_keys, "login Secret")
        if result["changed"] and not module.check_mode:
            stage = f"writing Secret {namespace}/{name}"
            if existing is None:
                k8s_secrets.create(api, namespace, name, labels, encoded, timeout)
            else:
                k8s_secrets.patch(api, namespace, name, merge, timeout)
    except k8s_secrets.MissingNamespace:
        module.fail_json(msg=f"{stage}: namespace {namespace} does not exist", **result)
    except k8s_client.K8sError as exc:
        module.fail_json(msg=f"{stage}: {exc}", **result)
    except Exception as exc:  # ApiException (401, 403, ...), TLS errors
        module.fail_json(msg=f"{stage}: {k8s_client.error_message(exc)}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
