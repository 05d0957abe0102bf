"""The lab's Ascend Docker Runtime release package (stand-in): built into a temporary cache, served by
the mirror stand-in, and run for real — install, upgrade, uninstall, refusals — with the lab-only
``ASCEND_DOCKER_RUNTIME_LAB_ROOT`` rooting everything it touches in a temporary directory (nothing on
the host changes). The files it writes, their modes and contents are checked against what the real
installer of each release writes (MindCluster ``component/ascend-docker-runtime`` at v26.0.1/v26.1.0).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from labctl import paths
from labctl.repos import ascend, common

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("bash", "tar", "gzip", "sha256sum", "realpath")) or
    not os.access("/usr/bin/python3", os.X_OK),
    reason="needs bash, tar, gzip, sha256sum, realpath and /usr/bin/python3")

PINNED = ascend.PINNED_VERSION
OLDER = ascend.VERSIONS[0]
IP = ascend.INSTALL_PATH
INFO_KEYS = ["version", "arch", "os", "path", "build", "a500", "a500a2", "a200", "a200isoc", "a200ia2",
             "install-scene", "config-file-path"]


@pytest.fixture(scope="module")
def built(lab_dirs):
    messages = []
    started = time.monotonic()
    directory = ascend.ensure_built(log=messages.append)
    return {"dir": directory, "messages": messages, "seconds": time.monotonic() - started,
            "packages": {v: directory / f"v{v}" / ascend.filename(v) for v in ascend.VERSIONS}}


class Machine:
    """A temporary root the installer works in (``ASCEND_DOCKER_RUNTIME_LAB_ROOT``)."""

    def __init__(self, base: Path, built: dict):
        self.root = base / "root"
        self.tmp = base / "tmp"   # the package extracts itself here ($TMPDIR)
        self.work = base / "downloads"
        for d in (self.root, self.tmp, self.work):
            d.mkdir(mode=0o755)
        self.packages = {}
        for version, path in built["packages"].items():  # what get_url would leave: the file, its real name
            target = self.work / path.name
            shutil.copyfile(path, target)
            target.chmod(0o700)
            self.packages[version] = target

    def path(self, real: str) -> Path:
        return self.root / real.lstrip("/")

    def run(self, *args: str, version: str = PINNED, stdin: str | None = "Y\n", package: Path | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        environ = {k: v for k, v in os.environ.items() if k not in ("TMPDIR", "SSH_CLIENT")}
        environ.update({ascend.LAB_ROOT_ENV: str(self.root), "TMPDIR": str(self.tmp), **(env or {})})
        return subprocess.run([str(package or self.packages[version]), *args], cwd=self.work, env=environ,
                              input=stdin if stdin is not None else "", capture_output=True, text=True,
                              timeout=120, check=False)

    def info(self, path: str = ascend.INSTALL_INFO) -> dict:
        text = self.path(path).read_text()
        return dict(line.split("=", 1) for line in text.splitlines())

    def daemon(self, path: str = "/etc/docker/daemon.json") -> dict:
        return json.loads(self.path(path).read_text())

    def tree(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*"))


@pytest.fixture
def machine(tmp_path, built):
    return Machine(tmp_path, built)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


# ----------------------------------------------------------------------------- the built packages
def test_built_once_into_the_cache_then_reused(built, lab_dirs):
    assert any("building the Ascend Docker Runtime" in m for m in built["messages"])
    assert built["seconds"] < 60
    again = []
    assert ascend.ensure_built(log=again.append) == built["dir"]
    assert not again
    assert built["dir"].parent == lab_dirs[0] / "repos" / "ascend-docker-runtime"
    manifest = json.loads((built["dir"] / ascend.MANIFEST).read_text())
    for version, path in built["packages"].items():
        assert path.name == f"Ascend-docker-runtime_{version}_linux-{ascend.arch()}.run"
        assert manifest["packages"][version]["sha256"] == common.sha256_file(path)
        assert path.read_bytes() == ascend.package_bytes(version)  # reproducible: same bytes every build
        assert path.read_bytes().startswith(b"#!/bin/bash\n")


def _payload_listing(package: Path) -> list[str]:
    """``tar tv`` of the gzip'd tar after the header's ``skip`` lines (what makeself extracts)."""
    lines = package.read_bytes().split(b"\n")
    skip = int(next(line for line in lines if line.startswith(b"skip=")).split(b'"')[1])
    payload = b"\n".join(lines[skip:])
    listing = subprocess.run(["tar", "tvzf", "-"], input=payload, capture_output=True, check=True).stdout
    return listing.decode().splitlines()


def test_package_is_a_makeself_style_archive(built):
    data = built["packages"][PINNED].read_bytes()
    header = data.split(b"\x1f\x8b", 1)[0]
    skip = int(next(line for line in header.decode().splitlines() if line.startswith("skip=")).split('"')[1])
    assert header.count(b"\n") == skip
    listing = _payload_listing(built["packages"][PINNED])
    names = {line.split()[-1] for line in listing}
    assert {"./run_main.sh", "./uninstall.sh", "./ascend-docker-runtime", "./ascend-docker-hook", "./ascend-docker-cli",
            "./ascend-docker-destroy", "./ascend-docker-plugin-install-helper", "./base.list", "./base.list_A500",
            "./README.md", "./assets/20230118566.png", "./agreement.txt"} <= names
    assert all(" root/root " in line for line in listing)
    assert "./agreement.txt" not in {line.split()[-1] for line in _payload_listing(built["packages"][OLDER])}


def test_published_into_the_mirror_with_state(built, lab_dirs, tmp_path):
    mirror = tmp_path / "mirror"
    info = ascend.publish(log=lambda m: None, mirror=mirror)
    for version in ascend.VERSIONS:
        link = mirror / "ascend/mind-cluster/releases/download" / f"v{version}" / ascend.filename(version)
        assert link.is_symlink() and link.resolve() == built["packages"][version].resolve()
    assert info["url"] == (f"http://10.77.0.1:8380/ascend/mind-cluster/releases/download/v{PINNED}/"
                           f"{ascend.filename(PINNED)}")
    assert info["sha256"] == common.sha256_file(built["packages"][PINNED])
    assert info["version"] == PINNED and info["filename"] == ascend.filename(PINNED)
    assert info["installed_version"] == f"v{PINNED}" and info["eula_prompt"] is True
    assert info["install_path"] == "/usr/local/Ascend/Ascend-Docker-Runtime"
    assert info["install_info_path"] == "/usr/local/Ascend/Ascend-Docker-Runtime/ascend_docker_runtime_install.info"
    assert info["runtime_path"] == "/usr/local/Ascend/Ascend-Docker-Runtime/ascend-docker-runtime"
    assert info["install_scenes"]["containerd"] == "/etc/containerd/config.toml"
    assert info["versions"][OLDER]["sha256"] == common.sha256_file(built["packages"][OLDER])
    assert info["versions"][OLDER]["eula_prompt"] is False and info["older_version"] == OLDER
    assert info["built"] is True
    # the lab's own publish: the mirror under lab/state/storage, the state file for the inventory
    state_info = ascend.publish(log=lambda m: None)
    state = json.loads((lab_dirs[1] / "repos" / "ascend-docker-runtime.json").read_text())
    assert state == json.loads(json.dumps(state_info))
    assert {"url", "sha256", "version", "filename"} <= set(state)
    assert (lab_dirs[1] / "storage" / "mirror" / "ascend/mind-cluster/releases/download" / f"v{PINNED}" /
            ascend.filename(PINNED)).is_symlink()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_by_the_mirror_stand_in(built, tmp_path):
    root, state = tmp_path / "mirror", tmp_path / "mirror-state"
    root.mkdir()
    state.mkdir()
    port = _free_port()
    info = ascend.publish(log=lambda m: None, base_url=f"http://127.0.0.1:{port}", mirror=root)
    proc = subprocess.Popen([sys.executable, "-m", "labctl.storage.mirror", "--root", str(root), "--port", str(port),
                             "--bind", "127.0.0.1", "--state-dir", str(state)],
                            env=dict(os.environ, PYTHONPATH=str(paths.LAB_DIR)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (state / "mirror.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "mirror stand-in did not start"
            time.sleep(0.05)
        for release in info["versions"].values():
            with urllib.request.urlopen(release["url"], timeout=10) as resp:
                assert hashlib.sha256(resp.read()).hexdigest() == release["sha256"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# ----------------------------------------------------------------------------- the header
def test_version_help_and_unknown_options(machine):
    version = ok(machine.run("--version", stdin=None)).stdout.splitlines()
    assert version == ["Uncompressing ascend-docker-runtime", f"ascend-docker-runtime version: {PINNED}"]
    assert machine.run("--version", version=OLDER).stdout.splitlines()[-1] == f"ascend-docker-runtime version: {OLDER}"
    helped = ok(machine.run("--help"))
    for option in ("--install", "--install-path", "--uninstall", "--upgrade", "--install-type", "--version",
                   "--install-scene", "--config-file-path"):
        assert f"  {option}" in helped.stderr
    for bad in (["--foo"], ["install"], ["--install", "--injection-mode=cdi"], ["--check"], ["--ce=isula"]):
        refused = machine.run(*bad)
        assert refused.returncode == 1, bad
        assert refused.stderr.startswith("Error input\nUsage:"), bad
    assert machine.tree() == ["var", "var/log", "var/log/ascend-docker-runtime",
                              "var/log/ascend-docker-runtime/installer.log"]
    assert not any(machine.tmp.iterdir())  # the extracted copy is removed every time


def test_legacy_header_options_of_the_older_release(machine, tmp_path):
    checked = ok(machine.run("--check", version=OLDER))
    assert "All good." in checked.stdout and "SHA256 checksums are OK." in checked.stderr
    assert ok(machine.run("--info", version=OLDER)).stdout.splitlines()[-1] == "ascend-docker-runtime pkg"
    assert "  run_main.sh" in ok(machine.run("--list", version=OLDER)).stdout
    # a damaged download fails the check with makeself's exit code 2
    damaged = tmp_path / ascend.filename(OLDER)
    data = bytearray(machine.packages[OLDER].read_bytes())
    data[-100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    damaged.chmod(0o700)
    proc = machine.run("--check", package=damaged)
    assert proc.returncode == 2 and "Error in SHA256 checksums" in proc.stderr


# ----------------------------------------------------------------------------- install / uninstall (docker)
def test_install_docker_scene_writes_what_the_real_installer_writes(machine):
    daemon = machine.path("/etc/docker/daemon.json")
    daemon.parent.mkdir(parents=True)
    daemon.write_text(json.dumps({"log-driver": "json-file", "insecure-registries": ["10.77.0.1:5000"],
                                  "runtimes": {"nvidia-old": {"path": "/x"}}}))
    proc = ok(machine.run("--install"))
    assert "Do you accept the EULA to install Ascend-docker-runtime?[Y/N]" in proc.stdout
    assert f"[INFO] ascend-docker-runtime has been installed in: {IP}" in proc.stdout
    base = machine.path(IP)
    for name in ("ascend-docker-runtime", "ascend-docker-hook", "ascend-docker-cli", "ascend-docker-destroy",
                 "ascend-docker-plugin-install-helper"):
        assert _mode(base / name) == 0o550, name
    assert _mode(base / "script" / "uninstall.sh") == 0o500
    assert _mode(base / "README.md") == 0o640 and _mode(base / "assets" / "20230118566.png") == 0o640
    assert _mode(base) == 0o750 and _mode(base / "script") == 0o750
    base_list = machine.path("/etc/ascend-docker-runtime.d/base.list")
    assert base_list.read_text().splitlines() == ["/usr/local/Ascend/driver/lib64", "/usr/local/Ascend/driver/include",
                                                  "/usr/local/dcmi", "/usr/local/bin/npu-smi", "/var/queue_schedule"]
    assert _mode(base_list) == 0o440 and _mode(base_list.parent) == 0o750
    info = machine.info()
    assert list(info) == INFO_KEYS
    assert info["version"] == f"v{PINNED}" and info["path"] == IP and info["os"] == "linux"
    assert info["arch"] == ascend.arch() and info["build"] == f"Ascend-docker-runtime_{PINNED}-{ascend.arch()}"
    assert info["install-scene"] == "docker" and info["config-file-path"] == "" and info["a500"] == "n"
    assert _mode(machine.path(ascend.INSTALL_INFO)) == 0o640
    # daemon.json: ascend added and made the default, every other key kept, Go's indented layout, 0600
    assert machine.daemon() == {"log-driver": "json-file", "insecure-registries": ["10.77.0.1:5000"],
                                "default-runtime": "ascend",
                                "runtimes": {"nvidia-old": {"path": "/x"},
                                             "ascend": {"path": f"{IP}/ascend-docker-runtime", "runtimeArgs": []}}}
    assert daemon.read_text().startswith('{\n        "default-runtime": "ascend",\n')
    assert _mode(daemon) == 0o600
    assert not list(daemon.parent.glob("daemon.json.*"))  # the helper's temporary file was moved over it
    log = machine.path(ascend.INSTALL_LOG).read_text()
    assert "user accepted EULA" in log and "ascend-docker-runtime install success" in log
    # the programs answer
    runtime = subprocess.run([str(base / "ascend-docker-runtime"), "--version"], capture_output=True, text=True,
                             check=True)
    assert PINNED in runtime.stdout
    # installing again converges on the same files
    before = {p: machine.path(p).read_bytes() for p in ("/etc/docker/daemon.json", ascend.INSTALL_INFO)}
    ok(machine.run("--install"))
    assert before == {p: machine.path(p).read_bytes() for p in before}


def test_install_creates_daemon_json_from_the_template(machine):
    ok(machine.run("--install"))
    assert machine.path("/etc/docker/daemon.json").read_text() == (
        '{\n        "runtimes":     {\n                "ascend":       {\n'
        f'                        "path": "{IP}/ascend-docker-runtime",\n'
        '                        "runtimeArgs":  []\n                }\n        },\n'
        '        "default-runtime":      "ascend"\n}')
    assert _mode(machine.path("/etc/docker")) == 0o750


def test_uninstall_restores_daemon_json_and_removes_everything(machine):
    daemon = machine.path("/etc/docker/daemon.json")
    daemon.parent.mkdir(parents=True)
    daemon.write_text(json.dumps({"log-driver": "json-file", "default-runtime": "runc"}))
    ok(machine.run("--install"))
    assert machine.daemon()["default-runtime"] == "ascend"
    proc = ok(machine.run("--uninstall", stdin=None))
    assert f"[INFO] delete {IP} successful" in proc.stdout
    assert machine.daemon() == {"log-driver": "json-file", "runtimes": {}}  # the real helper leaves runtimes: {}
    assert not machine.path(IP).exists()
    assert not machine.path("/etc/ascend-docker-runtime.d").exists()
    assert machine.path("/usr/local/Ascend").is_dir()  # only Ascend-Docker-Runtime goes
    assert "ascend-docker-runtime uninstall success" in machine.path(ascend.INSTALL_LOG).read_text()
    # nothing installed any more: a warning, exit 0
    again = ok(machine.run("--uninstall", stdin=None))
    assert "uninstall skipping, the specified install path does not exist" in again.stdout


def test_uninstall_with_the_wrong_scene_removes_nothing(machine):
    config = machine.path("/etc/containerd/config.toml")
    config.parent.mkdir(parents=True)
    config.write_text('version = 2\n')
    ok(machine.run("--install", "--install-scene=containerd"))
    # without --install-scene=containerd the installed uninstall.sh looks at /etc/docker/daemon.json, which
    # does not exist: it stops there with exit 0, as the real one does
    proc = ok(machine.run("--uninstall", stdin=None))
    assert "uninstall skipping, /etc/docker/daemon.json does not exist" in proc.stdout
    assert machine.path(ascend.INSTALL_INFO).is_file()
    assert "ascend" in config.read_text()
    ok(machine.run("--uninstall", "--install-scene=containerd", stdin=None))
    assert not machine.path(IP).exists()


def test_isula_scene_keeps_the_default_runtime(machine):
    ok(machine.run("--install", "--install-scene=isula"))
    isulad = json.loads(machine.path("/etc/isulad/daemon.json").read_text())
    assert isulad == {"runtimes": {"ascend": {"path": f"{IP}/ascend-docker-runtime", "runtimeArgs": []}}}
    assert machine.info()["install-scene"] == "isula"


# ----------------------------------------------------------------------------- containerd
CONTAINERD_V2 = """\
version = 2
root = "/var/lib/containerd"

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true
      NoNewKeyring = true
"""


def test_containerd_scene_copies_runc_and_becomes_the_default(machine):
    config = machine.path("/etc/containerd/config.toml")
    config.parent.mkdir(parents=True)
    config.write_text(CONTAINERD_V2)
    ok(machine.run("--install", "--install-scene=containerd"))
    tree = tomllib.loads(config.read_text())
    cri = tree["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    assert cri["default_runtime_name"] == "ascend" and cri["snapshotter"] == "overlayfs"
    assert cri["runtimes"]["ascend"] == {"runtime_type": "io.containerd.runc.v2",
                                         "options": {"SystemdCgroup": True, "NoNewKeyring": True,
                                                     "BinaryName": f"{IP}/ascend-docker-runtime"}}
    assert cri["runtimes"]["runc"]["options"] == {"SystemdCgroup": True, "NoNewKeyring": True}
    assert tree["version"] == 2 and tree["root"] == "/var/lib/containerd"
    assert _mode(config) == 0o600
    assert machine.info()["install-scene"] == "containerd"
    ok(machine.run("--uninstall", "--install-scene=containerd", stdin=None))
    tree = tomllib.loads(config.read_text())
    cri = tree["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    assert cri["default_runtime_name"] == "runc" and "ascend" not in cri["runtimes"]
    assert cri["runtimes"]["runc"]["options"]["SystemdCgroup"] is True


def test_containerd_config_versions_pick_the_cri_plugin(machine):
    config = machine.path("/etc/containerd/config.toml")
    config.parent.mkdir(parents=True)
    config.write_text("version = 3\n")
    ok(machine.run("--install", "--install-scene=containerd"))
    runtime = tomllib.loads(config.read_text())["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]
    assert runtime["default_runtime_name"] == "ascend"
    assert runtime["runtimes"]["ascend"]["options"] == {"SystemdCgroup": True,
                                                         "BinaryName": f"{IP}/ascend-docker-runtime"}
    assert runtime["runtimes"]["ascend"]["runtime_type"] == "io.containerd.runc.v2"


def test_containerd_config_is_created_when_missing(machine):
    # `containerd config default` first (no containerd here: an empty file, as on a host without it)
    proc = ok(machine.run("--install", "--install-scene=containerd", env={"PATH": "/usr/bin:/bin"}))
    assert "containerd config file does not exist, default /etc/containerd/config.toml will be created" in proc.stdout
    tree = tomllib.loads(machine.path("/etc/containerd/config.toml").read_text())
    assert tree["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["default_runtime_name"] == "ascend"


def test_config_file_path_edits_that_file(machine):
    template = machine.path("/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl")
    template.parent.mkdir(parents=True)
    template.write_text(CONTAINERD_V2)
    missing = machine.run("--install", "--install-scene=containerd", "--config-file-path=/etc/nope.toml")
    assert missing.returncode == 1 and "file '/etc/nope.toml' does not exist" in missing.stdout
    ok(machine.run("--install", "--install-scene=containerd",
                   "--config-file-path=/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl"))
    tree = tomllib.loads(template.read_text())
    assert tree["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["default_runtime_name"] == "ascend"
    assert not machine.path("/etc/containerd/config.toml").exists()
    assert machine.info()["config-file-path"] == "/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl"
    # a Go template (RKE2's {{ template "base" . }}) is no TOML: the helper fails, the installer exits 1
    template.write_text('{{ template "base" . }}\n')
    failed = machine.run("--install", "--install-scene=containerd",
                         "--config-file-path=/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl")
    assert failed.returncode == 1 and "install failed" in failed.stdout
    assert template.read_text() == '{{ template "base" . }}\n'


def test_config_file_in_a_world_writable_directory_is_refused_by_the_helper(machine):
    shared = machine.path("/srv/shared")
    shared.mkdir(parents=True)
    shared.chmod(0o777)
    (shared / "config.toml").write_text(CONTAINERD_V2)
    proc = machine.run("--install", "--install-scene=containerd", "--config-file-path=/srv/shared/config.toml")
    assert proc.returncode == 1 and "install failed" in proc.stdout
    assert "write permission not right" in proc.stderr
    assert (shared / "config.toml").read_text() == CONTAINERD_V2


# ----------------------------------------------------------------------------- EULA, upgrade, refusals
def test_eula_prompt_of_the_pinned_release(machine):
    declined = ok(machine.run("--install", stdin="N\n"))
    assert "install cancelled, user declined EULA" in declined.stdout
    assert not machine.path(IP).exists()
    unanswered = machine.run("--install", stdin=None)
    assert unanswered.returncode == 1 and "no answer to the EULA prompt" in unanswered.stdout
    assert not machine.path(IP).exists()
    retried = ok(machine.run("--install", stdin="maybe\ny\n"))
    assert retried.stdout.count("Do you accept the EULA") == 2 and machine.path(IP).is_dir()


def test_the_older_release_installs_without_asking(machine):
    proc = ok(machine.run("--install", version=OLDER, stdin=None))
    assert "EULA" not in proc.stdout
    assert machine.info()["version"] == f"v{OLDER}"


def test_upgrade_replaces_programs_and_record_not_the_runtime_config(machine):
    config = machine.path("/etc/containerd/config.toml")
    config.parent.mkdir(parents=True)
    config.write_text(CONTAINERD_V2)
    refused = machine.run("--upgrade")
    assert refused.returncode == 1 and "the specified install path does not exist" in refused.stdout
    ok(machine.run("--install", "--install-scene=containerd", version=OLDER, stdin=None))
    before = config.read_bytes()
    proc = ok(machine.run("--upgrade", "--install-scene=containerd"))
    assert f"[INFO] The version of ascend-docker-runtime is: v{PINNED}" in proc.stdout
    assert machine.info()["version"] == f"v{PINNED}" and machine.info()["install-scene"] == "containerd"
    assert config.read_bytes() == before
    tool = subprocess.run([str(machine.path(IP) / "ascend-docker-hook"), "--version"], capture_output=True,
                          text=True, check=True)
    assert PINNED in tool.stdout
    # without --install-scene the record says docker afterwards (run_main.sh's default), as the real one
    ok(machine.run("--upgrade"))
    assert machine.info()["install-scene"] == "docker"


def test_install_path_option(machine):
    ok(machine.run("--install", "--install-path=/opt/ascend"))
    assert machine.info("/opt/ascend/Ascend-Docker-Runtime/ascend_docker_runtime_install.info")["path"] == \
        "/opt/ascend/Ascend-Docker-Runtime"
    assert not machine.path(IP).exists()
    assert machine.daemon()["runtimes"]["ascend"]["path"] == "/opt/ascend/Ascend-Docker-Runtime/ascend-docker-runtime"
    ok(machine.run("--uninstall", "--install-path=/opt/ascend", stdin=None))
    assert not machine.path("/opt/ascend/Ascend-Docker-Runtime").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--install", "--install"], "'--install' Repeat parameter!"),
    (["--install-path=/opt/x"], "When use --install-path you also need input --install"),
    (["--install-scene=containerd"], "When use --install-scene you also need input --install"),
    (["--install", "--install-scene=crio"], "please check the parameter of --install-scene=<scene>"),
    (["--install", "--install-type=A300"], "please check the parameter of --install-type=<type>"),
    (["--install", "--install-path=relative"], "is a relative path, please use absolute path"),
])
def test_refusals_exit_1_and_change_nothing(machine, args, message):
    proc = machine.run(*args)
    assert proc.returncode == 1 and message in proc.stdout, proc.stdout
    assert not machine.path(IP).exists() and not machine.path("/etc/docker").exists()


def test_a_renamed_package_fails_the_platform_check(machine):
    renamed = machine.work / "ascend-docker-runtime.run"
    shutil.copyfile(machine.packages[PINNED], renamed)
    renamed.chmod(0o700)
    proc = machine.run("--install", package=renamed)
    assert proc.returncode == 1 and f"platform({ascend.arch()}) mismatch" in proc.stdout
    assert not machine.path(IP).exists()


def test_unsafe_install_path_is_refused(machine):
    machine.path("/opt/shared").mkdir(parents=True)
    machine.path("/opt/shared").chmod(0o777)
    proc = machine.run("--install", "--install-path=/opt/shared")
    assert proc.returncode == 1 and "group or other of /opt/shared has write permission" in proc.stdout


# ----------------------------------------------------------------------------- the install helper alone
@pytest.fixture(scope="module")
def helper():
    spec = importlib.util.spec_from_file_location("ascend_install_helper", ascend.SOURCE_DIR / "install_helper.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def helper_root(helper, tmp_path, monkeypatch):
    """The helper checks every parent up to ``/`` (tmp's /tmp is world-writable): stop at tmp_path."""
    monkeypatch.setattr(helper, "LAB_ROOT", str(tmp_path))
    return tmp_path


def test_helper_checks_paths_like_mindxcheckutils(helper, helper_root):
    shared = helper_root / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o777)
    (shared / "daemon.json").write_text("{}")
    with pytest.raises(helper.HelperError, match="write permission not right"):
        helper.docker("add", str(shared / "daemon.json"), str(helper_root / "out.json"), "/rt", False)
    (helper_root / "real.json").write_text("{}")
    (helper_root / "link.json").symlink_to(helper_root / "real.json")
    with pytest.raises(helper.HelperError, match="symlinks"):
        helper.docker("add", str(helper_root / "link.json"), str(helper_root / "out.json"), "/rt", False)
    with pytest.raises(helper.HelperError, match="err path"):
        helper.docker("add", f"{helper_root}/x/../real.json", str(helper_root / "out.json"), "/rt", False)
    helper.docker("add", str(helper_root / "real.json"), str(helper_root / "out.json"), "/rt", False)
    assert json.loads((helper_root / "out.json").read_text())["default-runtime"] == "ascend"


def test_helper_go_json_layout_and_rm_of_a_foreign_default(helper, helper_root):
    tmp_path = helper_root
    src, dest = tmp_path / "daemon.json", tmp_path / "daemon.json.1"
    src.write_text(json.dumps({"default-runtime": "nvidia", "registry": "a&b",
                               "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}))
    helper.docker("rm", str(src), str(dest), "", False)
    assert json.loads(dest.read_text()) == {"default-runtime": "nvidia", "registry": "a&b",
                                            "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}
    assert "a\\u0026b" in dest.read_text()  # Go escapes &, <, >
    with pytest.raises(helper.HelperError, match="target file already existed"):
        helper.docker("rm", str(src), str(dest), "", False)


def test_helper_containerd_without_runc_uses_the_default_options(helper, helper_root):
    tmp_path = helper_root
    src, dest = tmp_path / "config.toml", tmp_path / "config.toml.1"
    src.write_text('version = 1\n[plugins.cri.containerd]\n  snapshotter = "overlayfs"\n')
    helper.containerd("add", str(src), str(dest), "/rt")
    cri = tomllib.loads(dest.read_text())["plugins"]["cri"]["containerd"]
    assert cri["runtimes"]["ascend"] == {"runtime_type": "io.containerd.runc.v2", "runtime_root": "",
                                         "runtime_engine": "", "privileged_without_host_devices": False,
                                         "options": {"SystemdCgroup": True, "BinaryName": "/rt"}}
    src.write_text(dest.read_text())
    dest.unlink()
    helper.containerd("rm", str(src), str(dest), "")
    cri = tomllib.loads(dest.read_text())["plugins"]["cri"]["containerd"]
    assert cri == {"snapshotter": "overlayfs", "default_runtime_name": "runc"}  # empty runtimes table dropped
