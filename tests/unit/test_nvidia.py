"""module_utils/nvidia and the nvidia_device_plugin filters: driver versions, package queries, the
daemon.json merge with its restore record, and the device plugin's config rules (api/config/v1 v0.18.0)."""

from __future__ import annotations

import json

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.aicluster.platform.plugins.filter import nvidia_device_plugin as filters
from ansible_collections.aicluster.platform.plugins.module_utils import docker_daemon, nvidia

# ------------------------------------------------------------------ driver


def test_driver_version_of_every_gpu_line():
    assert nvidia.parse_driver_version(0, "550.54.15\n550.54.15\n") == ("550.54.15", None)


def test_driver_failure_names_nvidia_smi_message():
    version, error = nvidia.parse_driver_version(
        9, "", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n")
    assert version is None
    assert error == ("nvidia-smi exited 9: NVIDIA-SMI has failed because it couldn't communicate with the "
                     "NVIDIA driver.")


def test_driver_no_version_printed():
    assert nvidia.parse_driver_version(0, "No devices were found\n")[1].startswith("nvidia-smi printed no driver")


def test_mixed_driver_versions_report_the_oldest_and_an_error():
    version, error = nvidia.parse_driver_version(0, "550.54.15\n535.104.05\n")
    assert version == "535.104.05" and "several driver versions" in error


@pytest.mark.parametrize(("found", "minimum", "ok"), [
    ("550.54.15", "535.54.03", True), ("535.54.03", "535.54.03", True), ("535.54.02", "535.54.03", False),
    ("470.256.02", "535", False), ("535", "535.0", True), ("560.1", "", True), (None, "535", False),
])
def test_version_at_least(found, minimum, ok):
    assert nvidia.version_at_least(found, minimum) is ok


# ------------------------------------------------------------------ packages


def test_dpkg_query_parse_installed_held_and_missing():
    out = ("nvidia-container-toolkit\t1.20.0-1\tii \thold\n"
           "libnvidia-container1:amd64\t1.20.0-1\tii \tinstall\n"
           "libnvidia-container-tools\t1.19.0-1\trc \tdeinstall\n")
    got = nvidia.parse_dpkg_query(["nvidia-container-toolkit", "libnvidia-container1", "libnvidia-container-tools",
                                   "nvidia-container-toolkit-base"], out)
    assert got["nvidia-container-toolkit"] == {"version": "1.20.0-1", "installed": True, "held": True}
    assert got["libnvidia-container1"] == {"version": "1.20.0-1", "installed": True, "held": False}
    assert got["libnvidia-container-tools"]["installed"] is False
    assert got["nvidia-container-toolkit-base"] == {"version": None, "installed": False, "held": False}


def test_dpkg_query_command_has_the_format_and_names():
    cmd = nvidia.dpkg_query_command("/usr/bin/dpkg-query", ["a", "b"])
    assert cmd[:2] == ["/usr/bin/dpkg-query", "-W"] and cmd[-3:] == ["--", "a", "b"]
    assert "\t" in cmd[2] and cmd[2].endswith("\n")


def test_rpm_query_parse():
    out = "nvidia-container-toolkit\t1.17.8-1\npackage libnvidia-container1 is not installed\n"
    got = nvidia.parse_rpm_query(["nvidia-container-toolkit", "libnvidia-container1"], out)
    assert got["nvidia-container-toolkit"]["version"] == "1.17.8-1"
    assert got["libnvidia-container1"]["installed"] is False


@pytest.mark.parametrize(("installed", "wanted", "ok"), [
    ("1.20.0-1", "1.20.0-1", True), ("1.20.0-1", "1.20.0", True), ("1:1.20.0-1", "1.20.0-1", True),
    ("1.19.0-1", "1.20.0-1", False), (None, "1.20.0-1", False), ("1.20.0-2", "1.20.0-1", False),
])
def test_package_version_matches(installed, wanted, ok):
    assert nvidia.package_version_matches(installed, wanted) is ok


# ------------------------------------------------------------------ daemon.json


NVIDIA = nvidia.nvidia_docker_settings()
NVIDIA_DEFAULT = nvidia.nvidia_docker_settings(default_runtime=True)


def test_merge_keeps_foreign_keys_and_records_what_it_replaced():
    current = {"log-driver": "json-file", "runtimes": {"runc-custom": {"path": "/opt/runc"}}, "default-runtime": "runc"}
    new, record = docker_daemon.plan_daemon_json(current, None, NVIDIA_DEFAULT)
    assert new["log-driver"] == "json-file"
    assert new["runtimes"] == {"runc-custom": {"path": "/opt/runc"},
                               "nvidia": {"path": "nvidia-container-runtime", "args": []}}
    assert new["default-runtime"] == "nvidia"
    assert list(new) == ["log-driver", "runtimes", "default-runtime"]  # order as found
    befores = {tuple(e["path"]): e["before"] for e in record["entries"]}
    assert befores[("default-runtime",)] == "runc"
    assert befores[("runtimes", "nvidia")] == {"__absent__": True}


def test_second_run_changes_nothing():
    new, record = docker_daemon.plan_daemon_json({"debug": True}, None, NVIDIA)
    again, record2 = docker_daemon.plan_daemon_json(new, record, NVIDIA)
    assert again == new and record2 == record


def test_absent_restores_exactly_and_keeps_later_foreign_keys():
    original = {"default-runtime": "runc", "registry-mirrors": ["https://m.example"]}
    new, record = docker_daemon.plan_daemon_json(original, None, NVIDIA_DEFAULT)
    new["max-concurrent-downloads"] = 5  # someone else's change after the role
    restored, record2 = docker_daemon.plan_daemon_json(new, record, [], "absent")
    assert restored == {**original, "max-concurrent-downloads": 5}
    assert "runtimes" not in restored  # the parent the role created is gone with its only child
    assert record2 is None


def test_dropping_default_runtime_restores_only_that():
    new, record = docker_daemon.plan_daemon_json({}, None, NVIDIA_DEFAULT)
    after, record2 = docker_daemon.plan_daemon_json(new, record, NVIDIA)
    assert "default-runtime" not in after and "nvidia" in after["runtimes"]
    assert [e["path"] for e in record2["entries"]] == [["runtimes", "nvidia"]]


def test_invalid_json_and_wrong_types_are_refused():
    with pytest.raises(docker_daemon.DaemonJsonError, match="not valid JSON"):
        docker_daemon.load_daemon_json("{broken")
    with pytest.raises(docker_daemon.DaemonJsonError, match="JSON list, not an object"):
        docker_daemon.load_daemon_json("[]")
    with pytest.raises(docker_daemon.DaemonJsonError, match="runtimes is not an object"):
        docker_daemon.plan_daemon_json({"runtimes": "oops"}, None, NVIDIA)
    assert docker_daemon.load_daemon_json("  \n") == {}


def test_dump_is_json_with_newline():
    text = docker_daemon.dump_daemon_json({"a": 1})
    assert json.loads(text) == {"a": 1} and text.endswith("}\n")


# ------------------------------------------------------------------ device plugin config rules


def ts(replicas, **extra):
    return {"version": "v1", "sharing": {"timeSlicing": {"resources": [{"name": "nvidia.com/gpu",
                                                                         "replicas": replicas, **extra}]}}}


def test_valid_time_slicing_config_has_no_problem():
    assert nvidia.config_problems(ts(4)) == []
    assert nvidia.config_problems({"version": "v1", "flags": {"migStrategy": "mixed"}}) == []
    assert nvidia.config_problems({}) == []


@pytest.mark.parametrize(("config", "message"), [
    (ts(1), "number of replicas must be >= 2 (got 1)"),
    (ts(0), "number of replicas must be >= 2"),
    (ts("four"), "replicas: expected an integer"),
    ({"version": "v2"}, "unknown version: v2"),
    ({"flags": {"migStrategy": "full"}}, "unknown MIG strategy: full (one of none, single, mixed)"),
    ({"sharing": {"timeSlicing": {"resources": []}}}, "no resources specified"),
    ({"sharing": {"timeSlicing": {}}}, "no resources specified"),
    ({"sharing": {"timeSlicing": {"resources": [{"replicas": 2}]}}}, "no resource name specified"),
    ({"sharing": {"timeSlicing": {"resources": [{"name": "gpu"}]}}}, "no replicas specified"),
    ({"sharing": {"timeSlicing": {"renameByDefault": "yes", "resources": [{"name": "gpu", "replicas": 2}]}}},
     "renameByDefault: expected true or false"),
    ({"sharing": {"timeSlicing": {"resources": [{"name": "Bad_Name", "replicas": 2}]}}},
     "incorrect format for resource name 'nvidia.com/Bad_Name'"),
    ({"sharing": {"timeSlicing": {"resources": [{"name": "x" * 60, "replicas": 2}]}}}, "63 characters or less"),
    (ts(2, devices="some"), "devices: unrecognized string value"),
    (ts(2, devices=["0", "GPU-nothex"]), "unsupported device reference(s) GPU-nothex"),
    ({"sharing": {"timeSlicing": {"resources": [{"name": "gpu", "replicas": 2}]},
                  "mps": {"resources": [{"name": "gpu", "replicas": 2}]}}}, "mutually exclusive"),
    ({"flags": {"migStrategy": "mixed"}, "sharing": {"mps": {"resources": [{"name": "gpu", "replicas": 2}]}}},
     "migStrategy mixed is not supported with MPS"),
    ({"flags": {"plugin": {"deviceListStrategy": ["envvar", "nope"]}}}, "unknown device list strategy: nope"),
])
def test_the_plugin_would_refuse(config, message):
    problems = nvidia.config_problems(config)
    assert any(message in p for p in problems), problems


def test_device_references_accepted():
    assert nvidia.config_problems(ts(2, devices=["0", "1:0", "GPU-0a1b2c3d-0000-1111-2222-333344445555"])) == []
    assert nvidia.config_problems(ts(2, devices=3)) == []
    assert nvidia.config_problems(ts(2, devices="all")) == []


def test_config_set_names_and_default():
    problems = nvidia.config_set_problems({"ok": ts(2), "bad name!": ts(2)}, default="missing")
    assert any("config name 'bad name!' must be a label value" in p for p in problems)
    assert any("default config 'missing' is not one of the configs (bad name!, ok)" in p for p in problems)
    assert nvidia.config_set_problems({}) == [
        "no device plugin configuration given (expected a mapping of name -> config)"]


def test_sharing_summary():
    assert nvidia.sharing_summary(ts(4)) == ("time-slicing", 4)
    assert nvidia.sharing_summary({}) == ("none", 1)


# ------------------------------------------------------------------ filters


def test_time_slicing_filter_builds_the_config_and_zero_means_none():
    config = filters.nvidia_time_slicing_config("4", True, True, "single")
    assert config == {"version": "v1", "flags": {"migStrategy": "single"}, "sharing": {"timeSlicing": {
        "renameByDefault": True, "failRequestsGreaterThanOne": True,
        "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}}
    assert "sharing" not in filters.nvidia_time_slicing_config(0)
    assert filters.nvidia_device_plugin_config_problems({"default": filters.nvidia_time_slicing_config(1)}) == [
        "config default.sharing.timeSlicing.resources[0]: number of replicas must be >= 2 (got 1)"]


def test_config_map_filter_renders_yaml_the_plugin_reads():
    rendered = filters.nvidia_device_plugin_config_map({"default": {}, "a100-ts4": ts(4)}, "default")
    assert sorted(rendered) == ["a100-ts4", "default"]
    assert yaml.safe_load(rendered["a100-ts4"]) == ts(4)


def test_config_map_filter_fails_naming_every_problem():
    with pytest.raises(AnsibleFilterError) as err:
        filters.nvidia_device_plugin_config_map({"default": ts(1), "x": {"flags": {"migStrategy": "all"}}}, "default")
    assert "number of replicas must be >= 2" in str(err.value) and "unknown MIG strategy: all" in str(err.value)
