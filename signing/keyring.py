"""The instance master key of the local vault, and the purpose-bound keys derived from it.

The embedded default keeps a 256-bit master key in a 0600 file under the data directory
(or takes it from EVALSIGN_MASTER_KEY); every other key is derived from it with HKDF so a
key for one purpose can never decrypt data of another.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASTER_KEY_FILE = "master.key"
KEY_BYTES = 32


class KeyringError(Exception):
    """The master key is missing, unreadable or malformed."""


@dataclass(frozen=True)
class Keyring:
    master_key: bytes

    def __post_init__(self) -> None:
        if len(self.master_key) != KEY_BYTES:
            raise KeyringError("the master key must be exactly 32 bytes")

    def derive(self, purpose: str) -> bytes:
        """A 256-bit key for one named purpose, e.g. ``"pii-encryption/v1"``."""
        return HKDF(
            algorithm=hashes.SHA256(),
            length=KEY_BYTES,
            salt=None,
            info=f"evalsign/{purpose}".encode(),
        ).derive(self.master_key)


def decode_master_key(encoded: str, source: str = "EVALSIGN_MASTER_KEY") -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyringError(f"{source} is not valid base64") from exc
    if len(key) != KEY_BYTES:
        raise KeyringError(f"{source} must decode to exactly 32 bytes")
    return key


def create_master_key_file(vault_dir: Path) -> Path:
    """Create the vault's master key file if it does not exist yet; return its path."""
    vault_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(vault_dir, 0o700)
    path = vault_dir / MASTER_KEY_FILE
    try:
        # O_EXCL: two concurrent `init` runs can never write two different keys.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


def load_keyring(vault_dir: Path, encoded_key: str | None = None) -> Keyring:
    """The keyring from EVALSIGN_MASTER_KEY when given, else from the vault's key file."""
    if encoded_key:
        return Keyring(decode_master_key(encoded_key))
    path = vault_dir / MASTER_KEY_FILE
    try:
        encoded = path.read_text().strip()
    except FileNotFoundError as exc:
        raise KeyringError(
            f"no master key at {path}; run `evalsign init` or set EVALSIGN_MASTER_KEY"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyringError(f"cannot read the master key file {path}: {exc}") from exc
    return Keyring(decode_master_key(encoded, source=f"the master key file {path}"))


def key_check_value(keyring: Keyring) -> str:
    """A value that identifies the master key without revealing anything about it."""
    return keyring.derive("key-check/v1").hex()
