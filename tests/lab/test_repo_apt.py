"""The lab's NVIDIA Container Toolkit apt repository: built for real, read by the real apt-get/gpgv/dpkg.

apt runs against a private root (APT_CONFIG: every Dir:: under tmp, no host configuration read, no
lock taken), so nothing on the host changes. The stand-in programs run from a ``dpkg -x`` of the
built packages on temp configs.
"""

import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
import yaml
from labctl import paths
from labctl.fleet import accel
from labctl.fleet.models import make_machine
from labctl.repos import apt, common

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("dpkg-deb", "dpkg", "gpg", "gpgv", "apt-get")),
    reason="needs dpkg-deb, dpkg, gpg, gpgv and apt-get (Debian packages dpkg, gnupg, gpgv, apt)")

VERSION = apt.PINNED_VERSION
OLDER = apt.VERSIONS[0]


@pytest.fixture(scope="module")
def repo(lab_dirs):
    messages = []
    started = time.monotonic()
    site = apt.ensure_built(log=messages.append)
    return {"site": site, "flat": site / apt.FLAT_DIR, "messages": messages,
            "seconds": time.monotonic() - started, "key": apt.ensure_signing_key(log=messages.append)}


def _deb(repo, name, version=VERSION) -> Path:
    return repo["flat"] / f"{name}_{version}_amd64.deb"


def apt_root(tmp: Path, source_line: str) -> dict:
    """A private apt configuration; returns the environment to run apt-get/apt-cache with."""
    for d in ("etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d", "etc/trusted.gpg.d",
              "state/lists/partial", "cache/archives/partial", "log"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    (tmp / "state/status").touch()
    (tmp / "etc/sources.list").write_text(source_line + "\n")
    conf = tmp / "apt.conf"
    conf.write_text("".join(f'{k} "{v}";\n' for k, v in {
        "Dir::Etc::main": "/dev/null", "Dir::Etc::parts": tmp / "etc/apt.conf.d",
        "Dir::Etc::sourcelist": tmp / "etc/sources.list", "Dir::Etc::sourceparts": tmp / "etc/sources.list.d",
        "Dir::Etc::preferences": tmp / "etc/preferences", "Dir::Etc::preferencesparts": tmp / "etc/preferences.d",
        "Dir::Etc::trusted": tmp / "etc/trusted.gpg", "Dir::Etc::trustedparts": tmp / "etc/trusted.gpg.d",
        "Dir::State": tmp / "state", "Dir::State::status": tmp / "state/status", "Dir::Cache": tmp / "cache",
        "Dir::Log": tmp / "log", "Debug::NoLocking": "true", "APT::Architecture": "amd64",
        "APT::Sandbox::User": "root", "Acquire::Languages": "none", "Acquire::http::Proxy": "DIRECT",
    }.items()))
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(APT_CONFIG=str(conf), LC_ALL="C")
    return env


def sh(cmd, env=None, cwd=None, check=True):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


# ----------------------------------------------------------------------------- the built tree
def test_build_once_then_cached(repo, lab_dirs):
    assert any("building" in m for m in repo["messages"])
    assert repo["seconds"] < 60
    again = []
    assert apt.ensure_built(log=again.append) == repo["site"]
    assert not again  # warm: no key generation, no build
    assert repo["site"].parent.parent == lab_dirs[0] / "repos" / "apt"
    assert apt.build_dir("http://192.0.2.1:8380") != apt.build_dir()  # the base URL is in the definition
    names = sorted(p.name for p in repo["flat"].iterdir())
    assert names == sorted(["InRelease", "Release", "Release.gpg", "Packages", "Packages.gz",
                            *(f"{p}_{v}_amd64.deb" for p in apt.PACKAGES for v in apt.VERSIONS)])
    for name in ("gpgkey", "nvidia-container-toolkit-keyring.asc", "nvidia-container-toolkit-keyring.gpg",
                 "stable/deb/nvidia-container-toolkit.list"):
        assert (repo["site"] / name).is_file(), name
    listing = (repo["site"] / apt.LIST_FILE).read_text().splitlines()
    assert listing[0] == "deb http://10.77.0.1:8380/nvidia/libnvidia-container/stable/deb/$(ARCH) /"


def test_release_checksums_and_signatures(repo, tmp_path):
    flat = repo["flat"]
    release = (flat / "Release").read_text()
    assert re.search(r"^Date: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} UTC$", release, re.M)
    assert "Architectures: amd64" in release
    for title, algo in (("MD5Sum", "md5"), ("SHA256", "sha256"), ("SHA512", "sha512")):
        block = release.split(f"\n{title}:\n", 1)[1].split("\n")
        rows = [line.split() for line in block[:next(i for i, x in enumerate(block) if not x.startswith(" "))]]
        assert {r[2] for r in rows} == {"Packages", "Packages.gz"}
        for digest, size, name in rows:
            data = (flat / name).read_bytes()
            assert (digest, int(size)) == (hashlib.new(algo, data).hexdigest(), len(data))
    assert gzip.decompress((flat / "Packages.gz").read_bytes()) == (flat / "Packages").read_bytes()
    keyring = repo["site"] / apt.KEYRING_NAME
    assert keyring.read_bytes() == repo["key"]["public_gpg"].read_bytes()
    ok = sh(["gpgv", "--keyring", keyring, flat / "InRelease"], check=False)
    assert ok.returncode == 0, ok.stderr
    assert sh(["gpgv", "--keyring", keyring, flat / "Release.gpg", flat / "Release"], check=False).returncode == 0
    assert "Hash: SHA512" in (flat / "InRelease").read_text()
    tampered = tmp_path / "Release"
    tampered.write_text(release.replace("amd64", "arm64", 1))
    assert sh(["gpgv", "--keyring", keyring, flat / "Release.gpg", tampered], check=False).returncode != 0
    # the served ASCII key is the same key
    fpr = sh(["gpg", "--batch", "--with-colons", "--show-keys", repo["site"] / "gpgkey"]).stdout
    assert repo["key"]["fingerprint"] in fpr


def test_packages_carry_the_real_relations(repo):
    fields = {}
    for name in apt.PACKAGES:
        out = sh(["dpkg-deb", "-I", _deb(repo, name)]).stdout
        fields[name] = dict(re.findall(r"^ (\S+): (.*)$", out, re.M))
        assert fields[name]["Package"] == name and fields[name]["Version"] == VERSION
        assert fields[name]["Architecture"] == "amd64"
        assert "lab stand-in" in fields[name]["Description"]
    assert fields["nvidia-container-toolkit"]["Depends"] == (
        f"nvidia-container-toolkit-base (= {VERSION}), libnvidia-container-tools (= {VERSION}), "
        "libnvidia-container-tools (<< 2.0.0)")
    assert fields["libnvidia-container-tools"]["Depends"] == f"libnvidia-container1 (= {VERSION})"
    assert "Depends" not in fields["nvidia-container-toolkit-base"]
    assert fields["libnvidia-container1"]["Multi-Arch"] == "same"
    assert "nvidia-container-runtime-hook" in fields["nvidia-container-toolkit-base"]["Breaks"]
    contents = {n: sh(["dpkg-deb", "-c", _deb(repo, n)]).stdout for n in apt.PACKAGES}
    for name, path in (("nvidia-container-toolkit-base", "./usr/bin/nvidia-ctk"),
                       ("nvidia-container-toolkit-base", "./usr/bin/nvidia-container-runtime"),
                       ("nvidia-container-toolkit-base", "./usr/bin/nvidia-cdi-hook"),
                       ("nvidia-container-toolkit-base", "./lib/systemd/system/nvidia-cdi-refresh.service"),
                       ("nvidia-container-toolkit", "./usr/bin/nvidia-container-runtime-hook"),
                       ("libnvidia-container-tools", "./usr/bin/nvidia-container-cli")):
        assert re.search(rf"^-rwxr-xr-x root/root .* {re.escape(path)}$|^-rw-r--r-- root/root .* "
                         rf"{re.escape(path)}$", contents[name], re.M), (name, path)
    info = sh(["dpkg-deb", "-I", _deb(repo, "nvidia-container-toolkit-base")]).stdout
    assert "postinst" in info and "conffiles" in info
    postinst = sh(["dpkg-deb", "-I", _deb(repo, "nvidia-container-toolkit-base"), "postinst"]).stdout
    assert ("/usr/bin/nvidia-ctk --quiet config --config-file=/etc/nvidia-container-runtime/config.toml "
            "--in-place") in postinst
    # Packages stanzas match the files
    stanzas = (repo["flat"] / "Packages").read_text().strip().split("\n\n")
    assert len(stanzas) == len(apt.PACKAGES) * len(apt.VERSIONS)
    for stanza in stanzas:
        f = dict(re.findall(r"^(\S+): (.*)$", stanza, re.M))
        deb = repo["flat"] / f["Filename"]
        assert f["Filename"].startswith("./") and int(f["Size"]) == deb.stat().st_size
        assert f["SHA256"] == hashlib.sha256(deb.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- apt-get against it
def test_apt_get_update_policy_download_and_pins(repo, tmp_path):
    site = repo["site"]
    line = f"deb [signed-by={site / apt.KEYRING_NAME}] file://{site}/stable/deb/$(ARCH) /"
    env = apt_root(tmp_path / "apt", line)
    sh(["apt-get", "update"], env=env)
    policy = sh(["apt-cache", "policy", *apt.PACKAGES], env=env).stdout
    for name in apt.PACKAGES:
        block = policy.split(f"{name}:\n", 1)[1]
        assert re.search(rf"Candidate: {re.escape(VERSION)}\n", block)
        assert OLDER in block.split("\n\n")[0] or OLDER in block
    show = sh(["apt-cache", "show", f"nvidia-container-toolkit={OLDER}"], env=env).stdout
    assert f"Depends: nvidia-container-toolkit-base (= {OLDER})" in show
    dl = tmp_path / "dl"
    dl.mkdir()
    sh(["apt-get", "download", f"nvidia-container-toolkit={VERSION}", "libnvidia-container1"], env=env, cwd=dl)
    assert sorted(p.name for p in dl.iterdir()) == [f"libnvidia-container1_{VERSION}_amd64.deb",
                                                   f"nvidia-container-toolkit_{VERSION}_amd64.deb"]
    # NVIDIA's exact-version relations: pinning only the top package to an older release fails,
    # pinning all four (as the install guide does) works.
    one = sh(["apt-get", "install", "-s", f"nvidia-container-toolkit={OLDER}"], env=env, check=False)
    assert one.returncode != 0 and f"Depends: nvidia-container-toolkit-base (= {OLDER})" in one.stdout
    four = sh(["apt-get", "install", "-s", *(f"{p}={OLDER}" for p in apt.PACKAGES)], env=env).stdout
    assert all(f"Inst {p} ({OLDER} " in four for p in apt.PACKAGES)
    latest = sh(["apt-get", "install", "-s", "nvidia-container-toolkit"], env=env).stdout
    assert all(f"Inst {p} ({VERSION} " in latest for p in apt.PACKAGES)


def test_apt_get_refuses_a_foreign_key(repo, tmp_path):
    other = tmp_path / "other.gpg"
    home = tmp_path / "g"
    home.mkdir(mode=0o700)
    try:
        sh(["gpg", "--batch", "--homedir", home, "--pinentry-mode", "loopback", "--passphrase", "",
            "--quick-gen-key", "someone else <x@example.invalid>", "ed25519", "sign", "never"])
        other.write_bytes(subprocess.run(["gpg", "--batch", "--homedir", str(home), "--export"],
                                         capture_output=True, check=True).stdout)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)
    line = f"deb [signed-by={other}] file://{repo['site']}/stable/deb/$(ARCH) /"
    env = apt_root(tmp_path / "apt", line)
    proc = sh(["apt-get", "update"], env=env, check=False)
    assert "NO_PUBKEY" in proc.stdout + proc.stderr or "not signed" in proc.stdout + proc.stderr
    assert "nvidia-container-toolkit" not in sh(["apt-cache", "pkgnames"], env=env, check=False).stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mirror(tmp_path):
    """The lab's real mirror stand-in (labctl.storage.mirror) on a free 127.0.0.1 port over a temp root."""
    root, state = tmp_path / "mirror", tmp_path / "mirror-state"
    root.mkdir()
    state.mkdir()
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(paths.LAB_DIR))
    proc = subprocess.Popen([sys.executable, "-m", "labctl.storage.mirror", "--root", str(root), "--port", str(port),
                             "--bind", "127.0.0.1", "--state-dir", str(state)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (state / "mirror.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "mirror stand-in did not start"
            time.sleep(0.05)
        yield root, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_served_by_the_mirror_stand_in(repo, mirror, tmp_path):
    root, base = mirror
    info = apt.publish(log=lambda m: None, base_url=base, mirror=root)
    assert (root / apt.MIRROR_PATH).is_symlink()
    key = urllib.request.urlopen(info["key_url"], timeout=10).read()
    assert hashlib.sha256(key).hexdigest() == info["key_sha256"]
    listing = urllib.request.urlopen(info["list_url"], timeout=10).read().decode()
    keyring = tmp_path / "keyring.gpg"
    keyring.write_bytes(key)
    # what NVIDIA's install guide does with its list: insert signed-by
    line = listing.splitlines()[0].replace("deb ", f"deb [signed-by={keyring}] ", 1)
    assert line.split()[2] == info["url"] == f"{base}/nvidia/libnvidia-container/stable/deb/$(ARCH)"
    env = apt_root(tmp_path / "apt", line)
    out = sh(["apt-get", "update"], env=env).stdout
    assert f"Get:1 {base}/nvidia/libnvidia-container/stable/deb/amd64  InRelease" in out
    policy = sh(["apt-cache", "policy", "nvidia-container-toolkit"], env=env).stdout
    assert f"Candidate: {VERSION}" in policy and f"{base}/nvidia/libnvidia-container/stable/deb/amd64" in policy


def test_apt_repo_info(repo):
    info = apt.apt_repo_info(log=lambda m: None)
    assert info["built"] is True
    assert (info["layout"], info["suite"], info["components"]) == ("flat", "/", [])
    assert info["url"] == "http://10.77.0.1:8380/nvidia/libnvidia-container/stable/deb/$(ARCH)"
    assert info["source_line"] == (f"deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] "
                                   f"{info['url']} /")
    assert info["key_sha256"] == common.sha256_file(repo["site"] / apt.KEYRING_NAME)
    assert info["key_asc_sha256"] == common.sha256_file(repo["site"] / "gpgkey")
    assert info["version"] == VERSION and info["versions"] == list(apt.VERSIONS)
    assert info["package_versions"] == dict.fromkeys(apt.PACKAGES, VERSION)
    assert re.fullmatch(r"[0-9A-F]{40}", info["key_fingerprint"])


# ----------------------------------------------------------------------------- the stand-in programs
@pytest.fixture(scope="module")
def tools(repo, tmp_path_factory):
    root = tmp_path_factory.mktemp("pkgroot")
    for name in apt.PACKAGES:
        sh(["dpkg", "-x", _deb(repo, name), root])
    return root


def run_tool(tools, name, *args, env=None):
    full = {k: v for k, v in os.environ.items() if k not in ("NVIDIA_CTK_CDI_OUTPUT_FILE_PATH", "LAB_NVIDIA_TOOL")}
    full["PATH"] = "/nonexistent"  # no runc: the runtime stand-in prints its version only
    full.update(env or {})
    return subprocess.run([str(tools / "usr/bin" / name), *map(str, args)], capture_output=True, text=True,
                          env=full, check=False)


def test_versions_in_the_real_formats(tools):
    commit = apt.UPSTREAM[apt.upstream_version(VERSION)]["commit"]
    up = apt.upstream_version(VERSION)
    assert run_tool(tools, "nvidia-ctk", "--version").stdout == (
        f"NVIDIA Container Toolkit CLI version {up}\ncommit: {commit}\n")
    assert run_tool(tools, "nvidia-container-runtime", "--version").stdout == (
        f"NVIDIA Container Runtime version {up}\ncommit: {commit}\nspec: 1.3.0\n")
    assert run_tool(tools, "nvidia-container-runtime-hook", "--version").stdout.startswith(
        f"NVIDIA Container Runtime Hook version {up}\n")
    cli = run_tool(tools, "nvidia-container-cli", "--version").stdout.splitlines()
    assert cli[:2] == [f"cli-version: {up}", f"lib-version: {up}"]


def test_runtime_configure_docker_keeps_other_keys(tools, tmp_path):
    daemon = tmp_path / "etc/docker/daemon.json"
    daemon.parent.mkdir(parents=True)
    daemon.write_text(json.dumps({"log-driver": "json-file", "registry-mirrors": ["https://mirror.example"],
                                  "runtimes": {"runsc": {"path": "/usr/bin/runsc"}}, "data-root": "/srv/docker"}))
    proc = run_tool(tools, "nvidia-ctk", "runtime", "configure", "--runtime=docker", f"--config={daemon}",
                    "--set-as-default")
    assert proc.returncode == 0, proc.stderr
    assert f'msg="Wrote updated config to {daemon}"' in proc.stderr
    assert 'msg="It is recommended that docker daemon be restarted."' in proc.stderr
    cfg = json.loads(daemon.read_text())
    assert cfg["runtimes"]["nvidia"] == {"path": "nvidia-container-runtime", "args": []}
    assert cfg["runtimes"]["runsc"] == {"path": "/usr/bin/runsc"}
    assert cfg["default-runtime"] == "nvidia"
    assert (cfg["log-driver"], cfg["registry-mirrors"], cfg["data-root"]) == (
        "json-file", ["https://mirror.example"], "/srv/docker")
    text = daemon.read_text()
    assert text.startswith('{\n    "data-root"') and not text.endswith("\n")  # Go's MarshalIndent, keys sorted
    run_tool(tools, "nvidia-ctk", "runtime", "configure", "--runtime=docker", f"--config={daemon}",
             "--set-as-default")
    assert daemon.read_text() == text  # a re-run changes nothing
    fresh = tmp_path / "fresh/daemon.json"
    proc = run_tool(tools, "nvidia-ctk", "runtime", "configure", "--runtime=docker", f"--config={fresh}")
    assert "Config file does not exist; using empty config" in proc.stderr
    assert json.loads(fresh.read_text()) == {"runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}
    bad = run_tool(tools, "nvidia-ctk", "runtime", "configure", "--runtime=docker", f"--config={fresh}",
                   "--drop-in-config=/etc/docker/x.json")
    assert bad.returncode == 1 and "runtime docker does not support drop-in configs" in bad.stderr


CONTAINERD_V2 = """\
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
"""


def test_runtime_configure_containerd_drop_in(tools, tmp_path):
    config, drop_in = tmp_path / "etc/containerd/config.toml", tmp_path / "etc/containerd/conf.d/99-nvidia.toml"
    config.parent.mkdir(parents=True)
    config.write_text(CONTAINERD_V2)
    args = ["runtime", "configure", "--runtime=containerd", f"--config={config}", f"--drop-in-config={drop_in}",
            "--set-as-default", "--cdi.enabled"]
    proc = run_tool(tools, "nvidia-ctk", *args)
    assert proc.returncode == 0, proc.stderr
    assert 'msg="Using config version 2"' in proc.stderr
    top, dropped = tomllib.loads(config.read_text()), tomllib.loads(drop_in.read_text())
    assert top["imports"] == [f"{drop_in.parent}/*.toml"] and top["version"] == 2
    assert top["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["default_runtime_name"] == "runc"
    cri = dropped["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["enable_cdi"] is True and cri["sandbox_image"] == "registry.k8s.io/pause:3.10"
    assert cri["containerd"]["default_runtime_name"] == "nvidia"
    nvidia = cri["containerd"]["runtimes"]["nvidia"]
    assert nvidia == {"runtime_type": "io.containerd.runc.v2",
                      "options": {"BinaryName": "/usr/bin/nvidia-container-runtime", "SystemdCgroup": True}}
    text = drop_in.read_text()
    assert text.startswith("version = 2\n\n[plugins]\n\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n")
    assert '          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]\n' in text
    before = (config.read_text(), text)
    run_tool(tools, "nvidia-ctk", *args)
    assert (config.read_text(), drop_in.read_text()) == before  # idempotent
    # no config at all: a version-2 top-level file importing the drop-in directory
    empty = tmp_path / "empty"
    proc = run_tool(tools, "nvidia-ctk", "runtime", "configure", "--runtime=containerd",
                    f"--config={empty}/config.toml", f"--drop-in-config={empty}/conf.d/99-nvidia.toml")
    assert proc.returncode == 0, proc.stderr
    assert (empty / "config.toml").read_text() == f'imports = ["{empty}/conf.d/*.toml"]\nversion = 2\n'
    assert "Could not infer options from runtimes [runc crun]" in proc.stderr
    # containerd 2.x (config version 3): the CRI runtime plugin's new name
    v3 = tmp_path / "v3"
    v3.mkdir()
    (v3 / "config.toml").write_text("version = 3\n")
    run_tool(tools, "nvidia-ctk", "runtime", "configure", "--runtime=containerd", f"--config={v3}/config.toml",
             f"--drop-in-config={v3}/conf.d/99-nvidia.toml")
    assert "io.containerd.cri.v1.runtime" in tomllib.loads((v3 / "conf.d/99-nvidia.toml").read_text())["plugins"]


def test_cdi_generate_for_the_devices_present(tools, tmp_path):
    root = tmp_path / "host"
    (root / "dev").mkdir(parents=True)
    for n in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"):
        (root / "dev" / n).touch()
    info = tmp_path / "accelerators.json"
    info.write_text(json.dumps(accel.accelerator_info(make_machine("gpu-a", "A100", 2))))
    out = tmp_path / "etc/cdi/nvidia.yaml"
    env = {"LAB_ACCELERATORS_JSON": str(info)}
    proc = run_tool(tools, "nvidia-ctk", "cdi", "generate", f"--output={out}", f"--dev-root={root}", env=env)
    assert proc.returncode == 0, proc.stderr
    assert 'msg="Generated CDI spec with version 0.5.0"' in proc.stderr
    assert out.read_text().startswith("---\ncdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n    - name: \"0\"\n")
    assert out.stat().st_mode & 0o777 == 0o644
    spec = yaml.safe_load(out.read_text())
    uuids = [f"GPU-{accel.device_uuid('gpu-a', i)}" for i in range(2)]
    assert [d["name"] for d in spec["devices"]] == ["0", "1", *uuids, "all"]
    assert spec["devices"][-1]["containerEdits"]["deviceNodes"] == [
        {"path": "/dev/nvidia0", "hostPath": f"{root}/dev/nvidia0"},
        {"path": "/dev/nvidia1", "hostPath": f"{root}/dev/nvidia1"}]
    assert "NVIDIA_VISIBLE_DEVICES=void" in spec["containerEdits"]["env"]
    listed = run_tool(tools, "nvidia-ctk", "cdi", "list", f"--spec-dir={out.parent}")
    assert listed.stdout.splitlines() == [f"nvidia.com/gpu={n}" for n in ["0", "1", *uuids, "all"]]
    (root / "dev/nvidiactl").unlink()
    no_driver = run_tool(tools, "nvidia-ctk", "cdi", "generate", f"--dev-root={root}", env=env)
    assert no_driver.returncode == 1 and "failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND" in no_driver.stderr


def test_config_in_place_as_the_postinst_runs_it(tools, tmp_path):
    cfg = tmp_path / "etc/nvidia-container-runtime/config.toml"
    proc = run_tool(tools, "nvidia-ctk", "--quiet", "config", f"--config-file={cfg}", "--in-place")
    assert proc.returncode == 0 and proc.stdout == proc.stderr == ""
    parsed = tomllib.loads(cfg.read_text())
    assert parsed["nvidia-container-runtime"]["mode"] == "auto"
    assert parsed["nvidia-container-runtime"]["modes"]["cdi"]["default-kind"] == "nvidia.com/gpu"
    run_tool(tools, "nvidia-ctk", "config", f"--config-file={cfg}", "--in-place",
             "--set", "nvidia-container-cli.no-cgroups=true", "--set", "nvidia-container-runtime.log-level=debug")
    parsed = tomllib.loads(cfg.read_text())
    assert parsed["nvidia-container-cli"]["no-cgroups"] is True
    assert parsed["nvidia-container-runtime"]["log-level"] == "debug"


def test_container_cli_info(tools, tmp_path):
    info = tmp_path / "accelerators.json"
    info.write_text(json.dumps(accel.accelerator_info(make_machine("t4-a", "T4", 1))))
    out = run_tool(tools, "nvidia-container-cli", "info", env={"LAB_ACCELERATORS_JSON": str(info)}).stdout
    assert out.splitlines()[:2] == ["NVRM version:   550.127.05", "CUDA version:   12.4"]
    assert "Model:          Tesla T4" in out and "Architecture:   7.5" in out
    assert re.search(r"^Bus Location:   00000000:[0-9A-F]{2}:00\.0$", out, re.M)


def test_publish_links_into_the_lab_mirror_tree(repo, lab_dirs):
    _, state = lab_dirs
    info = apt.publish(log=lambda m: None)
    link = state / "storage/mirror" / apt.MIRROR_PATH
    assert link.is_symlink() and link.resolve() == repo["site"].resolve()
    assert (state / "storage").stat().st_mode & 0o777 == 0o700  # lab state stays private
    saved = json.loads((state / "repos/nvidia-apt.json").read_text())
    assert saved == json.loads(json.dumps(info)) and saved["key_url"].endswith("/nvidia-container-toolkit-keyring.gpg")
    assert apt.publish(log=lambda m: None) == info  # idempotent
