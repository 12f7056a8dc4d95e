"""Anomaly flags: each rule on records built for it, raised when the records appear (sign-in,
submitted scores) or on demand, never twice, and handled by supervisors with a note."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.jobs import sweep_cross_matches
from api.services import Services
from evaluation.identity import cross_matches
from evaluation.kernel.actions import Action
from evaluation.kernel.tokens import hash_token
from evaluation.registry.staff import Role
from models.tables import (
    AnomalyFlag,
    AuditEntry,
    EvaluationSession,
    FaceChallenge,
    FaceVerification,
    ScanSession,
)
from tests.api.committee import Committee
from tests.api.helpers import assert_problem
from tests.factories import bound_phone, drawable_expert, enrolled_template


def _flags(committee: Committee, **query: str) -> list[dict[str, Any]]:
    response = committee.client.get(
        "/api/v1/anomalies",
        params={"project_id": committee.project_id, **query},
        headers=committee.center.headers(Role.SUPERVISOR),
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


def _recompute(committee: Committee) -> list[dict[str, Any]]:
    response = committee.client.post(
        f"/api/v1/projects/{committee.project_id}/anomalies/recompute",
        headers=committee.center.headers(Role.SUPERVISOR),
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


def _check(
    db: Session,
    committee: Committee,
    expert_id: str,
    *,
    passed: bool,
    similarity: float = 0.8,
    ip: str = "127.0.0.1",
    device: str = "phone-x",
    scan: bool = True,
    checks: list[dict[str, Any]] | None = None,
) -> None:
    """A face check of the project (tied to a scan of it), as the liveness route stores it;
    without `scan`, a check of another project (one the operator asked for directly)."""
    now = committee.clock.now()
    scan_session = ScanSession(
        center_id=committee.center.id,
        project_id=committee.project_id,
        kind="room",
        token_hash=hash_token(secrets.token_hex(8)),
        device_id=device,
        created_at=now,
        expires_at=now + timedelta(minutes=5),
    )
    if scan:
        db.add(scan_session)
        db.flush()
    challenge = FaceChallenge(
        center_id=committee.center.id,
        mode="1:1",
        expert_ids=[expert_id],
        actions=["blink", "nod"],
        nonce_hash=hash_token(secrets.token_hex(8)),
        capture={},
        issued_by="test",
        issued_at=now,
        expires_at=now,
        used_at=now,
        scan_session_id=scan_session.id if scan else None,
    )
    db.add(challenge)
    db.flush()
    db.add(
        FaceVerification(
            center_id=committee.center.id,
            challenge_id=challenge.id,
            mode="1:1",
            candidate_ids=[expert_id],
            expert_id=expert_id,
            passed=passed,
            reasons=[] if passed else ["action-not-seen"],
            checks=checks or [],
            similarity=similarity,
            model_id="test",
            device_id=device,
            device={"id": device},
            client_ip=ip,
            user_agent="test",
            frame_count=0,
            frame_hashes=[],
            frames=[],
            frames_retained=False,
            created_at=now,
        )
    )
    db.commit()
    committee.clock.advance(timedelta(seconds=1))


def test_one_phone_for_two_experts_is_flagged_at_sign_in(committee: Committee) -> None:
    committee.sign_in(committee.members[0], "phone-shared-01")
    assert _flags(committee) == []
    committee.sign_in(committee.members[1], "phone-shared-01")
    [flag] = _flags(committee)
    assert flag["rule"] == "shared-device" and flag["severity"] == "high"
    assert sorted(flag["evidence"]["experts"]) == sorted(
        m["expert_id"] for m in committee.members[:2]
    )
    assert "代评" in flag["explanation_zh"] and "proxy" in flag["explanation_en"]
    assert _recompute(committee) == []  # found again, not raised again


def test_a_phone_bound_just_before_the_evaluation_is_flagged(
    committee: Committee, services: Services
) -> None:
    early, late = committee.members[0], committee.members[1]
    committee.sign_in(early, "phone-early-1")  # its phone was bound weeks ago
    # The other member's phone is bound at the desk today.
    committee.passkeys[late["expert_id"]] = bound_phone(
        committee.db,
        committee.clock,
        services.passkeys,
        committee.center.id,
        late["expert_id"],
        device_id="phone-late-1",
        bound_at=committee.clock.now(),
    )
    committee.sign_in(late, "phone-late-1")
    [flag] = _flags(committee)
    assert flag["rule"] == "passkey-bound-late" and flag["severity"] == "medium"
    assert flag["evidence"]["expert_id"] == late["expert_id"]
    assert flag["evidence"]["witnessed_by"] == "staff:test"
    assert "绑定" in flag["explanation_zh"] and "desk" in flag["explanation_en"]
    assert _recompute(committee) == []


def test_one_expert_on_two_devices_is_flagged(committee: Committee) -> None:
    committee.sign_in(committee.members[0], "phone-aaaa-1111")
    committee.sign_in(committee.members[0], "phone-bbbb-2222", accept=False)
    assert [f["rule"] for f in _flags(committee)] == ["two-devices"]


def test_identical_and_nearly_identical_sheets_are_flagged(committee: Committee) -> None:
    phones = []
    for member in committee.members[:3]:
        headers = committee.sign_in(member)
        committee.declare_no_conflict(headers)
        phones.append(headers)
    sheets = [committee.full_sheet(0), committee.full_sheet(0), committee.full_sheet(0.25)]
    for headers, points in zip(phones, sheets, strict=True):
        saved = committee.client.put(
            "/api/v1/evaluation/scores", json={"points": points}, headers=headers
        )
        assert saved.status_code == 200
        submitted = committee.client.post("/api/v1/evaluation/scores/submit", headers=headers)
        assert submitted.status_code == 200
    flags = [f for f in _flags(committee) if f["rule"] == "similar-sheets"]
    severities = sorted(f["severity"] for f in flags)
    # 0-0 identical (high); 0-0.25 twice, 0.25 apart on average (medium).
    assert severities == ["high", "medium", "medium"], flags


def test_one_phone_for_people_of_two_projects_on_one_day_is_flagged(
    committee: Committee, db: Session, services: Services
) -> None:
    """Center-wide: the phone checked a member here and someone else's face elsewhere."""
    member = committee.members[0]["expert_id"]
    elsewhere = drawable_expert(
        db, committee.clock, services, committee.center, ["A01"], credential=False
    )
    _check(db, committee, member, passed=True, device="phone-roaming")
    _check(db, committee, elsewhere, passed=True, device="phone-roaming", scan=False)
    _check(db, committee, member, passed=True, device="phone-own")
    [flag] = _recompute(committee)
    assert flag["rule"] == "device-shared-day" and flag["severity"] == "high"
    assert flag["evidence"]["experts"] == sorted([member, elsewhere])
    assert flag["evidence"]["day"] == "2026-11-23"  # in Asia/Shanghai
    assert "跨项目" in flag["explanation_zh"]
    assert _recompute(committee) == []
    # Another day, the same phone with one person: nothing.
    committee.clock.advance(timedelta(days=1))
    _check(db, committee, member, passed=True, device="phone-roaming")
    assert _recompute(committee) == []


def test_a_face_matching_another_enrolled_person_better_is_flagged(
    committee: Committee, db: Session
) -> None:
    claimed, other = (m["expert_id"] for m in committee.members[:2])
    cross = {
        "check": "cross-match",
        "passed": True,
        "reason": None,
        "detail": "",
        "values": {
            "other_expert_id": other,
            "other_similarity": 0.71,
            "claimed_similarity": 0.44,
        },
    }
    _check(db, committee, claimed, passed=True, checks=[cross], device="phone-look-alike")
    _check(db, committee, other, passed=True, device="phone-other")
    [flag] = _recompute(committee)
    assert flag["rule"] == "face-matches-other" and flag["severity"] == "high"
    assert flag["evidence"]["claimed_expert_id"] == claimed
    assert flag["evidence"]["other_expert_id"] == other
    assert "冒名" in flag["explanation_zh"]


def test_face_check_patterns_are_flagged(committee: Committee, db: Session) -> None:
    a, b, c = (m["expert_id"] for m in committee.members[:3])
    for _ in range(3):
        _check(db, committee, a, passed=False, device="phone-a")
    _check(db, committee, a, passed=True, device="phone-a")
    _check(db, committee, b, passed=True, similarity=0.41, device="phone-b")
    for expert, device in ((a, "phone-a"), (b, "phone-b"), (c, "phone-c")):
        _check(db, committee, expert, passed=True, ip="203.0.113.7", device=device)
    new = _recompute(committee)
    rules = sorted(f["rule"] for f in new)
    assert rules == ["borderline-pass", "failures-before-pass", "shared-address"], new
    failures = next(f for f in new if f["rule"] == "failures-before-pass")
    assert len(failures["evidence"]["failed_verifications"]) == 3
    shared = next(f for f in new if f["rule"] == "shared-address")
    assert shared["evidence"]["client_ip"] == "203.0.113.7"


def test_a_sign_in_outside_the_window_is_flagged(committee: Committee, db: Session) -> None:
    committee.sign_in(committee.members[0])
    session = db.execute(select(EvaluationSession)).scalar_one()
    session.created_at = session.created_at + timedelta(hours=11)  # after the end
    db.commit()
    assert [f["rule"] for f in _recompute(committee)] == ["outside-window"]


def test_supervisors_acknowledge_and_resolve_with_a_note(committee: Committee, db: Session) -> None:
    committee.sign_in(committee.members[0], "phone-shared-02")
    committee.sign_in(committee.members[1], "phone-shared-02")
    [flag] = _flags(committee)
    supervisor = committee.center.headers(Role.SUPERVISOR)
    path = f"/api/v1/anomalies/{flag['id']}"
    assert_problem(
        committee.client.post(f"{path}/acknowledge", json={}, headers=supervisor),
        422,
        "validation-failed",
    )
    seen = committee.client.post(
        f"{path}/acknowledge", json={"note": "已电话联系两位专家"}, headers=supervisor
    )
    assert seen.json()["status"] == "acknowledged"
    done = committee.client.post(
        f"{path}/resolve", json={"note": "两人同在评标室，借用手机，已现场核实"}, headers=supervisor
    )
    assert done.json()["status"] == "resolved" and done.json()["handled_by"].startswith("staff:")
    again = committee.client.post(f"{path}/resolve", json={"note": "再次"}, headers=supervisor)
    assert_problem(again, 409, "invalid-transition")
    assert _flags(committee, status="resolved")[0]["id"] == flag["id"]
    assert db.execute(select(AnomalyFlag)).scalar_one().note.startswith("两人")


def test_supervisors_search_the_verification_log(committee: Committee, db: Session) -> None:
    a, b = (m["expert_id"] for m in committee.members[:2])
    _check(db, committee, a, passed=False, ip="203.0.113.7", device="phone-a")
    _check(db, committee, a, passed=True, ip="203.0.113.7", device="phone-a")
    _check(db, committee, b, passed=True, ip="198.51.100.20", device="phone-b")
    _check(db, committee, b, passed=True, ip="198.51.100.21", device="phone-b")
    supervisor = committee.center.headers(Role.SUPERVISOR)

    def search(**query: Any) -> list[dict[str, Any]]:
        response = committee.client.get(
            "/api/v1/face/verifications",
            params={"project_id": committee.project_id, **query},
            headers=supervisor,
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    assert len(search()) == 4
    assert [v["passed"] for v in search(expert_id=a)] == [True, False]  # newest first
    assert [v["reasons"] for v in search(reason="action-not-seen")] == [["action-not-seen"]]
    assert {v["client_ip"] for v in search(ip="198.51.100.0/24")} == {
        "198.51.100.20",
        "198.51.100.21",
    }
    assert [v["client_ip"] for v in search(ip="203.0.113.7", passed=True)] == ["203.0.113.7"]
    assert len(search(device_id="phone-b")) == 2
    # The cursor (time, id) pages on without losing or repeating a row.
    first = committee.client.get(
        "/api/v1/face/verifications",
        params={"project_id": committee.project_id, "limit": 3},
        headers=supervisor,
    ).json()
    rest = search(cursor=first["next_cursor"], limit=3)
    ids = [v["id"] for v in first["items"] + rest]
    assert len(ids) == len(set(ids)) == 4
    exported = committee.client.get(
        "/api/v1/face/verifications",
        params={"project_id": committee.project_id, "format": "csv"},
        headers=supervisor,
    )
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.strip().splitlines()
    assert lines[0].startswith("id,created_at,expert_id") and len(lines) == 5
    for bad in ({"ip": "not-an-address"}, {"cursor": "garbage"}, {"reason": "DROP TABLE"}):
        response = committee.client.get(
            "/api/v1/face/verifications", params=bad, headers=supervisor
        )
        assert response.status_code == 422, (bad, response.text)


def _unit(vector: np.ndarray) -> np.ndarray:
    unit: np.ndarray = (vector / np.linalg.norm(vector)).astype(np.float32)
    return unit


def test_the_background_sweep_flags_a_face_that_matched_another_person_better_once(
    committee: Committee, db: Session, services: Services
) -> None:
    claimed, other, third = (m["expert_id"] for m in committee.members[:3])
    rng = np.random.default_rng(5)
    faces = {person: _unit(rng.normal(size=512)) for person in (claimed, other, third)}
    for person, vector in faces.items():
        enrolled_template(
            db,
            services.cipher,
            center_id=committee.center.id,
            expert_id=person,
            vector=vector,
            model_id="synthetic-512",  # apart from the committee's stand-in templates
            now=committee.clock.now(),
        )
    _check(db, committee, claimed, passed=False, device="phone-look-alike")
    verification = db.execute(
        select(FaceVerification).where(FaceVerification.expert_id == claimed)
    ).scalar_one()
    verification.model_id = "synthetic-512"
    # The face at the phone is the other expert's, seen a little differently.
    probe = _unit(faces[other] + 0.4 * _unit(rng.normal(size=512)))
    cross_matches.queue(
        db,
        services.cipher,
        verification,
        probe,
        threshold=0.4,
        claimed_similarity=float(probe @ faces[claimed]),
    )
    db.commit()
    assert _flags(committee) == []  # nothing known until the sweep has run

    assert sweep_cross_matches(services) == 1
    [flag] = _flags(committee)
    assert flag["rule"] == "face-matches-other"
    assert flag["evidence"]["claimed_expert_id"] == claimed
    assert flag["evidence"]["other_expert_id"] == other
    assert flag["evidence"]["other_similarity"] == pytest.approx(
        float(probe @ faces[other]), abs=1e-4
    )
    assert sweep_cross_matches(services) == 0
    assert _recompute(committee) == []  # the rule reads the sweep's record: no second flag
    flagged = (
        db.execute(select(AuditEntry).where(AuditEntry.action == Action.ANOMALY_FLAGGED.value))
        .scalars()
        .all()
    )
    assert [entry.details["rule"] for entry in flagged] == ["face-matches-other"]
