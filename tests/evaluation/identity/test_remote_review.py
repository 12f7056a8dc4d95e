"""The identity provider's answer on a remote enrollment review, when it races an operator
or a review that was closed meanwhile."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.identity import remote_review
from evaluation.identity.identity_verification import IdentityDecision, Outcome
from evaluation.registry.experts import NewExpert, register_expert
from models.clock import FrozenClock
from models.tables import AuditEntry, Expert, FaceVerification, RemoteEnrollmentReview
from signing.field_cipher import FieldCipher
from tests.face.corpus import encode, id_card_photo, portraits
from tests.factories import CenterWithStaff, expert_payload, face_session


def _waiting_review(
    db: Session, center: CenterWithStaff, clock: FrozenClock, cipher: FieldCipher
) -> remote_review.ProviderQuery:
    record = register_expert(db, center.caller, clock, cipher, NewExpert(**expert_payload()))
    person = db.get(Expert, record.id)
    assert person is not None
    card = id_card_photo(portraits()["players-6"])
    remote_review.open_review(db, cipher, clock, person, card)
    _, session = face_session(db, clock, center.id, person.id)
    verification = db.get(FaceVerification, session.verification_id)
    assert verification is not None
    frame = encode(portraits()["players-6"])
    review_id = remote_review.attach_live_check(db, cipher, verification, frame)
    assert review_id is not None
    query = remote_review.provider_query(db, cipher, review_id)
    assert query is not None and query.face_jpeg == frame and query.name == person.name
    return query


def test_an_answer_after_the_operators_decision_changes_nothing_but_is_logged(
    db: Session, center: CenterWithStaff, clock: FrozenClock, cipher: FieldCipher
) -> None:
    query = _waiting_review(db, center, clock, cipher)
    review = db.get(RemoteEnrollmentReview, query.review_id)
    assert review is not None
    remote_review.decide(
        db, center.caller, clock, expert_id=review.expert_id, confirm=True, note="电话核实"
    )
    assert remote_review.provider_query(db, cipher, query.review_id) is None  # nothing to ask
    remote_review.record_provider_decision(
        db, clock, query, IdentityDecision(Outcome.NO_MATCH, reference="late-1", score=0.1)
    )
    db.refresh(review)
    assert review.decision == "confirmed" and review.decided_by == center.caller.actor
    assert review.provider_outcome is None
    late = db.execute(
        select(AuditEntry).where(AuditEntry.action == "face.remote_enrollment_provider_late")
    ).scalar_one()
    # Supervisors see that the provider disagreed with the operator.
    assert late.details["provider_outcome"] == "no-match"
    assert late.details["provider_reference"] == "late-1"


def test_a_match_for_a_review_closed_meanwhile_confirms_nothing(
    db: Session, center: CenterWithStaff, clock: FrozenClock, cipher: FieldCipher
) -> None:
    query = _waiting_review(db, center, clock, cipher)
    review = db.get(RemoteEnrollmentReview, query.review_id)
    assert review is not None
    remote_review.close_open(db, review.expert_id, clock.now(), "the reference was removed")
    remote_review.record_provider_decision(
        db, clock, query, IdentityDecision(Outcome.MATCH, reference="m-1")
    )
    db.refresh(review)
    assert review.decision == "rejected" and review.decided_by == "system"
