"""data_storage bad input against the lab fleet: each case fails with a clear message and changes nothing.

Runs ansible-playbook (json callback) on one lab machine with the lab inventory's storage inputs
and one setting broken through extra vars. Needs `lab up` (fleet + storage) and the role
converged once (`molecule converge`, or any site run), because some cases check that a
mounted /data/k8s and the installed client are left alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventory" / "lab"
HOST = "gpu-a100-1"
PLAY = """\
- name: data_storage with bad input
  hosts: lab_fleet
  gather_facts: false
  roles:
    - role: data_storage
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_FORCE_COLOR="false", ANSIBLE_NOCOLOR="1")
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def play(tmp_path: Path, extra: dict, *args: str, limit: str = HOST) -> dict:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    proc = subprocess.run(
        ["ansible-playbook", "-i", str(INVENTORY), "--limit", limit, "-e", json.dumps(extra), *args, str(playbook)],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600, check=False)
    try:
        # the json callback's document starts on a line of its own; profile_tasks may print after it
        start = 0 if proc.stdout.startswith("{") else proc.stdout.index("\n{\n") + 1
        out, _ = json.JSONDecoder().raw_decode(proc.stdout[start:])
    except ValueError:
        pytest.fail(f"no JSON from ansible-playbook (rc {proc.returncode}): {proc.stdout[-2000:]} "
                    f"{proc.stderr[-2000:]}")
    out["_rc"] = proc.returncode
    return out


def failures(out: dict) -> list[str]:
    msgs = []
    for p in out["plays"]:
        for task in p["tasks"]:
            for result in task["hosts"].values():
                if result.get("failed"):
                    msgs.append(result.get("msg") or json.dumps(result)[:500])
    return msgs


def adhoc(module: str, args: str, host: str = HOST) -> subprocess.CompletedProcess:
    env = _env()
    env.pop("ANSIBLE_STDOUT_CALLBACK")
    return subprocess.run(["ansible", "-i", str(INVENTORY), host, "-m", module, "-a", args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def assert_refused(out: dict, message: str) -> None:
    msgs = failures(out)
    assert out["_rc"] != 0, "the role accepted bad input"
    assert any(message in m for m in msgs), f"expected {message!r} in {msgs}"
    assert out["stats"][HOST]["changed"] == 0, "the role changed something before refusing"


# (case, extra vars, expected message): no setup needed on the machine.
CASES = [
    ("unknown storage mode", {"data_storage_mode": "nfs"},
     "value of data_storage_mode must be one of: juicefs, bind, local, got: nfs"),
    ("missing metadata URL", {"data_storage_juicefs_meta_url": ""},
     "data_storage_juicefs_meta_url must be the metadata engine URL (e.g. redis://10.0.0.5:6379/1) without a "
     "password (put it in data_storage_juicefs_meta_password); it is empty"),
    ("password inside the metadata URL", {"data_storage_juicefs_meta_url": "redis://:hunter2@10.77.0.1:6380/1"},
     "it is not a URL without a password"),
    ("checksum missing", {"data_storage_juicefs_checksum": ""},
     "data_storage_juicefs_checksum to 'sha256:<64 hex digits>'"),
    ("both a URL and a control-host file", {"data_storage_juicefs_src": "/tmp/juicefs"},
     "set exactly one of data_storage_juicefs_url and data_storage_juicefs_src"),
    ("invalid volume name", {"data_storage_juicefs_volume_name": "Bad_Name"},
     "data_storage_juicefs_volume_name must be 3-63 characters of a-z, 0-9 and '-' (got \"Bad_Name\")"),
    ("relative data path", {"data_storage_path": "data/k8s"},
     "data_storage_path must be an absolute path below /"),
    ("relative bind source", {"data_storage_mode": "bind", "data_storage_bind_source": "mnt/cephfs/k8s"},
     "data_storage_bind_source must be the absolute path of the already-mounted filesystem directory"),
    ("bind source not mounted", {"data_storage_mode": "bind", "data_storage_bind_source": "/mnt/cephfs/k8s"},
     f"data_storage_bind_source /mnt/cephfs/k8s is not a directory on {HOST}: mount the distributed filesystem"),
    ("mount point holds another volume", {"data_storage_juicefs_volume_name": "other-volume"},
     "/data/k8s is already a mount point of fuse.juicefs JuiceFS:aicluster-lab, not the wanted fuse.juicefs "
     "JuiceFS:other-volume: refusing to mount over it"),
]


@pytest.mark.parametrize("extra,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_without_change(tmp_path, extra, message):
    assert_refused(play(tmp_path, extra), message)


def test_non_empty_mount_point_is_refused(tmp_path):
    target = "/data/bad-input-nonempty"
    assert adhoc("ansible.builtin.file", f"path={target} state=directory mode=0755").returncode == 0
    assert adhoc("ansible.builtin.copy", f"dest={target}/keep.txt content=precious mode=0644").returncode == 0
    try:
        out = play(tmp_path, {"data_storage_path": target})
        assert_refused(out, f"{target} is a non-empty directory (1 entries: keep.txt) that is not the wanted "
                            "fuse.juicefs JuiceFS:aicluster-lab: refusing to mount over it "
                            "(move its content away first)")
        still = adhoc("ansible.builtin.slurp", f"src={target}/keep.txt")
        assert still.returncode == 0 and "cHJlY2lvdXM=" in still.stdout  # base64("precious")
        assert "fuse.juicefs" not in adhoc("ansible.builtin.command", f"findmnt -n {target}").stdout
    finally:
        adhoc("ansible.builtin.file", f"path={target} state=absent")


def test_wrong_metadata_password_fails_before_the_secrets_change(tmp_path):
    env = "/etc/juicefs/juicefs-data-k8s.env"
    before = adhoc("ansible.builtin.stat", f"path={env} checksum_algorithm=sha256")
    out = play(tmp_path, {"data_storage_juicefs_meta_password": "not-the-password"})
    assert_refused(out, "cannot read the JuiceFS metadata engine")
    assert "not-the-password" not in json.dumps(out)
    after = adhoc("ansible.builtin.stat", f"path={env} checksum_algorithm=sha256")
    assert before.stdout.split('"checksum"')[1][:70] == after.stdout.split('"checksum"')[1][:70]


def test_bad_checksum_leaves_the_installed_client_alone(tmp_path):
    before = adhoc("ansible.builtin.stat", "path=/usr/local/bin/juicefs checksum_algorithm=sha256")
    out = play(tmp_path, {"data_storage_juicefs_checksum": "sha256:" + "0" * 64})
    assert_refused(out, "did not match")
    after = adhoc("ansible.builtin.stat", "path=/usr/local/bin/juicefs checksum_algorithm=sha256")
    assert before.returncode == after.returncode == 0
    assert before.stdout.split('"checksum"')[1][:70] == after.stdout.split('"checksum"')[1][:70]


def test_check_diff_on_the_converged_fleet_changes_nothing(tmp_path):
    out = play(tmp_path, {}, "--check", "--diff", limit="lab_fleet")
    assert out["_rc"] == 0, failures(out)
    assert all(s["changed"] == 0 and s["failures"] == 0 for s in out["stats"].values()), out["stats"]
    assert len(out["stats"]) >= 2


def task_results(out: dict, name: str, host: str = HOST) -> list[dict]:
    """Every result of the task (or handler) whose name ends with ``name`` for ``host``."""
    return [task["hosts"][host] for p in out["plays"] for task in p["tasks"]
            if task["task"]["name"].endswith(name) and host in task["hosts"]]


def main_pid(host: str = HOST) -> str:
    proc = adhoc("ansible.builtin.command", "systemctl show -p MainPID --value juicefs-data-k8s.service", host)
    found = re.search(r"rc=0 >>\s*\n(\d+)", proc.stdout)
    assert proc.returncode == 0 and found, proc.stdout + proc.stderr
    return found.group(1)


def test_unit_change_shows_its_diff_in_check_mode_and_restarts_through_the_handler(tmp_path):
    unit = "/etc/systemd/system/juicefs-data-k8s.service"
    pid = main_pid()
    assert pid != "0", "the mount unit is not running: converge the role first"

    checked = play(tmp_path, {"data_storage_juicefs_prefetch": 2}, "--check", "--diff")
    assert checked["_rc"] == 0, failures(checked)
    [written] = task_results(checked, "Write the mount unit")
    assert written["changed"] and "--prefetch=2" in json.dumps(written["diff"])
    [restart] = task_results(checked, "Restart the JuiceFS mount")
    assert restart["changed"], "check mode does not report the restart the change would cause"
    assert task_results(checked, "Write the mount's environment file (secrets, 0600)")[0].get("skipped")
    assert main_pid() == pid, "--check restarted the mount"
    assert "--prefetch=1" in adhoc("ansible.builtin.command", f"cat {unit}").stdout, "--check wrote the unit"

    try:
        changed = play(tmp_path, {"data_storage_juicefs_prefetch": 2})
        assert changed["_rc"] == 0, failures(changed)
        [restart] = task_results(changed, "Restart the JuiceFS mount")
        assert restart["changed"]
        assert main_pid() != pid, "the unit changed but the mount was not restarted"
        [mounted] = task_results(changed, "The volume is mounted at the data path")
        assert not mounted.get("failed") and not mounted.get("skipped")
        again = play(tmp_path, {"data_storage_juicefs_prefetch": 2})
        assert again["stats"][HOST]["changed"] == 0 and not task_results(again, "Restart the JuiceFS mount")
    finally:
        restored = play(tmp_path, {})
        assert restored["_rc"] == 0, failures(restored)
    assert "--prefetch=1" in adhoc("ansible.builtin.command", f"cat {unit}").stdout
    assert "fuse.juicefs" in adhoc("ansible.builtin.command", "findmnt -n /data/k8s").stdout
