"""Revocation status for outside tools: CRLs (RFC 5280) and OCSP responses (RFC 6960).

The database decides what is revoked; these functions only encode and sign it. A suspended
credential appears with reason certificateHold, which is lifted when the expert returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp

from signing.certificates import PrivateKey


class RevocationReason(StrEnum):
    """The RFC 5280 reasons an operator can give (certificateHold is set by suspension)."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"
    CERTIFICATE_HOLD = "certificateHold"

    @property
    def flag(self) -> x509.ReasonFlags:
        return {
            "unspecified": x509.ReasonFlags.unspecified,
            "keyCompromise": x509.ReasonFlags.key_compromise,
            "affiliationChanged": x509.ReasonFlags.affiliation_changed,
            "superseded": x509.ReasonFlags.superseded,
            "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
            "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
            "certificateHold": x509.ReasonFlags.certificate_hold,
        }[self.value]


@dataclass(frozen=True)
class RevokedEntry:
    serial_number: int
    revoked_at: datetime
    reason: RevocationReason


def build_crl(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    revoked: Sequence[RevokedEntry],
    number: int,
    this_update: datetime,
    next_update: datetime,
) -> bytes:
    """A DER CRL of the issuer, signed by its key."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    for entry in revoked:
        item = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial_number)
            .revocation_date(entry.revoked_at)
        )
        if entry.reason is not RevocationReason.UNSPECIFIED:
            # RFC 5280 5.3.1: "unspecified" should be expressed by omitting the reason.
            item = item.add_extension(x509.CRLReason(entry.reason.flag), critical=False)
        builder = builder.add_revoked_certificate(item.build())
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class CertificateStatus:
    """What the database says of one serial number of one issuer."""

    certificate: x509.Certificate
    revoked: RevokedEntry | None


@dataclass(frozen=True)
class Responder:
    """An issuing CA answering for its own certificates (RFC 6960 2.6, CA-signed)."""

    issuer: x509.Certificate
    key: PrivateKey


def _matches(request: ocsp.OCSPRequest, issuer: x509.Certificate) -> bool:
    algorithm = request.hash_algorithm
    name_hash = hashes.Hash(algorithm)
    name_hash.update(issuer.subject.public_bytes())
    key_hash = hashes.Hash(algorithm)
    key_hash.update(_public_key_bits(issuer))
    return (
        name_hash.finalize() == request.issuer_name_hash
        and key_hash.finalize() == request.issuer_key_hash
    )


def _public_key_bits(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents, which OCSP's issuerKeyHash is taken over:
    the EC point, or the PKCS#1 RSAPublicKey."""
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    raise ValueError("unsupported issuer key type")


def _failure(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )


def respond_ocsp(
    request_der: bytes,
    responders: Sequence[Responder],
    lookup: Callable[[Responder, int], CertificateStatus | None],
    now: datetime,
    validity: timedelta,
) -> bytes:
    """A DER OCSP response: signed good/revoked/unknown for our issuers, otherwise the
    unsigned error statuses RFC 6960 defines (malformed request, unauthorized)."""
    try:
        request = ocsp.load_der_ocsp_request(request_der)
        algorithm = request.hash_algorithm
    except (ValueError, NotImplementedError, TypeError):
        # cryptography refuses multi-certificate requests too; those are rare in practice.
        return _failure(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    responder = next((r for r in responders if _matches(request, r.issuer)), None)
    if responder is None:
        return _failure(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    status = lookup(responder, request.serial_number)
    builder = ocsp.OCSPResponseBuilder()
    if status is None:
        # A serial this CA never issued: "unknown" is the honest answer for it.
        builder = builder.add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number,
            algorithm=algorithm,
            cert_status=ocsp.OCSPCertStatus.UNKNOWN,
            this_update=now,
            next_update=now + validity,
            revocation_time=None,
            revocation_reason=None,
        )
    else:
        revoked = status.revoked
        builder = builder.add_response(
            cert=status.certificate,
            issuer=responder.issuer,
            algorithm=algorithm,
            cert_status=ocsp.OCSPCertStatus.GOOD
            if revoked is None
            else ocsp.OCSPCertStatus.REVOKED,
            this_update=now,
            next_update=now + validity,
            revocation_time=None if revoked is None else revoked.revoked_at,
            revocation_reason=None if revoked is None else revoked.reason.flag,
        )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder.issuer)
    for extension in request.extensions:
        if isinstance(extension.value, x509.OCSPNonce):
            builder = builder.add_extension(extension.value, critical=False)
    response = builder.sign(responder.key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)
