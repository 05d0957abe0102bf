"""The NVIDIA Container Toolkit apt repository the lab serves (lab fixture).

A real, signed Debian repository with the four packages under their real names and relations,
``nvidia-container-toolkit``, ``nvidia-container-toolkit-base``, ``libnvidia-container-tools``
and ``libnvidia-container1``, in two releases (``VERSIONS``; NVIDIA's repository carries every
release, so a role must pin all four packages to get an older one). Their programs are the lab
stand-ins in ``fixtures/nvidia_container_toolkit.py`` (small Python scripts answering the
subcommands a role uses, in the real formats); the package metadata, maintainer scripts, paths
and dependencies follow NVIDIA's ``packaging/debian`` files.

Layout: NVIDIA's own, a *flat* repository (``deb URI /``, no ``dists/``), because that is what a
site's offline mirror of it holds when it mirrors paths as they are (apt-mirror, an Artifactory or
Nexus apt proxy, a plain ``wget -m``)::

    <mirror>/nvidia/libnvidia-container/
        gpgkey                                   ASCII key (upstream's name; the install guide dearmors it)
        nvidia-container-toolkit-keyring.gpg     the same key, binary, ready for /usr/share/keyrings
        nvidia-container-toolkit-keyring.asc     the same key, ASCII
        stable/deb/nvidia-container-toolkit.list the sources line, as upstream serves it
        stable/deb/amd64/{InRelease,Release,Release.gpg,Packages,Packages.gz,*.deb}

so a role configured for ``https://nvidia.github.io/libnvidia-container`` works against
``http://10.77.0.1:8380/nvidia/libnvidia-container`` with the base URL as the only difference::

    deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] \
        http://10.77.0.1:8380/nvidia/libnvidia-container/stable/deb/$(ARCH) /

The repository is signed (``InRelease`` clearsigned, ``Release.gpg`` detached, SHA512) with a
throw-away ed25519 key the lab generates once (``~/.cache/ai-cluster-lab/repos/signing-key``).
Builds go to ``~/.cache/ai-cluster-lab/repos/apt/<key>/``, keyed by a hash of the definition (this
file, the stand-in script, the versions, the base URL and the key's fingerprint).
"""

from __future__ import annotations

import calendar
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
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

# Releases in the repository (oldest first) and the one the lab inventory pins.
VERSIONS = ("1.19.0-1", "1.20.0-1")
PINNED_VERSION = "1.20.0-1"
# Upstream tags the stand-ins report (``nvidia-ctk --version`` prints the commit).
UPSTREAM = {
    "1.19.0": {"commit": "ec7b4e2fa2caecad6d89be4a26029b831fe7503a", "date": "2026-03-10T13:19+00:00"},
    "1.20.0": {"commit": "5505e2f94d9aaa08561490db974ba3cd676af209", "date": "2026-08-12T15:47+00:00"},
}
ARCH = "amd64"
PACKAGES = ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
            "libnvidia-container1")
SITE_DIR = "libnvidia-container"              # the tree one mirror path serves
MIRROR_PATH = f"nvidia/{SITE_DIR}"            # where it sits under the mirror root
FLAT_DIR = f"stable/deb/{ARCH}"
LIST_FILE = "stable/deb/nvidia-container-toolkit.list"
KEYRING_NAME = "nvidia-container-toolkit-keyring.gpg"
KEYRING_PATH = f"/usr/share/keyrings/{KEYRING_NAME}"
MAINTAINER = "aicluster lab <lab-fixtures@aicluster.invalid>"
HOMEPAGES = {"libnvidia-container1": "https://github.com/NVIDIA/libnvidia-container",
             "libnvidia-container-tools": "https://github.com/NVIDIA/libnvidia-container"}
HOMEPAGE = "https://github.com/NVIDIA/nvidia-container-toolkit"
KEY_UID = "aicluster lab repository signing key (lab fixture, throw-away) <lab-repo@aicluster.invalid>"
SCRIPT = Path(__file__).with_name("fixtures") / "nvidia_container_toolkit.py"
MANIFEST = "lab-repo.json"

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

LAB_NOTE = """\
This package is an aicluster LAB FIXTURE: a stand-in built by the lab (lab/labctl/repos/apt.py)
under the name of NVIDIA's package, with the real package's relations and paths. Its programs are
small Python scripts answering the subcommands the Ansible roles use, in the real output formats.
It is never product code and contains no NVIDIA software.
"""

CDI_REFRESH_SERVICE = """\
# aicluster lab stand-in of NVIDIA's nvidia-cdi-refresh.service (lab fixture; shipped, not enabled).
[Unit]
Description=Refresh NVIDIA CDI specification file
ConditionPathExists=|/usr/bin/nvidia-smi
ConditionPathExists=|/usr/sbin/nvidia-smi
ConditionPathExists=/usr/bin/nvidia-ctk

[Service]
Type=oneshot
Environment=NVIDIA_CTK_CDI_OUTPUT_FILE_PATH=/var/run/cdi/nvidia.yaml
EnvironmentFile=-/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env
ExecStart=/usr/bin/nvidia-ctk cdi generate

[Install]
WantedBy=multi-user.target
"""

CDI_REFRESH_PATH = """\
# aicluster lab stand-in of NVIDIA's nvidia-cdi-refresh.path (lab fixture; shipped, not enabled).
[Unit]
Description=Trigger CDI refresh on NVIDIA driver or toolkit install / upgrade events

[Path]
PathChanged=/usr/bin/nvidia-ctk

[Install]
WantedBy=multi-user.target
"""

CDI_REFRESH_ENV = """\
# Overrides for the environment of `nvidia-ctk cdi generate` run by nvidia-cdi-refresh.service,
# one ENVVAR=value per line, e.g.:
# NVIDIA_CTK_CDI_OUTPUT_FILE_PATH=/var/run/cdi/nvidia.yaml
"""

BASE_POSTINST = """\
#!/bin/sh
# aicluster lab stand-in: what NVIDIA's nvidia-container-toolkit-base.postinst does.
set -e

case "$1" in
    configure)
        /usr/bin/nvidia-ctk --quiet config --config-file=/etc/nvidia-container-runtime/config.toml --in-place
    ;;

    abort-upgrade|abort-remove|abort-deconfigure)
    ;;

    *)
        echo "postinst called with unknown argument \\`$1'" >&2
        exit 1
    ;;
esac

exit 0
"""

TOOLKIT_POSTINST = """\
#!/bin/sh
# aicluster lab stand-in: what NVIDIA's nvidia-container-toolkit.postinst does.
set -e

NVIDIA_CONTAINER_RUNTIME_HOOK=/usr/bin/nvidia-container-runtime-hook
NVIDIA_CONTAINER_TOOLKIT=/usr/bin/nvidia-container-toolkit

case "$1" in
    configure)
        if [ -f "${NVIDIA_CONTAINER_RUNTIME_HOOK}" ]; then
            if [ ! -e "${NVIDIA_CONTAINER_TOOLKIT}" ]; then
                ln -s ${NVIDIA_CONTAINER_RUNTIME_HOOK} ${NVIDIA_CONTAINER_TOOLKIT}
            fi
        fi
    ;;

    abort-upgrade|abort-remove|abort-deconfigure)
    ;;

    *)
        echo "postinst called with unknown argument \\`$1'" >&2
        exit 1
    ;;
esac

exit 0
"""

TOOLKIT_POSTRM = """\
#!/bin/sh
# aicluster lab stand-in: what NVIDIA's nvidia-container-toolkit.postrm does.
set -e

NVIDIA_CONTAINER_TOOLKIT=/usr/bin/nvidia-container-toolkit

case "$1" in
    purge)
        [ -L "${NVIDIA_CONTAINER_TOOLKIT}" ] && rm ${NVIDIA_CONTAINER_TOOLKIT}
    ;;

    upgrade|failed-upgrade|remove|abort-install|abort-upgrade|disappear)
    ;;

    *)
        echo "postrm called with unknown argument \\`$1'" >&2
        exit 1
    ;;
esac

exit 0
"""


# ------------------------------------------------------------------------ definition
def upstream_version(version: str) -> str:
    """``1.20.0-1`` -> ``1.20.0`` (what the programs report)."""
    return version.rsplit("-", 1)[0]


def tool_script(version: str) -> bytes:
    up = UPSTREAM[upstream_version(version)]
    text = SCRIPT.read_text()
    for marker, value in (("@VERSION@", upstream_version(version)), ("@COMMIT@", up["commit"]),
                          ("@BUILD_DATE@", up["date"])):
        text = text.replace(f'"{marker}"', json.dumps(value), 1)
    return text.encode()


def packages(version: str) -> list[dict]:
    """The four packages of one release: control fields, files (path -> (content, mode)), scripts."""
    tool = tool_script(version)

    def doc(name: str) -> dict:
        return {f"/usr/share/doc/{name}/README.lab": (LAB_NOTE.encode(), 0o644)}

    return [
        {"fields": {"Package": "libnvidia-container1", "Section": "libs", "Multi-Arch": "same",
                    "Description": "NVIDIA container runtime library (aicluster lab stand-in)\n"
                                   " Lab fixture standing in for NVIDIA's libnvidia-container1: it carries no\n"
                                   " library, only the package relations the toolkit packages need."},
         "files": doc("libnvidia-container1")},
        {"fields": {"Package": "libnvidia-container-tools", "Section": "utils",
                    "Depends": f"libnvidia-container1 (= {version})",
                    "Description": "NVIDIA container runtime library (command-line tools) (aicluster lab stand-in)\n"
                                   " Lab fixture: nvidia-container-cli answers --version, info and list from the\n"
                                   " lab machine's simulated GPUs."},
         "files": {"/usr/bin/nvidia-container-cli": (tool, 0o755), **doc("libnvidia-container-tools")}},
        {"fields": {"Package": "nvidia-container-toolkit-base", "Section": "utils",
                    "Breaks": "nvidia-container-runtime (<= 3.5.0-1), nvidia-container-runtime-hook, "
                              "nvidia-container-toolkit (<= 1.10.0-1)",
                    "Replaces": "nvidia-container-runtime (<= 3.5.0-1), nvidia-container-runtime-hook",
                    "Description": "NVIDIA Container Toolkit Base (aicluster lab stand-in)\n"
                                   " Lab fixture: nvidia-ctk (runtime configure, cdi generate, config) and\n"
                                   " nvidia-container-runtime as small scripts in the real tools' formats."},
         "files": {"/usr/bin/nvidia-ctk": (tool, 0o755), "/usr/bin/nvidia-container-runtime": (tool, 0o755),
                   "/usr/bin/nvidia-cdi-hook": (tool, 0o755),
                   "/lib/systemd/system/nvidia-cdi-refresh.service": (CDI_REFRESH_SERVICE.encode(), 0o644),
                   "/lib/systemd/system/nvidia-cdi-refresh.path": (CDI_REFRESH_PATH.encode(), 0o644),
                   "/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env": (CDI_REFRESH_ENV.encode(), 0o644),
                   **doc("nvidia-container-toolkit-base")},
         "conffiles": ["/etc/nvidia-container-toolkit/nvidia-cdi-refresh.env"],
         "scripts": {"postinst": BASE_POSTINST}},
        {"fields": {"Package": "nvidia-container-toolkit", "Section": "utils",
                    "Depends": f"nvidia-container-toolkit-base (= {version}), libnvidia-container-tools "
                               f"(= {version}), libnvidia-container-tools (<< 2.0.0)",
                    "Breaks": "nvidia-container-runtime (<= 3.5.0-1), nvidia-container-runtime-hook",
                    "Replaces": "nvidia-container-runtime (<= 3.5.0-1), nvidia-container-runtime-hook",
                    "Description": "NVIDIA Container toolkit (aicluster lab stand-in)\n"
                                   " Lab fixture: nvidia-container-runtime-hook as a small script."},
         "files": {"/usr/bin/nvidia-container-runtime-hook": (tool, 0o755), **doc("nvidia-container-toolkit")},
         "scripts": {"postinst": TOOLKIT_POSTINST, "postrm": TOOLKIT_POSTRM}},
    ]


def definition(base_url: str, fingerprint: str) -> dict:
    return {
        "builder": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "script": hashlib.sha256(SCRIPT.read_bytes()).hexdigest(),
        "versions": list(VERSIONS), "arch": ARCH, "base_url": base_url, "signing_key": fingerprint,
    }


# ------------------------------------------------------------------------ signing key
def key_dir() -> Path:
    return cache_root() / "signing-key"


def _gpg_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPG") and k != "GNUPGHOME"}
    env["LC_ALL"] = "C"
    return env


class _GpgHome:
    """A throw-away GnuPG home (short path: the agent's socket lives in it); its agent is stopped after."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="lab-gpg-", dir="/tmp"))
        return self.path

    def __exit__(self, *exc) -> None:
        gpgconf = shutil.which("gpgconf")
        if gpgconf:
            subprocess.run([gpgconf, "--homedir", str(self.path), "--kill", "all"], capture_output=True,
                           env=_gpg_env(), check=False)
        shutil.rmtree(self.path, ignore_errors=True)


def ensure_signing_key(log=print) -> dict:
    """Generate the lab's repository signing key once; return its fingerprint and file paths."""
    d = key_dir()
    files = {"secret": d / "secret.asc", "public_gpg": d / "public.gpg", "public_asc": d / "public.asc",
             "fingerprint": d / "fingerprint"}
    if not all(p.is_file() for p in files.values()):
        gpg = require("gpg", "apt-get install gnupg (the lab signs its apt repository)")
        log("lab repos: generating the throw-away repository signing key (ed25519) ...")
        env = _gpg_env()
        tmp = d.with_name(f".signing-key.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True, mode=0o700)
        with _GpgHome() as home:
            base = [gpg, "--batch", "--homedir", str(home), "--pinentry-mode", "loopback", "--passphrase", ""]
            run([*base, "--quick-gen-key", KEY_UID, "ed25519", "sign", "never"], "gpg key generation", env=env)
            listing = run([gpg, "--batch", "--homedir", str(home), "--with-colons", "--list-secret-keys"],
                          "gpg --list-secret-keys", env=env).stdout.decode()
            fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
            (tmp / "public.gpg").write_bytes(run([*base, "--export", fpr], "gpg --export", env=env).stdout)
            (tmp / "public.asc").write_bytes(run([*base, "--armor", "--export", fpr], "gpg --export",
                                                 env=env).stdout)
            secret = run([*base, "--armor", "--export-secret-keys", fpr], "gpg --export-secret-keys", env=env).stdout
            fd = os.open(tmp / "secret.asc", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secret)
            (tmp / "fingerprint").write_text(fpr + "\n")
        d.parent.mkdir(parents=True, exist_ok=True)
        if d.exists():  # an incomplete key directory: replace it
            shutil.rmtree(d)
        finish_build(tmp, d)
    return {"fingerprint": files["fingerprint"].read_text().strip(), **{k: v for k, v in files.items()
                                                                         if k != "fingerprint"}}


def _sign(release: Path, key: dict) -> None:
    gpg = require("gpg", "apt-get install gnupg (the lab signs its apt repository)")
    env = _gpg_env()
    with _GpgHome() as home:
        base = [gpg, "--batch", "--homedir", str(home), "--pinentry-mode", "loopback", "--passphrase", ""]
        run([*base, "--import", key["secret"]], "gpg --import", env=env)
        sign = [*base, "--local-user", key["fingerprint"], "--digest-algo", "SHA512"]
        run([*sign, "--clearsign", "--output", release.with_name("InRelease"), release], "gpg --clearsign", env=env)
        run([*sign, "--armor", "--detach-sign", "--output", release.with_name("Release.gpg"), release],
            "gpg --detach-sign", env=env)


# ------------------------------------------------------------------------ building
def _control_text(fields: dict, version: str, installed_size: int) -> str:
    ordered = {"Package": fields["Package"], "Version": version, "Architecture": ARCH,
               "Maintainer": MAINTAINER, "Installed-Size": str(installed_size)}
    for key in ("Multi-Arch", "Depends", "Breaks", "Replaces", "Section"):
        if key in fields:
            ordered[key] = fields[key]
    ordered["Priority"] = "optional"
    ordered["Homepage"] = HOMEPAGES.get(fields["Package"], HOMEPAGE)
    ordered["Description"] = fields["Description"]
    return "".join(f"{k}: {v}\n" for k, v in ordered.items())


def _build_deb(pkg: dict, version: str, stage: Path, out_dir: Path, epoch: int) -> Path:
    name = pkg["fields"]["Package"]
    root = stage / f"{name}_{version}"
    root.mkdir(mode=0o755)
    kib = 0
    for path, (data, mode) in pkg["files"].items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        target.write_bytes(data)
        target.chmod(mode)
        kib += -(-len(data) // 1024)
    debian = root / "DEBIAN"
    debian.mkdir(mode=0o755)
    dirs = {p for p in root.rglob("*") if p.is_dir() and p != debian}
    (debian / "control").write_text(_control_text(pkg["fields"], version, kib + len(dirs)))
    if pkg.get("conffiles"):
        (debian / "conffiles").write_text("".join(f"{c}\n" for c in pkg["conffiles"]))
    for script, text in pkg.get("scripts", {}).items():
        (debian / script).write_text(text)
        (debian / script).chmod(0o755)
    for p in [root, *root.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
        os.utime(p, (epoch, epoch))
    deb = out_dir / f"{name}_{version}_{ARCH}.deb"
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch), LC_ALL="C")
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, deb], f"dpkg-deb --build {deb.name}", env=env)
    return deb


def _packages_stanza(deb: Path) -> str:
    fields = run(["dpkg-deb", "--field", deb], f"dpkg-deb --field {deb.name}").stdout.decode()
    head, _, description = fields.partition("Description:")
    data = deb.read_bytes()
    sums = (f"Filename: ./{deb.name}\nSize: {len(data)}\nMD5sum: {hashlib.md5(data).hexdigest()}\n"  # noqa: S324 - repo format
            f"SHA1: {hashlib.sha1(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"  # noqa: S324
            f"SHA512: {hashlib.sha512(data).hexdigest()}\n")
    return head + sums + "Description:" + description.rstrip("\n") + "\n"


def _release_text(flat: Path, files: list[str]) -> str:
    now = time.gmtime()
    date = (f"{_DAYS[now.tm_wday]}, {now.tm_mday:02d} {_MONTHS[now.tm_mon - 1]} {now.tm_year} "
            f"{time.strftime('%H:%M:%S', now)} UTC")
    lines = ["Origin: aicluster-lab", "Label: libnvidia-container (lab stand-in of nvidia.github.io)",
             f"Architectures: {ARCH}", f"Date: {date}"]
    for title, algo in (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256"), ("SHA512", "sha512")):
        lines.append(f"{title}:")
        for name in files:
            data = (flat / name).read_bytes()
            lines.append(f" {hashlib.new(algo, data).hexdigest()} {len(data):>16} {name}")
    return "\n".join(lines) + "\n"


def _urls(base_url: str) -> dict:
    site = f"{base_url.rstrip('/')}/{MIRROR_PATH}"
    return {"site": site, "source": f"{site}/stable/deb/$(ARCH)", "repo": f"{site}/{FLAT_DIR}",
            "key": f"{site}/{KEYRING_NAME}", "key_asc": f"{site}/gpgkey", "list": f"{site}/{LIST_FILE}"}


def build_dir(base_url: str = DEFAULT_BASE_URL, log=print) -> Path:
    """``CACHE/repos/apt/<key>``: holds ``libnvidia-container/`` and ``lab-repo.json`` once built."""
    return cache_root() / "apt" / definition_key(definition(base_url, ensure_signing_key(log)["fingerprint"]))


def ensure_built(log=print, base_url: str = DEFAULT_BASE_URL) -> Path:
    """Build the repository once per definition; return its served tree (``.../libnvidia-container``)."""
    key = ensure_signing_key(log)
    final = build_dir(base_url, log)
    if (final / MANIFEST).is_file():
        return final / SITE_DIR
    require("dpkg-deb", "apt-get install dpkg-dev (the lab builds its apt repository with dpkg-deb)")
    log(f"lab repos: building the NVIDIA Container Toolkit apt repository ({', '.join(VERSIONS)}) ...")
    started = time.monotonic()
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    site = tmp / SITE_DIR
    flat = site / FLAT_DIR
    flat.mkdir(parents=True)
    debs = []
    with tempfile.TemporaryDirectory(prefix="lab-apt-stage-") as stage:
        for version in VERSIONS:
            epoch = calendar.timegm(time.strptime(UPSTREAM[upstream_version(version)]["date"][:10], "%Y-%m-%d"))
            debs += [_build_deb(p, version, Path(stage), flat, epoch) for p in packages(version)]
    stanzas = [_packages_stanza(d) for d in sorted(debs)]
    text = "\n".join(stanzas).encode()
    (flat / "Packages").write_bytes(text)
    with open(flat / "Packages.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(text)
    (flat / "Release").write_text(_release_text(flat, ["Packages", "Packages.gz"]))
    _sign(flat / "Release", key)
    shutil.copyfile(key["public_asc"], site / "gpgkey")
    shutil.copyfile(key["public_asc"], site / "nvidia-container-toolkit-keyring.asc")
    shutil.copyfile(key["public_gpg"], site / KEYRING_NAME)
    urls = _urls(base_url)
    (site / LIST_FILE).write_text(f"deb {urls['source']} /\n#deb {urls['site']}/experimental/deb/$(ARCH) /\n")
    for p in [tmp, *tmp.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    manifest = {"versions": list(VERSIONS), "pinned": PINNED_VERSION, "arch": ARCH, "base_url": base_url,
                "fingerprint": key["fingerprint"], "debs": sorted(d.name for d in debs),
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(time.monotonic() - started, 1)}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    final.parent.mkdir(parents=True, exist_ok=True)
    finish_build(tmp, final)
    log(f"lab repos: apt repository built in {manifest['build_seconds']} s ({final})")
    return final / SITE_DIR


# ------------------------------------------------------------------------ API
def apt_repo_info(base_url: str = DEFAULT_BASE_URL, log=print) -> dict:
    """What an inventory needs to use the repository (it need not be built yet; see ``publish``).

    ``url`` is the source URI exactly as NVIDIA's list has it (``$(ARCH)`` included), ``suite`` is
    ``/`` and ``components`` empty (a flat repository); ``key_url``/``key_sha256`` name the binary
    keyring for ``/usr/share/keyrings`` (``key_asc_*``: the ASCII key at upstream's ``gpgkey`` path).
    """
    key = ensure_signing_key(log)
    urls = _urls(base_url)
    return {
        "layout": "flat",
        "url": urls["source"],
        "repo_url": urls["repo"],
        "suite": "/",
        "components": [],
        "architecture": ARCH,
        "source_line": f"deb [signed-by={KEYRING_PATH}] {urls['source']} /",
        "list_url": urls["list"],
        "keyring_path": KEYRING_PATH,
        "key_url": urls["key"],
        "key_sha256": sha256_file(key["public_gpg"]),
        "key_asc_url": urls["key_asc"],
        "key_asc_sha256": sha256_file(key["public_asc"]),
        "key_fingerprint": key["fingerprint"],
        "packages": list(PACKAGES),
        "version": PINNED_VERSION,
        "versions": list(VERSIONS),
        "package_versions": dict.fromkeys(PACKAGES, PINNED_VERSION),
        "built": (build_dir(base_url, log) / MANIFEST).is_file(),
    }


def publish(log=print, base_url: str = DEFAULT_BASE_URL, mirror: Path | None = None) -> dict:
    """Build (once), link the tree into the mirror stand-in's root, write ``lab/state/repos/nvidia-apt.json``."""
    tree = ensure_built(log, base_url)
    link_into_mirror(MIRROR_PATH, tree, mirror)
    info = apt_repo_info(base_url, log)
    if mirror is None:
        write_state("nvidia-apt", info)
    return info


def _check_version(version: str) -> None:
    if version not in VERSIONS or upstream_version(version) not in UPSTREAM:
        raise RepoBuildError(f"unknown NVIDIA Container Toolkit version {version} (one of {', '.join(VERSIONS)})")


for _v in (*VERSIONS, PINNED_VERSION):
    _check_version(_v)
