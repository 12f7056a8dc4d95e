"""Where the center asks for it (EVALSIGN_CALL_UP_ANSWER_VERIFIED), a member answers their
call-up only after the face check and the passkey of their bound phone, as they sign in:
the link in a message reaches whoever holds the phone's messages, and an answer moves seats.

The check is this call-up's own (a 1:1 face check against the member, issued for it), and
the passkey challenge is issued to that check's session for this call-up alone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaluation.committee import call_up_answers
from evaluation.committee.call_ups import CallUpExpired
from evaluation.identity import face_checks, passkeys
from evaluation.kernel import audit
from evaluation.kernel.errors import DomainError
from evaluation.kernel.rate_limits import Counter, Uncounted
from face.engine import FaceEngine
from models.clock import Clock
from models.tables import Assignment, FaceChallenge, FaceVerification, VerifiedSession
from signing.field_cipher import FieldCipher

# Enough for a few honest retakes; a link tried more than this is being attacked.
MAX_ANSWER_CHECKS = 5


class AnswerChecksUsed(DomainError):
    status = 429
    code = "call-up-checks-used"
    title = "This call-up's face checks are used up; ask the center to take the answer"


class AnswerNotChecked(DomainError):
    status = 403
    code = "call-up-not-checked"
    title = "The answer needs this call-up's passed face check on this phone"


def _actor(call_up_id: str) -> str:
    return f"call-up:{call_up_id}"


def _open(db: Session, clock: Clock, token: str) -> call_up_answers.Invitation:
    found = call_up_answers.invitation(db, clock, token)
    if not found.answerable:
        raise CallUpExpired(
            "this call-up can no longer be answered",
            answer=found.call_up.answer or found.assignment.status,
        )
    return found


def answer_challenge(
    db: Session,
    clock: Clock,
    cipher: FieldCipher,
    engine: FaceEngine,
    config: face_checks.LivenessConfig,
    token: str,
    *,
    device_id: str | None,
    request_id: str | None,
    counter: Counter | None = None,
) -> face_checks.IssuedChallenge:
    """The call-up's face check: 1:1 against the member it was sent to."""
    call_up = _open(db, clock, token).call_up
    actor = _actor(call_up.id)
    issued = db.execute(
        select(func.count()).select_from(FaceChallenge).where(FaceChallenge.issued_by == actor)
    ).scalar_one()
    if issued >= MAX_ANSWER_CHECKS:
        raise AnswerChecksUsed(f"{issued} face checks were taken for this call-up")
    if device_id is not None:
        face_checks.refuse_if_device_locked(db, config, call_up.center_id, device_id, clock.now())
    face_checks.count_challenge(counter or Uncounted(), config, [call_up.expert_id])
    caller = audit.Caller(call_up.center_id, actor, None, request_id)
    return face_checks.issue_challenge(
        db, caller, clock, cipher, engine, config, [call_up.expert_id]
    )


def _checked(db: Session, found: call_up_answers.Invitation, face: VerifiedSession) -> None:
    verification = db.get(FaceVerification, face.verification_id)
    challenge = (
        db.get(FaceChallenge, verification.challenge_id) if verification is not None else None
    )
    if (
        face.expert_id != found.call_up.expert_id
        or challenge is None
        or challenge.issued_by != _actor(found.call_up.id)
    ):
        raise AnswerNotChecked("take the face check on this call-up's page first")


def answer_options(
    db: Session, clock: Clock, policy: passkeys.PasskeyPolicy, token: str, face: VerifiedSession
) -> tuple[str, dict[str, Any]]:
    """After the passed check: the passkey challenge that confirms the answer."""
    found = _open(db, clock, token)
    _checked(db, found, face)
    return passkeys.answer_options(db, clock, policy, face, call_up_id=found.call_up.id)


def checked_answer(
    db: Session,
    clock: Clock,
    policy: passkeys.PasskeyPolicy,
    token: str,
    face: VerifiedSession,
    *,
    accept: bool,
    reason: str | None,
    assertion: dict[str, Any],
    request_id: str | None,
) -> tuple[Assignment, Assignment | None]:
    """The member's answer, once the face check and the passkey confirm it is theirs."""
    found = _open(db, clock, token)
    _checked(db, found, face)
    passkeys.verify_answer(
        db,
        clock,
        policy,
        assertion,
        face=face,
        call_up_id=found.call_up.id,
        request_id=request_id,
    )
    return call_up_answers.answer(db, clock, token, accept, reason)
