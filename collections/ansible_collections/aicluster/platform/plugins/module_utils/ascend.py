# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Huawei Ascend machine side, the pure parts (no Ansible, no process runs): Ascend version
ordering (``24.1.rc3`` < ``24.1.0``), the driver precondition from ``npu-smi info`` and
``/usr/local/Ascend/driver/version.info``, the Ascend Docker Runtime's install record, the
MindCluster accounts (``HwHiAiUser``, ``hwMindX``) checked against the machine's user and group
databases, the record of what the ascend_docker_runtime role created (so that removal takes away
exactly that), and the managed block the role keeps in RKE2's containerd configuration template.

Sources (shared/reference/accelerators.md 4.4-4.8 and 5): driver paths and the npu-smi table; the
installer's ``ascend_docker_runtime_install.info`` (``version=v<ver>``, ``install-scene=``,
``config-file-path=``, ...) written by ``run_main.sh``; the runtime entry the installer gives
containerd (``runtime_type = "io.containerd.runc.v2"``, ``options.BinaryName``, SystemdCgroup as
runc's) under the CRI plugin of the config version (2: ``io.containerd.grpc.v1.cri``, 3:
``io.containerd.cri.v1.runtime``); RKE2/K3s containerd templates extending ``{{ template "base" . }}``.
"""

from __future__ import annotations

import json
import os
import re

from ansible_collections.aicluster.platform.plugins.module_utils import accelerators

# ----------------------------------------------------------------------------------- versions
# Pre-release words, lowest first; any other word ranks above them (still below a number).
_PRE_RELEASE = ("alpha", "a", "beta", "b", "t", "rc")
_TOKEN = re.compile(r"\d+|[a-z]+")


def normalize_version(version):
    """``v26.0.RC1`` -> ``26.0.rc1`` (lower case, no leading ``v``); None/empty -> None."""
    if version is None:
        return None
    text = str(version).strip().lower()
    if text.startswith("v") and text[1:2].isdigit():
        text = text[1:]
    return text or None


def _token_key(token):
    if token.isdigit():
        return (2, int(token), "")
    if token in _PRE_RELEASE:
        return (0, _PRE_RELEASE.index(token), token)
    return (1, 0, token)


def version_key(version):
    """A sortable key of an Ascend version (driver ``24.1.rc3``, ``23.0.0``; runtime ``6.0.RC2``,
    ``v26.0.0``). Numbers compare as numbers; a word (``rc``) ranks below any number at the same place,
    so ``24.1.rc3`` < ``24.1.0`` and ``6.0.rc2`` < ``6.0.0``; missing places count as 0, so ``24.1`` ==
    ``24.1.0`` > ``24.1.rc3``."""
    text = normalize_version(version)
    if not text:
        raise ValueError(f"not a version: {version!r}")
    return [_token_key(t) for t in _TOKEN.findall(text)] or [(1, 0, text)]


def compare_versions(left, right):
    """-1, 0 or 1 as ``left`` is older than, the same as or newer than ``right``."""
    a, b = version_key(left), version_key(right)
    pad = (2, 0, "")
    length = max(len(a), len(b))
    a, b = a + [pad] * (length - len(a)), b + [pad] * (length - len(b))
    return (a > b) - (a < b)


def version_at_least(found, minimum):
    """``found`` >= ``minimum``; an empty minimum accepts any version found; nothing found is never enough."""
    if not found:
        return False
    if not minimum:
        return True
    try:
        return compare_versions(found, minimum) >= 0
    except ValueError:
        return False


def versions_equal(left, right):
    if not left or not right:
        return False
    try:
        return compare_versions(left, right) == 0
    except ValueError:
        return False


# ----------------------------------------------------------------------------------- driver
def driver_report(npu_smi_path, npu_smi_result, version_info_text, version_file, min_version):
    """The Ascend driver precondition.

    ``npu_smi_result``: ``(rc, stdout, stderr)`` of ``npu-smi info`` or None when npu-smi was not found;
    ``version_info_text``: the content of ``version.info`` or None when it is missing. The driver version
    is the ``Version=`` of version.info (what the driver package installed); npu-smi must answer with its
    chip table. ``ok`` when both hold and the version is at least ``min_version``; ``error`` says why not."""
    report = {"npu_smi": npu_smi_path, "npu_smi_ok": False, "npu_smi_version": None, "chips": 0,
              "version_file": version_file, "version": None, "min_version": min_version or None,
              "ok": False, "error": None}
    errors = []
    if npu_smi_result is None:
        errors.append("npu-smi not found (it comes with the Ascend driver)")
    else:
        rc, out, err = npu_smi_result
        table = accelerators.parse_npu_smi(out) if rc == 0 else None
        if rc != 0:
            detail = " ".join(((err or "").strip() or (out or "").strip()).split())
            errors.append(f"npu-smi info exited {rc}: {detail or 'no output'}")
        elif not table or not table.get("chips"):
            errors.append("npu-smi info printed no NPU")
        else:
            report.update(npu_smi_ok=True, npu_smi_version=table.get("version"), chips=len(table["chips"]))
    if version_info_text is None:
        errors.append(f"{version_file} not found")
    else:
        report["version"] = accelerators.parse_ascend_version_info(version_info_text)
        if not report["version"]:
            errors.append(f"{version_file} has no Version= line")
    if not errors and min_version and not version_at_least(report["version"], min_version):
        errors.append(f"driver {report['version']} is older than {min_version}")
    report["ok"] = not errors
    report["error"] = "; ".join(errors) or None
    return report


# ----------------------------------------------------------------------------------- runtime install record
INSTALL_INFO = "ascend_docker_runtime_install.info"
RUNTIME_BINARY = "ascend-docker-runtime"


def parse_install_info(text):
    """``ascend_docker_runtime_install.info`` (``key=value`` lines) -> dict; ``version`` normalized
    (the installer writes ``version=v<ver>``)."""
    info = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            info[key.strip()] = value.strip()
    if info.get("version"):
        info["version"] = normalize_version(info["version"])
    return info


def runtime_report(install_dir, info_text, binary_exists, wanted_version):
    """What is installed in ``install_dir``: ``installed`` when the install record and the runtime binary
    are both there; ``matches`` when it is ``wanted_version``."""
    info = parse_install_info(info_text) if info_text is not None else {}
    installed = info_text is not None and binary_exists
    version = info.get("version") if installed else None
    return {
        "install_dir": install_dir,
        "installed": installed,
        "version": version,
        "install_scene": info.get("install-scene") or None,
        "config_file_path": info.get("config-file-path") or None,
        "injection_mode": info.get("injection-mode") or None,
        "binary": os.path.join(install_dir, RUNTIME_BINARY),
        "wanted": normalize_version(wanted_version),
        "matches": installed and versions_equal(version, wanted_version),
    }


_RUNTIME_VERSION = re.compile(r"version:\s*(\S+)", re.IGNORECASE)


def parse_runtime_version_output(stdout):
    """``<package>.run --version`` prints ``ascend-docker-runtime version: 26.0.0`` -> ``26.0.0``."""
    match = _RUNTIME_VERSION.search(stdout or "")
    return normalize_version(match.group(1)) if match else None


# ----------------------------------------------------------------------------------- accounts
def account_report(accounts, getpwnam, getpwuid, getgrnam, getgrgid, getgrouplist):
    """Each wanted account (``user``, ``uid``, ``group``, ``gid``, ``groups``: supplementary group names)
    against the machine's databases (the lookups are ``pwd``/``grp``/``os.getgrouplist``, which go
    through NSS as ``getent`` does). Returns ``(report, problems)``.

    A problem is what the role must not paper over: a name that exists with another id (MindCluster
    needs the same ids on every machine and in the containers), or a wanted id that another name holds.
    Missing accounts are not problems: the role creates them."""
    report, problems = {}, []
    seen_uids, seen_gids = {}, {}
    for account in accounts:
        user, uid, group, gid = account["user"], int(account["uid"]), account["group"], int(account["gid"])
        for ids, value, name, kind in ((seen_uids, uid, user, "uid"), (seen_gids, gid, group, "gid")):
            if ids.get(value, name) != name:
                problems.append(f"{kind} {value} is wanted for both {ids[value]} and {name}")
            ids[value] = name
        entry = {"user": user, "uid": uid, "group": group, "gid": gid, "user_exists": False, "actual_uid": None,
                 "primary_gid": None, "group_exists": False, "actual_gid": None, "member_of": [],
                 "missing_groups": [], "ok": False}
        user_entry = _lookup(getpwnam, user)
        group_entry = _lookup(getgrnam, group)
        if group_entry is not None:
            entry.update(group_exists=True, actual_gid=group_entry.gr_gid)
            if group_entry.gr_gid != gid:
                problems.append(f"group {group} exists with gid {group_entry.gr_gid}, not {gid}")
        else:
            holder = _lookup(getgrgid, gid)
            if holder is not None:
                problems.append(f"gid {gid} wanted for group {group} is taken by group {holder.gr_name}")
        if user_entry is not None:
            entry.update(user_exists=True, actual_uid=user_entry.pw_uid, primary_gid=user_entry.pw_gid)
            if user_entry.pw_uid != uid:
                problems.append(f"user {user} exists with uid {user_entry.pw_uid}, not {uid}")
            if user_entry.pw_gid != gid:
                problems.append(f"user {user} exists with primary gid {user_entry.pw_gid}, not {gid} ({group})")
            gids = _grouplist(getgrouplist, user, user_entry.pw_gid)
            names = []
            for member_gid in gids:
                found = _lookup(getgrgid, member_gid)
                names.append(found.gr_name if found is not None else str(member_gid))
            entry["member_of"] = sorted(set(names))
        else:
            holder = _lookup(getpwuid, uid)
            if holder is not None:
                problems.append(f"uid {uid} wanted for user {user} is taken by user {holder.pw_name}")
        entry["missing_groups"] = [g for g in account.get("groups") or [] if g not in entry["member_of"]]
        entry["ok"] = entry["user_exists"] and entry["group_exists"] and not entry["missing_groups"]
        report[user] = entry
    return report, problems


def _lookup(function, key):
    try:
        return function(key)
    except (KeyError, OverflowError, TypeError, ValueError):
        return None


def _grouplist(getgrouplist, user, gid):
    try:
        return list(getgrouplist(user, gid))
    except (KeyError, OSError):
        return [gid]


# ----------------------------------------------------------------------------------- what the role created
RECORD_KEYS = ("groups", "users", "log_dirs", "dirs", "files")


def load_record(text):
    """The role's record (JSON object) or None when there is none; raises ValueError when unreadable."""
    if text is None or not text.strip():
        return None
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def plan_record(previous, candidates, exists, runtime_installed):
    """The record after this run: what it held plus each candidate that does not exist now (the role is
    about to create it; for ``dirs``, with its missing parents). ``candidates``: lists per :data:`RECORD_KEYS`;
    ``exists(kind, name)`` says
    whether one exists now; ``runtime_installed``: whether some Ascend Docker Runtime is installed now
    (when none is, the role installs it and owns it). Lists keep their order, without duplicates."""
    previous = previous or {}
    planned = {}
    for kind in RECORD_KEYS:
        items = list(previous.get(kind) or [])
        for name in candidates.get(kind) or []:
            # a directory the role makes comes with the parents it makes for it (outermost first)
            if kind == "dirs":
                names = missing_parents(os.path.join(name, "_"), lambda d: exists("dirs", d))
            else:
                names = [] if exists(kind, name) else [name]
            items.extend(n for n in names if n not in items)
        planned[kind] = items
    planned["runtime"] = bool(previous.get("runtime")) or not runtime_installed
    return planned


def removable_dirs(dirs, removed_files, listdir):
    """Of the recorded ``dirs`` (parents the role created), those that are empty once the role's own
    files and the other removable dirs are gone: deepest first, so they can be removed in order."""
    removed = {os.path.normpath(p) for p in removed_files}
    result = []
    for path in sorted({os.path.normpath(d) for d in dirs}, key=lambda p: (-p.count(os.sep), p)):
        try:
            entries = listdir(path)
        except OSError:  # gone already, or unreadable: not for the role to remove
            continue
        if all(os.path.join(path, e) in removed for e in entries):
            result.append(path)
            removed.add(path)
    return result


def missing_parents(path, exists):
    """The directories above ``path`` that do not exist (outermost first)."""
    missing = []
    parent = os.path.dirname(os.path.normpath(path))
    while parent and parent != os.sep and not exists(parent):
        missing.insert(0, parent)
        parent = os.path.dirname(parent)
    return missing


# ----------------------------------------------------------------------------------- containerd template
CRI_PLUGINS = {2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.runtime"}
BLOCK_BEGIN = "# BEGIN aicluster ascend_docker_runtime"
BLOCK_END = "# END aicluster ascend_docker_runtime"
TEMPLATE_HEADER = ("# Managed by Ansible (ascend_docker_runtime role): RKE2's own containerd configuration,\n"
                   "# then the Ascend Docker Runtime.\n")
BASE_TEMPLATE = '{{ template "base" . }}\n'
_CONFIG_VERSION = re.compile(r"^\s*version\s*=\s*(\d+)\s*$", re.MULTILINE)


def containerd_config_version(config_text, default=2):
    """The ``version = N`` of a rendered containerd config.toml (RKE2 writes 2 for containerd 1.7,
    3 for containerd 2.x); ``default`` when there is none."""
    match = _CONFIG_VERSION.search(config_text or "")
    return int(match.group(1)) if match else default


def runtime_block(runtime_name, binary, config_version):
    """The managed block: the runtime the installer gives containerd (reference section 5), with
    SystemdCgroup as RKE2 sets it for runc (``{{ .SystemdCgroup }}``, a field of RKE2's template data)."""
    if config_version not in CRI_PLUGINS:
        raise ValueError(f"containerd config version must be one of {sorted(CRI_PLUGINS)}, got {config_version!r}")
    table = f'plugins."{CRI_PLUGINS[config_version]}".containerd.runtimes."{runtime_name}"'
    return (f"{BLOCK_BEGIN} (managed block, do not edit)\n"
            f"[{table}]\n"
            f'  runtime_type = "io.containerd.runc.v2"\n'
            f"[{table}.options]\n"
            f'  BinaryName = "{binary}"\n'
            "  SystemdCgroup = {{ .SystemdCgroup }}\n"
            f"{BLOCK_END}\n")


def _split_block(text):
    """``(before, block, after)`` of the managed block in ``text`` (block None when absent)."""
    lines = text.splitlines(keepends=True)
    begin = next((i for i, line in enumerate(lines) if line.startswith(BLOCK_BEGIN)), None)
    if begin is None:
        return text, None, ""
    end = next((i for i in range(begin + 1, len(lines)) if lines[i].startswith(BLOCK_END)), len(lines) - 1)
    return "".join(lines[:begin]), "".join(lines[begin:end + 1]), "".join(lines[end + 1:])


def plan_template(current, block, state="present", created=False):
    """The new template text (None: remove the file) for ``current`` (None: no file).

    present: a missing file becomes the header, RKE2's base template and the block; an existing one
    gets the block appended, or its block replaced in place. absent: the block goes (with the blank
    line put before it); a file the role created (``created``) that holds nothing else is removed."""
    if state == "present":
        if current is None or not current.strip():
            return TEMPLATE_HEADER + BASE_TEMPLATE + "\n" + block
        before, old, after = _split_block(current)
        if old is None:
            return (current if current.endswith("\n") else current + "\n") + "\n" + block
        return before + block + after
    if current is None:
        return None
    before, old, after = _split_block(current)
    rest = current if old is None else (before[:-1] if before.endswith("\n\n") else before) + after
    if created and rest.strip() in ("", (TEMPLATE_HEADER + BASE_TEMPLATE).strip()):
        return None
    return rest


def template_state(path, current, block, state, created):
    """``ok`` when :func:`plan_template` would change nothing (file, content)."""
    planned = plan_template(current, block, state, created)
    return {"path": path, "exists": current is not None, "has_block": current is not None
            and _split_block(current)[1] is not None, "ok": planned == current,
            "removed": current is not None and planned is None}
