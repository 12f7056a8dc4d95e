"""X.509 profiles of a center's PKI: root CA, issuing CA, and the certificates the issuing
CA signs (an expert's document-signing credential, the time-stamping certificate and the
audit-checkpoint certificate). Pure functions over `cryptography` objects; the issuer's
key may be a vault adapter (signing.vault.private_key)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

# RFC 9336: id-kp-documentSigning.
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
# EvalSign's own purpose for the key that signs audit-log checkpoints (a UUID OID, 2.25).
AUDIT_CHECKPOINT_SIGNING = x509.ObjectIdentifier("2.25.130468409214380598423906405347815651489")
# Certificates may start a little before they were made, so a phone's slow clock accepts them.
BACKDATE = timedelta(minutes=5)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class Profile(StrEnum):
    DOCUMENT_SIGNING = "expert"
    TIME_STAMPING = "tsa"
    AUDIT_CHECKPOINT = "audit-checkpoint"
    ORGANIZATION_SEAL = "seal"


@dataclass(frozen=True)
class Endpoints:
    """Where outside tools fetch an issuer's CRL, certificate and OCSP answers."""

    crl_url: str
    issuer_cert_url: str
    ocsp_url: str | None = None


def pki_endpoints(public_url: str, authority_id: str) -> Endpoints:
    base = public_url.rstrip("/")
    return Endpoints(
        crl_url=f"{base}/pki/{authority_id}/crl",
        issuer_cert_url=f"{base}/pki/{authority_id}/cert",
        ocsp_url=f"{base}/pki/ocsp",
    )


def pseudonym(center_id: str, expert_id: str) -> str:
    """The serialNumber attribute of an expert's certificate: stable for the expert in this
    center, never derived from the ID number, meaningless outside the center's records."""
    digest = hashlib.sha256(f"evalsign/pseudonym/{center_id}/{expert_id}".encode()).hexdigest()
    return f"EVS-{digest[:20].upper()}"


def signature_hash(key: PrivateKey) -> hashes.SHA256:
    # SHA-256 for both key types: what every validator and the national profiles accept.
    return hashes.SHA256()


def _name(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes if value])


def ca_name(center_name: str, label: str) -> x509.Name:
    return _name(
        (NameOID.COUNTRY_NAME, "CN"),
        (NameOID.ORGANIZATION_NAME, center_name),
        (NameOID.COMMON_NAME, f"{center_name} {label}"),
    )


def with_key_ids(
    builder: x509.CertificateBuilder, public_key: PublicKey, issuer_public: PublicKey
) -> x509.CertificateBuilder:
    return builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
    ).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False
    )


def with_validity(
    builder: x509.CertificateBuilder, now: datetime, days: int, not_after_cap: datetime | None
) -> x509.CertificateBuilder:
    not_after = now + timedelta(days=days)
    if not_after_cap is not None:
        # A certificate never outlives its issuer: validators would reject it then.
        not_after = min(not_after, not_after_cap)
    return builder.not_valid_before(now - BACKDATE).not_valid_after(not_after)


def _ca_usage(builder: x509.CertificateBuilder, path_length: int | None) -> x509.CertificateBuilder:
    return builder.add_extension(
        x509.BasicConstraints(ca=True, path_length=path_length), critical=True
    ).add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )


def with_distribution(
    builder: x509.CertificateBuilder, endpoints: Endpoints
) -> x509.CertificateBuilder:
    builder = builder.add_extension(
        x509.CRLDistributionPoints(
            [
                x509.DistributionPoint(
                    full_name=[x509.UniformResourceIdentifier(endpoints.crl_url)],
                    relative_name=None,
                    reasons=None,
                    crl_issuer=None,
                )
            ]
        ),
        critical=False,
    )
    access = [
        x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS,
            x509.UniformResourceIdentifier(endpoints.issuer_cert_url),
        )
    ]
    if endpoints.ocsp_url:
        access.insert(
            0,
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(endpoints.ocsp_url),
            ),
        )
    return builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)


def make_root_ca(subject: x509.Name, key: PrivateKey, now: datetime, days: int) -> x509.Certificate:
    builder = x509.CertificateBuilder(
        issuer_name=subject,
        subject_name=subject,
        public_key=key.public_key(),
        serial_number=x509.random_serial_number(),
    )
    builder = with_validity(builder, now, days, None)
    builder = _ca_usage(builder, path_length=1)
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
    )
    return builder.sign(key, signature_hash(key))


def make_issuing_ca(
    subject: x509.Name,
    public_key: PublicKey,
    root: x509.Certificate,
    root_key: PrivateKey,
    endpoints: Endpoints,
    now: datetime,
    days: int,
) -> x509.Certificate:
    builder = x509.CertificateBuilder(
        issuer_name=root.subject,
        subject_name=subject,
        public_key=public_key,
        serial_number=x509.random_serial_number(),
    )
    builder = with_validity(builder, now, days, root.not_valid_after_utc)
    builder = _ca_usage(builder, path_length=0)
    builder = with_key_ids(builder, public_key, root_key.public_key())
    # The root has no OCSP responder; its CRL lists a revoked issuing CA.
    builder = with_distribution(builder, Endpoints(endpoints.crl_url, endpoints.issuer_cert_url))
    return builder.sign(root_key, signature_hash(root_key))


def make_end_entity(
    profile: Profile,
    subject: x509.Name,
    public_key: PublicKey,
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    endpoints: Endpoints,
    now: datetime,
    days: int,
    serial_number: int | None = None,
) -> x509.Certificate:
    builder = x509.CertificateBuilder(
        issuer_name=issuer.subject,
        subject_name=subject,
        public_key=public_key,
        serial_number=serial_number or x509.random_serial_number(),
    )
    builder = with_validity(builder, now, days, issuer.not_valid_after_utc)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
    # Signatures with these keys are commitments (nonRepudiation / contentCommitment).
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=True,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    # Document signers carry emailProtection beside documentSigning: NSS (poppler, Okular,
    # Evince, LibreOffice) checks a PDF signer for the e-mail signer usage and refuses an
    # EKU without it, and Adobe's documented signer EKUs include it too.
    usages: Sequence[x509.ObjectIdentifier] = {
        Profile.DOCUMENT_SIGNING: [DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION],
        Profile.ORGANIZATION_SEAL: [DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION],
        Profile.TIME_STAMPING: [ExtendedKeyUsageOID.TIME_STAMPING],
        Profile.AUDIT_CHECKPOINT: [AUDIT_CHECKPOINT_SIGNING],
    }[profile]
    # RFC 3161 requires the time-stamping EKU to be the only one, and critical.
    builder = builder.add_extension(
        x509.ExtendedKeyUsage(usages), critical=profile is Profile.TIME_STAMPING
    )
    builder = with_key_ids(builder, public_key, issuer_key.public_key())
    builder = with_distribution(builder, endpoints)
    return builder.sign(issuer_key, signature_hash(issuer_key))


def expert_subject(name: str, pseudonym_: str, center_name: str) -> x509.Name:
    return _name(
        (NameOID.COUNTRY_NAME, "CN"),
        (NameOID.ORGANIZATION_NAME, center_name),
        (NameOID.COMMON_NAME, name),
        (NameOID.SERIAL_NUMBER, pseudonym_),
    )


def organization_subject(unit_name: str, credit_code: str, seal_purpose: str) -> x509.Name:
    """An organization seal's subject: the unit (O), the seal (CN), and the credit code as
    organizationIdentifier in the ETSI EN 319 412-1 form (NTR: national trade register)."""
    return _name(
        (NameOID.COUNTRY_NAME, "CN"),
        (NameOID.ORGANIZATION_NAME, unit_name),
        (NameOID.ORGANIZATION_IDENTIFIER, f"NTRCN-{credit_code}"),
        (NameOID.COMMON_NAME, f"{unit_name} {seal_purpose}"[:64]),
    )


def service_subject(center_name: str, label: str) -> x509.Name:
    return ca_name(center_name, label)


def dn(name: x509.Name) -> str:
    """RFC 4514 text of a name, with serialNumber spelled out (not as 2.5.4.5)."""
    return name.rfc4514_string(
        {
            NameOID.SERIAL_NUMBER: "serialNumber",
            NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
        }
    )


def serial_hex(certificate: x509.Certificate) -> str:
    return format(certificate.serial_number, "x")


def is_issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
