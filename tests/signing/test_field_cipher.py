"""Personal data fields encrypted with AES-256-GCM bound to their context, and the keyed
hashes that find duplicates without storing the value."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from signing.field_cipher import FieldCipher, FieldDecryptionError
from signing.keyring import Keyring

CONTEXT = "experts/0b6f3c1e/id_number"


def _other_cipher() -> FieldCipher:
    return FieldCipher(Keyring(secrets.token_bytes(32)))


@pytest.mark.parametrize(
    "plaintext", ["11010519491231002X", "13800138000", "张伟 · 北京市建筑设计研究院", "", "𠀀"]
)
def test_encrypted_field_decrypts_to_the_same_text(cipher: FieldCipher, plaintext: str) -> None:
    assert cipher.decrypt(cipher.encrypt(plaintext, CONTEXT), CONTEXT) == plaintext


def test_ciphertext_does_not_contain_the_plaintext(cipher: FieldCipher) -> None:
    plaintext = "11010519491231002X"
    blob = cipher.encrypt(plaintext, CONTEXT)
    assert plaintext.encode() not in blob
    assert "身份证".encode() not in cipher.encrypt("身份证", CONTEXT)


def test_same_value_encrypts_differently_each_time(cipher: FieldCipher) -> None:
    blobs = {cipher.encrypt("13800138000", CONTEXT) for _ in range(20)}
    assert len(blobs) == 20
    # Different nonces, not only different tags: the 12 bytes after the version byte.
    assert len({blob[1:13] for blob in blobs}) == 20


def test_a_fresh_cipher_on_the_same_keyring_decrypts(keyring: Keyring) -> None:
    blob = FieldCipher(keyring).encrypt("13800138000", CONTEXT)
    assert FieldCipher(keyring).decrypt(blob, CONTEXT) == "13800138000"


def test_ciphertext_moved_to_another_context_does_not_decrypt(cipher: FieldCipher) -> None:
    blob = cipher.encrypt("11010519491231002X", "experts/a/id_number")
    for context in ("experts/b/id_number", "experts/a/phone", "experts/a/id_number "):
        with pytest.raises(FieldDecryptionError):
            cipher.decrypt(blob, context)


def test_ciphertext_with_any_flipped_byte_does_not_decrypt(cipher: FieldCipher) -> None:
    blob = cipher.encrypt("13800138000", CONTEXT)
    for position in range(len(blob)):
        tampered = bytearray(blob)
        tampered[position] ^= 0x01
        with pytest.raises(FieldDecryptionError):
            cipher.decrypt(bytes(tampered), CONTEXT)


@pytest.mark.parametrize("cut", [1, 16, 28])
def test_truncated_ciphertext_does_not_decrypt(cipher: FieldCipher, cut: int) -> None:
    blob = cipher.encrypt("13800138000", CONTEXT)
    with pytest.raises(FieldDecryptionError):
        cipher.decrypt(blob[:-cut], CONTEXT)


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x02" + bytes(40), bytes(40)])
def test_unknown_format_does_not_decrypt(cipher: FieldCipher, blob: bytes) -> None:
    with pytest.raises(FieldDecryptionError):
        cipher.decrypt(blob, CONTEXT)


def test_ciphertext_of_another_keyring_does_not_decrypt(cipher: FieldCipher) -> None:
    blob = _other_cipher().encrypt("13800138000", CONTEXT)
    with pytest.raises(FieldDecryptionError):
        cipher.decrypt(blob, CONTEXT)


def test_blind_index_is_deterministic_per_value_and_scope(keyring: Keyring) -> None:
    first = FieldCipher(keyring).blind_index("11010519491231002X", "expert-id-number/c1")
    second = FieldCipher(keyring).blind_index("11010519491231002X", "expert-id-number/c1")
    assert first == second
    assert len(first) == 64
    assert "11010519491231002X" not in first


def test_blind_index_differs_across_values(cipher: FieldCipher) -> None:
    scope = "expert-id-number/c1"
    assert cipher.blind_index("11010519491231002X", scope) != cipher.blind_index(
        "440524188001010014", scope
    )


def test_blind_index_differs_across_scopes(cipher: FieldCipher) -> None:
    value = "11010519491231002X"
    assert cipher.blind_index(value, "expert-id-number/c1") != cipher.blind_index(
        value, "expert-id-number/c2"
    )


def test_blind_index_differs_across_keys(cipher: FieldCipher) -> None:
    value, scope = "11010519491231002X", "expert-id-number/c1"
    assert cipher.blind_index(value, scope) != _other_cipher().blind_index(value, scope)


def test_blind_index_is_not_a_plain_hash(cipher: FieldCipher) -> None:
    value, scope = "11010519491231002X", "expert-id-number/c1"
    unkeyed = hashlib.sha256(scope.encode() + b"\x00" + value.encode()).hexdigest()
    assert cipher.blind_index(value, scope) not in {
        unkeyed,
        hashlib.sha256(value.encode()).hexdigest(),
    }
