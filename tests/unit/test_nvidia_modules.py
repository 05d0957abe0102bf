"""nvidia_toolkit_info and docker_daemon_json: real files in a temporary directory, fake nvidia-smi,
dpkg-query and systemctl on PATH; check mode, diff and the restore record."""

from __future__ import annotations

import json
import os
import sys

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.modules import docker_daemon_json, nvidia_toolkit_info

SMI = """#!/bin/sh
[ "$1" = "--query-gpu=driver_version" ] || exit 2
printf '550.54.15\\n550.54.15\\n'
"""
SMI_BROKEN = """#!/bin/sh
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2
exit 9
"""
DPKG = """#!{python}
import sys
known = {{"nvidia-container-toolkit": ("1.20.0-1", "ii ", "hold"),
         "libnvidia-container1": ("1.19.0-1", "ii ", "install")}}
for name in sys.argv[sys.argv.index("--") + 1:]:
    if name in known:
        v, a, w = known[name]
        sys.stdout.write(f"{{name}}\\t{{v}}\\t{{a}}\\t{{w}}\\n")
    else:
        sys.stderr.write(f"dpkg-query: no packages found matching {{name}}\\n")
"""
SYSTEMCTL = """#!{python}
import sys
props = sys.argv[2].split("=", 1)[1].split(",")
states = {{"docker.service": ("loaded", "active", "enabled")}}
out = []
for unit in sys.argv[4:]:
    load, active, enabled = states.get(unit, ("not-found", "inactive", ""))
    values = {{"LoadState": load, "ActiveState": active, "UnitFileState": enabled}}
    out.append("\\n".join(f"{{p}}={{values[p]}}" for p in props))
print("\\n\\n".join(out))
"""

NVIDIA = [{"path": ["runtimes", "nvidia"], "value": {"path": "nvidia-container-runtime", "args": []}}]
DEFAULT = [*NVIDIA, {"path": ["default-runtime"], "value": "nvidia"}]


def run(module, args, capsys, check=False, diff=False):
    if check:
        args = {**args, "_ansible_check_mode": True}
    if diff:
        args = {**args, "_ansible_diff": True}
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


@pytest.fixture
def tools(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("nvidia-smi", SMI), ("dpkg-query", DPKG.format(python=sys.executable)),
                       ("systemctl", SYSTEMCTL.format(python=sys.executable))):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return bindir


# ------------------------------------------------------------------ nvidia_toolkit_info


def test_info_reports_driver_packages_files_daemon_json_and_units(tmp_path, capsys, tools):
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"log-driver": "json-file"}\n')
    source = tmp_path / "nvidia.list"
    source.write_text("deb x /\n")
    result = run(nvidia_toolkit_info, {
        "nvidia_smi": str(tools / "nvidia-smi"), "package_manager": "apt",
        "packages": ["nvidia-container-toolkit", "nvidia-container-toolkit-base"],
        "package_versions": {"nvidia-container-toolkit": "1.20.0-1", "libnvidia-container1": "1.20.0-1"},
        "files": [{"key": "source", "path": str(source),
                   "sha256": "0" * 64}],
        "daemon_json": str(daemon), "daemon_json_record": str(tmp_path / "rec"), "daemon_json_settings": NVIDIA,
        "paths": [str(daemon), str(tmp_path / "missing")],
        "services": ["docker.service", "rke2-agent.service"],
    }, capsys)
    assert result["_rc"] == 0 and result["changed"] is False
    assert result["driver"]["version"] == "550.54.15" and result["driver"]["error"] is None
    assert result["package_manager"] == "apt"
    assert result["packages"]["nvidia-container-toolkit"] == {"version": "1.20.0-1", "installed": True, "held": True,
                                                             "wanted": "1.20.0-1", "matches": True}
    assert result["packages"]["libnvidia-container1"]["matches"] is False  # 1.19.0-1 installed
    assert result["packages"]["nvidia-container-toolkit-base"]["installed"] is False
    assert result["files"]["source"]["exists"] and not result["files"]["source"]["ok"]
    assert result["daemon_json"]["ok"] is False and result["daemon_json"]["runtimes"] == []
    assert result["paths"] == {str(daemon): True, str(tmp_path / "missing"): False}
    assert result["services"]["docker.service"]["active"] is True
    assert result["services"]["rke2-agent.service"]["loaded"] is False


def test_info_missing_and_broken_driver_are_reported_not_failed(tmp_path, capsys, tools):
    missing = run(nvidia_toolkit_info, {"nvidia_smi": str(tmp_path / "no-such-smi")}, capsys)
    assert missing["_rc"] == 0 and missing["driver"]["version"] is None
    assert "not found: no NVIDIA driver" in missing["driver"]["error"]
    (tools / "nvidia-smi").write_text(SMI_BROKEN)
    broken = run(nvidia_toolkit_info, {}, capsys)
    assert broken["driver"]["error"].startswith("nvidia-smi exited 9: NVIDIA-SMI has failed")


def test_info_daemon_json_ok_after_the_merge_and_error_on_bad_json(tmp_path, capsys, tools):
    daemon, record = tmp_path / "daemon.json", tmp_path / "state" / "daemon.json.record"
    run(docker_daemon_json, {"path": str(daemon), "record": str(record), "settings": NVIDIA}, capsys)
    info = run(nvidia_toolkit_info, {"check_driver": False, "daemon_json": str(daemon),
                                     "daemon_json_record": str(record), "daemon_json_settings": NVIDIA}, capsys)
    assert info["daemon_json"]["ok"] is True and info["daemon_json"]["runtimes"] == ["nvidia"]
    absent = run(nvidia_toolkit_info, {"check_driver": False, "daemon_json": str(daemon),
                                       "daemon_json_record": str(record), "daemon_json_state": "absent"}, capsys)
    assert absent["daemon_json"]["ok"] is False
    daemon.write_text("{oops")
    bad = run(nvidia_toolkit_info, {"check_driver": False, "daemon_json": str(daemon),
                                    "daemon_json_record": str(record), "daemon_json_settings": NVIDIA}, capsys)
    assert "is not valid JSON" in bad["daemon_json"]["error"]


# ------------------------------------------------------------------ docker_daemon_json


def test_merge_keeps_the_existing_key_then_is_idempotent_then_restores(tmp_path, capsys):
    daemon, record = tmp_path / "daemon.json", tmp_path / "state" / "daemon.json.record"
    original = '{\n  "log-driver": "json-file",\n  "default-runtime": "runc"\n}\n'
    daemon.write_text(original)
    daemon.chmod(0o640)
    args = {"path": str(daemon), "record": str(record), "settings": DEFAULT}

    check = run(docker_daemon_json, args, capsys, check=True, diff=True)
    assert check["changed"] is True and daemon.read_text() == original and not record.exists()
    assert check["diff"]["before"] == original and '"nvidia"' in check["diff"]["after"]

    first = run(docker_daemon_json, args, capsys)
    data = json.loads(daemon.read_text())
    assert first["changed"] is True and data["log-driver"] == "json-file" and data["default-runtime"] == "nvidia"
    assert data["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime", "args": []}
    assert oct(daemon.stat().st_mode & 0o777) == "0o640" and oct(record.stat().st_mode & 0o777) == "0o600"

    second = run(docker_daemon_json, args, capsys)
    assert second["changed"] is False and second["record_written"] is False

    gone = run(docker_daemon_json, {"path": str(daemon), "record": str(record), "state": "absent"}, capsys)
    assert gone["changed"] is True and json.loads(daemon.read_text()) == json.loads(original)
    assert not record.exists()
    again = run(docker_daemon_json, {"path": str(daemon), "record": str(record), "state": "absent"}, capsys)
    assert again["changed"] is False


def test_a_file_the_module_created_is_removed_on_absent(tmp_path, capsys):
    daemon, record = tmp_path / "docker" / "daemon.json", tmp_path / "rec"
    (tmp_path / "docker").mkdir()
    made = run(docker_daemon_json, {"path": str(daemon), "record": str(record), "settings": NVIDIA}, capsys)
    assert made["changed"] and daemon.exists() and oct(daemon.stat().st_mode & 0o777) == "0o644"
    gone = run(docker_daemon_json, {"path": str(daemon), "record": str(record), "state": "absent"}, capsys)
    assert gone["changed"] and gone["removed"] and not daemon.exists()


def test_already_configured_file_is_not_a_change_but_gets_a_record(tmp_path, capsys):
    daemon, record = tmp_path / "daemon.json", tmp_path / "rec"
    daemon.write_text(json.dumps({"runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}))
    result = run(docker_daemon_json, {"path": str(daemon), "record": str(record), "settings": NVIDIA}, capsys)
    assert result["changed"] is False and result["record_written"] is True and record.exists()
    # removal puts back what was there before the role: the runtime set by someone else stays
    run(docker_daemon_json, {"path": str(daemon), "record": str(record), "state": "absent"}, capsys)
    assert json.loads(daemon.read_text())["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"


def test_invalid_json_fails_and_changes_nothing(tmp_path, capsys):
    daemon, record = tmp_path / "daemon.json", tmp_path / "rec"
    daemon.write_text("{not json")
    result = run(docker_daemon_json, {"path": str(daemon), "record": str(record), "settings": NVIDIA}, capsys)
    assert result["_rc"] == 1 and "is not valid JSON" in result["msg"]
    assert daemon.read_text() == "{not json" and not record.exists()


def test_absent_without_a_record_does_not_read_the_file(tmp_path, capsys, tools):
    daemon, record = tmp_path / "daemon.json", tmp_path / "rec"
    daemon.write_text("{not json")
    result = run(docker_daemon_json, {"path": str(daemon), "record": str(record), "state": "absent"}, capsys)
    assert result["_rc"] == 0 and result["changed"] is False
    info = run(nvidia_toolkit_info, {"check_driver": False, "daemon_json": str(daemon),
                                     "daemon_json_record": str(record), "daemon_json_state": "absent"}, capsys)
    assert info["daemon_json"]["ok"] is True
