"""Behaviour of /data/k8s on the lab fleet after the data_storage role (testinfra, ansible backend).

Run by `molecule verify` with ``--hosts=lab_fleet --connection=ansible --ansible-inventory=inventory/lab``:
every test runs once per machine; cross-machine checks open the other machines with the same inventory.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import testinfra
from testinfra.utils.ansible_runner import AnsibleRunner

REPO = Path(__file__).resolve().parents[5]
INVENTORY = REPO / "inventory" / "lab"
CONNECTION = json.loads((REPO / "lab" / "state" / "storage" / "connection.json").read_text())
DATA = "/data/k8s"
UNIT = "juicefs-data-k8s"
VOLUME = "aicluster-lab"
SUBDIRS = ["kubeflow/minio", "kubeflow/global", "kubeflow/pipeline/workspace", "kubeflow/pipeline/archives"]
SCRATCH = f"{DATA}/.molecule-verify"
MACHINES = AnsibleRunner(str(INVENTORY)).get_hosts("lab_fleet")


def other_host(name: str):
    """The next machine in the fleet (wrapping around), opened through the same inventory."""
    nxt = MACHINES[(MACHINES.index(name) + 1) % len(MACHINES)]
    return testinfra.get_host(f"ansible://{nxt}", ansible_inventory=str(INVENTORY))


def wait_for(check, timeout=20.0, interval=0.2):
    """Poll a condition until it holds or the deadline passes (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_data_path_is_the_juicefs_volume(host):
    mount = host.mount_point(DATA)
    assert mount.exists, f"{DATA} is not a mount point"
    assert mount.filesystem == "fuse.juicefs"
    assert mount.device == f"JuiceFS:{VOLUME}"


def test_mount_unit_enabled_and_running(host):
    unit = host.service(UNIT)
    assert unit.is_enabled
    assert unit.is_running


def test_secrets_stay_in_the_private_environment_file(host):
    password = Path(CONNECTION["password_path"]).read_text().strip()
    env = host.file(f"/etc/juicefs/{UNIT}.env")
    assert env.mode == 0o600 and env.user == "root"
    assert env.contains(f"META_PASSWORD={password}")
    assert not host.file(f"/etc/systemd/system/{UNIT}.service").contains(password)
    cmdlines = host.check_output("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' || true")
    assert password not in cmdlines


def test_platform_subdirectories_exist(host):
    for sub in SUBDIRS:
        assert host.file(f"{DATA}/{sub}").is_directory, sub


def test_file_written_here_is_read_on_another_machine(host):
    me = host.backend.get_hostname()
    content = f"{me} {uuid.uuid4()}"
    path = f"{SCRATCH}/{me}.txt"
    host.run_test("mkdir -p %s", SCRATCH)
    host.run_test("printf %s %s > %s", "%s", content, path)
    other = other_host(me)
    assert wait_for(lambda: other.run("cat %s", path).stdout == content), (
        f"{other.backend.get_hostname()} does not read what {me} wrote to {path}")


def test_restart_of_the_unit_remounts_and_keeps_data(host):
    me = host.backend.get_hostname()
    path = f"{SCRATCH}/{me}.txt"
    before = host.check_output("cat %s", path)
    host.run_test("systemctl restart %s", f"{UNIT}.service")
    # ExecStartPost makes `systemctl restart` return only once the mount answers.
    assert host.mount_point(DATA).filesystem == "fuse.juicefs"
    assert host.service(UNIT).is_running
    assert host.check_output("cat %s", path) == before


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    testinfra.get_host(f"ansible://{MACHINES[0]}", ansible_inventory=str(INVENTORY)).run("rm -rf %s", SCRATCH)
