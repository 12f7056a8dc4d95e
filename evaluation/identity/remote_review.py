"""Remote enrollment checks who the person is, not only that a photo was sent.

A representative who cannot come to the desk photographs their ID card on their phone and
then passes a live check against it. Whoever opened the link first could have done the
same with their own card and face, so nothing is sealed until someone who can tell has
confirmed that this is the person the unit authorized: the center's identity provider
(name, ID number and the live face against the citizen registry) when one is configured,
or else an operator comparing the card's portrait with a frame of the live check, side by
side. Both images are kept encrypted only until that decision.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evaluation.identity import session_ends
from evaluation.identity.identity_verification import IdentityDecision, Outcome
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import InvalidTransition, NotFound, SigningRefused
from evaluation.registry.experts import id_number_context, person_in_center
from models.clock import Clock
from models.tables import (
    Expert,
    FaceTemplate,
    FaceVerification,
    RemoteEnrollmentReview,
)
from signing.field_cipher import FieldCipher


class RemoteEnrollmentUnconfirmed(SigningRefused):
    status = 409
    code = "remote-enrollment-unconfirmed"
    title = "The trading center has not yet confirmed the identity sent from the phone"


def _context(review_id: str, part: str) -> str:
    return f"remote-enrollment:{review_id}:{part}"


def open_review(
    db: Session, cipher: FieldCipher, clock: Clock, person: Expert, card: bytes
) -> RemoteEnrollmentReview:
    """Keep the card photo (encrypted) for the operator who will confirm it."""
    review = RemoteEnrollmentReview(
        center_id=person.center_id, expert_id=person.id, created_at=clock.now()
    )
    db.add(review)
    db.flush()
    review.card_ciphertext = cipher.encrypt_bytes(card, _context(review.id, "card"))
    db.flush()
    return review


def _pending(db: Session, expert_id: str) -> RemoteEnrollmentReview | None:
    return db.execute(
        select(RemoteEnrollmentReview)
        .where(
            RemoteEnrollmentReview.expert_id == expert_id,
            RemoteEnrollmentReview.decided_at.is_(None),
        )
        .order_by(RemoteEnrollmentReview.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def attach_live_check(
    db: Session, cipher: FieldCipher, verification: FaceVerification, frame: bytes
) -> str | None:
    """A passed live check against a card waiting for review: its first frame (the
    neutral face before any action) goes beside the card. Returns the review's id when
    this check is the one to decide on (to ask the identity provider about)."""
    if not verification.passed or verification.expert_id is None:
        return None
    review = _pending(db, verification.expert_id)
    if review is None or review.frame_ciphertext is not None:
        return None  # the first passed check is the one decided on; later ones change nothing
    review.frame_ciphertext = cipher.encrypt_bytes(frame, _context(review.id, "frame"))
    review.verification_id = verification.id
    review.similarity = verification.similarity
    db.flush()
    return review.id


@dataclass(frozen=True)
class ReviewView:
    id: str
    expert_id: str
    created_at: datetime
    card_jpeg_base64: str | None
    frame_jpeg_base64: str | None
    verification_id: str | None
    similarity: float | None
    decided_at: datetime | None
    decision: str | None
    decided_by: str | None
    provider_outcome: str | None
    provider_reference: str | None
    provider_score: float | None


def review_of(db: Session, cipher: FieldCipher, center_id: str, expert_id: str) -> ReviewView:
    """The latest review of the person's remote enrollment, with its images decrypted
    while it is open."""
    person = person_in_center(db, center_id, expert_id)
    review = db.execute(
        select(RemoteEnrollmentReview)
        .where(RemoteEnrollmentReview.expert_id == expert_id)
        .order_by(RemoteEnrollmentReview.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if review is None:
        raise NotFound(f"{person.name} has no remote enrollment")

    def shown(ciphertext: bytes | None, part: str) -> str | None:
        if ciphertext is None:
            return None
        plain = cipher.decrypt_bytes(ciphertext, _context(review.id, part))
        return base64.b64encode(plain).decode()

    return ReviewView(
        id=review.id,
        expert_id=expert_id,
        created_at=review.created_at,
        card_jpeg_base64=shown(review.card_ciphertext, "card"),
        frame_jpeg_base64=shown(review.frame_ciphertext, "frame"),
        verification_id=review.verification_id,
        similarity=review.similarity,
        decided_at=review.decided_at,
        decision=review.decision,
        decided_by=review.decided_by,
        provider_outcome=review.provider_outcome,
        provider_reference=review.provider_reference,
        provider_score=review.provider_score,
    )


def decide(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    *,
    expert_id: str,
    confirm: bool,
    note: str,
    seen_verification_id: str | None = None,
) -> RemoteEnrollmentReview:
    """The operator's decision: confirmed, the card is the person's reference from now on;
    refused, the reference is deleted and the person enrolls again (at the desk, or from
    the link). Either way the images are erased."""
    review = _pending(db, expert_id)
    if review is None or review.center_id != caller.center_id:
        raise NotFound("no remote enrollment of this person waits for a decision")
    if seen_verification_id is not None and seen_verification_id != review.verification_id:
        raise InvalidTransition(
            "the review shows another live check than the one you compared; look again",
            current_status="review-changed",
        )
    if confirm and review.verification_id is None:
        raise InvalidTransition(
            "the person has not yet passed a live check against the card; confirm after it",
            current_status="waiting-for-live-check",
        )
    if not _settle(db, caller, clock, review, confirm=confirm, note=note):
        raise InvalidTransition("someone decided this one already", current_status="decided")
    return review


def _settle(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    review: RemoteEnrollmentReview,
    *,
    confirm: bool,
    note: str,
    provider: IdentityDecision | None = None,
) -> bool:
    """Decide an open review (an operator's or the provider's decision), erase its images
    and audit it; False when it was decided meanwhile (nothing changed)."""
    expert_id = review.expert_id
    now = clock.now()
    provided: dict[str, object] = {}
    if provider is not None:
        provided = {
            "provider_outcome": provider.outcome.value,
            "provider_reference": provider.reference,
            "provider_score": provider.score,
        }
    decided = db.execute(
        update(RemoteEnrollmentReview)
        .where(
            RemoteEnrollmentReview.id == review.id,
            RemoteEnrollmentReview.decided_at.is_(None),
            # The provider judged one check's frame; only that check's review is its to decide.
            RemoteEnrollmentReview.verification_id == review.verification_id,
        )
        .values(
            decided_at=now,
            decided_by=caller.actor,
            decision="confirmed" if confirm else "rejected",
            note=note,
            card_ciphertext=None,
            frame_ciphertext=None,
            **provided,
        )
        .returning(RemoteEnrollmentReview.id)
    ).first()
    if decided is None:
        return False
    template = db.get(FaceTemplate, expert_id, with_for_update=True)
    revoked = 0
    if template is not None and template.reference == "id-card":
        if confirm:
            template.confirmed_at = now
            template.confirmed_by = caller.actor
        else:
            db.delete(template)
    if not confirm:
        # The face checks made against the refused card grant nothing any more.
        revoked = _end_face_sessions(db, expert_id, now)
    db.flush()
    db.refresh(review)
    audit.record(
        db,
        caller,
        clock,
        (
            Action.FACE_REMOTE_ENROLLMENT_CONFIRMED
            if confirm
            else Action.FACE_REMOTE_ENROLLMENT_REJECTED
        ),
        "expert",
        expert_id,
        {
            "review_id": review.id,
            "verification_id": review.verification_id,
            "similarity": review.similarity,
            "note": note,
            "face_sessions_revoked": revoked,
            **provided,
        },
    )
    return True


# Who decided, in the review and the audit log, when the identity provider did.
PROVIDER_ACTOR = "identity-provider"


@dataclass(frozen=True)
class ProviderQuery:
    """What the identity provider is asked about one review's live check."""

    center_id: str
    review_id: str
    verification_id: str
    name: str
    id_number: str
    face_jpeg: bytes


def provider_query(db: Session, cipher: FieldCipher, review_id: str) -> ProviderQuery | None:
    """The question for the provider, or None when the review no longer waits (decided,
    closed, or its images erased meanwhile)."""
    review = db.get(RemoteEnrollmentReview, review_id)
    if (
        review is None
        or review.decided_at is not None
        or review.verification_id is None
        or review.frame_ciphertext is None
    ):
        return None
    person = person_in_center(db, review.center_id, review.expert_id)
    return ProviderQuery(
        center_id=review.center_id,
        review_id=review.id,
        verification_id=review.verification_id,
        name=person.name,
        id_number=cipher.decrypt(person.id_number_ciphertext, id_number_context(person.id)),
        face_jpeg=cipher.decrypt_bytes(review.frame_ciphertext, _context(review.id, "frame")),
    )


def record_provider_decision(
    db: Session,
    clock: Clock,
    query: ProviderQuery,
    decision: IdentityDecision,
    *,
    request_id: str | None = None,
) -> None:
    """The provider's answer: a match confirms the review and a no-match refuses it, as an
    operator's decision would; unavailable leaves it to an operator. All audited."""
    caller = audit.Caller(query.center_id, PROVIDER_ACTOR, None, request_id)
    review = db.get(RemoteEnrollmentReview, query.review_id, with_for_update=True)
    if review is None:
        return  # the person was deleted meanwhile, and their reviews with them
    answer = {
        "review_id": review.id,
        "verification_id": query.verification_id,
        "provider_outcome": decision.outcome.value,
        "provider_reference": decision.reference,
        "provider_score": decision.score,
        "reason": decision.reason,
    }
    waiting = review.decided_at is None and review.verification_id == query.verification_id
    if decision.outcome is Outcome.UNAVAILABLE:
        if waiting:
            review.provider_outcome = decision.outcome.value
            review.provider_reference = decision.reference
            db.flush()
        action = Action.FACE_REMOTE_ENROLLMENT_PROVIDER_UNAVAILABLE
        audit.record(db, caller, clock, action, "expert", review.expert_id, answer)
        return
    confirm = decision.outcome is Outcome.MATCH
    note = f"identity provider: {decision.outcome.value} ({decision.reference})"
    if decision.reason:
        note = f"{note}: {decision.reason}"[:500]
    settled = waiting and _settle(
        db, caller, clock, review, confirm=confirm, note=note, provider=decision
    )
    if settled:
        return
    # An operator was quicker: their decision stands; supervisors see if the provider disagreed.
    action = Action.FACE_REMOTE_ENROLLMENT_PROVIDER_LATE
    audit.record(db, caller, clock, action, "expert", review.expert_id, answer)


def close_open(db: Session, expert_id: str, now: datetime, reason: str) -> int:
    """The reference a review was about is gone (removed, replaced at the desk, consent
    withdrawn): close the review, erase its images, and end the face sessions its checks
    gave, so none of them seals anything. Returns how many sessions ended."""
    db.execute(
        update(RemoteEnrollmentReview)
        .where(
            RemoteEnrollmentReview.expert_id == expert_id,
            RemoteEnrollmentReview.decided_at.is_(None),
        )
        .values(
            decided_at=now,
            decided_by="system",
            decision="rejected",
            note=reason,
            card_ciphertext=None,
            frame_ciphertext=None,
        )
    )
    return _end_face_sessions(db, expert_id, now)


def _end_face_sessions(db: Session, expert_id: str, now: datetime) -> int:
    return session_ends.end_face_sessions(db, now, expert_id=expert_id)


def require_confirmed(db: Session, expert_id: str) -> None:
    """Refuse to seal or sign on a remote enrollment no operator has confirmed yet."""
    template = db.get(FaceTemplate, expert_id)
    unconfirmed = (
        template is not None and template.reference == "id-card" and template.confirmed_at is None
    )
    if unconfirmed or _pending(db, expert_id) is not None:
        raise RemoteEnrollmentUnconfirmed(
            "the center is comparing your ID card with your live check; sign once it confirms"
        )
