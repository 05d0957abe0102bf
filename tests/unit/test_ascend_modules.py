"""ascend_runtime_info and ascend_containerd_template: real files in a temporary directory, a fake npu-smi and
systemctl on PATH; the driver precondition, the installer's record, accounts through NSS, the role's record,
daemon.json and the containerd template planned as the writing modules change them; check mode and diff."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.modules import (
    ascend_containerd_template,
    ascend_runtime_info,
    docker_daemon_json,
)

FIXTURES = Path(__file__).parent / "fixtures"
NPU_SMI = """#!/bin/sh
[ "$1" = "info" ] || exit 2
cat {table}
"""
NPU_SMI_BROKEN = """#!/bin/sh
echo "dcmi model initialized failed, because the device is used. ret is -8020" >&2
exit 255
"""
SYSTEMCTL = """#!{python}
import sys
props = sys.argv[2].split("=", 1)[1].split(",")
out = []
for unit in sys.argv[4:]:
    load, active, enabled = ("loaded", "active", "enabled") if unit == "rke2-agent.service" else (
        "not-found", "inactive", "")
    values = {{"LoadState": load, "ActiveState": active, "UnitFileState": enabled}}
    out.append("\\n".join(f"{{p}}={{values[p]}}" for p in props))
print("\\n\\n".join(out))
"""
BIN = "/usr/local/Ascend/Ascend-Docker-Runtime/ascend-docker-runtime"
ASCEND = [{"path": ["runtimes", "ascend"], "value": {"path": BIN, "runtimeArgs": []}},
          {"path": ["default-runtime"], "value": "ascend"}]


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
def machine(tmp_path, monkeypatch):
    """A fake npu-smi and systemctl on PATH, a driver version file and an install directory."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "npu-smi").write_text(NPU_SMI.format(table=FIXTURES / "npu_smi_910b_x8.txt"))
    (bindir / "systemctl").write_text(SYSTEMCTL.format(python=sys.executable))
    for name in ("npu-smi", "systemctl"):
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "version.info").write_text((FIXTURES / "ascend_version_info.txt").read_text())
    return tmp_path


def info_args(machine, **extra):
    return {"driver_version_file": str(machine / "version.info"), "install_dir": str(machine / "Ascend-Docker-Runtime"),
            "version": "26.0.0", **extra}


def install(machine, version="v26.0.0"):
    directory = machine / "Ascend-Docker-Runtime"
    directory.mkdir(exist_ok=True)
    (directory / "ascend-docker-runtime").write_text("#!/bin/sh\n")
    (directory / "ascend_docker_runtime_install.info").write_text(
        f"version={version}\narch=x86_64\ninstall-scene=docker\nconfig-file-path={machine}/sink.json\n")


# ------------------------------------------------------------------ ascend_runtime_info


def test_driver_ok_and_nothing_installed(machine, capsys):
    result = run(ascend_runtime_info, info_args(machine, driver_min_version="23.0.0",
                                                services=["rke2-agent.service", "docker.service"]), capsys)
    assert result["_rc"] == 0 and result["changed"] is False
    driver = result["driver"]
    assert driver["ok"] is True and driver["version"] == "23.0.6" and driver["chips"] == 8
    assert driver["npu_smi"] == str(machine / "bin" / "npu-smi")
    assert result["runtime"]["installed"] is False and result["runtime"]["matches"] is False
    assert result["services"]["rke2-agent.service"]["loaded"] is True
    assert result["services"]["docker.service"]["loaded"] is False
    assert result["record"] is None and result["record_error"] is None


def test_driver_missing_broken_or_too_old_is_reported_not_failed(machine, capsys):
    missing = run(ascend_runtime_info, info_args(machine, npu_smi=str(machine / "no-such-smi"),
                                                 driver_version_file=str(machine / "no-version.info")), capsys)
    assert missing["_rc"] == 0 and missing["driver"]["ok"] is False
    assert missing["driver"]["error"] == (f"npu-smi not found (it comes with the Ascend driver); "
                                          f"{machine}/no-version.info not found")
    (machine / "bin" / "npu-smi").write_text(NPU_SMI_BROKEN)
    broken = run(ascend_runtime_info, info_args(machine), capsys)
    assert broken["driver"]["error"].startswith("npu-smi info exited 255: dcmi model initialized failed")
    (machine / "bin" / "npu-smi").write_text(NPU_SMI.format(table=FIXTURES / "npu_smi_910b_x8.txt"))
    old = run(ascend_runtime_info, info_args(machine, driver_min_version="24.1.rc1"), capsys)
    assert old["driver"]["ok"] is False and old["driver"]["error"] == "driver 23.0.6 is older than 24.1.rc1"
    skipped = run(ascend_runtime_info, info_args(machine, check_driver=False), capsys)
    assert skipped["driver"] == {"ok": None, "error": None}


def test_installed_runtime_from_the_installer_record(machine, capsys):
    install(machine)
    result = run(ascend_runtime_info, info_args(machine), capsys)
    assert result["runtime"]["installed"] is True and result["runtime"]["matches"] is True
    assert result["runtime"]["install_scene"] == "docker"
    assert result["runtime"]["config_file_path"] == f"{machine}/sink.json"
    other = run(ascend_runtime_info, info_args(machine, version="26.0.1"), capsys)
    assert other["runtime"]["matches"] is False and other["runtime"]["version"] == "26.0.0"


def test_accounts_clash_with_root(machine, capsys):
    result = run(ascend_runtime_info, info_args(machine, accounts=[
        {"user": "aicluster-test-user", "uid": 0, "group": "aicluster-test-group", "gid": 0}]), capsys)
    assert result["_rc"] == 0
    assert result["account_problems"] == [
        "gid 0 wanted for group aicluster-test-group is taken by group root",
        "uid 0 wanted for user aicluster-test-user is taken by user root"]
    assert result["accounts"]["aicluster-test-user"]["user_exists"] is False


def test_record_planned_written_then_ok_and_what_exists(machine, capsys):
    record = machine / "state" / "created.json"
    logs = machine / "log" / "mindx-dl"
    candidates = {"users": ["aicluster-test-user", "root"], "groups": ["root"],
                  "log_dirs": [str(logs), str(logs / "noded")], "dirs": [str(machine / "rke2" / "etc")],
                  "files": [str(machine / "rke2" / "etc" / "config.toml.tmpl")]}
    args = info_args(machine, record=str(record), record_candidates=candidates,
                     directories=[{"path": str(logs), "mode": "0755"}])
    first = run(ascend_runtime_info, args, capsys)
    assert first["record_ok"] is False and first["directories"][str(logs)]["exists"] is False
    planned = first["record_planned"]
    assert planned == {"users": ["aicluster-test-user"], "groups": [], "log_dirs": [str(logs), str(logs / "noded")],
                       "dirs": [str(machine / "rke2"), str(machine / "rke2" / "etc")],
                       "files": [str(machine / "rke2" / "etc" / "config.toml.tmpl")], "runtime": True}
    record.parent.mkdir()
    record.write_text(json.dumps(planned))
    logs.mkdir(parents=True)
    second = run(ascend_runtime_info, args, capsys)
    assert second["record_ok"] is True and second["record"] == planned
    assert second["record_present"]["log_dirs"] == [str(logs)] and second["record_present"]["users"] == []
    record.write_text("[not a record")
    bad = run(ascend_runtime_info, args, capsys)
    assert "is not the role's record" in bad["record_error"]


def test_info_daemon_json_planned_as_docker_daemon_json_does_it(machine, capsys):
    daemon, record = machine / "daemon.json", machine / "state" / "daemon.json.record"
    daemon.write_text('{"log-driver": "json-file"}\n')
    args = info_args(machine, daemon_json=str(daemon), daemon_json_record=str(record), daemon_json_settings=ASCEND)
    assert run(ascend_runtime_info, args, capsys)["daemon_json"]["ok"] is False
    run(docker_daemon_json, {"path": str(daemon), "record": str(record), "settings": ASCEND}, capsys)
    done = run(ascend_runtime_info, args, capsys)["daemon_json"]
    assert done["ok"] is True and done["runtimes"] == ["ascend"] and done["default_runtime"] == "ascend"
    absent = run(ascend_runtime_info, info_args(machine, daemon_json=str(daemon), daemon_json_record=str(record),
                                                daemon_json_state="absent"), capsys)
    assert absent["daemon_json"]["ok"] is False
    run(docker_daemon_json, {"path": str(daemon), "record": str(record), "state": "absent"}, capsys)
    assert json.loads(daemon.read_text()) == {"log-driver": "json-file"}
    daemon.write_text("{oops")
    bad = run(ascend_runtime_info, args, capsys)["daemon_json"]
    assert "is not valid JSON" in bad["error"]


def test_relative_paths_are_refused(machine, capsys):
    result = run(ascend_runtime_info, info_args(machine, paths=["relative/x"]), capsys)
    assert result["_rc"] == 1 and "paths[] must be an absolute path" in result["msg"]
    bad = run(ascend_runtime_info, info_args(machine, record_candidates={"people": []}), capsys)
    assert bad["_rc"] == 1 and "record_candidates keys are groups, users" in bad["msg"]


# ------------------------------------------------------------------ ascend_containerd_template


def template_args(path, **extra):
    return {"path": str(path), "binary": BIN, **extra}


def test_template_created_with_parents_then_idempotent_then_removed(machine, capsys):
    template = machine / "rke2" / "agent" / "etc" / "containerd" / "config.toml.tmpl"
    (machine / "rke2").mkdir()
    info = info_args(machine, record=str(machine / "created.json"),
                     containerd_template={"path": str(template), "binary": BIN})
    assert run(ascend_runtime_info, info, capsys)["containerd_template"]["ok"] is False

    check = run(ascend_containerd_template, template_args(template), capsys, check=True, diff=True)
    assert check["changed"] is True and not template.exists()
    assert check["diff"]["before"] == "" and '{{ template "base" . }}' in check["diff"]["after"]
    assert check["created_dirs"] == [str(machine / "rke2" / "agent"), str(machine / "rke2" / "agent" / "etc"),
                                     str(machine / "rke2" / "agent" / "etc" / "containerd")]

    made = run(ascend_containerd_template, template_args(template), capsys)
    assert made["changed"] is True and oct(template.stat().st_mode & 0o777) == "0o644"
    assert 'BinaryName = "/usr/local/Ascend/Ascend-Docker-Runtime/ascend-docker-runtime"' in template.read_text()
    assert run(ascend_containerd_template, template_args(template), capsys)["changed"] is False
    planned = run(ascend_runtime_info, info, capsys)["containerd_template"]
    assert planned["ok"] is True and planned["has_block"] is True and planned["config_version"] == 2

    # removal: the role's record says it created the template, so it goes
    made_dirs = check["created_dirs"]
    (machine / "created.json").write_text(json.dumps({"files": [str(template)], "dirs": made_dirs}))
    absent_info = run(ascend_runtime_info, {**info, "containerd_template": {
        "path": str(template), "binary": BIN, "state": "absent"}}, capsys)
    assert absent_info["containerd_template"]["removed"] is True
    assert absent_info["removable_dirs"] == made_dirs[::-1]  # deepest first
    gone = run(ascend_containerd_template, template_args(template, state="absent", created=True), capsys)
    assert gone["changed"] is True and gone["removed"] is True and not template.exists()
    again = run(ascend_containerd_template, template_args(template, state="absent", created=True), capsys)
    assert again["changed"] is False


def test_site_template_keeps_its_lines_and_mode(machine, capsys):
    template = machine / "config.toml.tmpl"
    site = '{{ template "base" . }}\n\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/x"\n'
    template.write_text(site)
    template.chmod(0o600)
    (machine / "config.toml").write_text("# File generated by rke2\nversion = 3\n")
    info = info_args(machine, containerd_template={"path": str(template), "binary": BIN})
    assert run(ascend_runtime_info, info, capsys)["containerd_template"]["config_version"] == 3
    result = run(ascend_containerd_template, template_args(template, config_version=3), capsys, diff=True)
    assert result["changed"] is True and result["diff"]["before"] == site
    text = template.read_text()
    assert text.startswith(site) and '"io.containerd.cri.v1.runtime".containerd.runtimes."ascend"' in text
    assert oct(template.stat().st_mode & 0o777) == "0o600"
    assert run(ascend_runtime_info, info, capsys)["containerd_template"]["ok"] is True
    gone = run(ascend_containerd_template, template_args(template, config_version=3, state="absent"), capsys)
    assert gone["changed"] is True and gone["removed"] is False and template.read_text() == site


def test_template_bad_input(machine, capsys):
    relative = run(ascend_containerd_template, {"path": "config.toml.tmpl"}, capsys)
    assert relative["_rc"] == 1 and "path must be an absolute path" in relative["msg"]
    quoted = run(ascend_containerd_template, template_args(machine / "t", runtime_name='as"cend'), capsys)
    assert quoted["_rc"] == 1 and "runtime_name must be a plain name" in quoted["msg"]
