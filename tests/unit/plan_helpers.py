"""What the tests of the plan modules (sglang_plan, kubeocean_plan, vllm_serving_plan, workspace_plan,
resource_group_rebalance) share: a standard setting with some fields changed or dropped (:func:`merged`,
:data:`DROP`), the check that a problem was found (:func:`assert_problem`) and a role's variables as its defaults,
argument specs and README name them (:func:`role_variables`)."""

from __future__ import annotations

import copy
import re

import yaml

DROP = object()  # as a value in ``merged``'s changes: remove the key


def merged(base, changes):
    """``base`` with ``changes`` applied (a value of ``DROP`` removes the key)."""
    item = copy.deepcopy(base)
    for key, value in changes.items():
        if value is DROP:
            item.pop(key, None)
        else:
            item[key] = value
    return item


def assert_problem(found, expected):
    """``expected`` is one of ``found`` (exactly, or as the start of one when it ends with '...')."""
    if expected.endswith("..."):
        assert any(p.startswith(expected[:-3]) for p in found), found
    else:
        assert expected in found, found


def role_variables(role, prefix):
    """A role's variables three ways: ``(defaults, specs, documented)`` - its defaults/main.yml and the options of
    meta/argument_specs.yml (dicts), and the names its README's variable table lists (a set; a row
    ``| `<prefix>kubeconfig`, `_context` |`` names both)."""
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    readme = (role / "README.md").read_text()
    documented = set(re.findall(rf"^\| `({prefix}[a-z_]+)`", readme, re.MULTILINE))
    documented |= {f"{prefix}{m}" for m in re.findall(rf"`{prefix}kubeconfig`, `_([a-z]+)`", readme)}
    return defaults, specs, documented
