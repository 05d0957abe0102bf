"""Shared by the stage integration tests (test_gpu_stage, test_npu_stage): run a playbook of the
repository against the lab inventory with the json callback, read its results, run ad-hoc commands."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventory" / "lab"


def _env(json_output: bool = True) -> dict[str, str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="false",
               ANSIBLE_NOCOLOR="1")
    if json_output:
        env["ANSIBLE_STDOUT_CALLBACK"] = "json"
    else:  # ad-hoc output is parsed: no timing recap after it
        env["ANSIBLE_LOAD_CALLBACK_PLUGINS"] = "false"
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def playbook(path: str, extra: dict | None = None, *args: str, timeout: int = 1800) -> dict:
    """Run a playbook of the repository with the json callback; the parsed document plus _rc and _seconds."""
    started = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", str(INVENTORY), "-e", json.dumps(extra or {}),
                           *args, str(REPO / path)],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)
    try:
        start = 0 if proc.stdout.startswith("{") else proc.stdout.index("\n{\n") + 1
        out, _ = json.JSONDecoder().raw_decode(proc.stdout[start:])
    except ValueError:
        pytest.fail(f"no JSON from ansible-playbook {path} (rc {proc.returncode}): {proc.stdout[-2000:]} "
                    f"{proc.stderr[-2000:]}")
    out["_rc"] = proc.returncode
    out["_seconds"] = round(time.monotonic() - started, 1)
    return out


def failures(out: dict) -> list[str]:
    """The message of every failed task, and of each failed item of a failed loop."""
    found = []
    for result in (r for p in out["plays"] for task in p["tasks"] for r in task["hosts"].values()):
        if result.get("failed"):
            found.append(result.get("msg") or json.dumps(result)[:500])
            found += [item.get("msg") or json.dumps(item)[:500] for item in result.get("results") or []
                      if isinstance(item, dict) and item.get("failed")]
    return found


def changed_tasks(out: dict) -> list[str]:
    return [f"{host}: {task['task']['name']}"
            for p in out["plays"] for task in p["tasks"] for host, result in task["hosts"].items()
            if result.get("changed")]


def task_ran(out: dict, name: str) -> bool:
    """A task (or handler) of that name ran (not skipped) on some host."""
    return any(task["task"]["name"] == name and any(not r.get("skipped") for r in task["hosts"].values())
               for p in out["plays"] for task in p["tasks"])


def total_changed(out: dict, hosts=None) -> int:
    return sum(s["changed"] for h, s in out["stats"].items() if hosts is None or h in hosts)


def adhoc(host: str, module: str, args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ansible", "-i", str(INVENTORY), host, "-m", module, "-a", args], cwd=REPO,
                          env=_env(json_output=False), capture_output=True, text=True, timeout=120, check=False)


def shell(host: str, command: str) -> str:
    proc = adhoc(host, "ansible.builtin.command", command)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.split(">>", 1)[1].strip() if ">>" in proc.stdout else proc.stdout


def wait_for(check, timeout: float = 90.0, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def fleet_converged() -> bool:
    """Every machine of the lab fleet's inventory is a Ready Node of the worker cluster whose labels the label
    role reconciled (its ownership annotation): what an earlier test's bootstrap run leaves. A machine added,
    removed or re-joined since (another test) makes it False."""
    import yaml
    from kubernetes import client as k8s
    from labctl import clusters, fleet

    try:
        groups = yaml.safe_load(fleet.INVENTORY_PATH.read_text())["all"]["children"]["lab_fleet"]["children"]
    except (OSError, KeyError, TypeError):
        return False
    machines = {host for group in groups.values() for host in (group or {}).get("hosts") or {}}
    nodes = {n.metadata.name: n for n in k8s.CoreV1Api(clusters.api_client("worker")).list_node().items}
    for name in machines:
        node = nodes.get(name)
        if node is None or "aicluster.io/managed-labels" not in (node.metadata.annotations or {}):
            return False
        if not any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or []):
            return False
    return bool(machines)


def ensure_bootstrap() -> None:
    """Converge the bootstrap stages unless the fleet already is (saves a minute per stage test in the suite;
    a test run alone on a fresh lab still converges)."""
    if fleet_converged():
        return
    bootstrap = playbook("playbooks/bootstrap.yml")
    assert bootstrap["_rc"] == 0, failures(bootstrap)


def install_stage_twice(stage: str, absent: dict) -> dict:
    """The stage fixtures' common path: the bootstrap stages converged (whatever state earlier tests left;
    the device stages are not needed by each other), remove the stage (``playbooks/<stage>.yml`` with
    ``absent``), then run it alone twice from there, timed: a first install and a converged re-run.
    Prints the figures as JSON; returns both runs and the figures."""
    ensure_bootstrap()
    removed = playbook(f"playbooks/{stage}.yml", absent)
    assert removed["_rc"] == 0, failures(removed)
    first = playbook("site.yml", None, "--tags", stage)
    second = playbook("site.yml", None, "--tags", stage)
    figures = {f"{stage}_stage_first_run_s": first["_seconds"], f"{stage}_stage_rerun_s": second["_seconds"],
               "hosts": len(first["stats"])}
    print(json.dumps(figures))
    return {"first": first, "second": second, "figures": figures}


def assert_refused(out: dict, message: str, host: str) -> None:
    """Bad input: the run failed, some failure says ``message``, and ``host`` reports nothing changed."""
    msgs = failures(out)
    assert out["_rc"] != 0, "the stage accepted bad input"
    assert any(message in m for m in msgs), f"expected {message!r} in {msgs}"
    assert out["stats"][host]["changed"] == 0, changed_tasks(out)
