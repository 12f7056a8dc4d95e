"""What signing and validation share: certificates in both libraries' types and the
revocation material (CRLs, OCSP responses) handed in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization


@dataclass(frozen=True)
class RevocationMaterial:
    crls: Sequence[bytes]
    ocsps: Sequence[bytes] = ()


def to_asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def to_crypto(certificate: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(bytes(certificate.dump()))


# --- validation contexts -------------------------------------------------------------------


def load_crls(crls: Iterable[bytes]) -> list[asn1_crl.CertificateList]:
    return [asn1_crl.CertificateList.load(c) for c in crls]


def load_ocsps(ocsps: Iterable[bytes]) -> list[asn1_ocsp.OCSPResponse]:
    return [asn1_ocsp.OCSPResponse.load(o) for o in ocsps]
