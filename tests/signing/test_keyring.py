"""The vault's master key: created once as a private file or taken from the environment,
and the purpose-bound keys derived from it."""

from __future__ import annotations

import base64
import secrets
import stat
from pathlib import Path

import pytest

from signing.keyring import (
    KEY_BYTES,
    MASTER_KEY_FILE,
    Keyring,
    KeyringError,
    create_master_key_file,
    load_keyring,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_master_key_file_is_private_in_a_private_directory(tmp_path: Path) -> None:
    vault = tmp_path / "data" / "vault"
    path = create_master_key_file(vault)
    assert path == vault / MASTER_KEY_FILE
    assert _mode(path) == 0o600
    assert _mode(vault) == 0o700


def test_master_key_file_holds_32_random_bytes_in_base64(tmp_path: Path) -> None:
    first = base64.b64decode(create_master_key_file(tmp_path / "a").read_text().strip())
    second = base64.b64decode(create_master_key_file(tmp_path / "b").read_text().strip())
    assert len(first) == KEY_BYTES
    assert first != second


def test_second_creation_keeps_the_existing_key(tmp_path: Path) -> None:
    path = create_master_key_file(tmp_path / "vault")
    before = path.read_bytes()
    assert create_master_key_file(tmp_path / "vault") == path
    assert path.read_bytes() == before


def test_existing_vault_directory_is_made_private(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir(mode=0o755)
    vault.chmod(0o755)
    create_master_key_file(vault)
    assert _mode(vault) == 0o700


def test_keyring_loads_the_key_from_the_file(tmp_path: Path) -> None:
    path = create_master_key_file(tmp_path)
    keyring = load_keyring(tmp_path)
    assert keyring.master_key == base64.b64decode(path.read_text().strip())
    assert load_keyring(tmp_path) == keyring


def test_missing_key_file_raises_a_helpful_error(tmp_path: Path) -> None:
    with pytest.raises(KeyringError) as raised:
        load_keyring(tmp_path / "vault")
    message = str(raised.value)
    assert str(tmp_path / "vault" / MASTER_KEY_FILE) in message
    assert "evalsign init" in message
    assert "EVALSIGN_MASTER_KEY" in message


def test_environment_key_is_used_instead_of_the_file(tmp_path: Path) -> None:
    key = secrets.token_bytes(KEY_BYTES)
    keyring = load_keyring(tmp_path / "no-vault", base64.b64encode(key).decode())
    assert keyring.master_key == key


def test_environment_key_takes_precedence_over_an_existing_file(tmp_path: Path) -> None:
    create_master_key_file(tmp_path)
    key = secrets.token_bytes(KEY_BYTES)
    assert load_keyring(tmp_path, base64.b64encode(key).decode()).master_key == key


@pytest.mark.parametrize(
    "encoded",
    [
        "not base64 at all!",
        base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()[:-2],  # padding cut off
        "密钥" * 22,
    ],
    # Fixed ids: a random value in a test id differs between pytest-xdist's workers.
    ids=["not-base64", "padding-cut", "chinese"],
)
def test_environment_key_that_is_not_base64_is_rejected(encoded: str) -> None:
    with pytest.raises(KeyringError, match="base64"):
        load_keyring(Path("/nonexistent"), encoded)


@pytest.mark.parametrize("length", [16, 31, 33, 64])
def test_environment_key_of_wrong_length_is_rejected(length: int) -> None:
    encoded = base64.b64encode(secrets.token_bytes(length)).decode()
    with pytest.raises(KeyringError, match="32 bytes"):
        load_keyring(Path("/nonexistent"), encoded)


def test_key_file_with_garbage_is_rejected(tmp_path: Path) -> None:
    (tmp_path / MASTER_KEY_FILE).write_text("this is no key\n")
    with pytest.raises(KeyringError):
        load_keyring(tmp_path)


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_keyring_refuses_a_master_key_of_wrong_length(length: int) -> None:
    with pytest.raises(KeyringError):
        Keyring(secrets.token_bytes(length))


def test_derived_keys_differ_per_purpose(keyring: Keyring) -> None:
    purposes = ["pii-encryption/v1", "pii-index/v1", "pii-encryption/v2", "token-hash/v1"]
    keys = [keyring.derive(purpose) for purpose in purposes]
    assert len(set(keys)) == len(purposes)
    assert keyring.master_key not in keys
    assert all(len(key) == KEY_BYTES for key in keys)


def test_derived_key_is_stable_for_the_same_master_key(keyring: Keyring) -> None:
    copy = Keyring(bytes(keyring.master_key))
    assert copy.derive("pii-encryption/v1") == keyring.derive("pii-encryption/v1")


def test_derived_keys_differ_across_master_keys(keyring: Keyring) -> None:
    other = Keyring(secrets.token_bytes(KEY_BYTES))
    assert other.derive("pii-encryption/v1") != keyring.derive("pii-encryption/v1")


def test_corrupt_key_file_is_named_in_the_error(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / MASTER_KEY_FILE).write_text("not base64 at all!\n")
    with pytest.raises(KeyringError, match="master key file"):
        load_keyring(vault)


def test_unreadable_key_file_is_a_keyring_error(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    (vault / MASTER_KEY_FILE).mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(KeyringError, match="cannot read"):
        load_keyring(vault)
