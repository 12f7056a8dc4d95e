"""Organization seals (电子印章): a unit's seal picture and its organization credential, a
key in the vault certified with the unit as subject. Only a currently authorized
representative, after a fresh face check, can have it used (evaluation/trust/activation.py)."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, InvalidTransition, NotFound
from evaluation.kernel.identifiers import Text
from evaluation.registry import units
from evaluation.trust import credentials, pki
from evaluation.trust.credential_states import CredentialStatus
from evaluation.trust.credentials import CredentialExists
from evaluation.trust.pki import PkiPolicy
from models.clock import Clock
from models.tables import IssuedCertificate, Unit
from signing import certificates as profiles
from signing import seal_image
from signing.certificates import Profile
from signing.revocation import RevocationReason
from signing.vault import Vault

SEAL = Profile.ORGANIZATION_SEAL.value
DEFAULT_PURPOSE = "合同专用章"


class SealImageRejected(DomainError):
    status = 422
    code = "seal-image-rejected"
    title = "The seal image is not usable"


class NoSealImage(DomainError):
    status = 409
    code = "no-seal-image"
    title = "The unit has no seal image yet; upload or generate one first"


class GeneratedSeal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: Text = Field(default=DEFAULT_PURPOSE, min_length=1, max_length=20)


def _record_image(
    db: Session, caller: audit.Caller, clock: Clock, unit: Unit, png: bytes, source: str
) -> Unit:
    unit.seal_png = png
    unit.seal_source = source
    unit.updated_at = clock.now()
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.UNIT_SEAL_IMAGE_SET,
        "unit",
        unit.id,
        {
            "source": source,
            "purpose": unit.seal_purpose,
            "sha256": hashlib.sha256(png).hexdigest(),
        },
    )
    return unit


def upload_seal_image(
    db: Session, caller: audit.Caller, clock: Clock, unit_id: str, data: bytes, purpose: str
) -> Unit:
    unit = units.get_unit(db, caller.center_id, unit_id, lock=True)
    try:
        png = seal_image.check_uploaded(data)
    except seal_image.SealImageRejected as exc:
        raise SealImageRejected(str(exc)) from exc
    unit.seal_purpose = purpose
    return _record_image(db, caller, clock, unit, png, "uploaded")


def generate_seal_image(
    db: Session, caller: audit.Caller, clock: Clock, unit_id: str, fields: GeneratedSeal
) -> Unit:
    unit = units.get_unit(db, caller.center_id, unit_id, lock=True)
    png = seal_image.round_seal(unit.name, fields.purpose)
    unit.seal_purpose = fields.purpose
    return _record_image(db, caller, clock, unit, png, "generated")


def current_seal_credential(db: Session, unit_id: str) -> IssuedCertificate | None:
    """The unit's seal credential that is not revoked, if any."""
    return db.execute(
        select(IssuedCertificate)
        .where(
            IssuedCertificate.unit_id == unit_id,
            IssuedCertificate.purpose == SEAL,
            IssuedCertificate.status != CredentialStatus.REVOKED,
        )
        .order_by(IssuedCertificate.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def issue_seal_credential(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    vault: Vault,
    policy: PkiPolicy,
    unit_id: str,
) -> IssuedCertificate:
    """The unit's organization credential: a vault key and a certificate naming the unit."""
    unit = units.get_unit(db, caller.center_id, unit_id, lock=True)
    if unit.seal_png is None:
        raise NoSealImage(f"unit {unit.id} has no seal image")
    existing = current_seal_credential(db, unit.id)
    if existing is not None and existing.not_after > clock.now():
        raise CredentialExists(
            f"unit {unit.id} already has seal credential {existing.id}",
            credential_id=existing.id,
        )
    key = pki.create_key(db, caller, clock, vault, "seal-credential", policy.algorithm)
    subject = profiles.organization_subject(
        unit.name, unit.credit_code, unit.seal_purpose or DEFAULT_PURPOSE
    )
    return pki.issue_certificate(
        db,
        caller,
        clock,
        vault,
        policy,
        Profile.ORGANIZATION_SEAL,
        subject,
        key,
        policy.credential_days,
        unit_id=unit.id,
    )


def seal_credentials(db: Session, center_id: str, unit_id: str) -> list[IssuedCertificate]:
    units.get_unit(db, center_id, unit_id)
    return list(
        db.execute(
            select(IssuedCertificate)
            .where(IssuedCertificate.unit_id == unit_id, IssuedCertificate.purpose == SEAL)
            .order_by(IssuedCertificate.created_at.desc(), IssuedCertificate.id)
        ).scalars()
    )


def revoke_seal_credential(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    vault: Vault,
    policy: PkiPolicy,
    unit_id: str,
    credential_id: str,
    reason: RevocationReason,
    note: str | None,
) -> IssuedCertificate:
    row = db.get(IssuedCertificate, credential_id)
    if row is None or row.center_id != caller.center_id or row.unit_id != unit_id:
        raise NotFound(f"no seal credential {credential_id} of unit {unit_id}")
    if reason is RevocationReason.CERTIFICATE_HOLD:
        raise InvalidTransition("a seal credential is revoked for good, not put on hold")
    return credentials.revoke_row(db, caller, clock, vault, policy, row, reason, note)
