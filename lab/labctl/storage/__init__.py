"""Lab storage backend (lab fixture): what a site's distributed filesystem would stand on.

    up()       build JuiceFS once (cached), start Redis and the site-mirror stand-in (idempotent)
    down()     stop both; no process or listening port is left behind (data is kept)
    status()   what runs, where, and whether the binary is built

Redis (Debian ``redis-server``, run by the lab as its own process, never as a system
service) listens on 127.0.0.1 and the fleet bridge 10.77.0.1, port 6380, with a generated
password. DB 1 holds JuiceFS metadata, DB 2 is the object store (``--storage redis``): every
machine reaches both over the bridge, unlike a ``file`` bucket. The mirror stand-in serves the
JuiceFS binary and its sha256 over HTTP the way a site mirror would.

State under ``STATE_DIR/storage`` (0700): ``redis-password`` (0600), ``redis.conf`` (0600),
``redis/`` (data), ``redis.pid``, ``redis.log``, ``mirror/`` (served tree), ``mirror.pid``,
``mirror.json``, ``mirror.log``, ``connection.json`` (what the lab inventory reads).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from labctl import paths
from labctl.procs import address_is_local, alive, port_free, read_json, stop
from labctl.storage import binary
from labctl.storage.binary import JuiceFSBuildError
from labctl.waiting import WaitTimeout, wait_for

FLEET_HOST_ADDRESS = "10.77.0.1"
REDIS_PORT = 6380
MIRROR_PORT = 8380
META_DB = 1
BUCKET_DB = 2
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


class StorageLabError(RuntimeError):
    """One clear line about what went wrong with the lab storage backend."""


def state_dir() -> Path:
    return paths.STATE_DIR / "storage"


def _files() -> dict[str, Path]:
    d = state_dir()
    return {
        "password": d / "redis-password", "conf": d / "redis.conf", "data": d / "redis", "redis_pid": d / "redis.pid",
        "redis_log": d / "redis.log", "mirror_root": d / "mirror", "mirror_pid": d / "mirror.pid",
        "mirror_json": d / "mirror.json", "mirror_log": d / "mirror.log", "connection": d / "connection.json",
    }


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def _pid_from(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def redis_pid() -> int | None:
    """PID of the lab's Redis started from this checkout's state dir (its working dir is the data dir)."""
    pid = _pid_from(_files()["redis_pid"])
    if pid is None or not alive(pid):
        return None
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if cwd == _files()["data"].resolve() and b"redis" in cmdline else None


def mirror_pid() -> int | None:
    pid = _pid_from(_files()["mirror_pid"])
    if pid is None or not alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if b"labctl.storage.mirror" in cmdline and str(state_dir()).encode() in cmdline:
        return pid
    return None


def redis_ping(host: str, port: int, password: str, timeout: float = 2.0) -> bool:
    """AUTH + PING over RESP (no client library needed); True on +PONG."""
    def bulk(*words: str) -> bytes:
        out = f"*{len(words)}\r\n".encode()
        for w in words:
            data = w.encode()
            out += b"$%d\r\n%s\r\n" % (len(data), data)
        return out

    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(bulk("AUTH", password) + bulk("PING"))
        reply = b""
        while reply.count(b"\r\n") < 2:
            chunk = s.recv(256)
            if not chunk:
                break
            reply += chunk
    return reply.splitlines()[:2] == [b"+OK", b"+PONG"]


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _check_ports(hosts: list[str], port: int, what: str) -> None:
    for h in hosts:
        if not port_free(h, port):
            raise StorageLabError(f"storage: port {port} on {h} ({what}) is already in use by another process")


# ------------------------------------------------------------------------- Redis
def ensure_password() -> str:
    path = _files()["password"]
    if path.is_file() and path.read_text().strip():
        os.chmod(path, 0o600)
        return path.read_text().strip()
    password = secrets.token_urlsafe(24)
    _write_private(path, password + "\n")
    return password


def redis_config(password: str, hosts: list[str], port: int, data_dir: Path) -> str:
    return "\n".join([
        "# Written by labctl.storage: the lab's Redis for JuiceFS (metadata DB 1, objects DB 2).",
        f"bind {' '.join(hosts)}",
        f"port {port}",
        "protected-mode yes",
        "daemonize no",
        "supervised no",
        'logfile ""',
        f"dir {data_dir}",
        "databases 16",
        "save 60 1",
        "appendonly yes",
        "appendfsync everysec",
        "maxmemory-policy noeviction",
        f"requirepass {password}",
        "",
    ])


def _start_redis(hosts: list[str], port: int, say) -> int:
    redis_server = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                                    else None)
    if not redis_server:
        raise StorageLabError("storage: redis-server not found: apt-get install redis-server (lab/apt-packages.txt)")
    f = _files()
    _check_ports(hosts, port, "redis")
    password = ensure_password()
    f["data"].mkdir(mode=0o700, exist_ok=True)
    _write_private(f["conf"], redis_config(password, hosts, port, f["data"].resolve()))
    with open(f["redis_log"], "ab") as log:
        proc = subprocess.Popen([redis_server, str(f["conf"])], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd=str(f["data"]), start_new_session=True)
    f["redis_pid"].write_text(f"{proc.pid}\n")

    def ready() -> bool:
        if proc.poll() is not None:
            raise StorageLabError(f"storage: redis-server exited ({proc.returncode}): {_log_tail(f['redis_log'])}")
        return all(redis_ping(h, port, password) for h in hosts)

    try:
        wait_for(ready, START_TIMEOUT, "the lab Redis to answer PING")
    except StorageLabError:
        f["redis_pid"].unlink(missing_ok=True)
        raise
    except WaitTimeout as exc:
        stop(proc.pid, "redis-server", STOP_TIMEOUT)
        f["redis_pid"].unlink(missing_ok=True)
        raise StorageLabError(f"storage: redis did not start: {exc}") from None
    say(f"storage: redis up on {', '.join(hosts)} port {port} (pid {proc.pid})")
    return proc.pid


# ------------------------------------------------------------------------ mirror
def _publish(juicefs: Path) -> tuple[str, str]:
    """Lay the binary out in the mirror tree as a site mirror would; return (relative path, sha256)."""
    version = binary.version()
    sha = binary.sha256_of(juicefs)
    rel = f"juicefs/{version}/linux-amd64/juicefs"
    target = _files()["mirror_root"] / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if not (target.is_symlink() and target.resolve() == juicefs.resolve()):
        target.unlink(missing_ok=True)
        target.symlink_to(juicefs)
    sums = target.parent / "juicefs.sha256"
    if not sums.is_file() or sums.read_text() != f"{sha}  juicefs\n":
        sums.write_text(f"{sha}  juicefs\n")
    return rel, sha


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - http URL built here
        return resp.status == 200


def _start_mirror(hosts: list[str], port: int, probe_path: str, say) -> int:
    f = _files()
    _check_ports(hosts, port, "mirror")
    cmd = [sys.executable, "-m", "labctl.storage.mirror", "--root", str(f["mirror_root"]), "--port", str(port),
           "--state-dir", str(state_dir())]
    for h in hosts:
        cmd += ["--bind", h]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.LAB_DIR), env.get("PYTHONPATH")]))
    f["mirror_json"].unlink(missing_ok=True)
    with open(f["mirror_log"], "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True, cwd=str(state_dir()))
    f["mirror_pid"].write_text(f"{proc.pid}\n")

    def ready() -> bool:
        if proc.poll() is not None:
            raise StorageLabError(f"storage: mirror stand-in exited ({proc.returncode}): {_log_tail(f['mirror_log'])}")
        return read_json(f["mirror_json"]).get("pid") == proc.pid and all(
            _http_ok(f"http://{h}:{port}/{probe_path}") for h in hosts)

    try:
        wait_for(ready, START_TIMEOUT, "the mirror stand-in to serve the JuiceFS checksum")
    except StorageLabError:
        f["mirror_pid"].unlink(missing_ok=True)
        raise
    except WaitTimeout as exc:
        stop(proc.pid, "mirror stand-in", STOP_TIMEOUT)
        f["mirror_pid"].unlink(missing_ok=True)
        raise StorageLabError(f"storage: mirror stand-in did not start: {exc}") from None
    say(f"storage: mirror stand-in up on {', '.join(hosts)} port {port} (pid {proc.pid})")
    return proc.pid


# --------------------------------------------------------------------------- API
def up(log=None, fleet_address: str = FLEET_HOST_ADDRESS, redis_port: int = REDIS_PORT,
       mirror_port: int = MIRROR_PORT, juicefs: Path | None = None) -> dict:
    """Start Redis and the mirror stand-in (each a no-op if already running); write connection.json.

    Returns ``dict(meta_url, meta_password_path, storage, bucket_url, bucket_access_key,
    bucket_secret_key_path, password_path, juicefs_url, juicefs_sha256, juicefs_version, ...)``.
    URLs carry no password: the machines read it from ``password_path`` (lab inventory lookups).
    ``juicefs`` overrides the binary to publish (tests); by default it is built once from Go modules.
    """
    say = log or (lambda m: None)
    if not address_is_local(fleet_address):
        raise StorageLabError(f"storage: the fleet bridge {fleet_address} is not on this host: "
                              "run `lab fleet up` first")
    hosts = list(dict.fromkeys(["127.0.0.1", fleet_address]))
    d = paths.private_dir(state_dir())
    f = _files()
    try:
        juicefs = Path(juicefs) if juicefs else binary.ensure_built(log=say)
    except JuiceFSBuildError as exc:
        raise StorageLabError(f"storage: {exc}") from None
    rel, sha = _publish(juicefs)
    password = ensure_password()
    rpid = redis_pid()
    if rpid is None:
        rpid = _start_redis(hosts, redis_port, say)
    else:
        redis_port = _redis_port_from_conf() or redis_port
        if not redis_ping("127.0.0.1", redis_port, password):
            raise StorageLabError(f"storage: the lab Redis (pid {rpid}) does not answer on port {redis_port}")
    mpid = mirror_pid()
    if mpid is None:
        mpid = _start_mirror(hosts, mirror_port, rel.rsplit("/", 1)[0] + "/juicefs.sha256", say)
    else:
        mirror_port = read_json(f["mirror_json"]).get("port", mirror_port)
    base = f"{fleet_address}:{redis_port}"
    result = {
        "meta_url": f"redis://{base}/{META_DB}",
        "meta_password_path": str(f["password"]),
        "storage": "redis",
        "bucket_url": f"redis://{base}/{BUCKET_DB}",
        "bucket_access_key": "",
        "bucket_secret_key_path": str(f["password"]),
        "password_path": str(f["password"]),
        "juicefs_url": f"http://{fleet_address}:{mirror_port}/{rel}",
        "juicefs_sha256": sha,
        "juicefs_sha256_url": f"http://{fleet_address}:{mirror_port}/{rel.rsplit('/', 1)[0]}/juicefs.sha256",
        "juicefs_version": binary.version(),
        "redis": {"pid": rpid, "port": redis_port, "bound": hosts},
        "mirror": {"pid": mpid, "port": mirror_port, "bound": hosts},
    }
    tmp = d / ".connection.json.tmp"
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(f["connection"])
    return result


def _redis_port_from_conf() -> int | None:
    try:
        for line in _files()["conf"].read_text().splitlines():
            if line.startswith("port "):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _bound_from_conf() -> list[str]:
    try:
        for line in _files()["conf"].read_text().splitlines():
            if line.startswith("bind "):
                return line.split()[1:]
    except OSError:
        pass
    return []


def down(log=None, purge: bool = False) -> None:
    """Stop Redis and the mirror; no process or listening port is left. ``purge`` also deletes the data."""
    say = log or (lambda m: None)
    f = _files()
    mpid = mirror_pid()
    if mpid is not None:
        info = read_json(f["mirror_json"])
        stop(mpid, "mirror stand-in", STOP_TIMEOUT)
        say(f"storage: mirror stand-in (pid {mpid}) stopped")
        # An address that left with the fleet bridge holds no port any more.
        for h in (h for h in info.get("bound", []) if address_is_local(h)):
            wait_for(lambda h=h: port_free(h, info["port"]), STOP_TIMEOUT, f"port {info['port']} on {h} to be released")
    rpid = redis_pid()
    if rpid is not None:
        port = _redis_port_from_conf()
        stop(rpid, "redis-server", STOP_TIMEOUT)
        say(f"storage: redis (pid {rpid}) stopped")
        for h in _bound_from_conf():
            if port and address_is_local(h):
                wait_for(lambda h=h: port_free(h, port), STOP_TIMEOUT, f"port {port} on {h} to be released")
    for name in ("mirror_pid", "mirror_json", "redis_pid"):
        f[name].unlink(missing_ok=True)
    if purge and state_dir().exists():
        shutil.rmtree(state_dir())
        say(f"storage: {state_dir()} removed")


def status() -> dict:
    f = _files()
    rpid, mpid = redis_pid(), mirror_pid()
    conn = read_json(f["connection"])
    return {
        "running": rpid is not None and mpid is not None,
        "redis": {"running": rpid is not None, "pid": rpid, "port": _redis_port_from_conf() if rpid else None,
                  "bound": _bound_from_conf() if rpid else []},
        "mirror": {"running": mpid is not None, "pid": mpid,
                   "port": read_json(f["mirror_json"]).get("port") if mpid else None},
        "juicefs": {"built": binary.is_built(), "path": str(binary.binary_path()), "version": binary.version()},
        "meta_url": conn.get("meta_url"), "bucket_url": conn.get("bucket_url"),
        "juicefs_url": conn.get("juicefs_url"),
        "state_dir": str(state_dir()),
    }


# ------------------------------------------------------------------------- CLI
def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cmd_up(args: argparse.Namespace) -> int:
    print(json.dumps(up(log=_say), indent=2))
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    down(log=_say, purge=args.purge)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(status(), indent=2))
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    print(binary.ensure_built(log=_say))
    return 0


def _guard(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (StorageLabError, JuiceFSBuildError, WaitTimeout) as exc:
            print(f"lab: error: {exc}", file=sys.stderr)
            return 1
    return run


def register_cli(subparsers) -> None:
    """Add ``storage up|down|status|build`` to an argparse subparsers object (``func(args) -> int``)."""
    storage = subparsers.add_parser("storage", help="Redis + JuiceFS binary mirror for /data/k8s (lab fixture)")
    sub = storage.add_subparsers(dest="storage_command", required=True)
    sub.add_parser("up", help="start Redis and the mirror stand-in (no-op if running)").set_defaults(
        func=_guard(_cmd_up))
    p_down = sub.add_parser("down", help="stop Redis and the mirror stand-in (data kept)")
    p_down.add_argument("--purge", action="store_true", help="also delete the Redis data and password")
    p_down.set_defaults(func=_guard(_cmd_down))
    sub.add_parser("status", help="report the storage backend").set_defaults(func=_guard(_cmd_status))
    sub.add_parser("build", help="build the JuiceFS binary into the cache").set_defaults(func=_guard(_cmd_build))


__all__ = ["JuiceFSBuildError", "StorageLabError", "down", "register_cli", "status", "up"]
