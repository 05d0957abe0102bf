# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""How a plan module fails on the problems its plan found: one task failure that counts and lists them
all (``msg``) and hands them over as a list (``problems``); and what the plans' checks share: the error that
stops a plan, the integer test and the way a value is shown in a problem. Used by sglang_plan, kubeocean_plan,
vllm_serving_plan, ray_serve_plan, workspace_plan and resource_group_rebalance."""

from __future__ import annotations


class PlanError(ValueError):
    """Problems that stop a plan before any object is generated (``problems``: one sentence each)."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def is_int(value):
    """An int that is not a bool (YAML's ``true`` is no count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def show(value):
    """A value as a problem names it: strings, None and booleans quoted as Python writes them."""
    return repr(value) if isinstance(value, str) or value is None or isinstance(value, bool) else str(value)


def fail_with_problems(module, problems, settings):
    """Fail the task: ``N problem(s) in the <settings> settings: a; b``, ``problems`` and ``changed=False``."""
    count = len(problems)
    module.fail_json(msg=f"{count} problem{'s' if count > 1 else ''} in the {settings} settings: "
                         + "; ".join(problems), problems=problems, changed=False)
