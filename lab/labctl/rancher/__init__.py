"""Rancher stand-in (lab fixture): a small HTTPS server speaking the part of Rancher's
v3 API a join role uses, plus the agent side that machines run to join.

No Rancher exists in the lab; this stands in for one. Registrations become Node objects
in the lab's real ``worker`` Kubernetes cluster (kwok makes them Ready).

    up(worker_kubeconfig)   start the server in the background (no-op if running)
    down()                  stop it; no process or port is left behind
    status()                what is running, where, and the clusters it serves

State under ``STATE_DIR/rancher``: ``ca.pem`` (lab CA; ``--ca-checksum`` is its sha256),
``api-token`` (0600, ``token-xxxxx:secret`` for ``Authorization: Bearer``),
``state.json`` (clusters, tokens, nodes; ids stable across restarts), ``server.json``,
``server.pid``, ``server.log``, ``connection.json`` (url, ca path/checksum, clusters).
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

from labctl import paths
from labctl.procs import address_is_local, port_free, read_json, stop
from labctl.waiting import WaitTimeout, wait_for

DEFAULT_PORT = 8443
DEFAULT_BIND = ("127.0.0.1", "10.77.0.1")
FLEET_HOST_ADDRESS = "10.77.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class RancherLabError(RuntimeError):
    """One clear line about what went wrong with the Rancher stand-in."""


def state_dir() -> Path:
    return paths.STATE_DIR / "rancher"


def _files() -> dict[str, Path]:
    d = state_dir()
    return {"pid": d / "server.pid", "log": d / "server.log", "token": d / "api-token", "ca": d / "ca.pem",
            "server": d / "server.json", "connection": d / "connection.json"}


def _our_pid() -> int | None:
    """PID of the running stand-in started from this checkout's state dir, if any."""
    try:
        pid = int(_files()["pid"].read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if b"labctl.rancher.server" in cmdline and str(state_dir()).encode() in cmdline:
        return pid
    return None


def _ping(host: str, port: int, ca: Path) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca))
    with urllib.request.urlopen(f"https://{host}:{port}/ping", context=ctx, timeout=2) as resp:
        return resp.status == 200 and resp.read() == b"pong"


def api_call(method: str, path: str) -> dict:
    """Call the running stand-in's API over loopback with the lab's API token."""
    f = _files()
    info = status()
    if not info.get("running"):
        raise RancherLabError("rancher stand-in is not running: `lab rancher up`")
    ctx = ssl.create_default_context(cafile=str(f["ca"]))
    request = urllib.request.Request(
        f"https://127.0.0.1:{info['port']}{path}", method=method,
        headers={"Authorization": f"Bearer {f['token'].read_text().strip()}"})
    with urllib.request.urlopen(request, context=ctx, timeout=30) as resp:  # noqa: S310
        body = resp.read()
    return json.loads(body) if body else {}


def forget_nodes(names: set[str] | None = None) -> list[str]:
    """Delete registrations (all, or those with these node names) through the API, as an
    operator would in Rancher's UI; the stand-in deletes their Nodes too. Lab resets use it."""
    gone = []
    for node in api_call("GET", "/v3/nodes").get("data", []):
        if names is None or node.get("nodeName") in names or node.get("hostname") in names:
            api_call("DELETE", f"/v3/nodes/{node['id']}")
            gone.append(node.get("nodeName") or node["id"])
    return gone


def _ensure_api_token() -> str:
    from labctl.rancher.api import new_api_token

    path = _files()["token"]
    if path.is_file() and path.read_text().strip():
        os.chmod(path, 0o600)
        return path.read_text().strip()
    token = new_api_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def _log_tail(lines: int = 1) -> str:
    try:
        text = _files()["log"].read_text().strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def up(worker_kubeconfig: Path | None = None, bind_hosts: tuple[str, ...] = DEFAULT_BIND, port: int = DEFAULT_PORT,
       server_url: str | None = None, log=None) -> dict:
    """Start the stand-in in the background (no-op if it is already running).

    Returns ``dict(url, api_token, ca_path, ca_checksum, clusters)`` plus ``bound`` and
    ``waiting_for_address`` (bind hosts not on this host yet, e.g. the fleet bridge).
    """
    from labctl.rancher.pki import ensure_pki

    say = log or (lambda m: None)
    worker_kubeconfig = Path(worker_kubeconfig or paths.kubeconfig_path("worker"))
    d = paths.private_dir(state_dir())
    f = _files()
    if _our_pid() is None:
        if not bind_hosts:
            raise RancherLabError("rancher stand-in: no bind addresses given")
        hosts = list(dict.fromkeys(bind_hosts))
        missing = [h for h in hosts if not address_is_local(h)]
        for h in hosts:
            if h not in missing and not port_free(h, port):
                raise RancherLabError(f"rancher stand-in: port {port} on {h} is already in use by another process")
        if missing:
            say(f"rancher: {', '.join(missing)} is not an address on this host yet; serving "
                f"{', '.join(h for h in hosts if h not in missing) or 'nothing'} now and {', '.join(missing)} "
                "as soon as it appears (IP_FREEBIND)")
        ensure_pki(d)
        _ensure_api_token()
        url = server_url or (f"https://{FLEET_HOST_ADDRESS}:{port}" if FLEET_HOST_ADDRESS in hosts
                             else f"https://{hosts[0]}:{port}")
        cmd = [sys.executable, "-m", "labctl.rancher.server", "--state-dir", str(d), "--port", str(port),
               "--server-url", url, "--worker-kubeconfig", str(worker_kubeconfig)]
        for h in hosts:
            cmd += ["--bind", h]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(paths.LAB_DIR), env.get("PYTHONPATH")]))
        f["server"].unlink(missing_ok=True)
        with open(f["log"], "ab") as logfh:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logfh, stderr=logfh, env=env,
                                    start_new_session=True, cwd=str(d))
        f["pid"].write_text(f"{proc.pid}\n")
        probe = next((h for h in hosts if h not in missing), None)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RancherLabError(f"rancher stand-in exited ({proc.returncode}): {_log_tail()}")
            return read_json(f["server"]).get("pid") == proc.pid and (probe is None or _ping(probe, port, f["ca"]))

        try:
            wait_for(ready, START_TIMEOUT, "the Rancher stand-in to answer /ping")
        except RancherLabError:
            f["pid"].unlink(missing_ok=True)
            raise
        except WaitTimeout as exc:
            stop(proc.pid, "rancher stand-in", STOP_TIMEOUT)
            raise RancherLabError(f"rancher stand-in did not start: {exc}") from None
        say(f"rancher: stand-in up at {url} (pid {proc.pid})")
    info = status()
    from labctl.rancher.pki import ca_checksum

    result = {"url": info["url"], "api_token": f["token"].read_text().strip(), "ca_path": str(f["ca"]),
              "ca_checksum": ca_checksum(f["ca"].read_bytes()), "clusters": info["clusters"],
              "bound": info["bound"], "waiting_for_address": info["waiting_for_address"]}
    conn = {k: v for k, v in result.items() if k != "api_token"} | {"api_token_path": str(f["token"])}
    f["connection"].write_text(json.dumps(conn, indent=1) + "\n")
    return result


def down(log=None, purge: bool = False) -> None:
    """Stop the stand-in; leaves no process and no listening port. State is kept unless
    ``purge``, which forgets clusters, tokens and registrations (the CA and API token stay)."""
    say = log or (lambda m: None)
    f = _files()
    pid = _our_pid()
    server = read_json(f["server"])
    if pid is not None:
        stop(pid, "rancher stand-in", STOP_TIMEOUT)
        say(f"rancher: stand-in (pid {pid}) stopped")
        port = server.get("port")
        for host in server.get("bound", []):
            if port and address_is_local(host):
                wait_for(lambda h=host: port_free(h, port), STOP_TIMEOUT, f"port {port} on {host} to be released")
    f["pid"].unlink(missing_ok=True)
    f["server"].unlink(missing_ok=True)
    if purge:
        (state_dir() / "state.json").unlink(missing_ok=True)


def status() -> dict:
    f = _files()
    pid = _our_pid()
    server = read_json(f["server"]) if pid else {}
    state = read_json(state_dir() / "state.json")
    clusters = {c["name"]: c["id"] for c in state.get("clusters", {}).values()}
    waiting = server.get("waiting_for_address", [])
    if waiting:

        waiting = [h for h in waiting if not address_is_local(h)]
    return {
        "running": pid is not None, "pid": pid, "url": server.get("server_url"), "port": server.get("port"),
        "bound": [h for h in server.get("bound", []) + server.get("waiting_for_address", []) if h not in waiting],
        "waiting_for_address": waiting, "clusters": clusters,
        "nodes": len(state.get("nodes", {})), "state_dir": str(state_dir()), "log": str(f["log"]),
    }


# ------------------------------------------------------------------------- CLI
def _cmd_up(args: argparse.Namespace) -> int:
    result = up(args.worker_kubeconfig, tuple(args.bind) if args.bind else DEFAULT_BIND, args.port,
                log=lambda m: print(m, file=sys.stderr, flush=True))
    result.pop("api_token")
    print(json.dumps(result, indent=2))
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    down(log=lambda m: print(m, file=sys.stderr, flush=True))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(status(), indent=2))
    return 0


def _guard(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (RancherLabError, WaitTimeout) as exc:
            print(f"lab: error: {exc}", file=sys.stderr)
            return 1
    return run


def register_cli(subparsers) -> None:
    """Add ``rancher up|down|status`` to an argparse subparsers object (``func(args) -> int``)."""
    rancher = subparsers.add_parser("rancher", help="the Rancher stand-in (lab fixture)")
    sub = rancher.add_subparsers(dest="rancher_command", required=True)
    p_up = sub.add_parser("up", help="start the Rancher stand-in (no-op if running)")
    p_up.add_argument("--worker-kubeconfig", type=Path, default=paths.kubeconfig_path("worker"))
    p_up.add_argument("--bind", action="append", help=f"listen address (repeatable; default {' '.join(DEFAULT_BIND)})")
    p_up.add_argument("--port", type=int, default=DEFAULT_PORT)
    p_up.set_defaults(func=_guard(_cmd_up))
    sub.add_parser("down", help="stop the Rancher stand-in").set_defaults(func=_guard(_cmd_down))
    sub.add_parser("status", help="report the Rancher stand-in").set_defaults(func=_guard(_cmd_status))


__all__ = ["RancherLabError", "down", "register_cli", "status", "up"]
