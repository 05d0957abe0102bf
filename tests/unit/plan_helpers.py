"""What the tests of the plan modules (sglang_plan, kubeocean_plan) share: a standard setting with some
fields changed or dropped (:func:`merged`, :data:`DROP`) and the check that a problem was found
(:func:`assert_problem`)."""

from __future__ import annotations

import copy

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
