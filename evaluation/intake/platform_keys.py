"""A trading platform's keys for the intake API, and the check of a signed request.

The secret is shown once when the key is issued; the database holds it encrypted under the
field cipher (an HMAC is checked with the secret itself, so a hash would not do). Revoking a
key refuses its requests at once; a platform rotating keys holds two live ones meanwhile.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import DomainError
from evaluation.kernel.tenancy import in_center
from models.clock import Clock
from models.tables import PlatformKey
from signing.field_cipher import FieldCipher
from signing.request_signatures import (
    RequestSignatureInvalid,
    SignedHeaders,
    new_secret,
    verify_request,
)

KEY_PREFIX = "pk_"
# last_used_at is a hint for the admin ("is this key still in use?"), not a log: written at
# most this often, so a busy platform does not turn every read into a write.
USE_RECORDED_EVERY = timedelta(minutes=5)


class PlatformSignatureRefused(DomainError):
    status = 401
    code = "platform-signature-invalid"
    title = "The request is not signed by a live trading-platform key"


class NewPlatformKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$",
        description="The platform's stable name (lowercase letters, digits, hyphens); "
        "its projects belong to this name across key rotations.",
    )


@dataclass(frozen=True)
class IssuedKey:
    key: PlatformKey
    secret: str  # shown once


def _context(key_id: str) -> str:
    return f"platform-key:{key_id}"


def issue_platform_key(
    db: Session, caller: audit.Caller, clock: Clock, cipher: FieldCipher, fields: NewPlatformKey
) -> IssuedKey:
    key_id = KEY_PREFIX + secrets.token_hex(12)
    secret = new_secret()
    key = PlatformKey(
        id=key_id,
        center_id=caller.center_id,
        platform=fields.platform,
        secret_ciphertext=cipher.encrypt(secret, _context(key_id)),
        created_by=caller.actor,
        created_at=clock.now(),
    )
    db.add(key)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.PLATFORM_KEY_ISSUED,
        "platform_key",
        key_id,
        {"platform": fields.platform},
    )
    return IssuedKey(key, secret)


def list_platform_keys(db: Session, center_id: str) -> list[PlatformKey]:
    return list(
        db.execute(
            select(PlatformKey)
            .where(PlatformKey.center_id == center_id)
            .order_by(PlatformKey.created_at.desc(), PlatformKey.id)
        ).scalars()
    )


def revoke_platform_key(
    db: Session, caller: audit.Caller, clock: Clock, key_id: str
) -> PlatformKey:
    key = in_center(db, PlatformKey, key_id, caller.center_id, "platform key")
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        audit.record(
            db,
            caller,
            clock,
            Action.PLATFORM_KEY_REVOKED,
            "platform_key",
            key_id,
            {"platform": key.platform},
        )
    return key


def authenticate_request(
    db: Session,
    clock: Clock,
    cipher: FieldCipher,
    signed: SignedHeaders,
    *,
    method: str,
    target: str,
    body: bytes,
) -> PlatformKey:
    """The live key that signed this request, or PlatformSignatureRefused."""
    key = db.get(PlatformKey, signed.key_id) if len(signed.key_id) <= 40 else None
    if key is None or key.revoked_at is not None:
        raise PlatformSignatureRefused("unknown or revoked platform key")
    secret = cipher.decrypt(key.secret_ciphertext, _context(key.id))
    now = clock.now()
    try:
        verify_request(signed, secret=secret, method=method, target=target, body=body, now=now)
    except RequestSignatureInvalid as exc:
        raise PlatformSignatureRefused(str(exc)) from exc
    if key.last_used_at is None or now - key.last_used_at >= USE_RECORDED_EVERY:
        key.last_used_at = now
    return key
