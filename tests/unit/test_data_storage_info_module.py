"""data_storage_info: the state behind /data/k8s in one read-only call (real files of the test machine,
a fake systemctl), and the pure functions under it (module_utils/storage_state)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import types

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import storage, storage_state
from ansible_collections.aicluster.platform.plugins.modules import data_storage_info as module

ENV = "# Managed by Ansible\nMETA_PASSWORD=hunter2\n"
SHOW = """#!{python}
import sys
states = {{"juicefs-data-k8s.service": ("loaded", "active", "enabled"),
          "stopped.service": ("loaded", "inactive", "disabled")}}
props = sys.argv[2].split("=", 1)[1].split(",")
assert sys.argv[1] == "show" and sys.argv[3] == "--", sys.argv
blocks = []
for unit in sys.argv[4:]:
    load, active, enabled = states.get(unit, ("not-found", "inactive", ""))
    values = {{"LoadState": load, "ActiveState": active, "UnitFileState": enabled}}
    blocks.append("\\n".join(f"{{p}}={{values[p]}}" for p in props))
print("\\n\\n".join(blocks))
"""


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def run(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module.main()
    out = capsys.readouterr().out
    result = json.loads(out)
    result["_rc"] = exit_info.value.code
    result["_raw"] = out
    return result


@pytest.fixture
def systemctl(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "systemctl"
    fake.write_text(SHOW.format(python=sys.executable))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return fake


def me():
    return storage_state._names(os.stat("."))


def test_converged_machine_reports_ok_everywhere(tmp_path, capsys, systemctl):
    owner, group = me()
    env = tmp_path / "etc" / "juicefs-data-k8s.env"
    env.parent.mkdir(mode=0o700)
    env.parent.chmod(0o700)
    env.write_text(ENV)
    env.chmod(0o600)
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o700)
    data = tmp_path / "k8s"
    data.mkdir()
    result = run({
        "path": str(data), "fstype": "fuse.juicefs", "source": "JuiceFS:aicluster",
        "files": [{"key": "env", "path": str(env), "sha256": sha(ENV), "mode": "0600", "owner": owner,
                   "group": group}],
        "directories": [{"path": str(env.parent), "mode": "0700", "owner": owner}, {"path": str(cache), "mode": "700"}],
        "services": ["juicefs-data-k8s.service", "stopped.service", "missing.service"],
    }, capsys)
    assert result["_rc"] == 0 and result["changed"] is False
    assert result["target"] == {"state": "empty", "problem": None, "kind": "dir", "mount": None, "entries": 0}
    assert "msg" not in result
    assert result["files"]["env"]["ok"] is True and result["files"]["env"]["mode"] == "0600"
    assert all(d["ok"] for d in result["directories"].values())
    assert result["services"]["juicefs-data-k8s.service"] == {
        "loaded": True, "enabled": True, "active": True, "load_state": "loaded", "active_state": "active",
        "unit_file_state": "enabled"}
    assert result["services"]["stopped.service"]["active"] is False
    assert result["services"]["stopped.service"]["enabled"] is False
    assert result["services"]["missing.service"]["loaded"] is False
    # the hash of the secret-bearing file is a no_log value: never in the output
    assert sha(ENV) not in result["_raw"] and "hunter2" not in result["_raw"]


def test_differences_are_reported_one_by_one(tmp_path, capsys):
    unit = tmp_path / "unit.service"
    unit.write_text("[Unit]\nold\n")
    unit.chmod(0o644)
    binary = tmp_path / "juicefs"
    binary.write_bytes(b"bin")
    binary.chmod(0o700)
    result = run({
        "path": str(tmp_path / "k8s"),
        "files": [{"key": "unit", "path": str(unit), "sha256": sha("[Unit]\nnew\n"), "mode": "0644"},
                  {"key": "binary", "path": str(binary), "sha256": "sha256:" + sha("bin").upper(), "mode": "0755"},
                  {"key": "env", "path": str(tmp_path / "absent.env"), "sha256": sha(ENV)}],
        "directories": [{"path": str(tmp_path / "nope")}, {"path": str(unit)}],
    }, capsys)
    unit_state, bin_state = result["files"]["unit"], result["files"]["binary"]
    assert unit_state["content_matches"] is False and unit_state["attributes_match"] is True and not unit_state["ok"]
    assert bin_state["content_matches"] is True and bin_state["mode"] == "0700" and not bin_state["ok"]
    assert result["files"]["env"] == {**result["files"]["env"], "exists": False, "ok": False}
    assert result["directories"][str(tmp_path / "nope")]["exists"] is False
    assert result["directories"][str(unit)]["is_dir"] is False and not result["directories"][str(unit)]["ok"]
    assert result["target"]["state"] == "empty" and result["target"]["kind"] == "absent"
    assert result["services"] == {}


def test_refusals_are_reported_with_mount_targets_sentence(tmp_path, capsys):
    data = tmp_path / "k8s"
    data.mkdir()
    (data / "keep.txt").write_text("precious")
    result = run({"path": str(data), "fstype": "fuse.juicefs", "source": "JuiceFS:aicluster"}, capsys)
    assert result["_rc"] == 0  # a report, not a failure: the role's assert fails with the sentence
    assert result["target"]["state"] == "refused"
    assert result["target"]["problem"] == (
        f"{data} is a non-empty directory (1 entries: keep.txt) that is not the wanted fuse.juicefs "
        "JuiceFS:aicluster: refusing to mount over it (move its content away first)")
    assert result["msg"] == result["target"]["problem"]  # what failed_when shows
    assert (data / "keep.txt").read_text() == "precious"


def test_bind_and_symlink_sources(tmp_path, capsys):
    src = tmp_path / "cephfs"
    src.mkdir()
    link = tmp_path / "k8s"
    link.symlink_to(src)
    result = run({"path": str(link), "link_to": str(src)}, capsys)
    assert result["target"]["state"] == "ready" and result["source_dir"] == {
        "path": str(src), "exists": True, "is_dir": True}
    result = run({"path": str(tmp_path / "data"), "same_as": str(tmp_path / "missing"),
                  "fstab": {"src": str(tmp_path / "missing"), "fstype": "none", "opts": "bind"}}, capsys)
    assert result["source_dir"]["exists"] is False and result["target"]["state"] == "empty"
    assert result["fstab"]["matches"] is False
    result = run({"path": str(link), "same_as": str(src)}, capsys)
    assert result["target"]["state"] == "refused" and "is a symlink to" in result["target"]["problem"]


def test_local_mode_accepts_a_mounted_non_empty_directory(capsys):
    result = run({"path": "/proc", "allow_nonempty": True}, capsys)
    assert result["target"]["state"] == "ready" and result["target"]["mount"]["fstype"] == "proc"


def test_relative_paths_fail(capsys):
    assert "path must be an absolute path" in run({"path": "data/k8s"}, capsys)["msg"]
    result = run({"path": "/data/k8s", "files": [{"key": "unit", "path": "etc/x"}]}, capsys)
    assert result["_rc"] == 1 and "files[unit].path must be an absolute path" in result["msg"]


def test_check_mode_reads_the_same(tmp_path, capsys):
    result = run({"path": str(tmp_path), "allow_nonempty": True, "_ansible_check_mode": True,
                  "directories": [{"path": str(tmp_path)}]}, capsys)
    assert result["_rc"] == 0 and result["directories"][str(tmp_path)]["ok"] is True


# ------------------------------------------------------------------ pure functions
@pytest.mark.parametrize("mode,want", [("0755", 0o755), ("755", 0o755), ("0o700", 0o700), (0o600, 0o600),
                                       ("01777", 0o1777), ("u=rwx,go=rx", None), (None, None), (True, None)])
def test_normalize_mode(mode, want):
    assert storage_state.normalize_mode(mode) == want


def test_file_state_without_wanted_hash_or_attributes():
    st = types.SimpleNamespace(st_mode=0o100640, st_uid=0, st_gid=0)
    state = storage_state.file_state("/x", stat=lambda p: st, hasher=lambda p: pytest.fail("hashed"),
                                     names=lambda s: ("root", "root"))
    assert state["ok"] is True and state["mode"] == "0640"


def test_file_state_reports_unreadable():
    def denied(path):
        raise PermissionError(13, "Permission denied")

    state = storage_state.file_state("/x", sha256="0" * 64, stat=denied)
    assert state["error"] == "Permission denied" and state["ok"] is False


def test_dir_state_below_a_dead_fuse_mount():
    def dead(path):
        raise OSError(107, "Transport endpoint is not connected")

    state = storage_state.dir_state("/data/k8s/kubeflow", stat=dead)
    assert state["ok"] is False and state["error"] == "Transport endpoint is not connected"


FSTAB = """\
# /etc/fstab
UUID=1234 / ext4 errors=remount-ro 0 1
/mnt/cephfs/old /data/k8s none bind 0 0
/mnt/ceph\\040fs/k8s /data/k8s/ none bind 0 0
/srv/a /srv/b none bind
"""


def test_fstab_entry_last_one_wins_and_unescapes():
    entry = storage_state.fstab_entry(FSTAB, "/data/k8s")
    assert entry == {"src": "/mnt/ceph fs/k8s", "path": "/data/k8s/", "fstype": "none", "opts": "bind",
                     "dump": "0", "passno": "0"}
    assert storage_state.fstab_matches(entry, "/mnt/ceph fs/k8s", "none", "bind")
    assert not storage_state.fstab_matches(entry, "/mnt/cephfs/old", "none", "bind")
    assert not storage_state.fstab_matches(entry, "/mnt/ceph fs/k8s", "none", "bind,ro")
    short = storage_state.fstab_entry(FSTAB, "/srv/b")
    assert short["dump"] is None and not storage_state.fstab_matches(short, "/srv/a", "none", "bind")
    assert storage_state.fstab_entry(FSTAB, "/nowhere") is None
    assert storage_state.fstab_matches(None, "/a", "none", "bind") is False


def test_parse_systemctl_show_failure_is_unknown():
    got = storage_state.parse_systemctl_show(["a.service"], 1, "")
    assert got["a.service"]["loaded"] is False and got["a.service"]["load_state"] == "unknown"
    assert storage_state.systemctl_show_command("/bin/systemctl", ["a.service"]) == [
        "/bin/systemctl", "show", "--property=LoadState,ActiveState,UnitFileState", "--", "a.service"]


def test_target_state_matches_evaluate_target():
    mounts = storage.parse_mountinfo(
        "36 25 0:32 / /data/k8s rw,relatime shared:1 - fuse.juicefs JuiceFS:aicluster-lab rw\n")
    info = {"path": "/data/k8s", "kind": "dir", "mount": storage.mount_at(mounts, "/data/k8s"), "entries": ["a"],
            "link": None, "error": None, "dev_ino": (1, 2)}
    ready = storage_state.target_state(info, fstype="fuse.juicefs", source="JuiceFS:aicluster-lab")
    assert ready["state"] == "ready" and ready["problem"] is None and ready["entries"] == 1
    other = storage_state.target_state(info, fstype="fuse.juicefs", source="JuiceFS:other-volume")
    assert other["state"] == "refused"
    assert other["problem"] == (
        "/data/k8s is already a mount point of fuse.juicefs JuiceFS:aicluster-lab, not the "
        "wanted fuse.juicefs JuiceFS:other-volume: refusing to mount over it (unmount it first)")
