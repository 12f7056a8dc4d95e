"""HMAC-signed HTTP requests between EvalSign and a trading platform, both ways: the
platform's intake calls to us and our webhook deliveries to it.

The scheme ``evalsign-hmac-v1`` (a public spec; a platform implements it in a few lines)::

    X-EvalSign-Key-Id:    the key's id (a platform key, or a webhook subscription)
    X-EvalSign-Timestamp: Unix seconds when the request was signed
    X-EvalSign-Signature: v1=<hex HMAC-SHA256(secret, string_to_sign)>

    string_to_sign = "evalsign-hmac-v1" LF key_id LF timestamp LF METHOD LF target LF
                     hex(SHA-256(body))

``target`` is the path with its query string, exactly as sent (``/api/v1/intake/projects``).
Signing the method and target stops a signed body being replayed at another route, the
timestamp bounds a captured request's life to the tolerance (five minutes either way, for
clocks that drift), and the key id lets a platform rotate keys: two keys may be live at once.
The secret is 32 random bytes shown once as ``base64url`` text; the bytes of that text are
the HMAC key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

SCHEME = "evalsign-hmac-v1"
KEY_ID_HEADER = "X-EvalSign-Key-Id"
TIMESTAMP_HEADER = "X-EvalSign-Timestamp"
SIGNATURE_HEADER = "X-EvalSign-Signature"
TOLERANCE_S = 300
_SIGNATURE = re.compile(r"^v1=([0-9a-f]{64})$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


class RequestSignatureInvalid(Exception):
    """The request's signature headers are missing, malformed, stale or do not match; the
    message says which, for the sender's logs (never the expected value)."""


@dataclass(frozen=True)
class SignedHeaders:
    key_id: str
    timestamp: int
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {
            KEY_ID_HEADER: self.key_id,
            TIMESTAMP_HEADER: str(self.timestamp),
            SIGNATURE_HEADER: f"v1={self.signature}",
        }


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def string_to_sign(key_id: str, timestamp: int, method: str, target: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((SCHEME, key_id, str(timestamp), method.upper(), target, digest)).encode()


def _mac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_request(
    *, secret: str, key_id: str, method: str, target: str, body: bytes, now: datetime
) -> SignedHeaders:
    timestamp = int(now.timestamp())
    message = string_to_sign(key_id, timestamp, method, target, body)
    return SignedHeaders(key_id, timestamp, _mac(secret, message))


def read_headers(headers: dict[str, str]) -> SignedHeaders:
    """The three headers parsed (names case-insensitive); the signature not yet checked."""
    lowered = {name.lower(): value for name, value in headers.items()}
    key_id = lowered.get(KEY_ID_HEADER.lower(), "")
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not key_id or not timestamp or not signature:
        raise RequestSignatureInvalid(
            f"{KEY_ID_HEADER}, {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are all required"
        )
    if not _TIMESTAMP.match(timestamp):
        raise RequestSignatureInvalid(f"{TIMESTAMP_HEADER} must be Unix seconds")
    found = _SIGNATURE.match(signature)
    if found is None:
        raise RequestSignatureInvalid(f"{SIGNATURE_HEADER} must be v1=<64 hex digits>")
    return SignedHeaders(key_id, int(timestamp), found.group(1))


def verify_request(
    signed: SignedHeaders, *, secret: str, method: str, target: str, body: bytes, now: datetime
) -> None:
    """Raise :class:`RequestSignatureInvalid` unless the signature is the secret's over this
    request and was made within the tolerance of ``now``."""
    if abs(now.timestamp() - signed.timestamp) > TOLERANCE_S:
        raise RequestSignatureInvalid(
            f"{TIMESTAMP_HEADER} is more than {TOLERANCE_S} s from our clock"
        )
    message = string_to_sign(signed.key_id, signed.timestamp, method, target, body)
    if not hmac.compare_digest(_mac(secret, message), signed.signature):
        raise RequestSignatureInvalid("the signature does not match this request")
