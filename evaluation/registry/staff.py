"""Staff bearer tokens: 256-bit random secrets, stored only as SHA-256, one role and one
center each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.errors import InvalidCredentials, InvalidTransition
from evaluation.kernel.tenancy import in_center
from evaluation.kernel.tokens import hash_token, new_secret
from models.base import new_id
from models.clock import Clock
from models.tables import StaffToken

TOKEN_PREFIX = "evs_"


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued token: the only moment its secret exists outside the caller."""

    token_id: str
    center_id: str
    role: Role
    label: str
    secret: str


def issue_staff_token(
    db: Session, caller: audit.Caller, clock: Clock, role: Role, label: str
) -> IssuedToken:
    secret = new_secret(TOKEN_PREFIX)
    token = StaffToken(
        id=new_id(),
        center_id=caller.center_id,
        role=role.value,
        label=label,
        token_hash=hash_token(secret),
        created_at=clock.now(),
    )
    db.add(token)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.STAFF_TOKEN_ISSUED,
        "staff_token",
        token.id,
        {"role": role.value, "label": label},
    )
    return IssuedToken(token.id, caller.center_id, role, label, secret)


def authenticate(db: Session, secret: str) -> StaffToken:
    """The live token for a presented secret, or InvalidCredentials."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 100:
        raise InvalidCredentials("not an EvalSign staff token")
    token = db.execute(
        select(StaffToken).where(StaffToken.token_hash == hash_token(secret))
    ).scalar_one_or_none()
    if token is None or token.revoked_at is not None:
        raise InvalidCredentials("unknown or revoked staff token")
    return token


def is_live(db: Session, token_id: str) -> bool:
    token = db.get(StaffToken, token_id)
    return token is not None and token.revoked_at is None


def live_labels(db: Session, center_id: str, labels: Sequence[str]) -> set[str]:
    """Which of these labels a live (unrevoked) token of the center carries."""
    return set(
        db.execute(
            select(StaffToken.label).where(
                StaffToken.center_id == center_id,
                StaffToken.label.in_(labels),
                StaffToken.revoked_at.is_(None),
            )
        ).scalars()
    )


def list_staff_tokens(db: Session, center_id: str) -> list[StaffToken]:
    return list(
        db.execute(
            select(StaffToken)
            .where(StaffToken.center_id == center_id)
            .order_by(StaffToken.created_at, StaffToken.id)
        ).scalars()
    )


def revoke_staff_token(
    db: Session, caller: audit.Caller, clock: Clock, token_id: str
) -> StaffToken:
    token = in_center(db, StaffToken, token_id, caller.center_id, "staff token")
    if token.revoked_at is not None:
        raise InvalidTransition("the token is already revoked")
    token.revoked_at = clock.now()
    db.flush()
    audit.record(
        db, caller, clock, Action.STAFF_TOKEN_REVOKED, "staff_token", token.id, {"role": token.role}
    )
    return token
