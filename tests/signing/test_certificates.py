"""Certificate profiles and revocation encoding, without a database: a real root, issuing
CA and end-entity chain that pyHanko's validator accepts, CRLs and OCSP answers that
`cryptography` parses back to what was put in."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import RevokedError

from signing import certificates as profiles
from signing.revocation import (
    CertificateStatus,
    Responder,
    RevocationReason,
    RevokedEntry,
    build_crl,
    respond_ocsp,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def chain() -> dict[str, object]:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = profiles.make_root_ca(profiles.ca_name("某中心", "Root CA"), root_key, NOW, 3650)
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = profiles.make_issuing_ca(
        profiles.ca_name("某中心", "Issuing CA"),
        issuing_key.public_key(),
        root,
        root_key,
        profiles.pki_endpoints("https://evalsign.example", "root-id"),
        NOW,
        # Asks for longer than the root lives: capped at the root's end.
        7300,
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = profiles.make_end_entity(
        profiles.Profile.DOCUMENT_SIGNING,
        profiles.expert_subject("王喆", profiles.pseudonym("c", "e"), "某中心"),
        leaf_key.public_key(),
        issuing,
        issuing_key,
        profiles.pki_endpoints("https://evalsign.example", "issuing-id"),
        NOW,
        730,
    )
    return {
        "root": root,
        "root_key": root_key,
        "issuing": issuing,
        "issuing_key": issuing_key,
        "leaf": leaf,
    }


def asn1(certificate: object) -> asn1_x509.Certificate:
    assert isinstance(certificate, x509.Certificate)
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


def validate(chain: dict[str, object], crls: list[bytes]) -> object:
    context = ValidationContext(
        trust_roots=[asn1(chain["root"])],
        crls=crls,
        allow_fetching=False,
        revocation_mode="hard-fail",
        moment=NOW + timedelta(days=1),
    )
    validator = CertificateValidator(
        asn1(chain["leaf"]), intermediate_certs=[asn1(chain["issuing"])], validation_context=context
    )
    return asyncio.run(
        validator.async_validate_usage(
            {"digital_signature", "non_repudiation"}, extended_key_usage={"1.3.6.1.5.5.7.3.36"}
        )
    )


def crl(chain: dict[str, object], issuer: str, revoked: list[RevokedEntry], number: int) -> bytes:
    certificate, key = chain[issuer], chain[f"{issuer}_key"]
    assert isinstance(certificate, x509.Certificate)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return build_crl(certificate, key, revoked, number, NOW, NOW + timedelta(days=7))


def test_the_chain_validates_and_a_revoked_leaf_does_not(chain: dict[str, object]) -> None:
    root_crl = crl(chain, "root", [], 1)
    assert validate(chain, [root_crl, crl(chain, "issuing", [], 1)]) is not None
    leaf = chain["leaf"]
    assert isinstance(leaf, x509.Certificate)
    revoked = RevokedEntry(leaf.serial_number, NOW, RevocationReason.KEY_COMPROMISE)
    with pytest.raises(RevokedError):
        validate(chain, [root_crl, crl(chain, "issuing", [revoked], 2)])


def test_validity_never_outlives_the_issuer(chain: dict[str, object]) -> None:
    root, issuing = chain["root"], chain["issuing"]
    assert isinstance(root, x509.Certificate) and isinstance(issuing, x509.Certificate)
    assert issuing.not_valid_after_utc == root.not_valid_after_utc
    assert issuing.not_valid_before_utc == NOW - profiles.BACKDATE


def test_pseudonyms_are_stable_and_per_center() -> None:
    assert profiles.pseudonym("center-1", "expert-1") == profiles.pseudonym("center-1", "expert-1")
    assert profiles.pseudonym("center-1", "expert-1") != profiles.pseudonym("center-2", "expert-1")
    assert profiles.pseudonym("c", "e").startswith("EVS-")


def test_unspecified_reason_is_left_out_and_hold_is_written(chain: dict[str, object]) -> None:
    entries = [
        RevokedEntry(11, NOW, RevocationReason.UNSPECIFIED),
        RevokedEntry(12, NOW, RevocationReason.CERTIFICATE_HOLD),
    ]
    parsed = x509.load_der_x509_crl(crl(chain, "issuing", entries, 7))
    first = parsed.get_revoked_certificate_by_serial_number(11)
    second = parsed.get_revoked_certificate_by_serial_number(12)
    assert first is not None and second is not None
    assert len(first.extensions) == 0
    assert second.extensions.get_extension_for_class(x509.CRLReason).value.reason is (
        x509.ReasonFlags.certificate_hold
    )
    assert parsed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7


def test_ocsp_answers_from_the_lookup(chain: dict[str, object]) -> None:
    leaf, issuing, key = chain["leaf"], chain["issuing"], chain["issuing_key"]
    assert isinstance(leaf, x509.Certificate) and isinstance(issuing, x509.Certificate)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    responder = Responder(issuing, key)
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuing, hashes.SHA1()).build()
    revoked = RevokedEntry(leaf.serial_number, NOW, RevocationReason.AFFILIATION_CHANGED)
    answer = respond_ocsp(
        request.public_bytes(Encoding.DER),
        [responder],
        lambda _, serial: (
            CertificateStatus(leaf, revoked) if serial == leaf.serial_number else None
        ),
        NOW,
        timedelta(hours=1),
    )
    parsed = ocsp.load_der_ocsp_response(answer)
    assert parsed.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert parsed.revocation_reason is x509.ReasonFlags.affiliation_changed
    assert parsed.hash_algorithm.name == "sha1"  # answered in the request's own hash
