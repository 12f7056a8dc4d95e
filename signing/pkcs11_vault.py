"""The `pkcs11` vault backend: keys generated on an HSM token and never extractable.

The private key never leaves the token: the vault asks the token to sign a digest and
stores only the key's label (`KeyRef.token_key_id`) and its public key. Tested against
SoftHSM2; any PKCS#11 module with CKM_ECDSA and CKM_RSA_PKCS on P-256 / RSA-3072 keys works.

Two facts of python-pkcs11 shape the locking here:

* It calls `C_Initialize(NULL)`, which tells the module the application will not call it
  from several threads at once; SoftHSM then turns its own mutexes off. It also releases
  the GIL around every C call. So every call into one module is serialized by one lock
  per loaded module, whatever token or vault it is for; a session pool would race inside
  the module without making it faster.
* It loads each module once per process, and PKCS#11 login state belongs to the process
  (all sessions on a token are logged in or none is; a second `C_Login` fails with
  CKR_USER_ALREADY_LOGGED_IN whatever the PIN). So every vault on one token shares one
  logged-in session, and a second vault's PIN is checked against the PIN that logged in.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

import pkcs11
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import (
    DeviceRemoved,
    KeyHandleInvalid,
    MultipleObjectsReturned,
    MultipleTokensReturned,
    NoSuchKey,
    NoSuchToken,
    ObjectHandleInvalid,
    PinIncorrect,
    PinLenRange,
    PinLocked,
    PKCS11Error,
    SessionClosed,
    SessionHandleInvalid,
    TokenNotPresent,
    UserAlreadyLoggedIn,
    UserNotLoggedIn,
)

from signing.algorithms import KeyAlgorithm, algorithm_of
from signing.vault import KeyRef, VaultError

T = TypeVar("T")
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

# `vault_keys.token_key_id` is VARCHAR(128), and the vault stores the key's label there.
MAX_LABEL = 128
# DER of the namedCurve OID secp256r1 (1.2.840.10045.3.1.7): CKA_EC_PARAMS of a P-256 key.
P256_EC_PARAMS = bytes.fromhex("06082a8648ce3d030107")
# DigestInfo up to the digest itself (RFC 8017 §9.2, note 1): CKM_RSA_PKCS signs these
# bytes + digest as is, which is what PKCS#1 v1.5 with that hash means.
DIGEST_INFO_PREFIXES = {
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
KEY_TYPES = {KeyAlgorithm.EC_P256: KeyType.EC, KeyAlgorithm.RSA_3072: KeyType.RSA}

# The session died, was logged out, or a cached key handle went stale: open a new session
# and try once more. A logged-out session also finds no private keys, hence NoSuchKey.
_RETRY = (
    SessionHandleInvalid,
    SessionClosed,
    UserNotLoggedIn,
    DeviceRemoved,
    TokenNotPresent,
    ObjectHandleInvalid,
    KeyHandleInvalid,
)


class _KeyNotFound(VaultError):
    """No private key with that label; possibly only because the session was logged out."""


def _describe(exc: PKCS11Error) -> str:
    # python-pkcs11 raises most return codes with an empty message.
    return str(exc) or type(exc).__name__


class _Module:
    """A loaded PKCS#11 module, the lock every call into it takes, and its token links."""

    def __init__(self, path: str) -> None:
        try:
            self.lib = pkcs11.lib(path)
        except PKCS11Error as exc:
            raise VaultError(f"cannot load the PKCS#11 module {path}: {_describe(exc)}") from exc
        self.path = path
        self.lock = threading.Lock()
        self.tokens: dict[str, _TokenLink] = {}

    def find_token(self, label: str) -> pkcs11.Token:
        try:
            return self.lib.get_token(token_label=label)
        except NoSuchToken:
            raise VaultError(f"no token labelled {label!r} in {self.path}") from None
        except MultipleTokensReturned:
            raise VaultError(f"more than one token labelled {label!r} in {self.path}") from None
        except PKCS11Error as exc:
            raise VaultError(f"cannot list the tokens of {self.path}: {_describe(exc)}") from exc


_modules: dict[str, _Module] = {}
_modules_lock = threading.Lock()


def _module(path: Path) -> _Module:
    # The real path: the same library under two names would be loaded twice, and the
    # second C_Initialize in one process fails.
    real = os.path.realpath(path)
    with _modules_lock:
        module = _modules.get(real)
        if module is None:
            if not os.path.isfile(real):
                raise VaultError(f"cannot load the PKCS#11 module {path}: no such file")
            module = _modules[real] = _Module(real)
        return module


class _TokenLink:
    """The process's logged-in session on one token and the private keys found through it.
    Only touched with the module's lock held."""

    def __init__(self, module: _Module, label: str, pin: str) -> None:
        self.module, self.label, self.pin = module, label, pin
        self.session: pkcs11.Session | None = None
        self.keys: dict[str, pkcs11.PrivateKey] = {}

    def open(self, *, first: bool) -> pkcs11.Session:
        # Found again on every open: after a device reset the token may sit in another slot.
        token = self.module.find_token(self.label)
        try:
            self.session = token.open(rw=True, user_pin=self.pin)
        except (PinIncorrect, PinLenRange):
            raise VaultError(f"wrong PIN for token {self.label!r}") from None
        except PinLocked:
            raise VaultError(f"the user PIN of token {self.label!r} is locked") from None
        except UserAlreadyLoggedIn:
            if first:
                # Someone else in this process logged in; we could not tell a wrong PIN.
                raise VaultError(
                    f"token {self.label!r} is already logged in by other code in this "
                    "process; the vault cannot check its PIN"
                ) from None
            # Our earlier session could not log out; a new session shares its login.
            self.session = self._open_logged_in(token)
        except PKCS11Error as exc:
            raise VaultError(f"cannot log in to token {self.label!r}: {_describe(exc)}") from exc
        return self.session

    def _open_logged_in(self, token: pkcs11.Token) -> pkcs11.Session:
        try:
            return token.open(rw=True)
        except PKCS11Error as exc:
            raise VaultError(f"cannot open a session on {self.label!r}: {_describe(exc)}") from exc

    def drop(self) -> None:
        session, self.session = self.session, None
        self.keys.clear()
        if session is not None:
            # Already closed, or logged out (python-pkcs11 then skips C_CloseSession): the
            # handle is gone or harmless, and a new session replaces it.
            with contextlib.suppress(PKCS11Error):
                session.close()

    def run(self, what: str, operation: Callable[[pkcs11.Session], T]) -> T:
        """`operation` on the logged-in session, under the module's lock; once more on a
        fresh session when the session was lost."""
        with self.module.lock:
            for attempt in range(2):
                session = self.session or self.open(first=False)
                try:
                    return operation(session)
                except _KeyNotFound:
                    if attempt == 1:
                        raise  # a fresh session does not find it either: it is not there
                    self.drop()
                except _RETRY as exc:
                    self.drop()
                    if attempt == 1:
                        raise VaultError(f"{what}: token {self.label!r}: {_describe(exc)}") from exc
                except PKCS11Error as exc:
                    raise VaultError(f"{what}: {_describe(exc)}") from exc
        raise AssertionError("unreachable")

    def private_key(
        self, session: pkcs11.Session, label: str, algorithm: KeyAlgorithm | None = None
    ) -> pkcs11.PrivateKey:
        key = self.keys.get(label)
        if key is None:
            try:
                found = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
            except NoSuchKey:
                raise _KeyNotFound(
                    f"no private key labelled {label!r} on token {self.label!r}"
                ) from None
            except MultipleObjectsReturned:
                raise VaultError(f"more than one private key labelled {label!r}") from None
            assert isinstance(found, pkcs11.PrivateKey)
            key = self.keys[label] = found
        if algorithm is not None and key.key_type is not KEY_TYPES[algorithm]:
            raise VaultError(f"the key labelled {label!r} is {key.key_type.name}, not {algorithm}")
        return key


def _link(module: _Module, label: str, pin: str) -> _TokenLink:
    with module.lock:
        link = module.tokens.get(label)
        if link is None:
            link = _TokenLink(module, label, pin)
            link.open(first=True)
            module.tokens[label] = link
        elif not hmac.compare_digest(pin.encode(), link.pin.encode()):
            # The token is logged in with the PIN that worked; any other PIN is wrong.
            raise VaultError(f"wrong PIN for token {label!r}")
        return link


@lru_cache(maxsize=256)
def _load_public_key(der: bytes) -> PublicKey:
    key = serialization.load_der_public_key(der)
    assert isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
    return key


def _public_key_of(key: pkcs11.PublicKey | pkcs11.PrivateKey) -> PublicKey:
    """The public key in a token object's attributes: CKA_EC_PARAMS and CKA_EC_POINT of an
    EC public key, CKA_MODULUS and CKA_PUBLIC_EXPONENT of either RSA key object."""
    if key.key_type is KeyType.EC:
        if key[Attribute.EC_PARAMS] != P256_EC_PARAMS:
            raise VaultError(f"EC key {key.label!r} is not on P-256")
        point = bytes(key[Attribute.EC_POINT])
        # PKCS#11 says DER OCTET STRING; some tokens give the bare uncompressed point.
        if len(point) == 67 and point[:2] == b"\x04\x41":
            point = point[2:]
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except ValueError:
            raise VaultError(f"EC key {key.label!r} has no valid P-256 public point") from None
    if key.key_type is KeyType.RSA:
        modulus = int.from_bytes(key[Attribute.MODULUS], "big")
        exponent = int.from_bytes(key[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    raise VaultError(f"key {key.label!r} is {key.key_type.name}; only EC and RSA keys sign")


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class Pkcs11Vault:
    """Keys on a PKCS#11 token: generated there (sensitive, not extractable, sign only) or
    put there by an admin, and found again by label. Safe to call from many threads."""

    backend = "pkcs11"

    def __init__(self, module: Path, token_label: str, pin: str) -> None:
        self._link = _link(_module(module), token_label, pin)

    def generate_key(self, key_id: str, algorithm: KeyAlgorithm) -> KeyRef:
        """A new key pair on the token, labelled `key_id` (CKA_ID is its UTF-8 bytes)."""
        label = self._check_label(key_id)

        def generate(session: pkcs11.Session) -> bytes:
            # Labels need not be unique in PKCS#11, but the vault finds keys by label.
            if list(session.get_objects({Attribute.LABEL: label})):
                raise VaultError(f"token {self._link.label!r} already holds a key {label!r}")
            public_template: dict[Attribute, object] = {Attribute.PRIVATE: False}
            if algorithm is KeyAlgorithm.EC_P256:
                public_template[Attribute.EC_PARAMS] = P256_EC_PARAMS
                key_length = None
            else:
                public_template[Attribute.PUBLIC_EXPONENT] = (65537).to_bytes(3, "big")
                key_length = algorithm.key_size
            public, _ = session.generate_keypair(
                KEY_TYPES[algorithm],
                key_length,
                id=label.encode(),
                label=label,
                store=True,
                # Sign and verify only: no decrypt, unwrap or derive with a signing key.
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                public_template=public_template,
                private_template={
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                },
            )
            return _spki(_public_key_of(public))

        der = self._link.run(f"generate key {key_id}", generate)
        return KeyRef(key_id, algorithm, self.backend, der, token_key_id=label)

    def key_ref_for_label(self, key_id: str, label: str) -> KeyRef:
        """A private key already on the token (e.g. an external issuing CA's key an admin
        put there), known from now on as `key_id`. Its public key comes from the public key
        object with the same label (or CKA_ID), or for RSA from the private key object."""
        self._check_label(label)

        def find(session: pkcs11.Session) -> PublicKey:
            private = self._link.private_key(session, label)
            publics = list(
                session.get_objects(
                    {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label}
                )
            )
            if len(publics) != 1 and private.id:
                publics = list(
                    session.get_objects(
                        {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: private.id}
                    )
                )
            if len(publics) == 1:
                public = publics[0]
                assert isinstance(public, pkcs11.PublicKey)
                return _public_key_of(public)
            if private.key_type is KeyType.RSA:
                return _public_key_of(private)
            raise VaultError(
                f"no single public key object labelled {label!r} on token; an EC private "
                "key object does not carry its public key"
            )

        public_key = self._link.run(f"find key {label}", find)
        try:
            algorithm = algorithm_of(public_key)
        except ValueError as exc:
            raise VaultError(f"key {label!r}: {exc}") from None
        ref = KeyRef(key_id, algorithm, self.backend, _spki(public_key), token_key_id=label)
        # Proves the private key belongs to that public key before anyone relies on it.
        self.sign_digest(ref, secrets.token_bytes(32), hashes.SHA256())
        return ref

    def sign_digest(self, key: KeyRef, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        """DER ECDSA or PKCS#1 v1.5 over `digest`, checked against the key's public key."""
        label = self._token_label(key)
        if len(digest) != algorithm.digest_size:
            raise VaultError(f"a {algorithm.name} digest is {algorithm.digest_size} bytes")
        if key.algorithm is KeyAlgorithm.EC_P256:
            mechanism, data = Mechanism.ECDSA, digest
        else:
            prefix = DIGEST_INFO_PREFIXES.get(algorithm.name)
            if prefix is None:
                raise VaultError(f"RSA keys on the token do not sign {algorithm.name} digests")
            mechanism, data = Mechanism.RSA_PKCS, prefix + digest

        def sign(session: pkcs11.Session) -> bytes:
            private = self._link.private_key(session, label, key.algorithm)
            # The objects python-pkcs11 makes mix in what the key can do; typing can't see it.
            assert isinstance(private, pkcs11.SignMixin)
            return private.sign(data, mechanism=mechanism)

        signature = self._link.run(f"sign with key {key.id}", sign)
        public_key = _load_public_key(key.public_key_der)
        try:
            if isinstance(public_key, ec.EllipticCurvePublicKey):
                # CKM_ECDSA gives r || s, each as long as the curve order.
                half = len(signature) // 2
                r = int.from_bytes(signature[:half], "big")
                s = int.from_bytes(signature[half:], "big")
                signature = utils.encode_dss_signature(r, s)
                public_key.verify(signature, digest, ec.ECDSA(utils.Prehashed(algorithm)))
            else:
                public_key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(algorithm))
        except InvalidSignature:
            # A faulty RSA-CRT signature can give the private key away; a mismatch also
            # means another key now sits behind this label. Nothing unverified leaves.
            raise VaultError(
                f"the token's signature with key {key.id} does not verify under its public key"
            ) from None
        return signature

    def is_extractable(self, key: KeyRef) -> bool:
        """Whether the key's value could leave the token: CKA_EXTRACTABLE (it may be
        wrapped out) or not CKA_SENSITIVE (it may be read in the clear)."""
        label = self._token_label(key)

        def read(session: pkcs11.Session) -> bool:
            private = self._link.private_key(session, label, key.algorithm)
            flags = private.get_attributes([Attribute.EXTRACTABLE, Attribute.SENSITIVE])
            return bool(flags[Attribute.EXTRACTABLE]) or not flags[Attribute.SENSITIVE]

        return self._link.run(f"read key {key.id}", read)

    def _token_label(self, key: KeyRef) -> str:
        if key.backend != self.backend or key.token_key_id is None:
            raise VaultError(f"key {key.id} is not held by the pkcs11 vault")
        return key.token_key_id

    @staticmethod
    def _check_label(label: str) -> str:
        if not label or len(label) > MAX_LABEL:
            raise VaultError(f"a token key label is 1 to {MAX_LABEL} characters")
        return label
