# Copyright: AI cluster platform maintainers
# Apache License 2.0
"""Bench tool (not product): count, per host, what a playbook run executes on the machines.

    ANSIBLE_CALLBACK_PLUGINS=lab/bench/callback_plugins ANSIBLE_CALLBACKS_ENABLED=remote_exec_count \\
    REMOTE_EXEC_COUNT_FILE=/tmp/count.json ansible-playbook site.yml -i inventory/lab

Two counts per host, written as JSON when the run ends:

* ``tasks``: task (or loop item) results that ran a module on the machine - not skipped, not
  delegated to the control host, not controller-only actions (set_fact, assert, debug, include_*, ...).
* ``modules``: every module the action plugins actually shipped to the machine, counted where it
  happens (``ActionBase._execute_module`` in the worker processes, patched when this callback
  loads): a ``template`` or ``copy`` task that changes nothing still runs ``stat`` (and ``file``)
  remotely, so ``modules`` >= ``tasks``. Executions over a ``local`` connection count as controller.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import time

from ansible.plugins.action import ActionBase
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: remote_exec_count
type: aggregate
short_description: Count remote module executions per host (bench tool)
description:
  - Counts per host the task results that ran a module on the machine, and every module shipped to it.
  - Writes JSON to the file named by E(REMOTE_EXEC_COUNT_FILE) at the end of the run.
requirements:
  - enable in configuration (ANSIBLE_CALLBACKS_ENABLED=remote_exec_count)
options:
  output:
    description: Where to write the JSON report.
    type: path
    default: remote_exec_count.json
    env:
      - name: REMOTE_EXEC_COUNT_FILE
"""

# Actions that run entirely on the control host (no module reaches the machine).
CONTROLLER_ONLY = {
    "add_host", "assert", "debug", "fail", "group_by", "import_playbook", "import_role", "import_tasks",
    "include", "include_role", "include_tasks", "include_vars", "meta", "pause", "set_fact", "set_stats",
    "validate_argument_spec",
}
LOCAL_NAMES = {"localhost", "127.0.0.1", "::1"}
_SPOOL_ENV = "REMOTE_EXEC_COUNT_SPOOL"
_original_execute_module = ActionBase._execute_module


def _short(action):
    action = action or ""
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if action.startswith(prefix):
            return action[len(prefix):]
    return action


def _counting_execute_module(self, *args, **kwargs):
    """Record one module shipped by an action plugin (runs in the forked worker), then run it."""
    spool = os.environ.get(_SPOOL_ENV)
    if spool:
        with contextlib.suppress(Exception):
            module_name = kwargs.get("module_name") or (args[0] if args else None) or self._task.action
            task_vars = kwargs.get("task_vars") or (args[3] if len(args) > 3 else None) or {}
            line = json.dumps({
                "host": task_vars.get("inventory_hostname") or getattr(self._play_context, "remote_addr", "?"),
                "module": _short(str(module_name)),
                "transport": getattr(self._connection, "transport", None) or "?",
                "task": self._task.get_name(),
            }) + "\n"
            # One O_APPEND write per line: lines from concurrent workers do not interleave.
            fd = os.open(spool, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
    return _original_execute_module(self, *args, **kwargs)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "remote_exec_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tasks = collections.defaultdict(collections.Counter)
        self.controller_tasks = collections.Counter()
        self.started = None
        self.output = None

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self.output = os.path.abspath(self.get_option("output"))
        # Workers are forked from this process after the callbacks load: they inherit the patch and
        # the spool's name.
        os.environ[_SPOOL_ENV] = self.output + ".modules.jsonl"
        ActionBase._execute_module = _counting_execute_module

    # ---------------------------------------------------------------- task results
    def _on_controller(self, result):
        action = _short(result.task.resolved_action or result.task.action)
        if action in CONTROLLER_ONLY:
            return True
        delegated = result._result.get("_ansible_delegated_vars") or {}
        if delegated:
            return (delegated.get("ansible_connection") == "local"
                    or str(delegated.get("ansible_delegated_host")) in LOCAL_NAMES
                    or str(delegated.get("ansible_host")) in LOCAL_NAMES)
        return result.host.vars.get("ansible_connection") == "local"

    def _count(self, result):
        name = result.task.get_name()
        if self._on_controller(result):
            self.controller_tasks[name] += 1
        else:
            self.tasks[result.host.get_name()][name] += 1

    def _has_items(self, result):
        return isinstance(result._result.get("results"), list)

    def v2_runner_on_ok(self, result):
        if not self._has_items(result):  # loop items were counted one by one
            self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not self._has_items(result):
            self._count(result)

    def v2_runner_item_on_ok(self, result):
        self._count(result)

    def v2_runner_item_on_failed(self, result):
        self._count(result)

    # ---------------------------------------------------------------- run
    def v2_playbook_on_start(self, playbook):
        self.started = time.monotonic()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.environ[_SPOOL_ENV])

    def v2_playbook_on_stats(self, stats):
        modules = collections.defaultdict(collections.Counter)
        controller_modules = collections.Counter()
        spool = os.environ.get(_SPOOL_ENV)
        with contextlib.suppress(FileNotFoundError), open(spool) as fh:
            for line in fh:
                rec = json.loads(line)
                if rec["transport"] == "local":
                    controller_modules[rec["module"]] += 1
                else:
                    modules[rec["host"]][rec["module"]] += 1
        hosts = sorted(set(self.tasks) | set(modules) | set(stats.processed))
        report = {
            "seconds": round(time.monotonic() - self.started, 1) if self.started else None,
            "per_host": {
                h: {"tasks": sum(self.tasks[h].values()), "modules": sum(modules[h].values()),
                    "by_task": dict(self.tasks[h]), "by_module": dict(modules[h]),
                    "changed": stats.summarize(h)["changed"]}
                for h in hosts
            },
            "controller": {"tasks": sum(self.controller_tasks.values()),
                           "modules": sum(controller_modules.values()),
                           "by_module": dict(controller_modules)},
        }
        with open(self.output, "w") as fh:
            json.dump(report, fh, indent=2, sort_keys=True)
            fh.write("\n")
