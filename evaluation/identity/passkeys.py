"""Passkeys: the person's own phone as the possession factor beside the face (sole control).

A web page cannot prove that its frames come from a camera, so a face check alone never
signs anyone in or signs anything. At the desk, after reading the ID card, an operator
starts a binding; the person's phone opens its one-time QR, passes a face check against
the enrolled template and registers a passkey (user verification required). From then on
a sign-in needs the face check plus an assertion of a bound passkey to a challenge tied to
the scan, and a signature needs an assertion whose challenge commits to exactly the hashes
it signs. Every assertion is kept as evidence anyone can verify offline.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from evaluation.identity import face_checks
from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError, NotFound
from evaluation.registry.experts import require_id_number
from evaluation.registry.staff import hash_token
from face.engine import FaceEngine
from models.clock import Clock
from models.settings import Settings
from models.tables import (
    Expert,
    FaceChallenge,
    FaceTemplate,
    FaceVerification,
    Passkey,
    PasskeyChallenge,
    PasskeyEnrollment,
    PasskeyUse,
    VerifiedSession,
)
from signing import webauthn
from signing.field_cipher import FieldCipher
from signing.webauthn import PasskeyRejected, RelyingParty, b64url

ENROLLMENT_PREFIX = "evb_"
# Face checks one binding QR may ask for before the operator must start a new one.
MAX_ENROLLMENT_CHALLENGES = 3


class PasskeyError(DomainError):
    """A passkey step that does not verify: refused, audited, and nothing granted."""

    status = 403
    code = "passkey-refused"
    title = "The passkey did not verify"


class PasskeyMalformed(PasskeyError):
    status = 422
    code = "passkey-malformed"
    title = "The passkey response is not a well-formed WebAuthn answer"


class PasskeyOriginMismatch(PasskeyError):
    code = "passkey-origin"
    title = "The passkey answered a page of another site"


class PasskeyRpIdMismatch(PasskeyError):
    code = "passkey-rp-id"
    title = "The passkey belongs to another site (RP id)"


class PasskeyChallengeMismatch(PasskeyError):
    code = "passkey-challenge"
    title = "The passkey answered another challenge than the one for this request"


class PasskeyUserNotVerified(PasskeyError):
    code = "passkey-user-not-verified"
    title = "The phone did not verify its user (screen lock PIN, fingerprint or face)"


class PasskeySignatureInvalid(PasskeyError):
    code = "passkey-signature"
    title = "The passkey's signature does not verify"


class PasskeyReplayed(PasskeyError):
    code = "passkey-replayed"
    title = "The passkey's counter did not move on: a replayed or cloned answer"


class PasskeyUnknown(PasskeyError):
    code = "passkey-unknown"
    title = "This passkey is not bound to anyone at this center"


class PasskeyForeign(PasskeyError):
    code = "passkey-foreign"
    title = "This passkey is bound to another person"


class PasskeyRevoked(PasskeyError):
    code = "passkey-revoked"
    title = "This phone's binding was revoked; bind the phone again at the desk"


class PasskeyChallengeUsed(PasskeyError):
    status = 409
    code = "passkey-challenge-used"
    title = "This passkey challenge was already answered; ask for a new one"


class PasskeyChallengeExpired(PasskeyError):
    status = 409
    code = "passkey-challenge-expired"
    title = "This passkey challenge expired; ask for a new one"


class PasskeyRequired(DomainError):
    status = 403
    code = "passkey-required"
    title = "A face check alone is not enough: approve with the passkey of your bound phone"


class PasskeyNotBound(DomainError):
    status = 403
    code = "passkey-not-bound"
    title = "No phone is bound to this person: bind one at the center desk first"


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


class NoFaceEnrolled(DomainError):
    status = 409
    code = "no-face-enrolled"
    title = "Enroll the person's face before binding a phone"


_REJECTIONS: dict[str, type[PasskeyError]] = {
    cls.code: cls
    for cls in (
        PasskeyMalformed,
        PasskeyOriginMismatch,
        PasskeyRpIdMismatch,
        PasskeyChallengeMismatch,
        PasskeyUserNotVerified,
        PasskeySignatureInvalid,
        PasskeyReplayed,
    )
}


@dataclass(frozen=True)
class PasskeyPolicy:
    rp: RelyingParty
    max_devices: int
    enrollment_ttl: timedelta
    challenge_ttl: timedelta

    TIMEOUT_MS: ClassVar[int] = 120_000

    @classmethod
    def from_settings(cls, settings: Settings) -> PasskeyPolicy:
        return cls(
            rp=relying_party(settings),
            max_devices=settings.passkey_max_devices,
            enrollment_ttl=timedelta(seconds=settings.passkey_enrollment_ttl_s),
            challenge_ttl=timedelta(seconds=settings.passkey_challenge_ttl_s),
        )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def relying_party(settings: Settings) -> RelyingParty:
    """The RP id and origins from the settings: the public URL's host unless set, and
    `localhost` when that host is an address (WebAuthn refuses IP addresses)."""
    public = urlsplit(settings.public_url)
    host = public.hostname or "localhost"
    rp_id = settings.webauthn_rp_id or ("localhost" if _is_address(host) else host)
    origins = {o.strip().rstrip("/") for o in settings.webauthn_origins.split(",") if o.strip()}
    if not origins:
        origins.add(f"{public.scheme}://{public.netloc}")
        if rp_id == "localhost":
            port = f":{public.port}" if public.port else ""
            origins.add(f"{public.scheme}://localhost{port}")
    return RelyingParty(rp_id=rp_id, origins=frozenset(origins))


def rp_id_is_address(settings: Settings) -> bool:
    """True when phones reach the service by IP address: they could not bind a passkey."""
    host = urlsplit(settings.public_url).hostname or ""
    return (
        settings.webauthn_rp_id is None and _is_address(host) and host not in ("127.0.0.1", "::1")
    )


# ---- binding a phone at the desk -------------------------------------------------------


def active_passkeys(db: Session, expert_id: str) -> list[Passkey]:
    return list(
        db.execute(
            select(Passkey)
            .where(Passkey.expert_id == expert_id, Passkey.revoked_at.is_(None))
            .order_by(Passkey.created_at)
        ).scalars()
    )


def passkeys_of(db: Session, center_id: str, expert_id: str) -> list[Passkey]:
    """Every phone ever bound to the person, revoked ones included, oldest first."""
    _expert(db, center_id, expert_id)
    return list(
        db.execute(
            select(Passkey).where(Passkey.expert_id == expert_id).order_by(Passkey.created_at)
        ).scalars()
    )


def _expert(db: Session, center_id: str, expert_id: str) -> Expert:
    expert = db.get(Expert, expert_id)
    if expert is None or expert.center_id != center_id:
        raise NotFound(f"no person {expert_id} in this center")
    return expert


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
    expert = _expert(db, caller.center_id, expert_id)
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
    now = clock.now()
    token = ENROLLMENT_PREFIX + secrets.token_urlsafe(32)
    enrollment = PasskeyEnrollment(
        center_id=caller.center_id,
        expert_id=expert.id,
        token_hash=hash_token(token),
        started_by=caller.actor,
        created_at=now,
        expires_at=now + policy.enrollment_ttl,
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
        {"expert_id": expert.id, "expires_at": enrollment.expires_at.isoformat()},
    )
    return enrollment, token


def open_enrollment(db: Session, clock: Clock, token: str, device_id: str) -> PasskeyEnrollment:
    """The binding a phone's QR names; the first phone to open it keeps it."""
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
            raise EnrollmentOtherDevice("this binding continues on the phone that opened it")
    elif enrollment.device_id != device_id:
        raise EnrollmentOtherDevice("this binding continues on the phone that opened it")
    return enrollment


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
) -> face_checks.IssuedChallenge:
    """The face check the binding starts with: 1:1 against the person's template."""
    actor = f"passkey-enrollment:{enrollment.id}"
    issued = db.execute(
        select(func.count()).select_from(FaceChallenge).where(FaceChallenge.issued_by == actor)
    ).scalar_one()
    if issued >= MAX_ENROLLMENT_CHALLENGES:
        raise EnrollmentInvalid("this binding used its face checks; start it again")
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


def _rejected(error: PasskeyRejected) -> PasskeyError:
    return _REJECTIONS.get(error.code, PasskeyError)(error.detail)


def _refused(
    error: DomainError, center_id: str, actor: str, request_id: str | None, details: dict[str, Any]
) -> DomainError:
    caller = audit.Caller(center_id, actor, None, request_id)
    event = audit.AuditEvent(
        Action.PASSKEY_REFUSED, "passkey", None, {"reason": error.code, **details}
    )
    return audit.refused(error, caller, event)


def require_assertion(
    center_id: str, expert_id: str, request_id: str | None, details: dict[str, Any]
) -> DomainError:
    """The refusal (audited) of a face check that came without its passkey."""
    missing = PasskeyRequired("send the passkey assertion with this request")
    return _refused(missing, center_id, f"expert:{expert_id}", request_id, details)


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
        raise _refused(
            _rejected(rejected), enrollment.center_id, actor, request_id, details
        ) from None
    if len(active_passkeys(db, enrollment.expert_id)) >= policy.max_devices:
        raise PasskeyLimit(f"{policy.max_devices} phones are bound already")
    credential_id = b64url(new.credential_id)
    if db.execute(select(Passkey.id).where(Passkey.credential_id == credential_id)).first():
        raise _refused(
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
    transports = response.get("response", {}).get("transports") or []
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
    _expert(db, caller.center_id, expert_id)
    passkey = db.get(Passkey, passkey_id, with_for_update=True)
    if passkey is None or passkey.expert_id != expert_id:
        raise NotFound(f"no bound phone {passkey_id} for this person")
    if passkey.revoked_at is None:
        passkey.revoked_at = clock.now()
        passkey.revoked_by = caller.actor
        passkey.revoke_reason = reason
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


# ---- assertions: sign-in and signing ---------------------------------------------------


def _challenge_row(
    db: Session,
    clock: Clock,
    policy: PasskeyPolicy,
    *,
    expert_id: str,
    purpose: str,
    nonce: str,
    scan_session_id: str | None = None,
    verified_session_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> PasskeyChallenge:
    now = clock.now()
    expert = db.get(Expert, expert_id)
    assert expert is not None
    row = PasskeyChallenge(
        center_id=expert.center_id,
        expert_id=expert_id,
        purpose=purpose,
        nonce_hash=hash_token(nonce),
        scan_session_id=scan_session_id,
        verified_session_id=verified_session_id,
        payload=payload,
        created_at=now,
        expires_at=now + policy.challenge_ttl,
    )
    db.add(row)
    db.flush()
    return row


def _allowed(db: Session, expert_id: str) -> list[bytes]:
    bound = active_passkeys(db, expert_id)
    if not bound:
        raise PasskeyNotBound("bind your phone at the center desk, or use the in-person path")
    return [webauthn.from_b64url(p.credential_id) for p in bound]


def sign_in_options(
    db: Session, clock: Clock, policy: PasskeyPolicy, *, scan_session_id: str, expert_id: str
) -> dict[str, Any]:
    """navigator.credentials.get() options for signing in from this scan: a random
    challenge, answerable once, by a phone bound to the person the face check found."""
    allow = _allowed(db, expert_id)
    challenge = secrets.token_bytes(32)
    _challenge_row(
        db,
        clock,
        policy,
        expert_id=expert_id,
        purpose="sign-in",
        nonce=b64url(challenge),
        scan_session_id=scan_session_id,
    )
    return webauthn.request_options(
        policy.rp, challenge=challenge, allow=allow, timeout_ms=PasskeyPolicy.TIMEOUT_MS
    )


@dataclass(frozen=True)
class SigningApproval:
    nonce: str
    challenge: str  # base64url SHA-256 of JCS {credentialID, hashes, nonce}
    options: dict[str, Any]


def signing_options(
    db: Session,
    clock: Clock,
    policy: PasskeyPolicy,
    face: VerifiedSession,
    *,
    credential_id: str,
    hashes: Sequence[str],
) -> SigningApproval:
    """A nonce, and the challenge a passkey signs to approve exactly `hashes` with the
    signing credential `credential_id` (a client may compute it from the nonce itself)."""
    allow = _allowed(db, face.expert_id)
    nonce = secrets.token_urlsafe(24)
    challenge = webauthn.signing_challenge(credential_id, hashes, nonce)
    _challenge_row(
        db,
        clock,
        policy,
        expert_id=face.expert_id,
        purpose="signing",
        nonce=nonce,
        verified_session_id=face.id,
        payload={"credential_id": credential_id, "hashes": list(hashes)},
    )
    return SigningApproval(
        nonce=nonce,
        challenge=b64url(challenge),
        options=webauthn.request_options(
            policy.rp, challenge=challenge, allow=allow, timeout_ms=PasskeyPolicy.TIMEOUT_MS
        ),
    )


@dataclass(frozen=True)
class Asserted:
    passkey: Passkey
    use: PasskeyUse


def verify_sign_in(
    db: Session,
    clock: Clock,
    policy: PasskeyPolicy,
    response: dict[str, Any],
    *,
    expert_id: str,
    scan_session_id: str,
    request_id: str | None,
) -> Asserted:
    """The assertion that joins a face check to sign in from a scan."""
    details = {"purpose": "sign-in", "scan_session_id": scan_session_id}
    center_id, actor = _center_of(db, expert_id), f"expert:{expert_id}"
    try:
        nonce = b64url(webauthn.client_challenge(response))
    except PasskeyRejected as rejected:
        raise _refused(_rejected(rejected), center_id, actor, request_id, details) from None
    row = _consume(db, clock, nonce, center_id, actor, request_id, details)
    if (
        row.purpose != "sign-in"
        or row.scan_session_id != scan_session_id
        or row.expert_id != expert_id
    ):
        raise _refused(
            PasskeyChallengeMismatch("the challenge was issued for another sign-in"),
            center_id,
            actor,
            request_id,
            details,
        )
    expected = webauthn.from_b64url(nonce)
    return _verify(db, clock, policy, row, response, expected, request_id, details)


def verify_signing(
    db: Session,
    clock: Clock,
    policy: PasskeyPolicy,
    response: dict[str, Any],
    *,
    face: VerifiedSession,
    nonce: str,
    credential_id: str,
    hashes: Sequence[str],
    request_id: str | None,
) -> Asserted:
    """The assertion that approves signing exactly `hashes` with `credential_id`: its
    challenge must be SHA-256(JCS{credentialID, hashes, nonce}) for a nonce issued to
    this face session."""
    details = {"purpose": "signing", "credential_id": credential_id, "hashes": len(hashes)}
    actor = f"expert:{face.expert_id}"
    row = _consume(db, clock, nonce, face.center_id, actor, request_id, details)
    if row.purpose != "signing" or row.expert_id != face.expert_id:
        raise _refused(
            PasskeyChallengeMismatch("the nonce was issued for another request"),
            face.center_id,
            actor,
            request_id,
            details,
        )
    expected = webauthn.signing_challenge(credential_id, hashes, nonce)
    approved = {"credentialID": credential_id, "hashes": list(hashes), "nonce": nonce}
    return _verify(db, clock, policy, row, response, expected, request_id, details, approved)


def _center_of(db: Session, expert_id: str) -> str:
    expert = db.get(Expert, expert_id)
    assert expert is not None
    return expert.center_id


def _consume(
    db: Session,
    clock: Clock,
    nonce: str,
    center_id: str,
    actor: str,
    request_id: str | None,
    details: dict[str, Any],
) -> PasskeyChallenge:
    """The challenge a nonce names, marked used atomically: of two answers, one counts.
    One statement when all is well; a second only to say why it is not."""
    now = clock.now()
    nonce_hash = hash_token(nonce)
    claimed = db.execute(
        update(PasskeyChallenge)
        .where(
            PasskeyChallenge.nonce_hash == nonce_hash,
            PasskeyChallenge.center_id == center_id,
            PasskeyChallenge.used_at.is_(None),
            PasskeyChallenge.expires_at > now,
        )
        .values(used_at=now)
        .returning(PasskeyChallenge)
    ).scalar_one_or_none()
    if claimed is not None:
        return claimed
    row = db.execute(
        select(PasskeyChallenge).where(PasskeyChallenge.nonce_hash == nonce_hash)
    ).scalar_one_or_none()
    if row is None or row.center_id != center_id:
        error: DomainError = PasskeyChallengeMismatch("no such passkey challenge was issued")
    elif row.used_at is not None:
        error = PasskeyChallengeUsed("answer a new challenge")
    else:
        error = PasskeyChallengeExpired(f"it expired at {row.expires_at.isoformat()}")
    raise _refused(error, center_id, actor, request_id, details)


def _verify(
    db: Session,
    clock: Clock,
    policy: PasskeyPolicy,
    row: PasskeyChallenge,
    response: dict[str, Any],
    expected: bytes,
    request_id: str | None,
    details: dict[str, Any],
    approved: dict[str, Any] | None = None,
) -> Asserted:
    center_id, actor = row.center_id, f"expert:{row.expert_id}"

    def refuse(error: DomainError) -> DomainError:
        return _refused(error, center_id, actor, request_id, details)

    try:
        credential_id = b64url(webauthn.credential_id_of(response))
    except PasskeyRejected as rejected:
        raise refuse(_rejected(rejected)) from None
    passkey = db.execute(
        select(Passkey).where(Passkey.credential_id == credential_id).with_for_update()
    ).scalar_one_or_none()
    details = {**details, "credential_id": credential_id}
    if passkey is None or passkey.center_id != center_id:
        raise refuse(PasskeyUnknown("bind this phone at the desk first"))
    details["passkey_id"] = passkey.id
    if passkey.expert_id != row.expert_id:
        raise refuse(PasskeyForeign("the passkey of one person cannot approve for another"))
    if passkey.revoked_at is not None:
        raise refuse(PasskeyRevoked(f"revoked at {passkey.revoked_at.isoformat()}"))
    try:
        evidence = webauthn.verify_assertion(
            policy.rp,
            response,
            challenge=expected,
            public_key=passkey.public_key,
            stored_sign_count=passkey.sign_count,
        )
    except PasskeyRejected as rejected:
        raise refuse(_rejected(rejected)) from None
    now = clock.now()
    passkey.sign_count = evidence.sign_count
    passkey.last_used_at = now
    use = PasskeyUse(
        center_id=center_id,
        passkey_id=passkey.id,
        expert_id=passkey.expert_id,
        challenge_id=row.id,
        purpose=row.purpose,
        rp_id=policy.rp.rp_id,
        challenge=b64url(expected),
        # What a signing challenge committed to, so anyone can recompute it.
        evidence={**evidence.as_json(), "approved": approved},
        created_at=now,
    )
    db.add(use)
    db.flush()
    return Asserted(passkey, use)


def use_record(use: PasskeyUse, passkey: Passkey) -> dict[str, Any]:
    """A kept assertion as a third party checks it: with the public key it verifies under."""
    return {
        "use_id": use.id,
        "purpose": use.purpose,
        "expert_id": use.expert_id,
        "passkey_id": passkey.id,
        "credential_id": passkey.credential_id,
        "public_key_cose": b64url(passkey.public_key),
        "rp_id": use.rp_id,
        "challenge": use.challenge,
        "evidence": use.evidence,
        "created_at": use.created_at.isoformat(),
    }


def check_record(record: dict[str, Any]) -> None:
    """Verify a kept assertion again, offline, from its record alone: the signature under
    the passkey's public key, the RP id, user verification, and for a signing approval
    that its challenge is SHA-256(JCS{credentialID, hashes, nonce}) of what it names.
    Raises PasskeyRejected if any of it does not hold."""
    challenge = webauthn.from_b64url(record["challenge"])
    approved = record["evidence"].get("approved")
    if approved is not None:
        recomputed = webauthn.signing_challenge(
            approved["credentialID"], approved["hashes"], approved["nonce"]
        )
        if recomputed != challenge:
            raise PasskeyRejected("passkey-challenge", "the challenge is not of what it names")
    webauthn.verify_evidence(
        record["evidence"],
        public_key=webauthn.from_b64url(record["public_key_cose"]),
        rp_id=record["rp_id"],
        challenge=challenge,
    )


def check_use(use: PasskeyUse, passkey: Passkey) -> None:
    """Verify a kept assertion again, offline: raises PasskeyRejected if it does not hold."""
    check_record(use_record(use, passkey))


def uses_at(db: Session, use_ids: Sequence[str]) -> list[tuple[PasskeyUse, Passkey]]:
    """Kept assertions with the passkeys that made them (for the evidence package)."""
    if not use_ids:
        return []
    rows = db.execute(
        select(PasskeyUse, Passkey)
        .join(Passkey, Passkey.id == PasskeyUse.passkey_id)
        .where(PasskeyUse.id.in_(list(use_ids)))
        .order_by(PasskeyUse.created_at)
    ).all()
    return [(use, passkey) for use, passkey in rows]


def bound_since(db: Session, expert_ids: Sequence[str], since: datetime) -> list[Passkey]:
    """Phones bound to any of these people at or after `since` (an anomaly rule's input)."""
    if not expert_ids:
        return []
    return list(
        db.execute(
            select(Passkey).where(
                Passkey.expert_id.in_(list(expert_ids)), Passkey.created_at >= since
            )
        ).scalars()
    )
