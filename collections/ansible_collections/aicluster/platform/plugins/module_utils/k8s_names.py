# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Kubernetes name syntax, in one place: label keys and values, DNS-1123 subdomains and labels
(Node names), taints.

The rules are those of k8s.io/apimachinery/pkg/util/validation (IsQualifiedName, IsValidLabelValue,
IsDNS1123Subdomain, IsDNS1123Label) and of a Node's taint (key[=value]:Effect). Every function
returns a list of problems, one sentence each; an empty list means valid. Pure functions: used by
the modules, the filters and the Rancher code alike.
"""

from __future__ import annotations

import re

NAME_MAX = 63  # name part of a qualified name, a label value, a DNS-1123 label
PREFIX_MAX = 253  # prefix of a qualified name, a DNS-1123 subdomain
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_RE = re.compile(r"^" + _DNS1123_LABEL + r"$")
DNS1123_SUBDOMAIN_RE = re.compile(r"^" + _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + r")*$")
QUALIFIED_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE_RE = QUALIFIED_NAME_RE


def validate_dns1123_subdomain(name, what="name"):
    """Problems of ``name`` as a DNS-1123 subdomain (Node names, label key prefixes)."""
    if not isinstance(name, str):
        return [f"{what} must be a string, got {type(name).__name__}"]
    errors = []
    if len(name) > PREFIX_MAX:
        errors.append(f"{what} must be no more than {PREFIX_MAX} characters (has {len(name)})")
    if not DNS1123_SUBDOMAIN_RE.match(name):
        errors.append(
            f"{what} {name!r} must be a DNS-1123 subdomain: lower-case alphanumerics, '-' and '.', "
            "starting and ending with an alphanumeric"
        )
    return errors


def validate_dns1123_label(name, what="name"):
    """Problems of ``name`` as a DNS-1123 label (one dot-free component, at most 63 characters)."""
    if not isinstance(name, str):
        return [f"{what} must be a string, got {type(name).__name__}"]
    errors = []
    if len(name) > NAME_MAX:
        errors.append(f"{what} must be no more than {NAME_MAX} characters (has {len(name)})")
    if not DNS1123_LABEL_RE.match(name):
        errors.append(
            f"{what} {name!r} must be a DNS-1123 label: lower-case alphanumerics and '-', "
            "starting and ending with an alphanumeric"
        )
    return errors


def validate_node_name(name):
    """Problems of a Node name (``metadata.name``: a DNS-1123 subdomain)."""
    return validate_dns1123_subdomain(name, "Node name")


def validate_label_key(key):
    """Problems of a label (or annotation, or taint) key.

    Optional prefix, a DNS-1123 subdomain of at most 253 characters, followed by ``/``; a name of
    1-63 characters matching ``[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?``.
    """
    if not isinstance(key, str):
        return [f"key must be a string, got {type(key).__name__}"]
    if key == "":
        return ["key must not be empty"]
    parts = key.split("/")
    if len(parts) > 2:
        return ["key may contain at most one '/' (prefix/name)"]
    errors = []
    if len(parts) == 2:
        prefix, name = parts
        if prefix == "":
            errors.append("prefix part must not be empty")
        else:
            errors.extend(validate_dns1123_subdomain(prefix, "prefix part"))
    else:
        name = parts[0]
    if name == "":
        errors.append("name part must not be empty")
        return errors
    if len(name) > NAME_MAX:
        errors.append(f"name part must be no more than {NAME_MAX} characters (has {len(name)})")
    if not QUALIFIED_NAME_RE.match(name):
        errors.append(
            f"name part {name!r} must consist of alphanumerics, '-', '_' or '.', and must start and end "
            "with an alphanumeric"
        )
    return errors


def validate_label_value(value):
    """Problems of a label value: a string of at most 63 characters, empty or matching
    ``[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?``."""
    if not isinstance(value, str):
        return [f"value must be a string, got {type(value).__name__}"]
    if value == "":
        return []
    errors = []
    if len(value) > NAME_MAX:
        errors.append(f"value must be no more than {NAME_MAX} characters (has {len(value)})")
    if not LABEL_VALUE_RE.match(value):
        errors.append(
            f"value {value!r} must be empty or consist of alphanumerics, '-', '_' or '.', and must start "
            "and end with an alphanumeric"
        )
    return errors


def validate_labels(labels):
    """Problems of a whole label dict: ``[(key, message), ...]``."""
    if not isinstance(labels, dict):
        return [(None, f"labels must be a dict, got {type(labels).__name__}")]
    problems = []
    for key, value in labels.items():
        for message in validate_label_key(key):
            problems.append((key, message))
        for message in validate_label_value(value):
            problems.append((key, message))
    return problems


def parse_taint(taint):
    """``'key[=value]:Effect'`` -> ``(key, value, effect)`` (value '' when absent); None when the text
    does not have that shape (the parts themselves are checked by ``validate_taint``)."""
    if not isinstance(taint, str):
        return None
    head, sep, effect = taint.rpartition(":")
    if not sep or not head:
        return None
    key, value = head.partition("=")[::2]
    return key, value, effect


def validate_taint(taint):
    """Problems of a taint written ``key[=value]:NoSchedule|PreferNoSchedule|NoExecute``."""
    parsed = parse_taint(taint)
    if parsed is None:
        return ["a taint must be written key[=value]:Effect"]
    key, value, effect = parsed
    errors = []
    if effect not in TAINT_EFFECTS:
        errors.append(f"effect {effect!r} must be one of {', '.join(TAINT_EFFECTS)}")
    errors.extend(validate_label_key(key))
    errors.extend(validate_label_value(value))
    return errors
