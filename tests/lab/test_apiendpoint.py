"""The intranet API endpoint's pipe (no lab needed): a temporary CA, an upstream TLS HTTP server on
127.0.0.1 standing in for the kube-apiserver (it echoes the Authorization header, streams a chunked
response, records the ALPN protocol it was offered), and the endpoint in-process on a free port of
127.0.0.1. Also the background process (`python -m labctl.apiendpoint run`): state file, url(),
status(), SIGTERM."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from labctl import apiendpoint, paths
from labctl.waiting import wait_for

TOKEN = "Bearer eyJhbGciOiJSUzI1NiJ9.lab-serviceaccount-token"
CLIENT_ERRORS = (ConnectionError, ssl.SSLError, http.client.HTTPException)  # not TimeoutError: no hang


# ------------------------------------------------------------------ certificates
def _pem_write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_ca(directory: Path, name: str = "kwok-ca") -> tuple[Path, Path]:
    """A CA like kwokctl's (RSA, CN kwok-ca): ca.crt, ca.key in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=True,
                                         content_commitment=False, data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            # kwokctl's CA: a Subject Key Identifier not derived from its key (the server certificate must name it)
            .add_extension(x509.SubjectKeyIdentifier(os.urandom(20)), critical=False)
            .sign(key, hashes.SHA256()))
    return (_pem_write(directory / "ca.crt", cert.public_bytes(serialization.Encoding.PEM)),
            _pem_write(directory / "ca.key", key.private_bytes(serialization.Encoding.PEM,
                                                               serialization.PrivateFormat.TraditionalOpenSSL,
                                                               serialization.NoEncryption())))


def issue(ca: tuple[Path, Path], directory: Path, ip: str = "127.0.0.1") -> tuple[Path, Path]:
    """The upstream's serving certificate (the apiserver's names 127.0.0.1)."""
    ca_cert = x509.load_pem_x509_certificate(ca[0].read_bytes())
    ca_key = serialization.load_pem_private_key(ca[1].read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upstream")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    return (_pem_write(directory / "upstream.crt", cert.public_bytes(serialization.Encoding.PEM)),
            _pem_write(directory / "upstream.key", key.private_bytes(serialization.Encoding.PEM,
                                                                     serialization.PrivateFormat.PKCS8,
                                                                     serialization.NoEncryption())))


def client_context(ca_cert: Path, alpn: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_cert))  # verifies the chain AND the IP (check_hostname)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


# ------------------------------------------------------------------ the upstream (an apiserver stand-in)
class Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cert: tuple[Path, Path]):
        super().__init__(("127.0.0.1", 0), UpstreamHandler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        # The handshake happens in each handler's thread, not in the accept loop.
        self.socket = ctx.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.release = threading.Event()    # /stream sends its second chunk once this is set
        self.alpn: list[str | None] = []
        self.open = 0                        # connections being handled
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.shutdown()
        self.server_close()


class UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10

    def setup(self):
        with self.server.lock:
            self.server.open += 1
        super().setup()
        try:
            self.request.do_handshake()
        except (OSError, ssl.SSLError):
            return
        self.server.alpn.append(self.request.selected_alpn_protocol())

    def finish(self):
        try:
            super().finish()
        finally:
            with self.server.lock:
                self.server.open -= 1

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/stream":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._chunk(b'{"type":"ADDED"}\n')
            self.server.release.wait(10)
            self._chunk(b'{"type":"MODIFIED"}\n')
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        body = json.dumps({"authorization": self.headers.get("Authorization"), "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


# ------------------------------------------------------------------ fixtures
@pytest.fixture
def ca(tmp_path):
    return make_ca(tmp_path / "pki")


@pytest.fixture
def upstream(ca, tmp_path):
    with Upstream(issue(ca, tmp_path / "upstream")) as server:
        yield server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def endpoint(ca, tmp_path):
    """``start(upstream_port, max_connections=...)``: an Endpoint serving in a thread on 127.0.0.1."""
    started = []

    def start(upstream_port: int, max_connections: int = 8, upstream_ca: Path | None = None):
        cert, key = apiendpoint.ensure_server_cert(ca[0], ca[1], tmp_path / "endpoint", "worker", ["127.0.0.1"])
        logs: list[str] = []
        ep = apiendpoint.Endpoint("127.0.0.1", 0, ("127.0.0.1", upstream_port), cert, key, upstream_ca or ca[0],
                                  max_connections=max_connections, log=logs.append)
        ep.logs = logs
        ep.stop_event = threading.Event()
        ep.thread = threading.Thread(target=ep.run, args=(ep.stop_event,), daemon=True)
        ep.thread.start()
        assert ep.listening.wait(5), "the endpoint did not listen"
        started.append(ep)
        return ep

    yield start
    for ep in started:
        ep.stop_event.set()
        ep.thread.join(5)
        assert not ep.thread.is_alive(), "the endpoint did not stop within 5 s"


def connect(port: int, ca_cert: Path, alpn: list[str] | None = None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return client_context(ca_cert, alpn).wrap_socket(raw, server_hostname="127.0.0.1")


def get(ep, ca_cert: Path, path: str = "/api/v1/namespaces", token: str = TOKEN) -> dict:
    conn = http.client.HTTPSConnection("127.0.0.1", ep.port, context=client_context(ca_cert), timeout=5)
    try:
        conn.request("GET", path, headers={"Authorization": token})
        resp = conn.getresponse()
        assert resp.status == 200
        return json.loads(resp.read())
    finally:
        conn.close()


# ------------------------------------------------------------------ the pipe
def test_request_reaches_the_upstream_with_its_bearer_token(ca, upstream, endpoint):
    ep = endpoint(upstream.port)
    conn = http.client.HTTPSConnection("127.0.0.1", ep.port, context=client_context(ca[0]), timeout=5)
    for path in ("/api/v1/nodes", "/apis/cloud.tencent.com/v1beta1/resourceleasingpolicies"):  # one connection
        conn.request("GET", path, headers={"Authorization": TOKEN})
        resp = conn.getresponse()
        assert resp.status == 200
        assert json.loads(resp.read()) == {"authorization": TOKEN, "path": path}
    conn.close()
    assert ep.served == 1 and ep.synced


def test_client_verifies_the_endpoint_certificate_against_the_cluster_ca(ca, upstream, endpoint, tmp_path):
    ep = endpoint(upstream.port)
    with connect(ep.port, ca[0]) as tls:  # chain to the cluster CA and IP SAN 127.0.0.1, or the handshake fails
        cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca[0].read_bytes()))
    other_ca = make_ca(tmp_path / "other", "another-ca")
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(ep.port, other_ca[0])
    for f in apiendpoint.server_cert_files(tmp_path / "endpoint", "worker"):
        assert f.stat().st_mode & 0o777 == 0o600


def test_server_certificate_is_for_the_gateway_and_made_again_when_the_ca_changes(ca, tmp_path):
    d = tmp_path / "state"
    cert_path, key_path = apiendpoint.ensure_server_cert(ca[0], ca[1], d, "worker")
    first = cert_path.read_bytes()
    cert = x509.load_pem_x509_certificate(first)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [apiendpoint.GATEWAY] == ["10.77.0.1"]
    assert (cert_path.stat().st_mode & 0o777, key_path.stat().st_mode & 0o777) == (0o600, 0o600)
    assert apiendpoint.ensure_server_cert(ca[0], ca[1], d, "worker")[0].read_bytes() == first  # current: kept
    new_ca = make_ca(ca[0].parent)  # the cluster made again: a new CA under the same name and path
    renewed = x509.load_pem_x509_certificate(apiendpoint.ensure_server_cert(ca[0], ca[1], d, "worker")[0].read_bytes())
    renewed.verify_directly_issued_by(x509.load_pem_x509_certificate(new_ca[0].read_bytes()))
    with pytest.raises(apiendpoint.ApiEndpointError, match="is the cluster up"):
        apiendpoint.ensure_server_cert(tmp_path / "none.crt", tmp_path / "none.key", d, "worker")


def test_a_streamed_response_arrives_in_pieces_before_the_upstream_closes(ca, upstream, endpoint):
    ep = endpoint(upstream.port)
    conn = http.client.HTTPSConnection("127.0.0.1", ep.port, context=client_context(ca[0]), timeout=5)
    conn.request("GET", "/stream", headers={"Authorization": TOKEN})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read1() == b'{"type":"ADDED"}\n'  # while the upstream still holds its second event back
    assert not upstream.release.is_set()
    upstream.release.set()
    assert resp.read() == b'{"type":"MODIFIED"}\n'
    conn.close()


def test_alpn_is_passed_on(ca, upstream, endpoint):
    ep = endpoint(upstream.port)
    with connect(ep.port, ca[0], ["h2"]) as tls:
        assert tls.selected_alpn_protocol() == "h2"
        wait_for(lambda: "h2" in upstream.alpn, 5, "the upstream handshake")
    assert upstream.alpn.count("h2") == 1 and set(upstream.alpn) <= {None, "h2"}  # None: the endpoint's probe


@pytest.mark.parametrize("problem", ["down", "another CA"])
def test_upstream_unusable_closes_the_client_connection(ca, upstream, endpoint, tmp_path, problem):
    if problem == "down":
        ep = endpoint(free_port())
    else:  # the endpoint trusts another CA than the upstream's: the upstream is refused
        ep = endpoint(upstream.port, upstream_ca=make_ca(tmp_path / "other", "another-ca")[0])
    conn = http.client.HTTPSConnection("127.0.0.1", ep.port, context=client_context(ca[0]), timeout=5)
    began = time.monotonic()
    with pytest.raises(CLIENT_ERRORS):
        conn.request("GET", "/api", headers={"Authorization": TOKEN})
        conn.getresponse()
    assert time.monotonic() - began < 4
    conn.close()
    assert not ep.synced
    wait_for(lambda: ep.active == 0, 5, "the connection to be let go")
    assert any("client connection closed" in line for line in ep.logs)
    if problem == "another CA":
        assert any("CERTIFICATE_VERIFY_FAILED" in line for line in ep.logs)


def test_connection_limit_and_peer_close(ca, upstream, endpoint):
    ep = endpoint(upstream.port, max_connections=2)
    held = [connect(ep.port, ca[0]), connect(ep.port, ca[0])]
    wait_for(lambda: ep.active == 2 and upstream.open == 2, 5, "two piped connections")
    with pytest.raises(CLIENT_ERRORS):  # a third one is closed at once, before its handshake
        extra = connect(ep.port, ca[0])
        extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert extra.recv(1) == b""
        raise ConnectionResetError("closed")
    assert ep.refused == 1 and ep.active == 2
    held.pop().close()  # the peer closes: its pipe and the upstream connection go
    wait_for(lambda: ep.active == 1 and upstream.open == 1, 5, "the closed connection to be let go")
    assert get(ep, ca[0])["authorization"] == TOKEN  # a free slot again
    held.pop().close()
    wait_for(lambda: ep.active == 0 and upstream.open == 0, 5, "every connection to be let go")


def test_stop_ends_open_connections_promptly(ca, upstream, endpoint):
    ep = endpoint(upstream.port)
    conn = http.client.HTTPSConnection("127.0.0.1", ep.port, context=client_context(ca[0]), timeout=5)
    conn.request("GET", "/stream")
    resp = conn.getresponse()
    assert resp.read1()
    began = time.monotonic()
    ep.stop_event.set()
    ep.thread.join(5)
    assert not ep.thread.is_alive() and time.monotonic() - began < 2
    with pytest.raises((*CLIENT_ERRORS, ValueError)):  # the stream ends before its last chunk
        resp.read()
        raise ConnectionResetError("stream ended")
    conn.close()


def test_a_new_cluster_ca_while_running_gets_a_new_server_certificate(ca, upstream, tmp_path, monkeypatch):
    monkeypatch.setattr(apiendpoint, "CA_CHECK_SECONDS", 0.1)
    state_file, stop = tmp_path / "worker.json", threading.Event()
    thread = threading.Thread(target=apiendpoint.run, daemon=True, kwargs={
        "cluster": "worker", "host": "127.0.0.1", "port": 0, "upstream_port": upstream.port, "ca_cert": ca[0],
        "ca_key": ca[1], "cert_dir": tmp_path / "endpoint", "state_file": state_file, "stop": stop,
        "log": lambda m: None})
    thread.start()
    try:
        url = wait_for(lambda: read_state(state_file).get("synced") and read_state(state_file)["url"], 5, "synced")
        port = int(url.rsplit(":", 1)[1])
        connect(port, ca[0]).close()
        new_ca = make_ca(ca[0].parent)  # the cluster made again, same paths

        def verifies_with_new_ca() -> bool:
            connect(port, new_ca[0]).close()
            return True

        wait_for(verifies_with_new_ca, 5, "a server certificate from the new CA")
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert read_state(state_file)["synced"] is False  # the last state: stopped


def read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# ------------------------------------------------------------------ the background process
def test_background_process_state_url_status_and_sigterm(ca, upstream, tmp_path, monkeypatch):
    state = tmp_path / "state"
    pki = state / "kwok" / "clusters" / "worker" / "pki"
    pki.mkdir(parents=True)
    for f in ca:
        (pki / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(paths, "STATE_DIR", state)
    d = paths.private_dir(apiendpoint.STANDIN.state_dir())
    files = apiendpoint.STANDIN.files("worker")
    env = {**os.environ, "LAB_STATE_DIR": str(state),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(paths.LAB_DIR), os.environ.get("PYTHONPATH")]))}
    assert apiendpoint.url() is None
    with open(files["log"], "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "labctl.apiendpoint", "run", "--cluster", "worker",
                                 "--state-dir", str(d), "--host", "127.0.0.1", "--port", "0",
                                 "--upstream", f"127.0.0.1:{upstream.port}"], env=env, stdout=log, stderr=log)
    try:
        files["pid"].write_text(f"{proc.pid}\n")
        url = wait_for(apiendpoint.url, 10, "the endpoint to be synced")
        assert url.startswith("https://127.0.0.1:") and url != "https://127.0.0.1:0"
        saved = json.loads(files["state"].read_text())
        assert saved["pid"] == proc.pid and saved["synced"] is True and saved["url"] == url
        assert files["state"].stat().st_mode & 0o777 == 0o600
        row = next(r for r in apiendpoint.status() if r["cluster"] == "worker")
        assert row["running"] and row["synced"] and row["url"] == url
        port = int(url.rsplit(":", 1)[1])
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=client_context(ca[0]), timeout=5)
        conn.request("GET", "/stream", headers={"Authorization": TOKEN})
        assert conn.getresponse().read1()  # a watch is open while SIGTERM arrives
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - began < 3
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert apiendpoint.url() is None
    assert "stopped" in files["log"].read_text()


def test_defaults_are_the_lab_addresses():
    assert apiendpoint.endpoint_port("worker") == 36543
    assert apiendpoint.endpoint_url(apiendpoint.GATEWAY, apiendpoint.endpoint_port("worker")) == \
        "https://10.77.0.1:36543"
    with pytest.raises(apiendpoint.ApiEndpointError, match="unknown cluster"):
        apiendpoint.endpoint_port("nope")
