"""`lab fleet down` waits out containers podman cannot remove at once (stuck in "stopping": podman
4.3's `rm --force` gives up on them) instead of failing; it fails only after a bounded deadline,
naming them. Against a fake podman runner and a fake clock: nothing real runs."""

from __future__ import annotations

import json
import subprocess

import pytest
from labctl.fleet import runtime
from labctl.fleet.errors import FleetError


class FakePodman:
    """Containers by name -> state; ``stuck`` names stay in "stopping" for that many rm attempts
    (None: forever). Records every command."""

    def __init__(self, clock, containers: dict[str, str], stuck: dict[str, int | None] | None = None):
        self.clock = clock
        self.containers = dict(containers)
        self.stuck = dict(stuck or {})
        self.calls: list[list[str]] = []

    def __call__(self, args, *, check=True, input_bytes=None, timeout=None):
        args = list(args)
        self.calls.append(args)
        self.clock.now += 0.2  # every podman call takes a little time
        if args[0] == "ps":
            label = args[args.index("--filter") + 1].removeprefix("label=")
            assert label == f"{runtime.LABEL}=1"
            rows = [{"Names": [n], "State": s, "Labels": {runtime.LABEL: "1"}} for n, s in self.containers.items()]
            return subprocess.CompletedProcess(args, 0, json.dumps(rows), "")
        if args[0] == "rm":
            assert "--force" in args and "--ignore" in args
            names = [a for a in args[1:] if not a.startswith("--") and a != "0"]
            errors = []
            for name in names:
                if name not in self.containers:
                    continue
                left = self.stuck.get(name, 0)
                if left is None or left > 0:
                    self.containers[name] = "stopping"
                    if left is not None:
                        self.stuck[name] = left - 1
                    errors.append(f"Error: cannot remove container {name} as it is stopping: container state improper")
                else:
                    del self.containers[name]
            rc = 2 if errors else 0
            if check and rc:
                raise FleetError(errors[-1])
            return subprocess.CompletedProcess(args, rc, "", "\n".join(errors))
        raise AssertionError(f"unexpected podman call {args}")


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def _names(n: int) -> list[str]:
    return [f"{runtime.PREFIX}m{i:02d}" for i in range(n)]


def test_all_removed_at_once_is_one_rm_and_no_wait():
    clock = FakeClock()
    podman = FakePodman(clock, {n: "running" for n in _names(6)})
    runtime.remove_containers(_names(6), timeout=60, log=lambda m: None, run=podman, sleep=clock.sleep, clock=clock)
    assert podman.containers == {}
    assert [c[0] for c in podman.calls] == ["rm", "ps"]
    assert clock.sleeps == []


def test_stopping_containers_are_retried_until_gone():
    clock = FakeClock()
    names = _names(30)
    podman = FakePodman(clock, {n: "running" for n in names}, stuck={names[3]: 4, names[17]: 2})
    messages = []
    runtime.remove_containers(names, timeout=120, log=messages.append, run=podman, sleep=clock.sleep, clock=clock)
    assert podman.containers == {}
    rms = [c for c in podman.calls if c[0] == "rm"]
    assert len(rms) == 5
    assert set(rms[1][5:]) == {names[3], names[17]}  # later attempts only name what is left
    assert len(messages) == 1 and "2 container(s)" in messages[0] and "stopping" in messages[0]
    assert clock.sleeps == sorted(clock.sleeps)  # backs off
    assert max(clock.sleeps) <= 5


def test_still_stuck_after_the_deadline_fails_naming_them():
    clock = FakeClock()
    names = _names(4)
    podman = FakePodman(clock, {n: "running" for n in names}, stuck={names[1]: None, names[2]: None})
    start = clock.now
    with pytest.raises(FleetError) as err:
        runtime.remove_containers(names, timeout=30, log=lambda m: None, run=podman, sleep=clock.sleep, clock=clock)
    message = str(err.value)
    assert "\n" not in message
    assert f"{names[1]} (stopping)" in message and f"{names[2]} (stopping)" in message
    assert names[0] not in message and names[3] not in message
    assert "after 30s" in message and "container state improper" in message
    assert 30 <= clock.now - start < 40  # it waited the deadline out, not more
    assert names[0] not in podman.containers and names[3] not in podman.containers


def test_containers_that_vanish_meanwhile_are_fine():
    clock = FakeClock()
    podman = FakePodman(clock, {"aicluster-lab-a": "exited"})
    runtime.remove_containers(["aicluster-lab-a", "aicluster-lab-gone"], timeout=10, log=lambda m: None,
                              run=podman, sleep=clock.sleep, clock=clock)
    assert podman.containers == {}


def test_podman_timing_out_counts_as_a_failed_attempt():
    clock = FakeClock()
    podman = FakePodman(clock, {"aicluster-lab-a": "running"})
    real = podman.__call__
    attempts = {"n": 0}

    def flaky(args, **kw):
        if args[0] == "rm" and attempts["n"] == 0:
            attempts["n"] += 1
            clock.now += 5
            raise FleetError("podman rm timed out after 60s")
        return real(args, **kw)

    runtime.remove_containers(["aicluster-lab-a"], timeout=60, log=lambda m: None, run=flaky, sleep=clock.sleep,
                              clock=clock)
    assert podman.containers == {}
