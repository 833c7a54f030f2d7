"""Dashboard password hashes, pure standard library: scrypt (hashlib.scrypt, RFC 7914).

scrypt is memory-hard (16 MiB per guess here), so a stolen configuration file cannot be brute-forced cheaply on
GPUs, and it ships with Python (OpenSSL): no extra dependency to build on a Pi. The stored form is
`scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>`, produced by `ramudroid passwd`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1  # ~50 ms and 16 MiB on a laptop, a few hundred ms on a Raspberry Pi
KEY_LEN = 32
MIN_LENGTH = 8
_MAX_N = 2**20  # refuse hashes that would take seconds and a gigabyte to check


class HashFormatError(ValueError):
    """A password hash that is not one `ramudroid passwd` printed."""


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    """A new salted scrypt hash of `password` (ValueError when it is shorter than MIN_LENGTH)."""
    if len(password) < MIN_LENGTH:
        raise ValueError(f"password too short: use at least {MIN_LENGTH} characters")
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_maxmem(n, r), dklen=KEY_LEN)
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(key).decode()}"


def _maxmem(n: int, r: int) -> int:
    return 128 * r * n + 2**20


def parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """(n, r, p, salt, key) of a stored hash; HashFormatError naming what is wrong."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise HashFormatError("expected scrypt$n$r$p$salt$key as printed by `ramudroid passwd`")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except ValueError as err:
        raise HashFormatError(f"unreadable field ({err})") from err
    if n < 2 or n & (n - 1) or n > _MAX_N or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise HashFormatError(f"scrypt parameters n={n}, r={r}, p={p} out of range")
    if len(salt) < 8 or len(key) < 16:
        raise HashFormatError("salt or key too short")
    return n, r, p, salt, key


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored`; False for a wrong password or an unreadable hash."""
    try:
        n, r, p, salt, key = parse_hash(stored)
    except HashFormatError:
        return False
    got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_maxmem(n, r), dklen=len(key))
    return hmac.compare_digest(got, key)
