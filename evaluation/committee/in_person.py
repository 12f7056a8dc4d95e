"""The non-face path: an operator's in-person ID check plus the person's signing PIN.

Face recognition may not be the only way to take part where another exists (Measures for
the Security Management of Face Recognition Technology Applications, 2025). A person who
refuses or withdraws consent sets a six-digit signing PIN at the center desk once, after
the operator has checked their ID card (`set_signing_pin`). For each project they attend
in person, the operator checks the card again (`check_in_person`); while that check is
open, the PIN entered on the person's phone stands in for a face check (`verify_pin`).

What a PIN yields is the same verified session a face check yields, so signing in and the
signature activation rules (freshness, single-use SAD) are unchanged. The verification
records its method, `in-person-pin`: a lower assurance than a face match, which the
signature records name and the `in-person-path` anomaly rule always shows supervisors.
Wrong PINs are stored outcomes like failed face checks; too many void the in-person check,
and the operator has to check the card again.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.committee.projects import get_project
from evaluation.committee.tasks import seated_members
from evaluation.identity import passkeys
from evaluation.identity.face_checks import open_session
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError
from evaluation.kernel.tenancy import in_center
from evaluation.registry.experts import (
    id_number_context,
    id_number_index,
    require_id_number,
)
from models.clock import Clock
from models.settings import Settings
from models.tables import (
    EvaluationSession,
    Expert,
    FaceVerification,
    InPersonCheck,
    ScanSession,
    VerifiedSession,
)
from signing.field_cipher import FieldCipher
from signing.pin_hash import hash_pin, pin_matches

METHOD = passkeys.IN_PERSON_METHOD
DOCUMENTS = ("id-card", "passport", "residence-permit")


class PinWeak(DomainError):
    status = 422
    code = "pin-weak"
    title = "The PIN must be six digits and not easy to guess"


class PinNotSet(DomainError):
    status = 409
    code = "pin-not-set"
    title = "The person has no signing PIN; set one at the center desk first"


class NotOnCommittee(DomainError):
    status = 409
    code = "not-on-committee"
    title = "The person holds no seat on this project's committee"


class InPersonCheckOpen(DomainError):
    status = 409
    code = "in-person-check-open"
    title = "The person already has an open in-person check for this project"


class InPersonCheckRequired(DomainError):
    status = 403
    code = "in-person-check-required"
    title = (
        "No open in-person ID check lets a PIN stand in for a face check here; see the "
        "operator at the center"
    )


class IdNumberRequired(DomainError):
    status = 422
    code = "id-number-required"
    title = "A room code does not say who you are: give your ID number with the PIN"


@dataclass(frozen=True)
class PinPolicy:
    log2_n: int
    check_ttl: timedelta
    max_failures: int
    session_ttl: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> PinPolicy:
        return cls(
            log2_n=settings.pin_scrypt_log2_n,
            check_ttl=timedelta(seconds=settings.in_person_check_ttl_s),
            max_failures=settings.pin_max_failures,
            session_ttl=timedelta(seconds=settings.liveness_session_ttl_s),
        )


def weak_pin_reason(pin: str, id_number: str) -> str | None:
    """Why a PIN is too easy to guess, or None. Six digits; not one digit repeated, not a
    run up or down, not the birth date or the tail of the ID number it guards."""
    if len(pin) != 6 or not pin.isascii() or not pin.isdigit():
        return "the PIN must be exactly six digits"
    if len(set(pin)) == 1:
        return "the PIN repeats one digit"
    steps = {int(b) - int(a) for a, b in itertools.pairwise(pin)}
    if steps in ({1}, {-1}):
        return "the PIN is a run of consecutive digits"
    birth = id_number[6:14]  # YYYYMMDD in an 18-character resident ID number
    if pin in {birth[2:], birth[4:] + birth[2:4], id_number[-6:], id_number[-7:-1]}:
        return "the PIN comes from the ID number or the birth date"
    return None


def _expert(db: Session, center_id: str, expert_id: str, *, lock: bool = False) -> Expert:
    return in_center(db, Expert, expert_id, center_id, "person", lock=lock)


def set_signing_pin(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    policy: PinPolicy,
    expert_id: str,
    id_number: str,
    pin: str,
) -> Expert:
    """The person chooses their signing PIN at the desk after the operator read their ID
    card; a new PIN replaces the old one. The PIN itself is never logged."""
    expert = _expert(db, caller.center_id, expert_id, lock=True)
    require_id_number(cipher, expert, id_number)
    registered = cipher.decrypt(expert.id_number_ciphertext, id_number_context(expert.id))
    reason = weak_pin_reason(pin, registered)
    if reason is not None:
        raise PinWeak(reason)
    replaced = expert.pin_hash is not None
    expert.pin_hash = hash_pin(pin, policy.log2_n)
    expert.pin_set_at = clock.now()
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.IDENTITY_PIN_SET,
        "expert",
        expert.id,
        {"replaced": replaced, "id_document_checked": True},
    )
    return expert


def open_check(
    db: Session, project_id: str, expert_id: str, now: datetime, *, lock: bool = False
) -> InPersonCheck | None:
    query = select(InPersonCheck).where(
        InPersonCheck.project_id == project_id,
        InPersonCheck.expert_id == expert_id,
        InPersonCheck.voided_at.is_(None),
        InPersonCheck.expires_at > now,
    )
    if lock:
        query = query.with_for_update()
    return db.execute(query.order_by(InPersonCheck.created_at.desc())).scalars().first()


def check_in_person(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    policy: PinPolicy,
    project_id: str,
    expert_id: str,
    id_number: str,
    document: str,
    note: str | None,
) -> InPersonCheck:
    """The operator saw the person and their ID document at the center, for this project."""
    project = get_project(db, caller.center_id, project_id, lock=True)
    expert = _expert(db, caller.center_id, expert_id)
    require_id_number(cipher, expert, id_number)
    if expert.pin_hash is None:
        raise PinNotSet("the person has no signing PIN; set one first")
    if not any(a.expert_id == expert.id for a in seated_members(db, project.id)):
        raise NotOnCommittee(f"{expert.name} holds no seat on project {project.code}")
    now = clock.now()
    if open_check(db, project.id, expert.id, now) is not None:
        raise InPersonCheckOpen("an in-person check for this person and project is open")
    check = InPersonCheck(
        center_id=project.center_id,
        project_id=project.id,
        expert_id=expert.id,
        checked_by=caller.actor,
        document=document,
        note=note,
        created_at=now,
        expires_at=now + policy.check_ttl,
        pin_failures=0,
    )
    db.add(check)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.IDENTITY_IN_PERSON_CHECKED,
        "in_person_check",
        check.id,
        {
            "project_id": project.id,
            "expert_id": expert.id,
            "document": document,
            "expires_at": check.expires_at.isoformat(),
            "assurance": METHOD,
        },
    )
    return check


def void_check(
    db: Session, caller: audit.Caller, clock: Clock, check_id: str, reason: str
) -> InPersonCheck:
    check = in_center(db, InPersonCheck, check_id, caller.center_id, "in-person check", lock=True)
    if check.voided_at is None:
        _void(db, caller, clock, check, reason)
    return check


def _void(
    db: Session, caller: audit.Caller, clock: Clock, check: InPersonCheck, reason: str
) -> None:
    check.voided_at = clock.now()
    check.void_reason = reason
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.IDENTITY_IN_PERSON_CHECK_VOIDED,
        "in_person_check",
        check.id,
        {"project_id": check.project_id, "expert_id": check.expert_id, "reason": reason},
    )


def checks_of(db: Session, center_id: str, project_id: str) -> list[InPersonCheck]:
    return list(
        db.execute(
            select(InPersonCheck)
            .where(InPersonCheck.center_id == center_id, InPersonCheck.project_id == project_id)
            .order_by(InPersonCheck.created_at, InPersonCheck.id)
        ).scalars()
    )


@dataclass(frozen=True)
class Device:
    device_id: str
    client_ip: str | None
    user_agent: str | None
    request_id: str | None


@dataclass(frozen=True)
class PinOutcome:
    verification: FaceVerification
    session: VerifiedSession | None
    session_token: str | None
    attempts_remaining: int
    voided: bool


def whose_scan(db: Session, cipher: FieldCipher, scan: ScanSession, id_number: str | None) -> str:
    """The person a scan's PIN entry is for: the assignee of a personal code; on a room
    code, the seated member with this ID number (the page lists no names)."""
    if scan.kind == "contract":
        raise InPersonCheckRequired("contracts are signed with a face check")
    seated = seated_members(db, scan.project_id)
    if scan.assignment_id is not None:
        seated = [a for a in seated if a.id == scan.assignment_id]
        if seated:
            return seated[0].expert_id
    elif id_number is None:
        raise IdNumberRequired("give your ID number with the PIN")
    else:
        index = id_number_index(cipher, scan.center_id, id_number)
        found = db.execute(
            select(Expert.id).where(
                Expert.center_id == scan.center_id,
                Expert.id_number_index == index,
                Expert.id.in_([a.expert_id for a in seated]),
            )
        ).scalar_one_or_none()
        if found is not None:
            return found
    # The same answer whether or not the number is a member's: a scan learns nothing.
    raise InPersonCheckRequired("no open in-person check matches; see the operator")


def verify_pin(
    db: Session,
    clock: Clock,
    policy: PinPolicy,
    *,
    center_id: str,
    project_id: str,
    expert_id: str,
    scan_session_id: str,
    pin: str,
    device: Device,
) -> PinOutcome:
    """A PIN entered under an open in-person check: a passed verification of method
    in-person-pin with its verified session, or a stored failure."""
    now = clock.now()
    check = open_check(db, project_id, expert_id, now, lock=True)
    expert = db.get(Expert, expert_id)
    if check is None or expert is None or expert.status != "active":
        raise InPersonCheckRequired("no open in-person check matches; see the operator")
    if expert.pin_hash is None:
        raise PinNotSet("the person has no signing PIN; set one at the center desk")
    passed = pin_matches(pin, expert.pin_hash)
    check.pin_failures = 0 if passed else check.pin_failures + 1
    caller = audit.Caller(center_id, f"expert:{expert_id}", None, device.request_id)
    values: dict[str, Any] = {
        "in_person_check_id": check.id,
        "checked_by": check.checked_by,
        "document": check.document,
        "checked_at": check.created_at.isoformat(),
    }
    verification = FaceVerification(
        center_id=center_id,
        method=METHOD,
        challenge_id=None,
        in_person_check_id=check.id,
        scan_session_id=scan_session_id,
        mode="1:1",
        candidate_ids=[expert_id],
        expert_id=expert_id,
        passed=passed,
        reasons=[] if passed else ["pin-wrong"],
        checks=[
            {
                "check": "in-person-id",
                "passed": True,
                "reason": None,
                "detail": "an operator checked the ID document at the center",
                "values": values,
            },
            {
                "check": "pin",
                "passed": passed,
                "reason": None if passed else "pin-wrong",
                "detail": "the signing PIN (a lower assurance than a face match)",
                "values": {"failures": check.pin_failures},
            },
        ],
        similarity=None,
        model_id=METHOD,
        device_id=device.device_id,
        device={"id": device.device_id},
        client_ip=device.client_ip,
        user_agent=device.user_agent,
        frame_count=0,
        frame_hashes=[],
        frames=[],
        frames_retained=False,
        created_at=now,
    )
    db.add(verification)
    db.flush()
    details = {
        "verification_id": verification.id,
        "method": METHOD,
        "project_id": project_id,
        "in_person_check_id": check.id,
        "device_id": device.device_id,
        "client_ip": device.client_ip,
    }
    if not passed:
        audit.record(
            db,
            caller,
            clock,
            Action.IDENTITY_PIN_FAILED,
            "face_verification",
            verification.id,
            details,
        )
        voided = check.pin_failures >= policy.max_failures
        if voided:
            _void(db, caller, clock, check, "too-many-wrong-pins")
        remaining = max(0, policy.max_failures - check.pin_failures)
        return PinOutcome(verification, None, None, 0 if voided else remaining, voided)
    token, session = open_session(db, verification, device.device_id, now, policy.session_ttl)
    audit.record(
        db,
        caller,
        clock,
        Action.IDENTITY_PIN_VERIFIED,
        "face_verification",
        verification.id,
        {**details, "session_id": session.id},
    )
    return PinOutcome(verification, session, token, policy.max_failures, False)


def verify_pin_for_scan(
    db: Session,
    clock: Clock,
    cipher: FieldCipher,
    policy: PinPolicy,
    scan: ScanSession,
    id_number: str | None,
    pin: str,
    device: Device,
) -> PinOutcome:
    """The PIN entered on the phone that scanned a task code, before signing in."""
    expert_id = whose_scan(db, cipher, scan, id_number)
    return verify_pin(
        db,
        clock,
        policy,
        center_id=scan.center_id,
        project_id=scan.project_id,
        expert_id=expert_id,
        scan_session_id=scan.id,
        pin=pin,
        device=device,
    )


def verify_pin_for_session(
    db: Session,
    clock: Clock,
    policy: PinPolicy,
    session: EvaluationSession,
    pin: str,
    device: Device,
) -> PinOutcome:
    """The PIN entered by a signed-in member, e.g. to sign the report (a fresh check)."""
    return verify_pin(
        db,
        clock,
        policy,
        center_id=session.center_id,
        project_id=session.project_id,
        expert_id=session.expert_id,
        scan_session_id=session.scan_session_id,
        pin=pin,
        device=device,
    )


def method_of(db: Session, verification_id: str | None) -> str | None:
    if verification_id is None:
        return None
    return db.execute(
        select(FaceVerification.method).where(FaceVerification.id == verification_id)
    ).scalar_one_or_none()
