"""host_facts: setup's platform facts, free space and clock in one module call (no remote host needed)."""

from __future__ import annotations

import json
import os
import time
import types

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.facts.system.distribution import DistributionFactCollector
from ansible.module_utils.facts.system.platform import PlatformFactCollector
from ansible.module_utils.testing import patch_module_args
from ansible_collections.aicluster.platform.plugins.module_utils import hostinfo
from ansible_collections.aicluster.platform.plugins.modules import host_facts as module


def run(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        module.main()
    result = json.loads(capsys.readouterr().out)
    result["_rc"] = exit_info.value.code
    return result


def test_facts_are_setups_names_and_values(tmp_path, capsys):
    result = run({"paths": ["/", str(tmp_path / "not" / "yet")]}, capsys)
    assert result["_rc"] == 0 and result["changed"] is False
    facts = result["ansible_facts"]

    with patch_module_args({}):
        real = AnsibleModule(argument_spec={})  # what setup's collectors get
    platform_facts = PlatformFactCollector().collect(module=real)
    for name in ("hostname", "nodename", "python_version", "architecture", "machine", "system", "kernel"):
        assert facts[name] == platform_facts[name], name
    assert facts.get("machine_id") == platform_facts.get("machine_id")
    distro = DistributionFactCollector().collect(module=real)
    for name in ("distribution", "distribution_version", "distribution_major_version", "os_family"):
        assert facts[name] == distro[name], name
    # the clock is a plain result, never a fact (a cached clock proves nothing)
    assert "date_time" not in facts and "epoch" not in facts
    assert abs(result["epoch"] - time.time()) < 60
    assert result["space"]["/"]["measured"] == "/"
    assert result["space"][str(tmp_path / "not" / "yet")]["measured"] == str(tmp_path)


def test_relative_paths_fail(capsys):
    result = run({"paths": ["var/lib"]}, capsys)
    assert result["_rc"] == 1 and result["msg"] == "paths must be absolute: var/lib"


def test_measure_walks_up_to_an_existing_parent():
    seen = []

    def statvfs(path):
        seen.append(path)
        return types.SimpleNamespace(f_bavail=10, f_frsize=4096, f_blocks=100)

    existing = {"/", "/data"}
    got = hostinfo.measure("/data/k8s/kubeflow", statvfs=statvfs, exists=existing.__contains__)
    assert got == {"measured": "/data", "free_bytes": 40960, "total_bytes": 409600}
    assert seen == ["/data"]
    assert hostinfo.measure("/nothing", statvfs=statvfs, exists=lambda p: p == "/")["measured"] == "/"


def test_machine_id_follows_setups_order():
    files = {"/var/lib/dbus/machine-id": "", "/etc/machine-id": "abc123\nsecond line\n"}
    assert hostinfo.read_machine_id(read=files.get) == "abc123"
    files["/var/lib/dbus/machine-id"] = "dbus-id\n"
    assert hostinfo.read_machine_id(read=files.get) == "dbus-id"
    assert hostinfo.read_machine_id(read=lambda name: None) is None


def test_platform_facts_short_hostname():
    facts = hostinfo.platform_facts(node="gpu-a100-1.lab.example", python_version="3.11.2", machine="aarch64",
                                    system="Linux", kernel="6.1", machine_id="m1")
    assert facts["hostname"] == "gpu-a100-1" and facts["nodename"] == "gpu-a100-1.lab.example"
    assert facts["architecture"] == "aarch64" and facts["machine_id"] == "m1"
    assert "machine_id" not in hostinfo.platform_facts(node="h", machine_id=None)


def test_bad_paths():
    assert hostinfo.bad_paths(["/", "rel", os.sep + "x"]) == ["rel"]
