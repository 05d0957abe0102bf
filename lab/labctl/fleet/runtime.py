"""Fleet lifecycle: podman systemd containers on the ``aicluster-lab`` network.

Every machine is a container named ``aicluster-lab-<name>`` (hostname ``<name>``) booted with
``/sbin/init`` from the lab image, at a static address on 10.77.0.0/24 (host = 10.77.0.1).
State (profile, machines, addresses) is kept in ``STATE_DIR/fleet/fleet.json``; per-machine
fixture files in ``STATE_DIR/fleet/<name>/``; the lab SSH key in ``STATE_DIR/ssh/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from .. import paths
from ..waiting import WaitTimeout, wait_for
from . import accel, image, inventory, podman
from .errors import FleetError
from .models import Machine, load_profile, make_machine

NETWORK = "aicluster-lab"
SUBNET = ipaddress.ip_network("10.77.0.0/24")
GATEWAY = "10.77.0.1"          # the host; lab services (Rancher stand-in, Redis) listen here
FIRST_HOST = 10                # machines get 10.77.0.10, .11, ...; .2-.9 stay free for services
LABEL = "aicluster-lab.fleet"
PREFIX = "aicluster-lab-"
FLEET_DIR = paths.STATE_DIR / "fleet"
STATE_FILE = FLEET_DIR / "fleet.json"
SSH_DIR = paths.STATE_DIR / "ssh"
KEY_PATH = SSH_DIR / "id_ed25519"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The Rancher stand-in's agent side: a `docker` shim that runs `docker run rancher/rancher-agent`
# (the RKE1 join) as a systemd unit, on machines that have no Docker engine.
DOCKER_SHIM = Path(__file__).resolve().parent.parent / "rancher" / "fixtures" / "docker"
START_WORKERS = int(os.environ.get("LAB_FLEET_START_WORKERS", "4"))
READY_WORKERS = 16
READY_TIMEOUT = float(os.environ.get("LAB_FLEET_READY_TIMEOUT", "240"))
# How long `fleet down` keeps removing containers that podman could not remove at once (podman
# 4.3's `rm --force` gives up on a container in "stopping", which ends a little later on its own).
DOWN_TIMEOUT = float(os.environ.get("LAB_FLEET_DOWN_TIMEOUT", "180"))

Log = Callable[[str], None]


def _default_log(msg: str) -> None:
    print(f"lab fleet: {msg}", file=sys.stderr, flush=True)


def container_name(name: str) -> str:
    return PREFIX + name


# ---------------------------------------------------------------- state, lock, key, network

@contextlib.contextmanager
def _locked() -> Iterator[None]:
    paths.private_dir(FLEET_DIR)
    with open(FLEET_DIR / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def load_state() -> dict:
    try:
        return json.loads(STATE_FILE.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise FleetError(f"{STATE_FILE} is corrupt ({exc}); run `lab fleet down`") from exc


def _save_state(profile: str, machines: list[Machine], image_ref: str) -> None:
    paths.private_dir(FLEET_DIR)
    tmp = STATE_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps({"profile": profile, "image": image_ref, "network": NETWORK,
                               "machines": [m.to_dict() for m in machines]}, indent=2))
    os.replace(tmp, STATE_FILE)


def ensure_ssh_key() -> Path:
    """The lab's ed25519 key (0600) and the authorized_keys file mounted into every machine."""
    paths.private_dir(SSH_DIR)
    if not KEY_PATH.exists():
        proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "aicluster-lab",
                               "-f", str(KEY_PATH)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise FleetError(f"ssh-keygen failed: {proc.stderr.strip()}")
    KEY_PATH.chmod(0o600)
    auth = SSH_DIR / "authorized_keys"
    pub = KEY_PATH.with_suffix(".pub").read_text()
    if not auth.exists() or auth.read_text() != pub:
        auth.write_text(pub)
    auth.chmod(0o600)
    return KEY_PATH


# systemd in every machine holds several inotify instances; all machines run as host root and
# share root's per-user limits (default max_user_instances=128 stops the fleet at ~20 machines).
HOST_SYSCTLS = {"fs/inotify/max_user_instances": 8192, "fs/inotify/max_user_watches": 524288}


def ensure_host_limits(proc_sys: Path = Path("/proc/sys")) -> None:
    """Raise the host's inotify limits for many systemd containers (like kind/k3d need)."""
    for key, want in HOST_SYSCTLS.items():
        path = proc_sys / key
        try:
            have = int(path.read_text())
        except OSError:
            continue
        if have >= want:
            continue
        try:
            path.write_text(str(want))
        except OSError as exc:
            raise FleetError(f"sysctl {key.replace('/', '.')}={have} is too low for the fleet and cannot be "
                             f"raised ({exc.strerror}); run: sysctl -w {key.replace('/', '.')}={want}") from None


def ensure_network() -> None:
    if podman.ok(["network", "exists", NETWORK]):
        info = json.loads(podman.run(["network", "inspect", NETWORK]).stdout)[0]
        subnets = [s.get("subnet") for s in info.get("subnets", [])]
        if str(SUBNET) not in subnets:
            raise FleetError(f"podman network {NETWORK} exists with subnets {subnets}, expected {SUBNET}; "
                             f"remove it with `podman network rm {NETWORK}`")
        return
    podman.run(["network", "create", "--driver", "bridge", "--subnet", str(SUBNET), "--gateway", GATEWAY,
                "--label", f"{LABEL}=1", NETWORK])


def _assign_addresses(machines: list[Machine]) -> None:
    used = {m.address for m in machines if m.address}
    hosts = [str(h) for h in SUBNET.hosts()][FIRST_HOST - 1:]
    free = (h for h in hosts if h not in used)
    for m in machines:
        if not m.address:
            try:
                m.address = next(free)
            except StopIteration:
                raise FleetError(f"no free address left in {SUBNET} for {m.name}") from None


def _containers() -> dict[str, dict]:
    """Fleet containers by machine name (from their labels)."""
    out = {}
    for c in podman.ps(f"{LABEL}=1"):
        labels = c.get("Labels") or {}
        name = labels.get("aicluster-lab.machine") or c["Names"][0].removeprefix(PREFIX)
        out[name] = c
    return out


# ---------------------------------------------------------------- one machine

def machine_dir(name: str) -> Path:
    return FLEET_DIR / name


def run_args(m: Machine, image_ref: str, auth_keys: Path, mdir: Path) -> list[str]:
    """The ``podman run`` arguments of one machine (kept pure for the unit tests)."""
    args = [
        "run", "-d", "--name", container_name(m.name), "--hostname", m.name,
        "--network", NETWORK, "--ip", m.address, "--network-alias", m.name,
        "--runtime", podman.RUNTIME, "--systemd", "always",
        "--device", "/dev/fuse", "--cap-add", "SYS_ADMIN", "--cap-add", "NET_RAW",
        "--label", f"{LABEL}=1", "--label", f"aicluster-lab.machine={m.name}",
        "-v", f"{auth_keys}:/root/.ssh/authorized_keys:ro",
        "-v", f"{mdir / 'pci'}:/sys/bus/pci/devices:ro",
        "-v", f"{mdir / 'accelerators.json'}:/etc/lab-accelerators.json:ro",
        "-v", f"{mdir / 'machine.json'}:/etc/lab-machine.json:ro",
        "-v", f"{DOCKER_SHIM}:/usr/local/bin/docker:ro",
    ]
    for limit in podman.ULIMITS:
        args += ["--ulimit", limit]
    if m.vendor == "nvidia":
        args += ["-v", f"{FIXTURES / 'nvidia_smi.py'}:/usr/bin/nvidia-smi:ro"]
    elif m.vendor == "ascend":
        npu_smi = FIXTURES / "npu_smi.py"
        args += ["-v", f"{npu_smi}:/usr/local/sbin/npu-smi:ro",
                 "-v", f"{npu_smi}:/usr/local/bin/npu-smi:ro",
                 "-v", f"{mdir / 'version.info'}:/usr/local/Ascend/driver/version.info:ro"]
    for dev in accel.device_files(m):
        args += ["--device", f"/dev/null:{dev}"]
    return [*args, image_ref, "/sbin/init"]


def _create(m: Machine, image_ref: str) -> None:
    mdir = machine_dir(m.name)
    accel.write_machine_files(m, mdir)
    # The simulated size the Rancher stand-in's agent reports for the Node (cpu, memory).
    (mdir / "machine.json").write_text(json.dumps({"cpu": m.cpu, "memory_gb": m.memory_gb}) + "\n")
    for script in FIXTURES.glob("*_smi.py"):
        script.chmod(0o755)
    podman.run(run_args(m, image_ref, SSH_DIR / "authorized_keys", mdir))


def _ssh(m: Machine, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-i", str(KEY_PATH), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5",
         f"root@{m.address}", command], capture_output=True, text=True, timeout=timeout, check=False)


def _sshd_answers(address: str) -> bool:
    with socket.create_connection((address, 22), timeout=1) as s:
        s.settimeout(2)
        return s.recv(8).startswith(b"SSH-")


def wait_ready(m: Machine, timeout: float = READY_TIMEOUT) -> None:
    """Wait until sshd answers and systemd reports running/degraded (over SSH, like Ansible)."""
    deadline = time.monotonic() + timeout
    try:
        wait_for(lambda: _sshd_answers(m.address), timeout, f"sshd on {m.name} ({m.address})", interval=0.2)

        def booted() -> bool:
            left = max(5.0, deadline - time.monotonic())
            proc = _ssh(m, "systemctl is-system-running --wait", timeout=left)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                return True
            if proc.returncode == 255:  # ssh itself failed: retry until the deadline
                raise FleetError(proc.stderr.strip() or "ssh failed")
            raise FleetError(f"{m.name}: systemd state {state or proc.stderr.strip()!r}")

        wait_for(booted, max(1.0, deadline - time.monotonic()), f"systemd on {m.name}", interval=0.5)
    except WaitTimeout as exc:
        raise FleetError(f"machine {m.name} not ready: {exc}") from None


def _bring_up(todo: list[tuple[Machine, str]], image_ref: str, log: Log) -> None:
    """Create/start machines in parallel, then wait for each as soon as it is started."""
    if not todo:
        return
    errors: list[str] = []
    with ThreadPoolExecutor(START_WORKERS) as starters, ThreadPoolExecutor(READY_WORKERS) as waiters:
        started: dict[Future, Machine] = {}
        for m, action in todo:
            fn = (lambda m=m: _create(m, image_ref)) if action == "create" else \
                 (lambda m=m: podman.run(["start", container_name(m.name)]))
            started[starters.submit(fn)] = m
        ready: dict[Future, Machine] = {}
        pending = set(started)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                m = started[fut]
                if fut.exception():
                    errors.append(str(fut.exception()))
                else:
                    ready[waiters.submit(wait_ready, m)] = m
        for fut in ready:
            if fut.exception():
                errors.append(str(fut.exception()))
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise FleetError(errors[0] + more)
    log(f"{len(todo)} machine(s) ready")


# ---------------------------------------------------------------- public operations

def up(profile: str = "demo", log: Log | None = None) -> list[Machine]:
    log = log or _default_log
    with _locked():
        state = load_state()
        existing = _containers()
        if state.get("machines") and state.get("profile") != profile and existing:
            raise FleetError(f"the fleet is up with profile {state['profile']!r}; run `lab fleet down` first")
        wanted = load_profile(profile)
        known = {d["name"]: Machine.from_dict(d) for d in state.get("machines", [])} if existing else {}
        machines = [known.pop(m.name, m) for m in wanted] + list(known.values())  # keep `add`ed machines
        _assign_addresses(machines)
        image_ref = image.ensure_image(log)
        ensure_ssh_key()
        ensure_host_limits()
        ensure_network()
        todo = []
        for m in machines:
            c = existing.get(m.name)
            if c is None:
                todo.append((m, "create"))
            elif c.get("State") != "running":
                todo.append((m, "start"))
        if todo:
            log(f"starting {len(todo)} of {len(machines)} machine(s) ({profile}, image {image_ref})")
        _bring_up(todo, image_ref, log)
        _save_state(profile, machines, image_ref)
        path = inventory.write_inventory(machines, KEY_PATH)
        if todo:
            log(f"inventory: {path}")
        return machines


def add(name: str, model: str = "", count: int = 0, log: Log | None = None) -> Machine:
    log = log or _default_log
    with _locked():
        state = load_state()
        if not state.get("machines") or not _containers():
            raise FleetError("no fleet is up; run `lab fleet up` first")
        machines = [Machine.from_dict(d) for d in state["machines"]]
        if any(m.name == name for m in machines):
            raise FleetError(f"machine {name!r} already exists in the fleet")
        m = make_machine(name, model, count)
        machines.append(m)
        _assign_addresses(machines)
        image_ref = state.get("image") or image.ensure_image(log)
        if not podman.ok(["image", "exists", image_ref]):
            image_ref = image.ensure_image(log)
        ensure_ssh_key()
        ensure_host_limits()
        ensure_network()
        _bring_up([(m, "create")], image_ref, log)
        _save_state(state["profile"], machines, image_ref)
        inventory.write_inventory(machines, KEY_PATH)
        return m


def remove(name: str, log: Log | None = None) -> None:
    """Take one machine out of the running fleet (the counterpart of ``add``)."""
    log = log or _default_log
    with _locked():
        state = load_state()
        machines = [Machine.from_dict(d) for d in state.get("machines", [])]
        if not any(m.name == name for m in machines):
            raise FleetError(f"machine {name!r} is not in the fleet")
        remove_containers([container_name(name)], log=log)
        shutil.rmtree(machine_dir(name), ignore_errors=True)
        machines = [m for m in machines if m.name != name]
        _save_state(state["profile"], machines, state.get("image", ""))
        inventory.write_inventory(machines, KEY_PATH)
        log(f"removed machine {name}")


def _fleet_containers(run: Callable[..., subprocess.CompletedProcess[str]]) -> dict[str, str]:
    """Container name -> state of every fleet container, whatever its state."""
    out = run(["ps", "-a", "--filter", f"label={LABEL}=1", "--format", "json"]).stdout
    return {c["Names"][0]: str(c.get("State", "unknown")) for c in json.loads(out or "[]")}


def remove_containers(names: list[str], timeout: float = DOWN_TIMEOUT, log: Log | None = None,
                      run: Callable[..., subprocess.CompletedProcess[str]] | None = None,
                      sleep: Callable[[float], None] = time.sleep,
                      clock: Callable[[], float] = time.monotonic) -> None:
    """``podman rm --force`` the containers, and keep at those podman could not remove (stuck in
    "stopping", a busy storage lock) until they are gone or ``timeout`` seconds have passed; then
    fail naming them. ``run`` is :func:`podman.run` (a fake in the unit tests)."""
    run = run or podman.run
    log = log or _default_log
    deadline = clock() + timeout
    remaining = list(names)
    pause = 0.5
    last_error = ""
    told = False
    while True:
        try:
            proc = run(["rm", "--force", "--ignore", "--time", "0", *remaining], check=False,
                       timeout=max(60.0, deadline - clock()))
            if proc.returncode != 0:
                last_error = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        except FleetError as exc:  # podman itself timed out
            last_error = str(exc)
        present = _fleet_containers(run)
        remaining = [n for n in remaining if n in present]
        if not remaining:
            return
        if clock() >= deadline:
            states = ", ".join(f"{n} ({present[n]})" for n in remaining)
            raise FleetError(f"{len(remaining)} machine container(s) still there after {timeout:.0f}s: {states}; "
                             f"podman: {last_error or 'no error'}; retry `lab fleet down`")
        if not told:
            stuck = ", ".join(f"{n} ({present[n]})" for n in remaining[:5])
            log(f"waiting for {len(remaining)} container(s) podman could not remove yet: {stuck}"
                f"{' ...' if len(remaining) > 5 else ''} (up to {timeout:.0f}s)")
            told = True
        sleep(min(pause, max(0.0, deadline - clock())))
        pause = min(pause * 2, 5.0)


def down(log: Log | None = None, timeout: float = DOWN_TIMEOUT) -> None:
    log = log or _default_log
    with _locked():
        names = [c["Names"][0] for c in podman.ps(f"{LABEL}=1")]
        if names:
            remove_containers(names, timeout, log)
            log(f"removed {len(names)} machine(s)")
        if podman.ok(["network", "exists", NETWORK]):
            podman.run(["network", "rm", "--force", NETWORK])
        inventory.remove_inventory()
        STATE_FILE.unlink(missing_ok=True)
        for d in FLEET_DIR.iterdir() if FLEET_DIR.exists() else []:
            if d.is_dir():
                shutil.rmtree(d)


def status() -> list[dict]:
    state = load_state()
    containers = _containers() if shutil.which("podman") else {}
    rows = []
    for d in state.get("machines", []):
        m = Machine.from_dict(d)
        c = containers.pop(m.name, None)
        rows.append({"name": m.name, "address": m.address, "accelerators": m.describe_accelerators(),
                     "group": m.group, "state": c.get("State", "unknown") if c else "missing"})
    for name, c in sorted(containers.items()):  # containers the state file does not know
        rows.append({"name": name, "address": "", "accelerators": "?", "group": "?",
                     "state": f"{c.get('State', 'unknown')} (orphan)"})
    return rows
