"""Experts' cloud signing credentials: a key pair in the vault and a document-signing
certificate from the center's issuing CA; revocation, and the hold that an expert's
suspension puts on it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.errors import DomainError, InvalidTransition, NotFound
from evaluation.registry import experts
from evaluation.trust import pki
from evaluation.trust.credential_states import CredentialAction, CredentialStatus, change_status
from evaluation.trust.pki import PkiPolicy
from models.clock import Clock
from models.tables import Authority, Center, IssuedCertificate
from signing import certificates as profiles
from signing.certificates import Profile
from signing.revocation import RevocationReason
from signing.vault import Vault

EXPERT = Profile.DOCUMENT_SIGNING.value


class CredentialExists(DomainError):
    status = 409
    code = "credential-exists"
    title = "The expert already has a valid credential; revoke it before issuing another"


class ExpertInactive(DomainError):
    status = 409
    code = "expert-not-active"
    title = "The expert is suspended; credentials are issued to active experts only"


@dataclass(frozen=True)
class CredentialState:
    """What a credential can do now: `usable` is false when revoked, on hold or expired."""

    status: str  # valid | suspended | revoked | expired
    usable: bool


def state(row: IssuedCertificate, now: datetime) -> CredentialState:
    if row.status == CredentialStatus.REVOKED:
        return CredentialState("revoked", False)
    if row.status == CredentialStatus.SUSPENDED:
        return CredentialState("suspended", False)
    if not (row.not_before <= now < row.not_after):
        return CredentialState("expired", False)
    return CredentialState("valid", True)


def current_credential(db: Session, expert_id: str) -> IssuedCertificate | None:
    """The expert's credential that is not revoked (valid or on hold), if any."""
    return db.execute(
        select(IssuedCertificate)
        .where(
            IssuedCertificate.expert_id == expert_id,
            IssuedCertificate.purpose == EXPERT,
            IssuedCertificate.status != CredentialStatus.REVOKED,
        )
        .order_by(IssuedCertificate.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def issue_credential(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    vault: Vault,
    policy: PkiPolicy,
    expert_id: str,
) -> IssuedCertificate:
    """Generate the expert's key in the vault and certify it. The subject names the expert
    and the center, with a pseudonym as serialNumber: never the ID number."""
    expert = experts.person_in_center(db, caller.center_id, expert_id)
    # Lock the expert row: two concurrent requests cannot both issue a credential.
    db.refresh(expert, with_for_update=True)
    if expert.status != "active":
        raise ExpertInactive(f"expert {expert_id} is {expert.status}")
    existing = current_credential(db, expert_id)
    if existing is not None and existing.not_after > clock.now():
        raise CredentialExists(
            f"expert {expert_id} already has credential {existing.id}", credential_id=existing.id
        )
    center = db.get(Center, caller.center_id)
    assert center is not None
    key = pki.create_key(db, caller, clock, vault, "expert-credential", policy.algorithm)
    subject = profiles.expert_subject(
        expert.name, profiles.pseudonym(center.id, expert.id), center.name
    )
    return pki.issue_certificate(
        db,
        caller,
        clock,
        vault,
        policy,
        Profile.DOCUMENT_SIGNING,
        subject,
        key,
        policy.credential_days,
        expert_id=expert.id,
    )


def get_credential(db: Session, center_id: str, credential_id: str) -> IssuedCertificate:
    row = db.get(IssuedCertificate, credential_id)
    if row is None or row.center_id != center_id or row.purpose != EXPERT:
        raise NotFound(f"no credential {credential_id} in this center")
    return row


def list_credentials(db: Session, center_id: str, expert_id: str) -> list[IssuedCertificate]:
    experts.person_in_center(db, center_id, expert_id)
    return list(
        db.execute(
            select(IssuedCertificate)
            .where(IssuedCertificate.expert_id == expert_id, IssuedCertificate.purpose == EXPERT)
            .order_by(IssuedCertificate.created_at.desc(), IssuedCertificate.id)
        ).scalars()
    )


def revoke_credential(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    vault: Vault,
    policy: PkiPolicy,
    credential_id: str,
    reason: RevocationReason,
    note: str | None,
) -> IssuedCertificate:
    """Revoke for good (a hold is what suspension does); the CRL is reissued at once."""
    if reason is RevocationReason.CERTIFICATE_HOLD:
        raise InvalidTransition("certificateHold is set by suspending the expert, not by revoking")
    row = get_credential(db, caller.center_id, credential_id)
    return revoke_row(db, caller, clock, vault, policy, row, reason, note)


def revoke_row(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    vault: Vault,
    policy: PkiPolicy,
    row: IssuedCertificate,
    reason: RevocationReason,
    note: str | None,
) -> IssuedCertificate:
    """Revoke a credential (an expert's or a unit's seal) and reissue its CA's CRL."""
    db.refresh(row, with_for_update=True)
    now = clock.now()
    previous = row.status
    row.revoked_at = now
    row.revocation_reason = reason.value
    row.revocation_note = note
    change_status(
        db,
        caller,
        clock,
        row,
        CredentialAction.REVOKE,
        {
            **({"unit_id": row.unit_id} if row.unit_id else {"expert_id": row.expert_id}),
            "serial": row.serial,
            "reason": reason.value,
            "note": note,
            "from": previous,
        },
    )
    # A credential at a remote provider is revoked here (never used again); its own CA
    # publishes its revocation.
    if row.authority_id is not None:
        _reissue_crl(db, clock, vault, policy, row.authority_id)
    return row


def hold_for_expert(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    vault: Vault,
    policy: PkiPolicy,
    expert_id: str,
    *,
    suspended: bool,
) -> list[IssuedCertificate]:
    """An expert's suspension puts their credential on hold (certificateHold on the CRL);
    reactivation lifts it. Revoked credentials stay revoked."""
    source = CredentialStatus.VALID if suspended else CredentialStatus.SUSPENDED
    action = CredentialAction.HOLD if suspended else CredentialAction.RELEASE
    rows = list(
        db.execute(
            select(IssuedCertificate).where(
                IssuedCertificate.expert_id == expert_id,
                IssuedCertificate.purpose == EXPERT,
                IssuedCertificate.status == source,
            )
        ).scalars()
    )
    now = clock.now()
    for row in rows:
        row.suspended_at = now if suspended else None
        change_status(
            db, caller, clock, row, action, {"expert_id": expert_id, "serial": row.serial}
        )
    for authority_id in {row.authority_id for row in rows if row.authority_id is not None}:
        _reissue_crl(db, clock, vault, policy, authority_id)
    return rows


def _reissue_crl(
    db: Session, clock: Clock, vault: Vault, policy: PkiPolicy, authority_id: str
) -> None:
    authority = db.get(Authority, authority_id)
    assert authority is not None
    pki.refresh_crl(db, clock, vault, policy, authority)
