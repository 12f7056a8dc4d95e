"""The RFC 3161 time-stamp authority, checked against real verifiers: `openssl ts -verify`
and pyHanko's time-stamp token validation, over a small three-level PKI built per key type
(ECDSA P-256 and RSA-3072)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator import ValidationContext

from signing.algorithms import KeyAlgorithm
from signing.keyring import Keyring
from signing.tsa import (
    POLICY_OID_DEFAULT,
    TimeStampAuthority,
    TimeStampRejected,
    build_request,
    parse_request,
    token_of,
    token_time,
)
from signing.vault import LocalVault, generate_private_key, private_key

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# Well inside the certificates' validity, which is built around the real clock because
# pyHanko validates the chain at the current time.
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
MESSAGE = "评标报告 2024-17 / bid evaluation report".encode()
SHA256 = hashlib.sha256(MESSAGE).digest()
SERIAL = 0x1F2E3D4C5B6A


@dataclass(frozen=True)
class Pki:
    root: x509.Certificate
    issuing: x509.Certificate
    tsa_cert: x509.Certificate
    tsa_key: PrivateKey
    algorithm: KeyAlgorithm

    def authority(
        self, key: PrivateKey | None = None, policy: str = POLICY_OID_DEFAULT
    ) -> TimeStampAuthority:
        return TimeStampAuthority(
            certificate=self.tsa_cert,
            chain=[self.issuing, self.root],
            private_key=key or self.tsa_key,
            policy_oid=policy,
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "EvalSign Test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: str,
    key: PrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: PrivateKey,
    *,
    path_length: int | None,
) -> x509.Certificate:
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer else _name(subject))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    is_ca = path_length is not None
    builder = builder.add_extension(
        x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True
    ).add_extension(
        x509.KeyUsage(
            digital_signature=not is_ca,
            content_commitment=not is_ca,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=is_ca,
            crl_sign=is_ca,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    if not is_ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module", params=list(KeyAlgorithm), ids=lambda a: str(a.value))
def pki(request: pytest.FixtureRequest) -> Pki:
    algorithm: KeyAlgorithm = request.param
    root_key, issuing_key, tsa_key = (generate_private_key(algorithm) for _ in range(3))
    root = _certificate("Test Root CA", root_key, None, root_key, path_length=1)
    issuing = _certificate("Test Issuing CA", issuing_key, root, root_key, path_length=0)
    tsa_cert = _certificate("Test TSA", tsa_key, issuing, issuing_key, path_length=None)
    return Pki(root, issuing, tsa_cert, tsa_key, algorithm)


@pytest.fixture(scope="module")
def pem_files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """root.pem (the trust anchor) and chain.pem (issuing CA and TSA certificate)."""
    directory = tmp_path_factory.mktemp(f"pki-{pki.algorithm.value}")
    root, chain = directory / "root.pem", directory / "chain.pem"
    root.write_bytes(pki.root.public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (pki.issuing, pki.tsa_cert))
    )
    return root, chain


def _tst_info(response: bytes) -> tsp.TSTInfo:
    return token_of(response)["content"]["encap_content_info"]["content"].parsed


def _rejection(response: bytes) -> TimeStampRejected:
    with pytest.raises(TimeStampRejected) as caught:
        token_of(response)
    return caught.value


# --- real verifiers -------------------------------------------------------------------

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")


def _openssl_verify(
    response: bytes, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "resp.der"
    path.write_bytes(response)
    return subprocess.run(
        ["openssl", "ts", "-verify", "-in", str(path), *args],
        capture_output=True,
        text=True,
        check=False,
    )


@needs_openssl
@pytest.mark.parametrize("cert_req", [True, False])
@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_openssl_verifies_the_token(
    pki: Pki, pem_files: tuple[Path, Path], tmp_path: Path, hash_name: str, cert_req: bool
) -> None:
    digest = hashlib.new(hash_name, MESSAGE).digest()
    response = pki.authority().respond(
        build_request(digest, hash_name, nonce=42, cert_req=cert_req), NOW, SERIAL
    )
    root, chain = pem_files
    # Without certReq the token carries no certificates; -untrusted supplies the TSA's.
    result = _openssl_verify(
        response, tmp_path, "-digest", digest.hex(), "-CAfile", str(root), "-untrusted", str(chain)
    )
    assert result.returncode == 0, result.stderr
    assert "Verification: OK" in result.stdout


@needs_openssl
def test_openssl_matches_the_token_with_its_request(
    pki: Pki, pem_files: tuple[Path, Path], tmp_path: Path
) -> None:
    # -queryfile makes OpenSSL compare imprint, nonce and policy with the request.
    request = build_request(SHA256, nonce=0x0123456789ABCDEF0123)
    query = tmp_path / "req.tsq"
    query.write_bytes(request)
    root, chain = pem_files
    response = pki.authority().respond(request, NOW, SERIAL)
    result = _openssl_verify(
        response, tmp_path, "-queryfile", str(query), "-CAfile", str(root), "-untrusted", str(chain)
    )
    assert result.returncode == 0, result.stderr
    assert "Verification: OK" in result.stdout


@needs_openssl
def test_openssl_refuses_a_token_for_another_digest(
    pki: Pki, pem_files: tuple[Path, Path], tmp_path: Path
) -> None:
    response = pki.authority().respond(build_request(SHA256), NOW, SERIAL)
    root, chain = pem_files
    other = hashlib.sha256(b"another report").hexdigest()
    result = _openssl_verify(
        response, tmp_path, "-digest", other, "-CAfile", str(root), "-untrusted", str(chain)
    )
    assert result.returncode != 0
    assert "Verification: OK" not in result.stdout


def _pyhanko_status(pki: Pki, response: bytes, digest: bytes) -> TimestampSignatureStatus:
    signed_data = token_of(response)["content"]
    context = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(pki.root.public_bytes(serialization.Encoding.DER))]
    )
    kwargs: dict[str, Any] = asyncio.run(
        validate_tst_signed_data(signed_data, context, expected_tst_imprint=lambda _: digest)
    )
    return TimestampSignatureStatus(**kwargs)


@pytest.mark.parametrize("hash_name", ["sha256", "sha512"])
def test_pyhanko_validates_the_token(pki: Pki, hash_name: str) -> None:
    digest = hashlib.new(hash_name, MESSAGE).digest()
    response = pki.authority().respond(build_request(digest, hash_name), NOW, SERIAL)
    status = _pyhanko_status(pki, response, digest)
    assert status.intact
    assert status.valid
    assert status.trusted, status.trust_problem_indic
    assert status.timestamp == NOW
    assert status.md_algorithm == hash_name


def test_pyhanko_sees_a_wrong_imprint(pki: Pki) -> None:
    response = pki.authority().respond(build_request(SHA256), NOW, SERIAL)
    status = _pyhanko_status(pki, response, hashlib.sha256(b"another report").digest())
    assert not status.intact


# --- token contents -------------------------------------------------------------------


def test_token_carries_what_was_asked_and_given(pki: Pki) -> None:
    nonce = 0xDEADBEEFCAFEBABE0123456789
    now = datetime(2026, 3, 1, 9, 30, 15, 987654, tzinfo=UTC)
    response = pki.authority().respond(build_request(SHA256, nonce=nonce), now, SERIAL)
    info = _tst_info(response)
    assert info["version"].native == "v1"
    assert info["policy"].dotted == POLICY_OID_DEFAULT
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    assert info["message_imprint"]["hashed_message"].native == SHA256
    assert info["serial_number"].native == SERIAL
    assert info["nonce"].native == nonce
    # Whole seconds, truncated: the real time lies within the one-second accuracy.
    assert info["gen_time"].native == now.replace(microsecond=0)
    assert token_time(response) == now.replace(microsecond=0)
    assert info["accuracy"].native == {"seconds": 1, "millis": None, "micros": None}
    assert info["ordering"].native is False
    assert info["tsa"].name == "directory_name"
    assert info["tsa"].chosen == asn1_x509.Name.load(pki.tsa_cert.subject.public_bytes())


def test_gen_time_is_converted_to_utc(pki: Pki) -> None:
    beijing = datetime(2026, 3, 2, 1, 30, 15, tzinfo=timezone(timedelta(hours=8)))
    response = pki.authority().respond(build_request(SHA256), beijing, SERIAL)
    assert token_time(response) == datetime(2026, 3, 1, 17, 30, 15, tzinfo=UTC)
    assert _tst_info(response)["gen_time"].dump().endswith(b"Z")


def test_policy_is_the_authoritys(pki: Pki) -> None:
    policy = "1.3.6.1.4.1.99999.1.2"
    authority = pki.authority(policy=policy)
    response = authority.respond(build_request(SHA256), NOW, SERIAL)
    assert _tst_info(response)["policy"].dotted == policy
    # Asking for that same policy explicitly is fine.
    request = tsp.TimeStampReq.load(build_request(SHA256))
    request["req_policy"] = policy
    response = authority.respond(request.dump(force=True), NOW, SERIAL)
    assert _tst_info(response)["policy"].dotted == policy


def test_imprint_is_copied_as_sent(pki: Pki) -> None:
    # asn1crypto writes NULL hash parameters; many clients leave them out. Either way the
    # token's messageImprint must be the request's (RFC 3161 §2.4.2).
    absent = bytes.fromhex("300b0609608648016503040201") + b"\x04\x20" + SHA256
    imprint = b"\x30" + bytes([len(absent)]) + absent
    body = b"\x02\x01\x01" + imprint + b"\x01\x01\xff"  # version 1, imprint, certReq TRUE
    request = b"\x30" + bytes([len(body)]) + body
    info = _tst_info(pki.authority().respond(request, NOW, SERIAL))
    assert info["message_imprint"].dump() == imprint
    with_null = tsp.TimeStampReq.load(build_request(SHA256))["message_imprint"].dump()
    info = _tst_info(pki.authority().respond(build_request(SHA256), NOW, SERIAL))
    assert info["message_imprint"].dump() == with_null


def test_no_nonce_asked_none_given(pki: Pki) -> None:
    response = pki.authority().respond(build_request(SHA256), NOW, SERIAL)
    assert _tst_info(response)["nonce"].native is None


def test_certificates_only_when_asked(pki: Pki) -> None:
    authority = pki.authority()
    with_certs = token_of(authority.respond(build_request(SHA256, cert_req=True), NOW, 1))
    without = token_of(authority.respond(build_request(SHA256, cert_req=False), NOW, 2))
    embedded = [c.chosen.dump() for c in with_certs["content"]["certificates"]]
    expected = [
        c.public_bytes(serialization.Encoding.DER) for c in (pki.tsa_cert, pki.issuing, pki.root)
    ]
    # CertificateSet is a SET OF: DER sorts it, so compare without order.
    assert sorted(embedded) == sorted(expected)
    assert without["content"]["certificates"].native is None


def test_signer_info_follows_rfc_5816(pki: Pki) -> None:
    response = pki.authority().respond(
        build_request(hashlib.sha384(MESSAGE).digest(), "sha384"), NOW, 3
    )
    token = token_of(response)
    signed_data = token["content"]
    assert token["content_type"].native == "signed_data"
    assert signed_data["version"].native == "v3"
    assert signed_data["encap_content_info"]["content_type"].native == "tst_info"
    signer = signed_data["signer_infos"][0]
    sid = signer["sid"].chosen
    assert signer["sid"].name == "issuer_and_serial_number"
    assert sid["serial_number"].native == pki.tsa_cert.serial_number
    assert signer["digest_algorithm"]["algorithm"].native == "sha384"
    expected_signature = "sha384_ecdsa" if pki.algorithm is KeyAlgorithm.EC_P256 else "sha384_rsa"
    assert signer["signature_algorithm"]["algorithm"].native == expected_signature

    attrs = {a["type"].native: a["values"][0] for a in signer["signed_attrs"]}
    assert set(attrs) == {
        "content_type",
        "message_digest",
        "signing_time",
        "signing_certificate_v2",
    }
    assert attrs["content_type"].native == "tst_info"
    tst_der = signed_data["encap_content_info"]["content"].contents
    assert attrs["message_digest"].native == hashlib.sha384(tst_der).digest()
    assert attrs["signing_time"].native == NOW
    ess = attrs["signing_certificate_v2"]["certs"][0]
    tsa_der = pki.tsa_cert.public_bytes(serialization.Encoding.DER)
    assert ess["hash_algorithm"]["algorithm"].native == "sha256"
    assert ess["cert_hash"].native == hashlib.sha256(tsa_der).digest()
    assert ess["issuer_serial"]["serial_number"].native == pki.tsa_cert.serial_number

    # The signature covers the attributes as a SET OF, tag 0x31, not the [0] field tag.
    der = bytearray(signer["signed_attrs"].dump())
    der[0] = 0x31
    public = pki.tsa_cert.public_key()
    signature = signer["signature"].native
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, bytes(der), ec.ECDSA(hashes.SHA384()))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, bytes(der), padding.PKCS1v15(), hashes.SHA384())


def test_response_is_der(pki: Pki) -> None:
    response = pki.authority().respond(build_request(SHA256, nonce=7), NOW, SERIAL)
    assert tsp.TimeStampResp.load(response).dump(force=True) == response
    assert tsp.TimeStampResp.load(response)["status"]["status"].native == "granted"


# --- rejections -----------------------------------------------------------------------


def test_garbage_is_bad_data_format(pki: Pki) -> None:
    for garbage in (b"", b"garbage", os.urandom(64), build_request(SHA256)[:-3]):
        rejected = _rejection(pki.authority().respond(garbage, NOW, SERIAL))
        assert rejected.failure_info == "bad_data_format"
        assert "TimeStampReq" in rejected.message


def test_rejection_response_shape(pki: Pki) -> None:
    response = pki.authority().respond(b"\x30\x00", NOW, SERIAL)
    status = tsp.PKIStatusInfo.load(core.Sequence.load(response).contents)
    assert status["status"].native == "rejection"
    assert status["fail_info"].native == {"bad_data_format"}
    assert status["status_string"].native == ["the request is not a DER TimeStampReq"]
    # No token at all, and DER: the failure bit string has no trailing zero bits.
    assert len(core.Sequence.load(response)) == 1
    assert response.endswith(bytes.fromhex("03020204"))


@pytest.mark.parametrize(
    ("name", "digest"),
    [("md5", hashlib.md5(MESSAGE).digest()), ("sha1", hashlib.sha1(MESSAGE).digest())],
)
def test_weak_hash_is_bad_alg(pki: Pki, name: str, digest: bytes) -> None:
    rejected = _rejection(pki.authority().respond(build_request(digest, name), NOW, SERIAL))
    assert rejected.failure_info == "bad_alg"
    assert name in rejected.message


def test_unknown_hash_is_bad_alg(pki: Pki) -> None:
    request = build_request(hashlib.sha3_256(MESSAGE).digest(), "sha3_256")
    assert _rejection(pki.authority().respond(request, NOW, SERIAL)).failure_info == "bad_alg"


@pytest.mark.parametrize(
    ("name", "digest"),
    [("sha256", SHA256[:20]), ("sha384", SHA256), ("sha512", SHA256 + SHA256 + b"\x00")],
)
def test_digest_of_the_wrong_length_is_bad_data_format(pki: Pki, name: str, digest: bytes) -> None:
    # Our choice: the imprint is malformed data (badDataFormat), not a refused transaction.
    rejected = _rejection(pki.authority().respond(build_request(digest, name), NOW, SERIAL))
    assert rejected.failure_info == "bad_data_format"


def test_foreign_policy_is_unaccepted(pki: Pki) -> None:
    request = tsp.TimeStampReq.load(build_request(SHA256))
    request["req_policy"] = "1.2.3.4.5"
    response = pki.authority().respond(request.dump(force=True), NOW, SERIAL)
    rejected = _rejection(response)
    assert rejected.failure_info == "unaccepted_policy"
    assert "1.2.3.4.5" in rejected.message


def test_request_extensions_are_unaccepted(pki: Pki) -> None:
    request = tsp.TimeStampReq.load(build_request(SHA256))
    request["extensions"] = [{"extn_id": "1.2.3.4", "extn_value": b"\x05\x00"}]
    rejected = _rejection(pki.authority().respond(request.dump(force=True), NOW, SERIAL))
    assert rejected.failure_info == "unaccepted_extensions"


def test_parse_request_raises_the_same_reasons() -> None:
    assert parse_request(build_request(SHA256, nonce=5))["nonce"].native == 5
    with pytest.raises(TimeStampRejected) as caught:
        parse_request(build_request(hashlib.sha1(MESSAGE).digest(), "sha1"))
    assert caught.value.failure_info == "bad_alg"
    with pytest.raises(TimeStampRejected) as caught:
        parse_request(b"\x00\x01")
    assert caught.value.failure_info == "bad_data_format"


def test_caller_errors_raise(pki: Pki) -> None:
    authority = pki.authority()
    with pytest.raises(ValueError, match="timezone"):
        authority.respond(build_request(SHA256), datetime(2026, 3, 1, 9, 0), SERIAL)
    for serial in (0, -1, 1 << 160):
        with pytest.raises(ValueError, match="serial"):
            authority.respond(build_request(SHA256), NOW, serial)


def test_misconfigured_authority_is_refused(pki: Pki) -> None:
    with pytest.raises(ValueError, match="does not belong"):
        pki.authority(key=generate_private_key(pki.algorithm))
    # RFC 3161 §2.3: the EKU must be timeStamping alone, in a critical extension.
    for eku, critical in [
        (None, False),
        ([ExtendedKeyUsageOID.TIME_STAMPING], False),
        ([ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.CODE_SIGNING], True),
    ]:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name("Not a TSA"))
            .issuer_name(_name("Not a TSA"))
            .public_key(pki.tsa_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW)
            .not_valid_after(NOW + timedelta(days=1))
        )
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=critical)
        certificate = builder.sign(pki.tsa_key, hashes.SHA256())
        with pytest.raises(ValueError, match=r"extended key usage|EKU"):
            TimeStampAuthority(certificate, [], pki.tsa_key, POLICY_OID_DEFAULT)
    with pytest.raises(ValueError):
        pki.authority(policy="not an OID")


# --- keys that can only sign ----------------------------------------------------------


class _SignOnlyKey:
    """A key that can sign and tell its public key, like an HSM handle; nothing else."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self.calls = 0

    def sign(self, *args: Any) -> bytes:
        self.calls += 1
        return self._key.sign(*args)

    def public_key(self) -> Any:
        return self._key.public_key()


def test_a_sign_only_key_works(pki: Pki) -> None:
    key = _SignOnlyKey(pki.tsa_key)
    authority = pki.authority(key=key)  # type: ignore[arg-type]
    response = authority.respond(build_request(SHA256, nonce=9), NOW, SERIAL)
    assert key.calls == 1
    assert _pyhanko_status(pki, response, SHA256).trusted


@needs_openssl
def test_a_vault_key_works(pki: Pki, pem_files: tuple[Path, Path], tmp_path: Path) -> None:
    vault = LocalVault(Keyring(os.urandom(32)))
    ref = vault.import_key("tsa-key", pki.tsa_key)
    authority = pki.authority(key=private_key(vault, ref))
    response = authority.respond(build_request(SHA256, nonce=11), NOW, SERIAL)
    root, chain = pem_files
    result = _openssl_verify(
        response, tmp_path, "-digest", SHA256.hex(), "-CAfile", str(root), "-untrusted", str(chain)
    )
    assert result.returncode == 0, result.stderr
    assert _pyhanko_status(pki, response, SHA256).trusted


class _BrokenVault:
    """A vault that is down, or (worse) answers with a signature that does not verify."""

    backend = "broken"

    def __init__(self, answer: bytes | None) -> None:
        self._answer = answer

    def generate_key(self, key_id: str, algorithm: KeyAlgorithm) -> Any:
        raise NotImplementedError

    def sign_digest(self, key: Any, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        if self._answer is None:
            raise ConnectionError("HSM unreachable")
        return self._answer


@pytest.mark.parametrize(
    ("answer", "logged"),
    [(None, "HSM unreachable"), (bytes(64), "InvalidSignature")],
    ids=["unreachable", "bad-signature"],
)
def test_signing_failure_is_a_system_failure(
    pki: Pki, caplog: pytest.LogCaptureFixture, answer: bytes | None, logged: str
) -> None:
    ref = LocalVault(Keyring(os.urandom(32))).import_key("tsa-key", pki.tsa_key)
    authority = pki.authority(key=private_key(_BrokenVault(answer), ref))
    rejected = _rejection(authority.respond(build_request(SHA256), NOW, SERIAL))
    assert rejected.failure_info == "system_failure"
    assert logged in caplog.text
