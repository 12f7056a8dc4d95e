"""The SMS code: a lower-assurance stand-in for the passkey, where a center allows it.

Some phones cannot use passkeys (in-app browsers, old systems) and some people were never
bound at the desk. A center may let them answer with a one-time code sent by SMS to the
mobile number registered for them (`EVALSIGN_SMS_FALLBACK`, off by default): it proves the
person holds that SIM, which is weaker than a passkey in the phone's secure hardware
(SIM swaps, forwarded messages). Every use is recorded with its check and shown to
supervisors as a lower assurance; the face alone still never suffices.

A code answers one purpose: signing in from one scan, or approving exactly some hashes
with one credential from one face session (the message names what is approved, by the
first characters of its hash). Six digits, a few minutes, five tries; the code itself is
kept only as a keyed hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evaluation.identity.passkeys import with_refusal
from evaluation.kernel.errors import DomainError
from evaluation.kernel.identifiers import mask_phone
from evaluation.kernel.messaging import Message, MessagingFailed, Messenger
from evaluation.kernel.tokens import hash_token
from evaluation.registry.experts import phone_context
from models.clock import Clock
from models.settings import Settings
from models.tables import Expert, OneTimeCode, VerifiedSession
from signing.field_cipher import FieldCipher

MAX_ATTEMPTS = 5
DIGITS = 6


class SmsCodeNotAllowed(DomainError):
    status = 403
    code = "sms-code-not-allowed"
    title = "This center does not accept SMS codes in place of the bound phone's passkey"


class SmsCodeUnavailable(DomainError):
    status = 503
    code = "sms-code-unavailable"
    title = "The SMS code could not be sent; try again or use the in-person check"


class SmsCodeInvalid(DomainError):
    status = 403
    code = "sms-code-invalid"
    title = "The SMS code is wrong, used, expired or for another request"


@dataclass(frozen=True)
class SmsPolicy:
    allowed: bool
    ttl: timedelta
    messenger: Messenger | None

    @classmethod
    def from_settings(cls, settings: Settings, messenger: Messenger | None) -> SmsPolicy:
        return cls(
            allowed=settings.sms_fallback and messenger is not None,
            ttl=timedelta(seconds=settings.sms_code_ttl_s),
            messenger=messenger,
        )


@dataclass(frozen=True)
class SentCode:
    nonce: str  # names the code when it is answered
    sent_to: str  # the number, masked
    expires_at: Any


def _digest(nonce: str, code: str) -> str:
    # Keyed by the nonce, so a leaked table row does not give away six easy digits at once.
    return hmac.new(nonce.encode(), code.encode(), hashlib.sha256).hexdigest()


def _send(
    db: Session,
    clock: Clock,
    policy: SmsPolicy,
    cipher: FieldCipher,
    expert_id: str,
    *,
    purpose: str,
    text: str,
    params: dict[str, str] | None = None,
    scan_session_id: str | None = None,
    verified_session_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> SentCode:
    if not policy.allowed or policy.messenger is None:
        raise SmsCodeNotAllowed("approve with the passkey of your bound phone")
    expert = db.get(Expert, expert_id)
    assert expert is not None
    number = cipher.decrypt(expert.phone_ciphertext, phone_context(expert.id))
    code = f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"
    nonce = secrets.token_urlsafe(24)
    now = clock.now()
    try:
        message_id = policy.messenger.send(
            Message(
                to=number,
                text=text.format(code=code),
                purpose=f"{purpose}-code",
                params={"code": code, **(params or {})},
            )
        )
    except MessagingFailed as exc:
        raise SmsCodeUnavailable(str(exc)) from exc
    row = OneTimeCode(
        center_id=expert.center_id,
        expert_id=expert.id,
        purpose=purpose,
        nonce_hash=hash_token(nonce),
        code_digest=_digest(nonce, code),
        scan_session_id=scan_session_id,
        verified_session_id=verified_session_id,
        payload=payload,
        channel=policy.messenger.name,
        message_id=message_id[:100],
        sent_to=mask_phone(number),
        created_at=now,
        expires_at=now + policy.ttl,
    )
    db.add(row)
    db.flush()
    return SentCode(nonce, row.sent_to, row.expires_at)


def send_sign_in_code(
    db: Session,
    clock: Clock,
    policy: SmsPolicy,
    cipher: FieldCipher,
    *,
    expert_id: str,
    scan_session_id: str,
) -> SentCode:
    """After this scan's face check: a code to the person's registered mobile."""
    text = "【EvalSign】评标登录验证码 {code}，5分钟内有效，仅用于本次扫码登录。请勿告诉他人。"
    return _send(
        db,
        clock,
        policy,
        cipher,
        expert_id,
        purpose="sign-in",
        text=text,
        scan_session_id=scan_session_id,
    )


def send_signing_code(
    db: Session,
    clock: Clock,
    policy: SmsPolicy,
    cipher: FieldCipher,
    face: VerifiedSession,
    *,
    credential_id: str,
    hashes: Sequence[str],
    kind: str,
    what: str,
) -> SentCode:
    """A code that approves exactly `hashes` with `credential_id` for this face session;
    the message names `what` and the first characters of the (first) hash, so the person
    sees what they approve."""
    fingerprint = hashlib.sha256("".join(hashes).encode()).hexdigest()[:8].upper()
    digest = f"{fingerprint[:4]}-{fingerprint[4:]}"
    text = (
        "【EvalSign】签署确认码 {code}：" + what + f"（摘要 {digest}），"
        "5分钟内有效。如非本人操作，请勿提供并联系交易中心。"
    )
    payload = {"kind": kind, "credential_id": credential_id, "hashes": list(hashes)}
    return _send(
        db,
        clock,
        policy,
        cipher,
        face.expert_id,
        purpose="signing",
        text=text,
        # A provider's template shows the digest too, so the person still sees what they
        # approve (the title is free text, which templates do not take).
        params={"digest": digest},
        verified_session_id=face.id,
        payload=payload,
    )


def _consume(
    db: Session,
    clock: Clock,
    nonce: str,
    code: str,
    *,
    expert_id: str,
    center_id: str,
    request_id: str | None,
    details: dict[str, Any],
    matches: Any,
) -> OneTimeCode:
    """The code row, spent, if `code` is its code and `matches(row)`; an audited refusal
    otherwise. A wrong code costs one of its tries."""
    actor = f"expert:{expert_id}"
    row = db.execute(
        select(OneTimeCode).where(OneTimeCode.nonce_hash == hash_token(nonce)).with_for_update()
    ).scalar_one_or_none()
    now = clock.now()

    def refused(why: str, also: Callable[[Session], None] | None = None) -> DomainError:
        return with_refusal(
            SmsCodeInvalid(why),
            center_id,
            actor,
            request_id,
            {**details, "second_factor": "sms"},
            also=also,
        )

    if row is None or row.expert_id != expert_id or not matches(row):
        raise refused("the code was sent for another request")
    if row.used_at is not None or now >= row.expires_at or row.attempts >= MAX_ATTEMPTS:
        raise refused("the code is used, expired or out of tries; ask for a new one")
    if not hmac.compare_digest(row.code_digest, _digest(nonce, code.strip())):
        code_id = row.id

        def spend_a_try(fresh: Session) -> None:
            # Kept although the request is rolled back: written with the refusal's entry.
            fresh.execute(
                update(OneTimeCode)
                .where(OneTimeCode.id == code_id)
                .values(attempts=OneTimeCode.attempts + 1)
            )

        left = MAX_ATTEMPTS - row.attempts - 1
        raise refused(f"wrong code ({left} tries left)", spend_a_try)
    row.used_at = now
    db.flush()
    return row


def verify_sign_in_code(
    db: Session,
    clock: Clock,
    nonce: str,
    code: str,
    *,
    expert_id: str,
    center_id: str,
    scan_session_id: str,
    request_id: str | None,
) -> OneTimeCode:
    return _consume(
        db,
        clock,
        nonce,
        code,
        expert_id=expert_id,
        center_id=center_id,
        request_id=request_id,
        details={"purpose": "sign-in", "scan_session_id": scan_session_id},
        matches=lambda row: row.purpose == "sign-in" and row.scan_session_id == scan_session_id,
    )


def verify_signing_code(
    db: Session,
    clock: Clock,
    face: VerifiedSession,
    nonce: str,
    code: str,
    *,
    credential_id: str,
    hashes: Sequence[str],
    kind: str,
    request_id: str | None,
) -> OneTimeCode:
    wanted = {"kind": kind, "credential_id": credential_id, "hashes": list(hashes)}
    return _consume(
        db,
        clock,
        nonce,
        code,
        expert_id=face.expert_id,
        center_id=face.center_id,
        request_id=request_id,
        details={"purpose": "signing", "credential_id": credential_id, "hashes": len(hashes)},
        matches=lambda row: (
            row.purpose == "signing"
            and row.verified_session_id == face.id
            and row.payload == wanted
        ),
    )
