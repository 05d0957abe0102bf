"""The Ascend Docker Runtime release package the lab serves (lab fixture).

Huawei ships Ascend Docker Runtime (MindCluster ``component/ascend-docker-runtime``) as a makeself
self-extracting installer, ``Ascend-docker-runtime_<version>_linux-<arch>.run``. The lab builds a
stand-in under that name, in two releases (``VERSIONS``: MindCluster v26.0.1 and v26.1.0, the pinned
one), and serves them where a site mirror of the release downloads would hold them::

    <mirror>/ascend/mind-cluster/releases/download/v26.1.0/Ascend-docker-runtime_26.1.0_linux-x86_64.run
    <mirror>/ascend/mind-cluster/releases/download/v26.0.1/Ascend-docker-runtime_26.0.1_linux-x86_64.run

``publish()`` writes ``lab/state/repos/ascend-docker-runtime.json`` (``url``, ``sha256``, ``version``,
``filename`` of the pinned release, the install facts a role checks, and the same per version).

What the stand-in is: a shell header (``ascendsrc/header.sh``) in makeself's layout with a gzip'd tar
after it, holding ``run_main.sh``, ``uninstall.sh``, the install helper (``ascendsrc/install_helper.py``,
Python 3 as the lab machines have it), the runtime programs (``ascendsrc/tool.sh``: the runtime hands
every call to runc), ``base.list`` (and the edge-product variants), a README and the asset files.
It follows that release's scripts (read from the MindCluster repository at the two tags):

- options: ``--install``, ``--uninstall``, ``--upgrade``, ``--install-path=<abs dir>`` (installs into
  ``<dir>/Ascend-Docker-Runtime``), ``--install-scene=docker|containerd|isula`` (default docker),
  ``--config-file-path=<file>`` (an existing daemon.json/config.toml instead of the default),
  ``--install-type=A500|A500A2|A200|A200ISoC|A200IA2``, ``--version``, ``-h|--help``; 26.0.1 also
  ``--ce=isula`` and the header's ``--check`` (verifies the embedded SHA256), ``--info``, ``--list``,
  ``--quiet``, ``--tar``. Anything else is refused (``Error input`` and the usage, exit 1), as is a
  repeated option, ``--install-path``/``--install-scene`` without an action, a relative install
  path, a package whose file name does not contain the machine's ``uname -m`` (the real check), and
  a non-root caller. ``--install-scene=crio`` and ``--injection-mode`` exist only after v26.1.0 (on
  MindCluster's master), so both releases refuse them.
- 26.1.0 asks ``Do you accept the EULA to install Ascend-docker-runtime?[Y/N]`` before ``--install``
  and ``--upgrade`` and reads the answer from standard input (``Y``/``y`` goes on, ``N``/``n`` stops
  with exit 0 and nothing installed). The real installer asks again forever at end of input; the
  stand-in fails (exit 1) instead. 26.0.1 does not ask.
- ``--install`` writes ``<path>/{ascend-docker-runtime,ascend-docker-hook,ascend-docker-cli,
  ascend-docker-plugin-install-helper,ascend-docker-destroy}`` (0550), ``README.md``, ``assets/``,
  ``script/uninstall.sh`` (0500), ``/etc/ascend-docker-runtime.d/base.list`` (0440), the install
  record ``<path>/ascend_docker_runtime_install.info`` (0640: ``version=v<version>``, ``arch=``,
  ``os=linux``, ``path=``, ``build=``, ``a500=n`` ... ``install-scene=``, ``config-file-path=``),
  the log ``/var/log/ascend-docker-runtime/installer.log``, and edits the container runtime's
  configuration: docker ``/etc/docker/daemon.json`` gets ``runtimes.ascend = {"path":
  "<path>/ascend-docker-runtime", "runtimeArgs": []}`` and ``"default-runtime": "ascend"`` with every
  other key kept (isula: ``/etc/isulad/daemon.json``, no default); containerd
  ``/etc/containerd/config.toml`` (``containerd config default`` first when missing) gets
  ``plugins.<cri>.containerd.runtimes.ascend`` (a copy of runc's, ``options.BinaryName``) and
  ``default_runtime_name = "ascend"``; the file ends up 0600. Installing again rewrites the same.
  The helper checks the files it touches as the real one does (no symlink or ``..`` in the path, not
  writable by group/others, owned by root, all parents too) and must parse them (JSON / TOML: a Go
  template such as RKE2's ``config.toml.tmpl`` with ``{{ template "base" . }}`` is refused); a refusal
  fails the install (exit 1) after the programs were copied, with no install record written.
- ``--uninstall`` runs the *installed* ``script/uninstall.sh`` with the scene and config path given
  on this command line (not the recorded ones: uninstalling a containerd install needs
  ``--install-scene=containerd`` again): the runtime is taken out of the file (docker: the ``ascend``
  runtime and a ``default-runtime`` of ``ascend``; containerd: ``default_runtime_name = "runc"``),
  then ``/etc/ascend-docker-runtime.d`` and the install directory are removed. Nothing installed:
  a warning, exit 0. Configuration file missing: a warning, exit 0, nothing removed (as the real one).
- ``--upgrade`` needs an install; replaces the programs and ``uninstall.sh``, rewrites ``base.list``
  and the install record (with the scene and config path of *this* command line), leaves the
  runtime configuration alone.

Lab-only hook (not in the real package): ``ASCEND_DOCKER_RUNTIME_LAB_ROOT=<dir>`` roots every path
the installer touches under ``<dir>`` (like DESTDIR; file contents keep the real paths) and makes the
root checks expect the invoking user, so tests run it in a temporary directory.

Builds go to ``~/.cache/ai-cluster-lab/repos/ascend-docker-runtime/<key>/``, keyed by the definition
(this file, the stand-in sources, the versions, the machine architecture); a build is byte-for-byte
reproducible, so the sha256 in the state only changes with the definition.
"""

from __future__ import annotations

import calendar
import gzip
import hashlib
import io
import json
import os
import platform
import re
import shutil
import struct
import tarfile
import time
import zlib
from pathlib import Path

from labctl.repos.common import (
    DEFAULT_BASE_URL,
    RepoBuildError,
    cache_root,
    definition_key,
    finish_build,
    link_into_mirror,
    require,
    run,
    sha256_file,
    write_state,
)

# Releases (oldest first) and the one the lab inventory pins; their dates (tags of Ascend/mind-cluster)
# and what differs between their installers.
VERSIONS = ("26.0.1", "26.1.0")
PINNED_VERSION = "26.1.0"
RELEASES = {
    "26.0.1": {"date": "2026-06-08", "eula": False, "legacy_options": True},
    "26.1.0": {"date": "2026-07-31", "eula": True, "legacy_options": False},
}
PACKAGE = "Ascend-docker-runtime"
LABEL = "ascend-docker-runtime"
MIRROR_PREFIX = "ascend/mind-cluster/releases/download"   # + /v<version>/<filename>
INSTALL_PATH = "/usr/local/Ascend/Ascend-Docker-Runtime"
INSTALL_INFO = f"{INSTALL_PATH}/ascend_docker_runtime_install.info"
RUNTIME_PATH = f"{INSTALL_PATH}/ascend-docker-runtime"
CONFIG_DIR = "/etc/ascend-docker-runtime.d"
INSTALL_LOG = "/var/log/ascend-docker-runtime/installer.log"
INSTALL_SCENES = {"docker": "/etc/docker/daemon.json", "containerd": "/etc/containerd/config.toml",
                  "isula": "/etc/isulad/daemon.json"}
LAB_ROOT_ENV = "ASCEND_DOCKER_RUNTIME_LAB_ROOT"
STATE_NAME = "ascend-docker-runtime"
SOURCE_DIR = Path(__file__).with_name("ascendsrc")
SOURCES = ("header.sh", "run_main.sh", "uninstall.sh", "install_helper.py", "tool.sh")
PROGRAMS = ("ascend-docker-runtime", "ascend-docker-hook", "ascend-docker-cli", "ascend-docker-destroy")
HELPER = "ascend-docker-plugin-install-helper"
MANIFEST = "lab-repo.json"

# /etc/ascend-docker-runtime.d/base.list and its edge-product variants (--install-type): what the
# runtime mounts into containers (build/scripts/base.list*).
BASE_LISTS = {
    "base.list": ["/usr/local/Ascend/driver/lib64", "/usr/local/Ascend/driver/include", "/usr/local/dcmi",
                  "/usr/local/bin/npu-smi", "/var/queue_schedule"],
    "base.list_A200": ["/usr/local/Ascend/driver/lib64", "/usr/local/sbin/npu-smi", "/usr/local/Ascend/driver/tools",
                       "/etc/hdcBasic.cfg", "/etc/sys_version.conf", "/var/queue_schedule"],
    "base.list_A200IA2": ["/etc/sys_version.conf", "/etc/hdcBasic.cfg", "/usr/lib64/libaicpu_processer.so",
                          "/usr/lib64/libaicpu_prof.so", "/usr/lib64/libaicpu_sharder.so", "/usr/lib64/libadump.so",
                          "/usr/lib64/libtsd_eventclient.so", "/usr/lib64/libaicpu_scheduler.so",
                          "/usr/lib64/libdcmi.so", "/usr/lib64/libmpi_dvpp_adapter.so", "/usr/lib64/aicpu_kernels/",
                          "/usr/local/sbin/npu-smi", "/usr/lib64/libstackcore.so", "/usr/local/Ascend/driver/lib64",
                          "/var/slogd", "/var/dmp_daemon", "/var/queue_schedule"],
    "base.list_A200ISoC": ["/usr/local/bin/npu-smi", "/etc/hdcBasic.cfg", "/etc/sys_version.conf",
                           "/var/queue_schedule"],
    "base.list_A500": ["/home/data/miniD/driver/lib64", "/usr/local/dcmi", "/usr/local/bin/npu-smi",
                       "/var/queue_schedule"],
    "base.list_A500A2": ["/usr/local/Ascend/driver/lib64", "/usr/local/sbin/npu-smi", "/etc/sys_version.conf",
                         "/etc/ld.so.conf.d/mind_so.conf", "/etc/hdcBasic.cfg", "/var/dmp_daemon", "/var/slogd",
                         "/usr/lib64/libsemanage.so.2", "/usr/lib64/libmmpa.so", "/usr/lib64/libdrvdsmi.so",
                         "/usr/lib64/libdcmi.so", "/usr/lib64/libstackcore.so", "/usr/lib64/libmpi_dvpp_adapter.so",
                         "/usr/lib64/libaicpu_scheduler.so", "/usr/lib64/libaicpu_processer.so",
                         "/usr/lib64/libaicpu_prof.so", "/usr/lib64/libaicpu_sharder.so", "/usr/lib64/libadump.so",
                         "/usr/lib64/libtsd_eventclient.so", "/usr/lib64/aicpu_kernels", "/var/queue_schedule"],
}

HELP_OPTIONS = """\
  --install                     Install into this system
  --install-path                Specify the installation path
  --uninstall                   Uninstall the installed ascend-docker-runtime tool
  --upgrade                     Upgrade the installed ascend-docker-runtime tool
  --install-type=<type>         Only A500, A500A2, A200ISoC, A200IA2 and A200 need to specify
                                the installation type of ascend-docker-runtime
                                (eg: --install-type=A200IA2, when your product is A200I A2 or A200I DK A2)
{ce}\
  --version                     Query ascend-docker-runtime version
  --install-scene=<scene>       Installation scenario, only docker, containerd or isula
                                (eg: --install-scene=docker, default: docker)
  --config-file-path            Specifies the path of the Docker or containerd configuration file
                                (eg: --config-file-path=/etc/containerd/config.toml).
                                If this parameter is not specified, the default configuration file path
                                of docker or containerd is used. For docker, the path is /etc/docker/daemon.json.
                                For containerd, the path is /etc/containerd/config.toml."""

CE_OPTION = """\
  --ce=<ce>                     Only iSula need to specify the container engine(eg: --ce=isula)
                                MUST use with --install or --uninstall
                                Do not use with --install-scene
                                [Deprecated] This parameter will be removed in future versions.
                                Please use --install-scene=isula instead
"""

LEGACY_HELP = """\
  --check|--info|--list|--quiet|--tar|
                                These parameters are meaningless for Ascend-docker-runtime and
                                will be discarded in the future
"""

LAB_README = """\
# Ascend Docker Runtime (aicluster lab stand-in)

This package is an aicluster LAB FIXTURE built by `lab/labctl/repos/ascend.py` under the name of
Huawei's Ascend Docker Runtime release package. Its installer behaves like the real one (options,
files, modes, configuration edits, install record, exit codes); its programs are small stand-ins
(the runtime hands every call to runc). It is never product code and contains no Huawei software.
"""

LAB_AGREEMENT = """\
aicluster lab stand-in: the real package shows Huawei's End User License Agreement notice here
and asks for acceptance. This lab fixture contains no Huawei software; answer Y to go on.
"""


# ------------------------------------------------------------------------ definition
def arch() -> str:
    """The lab machines' ``uname -m`` (they share the control host's kernel): the package's arch."""
    return platform.machine() or "x86_64"


def filename(version: str, machine: str | None = None) -> str:
    return f"{PACKAGE}_{version}_linux-{machine or arch()}.run"


def _check_version(version: str) -> None:
    if version not in RELEASES:
        raise RepoBuildError(f"unknown Ascend Docker Runtime version {version} (one of {', '.join(VERSIONS)})")


def help_info(version: str) -> str:
    """The package's help.info (the header's option list: options not in it are refused)."""
    _check_version(version)
    return HELP_OPTIONS.format(ce=CE_OPTION if RELEASES[version]["legacy_options"] else "")


def _print_help(version: str) -> str:
    """run_main.sh's usage text after ``Options:``."""
    legacy = RELEASES[version]["legacy_options"]
    text = ("  --help | -h                   Print this message\n" + (LEGACY_HELP if legacy else "")
            + help_info(version).replace("  --install-path                Specify the installation path\n",
                                         "  --install-path                Specify the installation path, which "
                                         "must be absolute path\n"))
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")


def definition() -> dict:
    return {
        "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "sources": {name: hashlib.sha256((SOURCE_DIR / name).read_bytes()).hexdigest() for name in SOURCES},
        "versions": list(VERSIONS), "arch": arch(),
    }


def build_dir() -> Path:
    """``CACHE/repos/ascend-docker-runtime/<key>``: ``v<version>/<filename>`` and ``lab-repo.json`` once built."""
    return cache_root() / STATE_NAME / definition_key(definition())


# ------------------------------------------------------------------------ building
def _png() -> bytes:
    """A valid 1x1 grey PNG (the package's README images are placeholders here)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))


def _fill(name: str, values: dict[str, str], keep: tuple[str, ...] = ()) -> str:
    text = (SOURCE_DIR / name).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    left = set(re.findall(r"@([A-Z0-9_]+)@", text)) - set(keep)
    if left:
        raise RepoBuildError(f"ascendsrc/{name}: placeholder(s) {', '.join(sorted(left))} left unfilled")
    return text


def payload_files(version: str) -> dict[str, tuple[bytes, int]]:
    """The files in the package (relative path -> (content, mode)), as build.sh lays out run_pkg/."""
    _check_version(version)
    release = RELEASES[version]
    values = {"VERSION": version, "EULA": "y" if release["eula"] else "n",
              "CE": "y" if release["legacy_options"] else "n", "PRINT_HELP": _print_help(version)}
    tool = _fill("tool.sh", values).encode()
    files: dict[str, tuple[bytes, int]] = {name: (tool, 0o550) for name in PROGRAMS}
    files[HELPER] = ((SOURCE_DIR / "install_helper.py").read_bytes(), 0o550)
    files["run_main.sh"] = (_fill("run_main.sh", values).encode(), 0o550)
    files["uninstall.sh"] = (_fill("uninstall.sh", values).encode(), 0o550)
    for name, entries in BASE_LISTS.items():
        files[name] = ("\n".join(entries).encode(), 0o640)
    files["README.md"] = (LAB_README.encode(), 0o640)
    files["assets/20210329102949456.png"] = (_png(), 0o640)
    files["assets/20230118566.png"] = (_png(), 0o640)
    if release["eula"]:
        files["agreement.txt"] = (LAB_AGREEMENT.encode(), 0o440)
    return files


def _payload(version: str) -> bytes:
    """The gzip'd tar, reproducible: fixed order, owner root, the release date as mtime, gzip mtime 0."""
    epoch = calendar.timegm(time.strptime(RELEASES[version]["date"], "%Y-%m-%d"))
    files = payload_files(version)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        dirs = sorted({"."} | {"./" + str(Path(p).parent) for p in files if "/" in p})
        entries = [(d, None, 0o750) for d in dirs]
        entries += [(f"./{p}", data, mode) for p, (data, mode) in sorted(files.items())]
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = epoch, mode, 0, 0, "root", "root"
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _header(version: str, payload: bytes) -> str:
    """The makeself-style shell header; ``skip`` is its own line count (the payload starts after it)."""
    header = _fill("header.sh", {"FILENAME": filename(version), "SHA256": hashlib.sha256(payload).hexdigest(),
                                 "LABEL": LABEL, "LEGACY": "y" if RELEASES[version]["legacy_options"] else "n",
                                 "HELPHEADER": help_info(version)}, keep=("SKIP",))
    if not header.endswith("\n"):
        header += "\n"
    return header.replace("@SKIP@", str(header.count("\n")))


def package_bytes(version: str) -> bytes:
    """The whole ``.run``: the header and the payload."""
    payload = _payload(version)
    return _header(version, payload).encode() + payload


def _syntax_check(directory: Path, version: str) -> None:
    bash = require("bash", "the lab checks its Ascend Docker Runtime stand-in scripts with bash -n")
    files = payload_files(version)
    for name in ("run_main.sh", "uninstall.sh", *PROGRAMS[:1]):
        target = directory / f"check-{name}"
        target.write_bytes(files[name][0])
        run([bash, "-n", target], f"bash -n {name} ({version})")
    header = directory / "check-header.sh"
    header.write_text(_header(version, b""))
    run([bash, "-n", header], f"bash -n the package header ({version})")


def ensure_built(log=print) -> Path:
    """Build both packages once per definition; return the directory holding ``v<version>/<filename>``."""
    final = build_dir()
    if (final / MANIFEST).is_file():
        return final
    log(f"lab repos: building the Ascend Docker Runtime stand-in packages ({', '.join(VERSIONS)}) ...")
    started = time.monotonic()
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    packages = {}
    for version in VERSIONS:
        (tmp / ".check").mkdir(exist_ok=True)
        _syntax_check(tmp / ".check", version)
        target = tmp / f"v{version}" / filename(version)
        target.parent.mkdir()
        target.write_bytes(package_bytes(version))
        target.chmod(0o755)
        packages[version] = {"filename": target.name, "sha256": sha256_file(target), "size": target.stat().st_size}
    shutil.rmtree(tmp / ".check")
    for p in [tmp, *tmp.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
    manifest = {"versions": list(VERSIONS), "pinned": PINNED_VERSION, "arch": arch(), "packages": packages,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(time.monotonic() - started, 1)}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    final.parent.mkdir(parents=True, exist_ok=True)
    finish_build(tmp, final)
    log(f"lab repos: Ascend Docker Runtime packages built in {manifest['build_seconds']} s ({final})")
    return final


def package_path(version: str = PINNED_VERSION) -> Path:
    """The built ``.run`` of ``version`` in the cache (built if needed)."""
    _check_version(version)
    return ensure_built(lambda m: None) / f"v{version}" / filename(version)


# ------------------------------------------------------------------------ API
def _mirror_path(version: str) -> str:
    return f"{MIRROR_PREFIX}/v{version}/{filename(version)}"


def _release_info(version: str, base_url: str, built: dict | None) -> dict:
    return {"version": version, "filename": filename(version),
            "url": f"{base_url.rstrip('/')}/{_mirror_path(version)}",
            "sha256": (built or {}).get("sha256"), "installed_version": f"v{version}",
            "eula_prompt": RELEASES[version]["eula"]}


def runtime_info(base_url: str = DEFAULT_BASE_URL) -> dict:
    """What an inventory needs to install the pinned release (and the older one), and the facts a
    role checks afterwards. ``sha256`` is None until the packages are built (see ``publish``)."""
    manifest_file = build_dir() / MANIFEST
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {"packages": {}}
    releases = {v: _release_info(v, base_url, manifest["packages"].get(v)) for v in VERSIONS}
    pinned = releases[PINNED_VERSION]
    return {
        **{k: pinned[k] for k in ("url", "sha256", "version", "filename", "installed_version", "eula_prompt")},
        "arch": arch(),
        "install_path": INSTALL_PATH,
        "install_info_path": INSTALL_INFO,
        "runtime_path": RUNTIME_PATH,
        "config_dir": CONFIG_DIR,
        "install_log": INSTALL_LOG,
        "install_scenes": dict(INSTALL_SCENES),
        "versions": releases,
        "older_version": VERSIONS[0],
        "lab_root_env": LAB_ROOT_ENV,
        "built": manifest_file.is_file(),
    }


def publish(log=print, base_url: str = DEFAULT_BASE_URL, mirror: Path | None = None) -> dict:
    """Build (once), link both packages into the mirror stand-in's root, write
    ``lab/state/repos/ascend-docker-runtime.json``."""
    directory = ensure_built(log)
    for version in VERSIONS:
        link_into_mirror(_mirror_path(version), directory / f"v{version}" / filename(version), mirror)
    info = runtime_info(base_url)
    if mirror is None:
        write_state(STATE_NAME, info)
    return info


for _v in (*VERSIONS, PINNED_VERSION):
    _check_version(_v)
