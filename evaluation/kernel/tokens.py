"""Bearer secrets: every staff token, session, SAD, personal QR, link and scan secret
EvalSign hands out is made here, and only its hash is stored."""

from __future__ import annotations

import hashlib
import secrets

SECRET_BYTES = 32  # 256 bits of entropy


def new_secret(prefix: str) -> str:
    """A fresh secret: `prefix` (what it is, readable in a log or a support call) and 256
    random bits, URL-safe."""
    return prefix + secrets.token_urlsafe(SECRET_BYTES)


def hash_token(secret: str) -> str:
    """What is kept of a secret, and what it is looked up by: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()
