# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Pure logic behind the data_storage_info module: the state of everything the data_storage role
manages on a machine (files by content hash, directories, systemd units, fstab, the mount point),
so that the role acts only on what differs.

No Ansible imports: the module wraps these functions and the unit tests call them directly.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import stat as stat_mod

from ansible_collections.aicluster.platform.plugins.module_utils import storage

_OCTAL = re.compile(r"^(0o?)?([0-7]{3,4})$")
# `systemctl show` properties read for each unit, in this order.
UNIT_PROPERTIES = ("LoadState", "ActiveState", "UnitFileState")


def normalize_mode(mode):
    """An octal mode as an int (``"0755"``, ``"755"``, ``"0o755"``, 493), or None when it cannot be
    compared (symbolic modes such as ``u=rwx,go=rx``: the caller then lets the file task decide)."""
    if mode is None:
        return None
    if isinstance(mode, int) and not isinstance(mode, bool):
        return mode & 0o7777
    match = _OCTAL.match(str(mode).strip())
    return int(match.group(2), 8) if match else None


def _names(st):
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return owner, group


def _attributes(st, mode, owner, group, names=_names):
    """Actual mode/owner/group and whether each wanted one (when given) matches."""
    actual_owner, actual_group = names(st)
    actual_mode = stat_mod.S_IMODE(st.st_mode)
    wanted_mode = normalize_mode(mode)
    return {
        "mode": f"{actual_mode:04o}",
        "owner": actual_owner,
        "group": actual_group,
        "attributes_match": ((mode is None or wanted_mode == actual_mode)
                             and (owner is None or owner == actual_owner)
                             and (group is None or group == actual_group)),
    }


def sha256_of(path, opener=open, chunk=1024 * 1024):
    digest = hashlib.sha256()
    with opener(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def file_state(path, sha256=None, mode=None, owner=None, group=None, stat=os.stat, hasher=sha256_of,
               names=_names):
    """A regular file's state: exists, content hash matches ``sha256`` (when given), attributes match.

    ``ok`` is true when nothing would change. The actual hash is never returned: for a file holding
    secrets, even its hash is not for the logs.
    """
    state = {"path": path, "exists": False, "is_file": False, "content_matches": False, "mode": None,
             "owner": None, "group": None, "attributes_match": False, "error": None, "ok": False}
    try:
        st = stat(path)
    except FileNotFoundError:
        return state
    except OSError as exc:
        state["error"] = exc.strerror or str(exc)
        return state
    state["exists"] = True
    state["is_file"] = stat_mod.S_ISREG(st.st_mode)
    state.update(_attributes(st, mode, owner, group, names))
    if state["is_file"]:
        if sha256 is None:
            state["content_matches"] = True
        else:
            wanted = str(sha256).lower()
            if wanted.startswith("sha256:"):
                wanted = wanted[len("sha256:"):]
            try:
                state["content_matches"] = hasher(path) == wanted
            except OSError as exc:
                state["error"] = exc.strerror or str(exc)
    state["ok"] = state["is_file"] and state["content_matches"] and state["attributes_match"] and not state["error"]
    return state


def dir_state(path, mode=None, owner=None, group=None, stat=os.stat, names=_names):
    """A directory's state: exists, is a directory (symlinks followed, as the file module does),
    attributes match; ``ok`` when ``file: state=directory`` would change nothing."""
    state = {"path": path, "exists": False, "is_dir": False, "mode": None, "owner": None, "group": None,
             "attributes_match": False, "error": None, "ok": False}
    try:
        st = stat(path)
    except FileNotFoundError:
        return state
    except OSError as exc:  # e.g. below a dead FUSE mount: "Transport endpoint is not connected"
        state["error"] = exc.strerror or str(exc)
        return state
    state["exists"] = True
    state["is_dir"] = stat_mod.S_ISDIR(st.st_mode)
    state.update(_attributes(st, mode, owner, group, names))
    state["ok"] = state["is_dir"] and state["attributes_match"]
    return state


def systemctl_show_command(systemctl, units):
    return [systemctl, "show", "--property=" + ",".join(UNIT_PROPERTIES), "--", *units]


def parse_systemctl_show(units, rc, stdout):
    """``systemctl show`` of several units (blocks in argument order, separated by blank lines) to
    ``{unit: {loaded, enabled, active, load_state, active_state, unit_file_state}}``."""
    blocks, current = [], {}
    for line in (stdout or "").splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, value = line.partition("=")[::2]
        current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    result = {}
    for index, unit in enumerate(units):
        props = blocks[index] if rc == 0 and index < len(blocks) else {}
        result[unit] = {
            "load_state": props.get("LoadState", "unknown"),
            "active_state": props.get("ActiveState", "unknown"),
            "unit_file_state": props.get("UnitFileState", ""),
            "loaded": props.get("LoadState") == "loaded",
            "enabled": props.get("UnitFileState") == "enabled",
            "active": props.get("ActiveState") == "active",
        }
    return result


def fstab_entry(text, path):
    """The last /etc/fstab entry for mount point ``path`` (as ansible.posix.mount reads it), or None."""
    found = None
    want = os.path.normpath(path)
    for line in (text or "").splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#") or len(fields) < 4:
            continue
        if os.path.normpath(storage.unescape_mountinfo(fields[1])) == want:
            found = {"src": storage.unescape_mountinfo(fields[0]), "path": fields[1], "fstype": fields[2],
                     "opts": fields[3], "dump": fields[4] if len(fields) > 4 else None,
                     "passno": fields[5] if len(fields) > 5 else None}
    return found


def fstab_matches(entry, src, fstype, opts, dump="0", passno="0"):
    """Whether ansible.posix.mount (state=mounted) would leave this fstab entry as it is."""
    if entry is None:
        return False
    return (entry["src"] == src and entry["fstype"] == fstype and entry["opts"] == opts
            and entry["dump"] == dump and entry["passno"] == passno)


def target_state(info, **wanted):
    """storage.evaluate_target as a report: ``state`` ready/empty/refused and the refusal's ``problem``
    (the same sentence the mount_target module fails with), plus what is at the path now."""
    try:
        state, problem = storage.evaluate_target(info, **wanted), None
    except storage.StorageError as exc:
        state, problem = "refused", str(exc)
    return {"state": state, "problem": problem, "kind": info["kind"], "mount": info["mount"],
            "entries": len(info["entries"])}
