"""The PKCS#11 vault on a real SoftHSM2 token (no mocks): keys made on the token and never
extractable, signatures that verify with `cryptography` exactly as the local vault's do,
keys an admin put on the token, PIN and module errors, and many threads at once.

The parity tests at the top run the same bodies against LocalVault and Pkcs11Vault."""

from __future__ import annotations

import dataclasses
import os
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.util.ec import encode_named_curve_parameters

from signing.algorithms import KeyAlgorithm
from signing.keyring import Keyring
from signing.pkcs11_vault import Pkcs11Vault
from signing.vault import KeyRef, LocalVault, Vault, VaultError, private_key
from tests.signing.softhsm import SoftHsmToken

HASHES = [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()]


def new_key_id() -> str:
    return secrets.token_hex(16)


def digest_of(data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize()


def verify(ref: KeyRef, signature: bytes, digest: bytes, algorithm: hashes.HashAlgorithm) -> None:
    """What a relying party does with the KeyRef's public key; raises InvalidSignature."""
    public = ref.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, digest, ec.ECDSA(utils.Prehashed(algorithm)))
    else:
        public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(algorithm))


@pytest.fixture(scope="module")
def vault(softhsm_token: SoftHsmToken) -> Pkcs11Vault:
    return Pkcs11Vault(*softhsm_token)


@pytest.fixture(scope="module")
def hsm_keys(vault: Pkcs11Vault) -> dict[KeyAlgorithm, KeyRef]:
    # One key per algorithm for the module: RSA-3072 generation takes about a second.
    return {algorithm: vault.generate_key(new_key_id(), algorithm) for algorithm in KeyAlgorithm}


@pytest.fixture
def token_session(softhsm_token: SoftHsmToken, vault: Pkcs11Vault) -> Iterator[pkcs11.Session]:
    """A session of the test's own on the vault's token, as an admin's tool would have.
    python-pkcs11 keys its loaded modules by path string, so this must be the real path
    the vault loaded; the session needs no PIN because the vault's login is the process's."""
    token = pkcs11.lib(os.path.realpath(softhsm_token.module)).get_token(
        token_label=softhsm_token.label
    )
    with token.open(rw=True) as session:
        yield session


# Parity: the same signing tests against both backends.


@pytest.fixture(scope="module", params=["local", "pkcs11"])
def backend(request: pytest.FixtureRequest) -> tuple[Vault, dict[KeyAlgorithm, KeyRef]]:
    if request.param == "local":
        local = LocalVault(Keyring(os.urandom(32)))
        return local, {
            algorithm: local.generate_key(new_key_id(), algorithm) for algorithm in KeyAlgorithm
        }
    return request.getfixturevalue("vault"), request.getfixturevalue("hsm_keys")


@pytest.mark.parametrize("algorithm", KeyAlgorithm)
@pytest.mark.parametrize("hash_algorithm", HASHES, ids=lambda h: h.name)
def test_signatures_verify_under_the_key_refs_public_key(
    backend: tuple[Vault, dict[KeyAlgorithm, KeyRef]],
    algorithm: KeyAlgorithm,
    hash_algorithm: hashes.HashAlgorithm,
) -> None:
    vault, keys = backend
    ref = keys[algorithm]
    assert ref.backend == vault.backend
    assert ref.algorithm is algorithm
    assert ref.public_key().key_size == algorithm.key_size
    digest = digest_of(b"bid evaluation report", hash_algorithm)
    signature = vault.sign_digest(ref, digest, hash_algorithm)
    verify(ref, signature, digest, hash_algorithm)
    # Not a fixed answer: a different digest's signature does not verify for this one.
    other = vault.sign_digest(ref, digest_of(b"another report", hash_algorithm), hash_algorithm)
    with pytest.raises(InvalidSignature):
        verify(ref, other, digest, hash_algorithm)


@pytest.mark.parametrize("algorithm", KeyAlgorithm)
def test_a_digest_of_the_wrong_length_is_refused(
    backend: tuple[Vault, dict[KeyAlgorithm, KeyRef]], algorithm: KeyAlgorithm
) -> None:
    vault, keys = backend
    with pytest.raises(VaultError, match="sha256 digest is 32 bytes"):
        vault.sign_digest(keys[algorithm], b"\x00" * 48, hashes.SHA256())


def test_a_key_of_another_backend_is_refused(
    backend: tuple[Vault, dict[KeyAlgorithm, KeyRef]],
) -> None:
    vault, keys = backend
    other = "pkcs11" if vault.backend == "local" else "local"
    foreign = dataclasses.replace(keys[KeyAlgorithm.EC_P256], backend=other)
    with pytest.raises(VaultError, match="not held by the"):
        vault.sign_digest(foreign, bytes(32), hashes.SHA256())


@pytest.mark.parametrize("algorithm", KeyAlgorithm)
def test_the_private_key_adapter_signs_a_certificate_that_verifies(
    backend: tuple[Vault, dict[KeyAlgorithm, KeyRef]], algorithm: KeyAlgorithm
) -> None:
    vault, keys = backend
    ref = keys[algorithm]
    signer = private_key(vault, ref)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Test {algorithm} CA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )
    assert certificate.public_key() == ref.public_key()
    certificate.verify_directly_issued_by(certificate)


# The PKCS#11 backend itself.


@pytest.mark.parametrize("algorithm", KeyAlgorithm)
def test_generated_keys_live_on_the_token_sensitive_and_not_extractable(
    vault: Pkcs11Vault,
    hsm_keys: dict[KeyAlgorithm, KeyRef],
    token_session: pkcs11.Session,
    algorithm: KeyAlgorithm,
) -> None:
    ref = hsm_keys[algorithm]
    assert ref.wrapped_key is None
    assert ref.token_key_id == ref.id
    assert vault.is_extractable(ref) is False

    key = token_session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=ref.token_key_id)
    assert key.id == ref.id.encode()
    flags = key.get_attributes(
        [
            Attribute.TOKEN,
            Attribute.PRIVATE,
            Attribute.SENSITIVE,
            Attribute.EXTRACTABLE,
            Attribute.ALWAYS_SENSITIVE,
            Attribute.NEVER_EXTRACTABLE,
            Attribute.SIGN,
            Attribute.DECRYPT,
            Attribute.UNWRAP,
        ]
    )
    assert flags == {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.ALWAYS_SENSITIVE: True,
        Attribute.NEVER_EXTRACTABLE: True,
        Attribute.SIGN: True,
        Attribute.DECRYPT: False,
        Attribute.UNWRAP: False,
    }
    secret = Attribute.VALUE if algorithm is KeyAlgorithm.EC_P256 else Attribute.PRIVATE_EXPONENT
    with pytest.raises(pkcs11.exceptions.AttributeSensitive):
        key[secret]


def test_is_extractable_tells_an_exportable_key(
    vault: Pkcs11Vault, token_session: pkcs11.Session
) -> None:
    label = new_key_id()
    token_session.generate_keypair(
        KeyType.EC,
        store=True,
        label=label,
        public_template={Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
        private_template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
    )
    assert vault.is_extractable(vault.key_ref_for_label("imported", label)) is True


def test_a_key_not_on_the_token_is_refused(
    vault: Pkcs11Vault, hsm_keys: dict[KeyAlgorithm, KeyRef]
) -> None:
    missing = dataclasses.replace(hsm_keys[KeyAlgorithm.EC_P256], token_key_id="no-such-key")
    with pytest.raises(VaultError, match="no private key labelled 'no-such-key'"):
        vault.sign_digest(missing, bytes(32), hashes.SHA256())
    with pytest.raises(VaultError, match="not held by the pkcs11 vault"):
        vault.sign_digest(
            dataclasses.replace(missing, token_key_id=None), bytes(32), hashes.SHA256()
        )


def test_a_key_whose_public_half_is_not_the_key_refs_is_refused(
    vault: Pkcs11Vault, hsm_keys: dict[KeyAlgorithm, KeyRef]
) -> None:
    # The token signs, but not with the key the KeyRef names: nothing unverified comes out.
    ec_ref, rsa_ref = hsm_keys[KeyAlgorithm.EC_P256], hsm_keys[KeyAlgorithm.RSA_3072]
    other = vault.generate_key(new_key_id(), KeyAlgorithm.EC_P256)
    swapped = dataclasses.replace(ec_ref, token_key_id=other.token_key_id)
    with pytest.raises(VaultError, match="does not verify under its public key"):
        vault.sign_digest(swapped, bytes(32), hashes.SHA256())
    wrong_type = dataclasses.replace(ec_ref, token_key_id=rsa_ref.token_key_id)
    with pytest.raises(VaultError, match="is RSA, not ec-p256"):
        vault.sign_digest(wrong_type, bytes(32), hashes.SHA256())


def test_an_rsa_key_refuses_a_hash_it_has_no_digest_info_for(
    vault: Pkcs11Vault, hsm_keys: dict[KeyAlgorithm, KeyRef]
) -> None:
    with pytest.raises(VaultError, match="do not sign sha1 digests"):
        vault.sign_digest(hsm_keys[KeyAlgorithm.RSA_3072], bytes(20), hashes.SHA1())


def test_sha224_rsa_signatures_verify(
    vault: Pkcs11Vault, hsm_keys: dict[KeyAlgorithm, KeyRef]
) -> None:
    ref, digest = hsm_keys[KeyAlgorithm.RSA_3072], digest_of(b"x", hashes.SHA224())
    verify(ref, vault.sign_digest(ref, digest, hashes.SHA224()), digest, hashes.SHA224())


def test_a_key_id_already_on_the_token_is_not_generated_again(
    vault: Pkcs11Vault, hsm_keys: dict[KeyAlgorithm, KeyRef]
) -> None:
    with pytest.raises(VaultError, match="already holds a key"):
        vault.generate_key(hsm_keys[KeyAlgorithm.EC_P256].id, KeyAlgorithm.EC_P256)


def test_key_ref_for_label_finds_an_ec_key_put_on_the_token(
    vault: Pkcs11Vault, token_session: pkcs11.Session
) -> None:
    label = "external-issuing-ca-ec"
    public, _ = token_session.generate_keypair(
        KeyType.EC,
        store=True,
        label=label,
        id=b"\x01\x02",
        public_template={Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
        private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
    )
    ref = vault.key_ref_for_label("issuing-ca-key", label)
    assert (ref.id, ref.algorithm, ref.backend) == (
        "issuing-ca-key",
        KeyAlgorithm.EC_P256,
        "pkcs11",
    )
    assert ref.token_key_id == label
    point = ref.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert public[Attribute.EC_POINT] == b"\x04\x41" + point
    assert vault.is_extractable(ref) is False
    digest = digest_of(b"certificate to be", hashes.SHA384())
    verify(ref, vault.sign_digest(ref, digest, hashes.SHA384()), digest, hashes.SHA384())


def test_key_ref_for_label_takes_an_rsa_public_key_from_the_private_key_object(
    vault: Pkcs11Vault, token_session: pkcs11.Session
) -> None:
    label = "external-issuing-ca-rsa"
    public, _ = token_session.generate_keypair(
        KeyType.RSA,
        3072,
        store=True,
        label=label,
        private_template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
    )
    modulus = int.from_bytes(public[Attribute.MODULUS], "big")
    public.destroy()  # only the private key object is left, as some HSM imports leave it
    ref = vault.key_ref_for_label("issuing-ca-rsa", label)
    assert ref.algorithm is KeyAlgorithm.RSA_3072
    public_key = ref.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert public_key.public_numbers().n == modulus
    digest = digest_of(b"crl", hashes.SHA256())
    verify(ref, vault.sign_digest(ref, digest, hashes.SHA256()), digest, hashes.SHA256())


def test_key_ref_for_label_refuses_unknown_unsupported_and_incomplete_keys(
    vault: Pkcs11Vault, token_session: pkcs11.Session
) -> None:
    with pytest.raises(VaultError, match="no private key labelled 'nobody'"):
        vault.key_ref_for_label("k", "nobody")

    token_session.generate_keypair(
        KeyType.EC,
        store=True,
        label="p384-key",
        public_template={Attribute.EC_PARAMS: encode_named_curve_parameters("secp384r1")},
    )
    with pytest.raises(VaultError, match="not on P-256"):
        vault.key_ref_for_label("k", "p384-key")

    public, _ = token_session.generate_keypair(
        KeyType.EC,
        store=True,
        label="ec-without-public",
        public_template={Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
    )
    public.destroy()
    with pytest.raises(VaultError, match="no single public key object"):
        vault.key_ref_for_label("k", "ec-without-public")


def test_wrong_pins_are_refused(softhsm_idle_token: SoftHsmToken) -> None:
    module, label, pin = softhsm_idle_token
    # Nobody is logged in to this token: the token's C_Login says no.
    with pytest.raises(VaultError, match="wrong PIN for token 'evalsign-idle'"):
        Pkcs11Vault(module, label, "not-the-pin")
    right = Pkcs11Vault(module, label, pin)
    # Now the process is logged in (PKCS#11 login state is per process, so the token would
    # not check another PIN at all); the vault checks it against the one that worked.
    with pytest.raises(VaultError, match="wrong PIN for token 'evalsign-idle'"):
        Pkcs11Vault(module, label, pin + "0")
    ref = right.generate_key(new_key_id(), KeyAlgorithm.EC_P256)
    again = Pkcs11Vault(module, label, pin)
    digest = digest_of(b"a", hashes.SHA256())
    verify(ref, again.sign_digest(ref, digest, hashes.SHA256()), digest, hashes.SHA256())


def test_a_missing_or_foreign_module_and_an_unknown_token_are_refused(
    softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    with pytest.raises(VaultError, match=r"cannot load the PKCS#11 module .*: no such file"):
        Pkcs11Vault(tmp_path / "libmissing.so", "x", "1234")
    not_a_library = tmp_path / "libfake.so"
    not_a_library.write_bytes(b"not an ELF file")
    with pytest.raises(VaultError, match=r"cannot load the PKCS#11 module .*libfake\.so"):
        Pkcs11Vault(not_a_library, "x", "1234")
    with pytest.raises(VaultError, match="no token labelled 'no-such-token'"):
        Pkcs11Vault(softhsm_token.module, "no-such-token", softhsm_token.pin)


def test_the_same_module_under_another_name_is_loaded_once(
    softhsm_token: SoftHsmToken, vault: Pkcs11Vault, hsm_keys: dict[KeyAlgorithm, KeyRef]
) -> None:
    # /usr/lib/softhsm/libsofthsm2.so is a symlink; loading both names would initialize the
    # module twice, which fails. The vault resolves the path first.
    real = Path(os.path.realpath(softhsm_token.module))
    other = Pkcs11Vault(real, softhsm_token.label, softhsm_token.pin)
    ref = hsm_keys[KeyAlgorithm.EC_P256]
    digest = digest_of(b"b", hashes.SHA256())
    verify(ref, other.sign_digest(ref, digest, hashes.SHA256()), digest, hashes.SHA256())


def test_a_closed_session_is_reopened(
    vault: Pkcs11Vault, hsm_keys: dict[KeyAlgorithm, KeyRef]
) -> None:
    ref = hsm_keys[KeyAlgorithm.EC_P256]
    digest = digest_of(b"c", hashes.SHA256())
    vault.sign_digest(ref, digest, hashes.SHA256())
    # As if the HSM dropped the session (restart, network): close it behind the vault's back.
    session = vault._link.session
    assert session is not None
    session.close()
    verify(ref, vault.sign_digest(ref, digest, hashes.SHA256()), digest, hashes.SHA256())
    assert vault._link.session is not None and vault._link.session != session


@pytest.mark.slow
def test_eight_threads_sign_at_once(
    vault: Pkcs11Vault, hsm_keys: dict[KeyAlgorithm, KeyRef]
) -> None:
    threads, per_thread = 8, 50
    start = threading.Barrier(threads)

    def work(worker: int) -> list[tuple[KeyRef, bytes, bytes]]:
        start.wait()
        results = []
        for i in range(per_thread):
            ref = hsm_keys[KeyAlgorithm.EC_P256 if i % 2 else KeyAlgorithm.RSA_3072]
            digest = digest_of(f"{worker}/{i}".encode(), hashes.SHA256())
            results.append((ref, digest, vault.sign_digest(ref, digest, hashes.SHA256())))
        return results

    with ThreadPoolExecutor(threads) as pool:
        batches = list(pool.map(work, range(threads)))
    signed = [item for batch in batches for item in batch]
    assert len(signed) == threads * per_thread
    for ref, digest, signature in signed:
        verify(ref, signature, digest, hashes.SHA256())
