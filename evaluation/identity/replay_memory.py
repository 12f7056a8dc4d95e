"""What earlier face checks looked like, for the replay check: their frames' perceptual
hashes and their replay signatures (face/replay.py), for the experts a new check is for,
over the configured time window, from the database so every replica sees every check.

Looked up by expert, not by center: a replay can only pass as the person it shows, so the
captures that matter are those of the new check's candidates. That keeps the lookup to a
handful of rows however busy the center is (the index is expert_id, created_at).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from face.replay import ReplaySignature
from models.tables import FaceReplaySignature, FaceVerification
from signing.field_cipher import FieldCipher


def _context(verification_id: str) -> str:
    return f"face_verifications/{verification_id}/replay_signature"


@dataclass(frozen=True)
class EarlierCaptures:
    hashes: list[list[bytes]] = field(default_factory=list)
    signatures: list[ReplaySignature] = field(default_factory=list)


def earlier_captures(
    db: Session,
    cipher: FieldCipher,
    *,
    expert_ids: Sequence[str],
    since: datetime,
    limit: int,
) -> EarlierCaptures:
    """The newest ``limit`` earlier checks of these experts since ``since``."""
    hashes = db.execute(
        select(FaceVerification.frame_hashes)
        .where(FaceVerification.expert_id.in_(expert_ids), FaceVerification.created_at >= since)
        .order_by(FaceVerification.created_at.desc())
        .limit(limit)
    ).scalars()
    rows = db.execute(
        select(FaceReplaySignature.verification_id, FaceReplaySignature.ciphertext)
        .where(
            FaceReplaySignature.expert_id.in_(expert_ids),
            FaceReplaySignature.created_at >= since,
        )
        .order_by(FaceReplaySignature.created_at.desc())
        .limit(limit)
    ).all()
    return EarlierCaptures(
        [[bytes.fromhex(value) for value in sequence] for sequence in hashes],
        [
            ReplaySignature.from_bytes(cipher.decrypt_bytes(blob, _context(verification_id)))
            for verification_id, blob in rows
        ],
    )


def remember(
    db: Session, cipher: FieldCipher, verification: FaceVerification, signature: ReplaySignature
) -> None:
    """Keep a check's signature for later checks of the same expert (none without one)."""
    if verification.expert_id is None or signature.frames == 0:
        return
    db.add(
        FaceReplaySignature(
            verification_id=verification.id,
            center_id=verification.center_id,
            expert_id=verification.expert_id,
            ciphertext=cipher.encrypt_bytes(signature.to_bytes(), _context(verification.id)),
            created_at=verification.created_at,
        )
    )


def forget_expert(db: Session, expert_id: str) -> int:
    """A person's signatures, deleted with the rest of their face data."""
    return len(
        db.execute(
            delete(FaceReplaySignature)
            .where(FaceReplaySignature.expert_id == expert_id)
            .returning(FaceReplaySignature.verification_id)
        ).all()
    )


def forget_before(db: Session, before: datetime) -> int:
    """Signatures older than the replay window: no check compares with them any more."""
    return len(
        db.execute(
            delete(FaceReplaySignature)
            .where(FaceReplaySignature.created_at < before)
            .returning(FaceReplaySignature.verification_id)
        ).all()
    )
