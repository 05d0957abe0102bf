"""mount_target_info main() on real directories of the test machine (no mounts needed)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.modules import mount_target_info as module


def run(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


def test_absent_and_empty_are_safe(tmp_path, capsys):
    assert run({"path": str(tmp_path / "k8s"), "fstype": "fuse.juicefs"}, capsys)["state"] == "empty"
    (tmp_path / "k8s").mkdir()
    result = run({"path": str(tmp_path / "k8s"), "fstype": "fuse.juicefs"}, capsys)
    assert result["state"] == "empty" and result["kind"] == "dir" and result["changed"] is False


def test_non_empty_directory_is_refused(tmp_path, capsys):
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "precious").write_text("data")
    result = run({"path": str(tmp_path / "k8s"), "fstype": "fuse.juicefs", "source": "JuiceFS:aicluster"}, capsys)
    assert result["_rc"] == 1
    assert "is a non-empty directory (1 entries: precious)" in result["msg"]
    assert (tmp_path / "k8s" / "precious").read_text() == "data"


def test_symlink_to_the_source_is_ready(tmp_path, capsys):
    src = tmp_path / "cephfs"
    src.mkdir()
    (tmp_path / "k8s").symlink_to(src)
    assert run({"path": str(tmp_path / "k8s"), "link_to": str(src)}, capsys)["state"] == "ready"
    result = run({"path": str(tmp_path / "k8s"), "same_as": str(src)}, capsys)
    assert result["_rc"] == 1 and "is a symlink to" in result["msg"]


def test_same_directory_is_ready_for_a_bind(tmp_path, capsys):
    src = tmp_path / "cephfs"
    src.mkdir()
    (src / "x").write_text("1")
    # not a mount point, non-empty: refused even though it is a directory
    result = run({"path": str(src), "same_as": str(tmp_path)}, capsys)
    assert result["_rc"] == 1 and "non-empty directory" in result["msg"]


def test_relative_paths_and_missing_bind_source_fail(tmp_path, capsys):
    assert "must be an absolute path" in run({"path": "data/k8s"}, capsys)["msg"]
    result = run({"path": str(tmp_path / "k8s"), "same_as": str(tmp_path / "nope")}, capsys)
    assert result["_rc"] == 1 and "bind source" in result["msg"] and "is not usable" in result["msg"]


def test_mounted_directory_is_ready_for_local_mode(capsys):
    result = run({"path": "/proc", "allow_nonempty": True}, capsys)
    assert result["state"] == "ready" and result["mount"]["fstype"] == "proc"
