"""Signing in to a project from a scan: the face check of the committee (room QR, 1:few)
or of the assignee (personal QR, 1:1), then the expert's evaluation session.

The session is bound to the device that scanned and to a face check of a challenge issued
to that very scan, so a face session from elsewhere (another project, another phone) does
not sign anyone in. The same expert signing in from a second device passes their own face
check there, and the session is flagged for the supervisors.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from evaluation.committee import call_ups
from evaluation.committee.projects import ProjectAction, ProjectStatus, change_status
from evaluation.committee.tasks import OPEN_STATUSES, ScanSessionInvalid, seated_members
from evaluation.identity import consent, face_checks, one_time_codes, passkeys, session_ends
from evaluation.kernel import audit, outbox
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, InvalidTransition
from evaluation.kernel.rate_limits import Counter, Uncounted
from evaluation.kernel.tenancy import in_center
from evaluation.kernel.tokens import hash_token, new_secret
from evaluation.registry import unit_authority
from face.engine import FaceEngine
from models.clock import Clock
from models.tables import (
    Assignment,
    EvaluationSession,
    Expert,
    FaceChallenge,
    FaceTemplate,
    FaceVerification,
    Project,
    ScanSession,
    VerifiedSession,
)
from signing.field_cipher import FieldCipher

log = logging.getLogger("evalsign.sign_in")

SESSION_PREFIX = "eve_"


class TooManyChallenges(DomainError):
    status = 429
    code = "too-many-challenges"
    title = "This scan has used its face checks; scan the code again"


class NoOneToVerify(DomainError):
    status = 409
    code = "no-one-to-verify"
    title = "No seated committee member can take a face check for this project now"


class FaceCheckUnavailable(DomainError):
    status = 409
    code = "face-check-unavailable"
    title = "The face check cannot be set up for this committee now"


class SignInRefused(DomainError):
    status = 403
    code = "sign-in-refused"
    title = "The face check does not sign anyone in to this project from this scan"


class EvaluationSessionInvalid(DomainError):
    status = 401
    code = "evaluation-session-invalid"
    title = "The evaluation session is unknown, expired, revoked or for another device"


def candidates_for(db: Session, scan: ScanSession) -> list[str]:
    """Whom the face check may identify: the assignee, or every seated member who can
    take a check now (a locked-out or suspended member must not block the others)."""
    if scan.kind == "contract":
        return [unit_authority.link_person(db, scan)]
    if scan.assignment_id is not None:
        assignment = db.get(Assignment, scan.assignment_id)
        assert assignment is not None
        return [assignment.expert_id]
    seated = [a.expert_id for a in seated_members(db, scan.project_id)]
    locked = {lock.expert_id for lock in face_checks.open_locks(db, seated)}
    # Able to take a face check: active, consenting, enrolled.
    active = set(
        db.execute(
            select(Expert.id)
            .join(FaceTemplate, FaceTemplate.expert_id == Expert.id)
            .where(
                Expert.id.in_(seated),
                Expert.status == "active",
                Expert.face_consent_withdrawn_at.is_(None),
            )
        ).scalars()
    )
    return [expert_id for expert_id in seated if expert_id in active and expert_id not in locked]


def challenge_for_scan(
    db: Session,
    clock: Clock,
    cipher: FieldCipher,
    engine: FaceEngine,
    config: face_checks.LivenessConfig,
    scan: ScanSession,
    max_challenges: int,
    request_id: str | None,
    counter: Counter | None = None,
) -> face_checks.IssuedChallenge:
    """A liveness challenge for the phone that scanned, tied to its scan; `counter` caps a
    person's challenges across scans and phones."""
    consent.require_consent(scan)
    face_checks.refuse_if_device_locked(db, config, scan.center_id, scan.device_id, clock.now())
    issued = db.execute(
        select(func.count())
        .select_from(FaceChallenge)
        .where(FaceChallenge.scan_session_id == scan.id)
    ).scalar_one()
    if issued >= max_challenges:
        raise TooManyChallenges(f"this scan had {issued} face checks; scan the code again")
    candidates = candidates_for(db, scan)
    if not candidates:
        raise NoOneToVerify("no seated member of this project can take a face check now")
    face_checks.count_challenge(counter or Uncounted(), config, candidates)
    caller = audit.Caller(scan.center_id, f"scan:{scan.id}", None, request_id)
    try:
        with db.begin_nested():
            return face_checks.issue_challenge(
                db, caller, clock, cipher, engine, config, candidates, scan_session_id=scan.id
            )
    except DomainError as error:
        # The operator's error names experts; a phone that only scanned a code must not
        # learn who sits on the committee, so it gets the kind of failure alone.
        log.warning("face check for scan %s cannot be set up: %s", scan.id, error.detail)
        raise FaceCheckUnavailable(
            f"the face check cannot be set up now ({error.title.lower()}); ask the operator",
            cause=error.code,
        ) from error


@dataclass(frozen=True)
class SignedIn:
    session: EvaluationSession
    token: str
    assignment: Assignment
    project: Project


def _check_of_this_scan(db: Session, scan: ScanSession, face: VerifiedSession) -> FaceVerification:
    verification = db.get(FaceVerification, face.verification_id)
    assert verification is not None
    if verification.method == "face":
        challenge = db.get(FaceChallenge, verification.challenge_id)
        made_from = None if challenge is None else challenge.scan_session_id
    else:
        made_from = verification.scan_session_id  # a PIN under an in-person check
    if made_from != scan.id:
        raise SignInRefused("the face check was not made for this scan; take it from this scan")
    if not hmac.compare_digest(face.device_id, scan.device_id):
        raise SignInRefused("the face check was made on another device")
    return verification


@dataclass(frozen=True)
class SmsAnswer:
    nonce: str
    code: str


def sms_code(
    db: Session,
    clock: Clock,
    policy: one_time_codes.SmsPolicy,
    cipher: FieldCipher,
    scan: ScanSession,
    face: VerifiedSession,
) -> one_time_codes.SentCode:
    """After this scan's face check, where the center allows it: an SMS code to the
    registered mobile of the person it found, to answer in place of the passkey."""
    _check_of_this_scan(db, scan, face)
    return one_time_codes.send_sign_in_code(
        db, clock, policy, cipher, expert_id=face.expert_id, scan_session_id=scan.id
    )


def passkey_options(
    db: Session,
    clock: Clock,
    policy: passkeys.PasskeyPolicy,
    scan: ScanSession,
    face: VerifiedSession,
) -> dict[str, Any]:
    """After this scan's face check: the challenge a phone bound to the person it found
    must answer to sign in."""
    _check_of_this_scan(db, scan, face)
    return passkeys.sign_in_options(
        db, clock, policy, scan_session_id=scan.id, expert_id=face.expert_id
    )


def sign_in(
    db: Session,
    clock: Clock,
    scan: ScanSession,
    face: VerifiedSession,
    *,
    ttl: timedelta,
    policy: passkeys.PasskeyPolicy,
    passkey: dict[str, Any] | None,
    request_id: str | None,
    sms: SmsAnswer | None = None,
) -> SignedIn:
    """Turn a passed face check of this scan's challenge, joined by an assertion of the
    person's bound passkey, into an evaluation session. The in-person path (PIN under an
    operator's ID check) needs no passkey: it is a lower assurance, always flagged."""
    verification = _check_of_this_scan(db, scan, face)
    project = db.execute(
        select(Project).where(Project.id == scan.project_id).with_for_update()
    ).scalar_one()
    if project.status not in OPEN_STATUSES:
        raise SignInRefused(f"project {project.code} is {project.status}")
    seated = [a for a in seated_members(db, project.id) if a.expert_id == face.expert_id]
    if scan.assignment_id is not None:
        seated = [a for a in seated if a.id == scan.assignment_id]
    if not seated:
        raise SignInRefused("the verified expert holds no seat on this project's committee")
    assignment = seated[0]
    asserted = code = None
    if verification.method != passkeys.IN_PERSON_METHOD and sms is not None and passkey is None:
        # Where the center allows it, an SMS code stands in (a lower assurance, flagged).
        code = one_time_codes.verify_sign_in_code(
            db,
            clock,
            sms.nonce,
            sms.code,
            expert_id=face.expert_id,
            center_id=scan.center_id,
            scan_session_id=scan.id,
            request_id=request_id,
        )
    elif verification.method != passkeys.IN_PERSON_METHOD:
        if passkey is None:
            raise passkeys.require_assertion(
                scan.center_id,
                face.expert_id,
                request_id,
                {"purpose": "sign-in", "scan_session_id": scan.id},
            )
        asserted = passkeys.verify_sign_in(
            db,
            clock,
            policy,
            passkey,
            expert_id=face.expert_id,
            scan_session_id=scan.id,
            request_id=request_id,
        )
    now = clock.now()
    # Signing in for the seat answers its call-up: no deadline declines them after this.
    call_ups.close(db, assignment, "signed_in", now)
    others = db.execute(
        select(EvaluationSession.device_id).where(
            EvaluationSession.expert_id == face.expert_id,
            EvaluationSession.project_id == project.id,
            EvaluationSession.revoked_at.is_(None),
            EvaluationSession.expires_at > now,
        )
    ).scalars()
    second_device = any(device != scan.device_id for device in others)
    token = new_secret(SESSION_PREFIX)
    session = EvaluationSession(
        center_id=project.center_id,
        project_id=project.id,
        assignment_id=assignment.id,
        expert_id=face.expert_id,
        scan_session_id=scan.id,
        verification_id=verification.id,
        passkey_use_id=None if asserted is None else asserted.use.id,
        one_time_code_id=None if code is None else code.id,
        token_hash=hash_token(token),
        device_id=scan.device_id,
        flagged=second_device,
        flag_reason="second-device" if second_device else None,
        created_at=now,
        # Not cut at the window's end: signing the report often runs past it.
        expires_at=now + ttl,
    )
    # Atomic: of two sign-ins racing on one scan, one wins; the other is refused, not a 500.
    claimed = db.execute(
        update(ScanSession)
        .where(ScanSession.id == scan.id, ScanSession.signed_in_at.is_(None))
        .values(signed_in_at=now)
        .returning(ScanSession.id)
    ).first()
    if claimed is None:
        raise ScanSessionInvalid("this scan was already used to sign in; scan again")
    db.add(session)
    caller = audit.Caller(project.center_id, f"expert:{face.expert_id}", None, request_id)
    if project.status == ProjectStatus.DRAWN:  # the first member in starts the evaluation
        project.updated_at = now
        change_status(db, caller, clock, project, ProjectAction.START)
    db.flush()
    details: dict[str, Any] = {
        "project_id": project.id,
        "assignment_id": assignment.id,
        "scan_session_id": scan.id,
        "scan_kind": scan.kind,
        "verification_id": verification.id,
        "passkey_id": None if asserted is None else asserted.passkey.id,
        "device_id": scan.device_id,
    }
    audit.record(
        db, caller, clock, Action.EVALUATION_SIGNED_IN, "evaluation_session", session.id, details
    )
    if second_device:
        audit.record(
            db,
            caller,
            clock,
            Action.EVALUATION_SECOND_DEVICE,
            "evaluation_session",
            session.id,
            {**details, "flag": "second-device"},
        )
    _announce_if_seated(db, now, project)
    return SignedIn(session, token, assignment, project)


def _announce_if_seated(db: Session, now: datetime, project: Project) -> None:
    """The committee is seated once every seat is held by a member who signed in: the
    platform is told (once), with the number of seats and nothing about who holds them."""
    seats = sum(int(spec["seats"]) for spec in project.committee_spec)
    members = {m.id for m in seated_members(db, project.id)}
    signed_in = set(
        db.scalars(
            select(EvaluationSession.assignment_id).where(
                EvaluationSession.project_id == project.id
            )
        )
    )
    if len(members) == seats and members <= signed_in:
        outbox.committee_seated(db, now, project, seats)


def authenticate(
    db: Session, token: str, device_id: str | None, now: datetime
) -> EvaluationSession:
    """The live evaluation session a token names, used from the device it was bound to."""
    session = db.execute(
        select(EvaluationSession).where(EvaluationSession.token_hash == hash_token(token))
    ).scalar_one_or_none()
    if session is None or session.revoked_at is not None or now >= session.expires_at:
        raise EvaluationSessionInvalid("the evaluation session is unknown, revoked or expired")
    if device_id is None or not hmac.compare_digest(session.device_id, device_id):
        raise EvaluationSessionInvalid("the evaluation session belongs to another device")
    return session


def sessions_of(db: Session, center_id: str, project_id: str) -> list[EvaluationSession]:
    return list(
        db.execute(
            select(EvaluationSession)
            .where(
                EvaluationSession.center_id == center_id,
                EvaluationSession.project_id == project_id,
            )
            .order_by(EvaluationSession.created_at, EvaluationSession.id)
        ).scalars()
    )


def revoke(
    db: Session, caller: audit.Caller, clock: Clock, session_id: str, reason: str
) -> EvaluationSession:
    """End one evaluation session (a lost phone, a flagged second device); the expert keeps
    their seat and scores and signs in again with a new scan and face check."""
    session = in_center(
        db, EvaluationSession, session_id, caller.center_id, "evaluation session", lock=True
    )
    if session.revoked_at is not None:
        raise InvalidTransition("the session is already revoked", current_status="revoked")
    now = session.revoked_at = clock.now()
    # A face session on that phone, or a SAD issued on one, must not outlive it.
    face_sessions = session_ends.end_face_sessions(
        db, now, expert_id=session.expert_id, device_id=session.device_id
    )
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.EVALUATION_SESSION_REVOKED,
        "evaluation_session",
        session.id,
        {
            "project_id": session.project_id,
            "expert_id": session.expert_id,
            "device_id": session.device_id,
            "reason": reason,
            "face_sessions_ended": face_sessions,
        },
    )
    return session
