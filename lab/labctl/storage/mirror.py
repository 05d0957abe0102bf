"""Site-mirror stand-in (lab fixture): a read-only static HTTP server over one directory.

    python -m labctl.storage.mirror --root DIR --port PORT --bind HOST [--bind HOST...] --state-dir DIR

Serves ``DIR`` (GET/HEAD only, no directory listings) on every bind address until SIGTERM,
then closes every listener. Writes ``mirror.json`` (pid, port, bound) into the state dir
once it is listening, which is what ``labctl.storage.up`` waits for.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import signal
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class MirrorHandler(SimpleHTTPRequestHandler):
    server_version = "lab-mirror/1"

    def list_directory(self, path):  # a mirror hands out files, not listings
        self.send_error(404, "not found")
        return None

    def log_message(self, format, *args):
        sys.stderr.write(f"{self.client_address[0]} {format % args}\n")


def make_server(root: Path, host: str, port: int) -> ThreadingHTTPServer:
    handler = functools.partial(MirrorHandler, directory=str(root))
    server = ThreadingHTTPServer((host, port), handler, bind_and_activate=False)
    server.allow_reuse_address = True
    server.daemon_threads = True
    try:
        server.server_bind()
        server.server_activate()
    except OSError:
        server.server_close()
        raise
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labctl.storage.mirror")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bind", action="append", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    servers = []
    for host in args.bind:
        try:
            servers.append(make_server(args.root, host, args.port))
        except OSError as exc:
            for s in servers:
                s.server_close()
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            print(f"error: port {args.port} on {host} {reason}", file=sys.stderr, flush=True)
            return 3
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True) for s in servers]
    for t in threads:
        t.start()
    info = {"pid": os.getpid(), "port": args.port, "bound": args.bind, "root": str(args.root)}
    tmp = args.state_dir / ".mirror.json.tmp"
    tmp.write_text(json.dumps(info) + "\n")
    tmp.replace(args.state_dir / "mirror.json")
    print(f"mirror: serving {args.root} on {', '.join(args.bind)} port {args.port}", file=sys.stderr, flush=True)
    stop.wait()
    for s in servers:
        s.shutdown()
        s.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
