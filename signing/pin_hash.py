"""Slow hashes of signing PINs (scrypt, RFC 7914).

A six-digit PIN has a million values, so what protects it at rest is the cost of each
guess: scrypt is memory-hard, which keeps GPUs from trying them in bulk. The stored string
carries its own parameters, so raising the cost later does not invalidate PINs already set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCHEME = "scrypt"
BLOCK_SIZE = 8
PARALLELISM = 1
SALT_BYTES = 16
HASH_BYTES = 32


class PinHashInvalid(Exception):
    """A stored PIN hash is not one this module wrote."""


def _scrypt(pin: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    # OpenSSL refuses scrypt above its default 32 MiB unless told the memory it may use.
    memory = 128 * r * (n + p + 2) + 1024 * 1024
    return hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=memory, dklen=HASH_BYTES)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_pin(pin: str, log2_n: int) -> str:
    """`scrypt$<log2 N>$<r>$<p>$<salt>$<hash>`, base64url without padding."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(pin, salt, log2_n, BLOCK_SIZE, PARALLELISM)
    return "$".join(
        [SCHEME, str(log2_n), str(BLOCK_SIZE), str(PARALLELISM), _b64(salt), _b64(digest)]
    )


def pin_matches(pin: str, stored: str) -> bool:
    """Whether `pin` is the one `stored` was made from (constant-time comparison)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise PinHashInvalid("not a scrypt PIN hash")
    try:
        log2_n, r, p = (int(value) for value in parts[1:4])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except ValueError as exc:
        raise PinHashInvalid("a malformed scrypt PIN hash") from exc
    if not (10 <= log2_n <= 22 and 1 <= r <= 32 and 1 <= p <= 16):
        raise PinHashInvalid("scrypt parameters out of range")
    return hmac.compare_digest(_scrypt(pin, salt, log2_n, r, p), expected)
