"""Key custody: one interface, two backends.

A vault generates key pairs and signs digests with them; nobody outside it ever holds a
private key object. The `local` backend keeps each key wrapped with AES-256-GCM under a
key-encryption key derived from the instance master key, and unwraps it only for the one
signing call. The `pkcs11` backend (signing.pkcs11_vault) keeps keys on an HSM token,
generated there and never extractable.

`cryptography`'s certificate, CRL and OCSP builders take a private key object; they get a
`VaultPrivateKey`, whose `sign` goes through the vault.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from models.settings import Settings
from models.tables import VaultKey
from signing.algorithms import KeyAlgorithm
from signing.keyring import Keyring

NONCE_BYTES = 12
WRAP_FORMAT_V1 = b"\x01"


class VaultError(Exception):
    """The vault cannot do what was asked: unknown key, wrong backend, tampered wrap."""


@dataclass(frozen=True)
class KeyRef:
    """What a vault needs to find a key again; stored in `vault_keys`."""

    id: str
    algorithm: KeyAlgorithm
    backend: str
    public_key_der: bytes
    wrapped_key: bytes | None = None
    token_key_id: str | None = None

    @classmethod
    def of(cls, row: VaultKey) -> KeyRef:
        return cls(
            id=row.id,
            algorithm=KeyAlgorithm(row.algorithm),
            backend=row.backend,
            public_key_der=row.public_key_der,
            wrapped_key=row.wrapped_key,
            token_key_id=row.token_key_id,
        )

    def public_key(self) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
        key = serialization.load_der_public_key(self.public_key_der)
        assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        return key


class Vault(Protocol):
    backend: str

    def generate_key(self, key_id: str, algorithm: KeyAlgorithm) -> KeyRef:
        """A new key pair inside the vault, known from now on by `key_id`."""
        ...

    def sign_digest(self, key: KeyRef, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        """Sign a precomputed digest: DER ECDSA for EC keys, PKCS#1 v1.5 for RSA keys."""
        ...


def private_key(vault: Vault, key: KeyRef) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A `cryptography` private key whose signing goes through the vault, for the X.509,
    CRL and OCSP builders; it can sign and tell its public key, nothing else."""
    if key.algorithm is KeyAlgorithm.EC_P256:
        return _VaultEcKey(vault, key)
    return _VaultRsaKey(vault, key)


def _digest(data: bytes, algorithm: hashes.HashAlgorithm | utils.Prehashed) -> tuple[bytes, Any]:
    if isinstance(algorithm, utils.Prehashed):
        return data, algorithm._algorithm
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize(), algorithm


def _unsupported() -> VaultError:
    return VaultError("a vault key signs; it cannot be exported or used for anything else")


Buffer = bytes | bytearray | memoryview  # what cryptography accepts as data


class _VaultEcKey(ec.EllipticCurvePrivateKey):
    def __init__(self, vault: Vault, key: KeyRef) -> None:
        self._vault, self._key = vault, key

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        assert isinstance(signature_algorithm, ec.ECDSA)
        digest, algorithm = _digest(bytes(data), signature_algorithm.algorithm)
        return self._vault.sign_digest(self._key, digest, algorithm)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        key = self._key.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key

    @property
    def curve(self) -> ec.EllipticCurve:
        return self.public_key().curve

    @property
    def key_size(self) -> int:
        return self.curve.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise _unsupported()

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise _unsupported()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise _unsupported()

    def __copy__(self) -> _VaultEcKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> _VaultEcKey:
        return self


class _VaultRsaKey(rsa.RSAPrivateKey):
    def __init__(self, vault: Vault, key: KeyRef) -> None:
        self._vault, self._key = vault, key

    def sign(
        self,
        data: bytes,
        padding_: padding.AsymmetricPadding,
        algorithm: hashes.HashAlgorithm | utils.Prehashed | utils.NoDigestInfo,
    ) -> bytes:
        if not isinstance(padding_, padding.PKCS1v15) or isinstance(algorithm, utils.NoDigestInfo):
            raise VaultError("vault RSA keys sign with PKCS#1 v1.5 padding and a digest only")
        digest, hash_algorithm = _digest(data, algorithm)
        return self._vault.sign_digest(self._key, digest, hash_algorithm)

    def public_key(self) -> rsa.RSAPublicKey:
        key = self._key.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        return key

    @property
    def key_size(self) -> int:
        return self.public_key().key_size

    def decrypt(self, ciphertext: bytes, padding_: padding.AsymmetricPadding) -> bytes:
        raise _unsupported()

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise _unsupported()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise _unsupported()

    def __copy__(self) -> _VaultRsaKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> _VaultRsaKey:
        return self


def generate_private_key(algorithm: KeyAlgorithm) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if algorithm is KeyAlgorithm.EC_P256:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def sign_with(key: PrivateKeyTypes, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    """Sign a digest with a software key: what both the local vault and tests use."""
    if len(digest) != algorithm.digest_size:
        raise VaultError(f"a {algorithm.name} digest is {algorithm.digest_size} bytes")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(digest, ec.ECDSA(utils.Prehashed(algorithm)))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(algorithm))
    raise VaultError("unsupported key type")


class LocalVault:
    """Keys wrapped with AES-256-GCM; the key id and algorithm are the associated data, so
    a wrapped key copied onto another row does not unwrap."""

    backend = "local"

    def __init__(self, keyring: Keyring) -> None:
        self._aead = AESGCM(keyring.derive("vault-key-wrap/v1"))

    @staticmethod
    def _context(key_id: str, algorithm: KeyAlgorithm) -> bytes:
        return f"evalsign/vault-key/{key_id}/{algorithm.value}".encode()

    def generate_key(self, key_id: str, algorithm: KeyAlgorithm) -> KeyRef:
        return self.import_key(key_id, generate_private_key(algorithm))

    def import_key(
        self, key_id: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    ) -> KeyRef:
        """Wrap an existing software key (e.g. an issuing CA's key file an admin imports)."""
        from signing.algorithms import algorithm_of

        algorithm = algorithm_of(key.public_key())
        plain = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        nonce = secrets.token_bytes(NONCE_BYTES)
        wrapped = (
            WRAP_FORMAT_V1
            + nonce
            + self._aead.encrypt(nonce, plain, self._context(key_id, algorithm))
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return KeyRef(key_id, algorithm, self.backend, public, wrapped_key=wrapped)

    def _unwrap(self, key: KeyRef) -> PrivateKeyTypes:
        blob = key.wrapped_key
        if key.backend != self.backend or blob is None:
            raise VaultError(f"key {key.id} is not held by the local vault")
        if blob[:1] != WRAP_FORMAT_V1 or len(blob) < 1 + NONCE_BYTES + 16:
            raise VaultError(f"key {key.id}: unknown wrapping format")
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            plain = self._aead.decrypt(nonce, sealed, self._context(key.id, key.algorithm))
        except InvalidTag as exc:
            raise VaultError(f"key {key.id} does not unwrap: wrong vault key or tampered") from exc
        # The bytes are authenticated by AES-GCM and were checked when the key was made;
        # re-validating an RSA key's primes on every load would cost ~100 ms a signature.
        return serialization.load_der_private_key(
            plain, password=None, unsafe_skip_rsa_key_validation=True
        )

    def sign_digest(self, key: KeyRef, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        # The unwrapped key lives only for this call.
        return sign_with(self._unwrap(key), digest, algorithm)


class Vaults:
    """The instance's vaults: new keys go to the configured backend, and every stored key is
    used through the backend that holds it, so switching backends strands no key."""

    def __init__(self, local: LocalVault, pkcs11: Vault | None = None, default: str = "local"):
        if default == "pkcs11" and pkcs11 is None:
            raise VaultError("the pkcs11 vault backend is selected but not configured")
        self.local = local
        self.pkcs11 = pkcs11
        self.backend = default

    def _holder(self, backend: str) -> Vault:
        if backend == "local":
            return self.local
        if backend == "pkcs11" and self.pkcs11 is not None:
            return self.pkcs11
        if backend == "csc":
            raise VaultError(
                "the key is held by a remote signing provider: it signs through that "
                "provider's CscVault (signing/csc_client.py), not the instance's vaults"
            )
        raise VaultError(
            f"the key is held by the {backend} backend, which is not configured "
            "(set EVALSIGN_PKCS11_MODULE, EVALSIGN_PKCS11_TOKEN_LABEL and EVALSIGN_PKCS11_PIN)"
        )

    def generate_key(self, key_id: str, algorithm: KeyAlgorithm) -> KeyRef:
        return self._holder(self.backend).generate_key(key_id, algorithm)

    def sign_digest(self, key: KeyRef, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        return self._holder(key.backend).sign_digest(key, digest, algorithm)


def open_vaults(settings: Settings, keyring: Keyring) -> Vaults:
    """The vaults the settings describe; a PKCS#11 token is opened only when configured."""
    pkcs11: Vault | None = None
    if settings.pkcs11_module is not None:
        from signing.pkcs11_vault import Pkcs11Vault

        if not settings.pkcs11_token_label or settings.pkcs11_pin is None:
            raise VaultError("EVALSIGN_PKCS11_TOKEN_LABEL and EVALSIGN_PKCS11_PIN are required")
        pkcs11 = Pkcs11Vault(
            settings.pkcs11_module, settings.pkcs11_token_label, settings.pkcs11_pin
        )
    return Vaults(LocalVault(keyring), pkcs11, settings.vault_backend)
