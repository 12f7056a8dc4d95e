"""Whether a face check's face matches another enrolled person better than the one it was
for (the face-matches-other anomaly): decided in the background, off the request path.

A 1:1 check only queues its probe (encrypted) and what it scored against the claimed
person; `sweep` later compares every queued probe of a center with all of the center's
templates in one matrix product and forgets the probe. So a check costs the same with 100
or 100,000 people enrolled; supervisors learn of a look-alike seconds later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.identity.faces import center_templates
from face.engine import Vector
from face.matching import normalize
from models.tables import FaceChallenge, FaceCrossCheck, FaceVerification, ScanSession
from signing.field_cipher import FieldCipher


def _probe_context(verification_id: str) -> str:
    return f"face_verifications/{verification_id}/probe"


def queue(
    db: Session,
    cipher: FieldCipher,
    verification: FaceVerification,
    probe: Vector,
    *,
    threshold: float,
    claimed_similarity: float,
) -> FaceCrossCheck:
    """Queue a 1:1 check's face for the sweep."""
    row = FaceCrossCheck(
        verification_id=verification.id,
        center_id=verification.center_id,
        model_id=verification.model_id,
        probe_ciphertext=cipher.encrypt_bytes(
            normalize(probe).astype(np.float32).tobytes(), _probe_context(verification.id)
        ),
        threshold=threshold,
        claimed_similarity=claimed_similarity,
        created_at=verification.created_at,
        swept_at=None,
    )
    db.add(row)
    return row


@dataclass(frozen=True)
class CrossMatch:
    """A face that matched someone else better than the person it claimed to be."""

    verification_id: str
    center_id: str
    claimed_expert_id: str | None
    other_expert_id: str
    other_similarity: float
    claimed_similarity: float
    project_id: str | None  # where the check was for, when it came through a task QR


def sweep(db: Session, cipher: FieldCipher, now: datetime, *, limit: int = 500) -> list[CrossMatch]:
    """Compare up to `limit` queued checks, oldest first, with everyone enrolled in their
    center; returns the cross matches found. Rows are locked and skipped by a concurrent
    sweep (PostgreSQL), so two sweeps never decide the same check."""
    pending = list(
        db.execute(
            select(FaceCrossCheck, FaceVerification.candidate_ids, FaceVerification.expert_id)
            .join(FaceVerification, FaceVerification.id == FaceCrossCheck.verification_id)
            .where(FaceCrossCheck.swept_at.is_(None), FaceCrossCheck.probe_ciphertext.is_not(None))
            .order_by(FaceCrossCheck.created_at, FaceCrossCheck.verification_id)
            .limit(limit)
            .with_for_update(of=FaceCrossCheck, skip_locked=True)
        ).all()
    )
    found: list[CrossMatch] = []
    groups: dict[tuple[str, str], list[tuple[FaceCrossCheck, list[str], str | None]]] = {}
    for row, candidates, claimed in pending:
        groups.setdefault((row.center_id, row.model_id), []).append((row, candidates, claimed))
    for (center_id, model_id), rows in groups.items():
        ids, templates = center_templates(db, cipher, center_id, model_id)
        found += _compare(db, cipher, ids, templates, rows)
    for row, _candidates, _claimed in pending:
        row.swept_at = now
        row.probe_ciphertext = None  # the face is not kept past its comparison
    db.flush()
    return found


def _compare(
    db: Session,
    cipher: FieldCipher,
    ids: list[str],
    templates: np.ndarray,
    rows: Sequence[tuple[FaceCrossCheck, list[str], str | None]],
) -> list[CrossMatch]:
    if not ids:
        return []
    assert all(row.probe_ciphertext is not None for row, _c, _e in rows)
    probes = np.stack(
        [
            np.frombuffer(
                cipher.decrypt_bytes(
                    row.probe_ciphertext or b"", _probe_context(row.verification_id)
                ),
                dtype=np.float32,
            )
            for row, _c, _e in rows
        ]
    )
    scores = templates @ probes.T  # people x checks
    index = {expert_id: i for i, expert_id in enumerate(ids)}
    found = []
    for column, (row, candidates, claimed) in enumerate(rows):
        column_scores = scores[:, column].copy()
        for candidate in candidates:  # the people the check was for are not "another"
            if candidate in index:
                column_scores[index[candidate]] = -np.inf
        best = int(np.argmax(column_scores))
        similarity = float(column_scores[best])
        if similarity < row.threshold or similarity <= row.claimed_similarity:
            continue
        row.other_expert_id, row.other_similarity = ids[best], similarity
        found.append(
            CrossMatch(
                row.verification_id,
                row.center_id,
                claimed,
                ids[best],
                similarity,
                row.claimed_similarity,
                _project_of(db, row.verification_id),
            )
        )
    return found


def _project_of(db: Session, verification_id: str) -> str | None:
    project_id: str | None = db.execute(
        select(ScanSession.project_id)
        .join(FaceChallenge, FaceChallenge.scan_session_id == ScanSession.id)
        .join(FaceVerification, FaceVerification.challenge_id == FaceChallenge.id)
        .where(FaceVerification.id == verification_id)
    ).scalar_one_or_none()
    return project_id


def found_for(db: Session, verification_ids: Sequence[str]) -> dict[str, FaceCrossCheck]:
    """The swept checks among these that matched someone else better."""
    return {
        row.verification_id: row
        for row in db.execute(
            select(FaceCrossCheck).where(
                FaceCrossCheck.verification_id.in_(verification_ids),
                FaceCrossCheck.other_expert_id.is_not(None),
            )
        ).scalars()
    }
