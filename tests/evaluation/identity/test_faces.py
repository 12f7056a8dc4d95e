"""Face enrollment and matching as the domain does them: real images, real models, real
encryption, with the audit trail."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaluation.identity import faces
from evaluation.registry.experts import NewExpert, register_expert
from face.engine import FaceEngine
from models.clock import FrozenClock
from models.settings import Settings
from models.tables import AuditEntry, FacePhoto, FaceTemplate
from signing.field_cipher import FieldCipher
from tests.face.corpus import IMAGES_DIR, PHONE_TRANSFORMS, encode, face_in, load, portraits
from tests.factories import CenterWithStaff, expert_payload


@pytest.fixture
def policy() -> faces.FacePolicy:
    return faces.FacePolicy.from_settings(Settings())


def _expert(db: Session, center: CenterWithStaff, clock: FrozenClock, cipher: FieldCipher) -> str:
    record = register_expert(db, center.caller, clock, cipher, NewExpert(**expert_payload()))
    db.commit()
    return record.id


def _enroll(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    face_engine: FaceEngine,
    policy: faces.FacePolicy,
    expert_id: str,
    *people: str,
    **kw: Any,
) -> faces.Enrollment:
    photos = [(f"{name}.jpg", encode(portraits()[name])) for name in people]
    enrollment = faces.enroll_face(
        db,
        center.caller,
        clock,
        cipher,
        face_engine,
        policy,
        expert_id,
        photos,
        consent=kw.pop("consent", True),
    )
    db.commit()
    return enrollment


@pytest.fixture
def people() -> list[str]:
    return sorted(portraits())


def test_enrollment_stores_an_encrypted_template_bound_to_the_model(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    face_engine: FaceEngine,
    policy: faces.FacePolicy,
    people: list[str],
) -> None:
    expert_id = _expert(db, center, clock, cipher)
    enrollment = _enroll(db, center, clock, cipher, face_engine, policy, expert_id, people[0])
    assert enrollment.model_id == face_engine.model_id and enrollment.photo_count == 1
    stored = db.get(FaceTemplate, expert_id)
    assert stored is not None and stored.model_id == face_engine.model_id
    vector = face_engine.embed(
        face_engine.align(portraits()[people[0]], face_engine.detect(portraits()[people[0]])[0])
    )
    plain = vector.astype("<f4").tobytes()
    assert stored.template_ciphertext != plain
    assert plain[:64] not in stored.template_ciphertext  # not even a fragment in the clear
    assert plain[:64] not in stored.embeddings_ciphertext
    templates = faces.load_templates(db, cipher, face_engine, center.id, [expert_id])
    assert np.isclose(np.linalg.norm(templates[expert_id]), 1.0, atol=1e-5)
    assert float(np.dot(templates[expert_id], vector)) > 0.99
    assert db.execute(select(func.count()).select_from(FacePhoto)).scalar_one() == 0
    actions = (
        db.execute(select(AuditEntry.action).where(AuditEntry.subject_id == expert_id))
        .scalars()
        .all()
    )
    assert actions[-1] == "expert.face_enrolled"


def test_template_decrypts_only_for_its_own_expert(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    face_engine: FaceEngine,
    policy: faces.FacePolicy,
    people: list[str],
) -> None:
    first, second = _expert(db, center, clock, cipher), _expert(db, center, clock, cipher)
    _enroll(db, center, clock, cipher, face_engine, policy, first, people[0])
    _enroll(db, center, clock, cipher, face_engine, policy, second, people[1])
    a, b = db.get(FaceTemplate, first), db.get(FaceTemplate, second)
    assert a is not None and b is not None
    a.template_ciphertext, b.template_ciphertext = b.template_ciphertext, a.template_ciphertext
    db.flush()
    from signing.field_cipher import FieldDecryptionError

    with pytest.raises(FieldDecryptionError):
        faces.load_templates(db, cipher, face_engine, center.id, [first])


def test_reenrollment_replaces_and_is_audited(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    face_engine: FaceEngine,
    policy: faces.FacePolicy,
    people: list[str],
) -> None:
    expert_id = _expert(db, center, clock, cipher)
    _enroll(db, center, clock, cipher, face_engine, policy, expert_id, people[0])
    again = _enroll(db, center, clock, cipher, face_engine, policy, expert_id, people[1], people[1])
    assert again.replaced and again.photo_count == 2
    probe = portraits()[people[1]]
    assert faces.verify_expert(
        db, cipher, face_engine, policy, center.id, expert_id, encode(probe)
    ).matched
    actions = (
        db.execute(
            select(AuditEntry.action)
            .where(AuditEntry.subject_id == expert_id)
            .order_by(AuditEntry.seq)
        )
        .scalars()
        .all()
    )
    assert actions[-2:] == ["expert.face_enrolled", "expert.face_reenrolled"]


def test_a_refused_photo_stores_nothing(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    face_engine: FaceEngine,
    policy: faces.FacePolicy,
    people: list[str],
) -> None:
    expert_id = _expert(db, center, clock, cipher)
    group = encode(load(IMAGES_DIR / "t1.jpg"))
    with pytest.raises(faces.EnrollmentRejected) as refused:
        faces.enroll_face(
            db,
            center.caller,
            clock,
            cipher,
            face_engine,
            policy,
            expert_id,
            [
                ("good.jpg", encode(portraits()[people[0]])),
                ("group.jpg", group),
                ("junk.jpg", b"not an image"),
            ],
            consent=True,
        )
    reports = refused.value.extensions["photos"]
    assert [r["accepted"] for r in reports] == [True, False, False]
    assert reports[1]["issues"][0]["code"] == "multiple-faces"
    assert reports[2]["issues"][0]["code"] == "not-an-image"
    assert db.get(FaceTemplate, expert_id) is None


def test_enrollment_needs_recorded_consent(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    face_engine: FaceEngine,
    policy: faces.FacePolicy,
    people: list[str],
) -> None:
    expert_id = _expert(db, center, clock, cipher)
    with pytest.raises(faces.ConsentRequired):
        _enroll(db, center, clock, cipher, face_engine, policy, expert_id, people[0], consent=False)
    assert db.get(FaceTemplate, expert_id) is None


def test_photos_are_kept_encrypted_only_when_retention_says_so(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    face_engine: FaceEngine,
    people: list[str],
) -> None:
    retaining = faces.FacePolicy.from_settings(Settings(face_retain_photos=True))
    expert_id = _expert(db, center, clock, cipher)
    _enroll(db, center, clock, cipher, face_engine, retaining, expert_id, people[0])
    photo = db.execute(select(FacePhoto).where(FacePhoto.expert_id == expert_id)).scalar_one()
    original = encode(portraits()[people[0]])
    assert original[:200] not in photo.ciphertext
    assert (
        cipher.decrypt_bytes(photo.ciphertext, f"experts/{expert_id}/face/{photo.id}") == original
    )
    faces.remove_face(db, center.caller, clock, expert_id)
    assert db.execute(select(func.count()).select_from(FacePhoto)).scalar_one() == 0
    assert db.get(FaceTemplate, expert_id) is None
    with pytest.raises(faces.FaceNotEnrolled):
        faces.remove_face(db, center.caller, clock, expert_id)


def test_one_to_one_accepts_the_person_under_phone_transformations_and_no_one_else(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    face_engine: FaceEngine,
    policy: faces.FacePolicy,
    people: list[str],
) -> None:
    expert_id = _expert(db, center, clock, cipher)
    _enroll(db, center, clock, cipher, face_engine, policy, expert_id, people[0])
    for name, transform in PHONE_TRANSFORMS.items():
        result = faces.verify_expert(
            db, cipher, face_engine, policy, center.id, expert_id, transform(portraits()[people[0]])
        )
        assert result.matched, (name, result.similarity)
    for stranger in people[1:]:
        result = faces.verify_expert(
            db, cipher, face_engine, policy, center.id, expert_id, encode(portraits()[stranger])
        )
        assert not result.matched, (stranger, result.similarity)


def test_one_to_few_identifies_the_expert_in_the_room(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    face_engine: FaceEngine,
    policy: faces.FacePolicy,
    people: list[str],
) -> None:
    committee = {}
    for name in ("gdp-2", "t1-5", "yaoming-0", "players-0"):
        committee[name] = _expert(db, center, clock, cipher)
        _enroll(db, center, clock, cipher, face_engine, policy, committee[name], name)
    # Sharp source photos: an upscaled 40-pixel face, rotated, is rightly refused as blurred.
    probe = PHONE_TRANSFORMS["rotate+15"](portraits()["t1-5"])
    found = faces.identify_expert(
        db, cipher, face_engine, policy, center.id, list(committee.values()), probe
    )
    assert (found.outcome, found.candidate) == ("identified", committee["t1-5"])
    outsider = faces.identify_expert(
        db,
        cipher,
        face_engine,
        policy,
        center.id,
        list(committee.values()),
        encode(portraits()["players-5"]),
    )
    assert (outsider.outcome, outsider.candidate) == ("no-match", None)


def test_templates_of_another_model_are_never_compared(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    face_engine: FaceEngine,
    policy: faces.FacePolicy,
    people: list[str],
) -> None:
    expert_id = _expert(db, center, clock, cipher)
    _enroll(db, center, clock, cipher, face_engine, policy, expert_id, people[0])
    stored = db.get(FaceTemplate, expert_id)
    assert stored is not None
    stored.model_id = "insightface-buffalo-l/0123456789abcdef"
    db.flush()
    with pytest.raises(faces.ReenrollmentRequired, match="enroll these experts again"):
        faces.verify_expert(
            db, cipher, face_engine, policy, center.id, expert_id, encode(portraits()[people[0]])
        )


def test_matching_without_enrollment_or_a_face_is_refused(
    db: Session,
    center: CenterWithStaff,
    clock: FrozenClock,
    cipher: FieldCipher,
    face_engine: FaceEngine,
    policy: faces.FacePolicy,
    people: list[str],
) -> None:
    expert_id = _expert(db, center, clock, cipher)
    with pytest.raises(faces.FaceNotEnrolled):
        faces.verify_expert(db, cipher, face_engine, policy, center.id, expert_id, b"")
    _enroll(db, center, clock, cipher, face_engine, policy, expert_id, people[0])
    blank = encode(np.full((480, 640, 3), 127, dtype=np.uint8))
    with pytest.raises(faces.NoUsableFace):
        faces.verify_expert(db, cipher, face_engine, policy, center.id, expert_id, blank)
    turned = encode(face_in("t1.jpg", 2))
    with pytest.raises(faces.NoUsableFace, match="turn your face"):
        faces.verify_expert(db, cipher, face_engine, policy, center.id, expert_id, turned)
