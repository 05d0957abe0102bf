"""Run the Rancher stand-in (lab fixture): ``python -m labctl.rancher.server``.

HTTPS on each ``--bind`` address with the lab CA's serving certificate. An address that
is not on this host yet (the fleet bridge 10.77.0.1 appears when the fleet network
starts) is bound with IP_FREEBIND, so it answers as soon as the address exists.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from labctl.procs import address_is_local
from labctl.rancher.api import DEFAULT_CLUSTERS, StandIn

IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
MAX_BODY = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    server_version = "rancher-standin"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 60

    def setup(self) -> None:
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_error(413)
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        resp = self.server.standin.handle(self.command, self.path, headers, body)  # type: ignore[attr-defined]
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        for k, v in (resp.headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _dispatch

    def log_message(self, format: str, *args) -> None:
        sys.stderr.write(f"{self.log_date_time_string()} {self.address_string()} {format % args}\n")


class StandInServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], standin: StandIn | None, tls: ssl.SSLContext | None,
                 freebind: bool = False) -> None:
        self.standin = standin
        self.freebind = freebind
        super().__init__(address, _Handler, bind_and_activate=False)
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def server_bind(self) -> None:
        if self.freebind:
            self.socket.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        super().server_bind()

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        sys.stderr.write(f"connection from {client_address[0]}: {type(exc).__name__}: {exc}\n")


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def serve(servers: list[StandInServer]) -> None:
    """Serve until SIGTERM/SIGINT, then close every listener."""
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True) for s in servers]
    for t in threads:
        t.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for s in servers:
        s.shutdown()
        s.server_close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m labctl.rancher.server", description=__doc__)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--bind", action="append", default=[], help="address to listen on (repeatable)")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--server-url", required=True, help="Rancher's server-url setting (used in node commands)")
    p.add_argument("--worker-kubeconfig", type=Path, required=True)
    p.add_argument("--config", type=Path, help="JSON list of clusters (default: worker [rke2], worker-rke1 [rke])")
    args = p.parse_args(argv)

    from labctl.rancher.kube import KubeNodeSink
    from labctl.rancher.pki import ensure_pki

    state_dir: Path = args.state_dir
    pki = ensure_pki(state_dir)
    api_token = (state_dir / "api-token").read_text().strip()
    clusters = json.loads(args.config.read_text()) if args.config else list(DEFAULT_CLUSTERS)
    standin = StandIn(api_token=api_token, server_url=args.server_url, ca_pem=pki.ca_pem,
                      sinks={"worker": KubeNodeSink(args.worker_kubeconfig)},
                      state_path=state_dir / "state.json", clusters=clusters)
    tls = tls_context(pki.server_cert, pki.server_key)
    servers, bound, pending = [], [], []
    for host in args.bind or ["127.0.0.1"]:
        local = address_is_local(host)
        try:
            servers.append(StandInServer((host, args.port), standin, tls, freebind=not local))
        except OSError as exc:
            for s in servers:
                s.server_close()
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
            print(f"error: port {args.port} on {host} {reason}", file=sys.stderr, flush=True)
            return 3
        (bound if local else pending).append(host)
    info = {"pid": os.getpid(), "port": args.port, "bound": bound, "waiting_for_address": pending,
            "server_url": args.server_url, "clusters": standin.cluster_ids()}
    tmp = state_dir / ".server.json.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, state_dir / "server.json")
    msg = f"rancher stand-in serving {args.server_url} on {', '.join(bound)} port {args.port}"
    if pending:
        msg += f"; {', '.join(pending)} not on this host yet (bound with IP_FREEBIND, answers once it appears)"
    print(msg, file=sys.stderr, flush=True)
    serve(servers)
    print("rancher stand-in stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
