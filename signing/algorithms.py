"""Key algorithms, digest algorithms and the OIDs the CSC API names them by."""

from __future__ import annotations

from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes


class KeyAlgorithm(StrEnum):
    EC_P256 = "ec-p256"
    RSA_3072 = "rsa-3072"

    @property
    def key_size(self) -> int:
        return 256 if self is KeyAlgorithm.EC_P256 else 3072

    @property
    def key_oid(self) -> str:
        return OID_EC_PUBLIC_KEY if self is KeyAlgorithm.EC_P256 else OID_RSA_ENCRYPTION

    @property
    def signature_oid(self) -> str:
        """The SHA-256 signature algorithm of this key type."""
        return OID_ECDSA_SHA256 if self is KeyAlgorithm.EC_P256 else OID_RSA_SHA256

    @property
    def curve_oid(self) -> str | None:
        return OID_P256 if self is KeyAlgorithm.EC_P256 else None


OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_P256 = "1.2.840.10045.3.1.7"
OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
OID_ECDSA_SHA384 = "1.2.840.10045.4.3.3"
OID_ECDSA_SHA512 = "1.2.840.10045.4.3.4"
OID_RSA_SHA256 = "1.2.840.113549.1.1.11"
OID_RSA_SHA384 = "1.2.840.113549.1.1.12"
OID_RSA_SHA512 = "1.2.840.113549.1.1.13"

HASHES_BY_OID: dict[str, type[hashes.HashAlgorithm]] = {
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}
HASH_OID_BY_NAME: dict[str, str] = {
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
}

# signAlgo OID → (key algorithm, the digest it implies, or None when hashAlgorithmOID says).
SIGN_ALGORITHMS: dict[str, tuple[KeyAlgorithm, str | None]] = {
    OID_ECDSA_SHA256: (KeyAlgorithm.EC_P256, "2.16.840.1.101.3.4.2.1"),
    OID_ECDSA_SHA384: (KeyAlgorithm.EC_P256, "2.16.840.1.101.3.4.2.2"),
    OID_ECDSA_SHA512: (KeyAlgorithm.EC_P256, "2.16.840.1.101.3.4.2.3"),
    OID_RSA_SHA256: (KeyAlgorithm.RSA_3072, "2.16.840.1.101.3.4.2.1"),
    OID_RSA_SHA384: (KeyAlgorithm.RSA_3072, "2.16.840.1.101.3.4.2.2"),
    OID_RSA_SHA512: (KeyAlgorithm.RSA_3072, "2.16.840.1.101.3.4.2.3"),
    OID_RSA_ENCRYPTION: (KeyAlgorithm.RSA_3072, None),
}


def hash_for_oid(oid: str) -> hashes.HashAlgorithm:
    try:
        return HASHES_BY_OID[oid]()
    except KeyError:
        raise ValueError(f"unsupported hash algorithm {oid}") from None


def sign_algorithms_for(algorithm: KeyAlgorithm) -> list[str]:
    return [oid for oid, (key, _) in SIGN_ALGORITHMS.items() if key is algorithm]


def algorithm_of(public_key: PublicKeyTypes) -> KeyAlgorithm:
    """The vault algorithm a public key belongs to; other keys are not supported."""
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
        public_key.curve, ec.SECP256R1
    ):
        return KeyAlgorithm.EC_P256
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 3072:
        return KeyAlgorithm.RSA_3072
    raise ValueError("only ECDSA P-256 and RSA-3072 keys are supported")
