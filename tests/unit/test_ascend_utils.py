"""module_utils/ascend: Ascend version order, the driver precondition, the runtime's install record, the
MindCluster accounts against the user and group databases, the role's record of what it created, and the
managed block in RKE2's containerd template."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest
from ansible_collections.aicluster.platform.plugins.module_utils import ascend

FIXTURES = Path(__file__).parent / "fixtures"
NPU_SMI = (FIXTURES / "npu_smi_910b_x8.txt").read_text()
VERSION_INFO = (FIXTURES / "ascend_version_info.txt").read_text()

# ------------------------------------------------------------------ versions


@pytest.mark.parametrize(("older", "newer"), [
    ("24.1.rc3", "24.1.0"),          # a release candidate comes before the release
    ("24.1.rc2", "24.1.rc3"),
    ("24.1.rc3", "24.1.rc3.1"),
    ("23.0.0", "24.1.rc1"),
    ("6.0.RC2", "6.0.0"),
    ("6.0.RC3", "v7.0.RC1"),
    ("7.0.RC1", "26.0.0"),
    ("26.0.0", "26.0.1"),
    ("24.1.rc3", "24.1"),            # the release line is the release
    ("23.0.rc3.b070", "23.0.rc3"),   # a build of a release candidate comes before it
    ("25.2.alpha1", "25.2.beta1"),
])
def test_version_order(older, newer):
    assert ascend.compare_versions(older, newer) == -1
    assert ascend.compare_versions(newer, older) == 1


@pytest.mark.parametrize(("left", "right"), [
    ("26.0.0", "v26.0.0"), ("24.1", "24.1.0"), ("6.0.RC2", "6.0.rc2"), ("V26.0.0", "26.0.0.0")])
def test_versions_equal(left, right):
    assert ascend.compare_versions(left, right) == 0
    assert ascend.versions_equal(left, right)


@pytest.mark.parametrize(("found", "minimum", "ok"), [
    ("24.1.rc3", "23.0.0", True), ("24.1.rc3", "24.1.rc3", True), ("24.1.rc3", "24.1.0", False),
    ("23.0.rc3", "23.0.0", False), ("24.1.rc3", "", True), (None, "23.0.0", False), ("", "", False),
])
def test_version_at_least(found, minimum, ok):
    assert ascend.version_at_least(found, minimum) is ok


def test_not_a_version():
    with pytest.raises(ValueError, match="not a version"):
        ascend.version_key("  ")
    assert ascend.versions_equal(None, "1.0") is False


# ------------------------------------------------------------------ driver


def test_driver_ok_from_npu_smi_and_version_info():
    report = ascend.driver_report("/usr/local/bin/npu-smi", (0, NPU_SMI, ""), VERSION_INFO,
                                  "/usr/local/Ascend/driver/version.info", "23.0.0")
    assert report["ok"] is True and report["error"] is None
    assert report["npu_smi_ok"] and report["chips"] == 8
    assert report["version"] == ascend.accelerators.parse_ascend_version_info(VERSION_INFO)


def test_driver_missing_npu_smi_and_version_file():
    report = ascend.driver_report(None, None, None, "/usr/local/Ascend/driver/version.info", "23.0.0")
    assert report["ok"] is False
    assert report["error"] == ("npu-smi not found (it comes with the Ascend driver); "
                               "/usr/local/Ascend/driver/version.info not found")


def test_driver_npu_smi_failing_names_its_message():
    report = ascend.driver_report("/usr/local/bin/npu-smi", (
        255, "", "dcmi model initialized failed, because the device is used. ret is -8020\n"),
        "Version=24.1.rc3\n", "/v", "")
    assert report["ok"] is False
    assert report["error"] == ("npu-smi info exited 255: dcmi model initialized failed, because the device is "
                               "used. ret is -8020")
    assert report["version"] == "24.1.rc3"


def test_driver_too_old_and_no_chip():
    old = ascend.driver_report("/s", (0, NPU_SMI, ""), "Version=23.0.rc3\n", "/v", "24.1.rc1")
    assert old["ok"] is False and old["error"] == "driver 23.0.rc3 is older than 24.1.rc1"
    empty = ascend.driver_report("/s", (0, "no table here\n", ""), "Version=24.1.rc3\n", "/v", "")
    assert empty["error"] == "npu-smi info printed no NPU"
    blank = ascend.driver_report("/s", (0, NPU_SMI, ""), "package_version=1\n", "/v", "")
    assert blank["error"] == "/v has no Version= line"


# ------------------------------------------------------------------ runtime install record

INSTALL_INFO = """version=v26.0.0
arch=x86_64
os=linux
path=/usr/local/Ascend/Ascend-Docker-Runtime
build=Ascend-docker-runtime_26.0.0-x86_64
install-scene=containerd
config-file-path=/var/lib/aicluster/ascend-docker-runtime/installer/config.toml
injection-mode=
"""


def test_install_record_parsed_and_matched():
    report = ascend.runtime_report("/usr/local/Ascend/Ascend-Docker-Runtime", INSTALL_INFO, True, "26.0.0")
    assert report["installed"] and report["matches"] and report["version"] == "26.0.0"
    assert report["install_scene"] == "containerd" and report["injection_mode"] is None
    assert report["config_file_path"] == "/var/lib/aicluster/ascend-docker-runtime/installer/config.toml"
    assert report["binary"] == "/usr/local/Ascend/Ascend-Docker-Runtime/ascend-docker-runtime"


def test_install_record_other_version_missing_binary_or_none():
    assert ascend.runtime_report("/d", INSTALL_INFO, True, "v26.0.1")["matches"] is False
    half = ascend.runtime_report("/d", INSTALL_INFO, False, "26.0.0")
    assert half["installed"] is False and half["matches"] is False and half["version"] is None
    none = ascend.runtime_report("/d", None, False, "26.0.0")
    assert none["installed"] is False and none["wanted"] == "26.0.0"


@pytest.mark.parametrize(("out", "version"), [
    ("ascend-docker-runtime version: 26.0.0\n", "26.0.0"),
    ("[INFO] Ascend-docker-runtime version: v6.0.RC2\n", "6.0.rc2"),
    ("Usage: ...\n", None),
])
def test_package_version_output(out, version):
    assert ascend.parse_runtime_version_output(out) == version


# ------------------------------------------------------------------ accounts

PW = {"root": (0, 0), "cloudsdk": (1000, 1000), "HwHiAiUser": (1001, 1001), "hwMindX": (9000, 9000)}
GR = {"root": (0, []), "cloudsdk": (1000, []), "HwHiAiUser": (1001, ["hwMindX"]), "hwMindX": (9000, []),
      "users": (100, [])}


class FakeDb:
    """pwd/grp/getgrouplist over small tables (the module passes the real ones)."""

    def __init__(self, users, groups):
        self.users, self.groups = users, groups

    def getpwnam(self, name):
        uid, gid = self.users[name]
        return pwd.struct_passwd((name, "x", uid, gid, "", f"/home/{name}", "/bin/sh"))

    def getpwuid(self, uid):
        try:
            return self.getpwnam(next(n for n, (u, _g) in self.users.items() if u == uid))
        except StopIteration:
            raise KeyError(uid) from None

    def getgrnam(self, name):
        gid, members = self.groups[name]
        return grp.struct_group((name, "x", gid, members))

    def getgrgid(self, gid):
        try:
            return self.getgrnam(next(n for n, (g, _m) in self.groups.items() if g == gid))
        except StopIteration:
            raise KeyError(gid) from None

    def getgrouplist(self, user, gid):
        return [gid] + [g for g, members in self.groups.values() if user in members]

    def report(self, accounts):
        return ascend.account_report(accounts, self.getpwnam, self.getpwuid, self.getgrnam, self.getgrgid,
                                     self.getgrouplist)


DRIVER = {"user": "HwHiAiUser", "uid": 1000, "group": "HwHiAiUser", "gid": 1000, "groups": []}
MINDX = {"user": "hwMindX", "uid": 9000, "group": "hwMindX", "gid": 9000, "groups": ["HwHiAiUser"]}


def test_missing_accounts_are_not_problems():
    db = FakeDb({"root": (0, 0)}, {"root": (0, [])})
    report, problems = db.report([DRIVER, MINDX])
    assert problems == []
    assert report["HwHiAiUser"]["user_exists"] is False and report["HwHiAiUser"]["group_exists"] is False
    assert report["hwMindX"]["missing_groups"] == ["HwHiAiUser"] and report["hwMindX"]["ok"] is False


def test_a_uid_or_gid_taken_by_another_name_is_a_problem():
    db = FakeDb({"root": (0, 0), "cloudsdk": (1000, 1000)}, {"root": (0, []), "cloudsdk": (1000, [])})
    _report, problems = db.report([DRIVER])
    assert problems == ["gid 1000 wanted for group HwHiAiUser is taken by group cloudsdk",
                        "uid 1000 wanted for user HwHiAiUser is taken by user cloudsdk"]


def test_a_name_with_other_ids_is_a_problem():
    db = FakeDb(PW, GR)
    report, problems = db.report([DRIVER, MINDX])
    assert "group HwHiAiUser exists with gid 1001, not 1000" in problems
    assert "user HwHiAiUser exists with uid 1001, not 1000" in problems
    assert "user HwHiAiUser exists with primary gid 1001, not 1000 (HwHiAiUser)" in problems
    assert report["hwMindX"]["ok"] is True and report["hwMindX"]["member_of"] == ["HwHiAiUser", "hwMindX"]


def test_existing_accounts_with_the_right_ids_are_ok():
    db = FakeDb({"HwHiAiUser": (1000, 1000), "hwMindX": (9000, 9000)},
                {"HwHiAiUser": (1000, []), "hwMindX": (9000, [])})
    report, problems = db.report([DRIVER, MINDX])
    assert problems == [] and report["HwHiAiUser"]["ok"] is True
    assert report["hwMindX"]["ok"] is False and report["hwMindX"]["missing_groups"] == ["HwHiAiUser"]


def test_one_id_wanted_twice_is_a_problem():
    db = FakeDb({}, {})
    _report, problems = db.report([DRIVER, {**MINDX, "uid": 1000}])
    assert problems == ["uid 1000 is wanted for both HwHiAiUser and hwMindX"]


def test_real_databases_through_nss():
    """The module passes pwd/grp/os.getgrouplist; root is on every machine."""
    report, problems = ascend.account_report([{"user": "root", "uid": 0, "group": "root", "gid": 0, "groups": []}],
                                             pwd.getpwnam, pwd.getpwuid, grp.getgrnam, grp.getgrgid,
                                             os.getgrouplist)
    assert problems == [] and report["root"]["ok"] is True and "root" in report["root"]["member_of"]


# ------------------------------------------------------------------ the role's record


def test_record_adds_what_is_missing_now_and_keeps_what_it_had():
    existing = {("users", "HwHiAiUser"), ("groups", "HwHiAiUser"), ("dirs", "/var"), ("dirs", "/var/lib"),
                ("log_dirs", "/var/log/mindx-dl")}
    planned = ascend.plan_record(
        {"users": ["old"], "files": ["/etc/x"]},
        {"users": ["HwHiAiUser", "hwMindX"], "groups": ["HwHiAiUser", "hwMindX"],
         "log_dirs": ["/var/log/mindx-dl", "/var/log/mindx-dl/noded"], "dirs": ["/var/lib/rancher/rke2/agent"],
         "files": ["/etc/x", "/etc/y"]},
        lambda kind, name: (kind, name) in existing, runtime_installed=False)
    assert planned == {"users": ["old", "hwMindX"], "groups": ["hwMindX"], "log_dirs": ["/var/log/mindx-dl/noded"],
                       "dirs": ["/var/lib/rancher", "/var/lib/rancher/rke2", "/var/lib/rancher/rke2/agent"],
                       "files": ["/etc/x", "/etc/y"], "runtime": True}


def test_record_runtime_ownership():
    def never(_kind, _name):
        return False

    assert ascend.plan_record(None, {}, never, runtime_installed=True)["runtime"] is False  # there before the role
    assert ascend.plan_record({"runtime": True}, {}, never, runtime_installed=True)["runtime"] is True


def test_load_record():
    assert ascend.load_record(None) is None and ascend.load_record(" \n") is None
    assert ascend.load_record('{"users": []}') == {"users": []}
    with pytest.raises(ValueError):
        ascend.load_record("[1]")


def test_removable_dirs_are_empty_once_the_role_s_files_are_gone(tmp_path):
    rke2 = tmp_path / "rke2" / "agent" / "etc" / "containerd"
    rke2.mkdir(parents=True)
    (rke2 / "config.toml.tmpl").write_text("x")
    other = tmp_path / "other"
    other.mkdir()
    (other / "site-file").write_text("x")
    dirs = [str(tmp_path / "rke2"), str(tmp_path / "rke2" / "agent"), str(tmp_path / "rke2" / "agent" / "etc"),
            str(rke2), str(other), str(tmp_path / "gone")]
    got = ascend.removable_dirs(dirs, [str(rke2 / "config.toml.tmpl")], os.listdir)
    assert got == [str(rke2), str(tmp_path / "rke2" / "agent" / "etc"), str(tmp_path / "rke2" / "agent"),
                   str(tmp_path / "rke2")]
    assert ascend.removable_dirs(dirs, [], os.listdir) == []


def test_missing_parents():
    assert ascend.missing_parents("/a/b/c/file", lambda d: d in ("/a",)) == ["/a/b", "/a/b/c"]
    assert ascend.missing_parents("/file", lambda d: False) == []


# ------------------------------------------------------------------ containerd template

BIN = "/usr/local/Ascend/Ascend-Docker-Runtime/ascend-docker-runtime"


def test_block_for_config_versions():
    v2 = ascend.runtime_block("ascend", BIN, 2)
    assert '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes."ascend"]\n' in v2
    assert '  runtime_type = "io.containerd.runc.v2"\n' in v2
    assert f'  BinaryName = "{BIN}"\n' in v2 and "  SystemdCgroup = {{ .SystemdCgroup }}\n" in v2
    v3 = ascend.runtime_block("ascend", BIN, 3)
    assert '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes."ascend".options]\n' in v3
    with pytest.raises(ValueError):
        ascend.runtime_block("ascend", BIN, 1)


@pytest.mark.parametrize(("text", "version"), [
    ('# File generated by rke2. DO NOT EDIT.\nversion = 3\nroot = "/x"\n', 3), ("version = 2\n", 2), (None, 2),
    ("[plugins]\n", 2)])
def test_config_version_of_rendered_config(text, version):
    assert ascend.containerd_config_version(text) == version


def test_template_created_then_stable_then_removed():
    block = ascend.runtime_block("ascend", BIN, 2)
    made = ascend.plan_template(None, block)
    assert made.startswith(ascend.TEMPLATE_HEADER + '{{ template "base" . }}\n\n# BEGIN aicluster')
    assert ascend.plan_template(made, block) == made
    assert ascend.template_state("/t", made, block, "present", False)["ok"] is True
    assert ascend.plan_template(made, block, "absent", created=True) is None
    kept = ascend.plan_template(made, block, "absent", created=False)
    assert kept == ascend.TEMPLATE_HEADER + '{{ template "base" . }}\n'
    state = ascend.template_state("/t", made, block, "absent", True)
    assert state["removed"] is True and state["ok"] is False
    assert ascend.plan_template(None, block, "absent", created=True) is None


def test_site_template_keeps_every_line_and_gets_the_block_replaced_in_place():
    site = '{{ template "base" . }}\n\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/x"\n'
    old_block = ascend.runtime_block("ascend", "/opt/old/ascend-docker-runtime", 2)
    new_block = ascend.runtime_block("ascend", BIN, 2)
    with_old = ascend.plan_template(site, old_block)
    assert with_old == site + "\n" + old_block
    trailer = "\n# site comment after the block\n"
    replaced = ascend.plan_template(with_old + trailer, new_block)
    assert replaced == site + "\n" + new_block + trailer
    assert ascend.plan_template(replaced, new_block, "absent", created=True) == site + trailer
    no_newline = ascend.plan_template("version = 2", new_block)
    assert no_newline == "version = 2\n\n" + new_block
    assert ascend.plan_template("   \n", new_block).startswith(ascend.TEMPLATE_HEADER)
