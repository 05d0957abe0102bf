"""juicefs_volume main(): format exactly once, never on an unreadable engine, secrets only in the environment.

A fake `juicefs` (a Python script) keeps the "metadata engine" in a JSON file and logs every call's
argv and the secret environment variables it saw.
"""

from __future__ import annotations

import json
import sys

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.modules import juicefs_volume as module

FAKE = """#!{python}
import json, os, sys
state, log = {state!r}, {log!r}
with open(log, "a") as fh:
    fh.write(json.dumps({{"argv": sys.argv[1:], "META_PASSWORD": os.environ.get("META_PASSWORD"),
                         "SECRET_KEY": os.environ.get("SECRET_KEY")}}) + "\\n")
if os.environ.get("META_PASSWORD") != "mpw":
    sys.exit("<FATAL>: Meta: WRONGPASS invalid username-password pair (sent " + os.environ["META_PASSWORD"] + ")")
if sys.argv[1] == "status":
    if not os.path.exists(state):
        sys.exit("<FATAL>: Load metadata: database is not formatted, please run `juicefs format ...` first")
    print(json.dumps({{"Setting": json.load(open(state)), "Sessions": []}}))
elif sys.argv[1] == "format":
    opts = dict(a[2:].split("=", 1) for a in sys.argv[2:-2] if "=" in a)
    json.dump({{"Name": sys.argv[-1], "UUID": "u-1", "Storage": opts["storage"], "Bucket": opts.get("bucket"),
               "SecretKey": "removed"}}, open(state, "w"))
"""


@pytest.fixture
def fake(tmp_path):
    state, log = tmp_path / "engine.json", tmp_path / "calls.log"
    binary = tmp_path / "juicefs"
    binary.write_text(FAKE.format(python=sys.executable, state=str(state), log=str(log)))
    binary.chmod(0o755)

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return {"binary": str(binary), "state": state, "calls": calls}


def run(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


def args(fake, **over):
    base = {"binary": fake["binary"], "meta_url": "redis://10.77.0.1:6380/1", "meta_password": "mpw",
            "name": "aicluster", "storage": "redis", "bucket": "redis://10.77.0.1:6380/2", "secret_key": "skey",
            "format_options": {"trash-days": 0}}
    base.update(over)
    return base


def test_formats_once_then_changes_nothing(fake, capsys):
    first = run(args(fake), capsys)
    assert first["_rc"] == 0 and first["changed"] is True and first["formatted"] is True
    assert first["volume"]["Name"] == "aicluster" and "SecretKey" not in first["volume"]
    calls = fake["calls"]()
    assert [c["argv"][0] for c in calls] == ["status", "format", "status"]
    fmt = calls[1]
    assert fmt["argv"] == ["format", "--no-update", "--storage=redis", "--bucket=redis://10.77.0.1:6380/2",
                           "--trash-days=0", "redis://10.77.0.1:6380/1", "aicluster"]
    assert fmt["SECRET_KEY"] == "skey" and fmt["META_PASSWORD"] == "mpw"
    assert all("skey" not in " ".join(c["argv"]) and "mpw" not in " ".join(c["argv"]) for c in calls)
    assert calls[0]["SECRET_KEY"] is None  # status never sees the object store's secret

    second = run(args(fake), capsys)
    assert second["changed"] is False and second["formatted"] is False and second["differences"] == []
    assert [c["argv"][0] for c in fake["calls"]()] == ["status", "format", "status", "status"]


def test_check_mode_reports_without_formatting(fake, capsys):
    result = run(args(fake, _ansible_check_mode=True), capsys)
    assert result["changed"] is True and result["formatted"] is True
    assert not fake["state"].exists()
    assert [c["argv"][0] for c in fake["calls"]()] == ["status"]


def test_check_mode_before_the_binary_is_installed(tmp_path, capsys):
    result = run({"binary": str(tmp_path / "missing"), "meta_url": "redis://h/1", "name": "aicluster",
                  "storage": "s3", "_ansible_check_mode": True}, capsys)
    assert result["_rc"] == 0 and result["changed"] is True and "not installed yet" in result["msg"]


def test_unreadable_engine_fails_without_formatting_and_redacts(fake, capsys):
    result = run(args(fake, meta_password="wrong-pw"), capsys)
    assert result["_rc"] == 1 and result["failed"]
    assert result["msg"] == ("cannot read the JuiceFS metadata engine: <FATAL>: Meta: WRONGPASS invalid "
                             "username-password pair (sent ********)")
    assert [c["argv"][0] for c in fake["calls"]()] == ["status"]
    assert not fake["state"].exists()


def test_engine_holding_another_volume_is_refused(fake, capsys):
    run(args(fake, name="first"), capsys)
    result = run(args(fake, name="second"), capsys)
    assert result["_rc"] == 1
    assert "already holds JuiceFS volume 'first', not 'second': refusing to format it again" in result["msg"]


def test_different_settings_are_reported_not_changed(fake, capsys):
    run(args(fake), capsys)
    result = run(args(fake, storage="s3", bucket="https://b.example"), capsys)
    assert result["changed"] is False
    assert result["differences"] == ["storage is 'redis', wanted 's3'",
                                      "bucket is 'redis://10.77.0.1:6380/2', wanted 'https://b.example'"]


def test_password_in_the_url_is_refused(fake, capsys):
    result = run(args(fake, meta_url="redis://:mpw@10.77.0.1:6380/1"), capsys)
    assert result["_rc"] == 1 and "must not contain a password" in result["msg"]
    assert fake["calls"]() == []
