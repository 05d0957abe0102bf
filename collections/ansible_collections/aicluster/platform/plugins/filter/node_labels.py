# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Filters that compute the labels this project wants on Nodes, on the control host (documented in
desired_labels.yml, node_label_entries.yml and node_label_play_overrides.yml next to this file).

* ``desired_labels``: thin wrapper over ``module_utils.node_labels.desired_labels`` for one host.
* ``node_label_entries``: every host of a play in one pass, read from ``hostvars``, validated
  as a whole; returns the ``nodes`` list of the ``node_labels`` module.  Any problem on any host
  raises one error that lists every host and variable at fault, so that the module (and so the
  cluster) is never reached with partly bad input.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleError, AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import BOOLEANS_FALSE, BOOLEANS_TRUE
from ansible_collections.aicluster.platform.plugins.module_utils import k8s_names
from ansible_collections.aicluster.platform.plugins.module_utils import node_labels as logic
from ansible_collections.aicluster.platform.plugins.module_utils.plain_data import plain

# Per-host variables, read from each host's hostvars: variable suffix -> (desired_labels keyword,
# kind, built-in default).  ``node_labels_<suffix>``.
HOST_VARIABLES = {
    "schemes": ("schemes", "schemes", list(logic.SCHEMES)),
    "roles": ("roles", "roles", list(logic.CUBE_ROLES)),
    "org": ("org", "label_value_or_none", logic.CUBE_DEFAULT_ORG),
    "share": ("share", "bool", False),
    "cpu": ("cpu", "bool", True),
    "gpu": ("gpu", "bool_or_none", None),
    "gpu_type": ("gpu_type", "label_value_or_none", None),
    "vgpu": ("vgpu", "bool", False),
    "rdma": ("rdma", "bool", False),
    "controller": ("controller", "bool", False),
    "controller_components": ("controller_components", "label_keys", list(logic.CUBE_CONTROLLER_COMPONENTS)),
    "mindcluster_worker": ("mindcluster_worker", "bool_or_none", None),
    "mindcluster_master": ("mindcluster_master", "bool", False),
    "accelerator_type": ("accelerator_type", "label_value_or_none", None),
    "server_usage": ("server_usage", "label_value_or_none", None),
    "kubeocean_worker": ("kubeocean_worker", "bool", False),
    "extra": ("extra", "labels", {}),
    "remove": ("remove", "label_keys", []),
}
# Not passed to desired_labels.
NODE_NAME_VAR = "node_labels_node_name"
FACTS_VAR = "node_labels_accelerator"
PREFIX = "node_labels_"

_UNSET = object()


def host_variable_names():
    """Every per-host variable the filters read (for documentation and play-level detection)."""
    return [NODE_NAME_VAR, FACTS_VAR, *(PREFIX + suffix for suffix in HOST_VARIABLES)]


# ---------------------------------------------------------------------------------------------
# desired_labels
# ---------------------------------------------------------------------------------------------

def desired_labels(facts, **kwargs):
    """``{{ ansible_facts.accelerator | aicluster.platform.desired_labels(roles=['train']) }}``."""
    if facts is not None and not isinstance(facts, Mapping):
        raise AnsibleFilterError(f"desired_labels expects the accelerator fact (a dict), got {type(facts).__name__}")
    try:
        return logic.desired_labels(dict(facts or {}), **kwargs)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"desired_labels: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# node_label_entries
# ---------------------------------------------------------------------------------------------

def _to_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {str(v).lower() for v in BOOLEANS_TRUE if isinstance(v, str)}:
        return True
    if isinstance(value, str) and value.lower() in {str(v).lower() for v in BOOLEANS_FALSE if isinstance(v, str)}:
        return False
    raise ValueError(f"must be a boolean (true/false), got {value!r}")


def _to_str_list(value, what):
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"must be a list of {what}, got {type(value).__name__} {value!r}")
    bad = [item for item in value if not isinstance(item, str)]
    if bad:
        raise ValueError(f"must be a list of {what}, has non-strings {bad!r}")
    return list(value)


def _convert(kind, value):
    """Convert and check one per-host value; raises ValueError with the reason."""
    if kind == "bool":
        return _to_bool(value)
    if kind == "bool_or_none":
        return None if value is None or value == "" else _to_bool(value)
    if kind == "schemes":
        schemes = _to_str_list(value, "label schemes")
        unknown = [item for item in schemes if item not in logic.SCHEMES]
        if unknown:
            raise ValueError(f"unknown label scheme(s) {unknown}; expected a subset of {list(logic.SCHEMES)}")
        return schemes
    if kind == "roles":
        roles = _to_str_list(value, "cube-studio roles")
        unknown = [item for item in roles if item not in logic.CUBE_ROLES]
        if unknown:
            raise ValueError(f"unknown cube-studio role(s) {unknown}; expected a subset of {list(logic.CUBE_ROLES)}")
        return roles
    if kind == "label_value_or_none":
        if value is None or value == "":
            return None
        value = logic.coerce_label_value(value)
        errors = k8s_names.validate_label_value(value)
        if errors:
            raise ValueError("; ".join(errors))
        return value
    if kind == "label_keys":
        keys = _to_str_list(value, "label keys")
        errors = [f"{key!r}: {message}" for key in keys for message in k8s_names.validate_label_key(key)]
        if errors:
            raise ValueError("; ".join(errors))
        return keys
    if kind == "labels":
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(f"must be a dict of label key: value, got {type(value).__name__} {value!r}")
        labels = {key: logic.coerce_label_value(item) for key, item in value.items()}
        errors = [f"label {key!r}: {message}" for key, message in k8s_names.validate_labels(labels)]
        if errors:
            raise ValueError("; ".join(errors))
        return labels
    raise AssertionError(kind)  # pragma: no cover


def _host_value(host_vars, name):
    """The templated value of ``name`` in one host's variables (``hostvars[host]``, fetched once
    per host: each ``hostvars[host]`` computes that host's variables anew), or _UNSET.  A value
    that cannot be templated raises ValueError naming the problem."""
    try:
        if name not in host_vars:
            return _UNSET
        return plain(host_vars[name])
    except AnsibleError as exc:
        raise ValueError(f"cannot be templated: {exc}") from exc


def _host_facts(host_vars):
    facts = _host_value(host_vars, FACTS_VAR)
    if facts is not _UNSET:
        return facts, FACTS_VAR
    ansible_facts = _host_value(host_vars, "ansible_facts")
    if isinstance(ansible_facts, Mapping) and "accelerator" in ansible_facts:
        return ansible_facts["accelerator"], "ansible_facts.accelerator"
    return _UNSET, FACTS_VAR


def node_label_entries(hosts, hostvars, overrides=None, defaults=None):
    """``nodes`` list for the ``node_labels`` module: ``[{name, host, labels}, ...]``.

    * ``hosts``: inventory host names (e.g. ``ansible_play_hosts``).
    * ``hostvars``: Ansible's ``hostvars``; each host's ``node_labels_*`` variables are read from it
      (inventory group_vars/host_vars, set_fact, extra vars), falling back to ``defaults`` and then
      to the built-in defaults (``HOST_VARIABLES``).
    * ``overrides``: ``node_labels_*`` values that apply to every host and win over hostvars (the
      role passes the values set at play level: play vars, role params, include_role vars).
    * the accelerator facts come from ``node_labels_accelerator`` if set, else
      ``ansible_facts.accelerator`` (the ``accelerator_facts`` role).

    Raises AnsibleFilterError listing every ``host <name>: <variable>: <reason>`` found.
    """
    if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError(f"node_label_entries expects a list of inventory host names, got {hosts!r}")
    overrides = plain(dict(overrides or {}))
    defaults = plain(dict(defaults or {}))
    problems = []
    known = set(host_variable_names())
    for source, values in (("overrides", overrides), ("defaults", defaults)):
        for name in sorted(set(values) - known):
            problems.append(f"{source}: unknown variable {name}; expected one of {sorted(known)}")

    entries = []
    owners = {}
    for host in hosts:
        if host not in hostvars:
            problems.append(f"host {host}: not in the inventory")
            continue
        host_vars = hostvars[host]

        def lookup(name, fallback, host_vars=host_vars):
            if name in overrides:
                return overrides[name], "play-level"
            value = _host_value(host_vars, name)
            if value is not _UNSET:
                return value, "hostvars"
            if name in defaults:
                return defaults[name], "defaults"
            return fallback, "built-in default"

        kwargs = {}
        host_problems = []
        for suffix, (keyword, kind, fallback) in HOST_VARIABLES.items():
            name = PREFIX + suffix
            try:
                value, _source = lookup(name, fallback)
                kwargs[keyword] = _convert(kind, value)
            except ValueError as exc:
                host_problems.append(f"host {host}: {name}: {exc}")

        try:
            node_name, _source = lookup(NODE_NAME_VAR, host)
            errors = k8s_names.validate_node_name(node_name)
            if errors:
                raise ValueError("; ".join(errors))
        except ValueError as exc:
            host_problems.append(f"host {host}: {NODE_NAME_VAR}: {exc}")
            node_name = None

        try:
            if FACTS_VAR in overrides:
                facts, facts_name = overrides[FACTS_VAR], FACTS_VAR
            else:
                facts, facts_name = _host_facts(host_vars)
            if facts is _UNSET:
                raise ValueError("no accelerator facts: run the accelerator_facts role on the host first "
                                 f"(or set {FACTS_VAR})")
            if not isinstance(facts, Mapping) or "present" not in facts:
                raise ValueError(f"{facts_name} must be the accelerator fact (a dict with 'present'), got {facts!r}")
            facts_ansible = _host_value(host_vars, "ansible_facts")
            if isinstance(facts_ansible, Mapping) and facts_ansible.get("product_name"):
                kwargs["product_name"] = str(facts_ansible["product_name"])
        except ValueError as exc:
            host_problems.append(f"host {host}: {FACTS_VAR}: {exc}")
            facts = None

        if node_name is not None:
            if node_name in owners:
                host_problems.append(
                    f"host {host}: {NODE_NAME_VAR}: Node {node_name!r} is already the Node of host {owners[node_name]}"
                )
            else:
                owners[node_name] = host

        if host_problems:
            problems.extend(host_problems)
            continue
        try:
            labels = logic.desired_labels(dict(facts), **kwargs)
        except ValueError as exc:  # pragma: no cover - inputs were checked above
            problems.append(f"host {host}: {exc}")
            continue
        for key, message in k8s_names.validate_labels(labels):
            problems.append(f"host {host}: label {key!r}: {message}")
        entries.append({"name": node_name, "host": host, "labels": labels})

    if problems:
        raise AnsibleFilterError(
            f"{len(problems)} problem(s) in the node label variables, nothing written: " + "; ".join(problems)
        )
    return entries


def play_level_overrides(context_values, hostvars, context_host):
    """The ``node_labels_*`` values that the running task sees but its own host's hostvars do not
    (or see differently): they come from play vars, role params or include_role vars, which Ansible
    applies to every host of the play, so they apply to every host here too.

    ``context_values``: ``{name: value}`` of the names visible to the task (undefined ones left out).
    """
    overrides = {}
    host_vars = hostvars[context_host] if context_host in hostvars else {}
    for name, value in (context_values or {}).items():
        if name not in host_variable_names():
            continue
        wanted = plain(value)
        if name not in host_vars or plain(host_vars[name]) != wanted:
            overrides[name] = wanted
    return overrides


class FilterModule:
    """aicluster.platform node label filters."""

    def filters(self):
        return {
            "desired_labels": desired_labels,
            "node_label_entries": node_label_entries,
            "node_label_play_overrides": play_level_overrides,
        }
