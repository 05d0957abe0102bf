"""The lab machine image: a debootstrapped Debian bookworm rootfs imported into podman.

The image is tagged ``localhost/aicluster-lab-node:<hash>`` where ``<hash>`` is the sha256 of
:func:`definition` (suite, variant, arch, mirror, package list, masked units, the files the
build writes and a build-procedure version). It is rebuilt only when that definition changes;
``podman image exists`` is the cache check. Accelerator fixtures are *not* part of the image:
they are bind-mounted per machine, so changing them never forces a rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .. import buildlog, paths
from . import podman
from .errors import FleetError

IMAGE_REPO = "localhost/aicluster-lab-node"
SUITE = "bookworm"
VARIANT = "minbase"
# Bump when the build procedure below changes in a way the definition does not capture.
BUILD_VERSION = 1

# What a real Debian server has that Ansible roles expect, beyond minbase.
PACKAGES = (
    # boot and services
    "systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "cron", "logrotate",
    # Ansible itself: python3 + apt module bindings, become_user via setfacl
    "python3", "python3-apt", "acl",
    # tools roles shell out to
    "iproute2", "iputils-ping", "netbase", "fuse3", "ca-certificates", "curl", "gnupg",
    "procps", "kmod", "pciutils", "util-linux", "dmidecode", "lsb-release", "less",
    "xz-utils", "unzip", "tar", "gzip", "rsync", "openssl", "tzdata", "file",
)

# Units that cost memory/CPU per container and mean nothing in a container. Masked by
# symlinking to /dev/null (what `systemctl mask` does).
MASKED_UNITS = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
    "e2scrub_reap.service", "fstrim.timer", "logrotate.timer", "man-db.timer",
    "getty.target", "console-getty.service", "getty@tty1.service", "serial-getty@console.service",
    "systemd-udevd.service", "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service", "systemd-udev-settle.service", "systemd-hwdb-update.service",
    "systemd-modules-load.service", "systemd-remount-fs.service", "systemd-firstboot.service",
    "systemd-journald-audit.socket", "systemd-timesyncd.service", "systemd-networkd-wait-online.service",
    "sys-kernel-config.mount", "sys-kernel-debug.mount", "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount", "dev-hugepages.mount", "proc-sys-fs-binfmt_misc.automount",
    "systemd-binfmt.service", "ldconfig.service", "systemd-pstore.service",
)

SSHD_CONFIG = """\
# aicluster lab machine: key-only root login, quick handshakes, many parallel Ansible forks
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
GSSAPIAuthentication no
MaxStartups 200:30:400
MaxSessions 50
"""

JOURNALD_CONFIG = """\
[Journal]
Storage=volatile
RuntimeMaxUse=8M
"""


def host_mirror(sources_dir: Path = Path("/etc/apt")) -> tuple[str, str]:
    """(debian mirror, security mirror) URIs from the host's apt configuration.

    The lab hosts may point at a local proxy or snapshot mirror; the machines use the same one.
    ``LAB_DEBIAN_MIRROR`` / ``LAB_DEBIAN_SECURITY_MIRROR`` override.
    """
    main = os.environ.get("LAB_DEBIAN_MIRROR", "")
    security = os.environ.get("LAB_DEBIAN_SECURITY_MIRROR", "")
    entries: list[tuple[str, list[str]]] = []  # (uri, suites)
    files = [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*"))]
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if "deb" in fields.get("types", "").split():
                    for uri in fields.get("uris", "").split():
                        entries.append((uri, fields.get("suites", "").split()))
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line).split()
                if len(parts) >= 3 and parts[0] == "deb":
                    entries.append((parts[1], [parts[2]]))
    for uri, suites in entries:
        if not main and SUITE in suites:
            main = uri
        if not security and f"{SUITE}-security" in suites:
            security = uri
    if not main:
        raise FleetError(f"no Debian {SUITE} mirror found in /etc/apt/sources.list*; set LAB_DEBIAN_MIRROR")
    return main.rstrip("/"), (security or "http://deb.debian.org/debian-security").rstrip("/")


def debian_arch() -> str:
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def apt_sources(mirror: str, security: str) -> str:
    return (
        f"Types: deb\nURIs: {mirror}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: {security}\nSuites: {SUITE}-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )


def definition(mirror: str | None = None, security: str | None = None) -> dict:
    """Everything that determines the image's content; its hash is the image tag."""
    if mirror is None or security is None:
        mirror, security = host_mirror()
    return {
        "build_version": BUILD_VERSION,
        "suite": SUITE,
        "variant": VARIANT,
        "arch": debian_arch(),
        "mirror": mirror,
        "packages": sorted(PACKAGES),
        "masked_units": sorted(MASKED_UNITS),
        "files": {
            "/etc/apt/sources.list.d/debian.sources": apt_sources(mirror, security),
            "/etc/ssh/sshd_config.d/10-lab.conf": SSHD_CONFIG,
            "/etc/systemd/journald.conf.d/10-lab.conf": JOURNALD_CONFIG,
        },
    }


def definition_hash(defn: dict) -> str:
    return hashlib.sha256(json.dumps(defn, sort_keys=True).encode()).hexdigest()


def image_ref(defn: dict | None = None) -> str:
    return f"{IMAGE_REPO}:{definition_hash(defn or definition())[:16]}"


def ensure_image(log=None) -> str:
    """Return the image reference, building and importing it first if it does not exist."""
    defn = definition()
    ref = image_ref(defn)
    if podman.ok(["image", "exists", ref]):
        return ref
    if log:
        log(f"building the lab machine image {ref} (Debian {SUITE} by debootstrap from {defn['mirror']}, "
            f"{len(defn['packages'])} packages; ~2 min, cold{buildlog.note()}) ...")
    build(defn, ref)
    return ref


def _configure_rootfs(root: Path, defn: dict) -> None:
    for path, content in defn["files"].items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    for unit in defn["masked_units"]:
        link = units / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    # a fresh machine-id per container, generated by systemd at boot
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    ssh = root / "root/.ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    ssh.chmod(0o700)
    # sshd needs its privilege-separation dir; tmpfiles creates it at boot too
    (root / "run/sshd").mkdir(parents=True, exist_ok=True)
    # ssh.service must be wanted by multi-user.target
    wants = units / "multi-user.target.wants"
    wants.mkdir(exist_ok=True)
    if not (wants / "ssh.service").is_symlink():
        (wants / "ssh.service").symlink_to("/lib/systemd/system/ssh.service")
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / cache).glob("*"):
            if entry.is_file():
                entry.unlink()


def build(defn: dict, ref: str) -> None:
    """debootstrap the rootfs, configure it, and ``podman import`` it as ``ref``."""
    if os.geteuid() != 0:
        raise FleetError("building the lab machine image needs root (debootstrap)")
    if not shutil.which("debootstrap"):
        raise FleetError("debootstrap is not installed (apt-get install $(cat lab/apt-packages.txt))")
    work = paths.CACHE_DIR / "fleet-image"
    work.mkdir(parents=True, exist_ok=True)
    (work / f"{definition_hash(defn)[:16]}.json").write_text(json.dumps(defn, indent=2, sort_keys=True))
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=work) as tmp:
        root = Path(tmp) / "rootfs"
        cmd = ["debootstrap", f"--variant={defn['variant']}", f"--arch={defn['arch']}",
               "--include=" + ",".join(defn["packages"]), defn["suite"], str(root), defn["mirror"]]
        code, log_path = buildlog.run(cmd, "machine image debootstrap")
        if code != 0:
            detail = root / "debootstrap" / "debootstrap.log"
            if detail.is_file():  # the temporary root goes away with this block: keep its details
                with open(log_path, "a") as fh:
                    fh.write(detail.read_text(errors="replace"))
            tail = (buildlog.tail(log_path, 1) or ["?"])[0]
            raise FleetError(f"debootstrap failed: {tail} (log: {buildlog.shown(log_path)})")
        _configure_rootfs(root, defn)
        tar = subprocess.Popen(["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-c", "."],
                               stdout=subprocess.PIPE)
        imp = subprocess.run(
            [podman.podman_bin(), "import",
             "--change", "CMD=/sbin/init", "--change", "STOPSIGNAL=SIGRTMIN+3",
             "--change", f"LABEL=aicluster-lab.image-definition={definition_hash(defn)}",
             "-", ref],
            stdin=tar.stdout, capture_output=True, text=True, check=False)
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise FleetError(f"podman import of {ref} failed: {imp.stderr.strip()[-200:]}")
