# Copyright: AI cluster platform maintainers
# Apache-2.0
"""Password hashes of the Ray Serve logins: the one owner of their format.

The role that writes the ``auth-config`` Secret hashes here (on the control host), and the Serve image
checks logins with the same file: the package ``serve/aicluster_serve_auth`` ships it as
``aicluster_serve_auth.passwords`` (a link to this file, so that there is one implementation).

Format (self-describing, like Django's and passlib's): ``<algorithm>$<parameters>$<salt>$<hash>``, salt and
hash in unpadded URL-safe base64:

* ``pbkdf2_sha256$<iterations>$<salt>$<hash>``: PBKDF2-HMAC-SHA256, at least 600,000 iterations (OWASP's
  figure for PBKDF2-HMAC-SHA256), 16-byte salt, 32-byte hash; what :func:`hash_password` makes;
* ``scrypt$n=<N>,r=<r>,p=<p>$<salt>$<hash>``: scrypt (N a power of two, at least 2**14), accepted for
  hashes made elsewhere.

Anything else is refused, the seed's single salted SHA-256 included: it is one hash, not a key-derivation
function, so a leaked Secret would be brute-forced at GPU speed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

PBKDF2 = "pbkdf2_sha256"
SCRYPT = "scrypt"
ITERATIONS = 600000  # OWASP Password Storage Cheat Sheet, PBKDF2-HMAC-SHA256
MIN_ITERATIONS = 600000
SALT_BYTES = 16
HASH_BYTES = 32
MIN_SCRYPT_N = 2 ** 14
SCRYPT_MAXMEM = 256 * 1024 * 1024


def _b64encode(data):
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password, iterations=ITERATIONS, salt=None):
    """``pbkdf2_sha256$<iterations>$<salt>$<hash>`` of ``password`` (a fresh random salt unless given)."""
    if not isinstance(password, str) or not password:
        raise ValueError("the password must be a non-empty string")
    if not isinstance(iterations, int) or iterations < MIN_ITERATIONS:
        raise ValueError(f"PBKDF2 needs at least {MIN_ITERATIONS} iterations, got {iterations!r}")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    return f"{PBKDF2}${iterations}${_b64encode(salt)}${_b64encode(digest)}"


def parse(encoded):
    """The parts of a hash: ``{"algorithm", "iterations" | "n", "r", "p", "salt", "hash"}``; ValueError names
    what is wrong (never the hash itself)."""
    if not isinstance(encoded, str):
        raise ValueError("a password hash must be a string")
    parts = encoded.split("$")
    if len(parts) != 4:
        raise ValueError("a password hash has four '$'-separated parts: <algorithm>$<parameters>$<salt>$<hash>")
    algorithm, params, salt, digest = parts
    try:
        salt_bytes, hash_bytes = _b64decode(salt), _b64decode(digest)
    except (ValueError, TypeError):
        raise ValueError("salt and hash must be URL-safe base64") from None
    if len(salt_bytes) < 8 or len(hash_bytes) < 16:
        raise ValueError("salt (8+ bytes) or hash (16+ bytes) too short")
    if algorithm == PBKDF2:
        if not params.isdigit() or int(params) < MIN_ITERATIONS:
            raise ValueError(f"pbkdf2_sha256 needs at least {MIN_ITERATIONS} iterations, got {params!r}")
        return {"algorithm": algorithm, "iterations": int(params), "salt": salt_bytes, "hash": hash_bytes}
    if algorithm == SCRYPT:
        try:
            values = dict(item.split("=", 1) for item in params.split(","))
            n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        except (ValueError, KeyError):
            raise ValueError("scrypt parameters must be n=<N>,r=<r>,p=<p>") from None
        if n < MIN_SCRYPT_N or n & (n - 1) or r < 1 or p < 1:
            raise ValueError(f"scrypt needs n a power of two of at least {MIN_SCRYPT_N}, r and p at least 1")
        return {"algorithm": algorithm, "n": n, "r": r, "p": p, "salt": salt_bytes, "hash": hash_bytes}
    raise ValueError(f"unknown password hash algorithm {algorithm!r} (expected {PBKDF2} or {SCRYPT})")


def verify_password(password, encoded):
    """True when ``password`` matches ``encoded`` (constant-time comparison); False for a wrong password or a
    hash that cannot be used."""
    try:
        parts = parse(encoded)
    except ValueError:
        return False
    if not isinstance(password, str):
        return False
    secret = password.encode("utf-8")
    if parts["algorithm"] == PBKDF2:
        digest = hashlib.pbkdf2_hmac("sha256", secret, parts["salt"], parts["iterations"], len(parts["hash"]))
    else:
        digest = hashlib.scrypt(secret, salt=parts["salt"], n=parts["n"], r=parts["r"], p=parts["p"],
                                maxmem=SCRYPT_MAXMEM, dklen=len(parts["hash"]))
    return hmac.compare_digest(digest, parts["hash"])


def is_current(encoded, iterations=ITERATIONS):
    """True when ``encoded`` is a usable hash at least as strong as what :func:`hash_password` makes now (a
    re-run keeps it; otherwise it is made again from the password)."""
    try:
        parts = parse(encoded)
    except ValueError:
        return False
    return parts["algorithm"] == SCRYPT or parts["iterations"] >= iterations
