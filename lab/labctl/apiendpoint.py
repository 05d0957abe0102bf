"""The worker cluster's intranet API endpoint (lab fixture): the stand-in for the address a cloud gives
a cluster's API server on its internal network (TKE's ``CreateClusterEndpoint``), which is how
Kubeocean's manager cluster reaches the worker's API server.

A lab cluster's kube-apiserver listens on 127.0.0.1 only and its certificate has no SAN for the lab's
gateway address, so the endpoint is a TLS-terminating pipe:

* it listens on ``GATEWAY:<apiserver_port + 100>`` (worker: ``https://10.77.0.1:36543``) and presents
  a server certificate for that IP signed by the cluster's OWN CA
  (``lab/state/kwok/clusters/<cluster>/pki/ca.crt`` + ``ca.key``), so a kubeconfig carrying the
  cluster's usual ``certificate-authority-data`` verifies it. The certificate and its key live in
  ``lab/state/apiendpoint/<cluster>-server.{crt,key}`` (0600) and are made again when the CA changes
  (checked at start and every few seconds while running), the IPs change or expiry is near;
* for every accepted connection it opens a TLS connection to ``127.0.0.1:<apiserver_port>``, verifying
  the cluster CA, and copies bytes both ways until either side closes. HTTP passes untouched: bearer
  tokens (ServiceAccount tokens) authenticate as usual and watches stream. ALPN is passed on (the
  protocol the client chose, ``h2`` or ``http/1.1``, is the only one offered upstream);
* client certificates cannot pass (the client's TLS session ends here, and the apiserver sees the
  pipe, which has none): it is for token kubeconfigs, as Kubeocean's are (the worker chart's
  ``kubeocean-syncer`` ServiceAccount token);
* bounded: at most ``--max-connections`` (64) connections at a time (one more is closed at once),
  a client TLS handshake or upstream connect that takes over 10 s is given up, TCP keepalive finds
  dead peers, and a connection whose upstream is unreachable or refused is closed (the client sees
  the connection end, not a hang). SIGTERM stops it within a second.

One process per cluster, started and stopped like the other stand-ins (:mod:`labctl.standin`; pid
file, log and state under ``lab/state/apiendpoint/``; the state file ``<cluster>.json`` has ``pid``,
``synced`` (listening, and one upstream TLS handshake succeeded) and ``url``)::

    up(cluster="worker")    start it in the background (no-op if running); waits until it is synced
    down(cluster=None)      stop it (all clusters by default)
    status()                what runs, its URL, open connections
    url(cluster="worker")   the endpoint's URL while it runs and is synced, else None

    lab apiendpoint up|down|status
    python -m labctl.apiendpoint run --cluster worker ...   (the background process)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from labctl import clusters, paths, procs
from labctl.fleet import GATEWAY
from labctl.standin import StandIn

PORT_OFFSET = 100                 # endpoint port = the cluster's apiserver_port + this
UPSTREAM_HOST = "127.0.0.1"       # where the lab's kube-apiservers listen
MAX_CONNECTIONS = 64
HANDSHAKE_TIMEOUT = 10.0          # client TLS handshake, upstream connect + handshake
BUFFER = 64 * 1024
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_SECONDS = 0.2                # how soon a stop request is seen
CA_CHECK_SECONDS = 5.0
PROBE_RETRY_SECONDS = 1.0
LOG_EVERY = 10.0                  # the same kind of failure is logged at most this often
CERT_DAYS = 365
RENEW_DAYS = 30
ALPN = ("h2", "http/1.1")


class ApiEndpointError(RuntimeError):
    pass


# ------------------------------------------------------------------ addresses and certificates
def apiserver_port(cluster: str) -> int:
    for spec in clusters.specs():
        if spec.name == cluster:
            return spec.apiserver_port
    raise ApiEndpointError(f"unknown cluster {cluster!r} (see {clusters.CONFIG_FILE})")


def endpoint_port(cluster: str) -> int:
    return apiserver_port(cluster) + PORT_OFFSET


def endpoint_url(host: str, port: int) -> str:
    return f"https://{host}:{port}"


def ca_files(cluster: str) -> tuple[Path, Path]:
    """The cluster's CA certificate and key (kwokctl's ``pki/ca.crt``, ``pki/ca.key``)."""
    pki = clusters.cluster_dir(cluster) / "pki"
    return pki / "ca.crt", pki / "ca.key"


def server_cert_files(directory: Path, cluster: str) -> tuple[Path, Path]:
    return Path(directory) / f"{cluster}-server.crt", Path(directory) / f"{cluster}-server.key"


def _cert_current(cert_path: Path, key_path: Path, ca_cert, ips: Iterable[str]) -> bool:
    """The certificate on disk was signed by THIS CA, names ``ips``, matches its key, is not near expiry."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca_cert)  # a new CA with the same name ("kwok-ca") fails here
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        # OpenSSL looks the issuer up by this identifier: one that does not name the CA fails verification.
        if cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value != _authority_key_id(ca_cert):
            return False
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    pem = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*pem) != key.public_key().public_bytes(*pem):
        return False
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=RENEW_DAYS):
        return False
    have = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return {str(ipaddress.ip_address(ip)) for ip in ips} <= have


def _authority_key_id(ca_cert):
    """The issuer's own Subject Key Identifier when it has one (OpenSSL finds the issuer by it; kwokctl's CA
    does not derive it from the key the way ``from_issuer_public_key`` does), else one from its key."""
    from cryptography import x509

    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def ensure_server_cert(ca_cert_path: Path, ca_key_path: Path, directory: Path, cluster: str,
                       ips: Iterable[str] = (GATEWAY,)) -> tuple[Path, Path]:
    """The endpoint's server certificate for ``ips``, signed by the cluster CA, in ``directory``
    (``<cluster>-server.crt`` / ``.key``, both 0600); made again unless the one there is current."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ips = tuple(ips)
    try:
        ca_cert = x509.load_pem_x509_certificate(Path(ca_cert_path).read_bytes())
        ca_key = serialization.load_pem_private_key(Path(ca_key_path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ApiEndpointError(f"cluster CA {ca_cert_path} / {ca_key_path}: {exc} (is the cluster up?)") from None
    cert_path, key_path = server_cert_files(paths.private_dir(Path(directory)), cluster)
    if _cert_current(cert_path, key_path, ca_cert, ips):
        return cert_path, key_path
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"kube-apiserver {cluster} (lab intranet "
                                                                            "endpoint)")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + datetime.timedelta(days=CERT_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths.write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()).decode())
    paths.write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM).decode())
    return cert_path, key_path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_path), str(key_path))
    ctx.set_alpn_protocols(list(ALPN))
    return ctx


def upstream_context(ca_cert_path: Path, alpn: str | None = None) -> ssl.SSLContext:
    """Verifies the apiserver against the cluster CA; offers only the protocol the client chose."""
    ctx = ssl.create_default_context(cafile=str(ca_cert_path))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        ctx.set_alpn_protocols([alpn])
    return ctx


def _keepalive(sock: socket.socket | None) -> None:
    """Find peers that vanished without a FIN (a watch may be idle for minutes, so no idle timeout)."""
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


# ------------------------------------------------------------------ the pipe
def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class Endpoint:
    """The TLS-terminating pipe: ``host:port`` (TLS with ``server_ctx``) to ``upstream`` (TLS verified
    by ``ca_cert``, hostname ``upstream[0]``). :meth:`run` serves until ``stop`` is set; ``port`` 0
    picks a free port (``self.port`` once ``self.listening`` is set)."""

    def __init__(self, host: str, port: int, upstream: tuple[str, int], cert_path: Path, key_path: Path,
                 ca_cert: Path, max_connections: int = MAX_CONNECTIONS, log: Callable[[str], None] = print,
                 on_tick: Callable[[Endpoint], None] | None = None,
                 refresh: Callable[[], tuple[Path, Path, Path] | None] | None = None) -> None:
        self.host, self.port, self.upstream = host, port, upstream
        self.max_connections = max_connections
        self.log = log
        self.on_tick = on_tick      # called every POLL_SECONDS in the loop (the state file)
        self.refresh = refresh      # every CA_CHECK_SECONDS: new (cert, key, ca) when the CA changed
        self.listening = threading.Event()
        self.upstream_ok = False    # one upstream TLS handshake succeeded
        self.active = 0             # connections held (handshaking or piping)
        self.served = 0             # connections piped to the upstream so far
        self.refused = 0            # closed at once: over max_connections
        self._stopping = False
        self._tasks: set[asyncio.Task] = set()
        self._logged: dict[str, tuple[float, int]] = {}
        self._load(cert_path, key_path, ca_cert)

    @property
    def synced(self) -> bool:
        return self.listening.is_set() and self.upstream_ok

    @property
    def url(self) -> str:
        return endpoint_url(self.host, self.port)

    def _load(self, cert_path: Path, key_path: Path, ca_cert: Path) -> None:
        self.server_ctx = server_context(cert_path, key_path)
        self.ca_cert = Path(ca_cert)
        self._upstream_ctx: dict[str | None, ssl.SSLContext] = {}

    def _upstream_ctx_for(self, alpn: str | None) -> ssl.SSLContext:
        if alpn not in self._upstream_ctx:
            self._upstream_ctx[alpn] = upstream_context(self.ca_cert, alpn)
        return self._upstream_ctx[alpn]

    def note(self, kind: str, message: str) -> None:
        """Log a failure, the same ``kind`` at most once per LOG_EVERY seconds (with a count of the rest)."""
        now = time.monotonic()
        last, suppressed = self._logged.get(kind, (-LOG_EVERY, 0))
        if now - last < LOG_EVERY:
            self._logged[kind] = (last, suppressed + 1)
            return
        self._logged[kind] = (now, 0)
        self.log(message + (f" ({suppressed} more like it not logged)" if suppressed else ""))

    # ---------------------------------------------------------------- serving
    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set (in this thread: its own event loop)."""
        asyncio.run(self._serve(stop))

    async def _serve(self, stop: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        # asyncio reports SSL transport failures through the loop's handler: one short line, not a traceback.
        loop.set_exception_handler(lambda _loop, ctx: self.note(
            "loop", f"connection error: {ctx.get('exception') or ctx.get('message')}"))
        try:
            server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True,
                                                backlog=self.max_connections * 2, limit=BUFFER)
        except OSError as exc:
            raise ApiEndpointError(f"cannot listen on {self.host}:{self.port}: {exc}") from None
        self.port = server.sockets[0].getsockname()[1]
        self.listening.set()
        self.log(f"listening on {self.url} -> https://{self.upstream[0]}:{self.upstream[1]} "
                 f"(CA {self.ca_cert}, at most {self.max_connections} connections)")
        probe = asyncio.create_task(self._probe(stop))
        next_ca_check = time.monotonic() + CA_CHECK_SECONDS
        try:
            while not stop.is_set():
                if self.on_tick is not None:
                    self.on_tick(self)
                if self.refresh is not None and time.monotonic() >= next_ca_check:
                    next_ca_check = time.monotonic() + CA_CHECK_SECONDS
                    self._check_ca()
                await asyncio.sleep(POLL_SECONDS)
        finally:
            self._stopping = True
            probe.cancel()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(probe, *self._tasks, return_exceptions=True)
            self.listening.clear()
            if self.on_tick is not None:
                self.on_tick(self)

    def _check_ca(self) -> None:
        try:
            changed = self.refresh()
        except Exception as exc:  # a CA half-written or gone (cluster going down): keep serving with the old one
            self.note("ca", f"cluster CA not usable, keeping the current certificate: {exc}")
            return
        if changed:
            self._load(*changed)
            self.log(f"cluster CA changed: new server certificate {changed[0]}")

    async def _open_upstream(self, alpn: str | None):
        host, port = self.upstream
        return await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=self._upstream_ctx_for(alpn), server_hostname=host,
                                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT, limit=BUFFER),
            HANDSHAKE_TIMEOUT)

    async def _probe(self, stop: threading.Event) -> None:
        """``synced`` needs one upstream handshake: try until one works (a client connection also counts)."""
        while not self.upstream_ok and not stop.is_set():
            try:
                _, writer = await self._open_upstream(None)
            except Exception as exc:  # whatever the failure, try again
                self.note("probe", f"upstream https://{self.upstream[0]}:{self.upstream[1]} not reachable yet: "
                                   f"{_why(exc)}")
                await asyncio.sleep(PROBE_RETRY_SECONDS)
                continue
            writer.transport.abort()
            if not self.upstream_ok:
                self.upstream_ok = True
                self.log("upstream TLS handshake succeeded: synced")

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.active >= self.max_connections or self._stopping:
            self.refused += 1
            self.note("limit", f"connection from {client_writer.get_extra_info('peername')} closed: "
                               f"{self.max_connections} connections open already")
            client_writer.transport.abort()
            return
        self.active += 1
        task = asyncio.current_task()
        self._tasks.add(task)
        upstream_writer = None
        graceful = False
        try:
            _keepalive(client_writer.get_extra_info("socket"))
            try:
                await client_writer.start_tls(self.server_ctx, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
            except Exception as exc:  # any failure ends this one connection
                self.note("client-tls", f"client TLS handshake failed: {_why(exc)}")
                return
            alpn = client_writer.get_extra_info("ssl_object").selected_alpn_protocol()
            try:
                upstream_reader, upstream_writer = await self._open_upstream(alpn)
            except Exception as exc:  # any failure ends this one connection
                # The client sees its connection end: what an endpoint with its backend down looks like.
                self.note("upstream", f"upstream https://{self.upstream[0]}:{self.upstream[1]}: "
                                      f"{_why(exc)}; client connection closed")
                return
            self.upstream_ok = True
            _keepalive(upstream_writer.get_extra_info("socket"))
            chosen = upstream_writer.get_extra_info("ssl_object").selected_alpn_protocol()
            if alpn and chosen != alpn:
                self.note("alpn", f"client chose {alpn!r}, upstream {chosen!r}: connection closed")
                return
            self.served += 1
            await self._relay(client_reader, client_writer, upstream_reader, upstream_writer)
            graceful = True
        finally:
            self.active -= 1
            self._tasks.discard(task)
            for writer in (client_writer, upstream_writer):
                if writer is None:
                    continue
                # close() flushes what is buffered and says close_notify; abort() is for errors and stop.
                if graceful and not self._stopping:
                    writer.close()
                else:
                    writer.transport.abort()

    @staticmethod
    async def _relay(client_reader, client_writer, upstream_reader, upstream_writer) -> None:
        """Copy both ways until either side closes (or fails)."""
        async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                data = await reader.read(BUFFER)
                if not data:
                    return
                writer.write(data)
                await writer.drain()  # back-pressure: a slow reader slows its writer, memory stays bounded

        tasks = [asyncio.create_task(copy(client_reader, upstream_writer)),
                 asyncio.create_task(copy(upstream_reader, client_writer))]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


# ------------------------------------------------------------------ process: run, up/down/status
def run(cluster: str = "worker", host: str = GATEWAY, port: int | None = None, upstream_host: str = UPSTREAM_HOST,
        upstream_port: int | None = None, ca_cert: Path | None = None, ca_key: Path | None = None,
        cert_dir: Path | None = None, max_connections: int = MAX_CONNECTIONS, state_file: Path | None = None,
        stop: threading.Event | None = None, log: Callable[[str], None] | None = None) -> None:
    """The endpoint of ``cluster`` in the foreground until ``stop`` is set (SIGTERM/SIGINT for the
    background process). Defaults: the lab's addresses and the cluster's CA; every one can be given."""
    default_ca, default_key = ca_files(cluster)
    ca_cert, ca_key = Path(ca_cert or default_ca), Path(ca_key or default_key)
    port = endpoint_port(cluster) if port is None else port
    upstream_port = apiserver_port(cluster) if upstream_port is None else upstream_port
    cert_dir = Path(cert_dir or STANDIN.state_dir())
    stop = stop or threading.Event()
    lock = threading.Lock()

    def say(message: str) -> None:
        with lock:
            (log or (lambda m: print(m, flush=True)))(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}")

    def fingerprint() -> str:
        return hashlib.sha256(ca_cert.read_bytes()).hexdigest()

    seen = {"ca": fingerprint() if ca_cert.is_file() else ""}
    cert, key = ensure_server_cert(ca_cert, ca_key, cert_dir, cluster, [host])

    def refresh() -> tuple[Path, Path, Path] | None:
        now = fingerprint()
        if now == seen["ca"]:
            return None
        new = ensure_server_cert(ca_cert, ca_key, cert_dir, cluster, [host])
        seen["ca"] = now
        return (*new, ca_cert)

    written = [""]

    def write_state(endpoint: Endpoint) -> None:
        if state_file is None:
            return
        data = {"pid": os.getpid(), "cluster": cluster, "synced": endpoint.synced, "url": endpoint.url,
                "upstream": f"https://{upstream_host}:{upstream_port}", "ca": str(ca_cert), "cert": str(cert),
                "connections": endpoint.active, "max_connections": endpoint.max_connections,
                "served": endpoint.served, "refused": endpoint.refused}
        text = repr(sorted(data.items()))
        if text != written[0]:
            written[0] = text
            STANDIN.write_state(Path(state_file), data)

    endpoint = Endpoint(host, port, (upstream_host, upstream_port), cert, key, ca_cert, max_connections, say,
                        on_tick=write_state, refresh=refresh)
    say(f"intranet API endpoint of cluster {cluster}")
    try:
        endpoint.run(stop)
    finally:
        say("stopped")


def _status_fields(state: dict) -> dict:
    return {"url": state.get("url"), "upstream": state.get("upstream"), "connections": state.get("connections", 0),
            "max_connections": state.get("max_connections")}


STANDIN = StandIn(name="apiendpoint", what="API endpoint", title="intranet API endpoint",
                  up_title="intranet API endpoint", error=ApiEndpointError, stop_timeout=STOP_TIMEOUT,
                  status_fields=_status_fields, private_files=True)


def url(cluster: str = "worker") -> str | None:
    """The endpoint's URL (``https://10.77.0.1:36543`` for worker) while ours runs and is synced, else None."""
    pid = STANDIN.our_pid(cluster)
    state = procs.read_json(STANDIN.files(cluster)["state"]) if pid else {}
    return state.get("url") if state.get("pid") == pid and state.get("synced") else None


def up(cluster: str = "worker", kubeconfig: Path | None = None, max_connections: int = MAX_CONNECTIONS,
       timeout: float = START_TIMEOUT, log=None) -> dict:
    """Start the endpoint of ``cluster`` in the background (no-op if it runs) and wait until it listens
    and has reached the apiserver once. ``kubeconfig`` is only checked to exist (the cluster is up): the
    pipe itself holds no credentials. Returns its status row."""
    ca_cert, ca_key = ca_files(cluster)
    endpoint_port(cluster)  # an unknown cluster: one clear error before anything starts
    if STANDIN.our_pid(cluster) is None and not (ca_cert.is_file() and ca_key.is_file()):
        raise ApiEndpointError(f"API endpoint {cluster}: no cluster CA at {ca_cert} (is the cluster up?)")
    options = ["--max-connections", str(max_connections)]
    return STANDIN.up(cluster, Path(kubeconfig or paths.kubeconfig_path(cluster)), options, timeout, log)


def down(cluster: str | None = None, log=None) -> None:
    """Stop the endpoint of ``cluster`` (all by default); open connections end with it."""
    STANDIN.down(cluster, log)


def status() -> list[dict]:
    return STANDIN.status()


# ------------------------------------------------------------------ CLI
def _up_options(p_up: argparse.ArgumentParser) -> None:
    p_up.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS)


def register_cli(subparsers) -> None:
    """Add ``apiendpoint up|down|status`` to an argparse subparsers object (``func(args) -> int``)."""
    STANDIN.register_cli(
        subparsers, "the worker cluster's intranet API endpoint: TLS pipe on the lab gateway to the "
        "apiserver, for token kubeconfigs (lab fixture)", _up_options,
        lambda args, say: up(args.cluster, args.kubeconfig, args.max_connections, log=say),
        down_help="stop the endpoint (every cluster unless --cluster)")


def _run_options(p_run: argparse.ArgumentParser) -> None:
    p_run.add_argument("--host", default=GATEWAY)
    p_run.add_argument("--port", type=int, default=None, help="default: the cluster's apiserver port + 100")
    p_run.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS)
    p_run.add_argument("--upstream", default=None, metavar="HOST:PORT",
                       help=f"default: {UPSTREAM_HOST}:<the cluster's apiserver port>")


def _run(args: argparse.Namespace, stop_event: threading.Event) -> None:
    state_file = STANDIN.files(args.cluster, args.state_dir)["state"] if args.state_dir else None
    upstream_host, upstream_port = UPSTREAM_HOST, None
    if args.upstream:
        upstream_host, _, port = args.upstream.rpartition(":")
        if not upstream_host or not port.isdigit():
            raise ApiEndpointError(f"--upstream {args.upstream!r}: expected HOST:PORT")
        upstream_port = int(port)
    run(args.cluster, host=args.host, port=args.port, upstream_host=upstream_host, upstream_port=upstream_port,
        cert_dir=args.state_dir, max_connections=args.max_connections, state_file=state_file, stop=stop_event)


def main(argv: list[str] | None = None) -> int:
    """``python -m labctl.apiendpoint run ...``: the background process."""
    return STANDIN.main(argv, _run_options, _run)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ApiEndpointError", "Endpoint", "apiserver_port", "down", "endpoint_port", "ensure_server_cert", "main",
           "register_cli", "run", "status", "up", "url"]
