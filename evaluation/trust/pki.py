"""A center's PKI: its root and issuing CA, the time-stamping and audit-checkpoint
certificates, the trust list, and the revocation and time-stamp services built on them.

Every key is generated inside the vault; this module keeps only certificates and
`vault_keys` references. CRLs are stored: reissued on every revocation and whenever half of
a CRL's validity has passed when someone asks for it, so several replicas need no timer.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, NotFound
from evaluation.trust.credential_states import CredentialStatus
from models.base import new_id
from models.clock import Clock
from models.settings import Settings
from models.tables import Authority, Center, IssuedCertificate, TrustAnchor, VaultKey
from signing import certificates as profiles
from signing.algorithms import KeyAlgorithm
from signing.certificates import Profile
from signing.revocation import (
    CertificateStatus,
    Responder,
    RevocationReason,
    RevokedEntry,
    build_crl,
    respond_ocsp,
)
from signing.tsa import POLICY_OID_DEFAULT, TimeStampAuthority
from signing.vault import KeyRef, Vault, private_key


class PkiNotReady(DomainError):
    status = 409
    code = "pki-not-initialized"
    title = "This center has no certification authority yet; run `evalsign init`"


class CertificateRejected(DomainError):
    status = 422
    code = "certificate-rejected"
    title = "The certificate cannot be used for this"


class DuplicateTrustAnchor(DomainError):
    status = 409
    code = "duplicate-trust-anchor"
    title = "This root is already on the center's trust list"


@dataclass(frozen=True)
class PkiPolicy:
    algorithm: KeyAlgorithm
    public_url: str
    root_days: int
    issuing_days: int
    credential_days: int
    service_days: int
    crl_validity: timedelta
    tsa_policy_oid: str = POLICY_OID_DEFAULT

    @classmethod
    def from_settings(cls, settings: Settings) -> PkiPolicy:
        return cls(
            algorithm=KeyAlgorithm(settings.pki_algorithm),
            public_url=settings.public_url,
            root_days=settings.pki_root_validity_days,
            issuing_days=settings.pki_issuing_validity_days,
            credential_days=settings.pki_credential_validity_days,
            service_days=settings.pki_service_validity_days,
            crl_validity=timedelta(hours=settings.pki_crl_validity_hours),
        )


def load_certificate(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def fingerprint(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def create_key(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    vault: Vault,
    purpose: str,
    algorithm: KeyAlgorithm,
) -> VaultKey:
    """A key pair generated inside the vault, recorded (wrapped or by token id) and audited."""
    key_id = new_id()
    ref = vault.generate_key(key_id, algorithm)
    row = VaultKey(
        id=key_id,
        center_id=caller.center_id,
        purpose=purpose,
        backend=ref.backend,
        algorithm=ref.algorithm.value,
        public_key_der=ref.public_key_der,
        wrapped_key=ref.wrapped_key,
        token_key_id=ref.token_key_id,
        created_at=clock.now(),
    )
    db.add(row)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.VAULT_KEY_GENERATED,
        "vault_key",
        key_id,
        {"purpose": purpose, "backend": ref.backend, "algorithm": ref.algorithm.value},
    )
    return row


def key_of(db: Session, key_id: str) -> KeyRef:
    row = db.get(VaultKey, key_id)
    if row is None:
        raise NotFound(f"no vault key {key_id}")
    return KeyRef.of(row)


def signer_of(db: Session, vault: Vault, authority: Authority) -> profiles.PrivateKey:
    return private_key(vault, key_of(db, authority.key_id))


@dataclass(frozen=True)
class CenterPki:
    root: Authority
    issuing: Authority
    tsa: IssuedCertificate
    audit_checkpoint: IssuedCertificate
    created: bool


def establish_center_pki(
    db: Session, clock: Clock, vault: Vault, policy: PkiPolicy, center: Center, actor: str
) -> CenterPki:
    """Create the center's root CA, issuing CA, TSA and audit-checkpoint certificates, or
    return them when they exist (idempotent: `init` may run again)."""
    existing = db.execute(
        select(Authority).where(
            Authority.center_id == center.id,
            Authority.kind == "root",
            Authority.external.is_(False),
        )
    ).scalar_one_or_none()
    if existing is not None:
        return CenterPki(
            existing,
            active_issuing(db, center.id),
            service_certificate(db, center.id, Profile.TIME_STAMPING),
            service_certificate(db, center.id, Profile.AUDIT_CHECKPOINT),
            created=False,
        )
    caller = audit.Caller(center.id, actor)
    now = clock.now()

    root_key = create_key(db, caller, clock, vault, "root-ca", policy.algorithm)
    root_id = new_id()
    root_signer = private_key(vault, KeyRef.of(root_key))
    root_cert = profiles.make_root_ca(
        profiles.ca_name(center.name, "Root CA"), root_signer, now, policy.root_days
    )
    root = _add_authority(db, root_id, center.id, "root", root_cert, root_key.id, now)
    db.add(
        TrustAnchor(
            center_id=center.id,
            name=profiles.dn(root_cert.subject),
            fingerprint=fingerprint(root_cert),
            certificate_der=der(root_cert),
            external=False,
            added_at=now,
        )
    )

    issuing_key = create_key(db, caller, clock, vault, "issuing-ca", policy.algorithm)
    issuing_cert = profiles.make_issuing_ca(
        profiles.ca_name(center.name, "Issuing CA"),
        KeyRef.of(issuing_key).public_key(),
        root_cert,
        root_signer,
        profiles.pki_endpoints(policy.public_url, root_id),
        now,
        policy.issuing_days,
    )
    issuing = _add_authority(db, new_id(), center.id, "issuing", issuing_cert, issuing_key.id, now)
    for authority in (root, issuing):
        audit.record(
            db,
            caller,
            clock,
            Action.PKI_ROOT_CA_CREATED
            if authority.kind == "root"
            else Action.PKI_ISSUING_CA_CREATED,
            "authority",
            authority.id,
            {
                "subject": authority.name,
                "fingerprint": fingerprint(load_certificate(authority.certificate_der)),
            },
        )
    tsa = issue_service_certificate(db, caller, clock, vault, policy, center, Profile.TIME_STAMPING)
    checkpoint = issue_service_certificate(
        db, caller, clock, vault, policy, center, Profile.AUDIT_CHECKPOINT
    )
    for authority in (root, issuing):
        refresh_crl(db, clock, vault, policy, authority)
    return CenterPki(root, issuing, tsa, checkpoint, created=True)


def _add_authority(
    db: Session,
    authority_id: str,
    center_id: str,
    kind: str,
    certificate: x509.Certificate,
    key_id: str,
    now: datetime,
    *,
    external: bool = False,
    chain: list[x509.Certificate] | None = None,
) -> Authority:
    authority = Authority(
        id=authority_id,
        center_id=center_id,
        kind=kind,
        name=profiles.dn(certificate.subject),
        external=external,
        status="active",
        certificate_der=der(certificate),
        chain_der=[der(c).hex() for c in chain or []],
        key_id=key_id,
        crl_number=0,
        created_at=now,
    )
    db.add(authority)
    db.flush()
    return authority


_SERVICE_LABELS = {
    Profile.TIME_STAMPING: "Time-Stamping Authority",
    Profile.AUDIT_CHECKPOINT: "Audit Checkpoint Signer",
}


def issue_service_certificate(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    vault: Vault,
    policy: PkiPolicy,
    center: Center,
    profile: Profile,
) -> IssuedCertificate:
    key = create_key(db, caller, clock, vault, profile.value, policy.algorithm)
    return issue_certificate(
        db,
        caller,
        clock,
        vault,
        policy,
        profile,
        profiles.service_subject(center.name, _SERVICE_LABELS[profile]),
        key,
        policy.service_days,
    )


def issue_certificate(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    vault: Vault,
    policy: PkiPolicy,
    profile: Profile,
    subject: x509.Name,
    key: VaultKey,
    days: int,
    expert_id: str | None = None,
    unit_id: str | None = None,
) -> IssuedCertificate:
    """Sign a certificate for a vault key with the center's active issuing CA."""
    issuing = active_issuing(db, caller.center_id)
    issuer_cert = load_certificate(issuing.certificate_der)
    now = clock.now()
    certificate = profiles.make_end_entity(
        profile,
        subject,
        KeyRef.of(key).public_key(),
        issuer_cert,
        signer_of(db, vault, issuing),
        profiles.pki_endpoints(policy.public_url, issuing.id),
        now,
        days,
    )
    row = IssuedCertificate(
        id=new_id(),
        center_id=caller.center_id,
        authority_id=issuing.id,
        purpose=profile.value,
        expert_id=expert_id,
        unit_id=unit_id,
        key_id=key.id,
        serial=profiles.serial_hex(certificate),
        subject=profiles.dn(subject),
        certificate_der=der(certificate),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        status=CredentialStatus.VALID.value,
        created_at=now,
    )
    db.add(row)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.CERTIFICATE_ISSUED,
        "certificate",
        row.id,
        {
            "purpose": profile.value,
            "expert_id": expert_id,
            **({"unit_id": unit_id} if unit_id else {}),
            "serial": row.serial,
            "subject": row.subject,
            "issuer": issuing.id,
            "key_id": key.id,
            "not_after": row.not_after.isoformat(),
        },
    )
    return row


def active_issuing(db: Session, center_id: str) -> Authority:
    authority = db.execute(
        select(Authority)
        .where(
            Authority.center_id == center_id,
            Authority.kind == "issuing",
            Authority.status == "active",
        )
        .order_by(Authority.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if authority is None:
        raise PkiNotReady("this center has no active issuing CA; run `evalsign init`")
    return authority


def service_certificate(db: Session, center_id: str, profile: Profile) -> IssuedCertificate:
    row = db.execute(
        select(IssuedCertificate)
        .where(
            IssuedCertificate.center_id == center_id,
            IssuedCertificate.purpose == profile.value,
            IssuedCertificate.status == CredentialStatus.VALID,
        )
        .order_by(IssuedCertificate.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if row is None:
        raise PkiNotReady(f"this center has no {profile.value} certificate; run `evalsign init`")
    return row


def get_authority(db: Session, authority_id: str) -> Authority:
    """An authority by id, for the public PKI endpoints (they serve every center)."""
    authority = db.get(Authority, authority_id)
    if authority is None:
        raise NotFound(f"no certification authority {authority_id}")
    return authority


def list_authorities(db: Session, center_id: str) -> list[Authority]:
    return list(
        db.execute(
            select(Authority)
            .where(Authority.center_id == center_id)
            .order_by(Authority.created_at, Authority.id)
        ).scalars()
    )


def chain_of(db: Session, authority: Authority) -> list[x509.Certificate]:
    """The authority's certificate and those above it, up to (and including) its root."""
    chain = [load_certificate(authority.certificate_der)]
    if authority.external:
        chain.extend(load_certificate(bytes.fromhex(item)) for item in authority.chain_der)
        return chain
    if authority.kind == "issuing":
        chain.append(load_certificate(center_root(db, authority.center_id).certificate_der))
    return chain


def credential_chain(db: Session, row: IssuedCertificate) -> list[x509.Certificate]:
    """A credential's issuers up to the root: its authority's, or for a credential at a
    remote signing provider, the chain the provider presented when it was checked."""
    if row.chain_der is not None:
        return [load_certificate(bytes.fromhex(item)) for item in row.chain_der]
    authority = db.get(Authority, row.authority_id)
    assert authority is not None
    return chain_of(db, authority)


def center_root(db: Session, center_id: str) -> Authority:
    """The center's own root CA."""
    root = db.execute(
        select(Authority).where(
            Authority.center_id == center_id,
            Authority.kind == "root",
            Authority.external.is_(False),
        )
    ).scalar_one_or_none()
    if root is None:
        raise PkiNotReady("this center has no root CA; run `evalsign init`")
    return root


# ---- revocation ----------------------------------------------------------------------


def _revoked_entry(row: IssuedCertificate) -> RevokedEntry | None:
    """How a certificate appears in the CRL and OCSP: revoked, on hold, or not at all."""
    if row.status == CredentialStatus.REVOKED:
        assert row.revoked_at is not None
        reason = RevocationReason(row.revocation_reason or "unspecified")
        return RevokedEntry(int(row.serial, 16), row.revoked_at, reason)
    if row.status == CredentialStatus.SUSPENDED:
        assert row.suspended_at is not None
        return RevokedEntry(
            int(row.serial, 16), row.suspended_at, RevocationReason.CERTIFICATE_HOLD
        )
    return None


def _revoked_entries(db: Session, authority: Authority) -> list[RevokedEntry]:
    rows = db.execute(
        select(IssuedCertificate).where(
            IssuedCertificate.authority_id == authority.id,
            IssuedCertificate.status.in_((CredentialStatus.REVOKED, CredentialStatus.SUSPENDED)),
        )
    ).scalars()
    return [entry for row in rows if (entry := _revoked_entry(row)) is not None]


def refresh_crl(
    db: Session, clock: Clock, vault: Vault, policy: PkiPolicy, authority: Authority
) -> bytes:
    """Issue the authority's next CRL now (after a revocation, or when the last one ages)."""
    # Serialize issuers of the same CRL: the CRL number must only grow.
    db.execute(
        update(Authority)
        .where(Authority.id == authority.id)
        .values(crl_number=Authority.crl_number + 1)
    )
    db.refresh(authority)
    now = clock.now()
    crl = build_crl(
        load_certificate(authority.certificate_der),
        signer_of(db, vault, authority),
        _revoked_entries(db, authority),
        authority.crl_number,
        now,
        now + policy.crl_validity,
    )
    authority.crl_der = crl
    authority.crl_next_update = now + policy.crl_validity
    db.flush()
    return crl


def crl_is_current(policy: PkiPolicy, authority: Authority, now: datetime) -> bool:
    """Whether the stored CRL may still be served: less than half its validity has passed."""
    return (
        authority.crl_der is not None
        and authority.crl_next_update is not None
        and now < authority.crl_next_update - policy.crl_validity / 2
    )


def current_crl(
    db: Session, clock: Clock, vault: Vault, policy: PkiPolicy, authority: Authority
) -> bytes:
    """The stored CRL, reissued first when half of its validity has passed."""
    if not crl_is_current(policy, authority, clock.now()):
        return refresh_crl(db, clock, vault, policy, authority)
    assert authority.crl_der is not None
    return authority.crl_der


def answer_ocsp(
    db: Session, clock: Clock, vault: Vault, policy: PkiPolicy, request_der: bytes
) -> bytes:
    """RFC 6960 answer for any certificate an issuing CA of this service issued."""
    authorities = list(db.execute(select(Authority).where(Authority.kind == "issuing")).scalars())
    pairs = [
        (Responder(load_certificate(a.certificate_der), signer_of(db, vault, a)), a)
        for a in authorities
    ]

    def lookup(responder: Responder, serial_number: int) -> CertificateStatus | None:
        authority = next(a for r, a in pairs if r is responder)
        row = db.execute(
            select(IssuedCertificate).where(
                IssuedCertificate.authority_id == authority.id,
                IssuedCertificate.serial == format(serial_number, "x"),
            )
        ).scalar_one_or_none()
        if row is None:
            return None
        # The row just read says whether it is revoked; no need to rebuild the whole CRL.
        return CertificateStatus(load_certificate(row.certificate_der), _revoked_entry(row))

    # OCSP answers are fresh for an hour; the CRL is the long-lived fallback.
    return respond_ocsp(request_der, [r for r, _ in pairs], lookup, clock.now(), timedelta(hours=1))


def time_stamp_authority(
    db: Session, vault: Vault, policy: PkiPolicy, center_id: str
) -> TimeStampAuthority:
    """The center's TSA: its time-stamping certificate, chain and vault-held key."""
    row = service_certificate(db, center_id, Profile.TIME_STAMPING)
    issuing = db.get(Authority, row.authority_id)
    assert issuing is not None
    return TimeStampAuthority(
        certificate=load_certificate(row.certificate_der),
        chain=chain_of(db, issuing),
        private_key=private_key(vault, key_of(db, row.key_id)),
        policy_oid=policy.tsa_policy_oid,
    )


def timestamp(
    db: Session, clock: Clock, vault: Vault, policy: PkiPolicy, center_id: str, request_der: bytes
) -> bytes:
    """An RFC 3161 response from the center's time-stamping certificate."""
    authority = time_stamp_authority(db, vault, policy, center_id)
    # 128 random bits: unique without a shared counter across replicas.
    return authority.respond(request_der, clock.now(), secrets.randbits(127) | 1)


# ---- trust list ----------------------------------------------------------------------


def list_trust_anchors(db: Session, center_id: str) -> list[TrustAnchor]:
    return list(
        db.execute(
            select(TrustAnchor)
            .where(TrustAnchor.center_id == center_id, TrustAnchor.removed_at.is_(None))
            .order_by(TrustAnchor.added_at, TrustAnchor.id)
        ).scalars()
    )


def trust_roots(db: Session, center_id: str) -> list[x509.Certificate]:
    return [load_certificate(a.certificate_der) for a in list_trust_anchors(db, center_id)]


def external_trust_roots(db: Session, center_id: str) -> list[x509.Certificate]:
    """The other CAs' roots (mutual recognition): validation may fetch revocation status
    for their chains; the center's own answer from its database and its documents' DSS."""
    return [
        load_certificate(a.certificate_der) for a in list_trust_anchors(db, center_id) if a.external
    ]


def parse_certificate(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes, or a clear 422."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateRejected(f"not an X.509 certificate (PEM or DER): {exc}") from exc


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def add_trust_anchor(
    db: Session, caller: audit.Caller, clock: Clock, data: bytes, name: str | None = None
) -> TrustAnchor:
    """Accept signatures that chain to an external root (CA mutual recognition)."""
    certificate = parse_certificate(data)
    if certificate.issuer != certificate.subject or not profiles.is_issued_by(
        certificate, certificate
    ):
        raise CertificateRejected("a trust anchor must be a self-signed root certificate")
    if not _is_ca(certificate):
        raise CertificateRejected("the certificate is not a CA (basicConstraints cA is false)")
    now = clock.now()
    if certificate.not_valid_after_utc <= now:
        raise CertificateRejected("the root certificate has expired")
    print_ = fingerprint(certificate)
    existing = db.execute(
        select(TrustAnchor).where(
            TrustAnchor.center_id == caller.center_id, TrustAnchor.fingerprint == print_
        )
    ).scalar_one_or_none()
    if existing is not None and existing.removed_at is None:
        raise DuplicateTrustAnchor(f"root {print_} is already trusted", anchor_id=existing.id)
    if existing is not None:
        existing.removed_at = None
        existing.added_at = now
        anchor = existing
    else:
        anchor = TrustAnchor(
            center_id=caller.center_id,
            name=(name or profiles.dn(certificate.subject))[:200],
            fingerprint=print_,
            certificate_der=der(certificate),
            external=True,
            added_at=now,
        )
        db.add(anchor)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.PKI_TRUST_ANCHOR_ADDED,
        "trust_anchor",
        anchor.id,
        {"subject": profiles.dn(certificate.subject), "fingerprint": print_},
    )
    return anchor


def remove_trust_anchor(
    db: Session, caller: audit.Caller, clock: Clock, anchor_id: str
) -> TrustAnchor:
    anchor = db.get(TrustAnchor, anchor_id)
    if anchor is None or anchor.center_id != caller.center_id or anchor.removed_at is not None:
        raise NotFound(f"no trust anchor {anchor_id} in this center")
    if not anchor.external:
        raise CertificateRejected("the center's own root cannot be removed from its trust list")
    anchor.removed_at = clock.now()
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.PKI_TRUST_ANCHOR_REMOVED,
        "trust_anchor",
        anchor.id,
        {"fingerprint": anchor.fingerprint},
    )
    return anchor


def import_issuing_ca(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    key: KeyRef,
    purpose_note: str,
    certificate_data: bytes,
    chain_data: list[bytes],
) -> Authority:
    """Make an external CA (a bank's, a commercial CA's) this center's issuing CA. Its key
    stays where it is (a PKCS#11 token); its chain must end at a root on the trust list.
    New credentials are issued by it; the center's own issuing CA is retired, and keeps
    answering CRL and OCSP for what it issued."""
    certificate = parse_certificate(certificate_data)
    chain = [parse_certificate(item) for item in chain_data]
    if not _is_ca(certificate):
        raise CertificateRejected("the certificate is not a CA (basicConstraints cA is false)")
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    if not usage.key_cert_sign or not usage.crl_sign:
        raise CertificateRejected("the CA's keyUsage must allow keyCertSign and cRLSign")
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if spki != key.public_key_der:
        raise CertificateRejected("the certificate's public key is not the key on the token")
    _check_chain(db, caller.center_id, certificate, chain, clock.now())
    now = clock.now()
    key_row = VaultKey(
        id=key.id,
        center_id=caller.center_id,
        purpose="issuing-ca",
        backend=key.backend,
        algorithm=key.algorithm.value,
        public_key_der=key.public_key_der,
        wrapped_key=key.wrapped_key,
        token_key_id=key.token_key_id,
        created_at=now,
    )
    db.add(key_row)
    db.flush()
    db.execute(
        update(Authority)
        .where(
            Authority.center_id == caller.center_id,
            Authority.kind == "issuing",
            Authority.status == "active",
        )
        .values(status="retired")
    )
    authority = _add_authority(
        db,
        new_id(),
        caller.center_id,
        "issuing",
        certificate,
        key_row.id,
        now,
        external=True,
        chain=chain,
    )
    audit.record(
        db,
        caller,
        clock,
        Action.PKI_ISSUING_CA_IMPORTED,
        "authority",
        authority.id,
        {
            "subject": authority.name,
            "fingerprint": fingerprint(certificate),
            "backend": key.backend,
            "note": purpose_note,
        },
    )
    return authority


def _check_chain(
    db: Session,
    center_id: str,
    certificate: x509.Certificate,
    chain: list[x509.Certificate],
    now: datetime,
) -> None:
    anchors = {fingerprint(root) for root in trust_roots(db, center_id)}
    current = certificate
    for issuer in [*chain, None]:
        if fingerprint(current) in anchors:
            return
        if not (current.not_valid_before_utc <= now < current.not_valid_after_utc):
            raise CertificateRejected(f"{profiles.dn(current.subject)} is not valid now")
        if issuer is None or not profiles.is_issued_by(current, issuer):
            break
        current = issuer
    raise CertificateRejected(
        "the CA does not chain to a root on this center's trust list; add its root first"
    )
