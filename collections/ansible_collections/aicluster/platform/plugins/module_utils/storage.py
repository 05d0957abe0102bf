# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Pure logic behind the data_storage role: JuiceFS command lines and status parsing, and the
mount-point safety check (is a path already the wanted filesystem, empty, or something to refuse).

No Ansible imports: the modules wrap these functions and the unit tests call them directly.
"""

from __future__ import annotations

import json
import os
import re

NOT_FORMATTED = "database is not formatted"
# Keys of `juicefs status` "Setting" worth reporting (secrets are never among them).
SETTING_KEYS = ("Name", "UUID", "Storage", "Bucket", "BlockSize", "Compression", "TrashDays", "MetaVersion")
_URL_PASSWORD = re.compile(r"^[a-z0-9+.-]+://[^/@]*:[^/@]+@", re.I)


class StorageError(Exception):
    """A clear, one-line reason; the module fails with it and changes nothing."""


# ------------------------------------------------------------------ JuiceFS
def url_has_password(url):
    """True when a metadata/bucket URL embeds a password (``redis://:pw@host``)."""
    return bool(_URL_PASSWORD.match(url or ""))


def redact(text, secrets):
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text


def status_command(binary, meta_url):
    return [binary, "status", meta_url]


def format_command(binary, meta_url, name, storage, bucket, access_key=None, options=None):
    """``juicefs format`` for a new volume; the secret key travels in $SECRET_KEY, never in argv.

    ``--no-update`` makes a concurrent or repeated format leave an existing volume untouched.
    """
    cmd = [binary, "format", "--no-update", f"--storage={storage}"]
    if bucket:
        cmd.append(f"--bucket={bucket}")
    if access_key:
        cmd.append(f"--access-key={access_key}")
    for key, value in sorted((options or {}).items()):
        flag = "--" + str(key).replace("_", "-")
        if isinstance(value, bool):
            if value:
                cmd.append(flag)
        elif value is not None:
            cmd.append(f"{flag}={value}")
    cmd += [meta_url, name]
    return cmd


def command_env(meta_password=None, secret_key=None):
    env = {}
    if meta_password:
        env["META_PASSWORD"] = meta_password
    if secret_key:
        env["SECRET_KEY"] = secret_key
    return env


def parse_status(rc, stdout, stderr):
    """Interpret ``juicefs status META``: ``(exists, setting)``; raise StorageError when unknown.

    ``exists`` is False only when the metadata engine answered that it holds no volume; any
    other failure (unreachable, wrong password) is an error, so it never leads to a format.
    """
    if rc == 0:
        try:
            data = json.loads(stdout[stdout.index("{"):])
        except ValueError as exc:
            raise StorageError(f"cannot parse `juicefs status` output: {exc}") from None
        setting = data.get("Setting") or {}
        return True, {k: setting[k] for k in SETTING_KEYS if k in setting}
    if NOT_FORMATTED in (stderr or "") or NOT_FORMATTED in (stdout or ""):
        return False, {}
    lines = [ln for ln in (stderr or stdout or "").strip().splitlines() if ln.strip()]
    detail = lines[-1] if lines else f"exit {rc}"
    raise StorageError(f"cannot read the JuiceFS metadata engine: {detail}")


def check_existing(setting, name, storage=None, bucket=None):
    """Refuse an engine that holds another volume; list differing settings (never changed here)."""
    if setting.get("Name") != name:
        raise StorageError(
            f"the metadata engine already holds JuiceFS volume {setting.get('Name')!r}, not {name!r}: "
            "refusing to format it again (use another metadata URL/database or the existing name)")
    differences = []
    if storage and setting.get("Storage") and setting["Storage"] != storage:
        differences.append(f"storage is {setting['Storage']!r}, wanted {storage!r}")
    if bucket and setting.get("Bucket") and setting["Bucket"].rstrip("/") != bucket.rstrip("/"):
        differences.append(f"bucket is {setting['Bucket']!r}, wanted {bucket!r}")
    return differences


# ------------------------------------------------------------- mount points
def unescape_mountinfo(field):
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    """Mounts from /proc/self/mountinfo, in order: dicts of mount_point, root, fstype, source, options."""
    mounts = []
    for line in text.splitlines():
        if " - " not in line:
            continue
        left, right = line.split(" - ", 1)
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 2:
            continue
        mounts.append({"mount_point": unescape_mountinfo(lf[4]), "root": unescape_mountinfo(lf[3]),
                       "fstype": rf[0], "source": unescape_mountinfo(rf[1]), "options": lf[5] if len(lf) > 5 else ""})
    return mounts


def mount_at(mounts, path):
    """The mount visible at ``path`` (the last one mounted there wins), or None."""
    path = os.path.normpath(path)
    found = None
    for m in mounts:
        if os.path.normpath(m["mount_point"]) == path:
            found = m
    return found


def inspect_target(path, mounts, lstat=os.lstat, stat=os.stat, listdir=os.listdir, readlink=os.readlink):
    """What is at ``path`` now: kind (absent|dir|symlink|file|other), mount, entries, link target, stat error."""
    info = {"path": path, "kind": "absent", "mount": mount_at(mounts, path), "entries": [], "link": None,
            "error": None, "dev_ino": None}
    try:
        st = lstat(path)
    except FileNotFoundError:
        return info
    except OSError as exc:
        info["kind"], info["error"] = "other", exc.strerror or str(exc)
        return info
    import stat as stat_mod

    if stat_mod.S_ISLNK(st.st_mode):
        info["kind"], info["link"] = "symlink", readlink(path)
        return info
    if not stat_mod.S_ISDIR(st.st_mode):
        info["kind"] = "file"
        return info
    info["kind"], info["dev_ino"] = "dir", (st.st_dev, st.st_ino)
    try:
        info["entries"] = sorted(listdir(path))
    except OSError as exc:  # e.g. a dead FUSE mount: "Transport endpoint is not connected"
        info["error"] = exc.strerror or str(exc)
    return info


def evaluate_target(info, fstype=None, source=None, same_as=None, same_as_dev_ino=None, link_to=None,
                    allow_nonempty=False):
    """Decide about a mount target. Returns ``state``: ``ready`` (already the wanted filesystem),
    ``empty`` (absent or an empty, unmounted directory: safe to set up); raises StorageError
    (nothing changed) for anything else, naming what is there and what to do.
    """
    path, mount, kind = info["path"], info["mount"], info["kind"]
    if link_to is not None:
        if kind == "symlink":
            if os.path.normpath(info["link"]) == os.path.normpath(link_to):
                return "ready"
            raise StorageError(f"{path} is a symlink to {info['link']}, not {link_to}: refusing to replace it")
    elif kind == "symlink":
        raise StorageError(f"{path} is a symlink to {info['link']}: refusing to mount over it (remove the link first)")
    if kind == "file":
        raise StorageError(f"{path} is a file, not a directory: refusing to touch it")
    if kind == "other":
        raise StorageError(f"cannot inspect {path}: {info['error']}")
    if allow_nonempty and not info["error"]:
        return "ready" if kind == "dir" else "empty"
    if mount is not None:
        wanted_fs = fstype is not None and mount["fstype"] == fstype and (source is None or mount["source"] == source)
        if wanted_fs:
            return "ready"
        if same_as_dev_ino is not None and info["dev_ino"] == tuple(same_as_dev_ino):
            return "ready"
        raise StorageError(
            f"{path} is already a mount point of {mount['fstype']} {mount['source']}"
            f"{' (' + mount['root'] + ')' if mount['root'] not in ('/', '') else ''}, not the wanted "
            f"{_wanted(fstype, source, same_as, link_to)}: refusing to mount over it (unmount it first)")
    if info["error"]:
        raise StorageError(f"cannot list {path}: {info['error']}")
    if kind == "absent" or not info["entries"]:
        return "empty"
    shown = ", ".join(info["entries"][:5]) + (", ..." if len(info["entries"]) > 5 else "")
    raise StorageError(
        f"{path} is a non-empty directory ({len(info['entries'])} entries: {shown}) that is not the wanted "
        f"{_wanted(fstype, source, same_as, link_to)}: refusing to mount over it (move its content away first)")


def _wanted(fstype, source, same_as, link_to):
    if link_to is not None:
        return f"symlink to {link_to}"
    if same_as is not None:
        return f"bind mount of {same_as}"
    return f"{fstype or 'filesystem'}{' ' + source if source else ''}"
