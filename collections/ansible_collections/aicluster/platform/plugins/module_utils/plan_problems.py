# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""How a plan module fails on the problems its plan found: one task failure that counts and lists them
all (``msg``) and hands them over as a list (``problems``). Used by sglang_plan and kubeocean_plan."""

from __future__ import annotations


def fail_with_problems(module, problems, settings):
    """Fail the task: ``N problem(s) in the <settings> settings: a; b``, ``problems`` and ``changed=False``."""
    count = len(problems)
    module.fail_json(msg=f"{count} problem{'s' if count > 1 else ''} in the {settings} settings: "
                         + "; ".join(problems), problems=problems, changed=False)
