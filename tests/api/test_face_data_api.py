"""Face data, lawfully: withdrawal of consent deletes a person's face data and closes the
face path until they consent again; the retention limits delete old evidence frames and
the templates of long-suspended experts, each deletion audited; the holdings count."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaluation.identity import face_data
from evaluation.registry.staff import Role
from models.clock import FrozenClock
from models.tables import AuditEntry, Expert, FaceTemplate, FaceVerification, VerificationFrame
from tests.api.helpers import assert_problem
from tests.api.test_liveness_api import PERSON, _enrolled, challenge
from tests.face.corpus import encode, portraits
from tests.factories import CenterWithStaff, face_session


def _withdraw(client: TestClient, center: CenterWithStaff, expert_id: str) -> Response:
    return client.post(
        f"/api/v1/experts/{expert_id}/face/consent/withdraw",
        json={"note": "本人来电撤回人脸识别同意"},
        headers=center.headers(Role.OPERATOR),
    )


def test_withdrawal_deletes_face_data_and_closes_the_face_path(
    client: TestClient, center: CenterWithStaff, db: Session, clock: FrozenClock
) -> None:
    operator = center.headers(Role.OPERATOR)
    expert_id = _enrolled(client, operator, PERSON)
    token, _ = face_session(db, clock, center.id, expert_id)
    withdrawn = _withdraw(client, center, expert_id)
    assert withdrawn.status_code == 200, withdrawn.text
    body = withdrawn.json()
    assert body["templates_deleted"] == 1 and body["sessions_revoked"] == 1
    db.expire_all()
    assert db.get(FaceTemplate, expert_id) is None
    refused = client.post(
        "/api/v1/face/challenges", json={"expert_ids": [expert_id]}, headers=operator
    )
    assert_problem(refused, 409, "face-consent-withdrawn")
    old_session = client.get(
        "/api/v1/face/session",
        headers={"Authorization": f"Bearer {token}", "X-Device-Id": "phone-test-1"},
    )
    assert_problem(old_session, 401, "face-session-invalid")
    assert_problem(_withdraw(client, center, expert_id), 409, "invalid-transition")
    entry = db.execute(
        select(AuditEntry).where(AuditEntry.action == "face.consent_withdrawn")
    ).scalar_one()
    assert entry.subject_id == expert_id and entry.details["templates_deleted"] == 1

    # A new enrollment, with new consent, opens the path again.
    enrolled = client.put(
        f"/api/v1/experts/{expert_id}/face",
        files={"photos": ("p.jpg", encode(portraits()[PERSON]), "image/jpeg")},
        data={"consent": "true"},
        headers=operator,
    )
    assert enrolled.status_code == 201, enrolled.text
    renewed = db.execute(
        select(AuditEntry)
        .where(AuditEntry.action == "expert.face_enrolled")
        .order_by(AuditEntry.id.desc())
        .limit(1)
    ).scalar_one()
    assert renewed.details["consent_renewed_after_withdrawal"] is True
    assert challenge(client, operator, expert_id)["mode"] == "1:1"


def _retained_check(db: Session, center: CenterWithStaff, expert_id: str, at: datetime) -> str:
    """A passed check whose frames were kept (the retention setting on), made at `at`."""
    _, session = face_session(db, FrozenClock(at), center.id, expert_id)
    record = db.get(FaceVerification, session.verification_id)
    assert record is not None
    record.frames_retained = True
    db.add(
        VerificationFrame(verification_id=record.id, seq=0, center_id=center.id, ciphertext=b"x")
    )
    db.commit()
    return record.id


def test_retention_deletes_old_frames_and_long_suspended_templates(
    client: TestClient, center: CenterWithStaff, db: Session, clock: FrozenClock
) -> None:
    operator = center.headers(Role.OPERATOR)
    keeper = _enrolled(client, operator, PERSON)
    old = _retained_check(db, center, keeper, clock.now() - timedelta(days=40))
    recent = _retained_check(db, center, keeper, clock.now() - timedelta(days=2))
    gone = _enrolled(client, operator, "gdp-2")
    expert = db.get(Expert, gone)
    assert expert is not None
    expert.status = "suspended"
    expert.updated_at = clock.now() - timedelta(days=400)
    db.commit()

    done = client.post("/api/v1/faces/retention", headers=center.headers(Role.ADMIN))
    assert done.status_code == 200, done.text
    assert done.json() == {
        "frames_deleted": 1,
        "verifications": 1,
        "templates_deleted": 1,
        "experts": [gone],
    }
    db.expire_all()
    assert db.get(FaceVerification, old).frames_retained is False  # type: ignore[union-attr]
    assert db.get(FaceVerification, recent).frames_retained is True  # type: ignore[union-attr]
    assert db.get(FaceTemplate, gone) is None and db.get(FaceTemplate, keeper) is not None
    actions = [
        e.action
        for e in db.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()
        if e.action.startswith("face.") and e.action.endswith("expired")
    ]
    assert actions == ["face.frames_expired", "face.template_expired"]
    again = client.post("/api/v1/faces/retention", headers=center.headers(Role.ADMIN))
    assert again.json()["verifications"] == 0 and again.json()["templates_deleted"] == 0


def test_holdings_count_people_and_warn_near_the_filing_number(
    client: TestClient, center: CenterWithStaff, db: Session
) -> None:
    operator = center.headers(Role.OPERATOR)
    _enrolled(client, operator, PERSON)
    _enrolled(client, operator, "gdp-2")
    held = client.get("/api/v1/faces/holdings", headers=center.headers(Role.SUPERVISOR))
    assert held.status_code == 200, held.text
    assert held.json() == {
        "people": 2,
        "photos": 0,
        "frames": 0,
        "filing_threshold": 100_000,
        "warning": False,
    }
    assert face_data.holdings(db, center.id, threshold=2, warn_ratio=0.9).warning
    assert not face_data.holdings(db, center.id, threshold=3, warn_ratio=0.9).warning
    assert_problem(client.get("/api/v1/faces/holdings", headers=operator), 403, "role-forbidden")
