"""Binding a phone to a person at the desk: after reading the ID card, an operator starts
a binding; the first phone to open its one-time QR passes a face check against the
enrolled face and registers its passkey (user verification required). A lost phone is
revoked by the operator; every phone ever bound stays listed."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from evaluation.identity import face_checks, session_ends
from evaluation.identity.passkeys import (
    PasskeyForeign,
    PasskeyPolicy,
    active_passkeys,
    rejection_error,
    with_refusal,
)
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, NotFound
from evaluation.kernel.rate_limits import Counter, Uncounted
from evaluation.kernel.tokens import hash_token, new_secret
from evaluation.registry.experts import person_in_center, require_id_number
from face.engine import FaceEngine
from models.clock import Clock
from models.tables import (
    Expert,
    FaceChallenge,
    FaceTemplate,
    FaceVerification,
    Passkey,
    PasskeyEnrollment,
    VerifiedSession,
)
from signing import webauthn
from signing.field_cipher import FieldCipher
from signing.webauthn import PasskeyRejected, b64url

ENROLLMENT_PREFIX = "evb_"


# Face checks one binding QR may ask for before the operator must start a new one.
MAX_ENROLLMENT_CHALLENGES = 3


class PasskeyLimit(DomainError):
    status = 409
    code = "passkey-limit"
    title = "This person has as many bound phones as allowed; revoke one first"


class EnrollmentInvalid(DomainError):
    status = 410
    code = "passkey-enrollment-invalid"
    title = "This binding QR is unknown, used or expired; ask the operator for a new one"


class EnrollmentOtherDevice(DomainError):
    status = 409
    code = "passkey-enrollment-other-device"
    title = "Another phone already opened this binding QR"


class EnrollmentNotReady(DomainError):
    status = 409
    code = "passkey-enrollment-not-ready"
    title = "Pass the face check of this binding first"


class DeviceIdInvalid(DomainError):
    status = 422
    code = "device-id-invalid"
    title = "Send the phone's device id (at most 100 characters) as X-Device-Id"


class NoFaceEnrolled(DomainError):
    status = 409
    code = "no-face-enrolled"
    title = "Enroll the person's face before binding a phone"


def passkeys_of(db: Session, center_id: str, expert_id: str) -> list[Passkey]:
    """Every phone ever bound to the person, revoked ones included, oldest first."""
    person_in_center(db, center_id, expert_id)
    return list(
        db.execute(
            select(Passkey).where(Passkey.expert_id == expert_id).order_by(Passkey.created_at)
        ).scalars()
    )


def start_enrollment(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    cipher: FieldCipher,
    policy: PasskeyPolicy,
    *,
    expert_id: str,
    id_number: str,
) -> tuple[PasskeyEnrollment, str]:
    """The operator has the person's ID card in hand: a one-time binding QR for their
    phone. Returns the enrollment and its token (shown once, stored hashed)."""
    expert = person_in_center(db, caller.center_id, expert_id)
    require_id_number(cipher, expert, id_number)
    if expert.status != "active":
        raise face_checks.ExpertNotActive(f"{expert.name} is {expert.status}")
    enrolled = db.execute(
        select(FaceTemplate.expert_id).where(FaceTemplate.expert_id == expert.id)
    ).first()
    if enrolled is None or expert.face_consent_withdrawn_at is not None:
        raise NoFaceEnrolled("the phone's binding starts with a face check against it")
    if len(active_passkeys(db, expert.id)) >= policy.max_devices:
        raise PasskeyLimit(f"{policy.max_devices} phones are bound already")
    token = new_secret(ENROLLMENT_PREFIX)
    enrollment = new_enrollment(
        db, caller, clock, policy, expert_id=expert.id, token=token, started_by=caller.actor
    )
    return enrollment, token


def new_enrollment(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    policy: PasskeyPolicy,
    *,
    expert_id: str,
    token: str,
    started_by: str,
    device_id: str | None = None,
    face_challenge_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> PasskeyEnrollment:
    """A binding, started and logged: at the desk (its QR's token, opened by the first
    phone later), or on a contract link (already on its phone, after its face check)."""
    now = clock.now()
    enrollment = PasskeyEnrollment(
        center_id=caller.center_id,
        expert_id=expert_id,
        token_hash=hash_token(token),
        started_by=started_by,
        created_at=now,
        expires_at=now + policy.enrollment_ttl,
        device_id=device_id,
        opened_at=now if device_id is not None else None,
        face_challenge_id=face_challenge_id,
    )
    db.add(enrollment)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.PASSKEY_ENROLLMENT_STARTED,
        "passkey_enrollment",
        enrollment.id,
        {
            "expert_id": expert_id,
            **(details or {}),
            "expires_at": enrollment.expires_at.isoformat(),
        },
    )
    return enrollment


def open_enrollment(db: Session, clock: Clock, token: str, device_id: str) -> PasskeyEnrollment:
    """The binding a phone's QR names; the first phone to open it keeps it."""
    if not device_id or len(device_id) > 100:
        raise DeviceIdInvalid(f"a device id of {len(device_id or '')} characters")
    enrollment = db.execute(
        select(PasskeyEnrollment)
        .where(PasskeyEnrollment.token_hash == hash_token(token.strip()))
        .with_for_update()
    ).scalar_one_or_none()
    now = clock.now()
    if enrollment is None or enrollment.completed_at is not None or now >= enrollment.expires_at:
        raise EnrollmentInvalid("ask the operator to start the binding again")
    if enrollment.device_id is None:
        claimed = db.execute(
            update(PasskeyEnrollment)
            .where(PasskeyEnrollment.id == enrollment.id, PasskeyEnrollment.device_id.is_(None))
            .values(device_id=device_id, opened_at=now)
            .returning(PasskeyEnrollment.id)
        ).first()
        db.refresh(enrollment)
        if claimed is None and enrollment.device_id != device_id:
            raise _other_device(enrollment, device_id)
    elif enrollment.device_id != device_id:
        raise _other_device(enrollment, device_id)
    return enrollment


def _other_device(enrollment: PasskeyEnrollment, device_id: str) -> DomainError:
    """Someone else's phone at a binding QR (a photographed screen?): refused, and logged
    for the operator and the supervisors."""
    error = EnrollmentOtherDevice("this binding continues on the phone that opened it")
    details = {
        "reason": error.code,
        "expert_id": enrollment.expert_id,
        "device_id": device_id,
        "first_device_id": enrollment.device_id,
    }
    return with_refusal(error, enrollment.center_id, f"device:{device_id}", None, details)


def person_name(db: Session, enrollment: PasskeyEnrollment) -> str:
    expert = db.get(Expert, enrollment.expert_id)
    assert expert is not None
    return expert.name


def enrollment_challenge(
    db: Session,
    clock: Clock,
    cipher: FieldCipher,
    engine: FaceEngine,
    config: face_checks.LivenessConfig,
    enrollment: PasskeyEnrollment,
    request_id: str | None,
    counter: Counter | None = None,
) -> face_checks.IssuedChallenge:
    """The face check the binding starts with: 1:1 against the person's template."""
    actor = f"passkey-enrollment:{enrollment.id}"
    issued = db.execute(
        select(func.count()).select_from(FaceChallenge).where(FaceChallenge.issued_by == actor)
    ).scalar_one()
    if issued >= MAX_ENROLLMENT_CHALLENGES:
        raise EnrollmentInvalid("this binding used its face checks; start it again")
    if enrollment.device_id is not None:
        face_checks.refuse_if_device_locked(
            db, config, enrollment.center_id, enrollment.device_id, clock.now()
        )
    face_checks.count_challenge(counter or Uncounted(), config, [enrollment.expert_id])
    caller = audit.Caller(enrollment.center_id, actor, None, request_id)
    challenge = face_checks.issue_challenge(
        db, caller, clock, cipher, engine, config, [enrollment.expert_id]
    )
    enrollment.face_challenge_id = challenge.challenge.id
    db.flush()
    return challenge


def _face_of_enrollment(
    db: Session, enrollment: PasskeyEnrollment, face: VerifiedSession
) -> FaceVerification:
    verification = db.get(FaceVerification, face.verification_id)
    if (
        verification is None
        or enrollment.face_challenge_id is None
        or verification.challenge_id != enrollment.face_challenge_id
        or face.expert_id != enrollment.expert_id
        or face.device_id != enrollment.device_id
    ):
        raise EnrollmentNotReady("the face check must be this binding's, on this phone")
    return verification


def registration_options(
    db: Session,
    clock: Clock,
    policy: PasskeyPolicy,
    enrollment: PasskeyEnrollment,
    face: VerifiedSession,
) -> dict[str, Any]:
    """After the binding's face check: what the phone's navigator.credentials.create()
    needs. The challenge is stored hashed on the binding."""
    _face_of_enrollment(db, enrollment, face)
    expert = db.get(Expert, enrollment.expert_id)
    assert expert is not None
    challenge = secrets.token_bytes(32)
    enrollment.registration_challenge_hash = hash_token(b64url(challenge))
    db.flush()
    return webauthn.creation_options(
        policy.rp,
        user_id=expert.id.encode(),
        user_name=f"{expert.name} ({expert.id[:8]})",
        display_name=expert.name,
        challenge=challenge,
        exclude=[webauthn.from_b64url(p.credential_id) for p in active_passkeys(db, expert.id)],
        timeout_ms=PasskeyPolicy.TIMEOUT_MS,
    )


def complete_enrollment(
    db: Session,
    clock: Clock,
    policy: PasskeyPolicy,
    enrollment: PasskeyEnrollment,
    face: VerifiedSession,
    response: dict[str, Any],
    *,
    label: str,
    request_id: str | None,
) -> Passkey:
    """Check the phone's new passkey against the binding's challenge and bind it."""
    verification = _face_of_enrollment(db, enrollment, face)
    actor = f"passkey-enrollment:{enrollment.id}"
    details = {"expert_id": enrollment.expert_id, "device_id": enrollment.device_id}
    if enrollment.registration_challenge_hash is None:
        raise EnrollmentNotReady("ask for the passkey options first")
    try:
        client = webauthn.client_challenge(response)
        if hash_token(b64url(client)) != enrollment.registration_challenge_hash:
            raise PasskeyRejected("passkey-challenge", "not this binding's challenge")
        new = webauthn.verify_registration(policy.rp, response, challenge=client)
    except PasskeyRejected as rejected:
        raise with_refusal(
            rejection_error(rejected), enrollment.center_id, actor, request_id, details
        ) from None
    if len(active_passkeys(db, enrollment.expert_id)) >= policy.max_devices:
        raise PasskeyLimit(f"{policy.max_devices} phones are bound already")
    credential_id = b64url(new.credential_id)
    if db.execute(select(Passkey.id).where(Passkey.credential_id == credential_id)).first():
        raise with_refusal(
            PasskeyForeign("this passkey is bound already"),
            enrollment.center_id,
            actor,
            request_id,
            details,
        )
    now = clock.now()
    # Single use: the binding is spent whatever a concurrent request did.
    spent = db.execute(
        update(PasskeyEnrollment)
        .where(PasskeyEnrollment.id == enrollment.id, PasskeyEnrollment.completed_at.is_(None))
        .values(completed_at=now)
        .returning(PasskeyEnrollment.id)
    ).first()
    if spent is None:
        raise EnrollmentInvalid("this binding QR was used already")
    sent = response.get("response")
    transports = sent.get("transports") if isinstance(sent, dict) else None
    if not isinstance(transports, list):
        transports = []
    passkey = Passkey(
        center_id=enrollment.center_id,
        expert_id=enrollment.expert_id,
        credential_id=credential_id,
        public_key=new.public_key,
        algorithm=new.algorithm,
        sign_count=new.sign_count,
        aaguid=new.aaguid,
        transports=[str(t)[:20] for t in transports][:8],
        backup_eligible=new.backup_eligible,
        label=label[:200],
        device_id=enrollment.device_id or face.device_id,
        enrollment_id=enrollment.id,
        verification_id=verification.id,
        witnessed_by=enrollment.started_by,
        created_at=now,
    )
    db.add(passkey)
    db.flush()
    caller = audit.Caller(enrollment.center_id, f"expert:{enrollment.expert_id}", None, request_id)
    audit.record(
        db,
        caller,
        clock,
        Action.PASSKEY_BOUND,
        "passkey",
        passkey.id,
        {
            "expert_id": passkey.expert_id,
            "credential_id": credential_id,
            "aaguid": passkey.aaguid,
            "device_id": passkey.device_id,
            "verification_id": verification.id,
            "witnessed_by": passkey.witnessed_by,
            "enrollment_id": enrollment.id,
        },
    )
    return passkey


def revoke_passkey(
    db: Session,
    caller: audit.Caller,
    clock: Clock,
    *,
    expert_id: str,
    passkey_id: str,
    reason: str,
) -> Passkey:
    """A lost or replaced phone: its passkey no longer signs anyone in or anything."""
    person_in_center(db, caller.center_id, expert_id)
    passkey = db.get(Passkey, passkey_id, with_for_update=True)
    if passkey is None or passkey.expert_id != expert_id:
        raise NotFound(f"no bound phone {passkey_id} for this person")
    if passkey.revoked_at is None:
        now = passkey.revoked_at = clock.now()
        passkey.revoked_by = caller.actor
        passkey.revoke_reason = reason
        # Whatever that phone proved is over: its face sessions and their unused SADs.
        session_ends.end_face_sessions(db, now, expert_id=expert_id, device_id=passkey.device_id)
        db.flush()
        audit.record(
            db,
            caller,
            clock,
            Action.PASSKEY_REVOKED,
            "passkey",
            passkey.id,
            {"expert_id": expert_id, "reason": reason},
        )
    return passkey
