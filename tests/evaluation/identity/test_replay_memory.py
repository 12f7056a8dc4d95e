"""Replay signatures in the database: kept encrypted per check, found for the same expert
within the window by any replica, erased with the person's face data."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.services import Services
from evaluation.identity import face_data, replay_memory
from evaluation.registry.experts import NewExpert, register_expert
from face.replay import ReplaySignature, signature
from models.clock import FrozenClock
from models.tables import FaceChallenge, FaceReplaySignature, FaceVerification
from signing.field_cipher import FieldCipher
from tests.factories import CenterWithStaff, expert_payload


def _expert(db: Session, center: CenterWithStaff, clock: FrozenClock, cipher: FieldCipher) -> str:
    return register_expert(db, center.caller, clock, cipher, NewExpert(**expert_payload())).id


def _signature(seed: int) -> ReplaySignature:
    rng = np.random.default_rng(seed)
    points = [rng.uniform(100, 300, (106, 2)).astype(np.float32) for _ in range(12)]
    vectors = [rng.normal(size=512).astype(np.float32) for _ in range(12)]
    return signature(points, [v / np.linalg.norm(v) for v in vectors])


def _check(
    db: Session, center: CenterWithStaff, clock: FrozenClock, expert_id: str
) -> FaceVerification:
    now = clock.now()
    challenge = FaceChallenge(
        center_id=center.caller.center_id,
        mode="1:1",
        expert_ids=[expert_id],
        actions=["turn_left", "open_mouth"],
        nonce_hash=f"{np.random.default_rng().integers(1 << 60):064x}",
        capture={},
        issued_by="test",
        issued_at=now,
        expires_at=now + timedelta(seconds=60),
        used_at=now,
        scan_session_id=None,
    )
    db.add(challenge)
    db.flush()
    verification = FaceVerification(
        center_id=challenge.center_id,
        challenge_id=challenge.id,
        mode="1:1",
        candidate_ids=[expert_id],
        expert_id=expert_id,
        passed=True,
        reasons=[],
        checks=[],
        similarity=0.7,
        model_id="test",
        device_id="phone-1",
        device={"id": "phone-1"},
        client_ip=None,
        user_agent=None,
        frame_count=12,
        frame_hashes=["00" * 32],
        frames=[],
        frames_retained=False,
        created_at=now,
    )
    db.add(verification)
    db.flush()
    return verification


def test_a_signature_is_found_for_the_same_expert_within_the_window(
    db: Session, center: CenterWithStaff, clock: FrozenClock, cipher: FieldCipher
) -> None:
    mine, other = (_expert(db, center, clock, cipher) for _ in range(2))
    stored = _signature(1)
    replay_memory.remember(db, cipher, _check(db, center, clock, mine), stored)
    replay_memory.remember(db, cipher, _check(db, center, clock, other), _signature(2))
    db.flush()

    since = clock.now() - timedelta(hours=24)
    found = replay_memory.earlier_captures(db, cipher, expert_ids=[mine], since=since, limit=50)
    assert len(found.signatures) == 1 and len(found.hashes) == 1
    assert np.array_equal(found.signatures[0].shapes, stored.shapes)
    assert np.array_equal(found.signatures[0].embeddings, stored.embeddings)

    later = clock.now() + timedelta(hours=25)
    gone = replay_memory.earlier_captures(
        db, cipher, expert_ids=[mine], since=later - timedelta(hours=24), limit=50
    )
    assert gone.signatures == [] and gone.hashes == []


def test_the_signature_is_stored_encrypted(
    db: Session, center: CenterWithStaff, clock: FrozenClock, cipher: FieldCipher
) -> None:
    expert_id = _expert(db, center, clock, cipher)
    stored = _signature(3)
    replay_memory.remember(db, cipher, _check(db, center, clock, expert_id), stored)
    db.flush()
    blob = db.execute(select(FaceReplaySignature.ciphertext)).scalar_one()
    assert stored.to_bytes()[8:40] not in blob


def test_erasing_a_persons_face_data_erases_their_signatures(
    db: Session, center: CenterWithStaff, clock: FrozenClock, cipher: FieldCipher
) -> None:
    mine, other = (_expert(db, center, clock, cipher) for _ in range(2))
    replay_memory.remember(db, cipher, _check(db, center, clock, mine), _signature(4))
    replay_memory.remember(db, cipher, _check(db, center, clock, other), _signature(5))
    db.flush()
    face_data._erase(db, mine, clock.now())
    left = db.execute(select(FaceReplaySignature.expert_id)).scalars().all()
    assert left == [other]


def test_signatures_older_than_the_window_can_be_forgotten(
    db: Session, center: CenterWithStaff, clock: FrozenClock, cipher: FieldCipher
) -> None:
    expert_id = _expert(db, center, clock, cipher)
    replay_memory.remember(db, cipher, _check(db, center, clock, expert_id), _signature(6))
    db.flush()
    assert replay_memory.forget_before(db, clock.now() - timedelta(hours=24)) == 0
    assert replay_memory.forget_before(db, clock.now() + timedelta(seconds=1)) == 1


def test_the_periodic_job_forgets_what_the_window_no_longer_covers(
    db: Session, center: CenterWithStaff, clock: FrozenClock, services: Services
) -> None:
    from api.jobs import forget_old_replay_signatures

    cipher = services.cipher
    expert_id = _expert(db, center, clock, cipher)
    replay_memory.remember(db, cipher, _check(db, center, clock, expert_id), _signature(7))
    db.flush()
    assert forget_old_replay_signatures(services) == 0  # still inside the window
    clock.advance(timedelta(seconds=services.settings.liveness_replay_window_s + 1))
    assert forget_old_replay_signatures(services) == 1
    assert db.execute(select(FaceReplaySignature)).first() is None
