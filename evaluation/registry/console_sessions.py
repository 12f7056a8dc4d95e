"""Console sessions: a supervisor's login to /console/ kept on the server.

The browser's cookie holds a session secret of its own, never the staff token: a stolen
cookie dies at logout or after the working day, and revoking the staff token ends every
session opened with it. Opening and ending a session are audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.kernel import audit
from evaluation.kernel.actions import Action
from evaluation.kernel.tokens import hash_token, new_secret
from models.base import new_id
from models.clock import Clock
from models.tables import ConsoleSession, StaffToken

SESSION_PREFIX = "evl_"
LOGIN_HOURS = 8  # a working day


@dataclass(frozen=True)
class OpenedSession:
    """A new console session: the only moment its secret exists outside the browser."""

    session_id: str
    secret: str
    expires_in: int


def open_console_session(
    db: Session, caller: audit.Caller, clock: Clock, token: StaffToken, client_ip: str | None
) -> OpenedSession:
    secret = new_secret(SESSION_PREFIX)
    now = clock.now()
    session = ConsoleSession(
        id=new_id(),
        center_id=token.center_id,
        staff_token_id=token.id,
        secret_hash=hash_token(secret),
        client_ip=client_ip,
        created_at=now,
        expires_at=now + timedelta(hours=LOGIN_HOURS),
    )
    db.add(session)
    db.flush()
    audit.record(
        db,
        caller,
        clock,
        Action.CONSOLE_LOGIN,
        "staff_token",
        token.id,
        {"client_ip": client_ip, "console_session_id": session.id},
    )
    return OpenedSession(session.id, secret, LOGIN_HOURS * 3600)


def console_token(db: Session, clock: Clock, secret: str) -> StaffToken | None:
    """The staff token behind a live console session, or None (unknown, ended, expired,
    or its token revoked)."""
    if not secret.startswith(SESSION_PREFIX) or len(secret) > 100:
        return None
    row = db.execute(
        select(ConsoleSession, StaffToken)
        .join(StaffToken, StaffToken.id == ConsoleSession.staff_token_id)
        .where(ConsoleSession.secret_hash == hash_token(secret))
    ).one_or_none()
    if row is None:
        return None
    session, token = row
    if session.ended_at is not None or session.expires_at <= clock.now():
        return None
    return token if token.revoked_at is None else None


def end_console_session(db: Session, caller: audit.Caller, clock: Clock, secret: str) -> None:
    """Logout: the session ends for good (audited); an unknown or ended one is left alone."""
    session = db.execute(
        select(ConsoleSession)
        .where(ConsoleSession.secret_hash == hash_token(secret), ConsoleSession.ended_at.is_(None))
        .with_for_update()
    ).scalar_one_or_none()
    if session is None:
        return
    session.ended_at = clock.now()
    audit.record(
        db,
        caller,
        clock,
        Action.CONSOLE_LOGOUT,
        "staff_token",
        session.staff_token_id,
        {"console_session_id": session.id},
    )
