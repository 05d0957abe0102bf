"""The stand-in's lab CA and serving certificate (lab fixture).

Rancher serves its CA at ``/cacerts`` and agents pin it with ``--ca-checksum``, the
sha256 of exactly those PEM bytes. The stand-in does the same with a CA it makes once
and keeps under ``STATE_DIR/rancher`` (private keys 0600).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

SERVER_DNS_NAMES = ("rancher.lab.internal", "localhost")
SERVER_IPS = ("127.0.0.1", "10.77.0.1")


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()

    @property
    def ca_checksum(self) -> str:
        return ca_checksum(self.ca_pem)


def ca_checksum(pem: bytes) -> str:
    """What Rancher's ``--ca-checksum`` is: sha256 hex of the bytes ``/cacerts`` serves."""
    return hashlib.sha256(pem).hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _server_cert_ok(pki: Pki, ips: tuple[str, ...], names: tuple[str, ...]) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
        ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    except (OSError, ValueError):
        return False
    if cert.issuer != ca.subject:
        return False
    if cert.not_valid_after_utc < datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    have_names = set(san.get_values_for_type(x509.DNSName))
    return set(ips) <= have_ips and set(names) <= have_names


def ensure_pki(directory: Path, extra_ips: tuple[str, ...] = ()) -> Pki:
    """Create (once) the lab CA and a server certificate for the stand-in's addresses."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from labctl import paths

    paths.private_dir(directory)
    pki = Pki(directory / "ca.pem", directory / "ca-key.pem", directory / "server.pem", directory / "server-key.pem")
    ips = tuple(dict.fromkeys((*SERVER_IPS, *extra_ips)))
    now = datetime.datetime.now(datetime.UTC)

    if pki.ca_cert.is_file() and pki.ca_key.is_file():
        ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aicluster lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, "dynamiclistener-ca (aicluster lab Rancher stand-in)"),
        ])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                              key_encipherment=False, data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(pki.ca_key, ca_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        _write_public(pki.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
        pki.server_cert.unlink(missing_ok=True)

    if _server_cert_ok(pki, ips, SERVER_DNS_NAMES):
        return pki

    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [x509.DNSName(n) for n in SERVER_DNS_NAMES] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rancher.lab.internal")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(pki.server_key, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    _write_public(pki.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    return pki
