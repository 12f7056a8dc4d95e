"""Face data, lawfully (Personal Information Protection Law; the Measures for the Security
Management of Face Recognition Technology Applications, in force since 2025-06-01):
withdrawal of consent, which deletes a person's face data and closes the face path; the
retention limits the scheduled job enforces; and the count of people whose face data the
center holds, with a warning as it nears the number that needs a filing.

Every deletion is audited: what was deleted, for whom, and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from evaluation.identity import remote_review, replay_memory
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, InvalidTransition, NotFound
from models.clock import Clock
from models.settings import Settings
from models.tables import (
    Expert,
    FaceCrossCheck,
    FacePhoto,
    FaceTemplate,
    FaceVerification,
    VerificationFrame,
)


class FaceConsentWithdrawn(DomainError):
    status = 409
    code = "face-consent-withdrawn"
    title = "The person withdrew consent to face recognition; use the in-person check"


@dataclass(frozen=True)
class RetentionPolicy:
    frames_after: timedelta
    suspended_after: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(
            frames_after=timedelta(days=settings.face_frames_retention_days),
            suspended_after=timedelta(days=settings.face_suspended_retention_days),
        )


@dataclass(frozen=True)
class Erased:
    templates: int
    photos: int
    frames: int
    sessions_revoked: int


def _erase(db: Session, expert_id: str, now: datetime) -> Erased:
    """Delete one person's face data: template, enrollment photos, retained frames; and
    end the face sessions a passed check gave them."""
    templates = db.execute(
        delete(FaceTemplate)
        .where(FaceTemplate.expert_id == expert_id)
        .returning(FaceTemplate.expert_id)
    ).all()
    photos = db.execute(
        delete(FacePhoto).where(FacePhoto.expert_id == expert_id).returning(FacePhoto.id)
    ).all()
    theirs = select(FaceVerification.id).where(FaceVerification.expert_id == expert_id)
    replay_memory.forget_expert(db, expert_id)
    frames = db.execute(
        delete(VerificationFrame)
        .where(VerificationFrame.verification_id.in_(theirs))
        .returning(VerificationFrame.seq)
    ).all()
    db.execute(
        update(FaceVerification)
        .where(FaceVerification.expert_id == expert_id, FaceVerification.frames_retained)
        .values(frames_retained=False)
    )
    # A face still waiting for the cross-match sweep is face data too: not compared, dropped.
    db.execute(
        update(FaceCrossCheck)
        .where(FaceCrossCheck.verification_id.in_(theirs), FaceCrossCheck.swept_at.is_(None))
        .values(probe_ciphertext=None, swept_at=now)
    )
    # Closes any remote enrollment review (its card photo and frame) and ends the sessions.
    sessions = remote_review.close_open(db, expert_id, now, "face data erased")
    return Erased(len(templates), len(photos), len(frames), sessions)


def withdraw_consent(
    db: Session, caller: audit.Caller, clock: Clock, expert_id: str, note: str
) -> tuple[Expert, Erased]:
    """The person withdrew consent: their face data is deleted at once and the face path
    stays closed (409 face-consent-withdrawn) until they enroll again with new consent.
    What they signed stays signed; the verification records (no images) stay as evidence."""
    expert = db.execute(
        select(Expert).where(Expert.id == expert_id, Expert.center_id == caller.center_id)
    ).scalar_one_or_none()
    if expert is None:
        raise NotFound(f"no expert {expert_id} in this center")
    db.refresh(expert, with_for_update=True)
    if expert.face_consent_withdrawn_at is not None:
        raise InvalidTransition(
            f"consent was withdrawn at {expert.face_consent_withdrawn_at.isoformat()}"
        )
    now = clock.now()
    erased = _erase(db, expert.id, now)
    expert.face_consent_withdrawn_at = now
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.FACE_CONSENT_WITHDRAWN,
        "expert",
        expert.id,
        {
            "note": note,
            "templates_deleted": erased.templates,
            "photos_deleted": erased.photos,
            "frames_deleted": erased.frames,
            "sessions_revoked": erased.sessions_revoked,
        },
    )
    return expert, erased


def refuse_if_withdrawn(experts: list[Expert]) -> None:
    withdrawn = [e.id for e in experts if e.face_consent_withdrawn_at is not None]
    if withdrawn:
        raise FaceConsentWithdrawn(
            "consent to face recognition was withdrawn; the in-person check is the way",
            experts=withdrawn,
        )


@dataclass(frozen=True)
class Retained:
    frames_deleted: int
    verifications: int
    templates_deleted: int
    experts: list[str]


def apply_retention(
    db: Session, caller: audit.Caller, clock: Clock, policy: RetentionPolicy, center_id: str
) -> Retained:
    """The retention limits: evidence frames older than their period, and the templates of
    experts suspended longer than theirs, deleted; one audit entry per deletion."""
    now = clock.now()
    old = list(
        db.execute(
            select(FaceVerification.id)
            .where(
                FaceVerification.center_id == center_id,
                FaceVerification.frames_retained,
                FaceVerification.created_at < now - policy.frames_after,
            )
            .order_by(FaceVerification.created_at)
        ).scalars()
    )
    frames = 0
    for verification_id in old:
        deleted = len(
            db.execute(
                delete(VerificationFrame)
                .where(VerificationFrame.verification_id == verification_id)
                .returning(VerificationFrame.seq)
            ).all()
        )
        db.execute(
            update(FaceVerification)
            .where(FaceVerification.id == verification_id)
            .values(frames_retained=False)
        )
        frames += deleted
        audit.record(
            db,
            caller,
            clock,
            Action.FACE_FRAMES_EXPIRED,
            "face_verification",
            verification_id,
            {"frames_deleted": deleted, "retention_days": policy.frames_after.days},
        )
    suspended = list(
        db.execute(
            select(Expert.id)
            .join(FaceTemplate, FaceTemplate.expert_id == Expert.id)
            .where(
                Expert.center_id == center_id,
                Expert.status == "suspended",
                Expert.updated_at < now - policy.suspended_after,
            )
            .order_by(Expert.id)
        ).scalars()
    )
    for expert_id in suspended:
        erased = _erase(db, expert_id, now)
        audit.record(
            db,
            caller,
            clock,
            Action.FACE_TEMPLATE_EXPIRED,
            "expert",
            expert_id,
            {
                "templates_deleted": erased.templates,
                "photos_deleted": erased.photos,
                "frames_deleted": erased.frames,
                "retention_days": policy.suspended_after.days,
            },
        )
    db.flush()
    return Retained(frames, len(old), len(suspended), suspended)


@dataclass(frozen=True)
class Holdings:
    people: int  # with a face template
    photos: int  # retained enrollment photos
    frames: int  # retained evidence frames
    threshold: int
    warning: bool


def holdings(db: Session, center_id: str, threshold: int, warn_ratio: float) -> Holdings:
    """Whose face data the center holds: the number the filing rule counts."""
    people = db.execute(
        select(func.count()).select_from(FaceTemplate).where(FaceTemplate.center_id == center_id)
    ).scalar_one()
    photos = db.execute(
        select(func.count()).select_from(FacePhoto).where(FacePhoto.center_id == center_id)
    ).scalar_one()
    frames = db.execute(
        select(func.count())
        .select_from(VerificationFrame)
        .where(VerificationFrame.center_id == center_id)
    ).scalar_one()
    return Holdings(people, photos, frames, threshold, people >= threshold * warn_ratio)
