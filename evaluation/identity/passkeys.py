"""Passkeys: the person's own phone as the possession factor beside the face (sole control).

A web page cannot prove that its frames come from a camera, so a face check alone never
signs anyone in or signs anything. Once a phone is bound to the person at the desk
(phone_binding.py), a sign-in needs the face check plus an assertion of a bound passkey to
a challenge tied to the scan, and a signature needs an assertion whose challenge commits
to exactly the hashes it signs. Every assertion is kept as evidence anyone can verify
offline. Here: the relying party, the refusals, the challenges and their verification.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError
from evaluation.kernel.tokens import hash_token
from models.clock import Clock
from models.settings import Settings
from models.tables import (
    Expert,
    FaceVerification,
    Passkey,
    PasskeyChallenge,
    PasskeyUse,
    VerifiedSession,
)
from signing import webauthn
from signing.webauthn import PasskeyRejected, RelyingParty, b64url

# The non-face path's check (committee/in_person.py): a PIN under an operator's ID check.
IN_PERSON_METHOD = "in-person-pin"


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


def active_passkeys(db: Session, expert_id: str) -> list[Passkey]:
    return list(
        db.execute(
            select(Passkey)
            .where(Passkey.expert_id == expert_id, Passkey.revoked_at.is_(None))
            .order_by(Passkey.created_at)
        ).scalars()
    )


def rejection_error(error: PasskeyRejected) -> PasskeyError:
    return _REJECTIONS.get(error.code, PasskeyError)(error.detail)


def with_refusal(
    error: DomainError,
    center_id: str,
    actor: str,
    request_id: str | None,
    details: dict[str, Any],
    *,
    also: Callable[[Session], None] | None = None,
) -> DomainError:
    caller = audit.Caller(center_id, actor, None, request_id)
    event = audit.AuditEvent(
        Action.PASSKEY_REFUSED, "passkey", None, {"reason": error.code, **details}
    )
    return audit.refused(error, caller, event, also=also)


def require_assertion(
    center_id: str, expert_id: str, request_id: str | None, details: dict[str, Any]
) -> DomainError:
    """The refusal (audited) of a face check that came without its passkey."""
    missing = PasskeyRequired("send the passkey assertion with this request")
    return with_refusal(missing, center_id, f"expert:{expert_id}", request_id, details)


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
    kind: str,
) -> SigningApproval:
    """A nonce, and the challenge a passkey signs to approve exactly `hashes` with the
    signing credential `credential_id` (a client may compute it from the nonce itself).
    `kind` names what the approval is for ("csc", "document:<id>"): a nonce answers only
    the request of its kind, from the face session it was issued to."""
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
        payload={"kind": kind, "credential_id": credential_id, "hashes": list(hashes)},
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
        raise with_refusal(
            rejection_error(rejected), center_id, actor, request_id, details
        ) from None
    row = _consume(db, clock, nonce, center_id, actor, request_id, details)
    if (
        row.purpose != "sign-in"
        or row.scan_session_id != scan_session_id
        or row.expert_id != expert_id
    ):
        raise with_refusal(
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
    kind: str,
    request_id: str | None,
) -> Asserted:
    """The assertion that approves signing exactly `hashes` with `credential_id`: its
    challenge must be SHA-256(JCS{credentialID, hashes, nonce}) for a nonce issued to
    this face session, for this kind of request and exactly this credential and hashes."""
    details = {"purpose": "signing", "credential_id": credential_id, "hashes": len(hashes)}
    actor = f"expert:{face.expert_id}"
    row = _consume(db, clock, nonce, face.center_id, actor, request_id, details)
    wanted = {"kind": kind, "credential_id": credential_id, "hashes": list(hashes)}
    if (
        row.purpose != "signing"
        or row.expert_id != face.expert_id
        or row.verified_session_id != face.id
        or row.payload != wanted
    ):
        raise with_refusal(
            PasskeyChallengeMismatch("the nonce was issued for another request"),
            face.center_id,
            actor,
            request_id,
            details,
        )
    expected = webauthn.signing_challenge(credential_id, hashes, nonce)
    approved = {"credentialID": credential_id, "hashes": list(hashes), "nonce": nonce}
    return _verify(db, clock, policy, row, response, expected, request_id, details, approved)


def signing_approval(
    db: Session,
    clock: Clock,
    policy: PasskeyPolicy,
    face: VerifiedSession,
    *,
    nonce: str | None,
    assertion: dict[str, Any] | None,
    credential_id: str,
    hashes: Sequence[str],
    kind: str,
    request_id: str | None,
) -> str | None:
    """The passkey use that approved signing `hashes` with `credential_id`, required of a
    face-checked signer. The in-person path (a PIN under an operator's ID check) has none:
    a lower assurance, recorded with its check and always flagged for supervisors."""
    verification = db.get(FaceVerification, face.verification_id)
    if verification is not None and verification.method == IN_PERSON_METHOD:
        return None
    if nonce is None or assertion is None:
        details = {"purpose": "signing", "credential_id": credential_id}
        raise require_assertion(face.center_id, face.expert_id, request_id, details)
    asserted = verify_signing(
        db,
        clock,
        policy,
        assertion,
        face=face,
        nonce=nonce,
        credential_id=credential_id,
        hashes=hashes,
        kind=kind,
        request_id=request_id,
    )
    return asserted.use.id


def answer_options(
    db: Session, clock: Clock, policy: PasskeyPolicy, face: VerifiedSession, *, call_up_id: str
) -> tuple[str, dict[str, Any]]:
    """A nonce and navigator.credentials.get() options for answering one call-up, issued to
    the face session that checked the member (where the center asks both for an answer)."""
    allow = _allowed(db, face.expert_id)
    challenge = secrets.token_bytes(32)
    nonce = b64url(challenge)
    _challenge_row(
        db,
        clock,
        policy,
        expert_id=face.expert_id,
        purpose="call-up",
        nonce=nonce,
        verified_session_id=face.id,
        payload={"call_up_id": call_up_id},
    )
    options = webauthn.request_options(
        policy.rp, challenge=challenge, allow=allow, timeout_ms=PasskeyPolicy.TIMEOUT_MS
    )
    return nonce, options


def verify_answer(
    db: Session,
    clock: Clock,
    policy: PasskeyPolicy,
    response: dict[str, Any],
    *,
    face: VerifiedSession,
    call_up_id: str,
    request_id: str | None,
) -> Asserted:
    """The assertion that confirms a member's own answer to their call-up."""
    details = {"purpose": "call-up", "call_up_id": call_up_id}
    actor = f"expert:{face.expert_id}"
    try:
        nonce = b64url(webauthn.client_challenge(response))
    except PasskeyRejected as rejected:
        raise with_refusal(
            rejection_error(rejected), face.center_id, actor, request_id, details
        ) from None
    row = _consume(db, clock, nonce, face.center_id, actor, request_id, details)
    if (
        row.purpose != "call-up"
        or row.expert_id != face.expert_id
        or row.verified_session_id != face.id
        or row.payload != {"call_up_id": call_up_id}
    ):
        raise with_refusal(
            PasskeyChallengeMismatch("the challenge was issued for another answer"),
            face.center_id,
            actor,
            request_id,
            details,
        )
    expected = webauthn.from_b64url(nonce)
    return _verify(db, clock, policy, row, response, expected, request_id, details)


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
    raise with_refusal(error, center_id, actor, request_id, details)


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
        return with_refusal(error, center_id, actor, request_id, details)

    try:
        credential_id = b64url(webauthn.credential_id_of(response))
    except PasskeyRejected as rejected:
        raise refuse(rejection_error(rejected)) from None
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
        raise refuse(rejection_error(rejected)) from None
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
