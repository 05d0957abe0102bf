# Copyright: AI cluster platform maintainers
# Apache License 2.0 (see galaxy.yml)
"""Docker's daemon.json, shared by every runtime that registers itself there (NVIDIA, Ascend): the merge
that keeps every key it does not own and records what it replaced (so that removal restores it), and the
read-only state report the *_info modules give before anything is changed.
"""

from __future__ import annotations

import copy
import json
import os


class DaemonJsonError(ValueError):
    """daemon.json cannot be merged (not JSON, not an object, a key in the way)."""


_ABSENT = {"__absent__": True}


def load_daemon_json(text, path="/etc/docker/daemon.json"):
    """The JSON object of a daemon.json text (empty or blank text: ``{}``)."""
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DaemonJsonError(f"{path} is not valid JSON ({exc}); fix it by hand, nothing was changed") from None
    if not isinstance(data, dict):
        raise DaemonJsonError(f"{path} holds a JSON {type(data).__name__}, not an object; nothing was changed")
    return data


def dump_daemon_json(data):
    """Docker reads any JSON; 4-space indentation and key order as found (new keys at the end)."""
    return json.dumps(data, indent=4, ensure_ascii=False) + "\n"


def get_path(tree, path):
    node = tree
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return copy.deepcopy(_ABSENT)
        node = node[key]
    return copy.deepcopy(node)


def _is_absent(value):
    return isinstance(value, dict) and value == _ABSENT


def set_path(tree, path, value, where="daemon.json"):
    node = tree
    for i, key in enumerate(path[:-1]):
        if key not in node:
            node[key] = {}
        elif not isinstance(node[key], dict):
            raise DaemonJsonError(f"{where}: {'.'.join(path[:i + 1])} is not an object; nothing was changed")
        node = node[key]
    node[path[-1]] = copy.deepcopy(value)


def delete_path(tree, path):
    """Remove ``path``; parents left empty by it are removed too (``runtimes: {}`` goes away)."""
    chain = [tree]
    for key in path[:-1]:
        node = chain[-1].get(key) if isinstance(chain[-1], dict) else None
        if not isinstance(node, dict):
            return
        chain.append(node)
    if not isinstance(chain[-1], dict):
        return
    chain[-1].pop(path[-1], None)
    for depth in range(len(path) - 1, 0, -1):
        if chain[depth] == {}:
            chain[depth - 1].pop(path[depth - 1], None)
        else:
            break


def _key(path):
    return "\u0000".join(path)


def plan_daemon_json(current, record, settings, state="present"):
    """Compute the new daemon.json object and the new restore record.

    ``current``: the object on disk; ``record``: ``{"entries": [{"path": [...], "before": value or
    absent-marker}]}`` as left by earlier runs (None: none); ``settings``: ``[{"path": [...], "value":
    ...}]`` wanted now. ``present``: each setting is written; the value a path had before it was first
    set is kept in the record; recorded paths no longer wanted get their old value back. ``absent``:
    every recorded path gets its old value back and the record is dropped (None). Every other key of
    the file is left as it is. Returns ``(new_object, new_record)``."""
    new = copy.deepcopy(current)
    entries = {_key(e["path"]): e for e in (record or {}).get("entries", [])}
    wanted = {} if state == "absent" else {_key(s["path"]): s for s in settings}
    kept = []
    for key, entry in entries.items():
        if key in wanted:
            kept.append(entry)
            continue
        before = entry["before"]
        if _is_absent(before):
            delete_path(new, entry["path"])
        else:
            set_path(new, entry["path"], before)
    for key, setting in wanted.items():
        if key not in entries:
            kept.append({"path": list(setting["path"]), "before": get_path(current, setting["path"])})
        set_path(new, list(setting["path"]), setting["value"])
    if state == "absent" or not kept:
        return new, None
    return new, {"entries": sorted(kept, key=lambda e: e["path"])}


def read_record(path):
    """The restore record docker_daemon_json keeps (None when there is none or it is unreadable)."""
    text = _read(path) if path else None
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("entries"), list) else None


def _read(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def daemon_json_state(path, record_path, settings, state):
    """daemon.json as docker_daemon_json would change it (``ok``: it would not), read-only."""
    result = {"path": path, "exists": os.path.exists(path), "error": None, "ok": False, "runtimes": [],
              "default_runtime": None, "recorded": []}
    record = read_record(record_path)
    result["recorded"] = [e["path"] for e in (record or {}).get("entries", [])]
    if state == "absent" and record is None:
        result["ok"] = True  # nothing to restore: docker_daemon_json does not even read the file
        return result
    try:
        current = load_daemon_json(_read(path) if result["exists"] else None, path)
        new, new_record = plan_daemon_json(current, record, settings, state)
    except (DaemonJsonError, OSError, UnicodeDecodeError) as exc:
        result["error"] = str(exc)
        return result
    runtimes = current.get("runtimes")
    result["runtimes"] = sorted(runtimes) if isinstance(runtimes, dict) else []
    result["default_runtime"] = current.get("default-runtime")
    file_unchanged = new == current and (result["exists"] or new == {})
    if state == "absent" and result["exists"] and new == {} and (record or {}).get("created"):
        file_unchanged = False  # docker_daemon_json removes the file it created
    record_unchanged = (new_record or {}).get("entries") == (record or {}).get("entries") if record_path else True
    result["ok"] = file_unchanged and record_unchanged
    return result
