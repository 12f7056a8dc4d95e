"""Encryption of personal data fields at rest (AES-256-GCM) and keyed lookup hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from signing.keyring import Keyring

FORMAT_V1 = b"\x01"
NONCE_BYTES = 12


class FieldDecryptionError(Exception):
    """A stored field does not decrypt: wrong key, wrong context, or tampered bytes."""


class FieldCipher:
    """Encrypts one field value bound to its context (e.g. ``experts/<id>/phone``).

    The context is authenticated data: a ciphertext copied into another row or field
    fails to decrypt instead of silently showing the wrong person's data.
    """

    def __init__(self, keyring: Keyring) -> None:
        self._aead = AESGCM(keyring.derive("pii-encryption/v1"))
        self._index_key = keyring.derive("pii-index/v1")

    def encrypt(self, plaintext: str, context: str) -> bytes:
        return self.encrypt_bytes(plaintext.encode(), context)

    def decrypt(self, blob: bytes, context: str) -> str:
        return self.decrypt_bytes(blob, context).decode()

    def encrypt_bytes(self, plaintext: bytes, context: str) -> bytes:
        """Binary values (face templates, retained photos) under the same scheme."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return FORMAT_V1 + nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def decrypt_bytes(self, blob: bytes, context: str) -> bytes:
        if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != FORMAT_V1:
            raise FieldDecryptionError("unknown field encryption format")
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, sealed, context.encode())
        except InvalidTag as exc:
            raise FieldDecryptionError(f"field {context} does not decrypt") from exc

    def blind_index(self, value: str, scope: str) -> str:
        """A keyed hash for equality lookups: finds duplicates without storing the value."""
        message = scope.encode() + b"\x00" + value.encode()
        return hmac.new(self._index_key, message, hashlib.sha256).hexdigest()
