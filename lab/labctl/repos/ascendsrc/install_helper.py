#!/usr/bin/python3
"""LAB FIXTURE: stand-in for ``ascend-docker-plugin-install-helper`` of the Ascend Docker Runtime
release package (never product code; no Huawei software). The lab's stand-in ``run_main.sh`` and
``uninstall.sh`` call it exactly as the real scripts call the Go helper::

    ascend-docker-plugin-install-helper add <config file> <new config file> <runtime path> <yes|no> <scene> [...]
    ascend-docker-plugin-install-helper rm  <config file> <new config file> <yes|no> <scene> [...]

(``yes``: keep the default runtime, iSula; ``scene``: docker, isula or containerd; 26.0.1 passes
cgroup, OS name and version after it, which are ignored.) It reads ``<config file>`` and writes the
result to ``<new config file>``, which the caller then moves over the original, as the real
helper (``install/process/{docker,containerd}_process.go``) does:

- docker/isula ``daemon.json``: ``runtimes.ascend = {"path": <runtime>, "runtimeArgs": []}`` (an
  existing ``runtimeArgs`` is kept) and ``"default-runtime": "ascend"`` unless ``yes``; ``rm`` drops
  ``runtimes.ascend`` and a ``default-runtime`` of ``ascend``. Every other key is kept; the output is
  Go's ``json.MarshalIndent`` with 8 spaces (keys sorted). A missing file gets the helper's
  template (same bytes). The new file must not exist yet.
- containerd ``config.toml``: config ``version`` 1/2/3 (no version: 2) selects the CRI plugin
  (``cri``, ``io.containerd.grpc.v1.cri``, ``io.containerd.cri.v1.runtime``);
  ``plugins.<cri>.containerd.runtimes.ascend`` becomes a copy of the ``runc`` runtime table (or
  ``runtime_type = "io.containerd.runc.v2"``, ``options.SystemdCgroup = true``, ...) with
  ``options.BinaryName = <runtime>``, and ``default_runtime_name = "ascend"``; ``rm`` sets
  ``default_runtime_name = "runc"`` and deletes the ascend table (and parents left empty). Written
  in go-toml v1's layout (comments are lost, as with the real helper).

Every file it reads or writes is checked as the real helper checks it (mindxcheckutils): no ``..``
or ``./`` in the path, no symlink on the way, not writable by group or others, owned by root (or
the caller), and the same for every parent directory up to ``/``; a failing check is an error.

Lab-only hook: ``ASCEND_DOCKER_RUNTIME_LAB_ROOT`` (set by the lab's run_main.sh when the installer
runs under a root directory other than ``/``): the runtime path is checked under it, the parent
checks stop there, and the helper's log goes there. Standard library only (Python >= 3.11 for
tomllib).
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import stat
import sys
import time

LAB_ROOT = os.environ.get("ASCEND_DOCKER_RUNTIME_LAB_ROOT", "").rstrip("/")
LOG_PATH = "/var/log/ascend-docker-runtime/install-helper-run.log"
MAX_FILE_SIZE = 10 * 1024 * 1024
RUNTIME_NAME = "ascend"
DEFAULT_RUNTIME = "runc"
CRI_PLUGINS = {1: "cri", 2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.runtime"}

COMMON_TEMPLATE = """{
        "runtimes":     {
                "ascend":       {
                        "path": "%s",
                        "runtimeArgs":  []
                }
        },
        "default-runtime":      "ascend"
}"""

NO_DEFAULT_TEMPLATE = """{
        "runtimes":     {
                "ascend":       {
                        "path": "%s",
                        "runtimeArgs":  []
                }
        }
}"""

HELP = ("\tadd <config file path> <new config file path> <docker-runtime path> <whether reserve default> "
        "<docker or containerd>\n\t rm <config file path> <new config file path> <whether reserve default> "
        "<docker or containerd>\n\t -h help command")


class HelperError(Exception):
    pass


def _log(message: str) -> None:
    path = LAB_ROOT + LOG_PATH
    try:
        os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        with os.fdopen(fd, "a") as fh:
            fh.write(f"[{time.strftime('%Y/%m/%d %H:%M:%S')}] [lab stand-in] {message}\n")
    except OSError:
        pass


def fatal(message: str) -> None:
    """What Go's log.Fatal does: a timestamped line on stderr, exit 1."""
    _log(f"ERROR {message}")
    sys.stderr.write(f"{time.strftime('%Y/%m/%d %H:%M:%S')} {message}\n")
    sys.exit(1)


def _top() -> str:
    """Where the parent checks stop: ``/``, or the lab root (its own parents are the test's business)."""
    return os.path.realpath(LAB_ROOT) if LAB_ROOT else "/"


def _file_checker(path: str, allow_dir: bool) -> None:
    """mindxcheckutils.FileChecker with checkParent: no ``..`` or ``./`` in the path, no symlink in it,
    a regular file (or a directory where allowed), not writable by group or others, owned by root or
    the caller, and the same for every parent directory."""
    if ".." in path or "./" in path:
        raise HelperError(f"err path {path}")
    top = _top()
    current, is_first = os.path.abspath(path), True
    while True:
        if os.path.realpath(current) != current:
            raise HelperError(f"symlinks or not existed, failed {current}")
        try:
            info = os.stat(current)
        except OSError as exc:
            raise HelperError(f"get file stat failed {exc}") from None
        regular, directory = stat.S_ISREG(info.st_mode), stat.S_ISDIR(info.st_mode)
        if not (regular or (directory and (allow_dir or not is_first))):
            raise HelperError(f"not regular file {current}")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise HelperError(f"write permission not right {current} {stat.filemode(info.st_mode)}")
        if info.st_uid not in (0, os.getuid()):
            raise HelperError(f"owner not right {current} {info.st_uid}")
        if current in ("/", top):
            return
        current, is_first = os.path.dirname(current), False


def _check_file(path: str, what: str) -> None:
    """RealFileChecker: the checks above, then a regular file no bigger than the limit."""
    _file_checker(path, allow_dir=False)
    if os.path.getsize(path) > MAX_FILE_SIZE:
        raise HelperError(f"{what} {path}: size too large")


def _check_dir(path: str) -> None:
    """RealDirChecker: the checks above, then a directory."""
    _file_checker(path, allow_dir=True)
    if not os.path.isdir(path):
        raise HelperError("not a dir")


# --------------------------------------------------------------------------- docker / isula
def _go_json(value) -> str:
    text = json.dumps(value, indent=8, sort_keys=True, ensure_ascii=False)
    # Go's encoding/json escapes <, > and & in strings.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def docker(action: str, src: str, dest: str, runtime: str, reserve_default: bool) -> None:
    if os.path.exists(src):
        _check_file(src, "config file")
    else:
        _check_dir(os.path.dirname(src) or ".")
    _check_dir(os.path.dirname(dest) or ".")
    if os.path.exists(src):
        try:
            with open(src, encoding="utf-8") as fh:
                daemon = json.load(fh)
        except ValueError as exc:
            raise HelperError(f"load daemon.json failed, err: {exc}") from None
        if not isinstance(daemon, dict):
            raise HelperError("load daemon.json failed, err: json: cannot unmarshal into a map")
        runtimes = daemon.get("runtimes")
        if action == "add":
            if "runtimes" not in daemon:
                runtimes = daemon["runtimes"] = {}
            if not isinstance(runtimes, dict):
                raise HelperError("extract runtime failed")
            ascend = runtimes.setdefault(RUNTIME_NAME, {})
            if not isinstance(ascend, dict):
                raise HelperError("extract ascend failed")
            ascend["path"] = runtime
            ascend.setdefault("runtimeArgs", [])
            if not reserve_default:
                daemon["default-runtime"] = RUNTIME_NAME
        else:
            if isinstance(runtimes, dict):
                runtimes.pop(RUNTIME_NAME, None)
            if daemon.get("default-runtime") == RUNTIME_NAME:
                del daemon["default-runtime"]
        content = _go_json(daemon)
    else:
        content = (NO_DEFAULT_TEMPLATE if reserve_default else COMMON_TEMPLATE) % runtime
    if os.path.exists(dest):
        raise HelperError("target file already existed")
    fd = os.open(dest, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)


# --------------------------------------------------------------------------- containerd
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in sorted(value.items())) + "}"
    raise HelperError(f"unable to convert to TOML: unsupported value {value!r}")


def toml_dumps(tree: dict) -> str:
    """go-toml v1's Tree.Marshal() layout: keys sorted, plain values before sub-tables, a blank line
    before every table header, two spaces of indentation per level."""
    lines: list[str] = []

    def table(node: dict, path: list[str]) -> None:
        pad = "  " * len(path)
        for key in sorted(k for k, v in node.items() if not isinstance(v, dict)):
            lines.append(f"{pad}{_toml_key(key)} = {_toml_value(node[key])}")
        for key in sorted(k for k, v in node.items() if isinstance(v, dict)):
            sub = [*path, key]
            lines.append("")
            lines.append(pad + "[" + ".".join(_toml_key(p) for p in sub) + "]")
            table(node[key], sub)

    table(tree, [])
    while lines and lines[0] == "":
        lines.pop(0)
    return "\n".join(lines) + "\n" if lines else ""


def _get(tree: dict, path: list[str]):
    node = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set(tree: dict, path: list[str], value) -> None:
    node = tree
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


def containerd(action: str, src: str, dest: str, runtime: str) -> None:
    import tomllib

    if os.path.exists(src):
        _check_file(src, "config file")
    _check_dir(os.path.dirname(dest) or ".")
    try:
        with open(src, "rb") as fh:
            tree = tomllib.load(fh)
    except OSError as exc:
        raise HelperError(f"open {src}: {exc.strerror.lower() if exc.strerror else exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise HelperError(f"(toml) {exc}") from None
    version = tree.get("version")
    version = version if isinstance(version, int) and not isinstance(version, bool) else 2
    cri = CRI_PLUGINS.get(version, CRI_PLUGINS[3])
    base = ["plugins", cri, "containerd"]
    if action == "add":
        runc = _get(tree, [*base, "runtimes", DEFAULT_RUNTIME])
        if isinstance(runc, dict):
            options = copy.deepcopy(runc)
        else:
            options = {"runtime_type": "io.containerd.runc.v2", "runtime_root": "", "runtime_engine": "",
                       "privileged_without_host_devices": False, "options": {"SystemdCgroup": True}}
        _set(tree, [*base, "runtimes", RUNTIME_NAME], options)
        _set(tree, [*base, "runtimes", RUNTIME_NAME, "options", "BinaryName"], runtime)
        _set(tree, [*base, "default_runtime_name"], RUNTIME_NAME)
    else:
        _set(tree, [*base, "default_runtime_name"], DEFAULT_RUNTIME)
        path = [*base, "runtimes", RUNTIME_NAME]
        parent = _get(tree, path[:-1])
        if isinstance(parent, dict):
            parent.pop(RUNTIME_NAME, None)
        for i in range(1, len(path)):
            node = _get(tree, path[:-i])
            if isinstance(node, dict) and not node:
                holder = _get(tree, path[:-i - 1]) if len(path) - i - 1 > 0 else tree
                holder.pop(path[-i - 1], None)
            else:
                break
    fd = os.open(dest, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(toml_dumps(tree))


# --------------------------------------------------------------------------- entry point
def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--h"], ["-help"], ["--help"]):
        print(HELP)
        fatal("need help, error: <nil>")
    allowed = re.compile(r"[A-Za-z0-9./_\- ]*")
    if not allowed.fullmatch(" ".join(argv)):
        fatal("command error, please check /var/log/ascend-docker-runtime/install-helper-run.log for detail")
    if not argv:
        fatal("error param")
    action = argv[0]
    if action == "add" and len(argv) >= 6:
        src, dest, runtime, reserve, scene = argv[1:6]
    elif action == "rm" and len(argv) >= 5:
        src, dest, reserve, scene = argv[1:5]
        runtime = ""
    else:
        fatal("error param")
        return 1
    _log(f"start running script: {' '.join(argv)}")
    behaviour = "install" if action == "add" else "uninstall"
    try:
        if action == "add":
            _check_file(LAB_ROOT + runtime, "runtime")
        if scene in ("docker", "isula"):
            docker(action, src, dest, runtime, reserve == "yes")
        elif scene == "containerd":
            containerd(action, src, dest, runtime)
        else:
            fatal(f"error param: {scene}")
    except (HelperError, OSError) as exc:
        _log(f"run script failed: {exc}")
        fatal(f"error in installation, err is {exc}")
    _log(f"run {behaviour} success")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
