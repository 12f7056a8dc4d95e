"""What a revocation takes with it: the person's face sessions and every unused SAD issued
on them. Revoking an evaluation session, suspending an expert, withdrawing consent and
revoking a bound phone all end here, so a session or SAD made before cannot sign after."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.tables import SignatureActivation, VerifiedSession


def end_face_sessions(
    db: Session, now: datetime, *, expert_id: str, device_id: str | None = None
) -> int:
    """End the person's live face sessions (on one device, or on all) and expire the unused
    SADs issued on that person's face sessions; the number of sessions ended."""
    sessions = [VerifiedSession.expert_id == expert_id]
    if device_id is not None:
        sessions.append(VerifiedSession.device_id == device_id)
    ended = db.execute(
        update(VerifiedSession)
        .where(*sessions, VerifiedSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(VerifiedSession.id)
    ).all()
    # Expired rather than deleted: the SAD row stays as evidence of what was authorized.
    db.execute(
        update(SignatureActivation)
        .where(
            SignatureActivation.session_id.in_(select(VerifiedSession.id).where(*sessions)),
            SignatureActivation.used_at.is_(None),
            SignatureActivation.expires_at > now,
        )
        .values(expires_at=now)
    )
    return len(ended)
